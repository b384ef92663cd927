package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/redistest"
)

// TestOnRedisCluster: on a 3-master Redis Cluster, lists propagate, a
// honeytoken planted on one replica is known on the other, concurrent
// detections make one attack record, and the fingerprint check holds; the
// keys that one script writes share a hash slot.
func TestOnRedisCluster(t *testing.T) {
	rc := redistest.StartCluster(t, 3)
	o := testOptions(rc.Addrs()...)
	o.Cluster = true
	a := newAttackReplica(t, withID(o, "a"))
	b := newAttackReplica(t, withID(o, "b"))
	eventually(t, 10*time.Second, "both up", func() bool { return a.c.Up() && b.c.Up() })
	if st := a.c.Status(); st.Mode != "cluster" {
		t.Fatalf("mode %q, want cluster", st.Mode)
	}

	// Lists.
	start := time.Now()
	if err := a.block.Store(detect.Entry{Kind: detect.KindIP, Value: "203.0.113.9", Reason: "manual"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "the block on b", func() bool { return b.blocked(detect.KindIP, "203.0.113.9") })
	t.Logf("propagation on Redis Cluster: %v", time.Since(start))

	// Attack claim.
	var wg sync.WaitGroup
	for i, r := range []*attackReplica{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); r.detectAttack(t, fmt.Sprintf("atk-%d", i), "mallory") }()
	}
	wg.Wait()
	eventually(t, 5*time.Second, "one record on both", func() bool {
		ia, ib := a.ids(), b.ids()
		if len(ia) != 1 || len(ib) != 1 || ia[0] != ib[0] {
			return false
		}
		e, ok := b.block.Lookup(detect.KindUsername, "mallory", time.Now())
		ea, oka := a.block.Lookup(detect.KindUsername, "mallory", time.Now())
		return ok && oka && e.AttackID == ia[0] && ea.AttackID == ia[0]
	})

	// Honeytokens.
	ta := newTrapReplica(t, withID(o, "ta"))
	tb := newTrapReplica(t, withID(o, "tb"))
	ta.trap.Hook(&detect.Request{API: shop, Host: "shop.example.com", Method: "GET", Path: "/shop/.env",
		Identities: detect.Identities{detect.KindIP: "198.51.100.9"}})
	eventually(t, 5*time.Second, "tb knows ta's honeytokens", func() bool {
		return ta.trap.Honeytokens() > 0 && tb.trap.Honeytokens() == ta.trap.Honeytokens()
	})
	eventually(t, 5*time.Second, "hits summed", func() bool { return tb.hits("/shop/.env") == 1 })

	// The fingerprint check on a Cluster.
	bad := o
	bad.FingerprintCheck = config.FingerprintCheck([]byte("another"))
	if _, err := Open(context.Background(), bad); err == nil {
		t.Fatal("another fingerprint key accepted on Redis Cluster")
	}
}
