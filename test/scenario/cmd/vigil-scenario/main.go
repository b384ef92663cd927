// Command vigil-scenario writes the labelled scenario traffic as replay
// input and scores the attack records an engine raised on it.
//
//	vigil-scenario gen  [flags] [-out FILE]
//	vigil-scenario eval [flags] -attacks FILE -fingerprint-key HEX [-json] [-check]
//
// Both regenerate the scenario from -preset, -seed, -intensity, -types,
// -held-out-variants and -next-held-out, so eval needs no label file: pass
// it the flags gen had.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/test/scenario"
)

func main() {
	err := Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		fmt.Fprintln(os.Stderr, "vigil-scenario:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "vigil-scenario:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage: vigil-scenario gen|eval [flags] (-h for flags)")

// errGoals reports an evaluation that missed a goal under -check.
var errGoals = errors.New("detection goals missed")

// Main runs one command.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	fs := flag.NewFlagSet("vigil-scenario "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	preset := fs.String("preset", "fast", "fast (CI-sized), full or stealth (the fast preset with crawlers, shared addresses, login names in bodies and stealthy attackers)")
	heldOut := fs.Bool("held-out-variants", true, "with -preset stealth, include the stealthy variants kept out of tuning (tuning runs set it false)")
	nextHeldOut := fs.Bool("next-held-out", false, "with -preset stealth and -held-out-variants, include the next held-out set (_h5) too")
	seed := fs.Uint64("seed", 1, "random seed")
	intensity := fs.Float64("intensity", 1, "multiplier of attack rates and sizes")
	types := fs.String("types", "", "comma-separated attack types (default all)")
	switch args[0] {
	case "gen":
		out := fs.String("out", "-", "where to write the traffic, one JSON record a line; - for stdout")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		cfg, err := config(*preset, *seed, *intensity, *types, *heldOut, *nextHeldOut)
		if err != nil {
			return err
		}
		return gen(ctx, cfg, *out, stdout, stderr)
	case "eval":
		attacks := fs.String("attacks", "", "attack records written by vigil replay, one JSON line each (required)")
		key := fs.String("fingerprint-key", "", "the engine's fingerprint key in hex (fingerprint_key of the config)")
		keyFile := fs.String("fingerprint-key-file", "", "a file holding the key in hex (data_dir/fingerprint.key)")
		asJSON := fs.Bool("json", false, "write the report as JSON instead of a table")
		check := fs.Bool("check", false, "fail when a detection goal is missed")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		cfg, err := config(*preset, *seed, *intensity, *types, *heldOut, *nextHeldOut)
		if err != nil {
			return err
		}
		if *attacks == "" {
			return fmt.Errorf("%w: eval needs -attacks", errUsage)
		}
		fp, err := fingerprinter(*key, *keyFile)
		if err != nil {
			return err
		}
		return eval(cfg, *attacks, fp, *asJSON, *check, stdout, stderr)
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

func config(preset string, seed uint64, intensity float64, types string, heldOut, nextHeldOut bool) (scenario.Config, error) {
	var cfg scenario.Config
	switch preset {
	case "fast":
		cfg = scenario.FastConfig(seed)
	case "full":
		cfg = scenario.FullConfig(seed)
	case "stealth":
		cfg = scenario.StealthConfig(seed)
		cfg.HeldOutVariants, cfg.NextHeldOut = heldOut, heldOut && nextHeldOut
	default:
		return cfg, fmt.Errorf("%w: -preset %q (want fast, full or stealth)", errUsage, preset)
	}
	if intensity <= 0 {
		return cfg, fmt.Errorf("%w: -intensity must be positive", errUsage)
	}
	cfg.Intensity = intensity
	if types != "" {
		known := scenario.AttackTypes()
		for t := range strings.SplitSeq(types, ",") {
			t = strings.TrimSpace(t)
			found := false
			for _, k := range known {
				found = found || k == t
			}
			if !found {
				return cfg, fmt.Errorf("%w: unknown attack type %q (want one of %s)", errUsage, t, strings.Join(known, ", "))
			}
			cfg.Types = append(cfg.Types, t)
		}
	}
	return cfg, nil
}

func gen(ctx context.Context, cfg scenario.Config, out string, stdout, stderr io.Writer) error {
	s := scenario.Generate(cfg)
	if err := ctx.Err(); err != nil {
		return err
	}
	write := func(w io.Writer) error { return scenario.WriteJSONL(w, s.Records) }
	var err error
	if out == "-" {
		err = write(stdout)
	} else {
		err = writeFile(out, write)
	}
	if err != nil {
		return fmt.Errorf("write traffic: %w", err)
	}
	fmt.Fprintf(stderr, "%d records from %s to %s (training ends %s), %d attackers, %d benign identities\n",
		len(s.Records), s.Config.Start.Format("15:04"), s.End.Format("15:04"), s.TrainingEnd.Format("15:04"), len(s.Attackers), len(s.Benign))
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fingerprinter(key, keyFile string) (func(string) string, error) {
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, err
		}
		key = strings.TrimSpace(string(b))
	}
	if key == "" {
		return nil, fmt.Errorf("%w: eval needs -fingerprint-key or -fingerprint-key-file", errUsage)
	}
	raw, err := hex.DecodeString(key)
	if err != nil {
		return nil, fmt.Errorf("fingerprint key: %w", err)
	}
	fp, err := detect.NewFingerprinter(raw)
	if err != nil {
		return nil, err
	}
	return fp.Fingerprint, nil
}

func eval(cfg scenario.Config, attacksPath string, fp func(string) string, asJSON, check bool, stdout, stderr io.Writer) error {
	f, err := os.Open(attacksPath)
	if err != nil {
		return err
	}
	defer f.Close()
	attacks, err := scenario.ReadAttacks(f)
	if err != nil {
		return err
	}
	rep := scenario.Evaluate(scenario.Generate(cfg), attacks, fp)
	if asJSON {
		b, err := rep.JSON()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		fmt.Fprint(stdout, rep.Table())
	}
	short := rep.Shortfalls()
	if cfg.Stealth { // issue 15's goals
		short = rep.MissedGoals(scenario.StealthGoals)
	}
	for _, s := range short {
		fmt.Fprintln(stderr, "goal missed:", s)
	}
	if check && len(short) > 0 {
		return errGoals
	}
	return nil
}
