package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-project/vigil/test/vigiltest"
)

// TestSensitivityScalesTheExtremeThreshold: with a user-set Tx of 40 for
// not_found_10m, a prober's first attack comes on its 41st distinct 404 at
// sensitivity 1, and on its 81st at sensitivity 0.5 (Tx / sensitivity =
// 80), explained with that Tx (the other probing variables set out of the
// way). Detection runs per identity in call order, so the count at the
// first attack is exact.
func TestSensitivityScalesTheExtremeThreshold(t *testing.T) {
	for _, tc := range []struct {
		sensitivity  float64
		tx, observed float64
	}{
		{1, 40, 41},
		{0.5, 80, 81},
	} {
		t.Run(fmt.Sprintf("sensitivity %v", tc.sensitivity), func(t *testing.T) {
			v := start(t, fmt.Sprintf(`
trusted_hops: 1
training: {duration: 0s, min_requests: 100, min_identities: 10, relearn_interval: 1h}
apis:
  - name: shop
    hosts: [shop.example.com]
    base_path: /shop
    mode: detect
    detection:
      types: {probing: {sensitivity: %v}}
      variables:
        - {name: not_found_10m, kind: ip, mode: user, tn: 10, tx: 40}
        - {name: distinct_failed_paths, kind: ip, mode: user, tn: 10, tx: 100000}
        - {name: distinct_unknown_routes, kind: ip, mode: user, tn: 10, tx: 100000}
        - {name: unknown_route_share, kind: ip, mode: user, tn: 0.5, tx: 100}
        - {name: scanner_paths, kind: ip, mode: user, tn: 10, tx: 100000}
`, tc.sensitivity))
			v.trainShop()
			prober := "198.51.100.77"
			for i := range 100 {
				v.visit(prober, fmt.Sprintf("/shop/nope-%d", i))
			}
			var first struct {
				Type      string
				Variables []struct {
					Name         string
					Observed, Tx float64
				}
			}
			vigiltest.Eventually(t, 10*time.Second, func() error {
				var out struct{ Attacks []json.RawMessage }
				decodeJSON(t, v.MustDo("GET", "/v1/attacks?type=probing", "", 200), &out)
				if len(out.Attacks) == 0 {
					return fmt.Errorf("no probing attack yet")
				}
				return json.Unmarshal(out.Attacks[len(out.Attacks)-1], &first) // oldest last
			})
			for _, x := range first.Variables {
				if x.Name == "not_found_10m" {
					if x.Tx != tc.tx || x.Observed != tc.observed {
						t.Fatalf("first attack at not_found_10m %v with Tx %v, want %v with Tx %v", x.Observed, x.Tx, tc.observed, tc.tx)
					}
					return
				}
			}
			t.Fatalf("the attack is not explained by not_found_10m: %+v", first)
		})
	}
}
