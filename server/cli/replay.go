package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/vigil-project/vigil/detect/behaviour"

	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/server/replay"
)

func replayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("vigil replay", "", stderr)
	configPath := fs.String("config", "", "YAML configuration file (default: the embedded defaults)")
	input := fs.String("input", "", "recorded traffic: JSON lines (transaction records or Envoy access log); - for stdin")
	outPath := fs.String("out", "", "where to write attack records, one JSON line each (default stdout)")
	modelsPath := fs.String("models-out", "", "where to write the models learned, one JSON document per API and line (what vigil model import takes)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if *input == "" {
		return fmt.Errorf("%w: vigil replay needs --input FILE", ErrUsage)
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	var in io.Reader = os.Stdin
	if *input != "-" {
		f, err := os.Open(*input)
		if err != nil {
			return fmt.Errorf("input: %w", err)
		}
		defer f.Close()
		in = f
	}
	out := stdout
	if *outPath != "" {
		f, err := os.Create(*outPath)
		if err != nil {
			return fmt.Errorf("out: %w", err)
		}
		defer f.Close()
		out = f
	}
	bw := bufio.NewWriter(out)
	sum, err := replay.Run(ctx, cfg, in, bw, stderr)
	if ferr := bw.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write attacks: %w", ferr)
	}
	if sum != nil {
		sum.Table(stderr)
	}
	if err == nil && *modelsPath != "" && sum != nil {
		err = writeModels(*modelsPath, sum.Docs)
	}
	return err
}

// writeModels writes models as JSON lines.
func writeModels(path string, docs []*behaviour.ModelDoc) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("models-out: %w", err)
	}
	enc := json.NewEncoder(f)
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			f.Close()
			return fmt.Errorf("models-out: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("models-out: %w", err)
	}
	return nil
}
