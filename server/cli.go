package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-project/vigil/server/config"
)

// Version is the version a build stamps with -ldflags
// "-X github.com/vigil-project/vigil/server.Version=…" (the Dockerfile's
// VERSION build argument). Left "dev" (or stamped empty), vigil version
// reports the module version and VCS revision the Go toolchain recorded
// in the binary.
var Version = "dev"

// versionString is what vigil version prints: the stamped version (not
// "dev"), else
// the main module's version from the build info (v1.2.0 for go install
// …@v1.2.0; a pseudo-version for a build in a git checkout), else "dev";
// then the VCS revision, marked +modified for a build with uncommitted
// changes, when the build info has one.
func versionString(stamped string, bi *debug.BuildInfo, ok bool) string {
	v := stamped
	if v == "dev" {
		v = ""
	}
	if v == "" && ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "dev"
	}
	if !ok {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+modified"
			}
		}
	}
	if rev == "" {
		return v
	}
	return fmt.Sprintf("%s (revision %s%s)", v, rev[:min(len(rev), 12)], modified)
}

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
		fmt.Fprintf(stdout, "vigil %s\n", versionString(Version, bi, ok))
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

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML configuration file (default: the embedded defaults)")
	grpcAddr := fs.String("grpc-addr", "", "gRPC listen address for Envoy (overrides grpc_addr)")
	adminAddr := fs.String("admin-addr", "", "admin HTTP listen address (overrides admin_addr)")
	dataDir := fs.String("data-dir", "", "directory for durable state (overrides data_dir)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (overrides log_level)")
	// The default is the config's: the zero value keeps the flag package
	// from printing a default of its own.
	drainDelay := fs.Duration("drain-delay", 0, "time between NOT_SERVING and closing the listener (overrides shutdown.drain_delay; default: the config's, 5s in the embedded defaults)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "grpc-addr":
			cfg.GRPCAddr = *grpcAddr
		case "admin-addr":
			cfg.AdminAddr = *adminAddr
		case "data-dir":
			cfg.DataDir = *dataDir
		case "log-level":
			cfg.LogLevel = *logLevel
		case "drain-delay":
			cfg.Shutdown.DrainDelay = *drainDelay
		}
	})
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := NewLogger(stderr, cfg)
	s, err := New(cfg, log, Options{})
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

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

// NewLogger builds the process logger from the configuration.
func NewLogger(w io.Writer, cfg *config.Config) zerolog.Logger {
	if cfg.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		level = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(level).With().Timestamp().Str("service", "vigil").Logger()
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
