package cluster

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/test/redistest"
)

// TestOutboxBoundedDropsOldest: a full outbox drops its oldest changes and
// counts them; acknowledging changes already dropped removes nothing else.
func TestOutboxBoundedDropsOldest(t *testing.T) {
	o := newOutbox(3)
	for _, f := range []string{"a", "b", "c", "d", "e"} {
		o.push(change{kind: "k", op: OpPut, field: f})
	}
	got, seq := o.peek(10)
	if len(got) != 3 || got[0].field != "c" || got[2].field != "e" || o.dropped.Load() != 2 {
		t.Fatalf("outbox holds %v (dropped %d), want c d e and 2 dropped", got, o.dropped.Load())
	}
	o.push(change{kind: "k", op: OpPut, field: "f"}) // drops c while c..e are in flight
	o.ack(seq, 3)                                    // c, d, e written
	if rest, _ := o.peek(10); len(rest) != 1 || rest[0].field != "f" {
		t.Fatalf("after ack: %v, want f only", rest)
	}
	if o.changedSince("k", "a", time.Time{}) != true || o.changedSince("k", "zz", time.Time{}) {
		t.Fatal("changedSince does not remember the fields written and dropped")
	}
}

// TestOutboxReplaysAfterRedisFroze: while Redis is frozen (SIGSTOP) list
// changes queue in the outbox (depth metric); when it answers again they
// are replayed in order, except the entries that expired meanwhile.
func TestOutboxReplaysAfterRedisFroze(t *testing.T) {
	s := redistest.Start(t)
	a := newReplica(t, withID(testOptions(s.Addr()), "a"))
	b := newReplica(t, withID(testOptions(s.Addr()), "b"))
	eventually(t, 5*time.Second, "both up", func() bool { return a.c.Up() && b.c.Up() })

	s.Stop()
	now := time.Now()
	store := func(v string, ttl time.Duration) {
		t.Helper()
		if err := a.block.Store(detect.Entry{Kind: detect.KindUsername, Value: v, Reason: "r", ExpiresAt: now.Add(ttl)}); err != nil {
			t.Fatal(err)
		}
	}
	store("gone", time.Hour)
	if _, err := a.block.Remove(detect.KindUsername, "gone"); err != nil {
		t.Fatal(err)
	}
	store("short", 300*time.Millisecond)
	store("kept", time.Hour)
	store("gone", time.Hour) // put, removed, put again: last wins
	if _, err := a.block.Remove(detect.KindUsername, "gone"); err != nil {
		t.Fatal(err)
	}
	if !a.blocked(detect.KindUsername, "kept") {
		t.Fatal("the local list did not take the change at once")
	}
	if a.c.OutboxLen() < 4 || gauge(t, a.c, "vigil_redis_outbox_depth") < 4 {
		t.Fatalf("outbox depth %d while Redis is frozen, want the changes queued", a.c.OutboxLen())
	}
	eventually(t, 10*time.Second, "a sees Redis down", func() bool { return !a.c.Up() })
	eventually(t, 5*time.Second, "the short entry expired", func() bool { return time.Now().After(now.Add(300 * time.Millisecond)) })
	s.Cont()
	eventually(t, 10*time.Second, "kept replayed to b", func() bool { return b.blocked(detect.KindUsername, "kept") })
	eventually(t, 5*time.Second, "outbox drained", func() bool { return a.c.OutboxLen() == 0 })
	if b.blocked(detect.KindUsername, "gone") {
		t.Fatal("b holds an entry whose last change was its removal: replay out of order")
	}
	if ev := s.Do("XRANGE", "t:{shared}:events", "-", "+"); strings.Contains(ev, "username:short") {
		t.Fatal("an entry that expired while Redis was down was replayed")
	}
	if gauge(t, a.c, "vigil_redis_outbox_expired_total") < 1 {
		t.Fatal("the expired change is not counted")
	}
}

// TestStoreNeverWaitsForRedis: with Redis frozen, list changes take effect
// locally at once: Store costs what it costs without Redis.
func TestStoreNeverWaitsForRedis(t *testing.T) {
	s := redistest.Start(t)
	a := newReplica(t, testOptions(s.Addr()))
	eventually(t, 5*time.Second, "up", a.c.Up)
	s.Stop()
	defer s.Cont()
	const n = 2000
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := a.block.Store(detect.Entry{Kind: detect.KindIP, Value: "10.9.0." + strconv.Itoa(i%250), Reason: "r"}); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("%d Stores took %v with Redis frozen: the caller waited for Redis", n, d)
	}
	if !a.blocked(detect.KindIP, "10.9.0.7") {
		t.Fatal("the change did not take effect locally")
	}
}
