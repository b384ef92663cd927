package cluster

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/test/redistest"
)

// memJournal records a list's journal like the bbolt store would.
type memJournal struct {
	mu      sync.Mutex
	entries map[string]detect.Entry
	puts    int
	deletes int
}

func newMemJournal() *memJournal { return &memJournal{entries: make(map[string]detect.Entry)} }

func (j *memJournal) PutEntry(e detect.Entry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries[entryField(e.Kind, e.Value)] = e
	j.puts++
	return nil
}

func (j *memJournal) DeleteEntry(k detect.Kind, v string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.entries, entryField(k, v))
	j.deletes++
	return nil
}

func (j *memJournal) has(k detect.Kind, v string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, ok := j.entries[entryField(k, v)]
	return ok
}

// replica is one Vigil's lists shared through a Cluster.
type replica struct {
	c            *Cluster
	allow, block *detect.List
	aj, bj       *memJournal
}

func newReplica(t *testing.T, o Options, before ...func(r *replica)) *replica {
	t.Helper()
	r := &replica{aj: newMemJournal(), bj: newMemJournal()}
	r.allow, r.block = detect.NewLists()
	for _, f := range before {
		f(r)
	}
	r.c = open(t, o, func(c *Cluster) {
		c.ShareList("allow", r.allow, r.aj)
		c.ShareList("block", r.block, r.bj)
	})
	return r
}

func (r *replica) blocked(k detect.Kind, v string) bool {
	_, ok := r.block.Lookup(k, v, time.Now())
	return ok
}

