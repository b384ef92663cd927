package behaviour

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// mergeStore is the tests' shared store, as server/cluster keeps it in
// Redis: per identity, every replica's bucket increments summed and the
// sketch registers merged by register-wise max.
type mergeStore struct {
	buckets  map[SharedKey]map[[2]int64]SharedBucket // {short, index}
	sketches map[SharedKey]map[[2]int64][]byte       // {sketch, epoch}
	deltas   int
}

func newMergeStore() *mergeStore {
	return &mergeStore{buckets: map[SharedKey]map[[2]int64]SharedBucket{}, sketches: map[SharedKey]map[[2]int64][]byte{}}
}

// flush is one round trip of a replica: its deltas in, the merged windows
// of the same identities back.
func (m *mergeStore) flush(ctx context.Context, e *Engine) {
	ds := e.CollectShared(ctx)
	ws := make([]SharedWindow, 0, len(ds))
	for _, d := range ds {
		m.deltas++
		bs := m.buckets[d.Key]
		if bs == nil {
			bs = map[[2]int64]SharedBucket{}
			m.buckets[d.Key] = bs
		}
		for _, b := range d.Buckets {
			k := [2]int64{0, b.Index}
			if b.Short {
				k[0] = 1
			}
			have := bs[k]
			have.Short, have.Index = b.Short, b.Index
			for c := range have.Counts {
				have.Counts[c] += b.Counts[c]
			}
			have.Bytes += b.Bytes
			bs[k] = have
		}
		ss := m.sketches[d.Key]
		if ss == nil {
			ss = map[[2]int64][]byte{}
			m.sketches[d.Key] = ss
		}
		for _, s := range d.Sketches {
			k := [2]int64{int64(s.Sketch), s.Epoch}
			regs := ss[k]
			if regs == nil {
				regs = make([]byte, SketchRegisters)
				ss[k] = regs
			}
			for i, r := range s.Regs {
				regs[i] = max(regs[i], r)
			}
		}
		w := SharedWindow{Key: d.Key}
		for _, b := range bs {
			w.Buckets = append(w.Buckets, b)
		}
		for k, regs := range ss {
			w.Sketches = append(w.Sketches, SharedSketch{Sketch: uint8(k[0]), Epoch: k[1], Regs: append([]byte(nil), regs...)})
		}
		ws = append(ws, w)
	}
	e.ApplyShared(ctx, ws)
}

// clusterFixture is three engines behind a round-robin front door, each
// with the one API's model ready on the default thresholds (Tx twice each
// variable's floor: not_found_10m 50, distinct_failed_paths 30,
// login_failures_10m 24, distinct_login_usernames 12).
type clusterFixture struct {
	t       *testing.T
	ctx     context.Context
	es      []*Engine
	api     *detect.API
	store   *mergeStore
	now     time.Time
	n       int
	every   int // calls between flush rounds (0: never)
	mu      sync.Mutex
	attacks []*detect.Attack
}

func newClusterFixture(t *testing.T, replicas, workers int, fraction float64) *clusterFixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &clusterFixture{t: t, ctx: ctx, now: t0, store: newMergeStore(), every: 3,
		api: &detect.API{Name: "shop", BasePath: "/shop", Mode: detect.ModeBlock}}
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for range replicas {
		e := NewEngine(EngineConfig{Workers: workers, ShareFraction: fraction, APIs: []*detect.API{f.api},
			Training: TrainingConfig{RelearnInterval: 24 * time.Hour},
			OnAttack: func(a *detect.Attack) { f.mu.Lock(); f.attacks = append(f.attacks, a); f.mu.Unlock() }})
		m := e.modelByName("shop")
		m.tick(f.now)
		m.tick(f.now)
		if !m.ready.Load() {
			t.Fatal("model not ready")
		}
		wg.Go(func() { e.Run(ctx) })
		f.es = append(f.es, e)
	}
	return f
}

// call sends one call, 100 ms after the previous one, to the next
// replica, and runs a flush round every f.every calls.
func (f *clusterFixture) call(ip string, edit func(*detect.Transaction)) {
	f.now = f.now.Add(100 * time.Millisecond)
	t := &detect.Transaction{API: f.api, Host: "shop.example.com", Method: "GET", Path: "/shop/orders", Status: 200,
		Start: f.now, HasRequest: true, Complete: true, UserAgent: "app/1.0"}
	t.Identities[detect.KindIP] = ip
	if edit != nil {
		edit(t)
	}
	f.es[f.n%len(f.es)].Consume(t)
	f.n++
	if f.every > 0 && f.n%f.every == 0 {
		f.flush()
	}
}

