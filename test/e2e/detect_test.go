package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/test/vigiltest"
)

// TestDetectionBlocksAProberOnItsNextRequest trains a small API on benign
// traffic, lets a scanner walk paths that do not exist, and checks that it
// is detected, explained, put on the block list, and refused with the
// attack's ID while benign clients go on.
func TestDetectionBlocksAProberOnItsNextRequest(t *testing.T) {
	v := start(t, trainedShop)
	v.trainShop()
	vigiltest.Eventually(t, 5*time.Second, func() error {
		var m struct{ Attacks []json.RawMessage }
		decodeJSON(t, v.MustDo("GET", "/v1/attacks", "", 200), &m)
		if len(m.Attacks) != 0 {
			return fmt.Errorf("benign traffic raised attacks: %s", m.Attacks[0])
		}
		return nil
	})
	prober := "198.51.100.23"
	blocked := v.probeUntilBlocked(t, prober)
	var body struct {
		Reason   string `json:"reason"`
		AttackID string `json:"attack_id"`
	}
	if err := json.Unmarshal(blocked.Body, &body); err != nil || body.Reason != "blocklist" || body.AttackID == "" {
		t.Fatalf("refusal body %s", blocked.Body)
	}
	var attack struct {
		ID, Type, API, Action string
		Identity              struct{ Kind, Value string }
		Variables             []struct {
			Name             string
			Observed, Tn, Tx float64
		}
	}
	decodeJSON(t, v.MustDo("GET", "/v1/attacks/"+body.AttackID, "", 200), &attack)
	if attack.Type != "probing" || attack.API != "shop" || attack.Action != "blocked" || attack.Identity.Value != prober || len(attack.Variables) == 0 {
		t.Fatalf("attack %+v", attack)
	}
	if res := v.visit("10.0.0.3", "/shop/items/1"); res.Status != 200 {
		t.Fatalf("a benign client got %d", res.Status)
	}
	var list struct{ Attacks []struct{ ID string } }
	decodeJSON(t, v.MustDo("GET", "/v1/attacks?type=probing&api=shop", "", 200), &list)
	if len(list.Attacks) != 1 || list.Attacks[0].ID != body.AttackID {
		t.Fatalf("GET /v1/attacks?type=probing: %+v", list)
	}
	v.MustDo("GET", "/v1/attacks?type=nonsense", "", 400)
	if !strings.Contains(v.Logs.String(), `"message":"attack"`) {
		t.Fatal("the attack was not logged")
	}
}

// TestFalsePositiveUnblocksAllowsAndRelaxes marks a detected attack as a
// false positive: the identity is unblocked and soft-allowed at once, the
// thresholds that fired are raised as user values, and the record says so.
func TestFalsePositiveUnblocksAllowsAndRelaxes(t *testing.T) {
	v := start(t, trainedShop)
	v.trainShop()
	tester := "198.51.100.60" // an internal link checker, as it turns out
	var refusal struct {
		AttackID string `json:"attack_id"`
	}
	if err := json.Unmarshal(v.probeUntilBlocked(t, tester).Body, &refusal); err != nil || refusal.AttackID == "" {
		t.Fatalf("refusal without an attack ID: %v", err)
	}
	id := refusal.AttackID
	var fp struct {
		FalsePositive *struct {
			Unblocked    int
			AllowedUntil *time.Time `json:"allowed_until"`
			Relaxed      []struct {
				Name  string
				OldTx float64 `json:"old_tx"`
				NewTx float64 `json:"new_tx"`
			}
		} `json:"false_positive"`
	}
	decodeJSON(t, v.MustDo("POST", "/v1/attacks/"+id+"/false-positive", `{"allow_for":"2h"}`, 200), &fp)
	if fp.FalsePositive == nil || fp.FalsePositive.Unblocked != 1 || fp.FalsePositive.AllowedUntil == nil || len(fp.FalsePositive.Relaxed) == 0 {
		t.Fatalf("false positive: %+v", fp.FalsePositive)
	}
	if res := v.visit(tester, "/shop/items/1"); res.Status != 200 {
		t.Fatalf("still refused after the false positive: %d", res.Status)
	}
	var m modelDoc
	decodeJSON(t, v.MustDo("GET", "/v1/models/shop", "", 200), &m)
	name := fp.FalsePositive.Relaxed[0].Name
	if mode, _, _ := m.variable(name, "ip"); mode != "user" {
		t.Fatalf("%s/ip is in mode %q after the false positive, want user", name, mode)
	}
	if rec := v.MustDo("GET", "/v1/attacks/"+id, "", 200); !strings.Contains(rec, `"false_positive"`) {
		t.Fatalf("the record does not say it was a false positive:\n%s", rec)
	}
	if r := fp.FalsePositive.Relaxed[0]; r.NewTx <= r.OldTx {
		t.Fatalf("threshold not relaxed: %+v", r)
	}
	v.MustDo("POST", "/v1/attacks/nosuch/false-positive", "", 404)
	v.MustDo("POST", "/v1/attacks/"+id+"/false-positive", `{"allow_for":"soon"}`, 400)
}
