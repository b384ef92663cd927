package scenario

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/server/replay"
)

// runSuite generates a scenario, replays it through Vigil's engine exactly
// as `vigil replay` does, and scores the attacks raised.
func runSuite(t *testing.T, cfg Config) Report {
	t.Helper()
	s := Generate(cfg)
	// The records are streamed to the replay, not held twice (the full
	// preset's JSON lines alone are about half a gigabyte), and let go of
	// once written: the evaluation needs only the labels.
	records := s.Records
	s.Records = nil
	in, w := io.Pipe()
	go func() {
		w.CloseWithError(WriteJSONL(w, records))
		records = nil
	}()
	defer in.Close()
	vc, err := config.Load("testdata/replay.yaml")
	if err != nil {
		t.Fatal(err)
	}
	vc.DataDir = filepath.Join(t.TempDir(), "data")
	if err := vc.Validate(); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	sum, err := replay.Run(context.Background(), vc, in, &out, &errs)
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

// Seeds. The limits below were set from seeds 1 to 8 (the tuning seeds:
// seed 1 made the README's table, 2 and 3 were looked at while tuning, 4 to
// 8 were measured to set the limits); the suite runs only seeds kept out
// of all that, so that it reports how the engine does on traffic nobody
// tuned it on.
var (
	heldOutFast = []uint64{9, 10}
	heldOutFull = uint64(11)
)

// limits hold the suite to what the engine was observed to do on the
// tuning seeds, with stated headroom (the figures: go test -run
// TestScenarioSuiteFast -v prints each report):
//
//   - Benign identities flagged: 12 of 76,230 over the fast preset of seeds
//     1-8 (0.016 %; 1 to 3 a seed); the limit, 0.045 %, is 2.9 times that:
//     4 of a fast run's ~9,500. Halving every threshold flagged 19.
//   - Every attacker of every type, speed and variant detected, and named
//     with its own type: observed for all 432 attackers of seeds 1-8.
//   - Median time to detect, per type, all attackers and fast ones: 1.5
//     times the largest median of seeds 1-8 (in the comments), so that
//     attackers getting through for twice as long fail.
var limits = Limits{
	MaxBenignFlagged: 0.00045,
	MinVariantRecall: 1,
	MinTypeCorrect:   1,
	MaxMedianTTD: map[string]time.Duration{
		TypeProbing:            270 * time.Second, // largest 2m59s
		TypeExcessiveErrors:    90 * time.Second,  // 59s
		TypeCredentialStuffing: 123 * time.Second, // 1m22s
		TypeStolenToken:        527 * time.Second, // 5m51s
		TypeDataExfiltration:   275 * time.Second, // 3m3s
		TypeExtremeActivity:    18 * time.Second,  // 12s
		TypeBOLAEnumeration:    146 * time.Second, // 1m37s
		TypeMassDeletion:       465 * time.Second, // 5m10s
		TypeOversizedPayload:   6 * time.Second,   // 4s
	},
	MaxMedianTTDFast: map[string]time.Duration{
		TypeProbing:            5100 * time.Millisecond,  // largest 3.4s
		TypeExcessiveErrors:    10050 * time.Millisecond, // 6.7s
		TypeCredentialStuffing: 3450 * time.Millisecond,  // 2.3s
		TypeStolenToken:        22500 * time.Millisecond, // 15s
		TypeDataExfiltration:   20250 * time.Millisecond, // 13.5s
		TypeExtremeActivity:    7200 * time.Millisecond,  // 4.8s
		TypeBOLAEnumeration:    24300 * time.Millisecond, // 16.2s
		TypeMassDeletion:       25650 * time.Millisecond, // 17.1s
		TypeOversizedPayload:   6750 * time.Millisecond,  // 4.5s
	},
}

// eachSeed runs a scenario per held-out seed in a subtest, replayed and
// scored by runSuite, and lists what check finds wrong as errors.
func eachSeed(t *testing.T, seeds []uint64, config func(uint64) Config, check func(t *testing.T, rep Report) []string) {
	t.Helper()
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			// A seed's replay keeps about one core busy: the seeds share
			// the machine's cores (go test -parallel, GOMAXPROCS at most).
			t.Parallel()
			rep := runSuite(t, config(seed))
			if rep.Benign.Identities == 0 || len(rep.Types) != len(AttackTypes()) {
				t.Fatalf("the scenario is empty: %d benign identities, %d types", rep.Benign.Identities, len(rep.Types))
			}
			for _, s := range check(t, rep) {
				t.Errorf("%s", s)
			}
		})
	}
}