func (f *clusterFixture) flush() {
	for _, e := range f.es {
		f.store.flush(f.ctx, e)
	}
}

// sync waits until every engine processed what it was given (a collect
// runs behind the calls queued before it).
func (f *clusterFixture) sync() {
	for _, e := range f.es {
		e.onShards(f.ctx, func(int, *shard) {})
	}
}

// detected returns the attacks of type typ raised on identity id.
func (f *clusterFixture) detected(typ detect.AttackType, id string) []*detect.Attack {
	f.sync()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*detect.Attack
	for _, a := range f.attacks {
		if a.Type == typ && a.Identity.Value == id {
			out = append(out, a)
		}
	}
	return out
}

// The test that proves sharing matters: a prober and a credential
// stuffer whose calls are spread round robin over three replicas stay
// under every threshold on each replica, and are detected when the
// replicas share their windows.
func TestSharingDetectsAttacksSpreadOverReplicas(t *testing.T) {
	probe := func(f *clusterFixture) {
		// 66 misses on distinct paths: 22 per replica, under not_found_10m
		// (50) and distinct_failed_paths (30) on each, over both together.
		for i := range 66 {
			f.call("203.0.113.7", func(t *detect.Transaction) { t.Path, t.Status = fmt.Sprintf("/shop/admin-%d", i), 404 })
		}
	}
	stuff := func(f *clusterFixture) {
		// 30 failed logins of distinct users: 10 per replica, under
		// login_failures_10m (24) and distinct_login_usernames (12).
		for i := range 30 {
			f.call("198.51.100.9", func(t *detect.Transaction) {
				t.Method, t.Path, t.Status = "POST", "/shop/login", 401
				t.Identities[detect.KindUsername] = fmt.Sprintf("user%d", i)
			})
		}
	}
	// A single node that sees every call: when it detects each attack.
	one := newClusterFixture(t, 1, 0, 0)
	probe(one)
	stuff(one)
	p1, c1 := one.detected(detect.AttackProbing, "203.0.113.7"), one.detected(detect.AttackCredentialStuffing, "198.51.100.9")
	if len(p1) != 1 || len(c1) != 1 {
		t.Fatalf("a single node detected probing %d, credential stuffing %d times, want once each", len(p1), len(c1))
	}
	for _, workers := range []int{0, 2} {
		for _, fraction := range []float64{0, 0.1} {
			f := newClusterFixture(t, 3, workers, fraction)
			probe(f)
			stuff(f)
			p, c := f.detected(detect.AttackProbing, "203.0.113.7"), f.detected(detect.AttackCredentialStuffing, "198.51.100.9")
			if fraction == 0 {
				if len(p)+len(c) != 0 {
					t.Fatalf("workers %d, no sharing: detected %v %v, want nothing (each replica sees a third)", workers, p, c)
				}
				if f.store.deltas != 0 {
					t.Fatalf("workers %d, no sharing: %d deltas sent", workers, f.store.deltas)
				}
				continue
			}
			if len(p) == 0 || len(c) == 0 {
				t.Fatalf("workers %d, sharing %v: probing %d, credential stuffing %d records, want both detected", workers, fraction, len(p), len(c))
			}
			for _, a := range append(p, c...) {
				if a.Action != detect.ActionBlocked {
					t.Fatalf("not blocked: %+v", a)
				}
			}
			// At most a flush round (3 calls) and a turn of the round
			// robin (3 calls) after the single node.
			lag := 6 * 100 * time.Millisecond
			t.Logf("workers %d: probing %v, stuffing %v after a single node", workers, p[0].DetectedAt.Sub(p1[0].DetectedAt), c[0].DetectedAt.Sub(c1[0].DetectedAt))
			if d := p[0].DetectedAt.Sub(p1[0].DetectedAt); d > lag {
				t.Errorf("workers %d: probing detected %v after a single node", workers, d)
			}
			if d := c[0].DetectedAt.Sub(c1[0].DetectedAt); d > lag {
				t.Errorf("workers %d: credential stuffing detected %v after a single node", workers, d)
			}
		}
	}
}

