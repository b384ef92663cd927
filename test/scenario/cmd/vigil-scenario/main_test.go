package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/test/scenario"
)

const testKey = "5669676c2073636e656e6172696f20746573742066696e6765727072696e7421"

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"serve"},
		{"gen", "-preset", "huge"},
		{"gen", "-types", "probing,nope"},
		{"gen", "-intensity", "0"},
		{"eval", "-fingerprint-key", testKey},
		{"eval", "-attacks", "x.jsonl"},
	} {
		var out, errb bytes.Buffer
		if err := Main(context.Background(), args, &out, &errb); !errors.Is(err, errUsage) {
			t.Errorf("%q: err %v, want a usage error", args, err)
		}
	}
}

// TestStealthPreset: -preset stealth is StealthConfig, and
// -held-out-variants=false (tuning runs) leaves its held-out variants out,
// the next held-out set with them; -next-held-out adds that set.
func TestStealthPreset(t *testing.T) {
	for _, heldOut := range []bool{true, false} {
		for _, next := range []bool{true, false} {
			cfg, err := config("stealth", 21, 1, "", heldOut, next)
			want := scenario.StealthConfig(21)
			if err != nil || !cfg.Stealth || cfg.HeldOutVariants != heldOut || cfg.NextHeldOut != (heldOut && next) ||
				cfg.Crawlers != want.Crawlers || cfg.StealthAttackers != want.StealthAttackers {
				t.Errorf("-held-out-variants=%v -next-held-out=%v: %+v (%v)", heldOut, next, cfg, err)
			}
		}
	}
}

// TestEval scores a file naming one attacker with the fingerprint of the
// test key, and fails -check since every other attacker is missed.
func TestEval(t *testing.T) {
	cfg := scenario.FastConfig(1)
	cfg.Types = []string{scenario.TypeStolenToken}
	s := scenario.Generate(cfg)
	key, _ := os.ReadFile(filepath.Join("..", "..", "testdata", "replay.yaml"))
	if !strings.Contains(string(key), testKey) {
		t.Fatal("testdata/replay.yaml no longer holds the test key")
	}
	raw, _ := hex.DecodeString(testKey)
	fp, err := detect.NewFingerprinter(raw)
	if err != nil {
		t.Fatal(err)
	}
	a := s.Attackers[0]
	line := `{"type":"stolen_token","identity":{"kind":"` + a.Identity.Kind + `","value":"` + fp.Fingerprint(a.Identity.Raw) +
		`"},"detected_at":"` + a.Start.Add(3*time.Second).Format(time.RFC3339Nano) + `"}` + "\n"
	path := filepath.Join(t.TempDir(), "attacks.jsonl")
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	err = Main(context.Background(), []string{"eval", "-types", "stolen_token", "-attacks", path, "-fingerprint-key", testKey, "-check"}, &out, &errb)
	if !errors.Is(err, errGoals) {
		t.Errorf("err %v, want goals missed", err)
	}
	var row []string
	for line := range strings.Lines(out.String()) {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "stolen_token" {
			row = f
		}
	}
	if want := "stolen_token 6 1 0.167 1.000 3s 3s"; strings.Join(row, " ") != want || !strings.Contains(errb.String(), "goal missed: stolen_token: recall") {
		t.Errorf("want row %q; stdout:\n%s\nstderr:\n%s", want, out.String(), errb.String())
	}
}
