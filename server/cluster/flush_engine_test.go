package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/test/redistest"
)

// engineReplica is a behaviour engine (inline, Workers 0) with the API
// "shop" ready on its default thresholds, and its flusher.
type engineReplica struct {
	e       *behaviour.Engine
	f       *Flusher
	mu      sync.Mutex
	attacks []*detect.Attack
}

var shopAPI = &detect.API{Name: "shop", BasePath: "/shop", Mode: detect.ModeBlock}

func newEngineReplica(tb testing.TB, c *Cluster, fraction float64) *engineReplica {
	tb.Helper()
	r := &engineReplica{}
	r.e = behaviour.NewEngine(behaviour.EngineConfig{ShareFraction: fraction, APIs: []*detect.API{shopAPI},
		Training: behaviour.TrainingConfig{RelearnInterval: 24 * time.Hour},
		OnAttack: func(a *detect.Attack) { r.mu.Lock(); r.attacks = append(r.attacks, a); r.mu.Unlock() }})
	// A model on its default thresholds, ready: what a follower adopts.
	r.e.Consume(&detect.Transaction{API: shopAPI, Host: "shop.example.com", Method: "GET", Path: "/shop/", Status: 200,
		Start: time.Unix(1_800_000_000, 0), HasRequest: true, Complete: true})
	doc, ok := r.e.Model("shop")
	if !ok {
		tb.Fatal("no model")
	}
	doc.Status = nil
	if err := r.e.Adopt(doc); err != nil {
		tb.Fatal(err)
	}
	if c != nil {
		r.f = NewFlusher(c, r.e, FlushOptions{Log: zerolog.Nop()})
	}
	return r
}

func (r *engineReplica) detected(typ detect.AttackType, id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, a := range r.attacks {
		if a.Type == typ && a.Identity.Value == id {
			n++
		}
	}
	return n
}

// Three engines whose flushers share one Redis detect a prober whose calls
// are spread round robin over them, under every threshold on each; the
// same three without Redis do not.
func TestFlushSharesDetectionAcrossEngines(t *testing.T) {
	r := redistest.Start(t)
	run := func(shared bool) int {
		var rs []*engineReplica
		for range 3 {
			var c *Cluster
			if shared {
				c = newTestCluster(t, r.Addr())
			}
			rs = append(rs, newEngineReplica(t, c, 0.1))
		}
		now := time.Unix(1_800_000_100, 0)
		// 66 misses on distinct paths: 22 per replica, under not_found_10m
		// (50) and distinct_failed_paths (30) on each, over both together.
		for i := range 66 {
			now = now.Add(100 * time.Millisecond)
			rep := rs[i%3]
			tx := &detect.Transaction{API: shopAPI, Host: "shop.example.com", Method: "GET", Path: fmt.Sprintf("/shop/admin-%d", i),
				Status: 404, Start: now, HasRequest: true, Complete: true, UserAgent: "scanner"}
			tx.Identities[detect.KindIP] = "203.0.113.7"
			rep.e.Consume(tx)
			if shared && i%3 == 2 {
				for _, x := range rs {
					if err := x.f.FlushOnce(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		n := 0
		for _, x := range rs {
			n += x.detected(detect.AttackProbing, "203.0.113.7")
		}
		return n
	}
	if n := run(false); n != 0 {
		t.Fatalf("without Redis probing detected %d times, want 0 (each replica sees a third)", n)
	}
	if n := run(true); n == 0 {
		t.Fatal("with Redis probing spread over three replicas not detected")
	}
}