// Sketches merge exactly and buckets add up: once the replicas flushed,
// each one's values of a shared identity are those of a single engine
// that saw every call.
func TestSharedWindowsEqualASingleEngine(t *testing.T) {
	single := newClusterFixture(t, 1, 0, 0)
	three := newClusterFixture(t, 3, 0, 0.1)
	rng := rand.New(rand.NewPCG(7, 8))
	const ip = "203.0.113.8"
	for i := range 150 {
		path, status := fmt.Sprintf("/shop/x-%d", rng.IntN(60)), []int{200, 404, 500}[rng.IntN(3)]
		user := fmt.Sprintf("u%d", rng.IntN(9))
		for _, f := range []*clusterFixture{single, three} {
			f.call(ip, func(t *detect.Transaction) {
				t.Path, t.Status, t.ResponseBytes = path, status, int64(100+i)
				if i%4 == 0 {
					t.Method, t.Path, t.Status = "POST", "/shop/login", 401
					t.Identities[detect.KindUsername] = user
				}
				if i%7 == 0 {
					t.Method = "DELETE"
				}
			})
		}
	}
	three.flush()
	three.flush()
	want := single.es[0].shards[0].get(stateKey{single.es[0].modelByName("shop"), detect.KindIP, ip})
	var got []float64
	for v := range numVars {
		if varDefs[v].perRequest || varDefs[v].kinds&(1<<detect.KindIP) == 0 {
			continue
		}
		w := want.value(varID(v))
		for r, e := range three.es {
			st := e.shards[0].get(stateKey{e.modelByName("shop"), detect.KindIP, ip})
			if st == nil || st.sharedPart() == nil {
				t.Fatalf("replica %d: state not shared", r)
			}
			if x := st.value(varID(v)); x != w {
				t.Errorf("replica %d: %s = %v, a single engine's %v", r, varDefs[v].name, x, w)
			}
			got = append(got, st.value(varID(v)))
		}
	}
	if want.value(vDistinctFailedPaths) < 10 || want.value(vFailedRequests) < 30 {
		t.Fatalf("too little traffic to compare: %v", got)
	}
}

// sharedStates counts an engine's shared states.
func sharedStates(e *Engine) int {
	n := 0
	for _, s := range e.shards {
		n += len(s.shared)
	}
	return n
}

// Benign users (the engine tests' generator: 60 users with tokens, a
// call every 5 to 60 seconds, a 404 now and then) never pass a tenth of a
// limit: none of their 120 states is shared, so the store's traffic
// follows suspicious identities only.
func TestBenignIdentitiesAreNotShared(t *testing.T) {
	f := newEngineFixture(t, detect.ModeBlock)
	f.e.cfg.ShareFraction = 0.1
	f.benign(45*time.Minute, rand.New(rand.NewPCG(1, 2)))
	if n := sharedStates(f.e); n != 0 {
		var ids []string
		for _, st := range f.e.shards[0].shared {
			ids = append(ids, st.kind.String()+":"+st.id)
		}
		t.Fatalf("%d of %d benign states shared: %v", n, f.e.Stats().States[detect.KindIP]+f.e.Stats().States[detect.KindToken], ids)
	}
	if d := f.e.CollectShared(context.Background()); len(d) != 0 {
		t.Fatalf("%d deltas of benign traffic", len(d))
	}
}

// A shared state stays shared while it lives: forgotten (past MaxStates)
// it leaves the shared states, and the store hears of it no more.
func TestForgottenStatesAreNoLongerShared(t *testing.T) {
	f := newClusterFixture(t, 1, 0, 0.1)
	e := f.es[0]
	e.shards[0].max = 8
	for ip := range 6 {
		for i := range 8 {
			f.call(fmt.Sprintf("203.0.113.%d", ip), func(t *detect.Transaction) { t.Path, t.Status = fmt.Sprintf("/shop/p%d", i), 404 })
		}
	}
	if n := sharedStates(e); n != 6 {
		t.Fatalf("%d shared states, want 6", n)
	}
	// Twenty benign callers push the probers out.
	for i := range 40 {
		f.call(fmt.Sprintf("10.0.0.%d", i%20), nil)
	}
	if n := sharedStates(e); n != 0 {
		t.Fatalf("%d shared states after they were forgotten, want 0", n)
	}
	if d := e.CollectShared(f.ctx); len(d) != 0 {
		t.Fatalf("forgotten states collected: %+v", d)
	}
}

