package scenario

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server"
)

// runSuite generates a scenario, replays it through Vigil's engine exactly
// as `vigil replay` does, and scores the attacks raised.
func runSuite(t *testing.T, cfg Config) Report {
	t.Helper()
	s := Generate(cfg)
	var in bytes.Buffer
	if err := WriteJSONL(&in, s.Records); err != nil {
		t.Fatal(err)
	}
	vc, err := server.LoadConfig("testdata/replay.yaml")
	if err != nil {
		t.Fatal(err)
	}
	vc.DataDir = filepath.Join(t.TempDir(), "data")
	if err := vc.Validate(); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	sum, err := server.Replay(context.Background(), vc, &in, &out, &errs)
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, errs.String())
	}
	if sum.Malformed != 0 {
		t.Fatalf("%d malformed lines:\n%s", sum.Malformed, errs.String())
	}
	attacks, err := ReadAttacks(&out)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := hex.DecodeString(vc.FingerprintKey)
	fp, err := detect.NewFingerprinter(key)
	if err != nil {
		t.Fatal(err)
	}
	rep := Evaluate(s, attacks, fp.Fingerprint)
	var tbl bytes.Buffer
	sum.Table(&tbl)
	t.Logf("replay summary:\n%s\n%s", tbl.String(), rep.Table())
	if path := os.Getenv("VIGIL_SCENARIO_REPORT"); path != "" {
		if j, err := rep.JSON(); err == nil {
			os.WriteFile(path, j, 0o644)
		}
	}
	return rep
}

// TestScenarioSuiteFast is the CI subset of the labelled scenario suite.
// Issue 3's goals: recall ≥ 0.95 per type with the right type for ≥ 90 %,
// benign identities flagged ≤ 0.5 %, median time to detect ≤ 60 s for fast
// attacks. The false-positive goal is asserted; until every detection goal
// is met, per-type recall is held to the floors reached so far, so that no
// change makes detection worse unnoticed, and Shortfalls lists what is left.
func TestScenarioSuiteFast(t *testing.T) {
	rep := runSuite(t, FastConfig(1))
	if rep.Benign.Identities == 0 || rep.Benign.Rate > 0.005 {
		t.Errorf("benign identities flagged: %d of %d (goal ≤ 0.5%%)", rep.Benign.Flagged, rep.Benign.Identities)
	}
	floors := map[string]float64{
		"probing": 0.8, "excessive_errors": 0.95, "credential_stuffing": 0.95, "stolen_token": 0.5,
		"data_exfiltration": 0.5, "extreme_activity": 0.8, "bola_enumeration": 0.95, "mass_deletion": 0.95,
		"oversized_payload": 0.6,
	}
	for _, tr := range rep.Types {
		if floor, ok := floors[tr.Type]; ok && tr.Recall < floor {
			t.Errorf("%s: recall %.3f fell below %.2f", tr.Type, tr.Recall, floor)
		}
	}
	for _, s := range rep.Shortfalls() {
		t.Logf("goal not met yet: %s", s)
	}
}
