package replay

import (
	"math"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/server/config"
)

// FuzzReplayLine feeds arbitrary lines to vigil replay's parser and what it
// takes to the engine, as vigil replay does: never a panic, and a line taken
// is a call that can be (a method, a path from the root, a status a response
// can have, byte counts and a duration that are not negative).
func FuzzReplayLine(f *testing.F) {
	for _, tc := range replayLines {
		f.Add([]byte(tc.line))
	}
	cfg := config.Default()
	cfg.Training.Duration, cfg.Training.MinRequests, cfg.Training.MinIdentities = 0, 1, 1
	cfg.DataDir = f.TempDir()
	rt, err := cfg.Runtime()
	if err != nil {
		f.Fatal(err)
	}
	catalog := rt.Catalog
	x, err := rt.NewExtractor()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(x.Close)
	engine, err := rt.NewEngine(config.EngineHooks{Inline: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := parseReplayLine(line)
		if err != nil {
			return
		}
		switch {
		case r.Method == "" || !strings.HasPrefix(r.Path, "/"):
			t.Fatalf("taken without method or path: %+v", r)
		case r.Status != 0 && (r.Status < 100 || r.Status > 599):
			t.Fatalf("taken with status %d", r.Status)
		case r.RequestBytes < 0 || r.ResponseBytes < 0:
			t.Fatalf("taken with negative byte counts: %+v", r)
		case r.DurationMS < 0 || math.IsNaN(r.DurationMS) || math.IsInf(r.DurationMS, 0):
			t.Fatalf("taken with duration %v", r.DurationMS)
		}
		engine.Consume(r.Transaction(catalog, x))
	})
}