// Whatever the store answers, ApplyShared never panics and never counts
// what is not a bucket of the window: unknown APIs and kinds, buckets far
// in the future or the past, sketches of the wrong length or number,
// registers out of range.
func TestApplySharedSurvivesBadWindows(t *testing.T) {
	f := newClusterFixture(t, 1, 0, 0.1)
	f.every = 0
	const ip = "203.0.113.5"
	for i := range 10 {
		f.call(ip, func(t *detect.Transaction) { t.Path, t.Status = fmt.Sprintf("/shop/p%d", i), 404 })
	}
	e := f.es[0]
	d := e.CollectShared(f.ctx)
	if len(d) != 1 {
		t.Fatalf("%d deltas, want 1", len(d))
	}
	k := d[0].Key
	head := f.now.UnixNano() / int64(time.Minute)
	regs := make([]byte, SketchRegisters)
	for i := range regs {
		regs[i] = 255
	}
	e.ApplyShared(f.ctx, []SharedWindow{
		{Key: SharedKey{API: "nope", Kind: k.Kind, ID: k.ID}, Buckets: []SharedBucket{{Index: head, Counts: [5]uint32{1000, 1000, 1000}}}},
		{Key: SharedKey{API: k.API, Kind: 200, ID: k.ID}},
		{Key: k, Buckets: []SharedBucket{
			{Index: head + 1e9, Counts: [5]uint32{1000, 0, 1000}},
			{Index: -5, Counts: [5]uint32{1000, 0, 1000}},
			{Index: head - 100, Counts: [5]uint32{1000, 0, 1000}},
			{Short: true, Index: 1 << 62, Counts: [5]uint32{1000}},
		}, Sketches: []SharedSketch{
			{Sketch: 9, Epoch: 1, Regs: regs},
			{Sketch: SketchFailedPaths, Epoch: f.now.UnixNano() / int64(5*time.Minute), Regs: regs[:3]},
			{Sketch: SketchFailedPaths, Epoch: 1 << 40, Regs: regs},
		}},
	})
	st := e.shards[0].get(stateKey{e.modelByName("shop"), detect.KindIP, ip})
	if x := st.value(vFailedRequests); x != 10 {
		t.Fatalf("not_found_10m = %v after bad windows, want the 10 calls seen here", x)
	}
	// Registers out of range are clamped, not taken as they are.
	e.ApplyShared(f.ctx, []SharedWindow{{Key: k, Sketches: []SharedSketch{{Sketch: SketchFailedPaths, Epoch: f.now.UnixNano() / int64(5*time.Minute), Regs: regs}}}})
	if x := st.value(vDistinctFailedPaths); math.IsInf(x, 0) || math.IsNaN(x) || x <= 10 {
		t.Fatalf("distinct_failed_paths = %v with every register at its largest", x)
	}
}

// After the store lost its data, ResendShared has the replicas send their
// whole windows again: the cluster's values come back to a single node's.
func TestResendSharedReseedsAStoreThatLostItsData(t *testing.T) {
	single := newClusterFixture(t, 1, 0, 0)
	three := newClusterFixture(t, 3, 0, 0.1)
	const ip = "203.0.113.4"
	for i := range 60 {
		for _, f := range []*clusterFixture{single, three} {
			f.call(ip, func(t *detect.Transaction) { t.Path, t.Status = fmt.Sprintf("/shop/q%d", i), 404 })
		}
	}
	three.store = newMergeStore() // Redis restarted empty
	for _, e := range three.es {
		e.ResendShared(three.ctx)
	}
	three.flush()
	three.flush()
	want := single.es[0].shards[0].get(stateKey{single.es[0].modelByName("shop"), detect.KindIP, ip})
	for r, e := range three.es {
		st := e.shards[0].get(stateKey{e.modelByName("shop"), detect.KindIP, ip})
		for _, v := range []varID{vFailedRequests, vDistinctFailedPaths, vRequestsPerMin} {
			if x, w := st.value(v), want.value(v); x != w {
				t.Errorf("replica %d: %s = %v, a single engine's %v", r, varDefs[v].name, x, w)
			}
		}
	}
}

// An idle shared state keeps being read back: at every collect for a
// minute, then at every tenth (so that a slow attacker's next call on this
// replica is judged on a window seconds old, not a minute old), and no
// more once its windows have gone by.
func TestIdleSharedStatesAreReadBackLessOften(t *testing.T) {
	f := newClusterFixture(t, 1, 0, 0.1)
	f.every = 0
	e := f.es[0]
	for i := range 8 {
		f.call("203.0.113.9", func(t *detect.Transaction) { t.Path, t.Status = fmt.Sprintf("/shop/p%d", i), 404 })
	}
	if n := sharedStates(e); n != 1 {
		t.Fatalf("%d shared states, want 1", n)
	}
	if d := e.CollectShared(f.ctx); len(d) != 1 || len(d[0].Buckets) == 0 {
		t.Fatalf("first collect: %+v, want the prober's increments", d)
	}
	sent := map[int]bool{}
	for i := 1; i <= sharedIdleMax+100; i++ {
		if d := e.CollectShared(f.ctx); len(d) == 1 {
			sent[i] = true
		}
	}
	for i := 1; i <= sharedIdleMax+100; i++ {
		want := i <= sharedIdleCollects || i <= sharedIdleMax && i%sharedIdleEvery == 0
		if sent[i] != want {
			t.Fatalf("idle collect %d: sent %v, want %v", i, sent[i], want)
		}
	}
}
