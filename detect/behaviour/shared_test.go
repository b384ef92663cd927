package behaviour

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

func TestSharedWindowsGeometry(t *testing.T) {
	short, long, shortN, longN, epoch, wide := SharedWindows()
	if short != 10*time.Second || long != time.Minute || shortN != 6 || longN != 10 || epoch != 5*time.Minute || wide != 30*time.Minute {
		t.Fatalf("SharedWindows() = %v %v %d %d %v %v", short, long, shortN, longN, epoch, wide)
	}
	if SketchRegisters != 64 {
		t.Fatalf("SketchRegisters = %d", SketchRegisters)
	}
}

// Without ShareFraction nothing is shared, whatever the traffic: a
// prober's windows stay local and CollectShared has nothing to send.
func TestShareFractionZeroSharesNothing(t *testing.T) {
	for _, workers := range []int{0, 2} {
		f := newEngineFixture(t, detect.ModeBlock)
		f.e = NewEngine(EngineConfig{Workers: workers})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { f.e.Run(ctx); close(done) }()
		for i := range 200 {
			f.now = f.now.Add(100 * time.Millisecond)
			f.tx("203.0.113.9", "", "GET", "/shop/nope-"+string(rune('a'+i%26))+string(rune('a'+i/26)), 404, 100)
		}
		if d := f.e.CollectShared(ctx); len(d) != 0 {
			t.Fatalf("workers %d: CollectShared = %d deltas, want none", workers, len(d))
		}
		cancel()
		<-done
	}
}

// Apply tells OnModelChange; ApplyFromPeer does not.
func TestApplyFromPeerDoesNotCallOnModelChange(t *testing.T) {
	var calls int
	e := NewEngine(EngineConfig{APIs: []*detect.API{{Name: "shop"}}, OnModelChange: func(string, *ModelUpdate) { calls++ }})
	off := false
	u := &ModelUpdate{Types: map[detect.AttackType]TypeKnobsUpdate{detect.AttackProbing: {Enabled: &off}}}
	if err := e.ApplyFromPeer("shop", u); err != nil || calls != 0 {
		t.Fatalf("ApplyFromPeer: err %v, %d OnModelChange calls, want none", err, calls)
	}
	if err := e.Apply("shop", u); err != nil || calls != 1 {
		t.Fatalf("Apply: err %v, %d OnModelChange calls, want 1", err, calls)
	}
}

// thresholdsOf is a model document's thresholds and modes by variable and
// kind, and its knobs.
func thresholdsOf(d *ModelDoc) (map[string]VariableDoc, map[detect.AttackType]TypeKnobs) {
	out := map[string]VariableDoc{}
	for _, v := range d.Variables {
		v.Samples = 0
		out[v.Name+"/"+v.Kind] = v
	}
	return out, d.Types
}

