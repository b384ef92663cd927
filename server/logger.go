package server

import (
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-project/vigil/server/config"
)

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
