package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/test/redistest"
)

// fastModels are a short lease and quick rounds, for tests.
var fastModels = ModelOptions{Lease: 600 * time.Millisecond, Renew: 100 * time.Millisecond, Poll: 50 * time.Millisecond, Log: zerolog.Nop()}

// modelReplica is one replica's Cluster and Models, running until stop.
type modelReplica struct {
	c    *Cluster
	m    *Models
	stop func()
}

func startReplica(t *testing.T, addr, id string, e func(*Models) ModelEngine, mo ...ModelOptions) *modelReplica {
	t.Helper()
	return startReplicaOn(t, []string{addr}, id, e, mo...)
}

func startReplicaOn(t *testing.T, addrs []string, id string, e func(*Models) ModelEngine, mo ...ModelOptions) *modelReplica {
	t.Helper()
	o := testOptions(addrs...)
	o.ReplicaID = id
	opts := fastModels
	if len(mo) > 0 {
		opts = mo[0]
	}
	var m *Models
	c := open(t, o, func(c *Cluster) { m = NewModels(c, opts) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	eng := e(m)
	go func() { m.Run(ctx, eng); close(done) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return &modelReplica{c: c, m: m, stop: stop}
}

// noModels is an engine without models.
type noModels struct{}

func (noModels) ModelDocs() []*behaviour.ModelDoc                   { return nil }
func (noModels) Adopt(*behaviour.ModelDoc) error                    { return nil }
func (noModels) ApplyFromPeer(string, *behaviour.ModelUpdate) error { return nil }
func none(*Models) ModelEngine                                      { return noModels{} }

// One replica holds the trainer lease; when it stops renewing, another
// takes over once the lease lapsed; the live replicas are counted.
func TestTrainerLeaseTakeover(t *testing.T) {
	r := redistest.Start(t)
	a := startReplica(t, r.Addr(), "a", none)
	eventually(t, 5*time.Second, "a trains", a.m.IsTrainer)
	b := startReplica(t, r.Addr(), "b", none)
	eventually(t, 5*time.Second, "two replicas counted", func() bool { return b.m.Replicas() == 2 && a.m.Replicas() == 2 })
	if b.m.IsTrainer() {
		t.Fatal("b trains while a holds the lease")
	}
	stopped := time.Now()
	a.stop() // no Release: the lease must lapse
	eventually(t, 5*time.Second, "b takes over", b.m.IsTrainer)
	if took := time.Since(stopped); took < fastModels.Lease/2 {
		t.Fatalf("b took over after %v, before a's lease (%v) could lapse", took, fastModels.Lease)
	}
	eventually(t, 5*time.Second, "a no longer counted", func() bool { return b.m.Replicas() == 1 })
}

// A replica that shuts down and releases the lease hands it over at the
// next round, not after the lease time.
func TestReleaseHandsTheLeaseOver(t *testing.T) {
	r := redistest.Start(t)
	o := fastModels
	o.Lease, o.Renew = time.Minute, 100*time.Millisecond
	a := startReplica(t, r.Addr(), "a", none, o)
	eventually(t, 5*time.Second, "a trains", a.m.IsTrainer)
	b := startReplica(t, r.Addr(), "b", none, o)
	eventually(t, 5*time.Second, "b counted", func() bool { return b.m.Replicas() == 2 })
	a.stop()
	if err := a.m.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b takes over", b.m.IsTrainer)
}

func newEngine(m *Models) *behaviour.Engine {
	return behaviour.NewEngine(behaviour.EngineConfig{
		APIs:          []*detect.API{{Name: "shop"}},
		Trainer:       m.IsTrainer,
		Replicas:      m.Replicas,
		OnModelChange: m.Changed,
	})
}

func userTx(e *behaviour.Engine, name, kind string) (float64, bool) {
	d, ok := e.Model("shop")
	if !ok {
		return 0, false
	}
	for _, v := range d.Variables {
		if v.Name == name && v.Kind == kind && v.Mode == "user" {
			return v.Tx, true
		}
	}
	return 0, false
}

func setTx(name, kind string, tx float64) *behaviour.ModelUpdate {
	tn := tx / 2
	return &behaviour.ModelUpdate{Variables: []behaviour.VariableUpdate{{Name: name, Kind: kind, Mode: "user", Tn: &tn, Tx: &tx}}}
}

// The trainer publishes its model; a follower adopts it, and adopts the
// next version after the trainer's model changed.
func TestFollowerAdoptsPublishedModel(t *testing.T) {
	r := redistest.Start(t)
	var ea, eb *behaviour.Engine
	a := startReplica(t, r.Addr(), "a", func(m *Models) ModelEngine { ea = newEngine(m); return ea })
	eventually(t, 5*time.Second, "a trains", a.m.IsTrainer)
	if err := ea.ApplyFromPeer("shop", setTx("requests_per_min", "ip", 500)); err != nil {
		t.Fatal(err)
	}
	startReplica(t, r.Addr(), "b", func(m *Models) ModelEngine { eb = newEngine(m); return eb })
	eventually(t, 5*time.Second, "b adopts Tx 500", func() bool { tx, ok := userTx(eb, "requests_per_min", "ip"); return ok && tx == 500 })
	// ApplyFromPeer tells no one: the trainer's poll finds the change.
	if err := ea.ApplyFromPeer("shop", setTx("requests_per_min", "ip", 700)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b adopts Tx 700", func() bool { tx, ok := userTx(eb, "requests_per_min", "ip"); return ok && tx == 700 })
	if v := r.Do("HGET", "t:{models}:versions", "shop"); v < "2" || len(v) != 1 {
		t.Fatalf("version %q, want 2 to 9", v)
	}
}

// A model update made on a follower (PUT /v1/models/{api}) reaches the
// trainer as an event, applied with ApplyFromPeer, and comes back to
// every follower in the trainer's next version.
func TestModelUpdateReachesPeers(t *testing.T) {
	r := redistest.Start(t)
	var ea, eb, ec *behaviour.Engine
	a := startReplica(t, r.Addr(), "a", func(m *Models) ModelEngine { ea = newEngine(m); return ea })
	eventually(t, 5*time.Second, "a trains", a.m.IsTrainer)
	startReplica(t, r.Addr(), "b", func(m *Models) ModelEngine { eb = newEngine(m); return eb })
	startReplica(t, r.Addr(), "c", func(m *Models) ModelEngine { ec = newEngine(m); return ec })
	if err := eb.Apply("shop", setTx("errors_10m", "ip", 42)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the trainer applies b's update", func() bool { tx, ok := userTx(ea, "errors_10m", "ip"); return ok && tx == 42 })
	eventually(t, 5*time.Second, "c has b's update", func() bool { tx, ok := userTx(ec, "errors_10m", "ip"); return ok && tx == 42 })
}

// Redis unreachable for a lease time: the replica trains on its own share
// (as a single node); once Redis answers and another replica holds the
// lease, it follows again.
func TestTrainsAloneWhileRedisIsDown(t *testing.T) {
	r := redistest.Start(t)
	r.Kill()
	a := startReplica(t, r.Addr(), "a", none)
	if a.m.IsTrainer() {
		t.Fatal("trainer before a lease time without Redis")
	}
	eventually(t, 5*time.Second, "trains alone without Redis", a.m.IsTrainer)
	r.Restart()
	r.Do("SET", "t:{models}:trainer", "x", "PX", "60000")
	eventually(t, 10*time.Second, "follows x once Redis answers", func() bool { return !a.m.IsTrainer() })
}

// On a 3-master Redis Cluster (the lease, versions and documents share
// the {models} hash tag, so publish.lua runs): the lease, publication and
// adoption, and a model update as an event.
func TestModelsOnRedisCluster(t *testing.T) {
	rc := redistest.StartCluster(t, 3)
	var ea, eb *behaviour.Engine
	a := startReplicaOn(t, rc.Addrs(), "a", func(m *Models) ModelEngine { ea = newEngine(m); return ea })
	eventually(t, 5*time.Second, "a trains", a.m.IsTrainer)
	if err := ea.ApplyFromPeer("shop", setTx("requests_per_min", "ip", 500)); err != nil {
		t.Fatal(err)
	}
	b := startReplicaOn(t, rc.Addrs(), "b", func(m *Models) ModelEngine { eb = newEngine(m); return eb })
	eventually(t, 5*time.Second, "b adopts Tx 500", func() bool { tx, ok := userTx(eb, "requests_per_min", "ip"); return ok && tx == 500 })
	eventually(t, 5*time.Second, "two replicas counted", func() bool { return b.m.Replicas() == 2 })
	if b.m.IsTrainer() {
		t.Fatal("b trains while a holds the lease")
	}
	if err := eb.Apply("shop", setTx("errors_10m", "ip", 42)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the trainer applies b's update", func() bool { tx, ok := userTx(ea, "errors_10m", "ip"); return ok && tx == 42 })
}
