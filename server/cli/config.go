package cli

import (
	"fmt"
	"io"

	"github.com/vigil-project/vigil/server/config"
)

func configCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: vigil config default | vigil config check FILE", ErrUsage)
	}
	switch args[0] {
	case "default":
		_, err := stdout.Write(config.DefaultYAML())
		return err
	case "check":
		if len(args) != 2 {
			return fmt.Errorf("%w: vigil config check FILE", ErrUsage)
		}
		cfg, err := config.Load(args[1])
		if err != nil {
			return err
		}
		if err := cfg.Validate(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: ok (%d APIs)\n", args[1], len(cfg.APIs))
		return nil
	}
	return fmt.Errorf("%w: unknown config command %q", ErrUsage, args[0])
}