// A replica that is not the trainer never trains by itself: its model
// stays learning on the same traffic that made the trainer's ready. It
// adopts the trainer's model exactly (thresholds, modes, knobs, ready),
// and its own samples never replace it. The trainer tells OnModelChange,
// with no update, each time it computed thresholds.
func TestFollowerAdoptsTheTrainersModel(t *testing.T) {
	var relearned []string
	trainer := newEngineFixture(t, detect.ModeBlock)
	trainer.e.cfg.OnModelChange = func(api string, u *ModelUpdate) {
		if u == nil {
			relearned = append(relearned, api)
		}
	}
	follower := newEngineFixture(t, detect.ModeBlock)
	follower.e.cfg.Trainer = func() bool { return false }
	follower.e.cfg.OnModelChange = func(api string, u *ModelUpdate) { t.Errorf("follower's OnModelChange(%s, %+v)", api, u) }
	trainer.benign(45*time.Minute, rand.New(rand.NewPCG(1, 2)))
	follower.benign(45*time.Minute, rand.New(rand.NewPCG(3, 4)))
	// Ready at 30 minutes, relearnt at 40.
	if len(relearned) < 2 || relearned[0] != "shop" {
		t.Fatalf("trainer's OnModelChange with no update: %v, want shop at least twice", relearned)
	}
	if st := follower.e.Models(); len(st) != 1 || st[0].State != "learning" {
		t.Fatalf("follower's model %+v, want still learning", st)
	}
	before := mustModel(t, follower.e)
	if v, _ := thresholdsOf(before); v["not_found_10m/ip"].Tx != 50 {
		t.Fatalf("follower computed thresholds: %+v", v["not_found_10m/ip"])
	}
	doc := mustModel(t, trainer.e)
	// A base of its own, which the follower's samples would not give.
	for i, v := range doc.Variables {
		if v.Name == "not_found_10m" && v.Kind == "ip" {
			doc.Variables[i].Tn, doc.Variables[i].Tx = 9, 41
		}
	}
	tx := 7.0
	doc.Variables = append(doc.Variables, VariableDoc{Name: "deletes_10m", Kind: "token", Mode: "user", Tn: 1, Tx: tx})
	if err := follower.e.Adopt(doc); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		got := mustModel(t, follower.e)
		if got.Status.State != "ready" {
			t.Fatalf("%s: follower's model %s, want ready", when, got.Status.State)
		}
		gv, gk := thresholdsOf(got)
		wv, wk := thresholdsOf(doc)
		for k, w := range wv {
			if k == "deletes_10m/token" {
				w = VariableDoc{Name: "deletes_10m", Type: detect.AttackMassDeletion, Kind: "token", Mode: "user", Tn: 1, Tx: tx}
			}
			if gv[k] != w {
				t.Fatalf("%s: %s = %+v, the trainer's %+v", when, k, gv[k], w)
			}
		}
		for typ, k := range wk {
			if gk[typ] != k {
				t.Fatalf("%s: knobs of %s = %+v, the trainer's %+v", when, typ, gk[typ], k)
			}
		}
	}
	check("adopted")
	// More traffic, past the relearn interval, with over 1,000 samples
	// of its own: still the trainer's model.
	follower.benign(25*time.Minute, rand.New(rand.NewPCG(5, 6)))
	check("25 minutes later")
	follower.e.cfg.OnModelChange = nil // a local Apply is told, see below
	off := false
	if err := follower.e.Apply("shop", &ModelUpdate{Types: map[detect.AttackType]TypeKnobsUpdate{detect.AttackBOLAEnumeration: {Enabled: &off}}}); err != nil {
		t.Fatal(err)
	}
	if v, _ := thresholdsOf(mustModel(t, follower.e)); v["not_found_10m/ip"].Tx != 41 {
		t.Fatalf("an Apply on the follower recomputed from its own samples: %+v", v["not_found_10m/ip"])
	}
}

