package server

import (
	"runtime/debug"
	"strings"
	"testing"
)

// TestMemoryLimitFromBudget: New gives the Go runtime a soft memory limit
// of detection.max_memory plus a quarter, and says so in its log.
func TestMemoryLimitFromBudget(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "") // the runtime read it at start; unset for New
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	cfg := testConfig(t)
	cfg.Detection.MaxMemory = 64 << 20
	ts := startServer(t, cfg)
	if got, want := debug.SetMemoryLimit(-1), int64(80<<20); got != want {
		t.Errorf("memory limit %d, want %d (max_memory 64MiB + 25%%)", got, want)
	}
	if logs := ts.logs.String(); !strings.Contains(logs, `"memory_limit":83886080,"source":"detection.max_memory"`) {
		t.Errorf("the memory limit is not logged:\n%s", logs)
	}
}

// TestMemoryLimitGOMEMLIMITWins: with GOMEMLIMIT set, the runtime's limit
// from it stays in effect and the log names it as the source.
func TestMemoryLimitGOMEMLIMITWins(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30) // what the runtime made of it at start
	cfg := testConfig(t)
	cfg.Detection.MaxMemory = 64 << 20
	ts := startServer(t, cfg)
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("memory limit %d, want GOMEMLIMIT's %d", got, 1<<30)
	}
	if logs := ts.logs.String(); !strings.Contains(logs, `"memory_limit":1073741824,"source":"GOMEMLIMIT"`) {
		t.Errorf("GOMEMLIMIT as the source is not logged:\n%s", logs)
	}
}
