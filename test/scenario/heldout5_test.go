package scenario

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// TestHeldOut5Shapes checks what the fifth held-out set's variants claim
// beyond their Under and Over (TestStealthyAttackersStayUnderBenignExtremes
// checks those): the credentials, accounts and addresses each spreads over
// stay within one benign identity's figures in every window, each spreads
// over as many of them as it says, and every variant has StealthAttackers
// attackers.
func TestHeldOut5Shapes(t *testing.T) {
	s := stealthScenario()
	ext := s.Extremes
	records := attackerRecords(s)
	// atMost checks that no identity of c.Kind the attacker used goes
	// above limit in any window of c.
	atMost := func(a Attacker, i int, c Claim, limit float64) {
		t.Helper()
		if hi, _ := claimPeaks(s, records[i], c); hi > limit {
			t.Errorf("%s: %s by %s per %s %s > %s", describe(a), c.Measure, c.Kind, c.Window, human(hi), human(limit))
		}
	}
	// uses counts the identities of kind the attacker used, and checks
	// that they are at least lo and at most hi.
	uses := func(a Attacker, kind string, lo, hi int) {
		t.Helper()
		n := 0
		for _, id := range a.Uses {
			if id.Kind == kind {
				n++
			}
		}
		if n < lo || n > hi {
			t.Errorf("%s: %d identities of kind %s, want %d to %d", describe(a), n, kind, lo, hi)
		}
	}
	seen := map[string]int{}
	for i, a := range s.Attackers {
		if !strings.HasSuffix(a.Variant, "_h5") {
			continue
		}
		seen[a.Variant]++
		if !a.HeldOut || a.Speed != SpeedStealth {
			t.Errorf("%s: held out %v, speed %s", describe(a), a.HeldOut, a.Speed)
		}
		switch a.Variant {
		case "key_route_probe_h5":
			uses(a, KindAPIKey, 1, 1)
			atMost(a, i, Claim{KindAPIKey, tenMinutes, MeasureFailedPaths, false}, ext.Max(KindAPIKey, tenMinutes, MeasureFailedPaths))
			if hi, _ := claimPeaks(s, records[i], Claim{KindAPIKey, time.Hour, MeasureFailedTemplates, false}); hi < 3 {
				t.Errorf("%s: %v failed templates in its hour", describe(a), hi)
			}
		case "shared_address_errors_h5":
			uses(a, KindIP, 1, 1)
			uses(a, KindUsername, 8, 1_000)
			atMost(a, i, Claim{KindIP, time.Minute, MeasureErrors, false}, ext.Max(KindIP, time.Minute, MeasureErrors))
			for _, kind := range []string{KindToken, KindCookie, KindUsername} {
				atMost(a, i, Claim{kind, tenMinutes, MeasureErrors, false}, ext.Max(kind, tenMinutes, MeasureErrors))
				atMost(a, i, Claim{kind, time.Hour, MeasureErrors, false}, ext.PersonMax(kind, time.Hour, MeasureErrors))
			}
		case "cookie_jar_stuffing_h5":
			uses(a, KindCookie, 1, 1)
			uses(a, KindIP, 50, 1_000)
			atMost(a, i, Claim{KindIP, time.Hour, MeasureFailedLogins, false}, ext.PersonMax(KindIP, time.Hour, MeasureFailedLogins))
			atMost(a, i, Claim{KindIP, time.Hour, MeasureLoginNames, false}, ext.PersonMax(KindIP, time.Hour, MeasureLoginNames))
		case "token_replay_farm_h5":
			if len(a.Members) < 4 {
				t.Errorf("%s: %d tokens", describe(a), len(a.Members))
			}
			for _, m := range a.Members {
				if m.Kind != KindToken {
					t.Errorf("%s: member %s", describe(a), m)
				}
			}
			atMost(a, i, Claim{KindToken, time.Hour, MeasureAddresses, false}, 2)
			// Every token is used from the farm's address and one other.
			from := map[string]map[string]bool{}
			for _, r := range records[i] {
				tok, _ := strings.CutPrefix(r.RequestHeaders[HeaderToken], "Bearer ")
				if from[tok] == nil {
					from[tok] = map[string]bool{}
				}
				from[tok][r.ClientIP] = true
			}
			for _, m := range a.Members {
				if ips := from[m.Raw]; len(ips) != 2 || !ips[a.Identity.Raw] {
					t.Errorf("%s: token %s used from %v", describe(a), redact(m.Raw), ips)
				}
			}
		case "session_churn_export_h5":
			uses(a, KindToken, 5, 1_000)
			atMost(a, i, Claim{KindToken, time.Hour, MeasureResponseBytes, false}, ext.PersonMax(KindToken, time.Hour, MeasureResponseBytes))
			atMost(a, i, Claim{KindToken, time.Minute, MeasureResponseBytes, false}, ext.Max(KindToken, time.Minute, MeasureResponseBytes))
			atMost(a, i, Claim{KindUsername, time.Minute, MeasureResponseBytes, false}, ext.Max(KindUsername, time.Minute, MeasureResponseBytes))
		case "key_scrape_h5":
			uses(a, KindAPIKey, 1, 1)
			atMost(a, i, Claim{KindAPIKey, tenMinutes, MeasureCalls, false}, ext.Max(KindAPIKey, tenMinutes, MeasureCalls))
			atMost(a, i, Claim{KindIP, time.Minute, MeasureCalls, false}, ext.Max(KindIP, time.Minute, MeasureCalls))
		case "account_pool_walk_h5":
			uses(a, KindIP, 1, 1)
			uses(a, KindToken, 10, 1_000)
			atMost(a, i, Claim{KindToken, tenMinutes, MeasureOrderIDs, false}, ext.Max(KindToken, tenMinutes, MeasureOrderIDs))
			atMost(a, i, Claim{KindToken, time.Hour, MeasureOrderIDs, false}, ext.PersonMax(KindToken, time.Hour, MeasureOrderIDs))
			atMost(a, i, Claim{KindIP, time.Minute, MeasureOrderIDs, false}, ext.Max(KindIP, time.Minute, MeasureOrderIDs))
		case "multi_device_delete_h5":
			uses(a, KindUsername, 1, 1)
			uses(a, KindToken, 4, 1_000)
			atMost(a, i, Claim{KindToken, tenMinutes, MeasureDeletes, false}, ext.Max(KindToken, tenMinutes, MeasureDeletes))
			atMost(a, i, Claim{KindToken, time.Hour, MeasureDeletes, false}, ext.PersonMax(KindToken, time.Hour, MeasureDeletes))
			atMost(a, i, Claim{KindUsername, time.Minute, MeasureDeletes, false}, ext.Max(KindUsername, time.Minute, MeasureDeletes))
			atMost(a, i, Claim{KindUsername, tenMinutes, MeasureAddresses, false}, ext.Max(KindUsername, tenMinutes, MeasureAddresses))
		case "session_spread_overfill_h5":
			uses(a, KindUsername, 1, 1)
			uses(a, KindToken, 5, 1_000)
			// One oversized body per token, above the largest benign
			// one of its endpoint (the shared test checks at most twice).
			big := map[string]int{}
			for _, r := range records[i] {
				path, _, _ := strings.Cut(r.Path, "?")
				if r.RequestBytes == 0 || path == LoginPath {
					continue
				}
				if r.RequestBytes <= ext.MaxBody(r.Method, detect.TemplatePath(path)) {
					t.Errorf("%s: a body of %d bytes on %s %s", describe(a), r.RequestBytes, r.Method, path)
				}
				big[r.RequestHeaders[HeaderToken]]++
			}
			if len(big) < 5 {
				t.Errorf("%s: %d oversized bodies", describe(a), len(big))
			}
			for tok, n := range big {
				if n > 1 {
					t.Errorf("%s: %d oversized bodies with %s", describe(a), n, redact(tok))
				}
			}
		}
	}
	for _, v := range heldOutVariants5() {
		if !v.HeldOut || !strings.HasSuffix(v.Name, "_h5") {
			t.Errorf("%s: held out %v", v.Name, v.HeldOut)
		}
		if seen[v.Name] != s.Config.StealthAttackers {
			t.Errorf("%s: %d attackers, want %d", v.Name, seen[v.Name], s.Config.StealthAttackers)
		}
	}
	if got, want := len(heldOutVariants5()), len(AttackTypes()); got != want {
		t.Errorf("%d _h5 variants, want one per type (%d)", got, want)
	}
}

// TestHeldOut5Deterministic: with the next held-out set, the same seed
// gives the same traffic, every _h5 variant in it, and leaving the set out
// leaves the benign identities as they were and every other attacker.
func TestHeldOut5Deterministic(t *testing.T) {
	t.Parallel()
	cfg := tinyStealth(43)
	cfg.NextHeldOut = true
	s1, s2 := Generate(cfg), Generate(cfg)
	if !bytes.Equal(jsonl(t, s1), jsonl(t, s2)) {
		t.Fatal("the same seed gave different traffic")
	}
	n := 0
	for _, a := range s1.Attackers {
		if strings.HasSuffix(a.Variant, "_h5") {
			n++
		}
	}
	if n != len(heldOutVariants5()) {
		t.Errorf("%d _h5 attackers, want %d", n, len(heldOutVariants5()))
	}
	cfg.NextHeldOut = false
	without := Generate(cfg)
	if !slices.Equal(without.Benign, s1.Benign) || len(without.Attackers) != len(s1.Attackers)-n {
		t.Errorf("without the next held-out set: %d benign identities and %d attackers, with it %d and %d (%d of them _h5)", len(without.Benign), len(without.Attackers), len(s1.Benign), len(s1.Attackers), n)
	}
}
