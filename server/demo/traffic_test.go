package demo

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/server/demo/shop"
)

// The pre-training traffic is answered by the shop itself and stays in
// time order inside its window.
func TestPretrainingRecordsAreOrderedAndReal(t *testing.T) {
	sh := shop.NewShop(1)
	p := Pretraining{Shop: sh, Seed: 1, End: mustTime(t, "2026-11-27T12:00:00Z"), Window: 30 * time.Minute}
	recs := p.Records()
	if len(recs) < 1000 {
		t.Fatalf("%d records in 30 minutes", len(recs))
	}
	if !recs[0].Time.Equal(p.End.Add(-p.Window)) {
		t.Errorf("first record at %s, want the window's start", recs[0].Time)
	}
	users, logins, statuses := map[string]bool{}, 0, map[int]int{}
	for i, r := range recs {
		if i > 0 && r.Time.Before(recs[i-1].Time) || !r.Time.Before(p.End) {
			t.Fatalf("record %d at %s out of order or past the end", i, r.Time)
		}
		if !IsBenignIP(r.ClientIP) {
			t.Fatalf("record %d from %s", i, r.ClientIP)
		}
		users[r.ClientIP] = true
		statuses[r.Status]++
		if strings.HasSuffix(r.Path, "/login") && r.Status == 200 {
			logins++
		}
		if a := r.RequestHeaders["authorization"]; a != "" && strings.Count(a, ".") != 2 {
			t.Fatalf("record %d: token %q is not JWT-shaped", i, a)
		}
	}
	if len(users) < 150 || logins < 100 || statuses[200]+statuses[201] < len(recs)*9/10 {
		t.Fatalf("%d users, %d logins, statuses %v", len(users), logins, statuses)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}