// Every local change of a model is told (Apply, Import, Relax); a peer's
// (ApplyFromPeer) and an adopted model are not.
func TestOnModelChangeTellsLocalChangesOnly(t *testing.T) {
	var got []string
	e := NewEngine(EngineConfig{APIs: []*detect.API{{Name: "shop"}}, OnModelChange: func(api string, u *ModelUpdate) {
		got = append(got, fmt.Sprintf("%s %v", api, u != nil))
	}})
	off := false
	u := &ModelUpdate{Types: map[detect.AttackType]TypeKnobsUpdate{detect.AttackProbing: {Enabled: &off}}}
	mustNil(t, e.ApplyFromPeer("shop", u))
	doc := mustModel(t, e)
	mustNil(t, e.Adopt(doc))
	if len(got) != 0 {
		t.Fatalf("told of a peer's change or an adopted model: %v", got)
	}
	mustNil(t, e.Apply("shop", u))
	mustNil(t, e.Import(doc))
	a := &detect.Attack{Type: detect.AttackProbing, API: "shop", Identity: detect.AttackIdentity{Kind: "ip", Value: "203.0.113.1"},
		Variables: []detect.VariableValue{{Name: "not_found_10m", Observed: 80, Tn: 10, Tx: 50}}}
	if r, err := e.Relax(a); err != nil || len(r) != 1 {
		t.Fatalf("Relax: %v %v", r, err)
	}
	if want := "[shop true shop true shop true]"; fmt.Sprint(got) != want {
		t.Fatalf("OnModelChange calls %v, want %s (Apply, Import, Relax)", got, want)
	}
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// With replicas, the training samples of a state that is not shared count
// its additive variables times the live replicas (Envoy gave this one a
// third of the identity's calls), its distinct counts as they are; a
// shared state's are the cluster's already and are not scaled.
func TestTrainingSamplesScaleWithReplicas(t *testing.T) {
	sample := func(replicas func() int, fraction float64, misses int) (notFound, paths float64) {
		f := newBoundaryFixture(t, EngineConfig{Replicas: replicas, ShareFraction: fraction})
		for i := range misses {
			f.call(attackerIP, func(t *detect.Transaction) { t.Path, t.Status = fmt.Sprintf("/shop/missing-%d", i), 404 })
		}
		f.now = f.now.Add(time.Minute) // the next call samples the minute gone by
		f.call(attackerIP, nil)
		r, p := f.m.samples[detect.KindIP][vFailedRequests], f.m.samples[detect.KindIP][vDistinctFailedPaths]
		if r == nil || len(r.vals) != 1 || len(p.vals) != 1 {
			t.Fatalf("samples %+v %+v, want one each", r, p)
		}
		return float64(r.vals[0]), float64(p.vals[0])
	}
	three := func() int { return 3 }
	single, paths := sample(nil, 0, 5)
	if single != 5 {
		t.Fatalf("single node: not_found_10m sample %v, want 5", single)
	}
	if n, p := sample(three, 0, 5); n != 15 || p != paths {
		t.Fatalf("3 replicas, not shared: samples not_found_10m %v, distinct_failed_paths %v; want 15 and %v", n, p, paths)
	}
	if n, _ := sample(three, 0.1, 10); n != 10 {
		t.Fatalf("3 replicas, shared: not_found_10m sample %v, want 10", n)
	}
}

// With replicas, training's min_requests counts the API's calls on every
// replica (this one's times the live replicas): the trainer sees a third
// of them with three, and would otherwise stay learning three times as
// long as a single node. Identities are not scaled.
func TestTrainingReadinessCountsEveryReplicasCalls(t *testing.T) {
	ready := func(replicas func() int) (string, float64) {
		api := &detect.API{Name: "shop", BasePath: "/shop", Mode: detect.ModeBlock}
		e := NewEngine(EngineConfig{Replicas: replicas, APIs: []*detect.API{api},
			Training: TrainingConfig{Duration: time.Minute, MinRequests: 300, MinIdentities: 10, RelearnInterval: time.Hour}})
		start := time.Unix(1_800_000_000, 0)
		for i := range 120 {
			tx := &detect.Transaction{API: api, Host: "shop.example.com", Method: "GET", Path: fmt.Sprintf("/shop/items/%d", i%7),
				Status: 200, HasRequest: true, Complete: true, Start: start.Add(time.Duration(i) * time.Second)}
			tx.Identities[detect.KindIP] = fmt.Sprintf("10.0.0.%d", i%20)
			e.Consume(tx)
		}
		m := e.Models()[0]
		return m.State, m.Progress.Requests
	}
	if state, progress := ready(nil); state == "ready" || progress != 0.4 {
		t.Fatalf("single node after 120 of 300 calls: %s, progress %v; want learning, 0.4", state, progress)
	}
	if state, _ := ready(func() int { return 3 }); state != "ready" {
		t.Fatalf("one of 3 replicas after 120 calls (360 in the cluster): %s, want ready", state)
	}
}