// TestScenarioSuiteFast is the CI subset of the labelled scenario suite:
// the fast preset on the held-out seeds, held to the limits above and to
// issue 3's goals.
func TestScenarioSuiteFast(t *testing.T) {
	eachSeed(t, heldOutFast, FastConfig, func(_ *testing.T, rep Report) []string {
		return prefixed("limit passed: ", append(rep.Exceeded(limits), rep.Shortfalls()...))
	})
}

// prefixed puts p before each of ss.
func prefixed(p string, ss []string) []string {
	for i := range ss {
		ss[i] = p + ss[i]
	}
	return ss
}

// TestScenarioSuiteFull is the whole suite (1.4M records) on a held-out
// seed; it runs when VIGIL_SCENARIO_FULL is set, as .ci/run does.
func TestScenarioSuiteFull(t *testing.T) {
	if os.Getenv("VIGIL_SCENARIO_FULL") == "" {
		t.Skip("set VIGIL_SCENARIO_FULL=1 to run the full scenario suite")
	}
	rep := runSuite(t, FullConfig(heldOutFull))
	l := limits
	l.MaxBenignFlagged = fullMaxBenignFlagged
	for _, s := range append(rep.Exceeded(l), rep.Shortfalls()...) {
		t.Errorf("limit passed: %s", s)
	}
}

// fullMaxBenignFlagged is the full preset's limit: seed 1 flagged 7 of
// 93,963 benign identities (0.0075 %; its population has four NAT sites to
// the fast preset's one); 0.02 % is 2.7 times that, 18 of ~94,000.
const fullMaxBenignFlagged = 0.0002

// Seeds of the stealth preset. Tuning may look at seeds 1 to 4 only, and
// with Config.HeldOutVariants off (vigil-scenario -preset stealth
// -held-out-variants=false); seeds 21 to 23, and the held-out variants on
// every seed, are kept out of all tuning, so that TestStealthSuite reports
// how the engine does on traffic and attacks nobody tuned it on.
var (
	stealthTuningSeeds  = []uint64{1, 2, 3, 4}
	stealthHeldOutSeeds = []uint64{21, 22, 23}
)

// TestStealthSuite measures issue 15's goals (StealthGoals) on the stealth
// preset's held-out seeds, held-out variants included: stealthy attackers
// of every type, crawlers and corporate NATs and integrations behind
// shared addresses, login names in bodies only. It logs the full report of
// each seed and fails on every goal missed; it runs when
// VIGIL_SCENARIO_STEALTH is set.
func TestStealthSuite(t *testing.T) {
	if os.Getenv("VIGIL_SCENARIO_STEALTH") == "" {
		t.Skip("set VIGIL_SCENARIO_STEALTH=1 to run the stealth scenario suite")
	}
	if !StealthConfig(stealthHeldOutSeeds[0]).HeldOutVariants {
		t.Fatal("the stealth preset leaves the held-out variants out")
	}
	eachSeed(t, stealthHeldOutSeeds, StealthConfig, func(_ *testing.T, rep Report) []string {
		return prefixed("goal missed: ", rep.MissedGoals(StealthGoals))
	})
}

