// Package cli is the vigil command line: Main dispatches to one file per
// command (serve, demo, shop, replay, config, version, and the admin API
// commands status, apis, attacks, forensics, block, allow, model). Every
// command reads its flags one way (newFlags, parseFlags or
// parseInterleaved), and the admin API commands call adminapi's client and
// switch between tables and -o json in one place (adminCmd.printJSON).
// Only main.go imports it.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/vigil-project/vigil/server"
)

// ErrUsage marks command-line mistakes; main exits 2 on them.
var ErrUsage = errors.New("usage error")

const usage = `Vigil: machine-learning API threat protection for Envoy.

Usage:
  vigil serve [--config FILE] [--grpc-addr ADDR] [--admin-addr ADDR] [--data-dir DIR] [--log-level LEVEL]
  vigil demo [--front-addr ADDR] [--admin-addr ADDR] [--grpc-addr ADDR] [--no-traffic] [--duration D]
                                  Vigil, a sample API and a front door in one process, pre-trained,
                                  under scripted attacks (vigil demo -h for details)
  vigil shop [--addr ADDR]        the demo's sample API alone (default 127.0.0.1:8080)
  vigil replay --config FILE --input FILE [--out FILE]
                                  run detection on recorded traffic; attacks as JSON lines
  vigil status                    readiness, models in training, attacks in the last hour, decoy hits
  vigil apis                      configured and discovered APIs with their traffic
  vigil attacks [--api A] [--type T] [--since D] [--limit N]
  vigil attacks show ID           detected attacks, explained (vigil attacks -h for details)
  vigil forensics KIND VALUE      what one identity did: IPs, methods, endpoints, APIs, attacks
  vigil block add|rm|ls ...       the block list (vigil block for details)
  vigil allow add|rm|ls ...       the allow list (vigil allow for details)
  vigil model get|set|export|import ...
                                  per-API models on a running Vigil (vigil model for details)
  vigil config default            print the embedded default configuration
  vigil config check FILE         validate a configuration file
  vigil version

Global flags, before the command or after it: --admin-addr ADDR (the admin API the commands
call, default $VIGIL_ADMIN_ADDR, else 127.0.0.1:9001; for serve and demo, the address to listen
on) and -o table|json (the admin API commands' output). VIGIL_ADMIN_TOKEN holds the admin token.

Run 'vigil serve --help' for the flags.
`

// Main runs the vigil command line. It returns when the command is done or
// ctx is cancelled (SIGTERM, SIGINT).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	args, err := globalFlags(args)
	if err != nil {
		fmt.Fprintf(stderr, "vigil: %v\n\n%s", err, usage)
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ErrUsage
	}
	switch args[0] {
	case "serve":
		return serveCmd(ctx, args[1:], stderr)
	case "config":
		return configCmd(args[1:], stdout)
	case "demo":
		return demoCmd(ctx, args[1:], stdout, stderr)
	case "shop":
		return shopCmd(ctx, args[1:], stdout, stderr)
	case "replay":
		return replayCmd(ctx, args[1:], stdout, stderr)
	case "model":
		return modelCmd(ctx, args[1:], stdout, stderr)
	case "status":
		return statusCmd(ctx, args[1:], stdout, stderr)
	case "apis":
		return apisCmd(ctx, args[1:], stdout, stderr)
	case "forensics":
		return forensicsCmd(ctx, args[1:], stdout, stderr)
	case "attacks":
		return attacksCmd(ctx, args[1:], stdout, stderr)
	case "block":
		return listCmd(ctx, "block", "blocklist", args[1:], stdout, stderr)
	case "allow":
		return listCmd(ctx, "allow", "allowlist", args[1:], stdout, stderr)
	case "version", "--version", "-v":
		bi, ok := debug.ReadBuildInfo()
		fmt.Fprintf(stdout, "vigil %s\n", versionString(server.Version, bi, ok))
		return nil
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "vigil: unknown command %q\n\n%s", args[0], usage)
	return ErrUsage
}

// globalFlags moves the flags given before the command (vigil --admin-addr
// ADDR attacks) to the command, which takes them as if given after it: the
// admin API commands take --admin-addr and -o, serve and demo
// --admin-addr (the address they listen on). A flag given again after the
// command wins.
func globalFlags(args []string) ([]string, error) {
	var global []string
	var named []string
	for len(args) > 0 && len(args[0]) > 1 && args[0][0] == '-' && args[0] != "--" {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		if name != "admin-addr" && name != "o" {
			if len(global) == 0 {
				return args, nil // -h, --version, or a mistake the command switch reports
			}
			return nil, fmt.Errorf("unknown global flag %q (before the command: --admin-addr, -o)", args[0])
		}
		n := 1
		if !hasValue {
			if len(args) < 2 {
				return nil, fmt.Errorf("flag needs an argument: %s", args[0])
			}
			n = 2
		}
		global = append(global, args[:n]...)
		named = append(named, name)
		args = args[n:]
	}
	if len(global) == 0 {
		return args, nil
	}
	if len(args) == 0 {
		return nil, errors.New("global flags without a command")
	}
	switch args[0] {
	case "status", "apis", "attacks", "forensics", "block", "allow", "model":
	case "serve", "demo":
		if slices.Contains(named, "o") {
			return nil, fmt.Errorf("-o does not apply to %s", args[0])
		}
	default:
		return nil, fmt.Errorf("%s takes no global flags (--admin-addr and -o are for the admin API commands, serve and demo)", args[0])
	}
	return slices.Concat(args[:1], global, args[1:]), nil
}

// Every command reads its flags the same way: a flag set from newFlags
// (usage text before the flags' defaults, when it has one), parsed by
// parseFlags (flags only) or parseInterleaved (flags among arguments, the
// admin API commands); a mistake is an ErrUsage, -h success.

// newFlags returns a command's flag set, writing to stderr; usage, when not
// empty, is printed before the flags' defaults.
func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if usage != "" {
		fs.Usage = func() {
			fmt.Fprint(stderr, usage)
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses a command's flags; help is set when the command printed
// its help and has nothing more to do. A flag error or a leftover argument
// is a usage error.
func parseFlags(fs *flag.FlagSet, args []string) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	return false, nil
}

// helpIsDone turns the -h request into success.
func helpIsDone(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// parseInterleaved parses the flags of fs found anywhere in args and returns
// the other arguments in order: the flag package alone stops at the first
// non-flag. Everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		// A flag that takes a value takes the next argument, as fs.Parse will.
		if f := fs.Lookup(name); f != nil && !isBoolFlag(f) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if err := fs.Parse(flags); err != nil {
		return nil, err
	}
	return pos, nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
