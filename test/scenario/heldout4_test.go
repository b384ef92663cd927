package scenario

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// TestHeldOut4Shapes checks what the fourth held-out set's variants claim
// beyond their Under and Over (TestStealthyAttackersStayUnderBenignExtremes
// checks those): the credentials and addresses each spreads over stay
// within one benign identity's figures, and the login bodies of
// login_overflow_h4 (which the shared test skips, as logins) are above
// the largest benign one and at most twice it.
func TestHeldOut4Shapes(t *testing.T) {
	s := stealthScenario()
	ext := s.Extremes
	records := attackerRecords(s)
	// at most checks that no identity of c.Kind the attacker used goes
	// above limit in any window of c.
	atMost := func(a Attacker, i int, c Claim, limit float64) {
		t.Helper()
		if hi, _ := claimPeaks(s, records[i], c); hi > limit {
			t.Errorf("%s: %s by %s per %s %s > %s", describe(a), c.Measure, c.Kind, c.Window, human(hi), human(limit))
		}
	}
	seen := map[string]int{}
	for i, a := range s.Attackers {
		if !strings.HasSuffix(a.Variant, "_h4") {
			continue
		}
		seen[a.Variant]++
		if !a.HeldOut || a.Speed != SpeedStealth {
			t.Errorf("%s: held out %v, speed %s", describe(a), a.HeldOut, a.Speed)
		}
		switch a.Variant {
		case "subnet_scan_h4":
			if len(a.Members) < 8 {
				t.Errorf("%s: %d addresses", describe(a), len(a.Members))
			}
		case "combo_check_h4":
			atMost(a, i, Claim{KindIP, tenMinutes, MeasureFailedLogins, false}, ext.Max(KindIP, tenMinutes, MeasureFailedLogins))
		case "infostealer_tokens_h4":
			atMost(a, i, Claim{KindToken, time.Hour, MeasureAddresses, false}, 1)
		case "pooled_export_h4":
			atMost(a, i, Claim{KindToken, time.Hour, MeasureResponseBytes, false}, ext.PersonMax(KindToken, time.Hour, MeasureResponseBytes))
			atMost(a, i, Claim{KindUsername, time.Hour, MeasureResponseBytes, false}, ext.PersonMax(KindUsername, time.Hour, MeasureResponseBytes))
		case "relogin_flood_h4":
			atMost(a, i, Claim{KindToken, time.Hour, MeasureCalls, false}, ext.PersonMax(KindToken, time.Hour, MeasureCalls))
			atMost(a, i, Claim{KindToken, time.Minute, MeasureCalls, false}, ext.Max(KindToken, time.Minute, MeasureCalls))
			atMost(a, i, Claim{KindUsername, tenMinutes, MeasureAddresses, false}, ext.Max(KindUsername, tenMinutes, MeasureAddresses))
		case "subnet_accounts_delete_h4":
			if len(a.Members) < 8 {
				t.Errorf("%s: %d addresses", describe(a), len(a.Members))
			}
			atMost(a, i, Claim{KindToken, time.Hour, MeasureDeletes, false}, ext.PersonMax(KindToken, time.Hour, MeasureDeletes))
			atMost(a, i, Claim{KindCookie, time.Hour, MeasureDeletes, false}, ext.PersonMax(KindCookie, time.Hour, MeasureDeletes))
		case "login_overflow_h4":
			b := ext.MaxBody("POST", detect.TemplatePath(LoginPath))
			n := 0
			for _, r := range records[i] {
				if r.Path != LoginPath {
					continue
				}
				n++
				if r.RequestBytes != int64(len(r.RequestBody)) || r.RequestBytes <= b || r.RequestBytes > 2*b {
					t.Errorf("%s: a login body of %d bytes (%d recorded), the largest benign one is %d", describe(a), len(r.RequestBody), r.RequestBytes, b)
				}
			}
			if n < 5 {
				t.Errorf("%s: %d logins", describe(a), n)
			}
		}
	}
	for _, v := range heldOutVariants4() {
		if seen[v.Name] != s.Config.StealthAttackers {
			t.Errorf("%s: %d attackers, want %d", v.Name, seen[v.Name], s.Config.StealthAttackers)
		}
	}
}