// stealthLimits hold the stealth suite to what the engine was observed to
// do on the tuning seeds 1-4 (tuning variants only; go run
// ./test/scenario/cmd/vigil-scenario gen|eval -preset stealth
// -held-out-variants=false, and vigil replay, print each report):
//
//   - Benign identities flagged: 0 to 1 of about 10,000 a seed (at most
//     0.01 %); the limit is issue 15's goal, 0.1 %.
//   - Every attacker of every variant detected, but for slow_probe (15 of
//     16: 3 of 4 on seed 4), low_and_slow_cookie (0 of 16: a browser
//     session's hour of calls kept at 1.3 to 1.5 times the busiest
//     person's, under the cookie population's requests_1h Tx of 3 × its
//     99th percentile) and the second held-out set's (tuned on since
//     session 16): cookie_recon_h2 13 of 16 (2 of 4 on seed 4),
//     cron_errors_h2 12 of 16 (0 on seed 4, where the integrations'
//     service accounts set the user names' errors_1h Tx at 21),
//     partner_key_hopping_h2, web_export_h2 and subnet_spread_h2 0 of 16;
//     and the third set's (tuned on since session 17): app_api_guess_h3
//     11 of 16 (2 of 4 on seeds 1 and 2), burst_export_h3 12 (0 on seed
//     1), web_delete_bursts_h3 10 (0 on seed 3), cart_tamper_h3 (seven
//     tampered cart additions an hour from a browser session, against a
//     busiest person's three), lockout_dodge_h3 (8 to 10 failed logins an
//     hour on one account, under login_failures_1h's floor of 10, the
//     usual lockout threshold) and agent_rotation_h3 0.
//     slow_delete (16 of 16 since session 16) keeps its limit of 3 of 4
//     a seed: it stays near deletes_1h's Tx. The variants held out until
//     session 15 (slow_errors_ip, password_spraying, cookie_hopping,
//     low_and_slow_cookie, scattered_walk, just_above_patch) and the _h2
//     and _h3 sets are tuning variants: their shapes were known when the
//     engine was changed. The held-out variants (_h4) are not bounded: no
//     tuning run saw them, and their figures are reported, not held.
//   - Right type for every detected attacker of every variant seen in
//     tuning (observed for all; slow_errors_ip's malformed queries are
//     caught as schema_violation, which its attackers list as also
//     right); checked per variant by the test, the held-out variants left
//     out (MinTypeCorrect 0 here).
//   - Median time to detect fast attackers per type at most 1.5 times the
//     largest median of the tuning seeds, and at least 1 s.
var stealthLimits = Limits{
	MaxBenignFlagged: 0.001,
	MinVariantRecall: 1,
	VariantRecall: map[string]float64{
		"probing/stealth/slow_probe":                   0.75,
		"mass_deletion/stealth/slow_delete":            0.75,
		"extreme_activity/stealth/low_and_slow_cookie": 0,
		// The second held-out set (heldout.go), a tuning set since
		// session 16: per seed as low as observed on seeds 1 to 4.
		"probing/stealth/cookie_recon_h2":             0.5,
		"excessive_errors/stealth/cron_errors_h2":     0,
		"stolen_token/stealth/partner_key_hopping_h2": 0,
		"data_exfiltration/stealth/web_export_h2":     0,
		"extreme_activity/stealth/subnet_spread_h2":   0,
		// The third set (heldout3.go), a tuning set since session 17:
		// per seed as low as observed on seeds 1 to 4.
		"probing/stealth/app_api_guess_h3":             0.5,
		"excessive_errors/stealth/cart_tamper_h3":      0,
		"credential_stuffing/stealth/lockout_dodge_h3": 0,
		"data_exfiltration/stealth/burst_export_h3":    0,
		"extreme_activity/stealth/agent_rotation_h3":   0,
		"mass_deletion/stealth/web_delete_bursts_h3":   0,
		// The fourth held-out set (heldout4.go), written from the threat
		// model only and never tuned on: reported, not bounded.
		"probing/stealth/subnet_scan_h4":                  0,
		"excessive_errors/stealth/partner_key_errors_h4":  0,
		"credential_stuffing/stealth/combo_check_h4":      0,
		"stolen_token/stealth/infostealer_tokens_h4":      0,
		"data_exfiltration/stealth/pooled_export_h4":      0,
		"extreme_activity/stealth/relogin_flood_h4":       0,
		"bola_enumeration/stealth/key_walk_h4":            0,
		"mass_deletion/stealth/subnet_accounts_delete_h4": 0,
		"oversized_payload/stealth/login_overflow_h4":     0,
	},
	MaxMedianTTDFast: map[string]time.Duration{
		TypeProbing:            2100 * time.Millisecond,  // largest 1.4s
		TypeExcessiveErrors:    time.Second,              // 0.26s
		TypeCredentialStuffing: 2625 * time.Millisecond,  // 1.75s
		TypeStolenToken:        18 * time.Second,         // 12s
		TypeDataExfiltration:   80 * time.Second,         // 53.2s
		TypeExtremeActivity:    5535 * time.Millisecond,  // 3.69s
		TypeBOLAEnumeration:    17820 * time.Millisecond, // 11.88s
		TypeMassDeletion:       17835 * time.Millisecond, // 11.89s
		TypeOversizedPayload:   7320 * time.Millisecond,  // 4.88s
	},
}

// TestStealthSuiteLimits runs the stealth preset on its held-out seeds,
// held-out variants included, in every test run (without -race), holding
// it to stealthLimits, every variant seen in tuning to its own type and
// every small scanner to its first 50 requests; TestStealthSuite holds it
// to issue 15's goals.
func TestStealthSuiteLimits(t *testing.T) {
	eachSeed(t, stealthHeldOutSeeds, StealthConfig, func(_ *testing.T, rep Report) []string {
		out := prefixed("limit passed: ", rep.Exceeded(stealthLimits))
		for _, typ := range rep.Types {
			for _, v := range typ.Variants {
				if !v.HeldOut && v.TypeCorrect < v.Detected {
					out = append(out, fmt.Sprintf("%s (%s %s): %d of %d detected named with another type", typ.Type, v.Speed, v.Variant, v.Detected-v.TypeCorrect, v.Detected))
				}
				if v.Variant == "small_scanner" && (v.Detected < v.Attackers || v.MaxRequests > 50) {
					out = append(out, fmt.Sprintf("small scanners: %d of %d caught, the last at its request %d (want all within 50)", v.Detected, v.Attackers, v.MaxRequests))
				}
			}
		}
		return out
	})
}
