package behaviour

import (
	"fmt"
	"github.com/vigil-project/vigil/detect"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// engineFixture trains an engine on benign traffic of users with tokens,
// then lets a test add attackers.
type engineFixture struct {
	t       *testing.T
	e       *Engine
	api     *detect.API
	now     time.Time
	blocked []detect.Entry
	attacks []*detect.Attack
	fp      *detect.Fingerprinter
}

func newEngineFixture(t *testing.T, mode detect.Mode) *engineFixture {
	fp, _ := detect.NewFingerprinter(make([]byte, 32))
	f := &engineFixture{t: t, fp: fp, now: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC),
		api: &detect.API{Name: "shop", BasePath: "/shop", Mode: mode}}
	f.e = NewEngine(EngineConfig{
		Training: TrainingConfig{Duration: 30 * time.Minute, MinRequests: 1000, MinIdentities: 20, RelearnInterval: 10 * time.Minute},
		BlockTTL: time.Hour,
		Block:    func(e detect.Entry) { f.blocked = append(f.blocked, e) },
		OnAttack: func(a *detect.Attack) { f.attacks = append(f.attacks, a) },
	})
	return f
}

// fixtureCall is one call a fixture makes at its now: the identities it
// carries (the token fingerprinted; "" for none) and what it asks and gets.
type fixtureCall struct {
	ip, token, user, agent string
	method, path           string
	status                 int
	respBytes              int64
}

func (f *engineFixture) do(c fixtureCall) {
	t := &detect.Transaction{API: f.api, Host: "shop.example.com", Method: c.method, Path: c.path, Status: c.status,
		ResponseBytes: c.respBytes, Start: f.now, HasRequest: true, Complete: true, UserAgent: c.agent}
	t.Identities[detect.KindIP] = c.ip
	if c.token != "" {
		t.Identities[detect.KindToken] = f.fp.Fingerprint(c.token)
	}
	t.Identities[detect.KindUsername] = c.user
	f.e.Consume(t)
}

func (f *engineFixture) tx(ip, token, method, path string, status int, respBytes int64) {
	f.do(fixtureCall{ip: ip, token: token, agent: "app/1.0", method: method, path: path, status: status, respBytes: respBytes})
}

// benign runs 60 users for d: each makes a call every 5 to 60 seconds,
// mostly reads of their own orders, a 404 now and then.
func (f *engineFixture) benign(d time.Duration, rng *rand.Rand) {
	type user struct {
		ip, token string
		next      time.Time
	}
	var users []*user
	for i := range 60 {
		users = append(users, &user{ip: fmt.Sprintf("10.1.0.%d", i), token: fmt.Sprintf("tok-%d", i), next: f.now.Add(time.Duration(rng.IntN(60)) * time.Second)})
	}
	end := f.now.Add(d)
	for f.now.Before(end) {
		f.now = f.now.Add(time.Second)
		for i, u := range users {
			if u.next.After(f.now) {
				continue
			}
			status := 200
			if rng.IntN(50) == 0 {
				status = 404
			}
			f.tx(u.ip, u.token, "GET", fmt.Sprintf("/shop/order/%d", 1000+i*10+rng.IntN(5)), status, 800)
			u.next = f.now.Add(time.Duration(5+rng.IntN(55)) * time.Second)
		}
	}
}

