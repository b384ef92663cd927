package cluster

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/vigil-project/vigil/test/redistest"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// TestRedisDownAndRestartedEmpty: Redis killed mid-traffic changes nothing
// a client sees (every call answered, none refused, the replicas ready),
// detection goes on on each replica's own share, /v1/status says degraded
// and since when, and a block made meanwhile waits in the outbox; Redis
// restarted empty: the replicas reconnect by themselves, re-seed it (the
// block made during the outage reaches the others) and a new block
// propagates again within a second.
func TestRedisDownAndRestartedEmpty(t *testing.T) {
	srv := redistest.Start(t)
	g := startGroup(t, 3, []string{srv.Addr()}, "")
	g.train()
	g.replicas[0].block(t, "203.0.113.1")
	refusedWithin(t, time.Second, "203.0.113.1", g.replicas...)

	before := g.benignLatencies(t, 300)
	killed := time.Now()
	srv.Kill()
	for _, r := range g.replicas {
		vigiltest.Eventually(t, 5*time.Second, func() error {
			if st := r.status(t); st.RedisUp || !st.Degraded || st.DegradedSince.IsZero() {
				return fmt.Errorf("%s: status %+v, want degraded", r.name, st)
			}
			return nil
		})
	}
	// Benign traffic all along: answered, never refused; its latency is
	// logged (a figure, not an assertion: timing here is noisy).
	during := g.benignLatencies(t, 300)
	t.Logf("benign call round trip through ext_proc, Redis up: p50 %s p99 %s; Redis down: p50 %s p99 %s",
		before[len(before)/2], before[len(before)*99/100], during[len(during)/2], during[len(during)*99/100])
	for _, r := range g.replicas {
		resp, err := http.Get("http://" + r.admin + "/readyz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s /readyz with Redis down: %v %v", r.name, resp, err)
		}
		resp.Body.Close()
		if up := metric(t, r, "vigil_redis_up"); up != 0 {
			t.Errorf("%s: vigil_redis_up %v with Redis down", r.name, up)
		}
	}
	// Detection goes on locally: a prober on one replica alone is refused there.
	prober, r2 := "198.51.100.9", g.replicas[1]
	refused := false
	pace := time.NewTicker(10 * time.Millisecond)
	defer pace.Stop()
	for i := 0; i < 500 && !refused; i++ {
		<-pace.C
		refused = r2.send(t, get(prober, fmt.Sprintf("/shop/nope-%d", i))).Status == 403
	}
	if !refused {
		t.Fatalf("with Redis down a replica no longer detects a prober on its own: %s reports %v, status %+v", r2.name, r2.attacks(t), r2.status(t))
	}
	// A block made during the outage waits in the outbox.
	g.replicas[2].block(t, "203.0.113.2")
	if st := g.replicas[2].status(t); st.Outbox < 1 {
		t.Errorf("outbox %d after a block with Redis down", st.Outbox)
	}
	t.Logf("Redis down for %s", time.Since(killed).Round(time.Millisecond))

	srv.Restart() // empty
	for _, r := range g.replicas {
		vigiltest.Eventually(t, 10*time.Second, func() error {
			if st := r.status(t); !st.RedisUp || st.Degraded || st.Outbox != 0 {
				return fmt.Errorf("%s: status %+v, want up with an empty outbox", r.name, st)
			}
			return nil
		})
	}
	// The outage's block reached the others; the prober's block too
	// (r2's local detection, re-seeded).
	refusedWithin(t, 5*time.Second, "203.0.113.2", g.replicas...)
	refusedWithin(t, 5*time.Second, prober, g.replicas...)
	// Re-seeded: what Redis holds again includes the first block.
	if n := srv.Do("HLEN", "vigil:{shared}:list:block"); n == "0" {
		t.Errorf("Redis's block list is empty after the re-seed")
	}
	g.replicas[1].block(t, "203.0.113.3")
	added := time.Now()
	refusedWithin(t, time.Second, "203.0.113.3", g.replicas[0], g.replicas[2])
	t.Logf("after the restart, a new block reached every replica in %s", time.Since(added).Round(time.Millisecond))
}

// metric reads one metric of the replica's /metrics.
func metric(t *testing.T, r *replica, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + r.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + name + `(?:\{[^}]*\})? (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no metric %s", r.name, name)
	}
	var v float64
	fmt.Sscan(string(m[1]), &v)
	return v
}

// TestAReplicaWithAnotherFingerprintKeyRefusesToStart: replicas that
// share Redis must fingerprint credentials alike; one whose key differs
// from the cluster's exits with a clear error instead of serving.
func TestAReplicaWithAnotherFingerprintKeyRefusesToStart(t *testing.T) {
	srv := redistest.Start(t)
	startReplica(t, "r1", t.TempDir(), []string{srv.Addr()}, "")
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "r2", []string{srv.Addr()}, "", "00"+fingerprintKey[2:])
	p := vigiltest.Binary{Args: []string{"serve", "--config", cfg, "--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}}.Start(t)
	if err := p.Wait(30 * time.Second); err == nil {
		t.Fatalf("a replica with another fingerprint key started:\n%s", p.Output())
	}
	if out := p.Output(); !regexp.MustCompile(`fingerprint key differs`).MatchString(out) || regexp.MustCompile(`00`+fingerprintKey[2:]).MatchString(out) {
		t.Fatalf("want an error naming the fingerprint key mismatch, never the key:\n%s", out)
	} else {
		t.Logf("the replica with another key said: %s", out)
	}
}

// benignLatencies sends n benign calls round robin, fails the test if one
// is not answered 200, and returns their round trips, sorted.
func (g *group) benignLatencies(t *testing.T, n int) []time.Duration {
	t.Helper()
	ds := make([]time.Duration, n)
	for i := range n {
		start := time.Now()
		if res := g.send(get(fmt.Sprintf("10.0.0.%d", i%20), fmt.Sprintf("/shop/items/%d", i%7))); res.Status != 200 {
			t.Fatalf("benign call %d: %d", i, res.Status)
		}
		ds[i] = time.Since(start)
	}
	slices.Sort(ds)
	return ds
}

// TestRedisFrozen: a Redis that stops answering without closing its
// connections (SIGSTOP: the slow case, as DEBUG SLEEP or CLIENT PAUSE)
// delays no call; the replicas say degraded, and recover by themselves
// when it answers again.
func TestRedisFrozen(t *testing.T) {
	srv := redistest.Start(t)
	g := startGroup(t, 3, []string{srv.Addr()}, "")
	g.train()
	srv.Stop()
	frozen := true
	defer func() {
		if frozen {
			srv.Cont()
		}
	}()
	g.replicas[0].block(t, "203.0.113.21")
	during := g.benignLatencies(t, 300)
	for _, r := range g.replicas {
		vigiltest.Eventually(t, 10*time.Second, func() error {
			if st := r.status(t); !st.Degraded {
				return fmt.Errorf("%s: status %+v, want degraded", r.name, st)
			}
			return nil
		})
	}
	t.Logf("benign call round trip with Redis frozen: p50 %s p99 %s", during[len(during)/2], during[len(during)*99/100])
	srv.Cont()
	frozen = false
	for _, r := range g.replicas {
		vigiltest.Eventually(t, 10*time.Second, func() error {
			if st := r.status(t); st.Degraded || !st.RedisUp {
				return fmt.Errorf("%s: status %+v, want up", r.name, st)
			}
			return nil
		})
	}
	refusedWithin(t, 5*time.Second, "203.0.113.21", g.replicas...)
}