func streamLen(t *testing.T, s *redistest.Server) int {
	n, err := strconv.Atoi(s.Do("XLEN", "t:{shared}:events"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestListChangePropagates: a block put on one replica is enforced on the
// other within a few milliseconds, journaled there, not published again;
// its removal propagates likewise. The propagation median and p99 are
// logged (go test -run TestListChangePropagates -v ./server/cluster/).
func TestListChangePropagates(t *testing.T) {
	s := redistest.Start(t)
	a := newReplica(t, withID(testOptions(s.Addr()), "a"))
	b := newReplica(t, withID(testOptions(s.Addr()), "b"))
	eventually(t, 5*time.Second, "both up", func() bool { return a.c.Up() && b.c.Up() })
	eventually(t, 5*time.Second, "two live replicas", func() bool { return a.c.Replicas() == 2 && b.c.Replicas() == 2 })

	e := detect.Entry{Kind: detect.KindIP, Value: "203.0.113.7", Reason: "probing", AttackID: "atk-1",
		CreatedAt: time.Now().Truncate(time.Second), ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Second)}
	if err := a.block.Store(e); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "the block enforced on b", func() bool { return b.blocked(detect.KindIP, e.Value) })
	got, _ := b.block.Lookup(detect.KindIP, e.Value, time.Now())
	if got.Reason != "probing" || got.AttackID != "atk-1" || !got.ExpiresAt.Equal(e.ExpiresAt) {
		t.Fatalf("b holds %+v, want reason, attack id and absolute expiry of %+v", got, e)
	}
	eventually(t, time.Second, "the change applied on b journaled there", func() bool { return b.bj.has(detect.KindIP, e.Value) })
	if n := streamLen(t, s); n != 1 {
		t.Fatalf("events stream holds %d entries after one change, want 1 (b must not re-publish)", n)
	}
	if _, err := b.block.Remove(detect.KindIP, e.Value); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "the removal applied on a", func() bool { return !a.blocked(detect.KindIP, e.Value) })
	eventually(t, time.Second, "the removal applied on a journaled there", func() bool { return !a.bj.has(detect.KindIP, e.Value) })
	if st := a.c.Status(); !st.Up || st.Mode != "standalone" || st.Replicas != 2 || st.PropagationLag <= 0 || st.ReplicaID != "a" {
		t.Fatalf("a's Status = %+v", st)
	}
	if got := s.Do("HLEN", "t:{shared}:list:block"); got != "0" {
		t.Fatalf("block hash holds %s entries after the removal", got)
	}

	// Propagation figures: one change at a time, a → b.
	const n = 200
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("user-%d", i)
		start := time.Now()
		if err := a.block.Store(detect.Entry{Kind: detect.KindUsername, Value: v, Reason: "r"}); err != nil {
			t.Fatal(err)
		}
		for !b.blocked(detect.KindUsername, v) {
			if time.Since(start) > time.Second {
				t.Fatalf("user %s not blocked on b within 1s", v)
			}
			time.Sleep(20 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("block propagation a → b over one redis-server, %d changes: median %v, p99 %v, max %v",
		n, lat[n/2], lat[n*99/100], lat[n-1])
	if lat[n/2] > 100*time.Millisecond {
		t.Errorf("median propagation %v, want a few milliseconds", lat[n/2])
	}
}

func withID(o Options, id string) Options {
	o.ReplicaID = id
	return o
}

// TestListFirstLoadMergesAndReconcileFollowsRedis: a replica starting with
// local entries publishes those Redis lacks and loads the others'; a
// removal it missed (the hash changed behind its back) is applied at the
// next reconcile.
func TestListFirstLoadMergesAndReconcileFollowsRedis(t *testing.T) {
	s := redistest.Start(t)
	o := testOptions(s.Addr())
	o.ReconcileInterval = 100 * time.Millisecond
	a := newReplica(t, withID(o, "a"))
	if err := a.allow.Store(detect.Entry{Kind: detect.KindIP, Value: "10.0.0.0/8", Reason: "office"}); err != nil {
		t.Fatal(err)
	}
	b := newReplica(t, withID(o, "b"), func(r *replica) {
		r.block.Put(detect.Entry{Kind: detect.KindUsername, Value: "mallory", Reason: "restored from bbolt"})
	})
	eventually(t, 5*time.Second, "b's local entry on a", func() bool { return a.blocked(detect.KindUsername, "mallory") })
	eventually(t, 5*time.Second, "a's allow range on b", func() bool {
		_, ok := b.allow.Lookup(detect.KindIP, "10.1.2.3", time.Now())
		return ok
	})
	// A removal whose event was lost: only the hash says it.
	s.Do("HDEL", "t:{shared}:list:block", "username:mallory")
	eventually(t, 5*time.Second, "the removal reconciled on a and b", func() bool {
		return !a.blocked(detect.KindUsername, "mallory") && !b.blocked(detect.KindUsername, "mallory")
	})
	eventually(t, time.Second, "the reconciled removal journaled", func() bool { return !b.bj.has(detect.KindUsername, "mallory") })
}

// TestListExpiredEntriesNotLoaded: an entry already expired in Redis is
// neither loaded nor kept in the hash.
func TestListExpiredEntriesNotLoaded(t *testing.T) {
	s := redistest.Start(t)
	old := encodeEntry(detect.Entry{Kind: detect.KindIP, Value: "198.51.100.1", ExpiresAt: time.Now().Add(-time.Minute)})
	live := encodeEntry(detect.Entry{Kind: detect.KindIP, Value: "198.51.100.2", ExpiresAt: time.Now().Add(time.Hour)})
	s.Do("HSET", "t:{shared}:list:block", "ip:198.51.100.1", old, "ip:198.51.100.2", live, "ip:junk", "{not json")
	a := newReplica(t, testOptions(s.Addr()))
	eventually(t, 5*time.Second, "the live entry loaded", func() bool { return a.blocked(detect.KindIP, "198.51.100.2") })
	if a.block.Len() != 1 {
		t.Fatalf("block list holds %d entries, want the live one only", a.block.Len())
	}
	eventually(t, 5*time.Second, "expired and unreadable fields pruned", func() bool {
		return strings.TrimSpace(s.Do("HKEYS", "t:{shared}:list:block")) == "ip:198.51.100.2"
	})
}

// TestReseedAfterRedisRestartedEmpty: Redis restarted without its data:
// the replicas keep their lists (never emptied by the empty Redis), write
// them back, and a new change propagates again.
func TestReseedAfterRedisRestartedEmpty(t *testing.T) {
	s := redistest.Start(t)
	o := testOptions(s.Addr())
	// The follower reconnects before the health round notices the new run
	// id: it must not load the empty Redis meanwhile.
	o.HealthInterval = 700 * time.Millisecond
	a := newReplica(t, withID(o, "a"))
	b := newReplica(t, withID(o, "b"))
	for i, r := range []*replica{a, b} {
		v := fmt.Sprintf("before-%d", i)
		if err := r.block.Store(detect.Entry{Kind: detect.KindUsername, Value: v, Reason: "r", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.allow.Store(detect.Entry{Kind: detect.KindIP, Value: "192.0.2.1", Reason: "ops"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "both entries on both", func() bool {
		return a.blocked(detect.KindUsername, "before-1") && b.blocked(detect.KindUsername, "before-0")
	})
	run := s.Do("GET", "t:runid")
	s.Restart()
	eventually(t, 10*time.Second, "the lists re-seeded", func() bool {
		r, _ := redistest.Command(s.Addr(), "HLEN", "t:{shared}:list:block")
		al, _ := redistest.Command(s.Addr(), "HLEN", "t:{shared}:list:allow")
		return r == "2" && al == "1"
	})
	if got := s.Do("GET", "t:runid"); got == run || got == "" {
		t.Fatalf("run id %q after the restart, was %q", got, run)
	}
	for _, r := range []*replica{a, b} {
		if !r.blocked(detect.KindUsername, "before-0") || !r.blocked(detect.KindUsername, "before-1") {
			t.Fatal("a replica lost entries when Redis came back empty")
		}
	}
	if gauge(t, a.c, "vigil_redis_reseeds_total") < 1 {
		t.Fatal("re-seed not counted")
	}
	if err := b.block.Store(detect.Entry{Kind: detect.KindUsername, Value: "after", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a change after the restart reaches a", func() bool { return a.blocked(detect.KindUsername, "after") })
}

// BenchmarkBlockPropagation measures the time from Store on one replica to
// the entry being enforced on another, both on one local redis-server:
//
//	go test -run '^$' -bench BlockPropagation -benchtime 2000x ./server/cluster/
func BenchmarkBlockPropagation(b *testing.B) {
	s := redistest.Start(b)
	mk := func(id string) (*detect.List, *Cluster) {
		_, block := detect.NewLists()
		o := withID(testOptions(s.Addr()), id)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := Open(ctx, o)
		if err != nil {
			b.Fatal(err)
		}
		c.ShareList("block", block, nil)
		run, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { c.Run(run); close(done) }()
		b.Cleanup(func() { stop(); <-done })
		return block, c
	}
	la, _ := mk("a")
	lb, cb := mk("b")
	for !cb.Up() {
		time.Sleep(time.Millisecond)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v := "bench-" + strconv.Itoa(i)
		start := time.Now()
		if err := la.Store(detect.Entry{Kind: detect.KindUsername, Value: v}); err != nil {
			b.Fatal(err)
		}
		for {
			if _, ok := lb.Lookup(detect.KindUsername, v, time.Now()); ok {
				break
			}
			if time.Since(start) > 5*time.Second {
				b.Fatalf("%s not propagated within 5s", v)
			}
			time.Sleep(20 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "median-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// TestTrimmedStreamDetected: a follower whose last read id is older than
// the stream's oldest entry knows changes were trimmed unread (and reloads).
func TestTrimmedStreamDetected(t *testing.T) {
	s := redistest.Start(t)
	c := open(t, testOptions(s.Addr()))
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, s.Do("XADD", "t:{shared}:events", "*", "k", "x", "o", "ev", "f", "", "v", "", "r", "other"))
	}
	ctx := context.Background()
	if c.trimmedPast(ctx, c.Client(), ids[4]) {
		t.Fatal("a follower that read everything sees a gap")
	}
	s.Do("XTRIM", "t:{shared}:events", "MAXLEN", "2")
	if !c.trimmedPast(ctx, c.Client(), ids[1]) {
		t.Fatal("entries trimmed unread are not noticed")
	}
	if !streamIDLess("5-3", "12-0") || streamIDLess("12-0", "5-3") || !streamIDLess("5-3", "5-4") {
		t.Fatal("stream ids compared as text")
	}
}

// TestReplicaBackDoesNotResurrectDeletedEntries: an entry removed while a
// replica was away is dropped by that replica when it comes back (its
// local journal still holds it), not published again; an entry it made
// alone after the removal is published.
func TestReplicaBackDoesNotResurrectDeletedEntries(t *testing.T) {
	s := redistest.Start(t)
	a := newReplica(t, withID(testOptions(s.Addr()), "a"))
	old := detect.Entry{Kind: detect.KindUsername, Value: "fp-victim", Reason: "false positive", CreatedAt: time.Now().Add(-time.Minute)}
	if err := a.block.Store(old); err != nil {
		t.Fatal(err)
	}
	if _, err := a.block.Remove(detect.KindUsername, "fp-victim"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the removal written", func() bool {
		got, _ := redistest.Command(s.Addr(), "HEXISTS", "t:{shared}:list:block:tomb", "username:fp-victim")
		return got == "1"
	})
	b := newReplica(t, withID(testOptions(s.Addr()), "b"), func(r *replica) {
		r.block.Put(old) // restored from b's journal
		r.block.Put(detect.Entry{Kind: detect.KindUsername, Value: "new-one", Reason: "made alone", CreatedAt: time.Now()})
	})
	eventually(t, 5*time.Second, "b's own new entry reaches a", func() bool { return a.blocked(detect.KindUsername, "new-one") })
	eventually(t, 5*time.Second, "b drops the entry removed while it was away", func() bool {
		return !b.blocked(detect.KindUsername, "fp-victim")
	})
	if a.blocked(detect.KindUsername, "fp-victim") || s.Do("HEXISTS", "t:{shared}:list:block", "username:fp-victim") != "0" {
		t.Fatal("the removed entry came back to the cluster")
	}
	// Put again: the tombstone goes.
	if err := a.block.Store(old); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the tombstone cleared", func() bool {
		got, _ := redistest.Command(s.Addr(), "HEXISTS", "t:{shared}:list:block:tomb", "username:fp-victim")
		return got == "0"
	})
}

// gatedJournal blocks every write until its gate opens: a slow disk.
type gatedJournal struct {
	*memJournal
	gate chan struct{}
}

func (j gatedJournal) PutEntry(e detect.Entry) error { <-j.gate; return j.memJournal.PutEntry(e) }

// TestSlowJournalDelaysNothing: a replica whose local journal is slow (a
// busy disk) still enforces the others' changes at once; the journal
// catches up, in order.
func TestSlowJournalDelaysNothing(t *testing.T) {
	s := redistest.Start(t)
	a := newReplica(t, withID(testOptions(s.Addr()), "a"))
	gate := make(chan struct{})
	bj := gatedJournal{newMemJournal(), gate}
	_, bBlock := detect.NewLists()
	open(t, withID(testOptions(s.Addr()), "b"), func(c *Cluster) { c.ShareList("block", bBlock, bj) })
	t.Cleanup(func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	})
	const n = 50
	for i := 0; i < n; i++ {
		if err := a.block.Store(detect.Entry{Kind: detect.KindUsername, Value: fmt.Sprintf("slow-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "every change enforced on b while its journal is stuck", func() bool {
		_, ok := bBlock.Lookup(detect.KindUsername, fmt.Sprintf("slow-%d", n-1), time.Now())
		return ok && bBlock.Len() == n
	})
	close(gate)
	eventually(t, 5*time.Second, "the journal caught up", func() bool {
		bj.mu.Lock()
		defer bj.mu.Unlock()
		return len(bj.entries) == n
	})
}
