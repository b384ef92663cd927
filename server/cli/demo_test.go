package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/server/demo"
)

// The demo's configuration is a valid Vigil configuration with what the
// scripted attacks and the front door rely on.
func TestDemoConfigIsValid(t *testing.T) {
	cfg := config.Default()
	if err := cfg.Decode(demo.ConfigYAML()); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.TrustedHops != 2 {
		t.Errorf("trusted_hops %d: the front door appends its peer and trusts one hop, so 2", cfg.TrustedHops)
	}
	if cfg.Training.Duration >= demoWindow {
		t.Errorf("training.duration %s: the pre-training window (%s) must satisfy it", cfg.Training.Duration, demoWindow)
	}
	apis := cfg.Catalog().APIs()
	if len(apis) != 1 || apis[0].Name != demoAPI || apis[0].BasePath != demo.BasePath || apis[0].MaxBodyBytes == 0 || apis[0].MaxJSONElements == 0 {
		t.Fatalf("APIs %+v", apis)
	}
	if a := cfg.APIs[0]; len(a.Decoys) == 0 || len(a.LoginPaths) == 0 {
		t.Fatalf("decoys %v, login paths %v", a.Decoys, a.LoginPaths)
	}
}

func TestDemoAndShopUsage(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "--duration", "0s"},
		{"demo", "extra"},
		{"demo", "--no-such-flag"},
		{"demo", "--replicas", "0"},
		{"shop", "extra"},
	} {
		var out, errOut bytes.Buffer
		if err := Main(context.Background(), args, &out, &errOut); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	// Several replicas without shared state would each see a part of an
	// attack: refused, saying why.
	var out, errOut bytes.Buffer
	if err := Main(context.Background(), []string{"demo", "--replicas", "3"}, &out, &errOut); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "--redis") {
		t.Errorf("demo --replicas 3 without --redis: %v, want a usage error naming --redis", err)
	}
	if err := Main(context.Background(), []string{"demo", "-h"}, &out, &errOut); err != nil || !strings.Contains(errOut.String(), "--duration") || !strings.Contains(errOut.String(), "1m0s") {
		t.Fatalf("demo -h: %v\n%s", err, errOut.String())
	}
	Main(context.Background(), []string{"help"}, &out, &errOut)
	if !strings.Contains(out.String(), "vigil demo") || !strings.Contains(out.String(), "vigil shop") {
		t.Fatalf("usage lacks demo and shop:\n%s", out.String())
	}
}
