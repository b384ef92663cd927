package cli

import (
	"context"
	"flag"
	"io"

	"github.com/vigil-project/vigil/server"
	"github.com/vigil-project/vigil/server/config"
)

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("vigil serve", "", stderr)
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
	log := server.NewLogger(stderr, cfg)
	s, err := server.New(cfg, log, server.Options{})
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