func TestEngineLearnsThenCatchesProbingAndBlocks(t *testing.T) {
	f := newEngineFixture(t, detect.ModeBlock)
	rng := rand.New(rand.NewPCG(1, 2))
	f.benign(45*time.Minute, rng)
	if len(f.attacks) != 0 {
		t.Fatalf("attacks raised on benign traffic: %+v", f.attacks[0])
	}
	st := f.e.Models()
	if len(st) != 1 || st[0].State != "ready" {
		t.Fatalf("model not ready after training: %+v", st)
	}
	// A scanner: 5 requests a second to paths that do not exist.
	start := f.now
	for i := range 300 {
		if i%5 == 0 {
			f.now = f.now.Add(time.Second)
		}
		f.tx("203.0.113.66", "", "GET", fmt.Sprintf("/shop/%s-%d", []string{"admin", "backup", ".env", "debug", "old"}[i%5], i), 404, 100)
	}
	var probing *detect.Attack
	for _, a := range f.attacks {
		if a.Type == detect.AttackProbing && a.Identity.Value == "203.0.113.66" {
			probing = a
		}
	}
	if probing == nil {
		t.Fatalf("probing not detected; attacks: %v", f.attacks)
	}
	// The probe's i-th call (from 0) comes i/5 + 1 seconds in. Benign
	// users leave not_found_10m's Tx at its floor, 25: the 26th miss
	// (6 s in) passes it, if distinct_failed_paths (floor 15) has not
	// already.
	if ttd := probing.DetectedAt.Sub(start); ttd > 6*time.Second {
		t.Fatalf("detected after %s, want within 6s (26 calls): %+v", ttd, probing.Variables)
	}
	blocked := false
	for _, b := range f.blocked {
		blocked = blocked || b.AttackID == probing.ID && b.Kind == detect.KindIP && b.Value == "203.0.113.66"
	}
	if probing.Action != detect.ActionBlocked || !blocked {
		t.Fatalf("not blocked: %+v %+v", probing, f.blocked)
	}
	explained := false
	for _, v := range probing.Variables {
		explained = explained || v.Observed > v.Tx && v.DeviationPct > 0
	}
	if !explained {
		t.Fatalf("no variable explains the attack: %+v", probing.Variables)
	}
	for _, a := range f.attacks {
		if a.Identity.Value != "203.0.113.66" {
			t.Fatalf("a benign identity was flagged: %+v", a)
		}
	}
	// One record per attack, not per request.
	n := 0
	for _, a := range f.attacks {
		if a.Type == detect.AttackProbing {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d probing records for one attack", n)
	}
}

func TestEngineRaisesNothingWhileLearning(t *testing.T) {
	f := newEngineFixture(t, detect.ModeBlock)
	for i := range 500 {
		f.now = f.now.Add(100 * time.Millisecond)
		f.tx("203.0.113.7", "", "GET", fmt.Sprintf("/shop/nope-%d", i), 404, 10)
	}
	if len(f.attacks) != 0 {
		t.Fatalf("attack raised while learning: %+v", f.attacks[0])
	}
	if st := f.e.Models(); st[0].State != "learning" || st[0].WouldBeDetections == 0 {
		t.Fatalf("status %+v", st[0])
	}
}

// TestEngineForgetsLeastRecentlySeenPastTheCap: past MaxStates the state
// seen longest ago goes, not the oldest created nor a random one.
func TestEngineForgetsLeastRecentlySeenPastTheCap(t *testing.T) {
	e := NewEngine(EngineConfig{MaxStates: 1000})
	api := &detect.API{Name: "a", BasePath: "/"}
	now := time.Unix(1_800_000_000, 0)
	ip := func(i int) string { return fmt.Sprintf("10.0.%d.%d", i>>8, i&255) }
	see := func(i int) {
		// Two calls: a first call alone is a sighting, not a state.
		now = now.Add(time.Second)
		for range 2 {
			t := &detect.Transaction{API: api, Method: "GET", Path: "/x", Status: 200, Start: now, HasRequest: true}
			t.Identities[detect.KindIP] = ip(i)
			e.Consume(t)
		}
	}
	for i := range 1000 {
		see(i) // 0 … 999, in that order: full
	}
	for i := range 100 {
		see(i) // 0 … 99 again: now the most recently seen
	}
	for i := 1000; i < 1200; i++ {
		see(i) // 200 new ones push out the 200 seen longest ago: 100 … 299
	}
	if n := e.shards[0].numStates(); n != 1000 {
		t.Fatalf("%d states kept, cap 1000", n)
	}
	m := e.models["a"]
	for i := range 1200 {
		kept := e.shards[0].get(stateKey{m, detect.KindIP, ip(i)}) != nil
		if forgotten := i >= 100 && i < 300; kept == forgotten {
			t.Fatalf("%s (seen at step %d) kept %v", ip(i), i, kept)
		}
	}
	// The list agrees with the map: newest first, 1199 down to 1000, then
	// 99 … 0, then 999 … 300.
	want := []int{}
	for i := 1199; i >= 1000; i-- {
		want = append(want, i)
	}
	for i := 99; i >= 0; i-- {
		want = append(want, i)
	}
	for i := 999; i >= 300; i-- {
		want = append(want, i)
	}
	n := 0
	for st := e.shards[0].head; st != nil; st = st.next {
		if n >= len(want) || st.id != ip(want[n]) {
			t.Fatalf("recency list position %d is %s, want %s", n, st.id, ip(want[min(n, len(want)-1)]))
		}
		n++
	}
	if n != len(want) {
		t.Fatalf("recency list holds %d states, want %d", n, len(want))
	}
}

// BenchmarkEngine measures the pipeline's detection cost per transaction,
// inline, with 100,000 identities (the goal is 50,000 transactions a
// second on one core: 20 µs each).
func BenchmarkEngine(b *testing.B) {
	fp, _ := detect.NewFingerprinter(make([]byte, 32))
	e := NewEngine(EngineConfig{Training: TrainingConfig{Duration: time.Minute, MinRequests: 1000, MinIdentities: 10}})
	api := &detect.API{Name: "shop", BasePath: "/shop", Mode: detect.ModeBlock}
	txs := make([]*detect.Transaction, 100000)
	for i := range txs {
		t := &detect.Transaction{API: api, Host: "shop.example.com", Method: "GET", Path: fmt.Sprintf("/shop/order/%d", i%5000),
			Status: 200, ResponseBytes: 700, HasRequest: true, Complete: true, UserAgent: "app"}
		t.Identities[detect.KindIP] = fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		t.Identities[detect.KindToken] = fp.Fingerprint(fmt.Sprintf("tok-%d", i))
		txs[i] = t
	}
	now := time.Unix(1_800_000_000, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		t := txs[i%len(txs)]
		t.Start = now.Add(time.Duration(i) * 100 * time.Microsecond) // 10,000 transactions a second of traffic time
		e.Consume(t)
	}
}

// BenchmarkEngineMemory reports the heap held per tracked (API, identity)
// state, for 200,000 IP identities each reading a few objects (goal: at
// most 1 KiB on average).
func BenchmarkEngineMemory(b *testing.B) {
	for range b.N {
		api := &detect.API{Name: "shop", BasePath: "/shop", Mode: detect.ModeBlock}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		e := NewEngine(EngineConfig{MaxStates: 1 << 21})
		now := time.Unix(1_800_000_000, 0)
		const n = 200000
		for i := range n {
			for j := range 3 {
				t := &detect.Transaction{API: api, Method: "GET", Path: fmt.Sprintf("/shop/order/%d", i+j), Status: 200, ResponseBytes: 500,
					HasRequest: true, Start: now.Add(time.Duration(i) * time.Millisecond)}
				t.Identities[detect.KindIP] = fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
				e.Consume(t)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/state")
		runtime.KeepAlive(e)
	}
}

// TestEngineBlockTTLPerTypeAndRepeatOffenders: a block lasts its type's
// TTL (probing 24h here, the others block_ttl, 1h), doubled for each
// earlier attack the identity was blocked for, at most 24h.
func TestEngineBlockTTLPerTypeAndRepeatOffenders(t *testing.T) {
	f := newEngineFixture(t, detect.ModeBlock)
	f.e.cfg.TypeTTL = map[detect.AttackType]time.Duration{detect.AttackProbing: 24 * time.Hour}
	f.benign(45*time.Minute, rand.New(rand.NewPCG(5, 6)))
	scan := func() {
		for i := range 300 {
			if i%5 == 0 {
				f.now = f.now.Add(time.Second)
			}
			f.tx("203.0.113.80", "", "GET", fmt.Sprintf("/shop/nothing-%d", i), 404, 100)
		}
	}
	scan() // 5 misses a second: probing, then extreme_activity (300 a minute)
	f.now = f.now.Add(25 * time.Hour)
	scan() // the same again once every block has expired
	want := []struct {
		typ    detect.AttackType
		repeat int
		ttl    time.Duration
	}{
		{detect.AttackProbing, 0, 24 * time.Hour},
		{detect.AttackExtremeActivity, 1, 2 * time.Hour}, // 1h × 2
		{detect.AttackProbing, 2, 24 * time.Hour},        // 24h × 4, at most 24h
		{detect.AttackExtremeActivity, 3, 8 * time.Hour}, // 1h × 8
	}
	if len(f.blocked) != len(want) {
		t.Fatalf("%d blocks, want %d: %+v", len(f.blocked), len(want), f.blocked)
	}
	for i, b := range f.blocked {
		at, ok := f.e.Store().Get(b.AttackID)
		if !ok {
			t.Fatalf("block entry without its attack: %+v", b)
		}
		w := want[i]
		if got := b.ExpiresAt.Sub(b.CreatedAt); at.Type != w.typ || at.Repeat != w.repeat || got != w.ttl {
			t.Errorf("block %d: %s (repeat %d) for %s, want %s (repeat %d) for %s", i, at.Type, at.Repeat, got, w.typ, w.repeat, w.ttl)
		}
	}
}

// TestEngineTrainingIsRobustToHiddenAttackers hides two scanners in the
// training traffic: the learned thresholds stay near the benign ones, so a
// scanner after training is still caught.
func TestEngineTrainingIsRobustToHiddenAttackers(t *testing.T) {
	f := newEngineFixture(t, detect.ModeBlock)
	rng := rand.New(rand.NewPCG(7, 8))
	// Benign traffic with two scanners mixed in during training.
	for round := range 3 {
		f.benign(10*time.Minute, rng)
		for i := range 200 {
			if i%5 == 0 {
				f.now = f.now.Add(time.Second)
			}
			f.tx(fmt.Sprintf("198.51.100.%d", round%2), "", "GET", fmt.Sprintf("/shop/hidden-%d-%d", round, i), 404, 100)
		}
	}
	f.benign(20*time.Minute, rng)
	doc, ok := f.e.Model("shop")
	if !ok || doc.Status.State != "ready" {
		t.Fatalf("model %+v", doc)
	}
	for _, v := range doc.Variables {
		if v.Name == "not_found_10m" && v.Kind == "ip" && v.Tx > 50 {
			t.Fatalf("hidden scanners inflated not_found_10m's Tx to %v", v.Tx)
		}
	}
	before := len(f.attacks)
	for i := range 300 {
		if i%5 == 0 {
			f.now = f.now.Add(time.Second)
		}
		f.tx("203.0.113.99", "", "GET", fmt.Sprintf("/shop/after-%d", i), 404, 100)
	}
	caught := false
	for _, a := range f.attacks[before:] {
		caught = caught || a.Type == detect.AttackProbing && a.Identity.Value == "203.0.113.99"
	}
	if !caught {
		t.Fatal("a scanner after training was not caught")
	}
}

// TestEngineIgnoresCallsVigilRefused: a blocked client's retries, answered
// 403 by Vigil itself, are no behaviour of the API: they raise no new attack
// (the same flood, let through, does) and train nothing; a refused oversized
// payload is still judged.
func TestEngineIgnoresCallsVigilRefused(t *testing.T) {
	f := newEngineFixture(t, detect.ModeBlock)
	f.benign(45*time.Minute, rand.New(rand.NewPCG(1, 2)))
	flood := func(ip string, blocked bool) {
		for i := range 3000 {
			if i%50 == 0 {
				f.now = f.now.Add(time.Second)
			}
			tx := &detect.Transaction{API: f.api, Host: "shop.example.com", Method: "GET", Path: fmt.Sprintf("/shop/x%d", i),
				Status: 403, ResponseBytes: 80, Start: f.now, HasRequest: true, Complete: true, UserAgent: "scan/1.0"}
			tx.Identities[detect.KindIP] = ip
			if blocked {
				tx.Blocked, tx.Reason = true, detect.ReasonBlockList
			}
			f.e.Consume(tx)
		}
	}
	flood("203.0.113.7", true)
	if len(f.attacks) != 0 {
		t.Fatalf("refused calls raised %d attacks, first %+v", len(f.attacks), f.attacks[0])
	}
	flood("203.0.113.8", false)
	if len(f.attacks) == 0 {
		t.Fatal("the same flood let through raised nothing: the test proves nothing")
	}
	n := len(f.attacks)
	big := &detect.Transaction{API: f.api, Host: "shop.example.com", Method: "PATCH", Path: "/shop/order/1", Status: 413,
		RequestBytes: 5 << 20, JSONElements: 10000, Start: f.now, HasRequest: true, Complete: true, Blocked: true, Reason: detect.ReasonTooManyElements}
	big.Identities[detect.KindIP] = "203.0.113.9"
	big.Identities[detect.KindToken] = f.fp.Fingerprint("tok-patcher")
	f.e.Consume(big)
	if len(f.attacks) != n+1 || f.attacks[n].Type != detect.AttackOversizedPayload {
		t.Fatalf("refused oversized payload: attacks %v", f.attacks[n:])
	}
	if a := f.attacks[n]; a.Identity.Kind != "token" || len(a.ClientIPs) != 1 || a.ClientIPs[0] != "203.0.113.9" || !a.FirstSeen.Equal(f.now) {
		t.Fatalf("oversized payload by %+v from %v, first seen %s", a.Identity, a.ClientIPs, a.FirstSeen)
	}
}

// TestInFlightCallsDoNotRepeatTheOffence: the engine runs behind the
// request path, so a fast prober's calls that were let through before its
// block landed are judged after it. Past 200 a minute they raise
// extreme_activity: recorded as detected, while the probing block stays
// the one in force, not replaced and not doubled as a repeat offence.
// Once an operator lifts the block, a new attack blocks again.
func TestInFlightCallsDoNotRepeatTheOffence(t *testing.T) {
	f := newEngineFixture(t, detect.ModeBlock)
	live := map[string]detect.Entry{}
	f.e.cfg.Block = func(e detect.Entry) {
		f.blocked = append(f.blocked, e)
		live[e.Value] = e
	}
	f.e.cfg.Blocked = func(k detect.Kind, id string, at time.Time) bool {
		e, ok := live[id]
		return ok && e.Kind == k && at.Before(e.ExpiresAt)
	}
	f.benign(45*time.Minute, rand.New(rand.NewPCG(1, 2)))
	const prober = "203.0.113.77"
	// 300 calls in 30 s, none refused: the engine blocked the prober at
	// about its 26th, and the rest were already in flight.
	for i := range 300 {
		if i%10 == 0 {
			f.now = f.now.Add(time.Second)
		}
		f.tx(prober, "", "GET", fmt.Sprintf("/shop/nope-%d", i), 404, 100)
	}
	var probing, extreme *detect.Attack
	for _, a := range f.attacks {
		if a.Identity.Value != prober {
			continue
		}
		switch a.Type {
		case detect.AttackProbing:
			probing = a
		case detect.AttackExtremeActivity:
			extreme = a
		}
	}
	if probing == nil || probing.Action != detect.ActionBlocked {
		t.Fatalf("probing %+v, want blocked; attacks %v", probing, f.attacks)
	}
	if extreme == nil || extreme.Action != detect.ActionDetected || extreme.BlockedUntil != nil {
		t.Fatalf("extreme_activity of the in-flight calls %+v, want recorded as detected", extreme)
	}
	if len(f.blocked) != 1 || live[prober].AttackID != probing.ID || live[prober].ExpiresAt.Sub(probing.DetectedAt) != time.Hour {
		t.Fatalf("block entries %+v, want probing's alone, for block_ttl (1h)", f.blocked)
	}
	// The operator unblocks it; the prober starts again on another API
	// variable after its flags expire: blocked again, as a repeat offence.
	delete(live, prober)
	f.now = f.now.Add(2 * time.Hour)
	for i := range 300 {
		if i%10 == 0 {
			f.now = f.now.Add(time.Second)
		}
		f.tx(prober, "", "GET", fmt.Sprintf("/shop/again-%d", i), 404, 100)
	}
	if len(f.blocked) < 2 || f.blocked[1].Value != prober || f.blocked[1].ExpiresAt.Sub(f.blocked[1].CreatedAt) != 2*time.Hour {
		t.Fatalf("after the unblock: block entries %+v, want a second block for 2h", f.blocked)
	}
}

// TestTimesOutOfRangeAreIgnored: a replayed log's broken times (before
// 1970, or centuries ahead) are no calls to learn from; they neither count
// nor break the identity's windows for its calls at real times (a 1969 call
// made its hour window's buckets negative: index out of range, found by
// FuzzReplayLine).
func TestTimesOutOfRangeAreIgnored(t *testing.T) {
	f := newEngineFixture(t, detect.ModeBlock)
	real := f.now
	for _, at := range []time.Time{
		time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC),
		real,
		real.Add(20 * time.Minute), // past the 10-minute window: the hour and day windows start
		time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
		real.Add(21 * time.Minute),
		time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		f.now = at
		f.tx("10.9.9.9", "tok-x", "GET", "/shop/order/1", 200, 100)
	}
	st := f.e.Models()
	if len(st) != 1 || st[0].Requests != 3 {
		t.Fatalf("models %+v, want one that counted the 3 calls at real times", st)
	}
}
