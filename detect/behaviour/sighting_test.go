package behaviour

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// TestFloodOfOneCallIdentitiesLeavesTrackedStates: a botnet flood of
// 50,000 one-call IPs, ten times the cap on states, is held as first
// sightings: no tracked state is evicted, a scanner mid-way through its
// probe keeps its count and is detected exactly as early as if there had
// been no flood.
func TestFloodOfOneCallIdentitiesLeavesTrackedStates(t *testing.T) {
	f := newEngineFixture(t, detect.ModeBlock)
	cfg := f.e.cfg
	cfg.MaxStates = 5000
	f.e = NewEngine(cfg)
	f.benign(45*time.Minute, rand.New(rand.NewPCG(1, 2)))
	if len(f.attacks) != 0 {
		t.Fatalf("attacks raised on benign traffic: %+v", f.attacks[0])
	}
	// probe sends misses at 5 a second from ip, paths from the i-th on,
	// and returns after how many calls it was caught (0: not within n).
	probe := func(ip string, from, n int) int {
		for i := from; i < from+n; i++ {
			if i%5 == 0 {
				f.now = f.now.Add(time.Second)
			}
			before := len(f.attacks)
			f.tx(ip, "", "GET", fmt.Sprintf("/shop/%s-%d", []string{"admin", "backup", ".env", "debug", "old"}[i%5], i), 404, 100)
			for _, a := range f.attacks[before:] {
				if a.Type == detect.AttackProbing && a.Identity.Value == ip {
					return i - from + 1
				}
			}
		}
		return 0
	}
	fresh := probe("203.0.113.1", 0, 300)
	if fresh <= 12 {
		t.Fatalf("a scanner without a flood caught after %d calls: the test needs more than 12", fresh)
	}
	f.now = f.now.Add(5 * time.Minute)
	before := f.e.Stats()
	if n := probe("203.0.113.2", 0, 12); n != 0 {
		t.Fatalf("scanner caught after %d calls, before the flood", n)
	}
	const flood = 50_000
	for i := range flood {
		f.tx(fmt.Sprintf("100.%d.%d.%d", i>>16&255, i>>8&255, i&255), "", "GET", fmt.Sprintf("/shop/order/%d", i), 200, 800)
	}
	st := f.e.Stats()
	if st.Evictions != before.Evictions || st.States != [detect.NumKinds]int64{detect.KindIP: before.States[detect.KindIP] + 1, detect.KindToken: before.States[detect.KindToken]} {
		t.Fatalf("the flood of one-call IPs changed the states: before %+v, after %+v", before, st)
	}
	if capacity := int64(len(f.e.shards[0].door.sets) * sightingWays); st.Sightings != capacity {
		t.Fatalf("%d sightings after a flood of %d, table of %d", st.Sightings, flood, capacity)
	}
	if n := probe("203.0.113.2", 12, 300); n != fresh-12 {
		t.Fatalf("after the flood the scanner was caught %d calls later, want %d (%d in all, as without a flood)", n, fresh-12, fresh)
	}
}

// TestSightingsCountedAndPromoted: one-call identities are sightings,
// not states; the second call of each makes it a state.
func TestSightingsCountedAndPromoted(t *testing.T) {
	e := NewEngine(EngineConfig{MaxStates: 1 << 16})
	api := &detect.API{Name: "a", BasePath: "/"}
	now := time.Unix(1_800_000_000, 0)
	call := func(i int) {
		t := &detect.Transaction{API: api, Method: "GET", Path: "/x/1", Status: 200, Start: now, HasRequest: true, UserAgent: "a"}
		t.Identities[detect.KindIP] = fmt.Sprintf("10.0.%d.%d", i>>8, i&255)
		t.Identities[detect.KindToken] = fmt.Sprintf("tok-%d", i)
		e.Consume(t)
	}
	for i := range 100 {
		call(i)
	}
	st := e.Stats()
	if st.Sightings != 200 || st.States != [detect.NumKinds]int64{} {
		t.Fatalf("after 100 one-call clients (IP and token): %+v", st)
	}
	for i := range 100 {
		call(i)
	}
	st = e.Stats()
	if st.Sightings != 0 || st.States[detect.KindIP] != 100 || st.States[detect.KindToken] != 100 {
		t.Fatalf("after their second calls: %+v", st)
	}
	m := e.models["a"]
	tok := e.shards[0].get(stateKey{m, detect.KindToken, "tok-7"})
	if tok == nil || tok.shortSum() != 2 || tok.longSum(cRequests) != 2 || len(tok.clientIPs()) != 1 || tok.clientIPs()[0] != "10.0.0.7" {
		t.Fatalf("token state after two calls: %+v", tok)
	}
}
