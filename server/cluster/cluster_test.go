package cluster

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/redistest"
)

// testOptions are fast health checks against addrs.
func testOptions(addrs ...string) Options {
	return Options{
		Addrs:            addrs,
		KeyPrefix:        "t:",
		FingerprintCheck: config.FingerprintCheck([]byte("the shared fingerprint key")),
		HealthInterval:   50 * time.Millisecond,
		Log:              zerolog.Nop(),
	}
}

// open opens a Cluster and runs it until the test ends.
func open(t *testing.T, o Options, register ...func(*Cluster)) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Open(ctx, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	for _, r := range register {
		r(c)
	}
	run, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(run); close(done) }()
	t.Cleanup(func() { stop(); <-done; c.Close() })
	return c
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func gauge(t *testing.T, c *Cluster, name string) float64 {
	t.Helper()
	for _, col := range c.Collectors() {
		ch := make(chan *prometheus.Desc, 4)
		col.Describe(ch)
		close(ch)
		for d := range ch {
			if strings.Contains(d.String(), `"`+name+`"`) {
				return testutil.ToFloat64(col)
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestOpenRegistersRunIDAndFingerprintCheck: Open against a live Redis is
// up at once, stores the run id and the keyed check value (never the key).
func TestOpenRegistersRunIDAndFingerprintCheck(t *testing.T) {
	r := redistest.Start(t)
	c := open(t, testOptions(r.Addr()))
	if !c.Up() || !c.DownSince().IsZero() {
		t.Fatalf("Up=%v DownSince=%v after Open against a live Redis", c.Up(), c.DownSince())
	}
	if gauge(t, c, "vigil_redis_up") != 1 {
		t.Fatal("vigil_redis_up != 1")
	}
	if r.Do("GET", "t:runid") == "" {
		t.Fatal("no run id stored")
	}
	fp := r.Do("GET", "t:fpcheck")
	if len(fp) != 64 || strings.Contains(fp, "fingerprint key") {
		t.Fatalf("fpcheck = %q, want the hex HMAC only", fp)
	}
}

// TestOpenRefusesAnotherFingerprintKey: a replica whose fingerprint key
// differs from the cluster's refuses to start with a clear error.
func TestOpenRefusesAnotherFingerprintKey(t *testing.T) {
	r := redistest.Start(t)
	open(t, testOptions(r.Addr()))
	o := testOptions(r.Addr())
	o.FingerprintCheck = config.FingerprintCheck([]byte("another key"))
	_, err := Open(context.Background(), o)
	if !errors.Is(err, ErrFingerprintMismatch) || !strings.Contains(err.Error(), "fingerprint_key_file") {
		t.Fatalf("Open with another key: %v, want ErrFingerprintMismatch naming fingerprint_key_file", err)
	}
	// Another prefix is another cluster: its own check value.
	o.KeyPrefix = "other:"
	open(t, o)
}

// TestOpenWithRedisDownConnectsLater: Redis not answering at start is not
// an error; the Cluster is down, then up once Redis answers, without a
// restart.
func TestOpenWithRedisDownConnectsLater(t *testing.T) {
	r := redistest.Start(t)
	r.Kill()
	c := open(t, testOptions(r.Addr()))
	if c.Up() || c.DownSince().IsZero() || gauge(t, c, "vigil_redis_up") != 0 {
		t.Fatalf("Up=%v DownSince=%v with Redis dead", c.Up(), c.DownSince())
	}
	if st := c.Status(); st.Up || st.DownSince.IsZero() {
		t.Fatalf("Status = %+v, want down with a since", st)
	}
	r.Restart()
	eventually(t, 10*time.Second, "up after Redis started", c.Up)
	if gauge(t, c, "vigil_redis_up") != 1 {
		t.Fatal("vigil_redis_up != 1 once Redis answers")
	}
}

// TestDownAndBackUp: a frozen Redis (SIGSTOP) makes the Cluster down
// within a few health rounds, and up again after SIGCONT.
func TestDownAndBackUp(t *testing.T) {
	r := redistest.Start(t)
	c := open(t, testOptions(r.Addr()))
	r.Stop()
	eventually(t, 10*time.Second, "down while Redis is frozen", func() bool { return !c.Up() })
	r.Cont()
	eventually(t, 10*time.Second, "up after SIGCONT", c.Up)
}

// testutilCounter reads one labelled counter of a CounterVec collector.
func testutilCounter(t *testing.T, c *Cluster, name, label string) float64 {
	t.Helper()
	for _, col := range c.Collectors() {
		if v, ok := col.(*prometheus.CounterVec); ok {
			ch := make(chan *prometheus.Desc, 1)
			v.Describe(ch)
			if d := <-ch; strings.Contains(d.String(), `"`+name+`"`) {
				return testutil.ToFloat64(v.WithLabelValues(label))
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestPasswordRotatedOnReconnection: with PasswordFunc the password is read
// at every connection: an ACL user whose password changed reconnects with
// the new one, without a restart.
func TestPasswordRotatedOnReconnection(t *testing.T) {
	s := redistest.Start(t)
	s.Do("ACL", "SETUSER", "vigil", "on", ">first-pw", "~*", "+@all")
	var mu sync.Mutex
	pw := "first-pw"
	o := testOptions(s.Addr())
	o.Username = "vigil"
	o.PasswordFunc = func() (string, error) { mu.Lock(); defer mu.Unlock(); return pw, nil }
	c := open(t, o)
	eventually(t, 5*time.Second, "up with the first password", c.Up)
	s.Do("ACL", "SETUSER", "vigil", "resetpass", ">second-pw")
	mu.Lock()
	pw = "second-pw"
	mu.Unlock()
	s.Do("CLIENT", "KILL", "USER", "vigil")
	if err := c.Client().Do(context.Background(), c.Client().B().Ping().Build()).Error(); err != nil {
		// the first command after the kill may fail; the next connects anew
		t.Logf("first command after the kill: %v", err)
	}
	eventually(t, 5*time.Second, "up again with the second password", func() bool {
		return c.Up() && c.Client().Do(context.Background(), c.Client().B().Ping().Build()).Error() == nil
	})
	if got := s.Do("ACL", "LOG"); strings.Contains(got, "second-pw") || strings.Contains(got, "first-pw") {
		t.Fatal("a password in Redis' ACL log")
	}
}

// TestFingerprintMismatchFoundLaterStopsSharing: a replica that started
// while Redis was down and then finds another fingerprint key in use stops
// sharing (down, with the reason in Status) rather than mixing identities.
func TestFingerprintMismatchFoundLaterStopsSharing(t *testing.T) {
	s := redistest.Start(t)
	s.Kill()
	c := open(t, testOptions(s.Addr()))
	s.Restart()
	s.Do("SET", "t:fpcheck", "0000")
	eventually(t, 10*time.Second, "sharing stopped with the reason", func() bool {
		return strings.Contains(c.Status().Error, "fingerprint")
	})
	if c.Up() || gauge(t, c, "vigil_redis_up") != 0 {
		t.Fatal("up with another fingerprint key")
	}
}

// TestWaitUpMissesNoFlap: a goroutine waiting for Redis to come back
// (the follower) returns at every down → up, however the flag and the
// channel interleave with it; a missed wake-up left the follower asleep
// until Redis went down and up again, and other replicas' changes unread.
func TestWaitUpMissesNoFlap(t *testing.T) {
	s := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Open(ctx, testOptions(s.Addr())) // one health round, no Run: nothing else flips the flag
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Up() {
		t.Fatal("not up after Open")
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	for i := 0; i < 2000; i++ {
		c.markDown(nil)
		done := make(chan bool, 1)
		go func() { done <- c.waitUp(ctx) }()
		if i%2 == 0 {
			runtime.Gosched()
		}
		c.markUp()
		select {
		case ok := <-done:
			if !ok {
				t.Fatalf("flap %d: waitUp gave up", i)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("flap %d: still waiting for Redis 3s after it came back up", i)
		}
	}
}
