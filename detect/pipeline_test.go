package detect

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a Sink that keeps what it is given.
type recorder struct {
	mu  sync.Mutex
	got []*Transaction
	ch  chan *Transaction // optional: also sent here
}

var _ Sink = (*recorder)(nil)

func (r *recorder) Consume(t *Transaction) {
	r.mu.Lock()
	r.got = append(r.got, t)
	r.mu.Unlock()
	if r.ch != nil {
		r.ch <- t
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

const window = 10 * time.Second

// The parts that Envoy's filters report for one call.
func authzPart(id string, at time.Duration) *Transaction {
	return &Transaction{RequestID: id, HasRequest: true, Method: "POST", Path: "/orders", Host: "shop.test",
		Identities: idsAlice, Start: t0.Add(at), RequestBytes: 10, DecisionID: "authz-" + id, Sources: SourceExtAuthz}
}

func responsePart(id string, at time.Duration, status int) *Transaction {
	return &Transaction{RequestID: id, Complete: true, Status: status, ResponseBytes: 99, Start: t0.Add(at), Sources: SourceObserver}
}

func extProcPart(id string, at time.Duration) *Transaction {
	t := authzPart(id, at)
	t.Complete, t.Status, t.Latency, t.ResponseBytes, t.RequestBytes = true, 200, 25*time.Millisecond, 500, 2048
	t.JSONElements = 7
	t.Sources = SourceExtProc
	return t
}

// loginBodyPart is an ext_proc part that read a login's body.
func loginBodyPart(id string) *Transaction {
	t := extProcPart(id, 0)
	t.Identities[KindUsername], t.LoginBody, t.Status = "victim@x.com", true, 401
	return t
}

// joinTests feed TestJoiner: a timeline of parts and flushes, and how many
// calls are handed on after each step.
var joinTests = []struct {
	name  string
	steps []joinStep
	check func(t *testing.T, got []*Transaction)
}{
	{
		name: "request then response",
		steps: []joinStep{
			{at: 0, add: authzPart("a", 0), emitted: 0, pending: 1},
			{at: 30 * time.Millisecond, add: responsePart("a", 30*time.Millisecond, 201), emitted: 1, pending: 1},
		},
		check: func(t *testing.T, got []*Transaction) {
			tx := got[0]
			if !tx.HasRequest || !tx.Complete || tx.Status != 201 || tx.Latency != 30*time.Millisecond ||
				tx.Path != "/orders" || tx.Identities != idsAlice || tx.ResponseBytes != 99 || tx.RequestBytes != 10 || !tx.Start.Equal(t0) {
				t.Errorf("merged %+v", tx)
			}
		},
	},
	{
		name: "response then request",
		steps: []joinStep{
			{at: 40 * time.Millisecond, add: responsePart("a", 40*time.Millisecond, 204), emitted: 0, pending: 1},
			{at: 41 * time.Millisecond, add: authzPart("a", 0), emitted: 1, pending: 1},
		},
		check: func(t *testing.T, got []*Transaction) {
			tx := got[0]
			if tx.Status != 204 || tx.Latency != 40*time.Millisecond || !tx.Start.Equal(t0) || tx.Method != "POST" {
				t.Errorf("merged %+v", tx)
			}
		},
	},
	{
		name: "blocked request part is handed on at once, its response absorbed",
		steps: []joinStep{
			{at: 0, add: func() *Transaction {
				p := authzPart("a", 0)
				p.Blocked, p.Reason, p.Status, p.DecisionID = true, ReasonBlockList, 403, "deny-1"
				return p
			}(), emitted: 1, pending: 1},
			{at: time.Millisecond, add: responsePart("a", time.Millisecond, 403), emitted: 1, pending: 1},
			{at: window + time.Millisecond, flush: true, emitted: 1, pending: 0},
		},
		check: func(t *testing.T, got []*Transaction) {
			if tx := got[0]; !tx.Blocked || tx.Reason != ReasonBlockList || tx.DecisionID != "deny-1" || tx.Complete {
				t.Errorf("handed on %+v", tx)
			}
		},
	},
	{
		name: "parts without request id pass straight through",
		steps: []joinStep{
			{at: 0, add: &Transaction{HasRequest: true}, emitted: 1, pending: 0},
			{at: 0, add: &Transaction{Complete: true}, emitted: 2, pending: 0},
		},
	},
	{
		name: "whole ext_proc part, late observer part absorbed",
		steps: []joinStep{
			{at: 0, add: extProcPart("a", 0), emitted: 1, pending: 1},
			{at: 9 * time.Second, add: responsePart("a", 9*time.Second, 500), emitted: 1, pending: 1},
		},
		check: func(t *testing.T, got []*Transaction) {
			if got[0].Status != 200 {
				t.Errorf("late part changed the handed-on call: %+v", got[0])
			}
		},
	},
	{
		// ext_authz without the body knows the header's user name; the
		// ext_proc part read the login's body: the account tried wins.
		name: "the login body's user name wins",
		steps: []joinStep{
			{at: 0, add: authzPart("a", 0), emitted: 0, pending: 1},
			{at: time.Millisecond, add: loginBodyPart("a"), emitted: 1, pending: 1},
		},
		check: func(t *testing.T, got []*Transaction) {
			for _, tx := range got {
				if tx.Identities[KindUsername] != "victim@x.com" || !tx.LoginBody || tx.Identities[KindToken] != idsAlice[KindToken] {
					t.Errorf("merged %s: %q", tx.RequestID, tx.Identities)
				}
			}
		},
	},
	{
		name: "ext_authz and ext_proc parts, then observer",
		steps: []joinStep{
			{at: 0, add: authzPart("a", 0), emitted: 0, pending: 1},
			{at: 5 * time.Second, add: func() *Transaction {
				p := extProcPart("a", time.Millisecond)
				p.WouldBlock, p.Reason, p.DecisionID = true, ReasonTooManyElements, "would-1"
				return p
			}(), emitted: 1, pending: 1},
			// Absorbed for a window from when the call was handed on, not
			// from its first part.
			{at: 14 * time.Second, add: responsePart("a", 14*time.Second, 200), emitted: 1, pending: 1},
			{at: 15*time.Second + time.Millisecond, flush: true, emitted: 1, pending: 0},
		},
		check: func(t *testing.T, got []*Transaction) {
			tx := got[0]
			if !tx.WouldBlock || tx.Blocked || tx.Reason != ReasonTooManyElements || tx.DecisionID != "would-1" ||
				tx.RequestBytes != 2048 || tx.JSONElements != 7 || tx.Latency != 25*time.Millisecond || !tx.Start.Equal(t0) {
				t.Errorf("merged %+v", tx)
			}
		},
	},
	{
		name: "window expiry hands on an incomplete call and absorbs its late part",
		steps: []joinStep{
			{at: 0, add: authzPart("a", 0), emitted: 0, pending: 1},
			{at: window - time.Nanosecond, flush: true, emitted: 0, pending: 1},
			{at: window, flush: true, emitted: 1, pending: 1},
			{at: window + time.Second, add: responsePart("a", window+time.Second, 200), emitted: 1, pending: 1},
			{at: 2 * window, flush: true, emitted: 1, pending: 0},
		},
		check: func(t *testing.T, got []*Transaction) {
			if got[0].Complete || !got[0].HasRequest {
				t.Errorf("handed on %+v", got[0])
			}
		},
	},
	{
		name: "a part hands on the expired calls before it",
		steps: []joinStep{
			{at: 0, add: authzPart("a", 0), emitted: 0, pending: 1},
			// Two filters report (b's response part is an observer's):
			// b waits for its request part; a is handed on first.
			{at: window, add: responsePart("b", window, 200), emitted: 1, pending: 2},
		},
		check: func(t *testing.T, got []*Transaction) {
			if got[0].RequestID != "a" {
				t.Errorf("handed on %q", got[0].RequestID)
			}
		},
	},
	{
		name: "flush all",
		steps: []joinStep{
			{at: 0, add: authzPart("a", 0), emitted: 0, pending: 1},
			{at: 0, add: responsePart("b", 0, 200), emitted: 0, pending: 2},
			{at: 0, add: extProcPart("c", 0), emitted: 1, pending: 3},
			{at: time.Second, flush: true, all: true, emitted: 3, pending: 0},
		},
	},
}

type joinStep struct {
	at      time.Duration
	add     *Transaction // nil: flush
	flush   bool
	all     bool
	emitted int
	pending int
}

func TestJoiner(t *testing.T) {
	for _, tc := range joinTests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			j := NewJoiner(window, 100, rec)
			for i, s := range tc.steps {
				if s.add != nil {
					// A copy: the joiner merges into what it is given, and
					// the table must stay the same for -count > 1.
					part := *s.add
					j.Add(&part, t0.Add(s.at))
				} else {
					j.Flush(t0.Add(s.at), s.all)
				}
				if rec.count() != s.emitted || j.Pending() != s.pending {
					t.Fatalf("after step %d: %d handed on, %d pending; want %d, %d", i, rec.count(), j.Pending(), s.emitted, s.pending)
				}
			}
			if tc.check != nil {
				tc.check(t, rec.got)
			}
		})
	}
}

func TestJoinerMaxPending(t *testing.T) {
	rec := &recorder{}
	j := NewJoiner(window, 2, rec)
	j.Add(authzPart("a", 0), t0)
	j.Add(extProcPart("b", 0), t0) // handed on, absorbing
	j.Add(authzPart("c", 0), t0)   // over the bound: "a", the oldest, goes
	if rec.count() != 2 || rec.got[1].RequestID != "a" || j.Pending() != 2 {
		t.Fatalf("handed on %d (%v), pending %d", rec.count(), rec.got, j.Pending())
	}
	j.Add(authzPart("d", 0), t0) // "b" goes, already handed on: nothing more
	if rec.count() != 2 || j.Pending() != 2 {
		t.Fatalf("handed on %d, pending %d", rec.count(), j.Pending())
	}
}

// TestJoinerSteadyState pushes many calls through with a moving clock: each
// is handed on exactly once, and the joiner's memory stays bounded.
func TestJoinerSteadyState(t *testing.T) {
	counts := map[string]int{}
	j := NewJoiner(window, 1<<20, sinkFunc(func(tx *Transaction) { counts[tx.RequestID]++ }))
	now := t0
	for i := 0; i < 20000; i++ {
		now = now.Add(5 * time.Millisecond)
		id := fmt.Sprint("r", i)
		j.Add(authzPart(id, now.Sub(t0)), now)
		if i >= 3 {
			prev := fmt.Sprint("r", i-3)
			j.Add(responsePart(prev, now.Sub(t0), 200), now)
			j.Add(responsePart(prev, now.Sub(t0), 200), now) // a duplicate observer part
		}
		if i%100 == 0 {
			j.Flush(now, false)
		}
		if live := len(j.order) - j.head; live > 3*j.Pending()+1 {
			t.Fatalf("step %d: %d deadlines for %d pending calls", i, live, j.Pending())
		}
	}
	if cap(j.order) > 8*j.Pending()+4096 {
		t.Fatalf("order keeps %d slots for %d pending calls", cap(j.order), j.Pending())
	}
	j.Flush(now.Add(window), false)   // the last calls: handed on incomplete
	j.Flush(now.Add(2*window), false) // and forgotten a window later
	if j.Pending() != 0 {
		t.Fatalf("%d calls still pending", j.Pending())
	}
	if len(counts) != 20000 {
		t.Fatalf("%d calls handed on, want 20000", len(counts))
	}
	for id, n := range counts {
		if n != 1 {
			t.Fatalf("call %s handed on %d times", id, n)
		}
	}
}

// TestJoinerOneSource: when one filter alone reports, its calls go straight
// on once the first window has passed; the first part from a second
// filter turns joining back on, and two filters keep joining however quiet
// the traffic.
func TestJoinerOneSource(t *testing.T) {
	rec := &recorder{}
	j := NewJoiner(window, 100, rec)
	j.Add(authzPart("a", 0), t0) // a new joiner waits: ext_proc may be there
	if rec.count() != 0 || j.Pending() != 1 {
		t.Fatalf("first part: %d handed on, %d pending", rec.count(), j.Pending())
	}
	later := t0.Add(window)
	j.Add(authzPart("b", window), later) // "a" expires; "b" goes straight on: one source
	if rec.count() != 2 || rec.got[0].RequestID != "a" || rec.got[1].RequestID != "b" || j.Pending() != 1 {
		t.Fatalf("after the first window: %d handed on (%v first), %d pending; want a, then b straight on, a absorbing", rec.count(), rec.got, j.Pending())
	}
	j.Flush(later.Add(window), false) // "a" has absorbed late parts for a window: forgotten
	if rec.count() != 2 || j.Pending() != 0 {
		t.Fatalf("after the first window: %d handed on, %d pending", rec.count(), j.Pending())
	}
	at := later.Add(2 * window)
	j.Add(authzPart("c", at.Sub(t0)), at)
	if rec.count() != 3 || j.Pending() != 0 {
		t.Fatalf("one source: %d handed on, %d pending; want it straight on", rec.count(), j.Pending())
	}
	// ext_proc appears: from now on parts wait for their partners.
	j.Add(extProcPart("d", at.Sub(t0)), at)
	j.Add(authzPart("e", at.Sub(t0)), at)
	j.Add(responsePart("e", at.Sub(t0), 200), at)
	if rec.count() != 5 || rec.got[4].RequestID != "e" || !rec.got[4].Complete {
		t.Fatalf("two sources: %d handed on, last %+v", rec.count(), rec.got[rec.count()-1])
	}
	// Quiet traffic, both filters still deployed: still joined.
	quiet := at.Add(topologyMemory - time.Minute)
	j.Flush(quiet, false)
	j.Add(authzPart("f", quiet.Sub(t0)), quiet)
	if j.Pending() != 1 {
		t.Fatalf("quiet traffic with two filters: %d pending, want the part to wait", j.Pending())
	}
}

// Steady traffic from one filter alone (ext_authz only): past the first
// window every call is handed on as it comes, none waits a window for a
// partner that never reports, and nothing stays held.
func TestJoinerOneSourceSteadyTraffic(t *testing.T) {
	rec := &recorder{}
	j := NewJoiner(window, 10_000, rec)
	const calls = 600 // ten a second for a minute
	for i := range calls {
		at := time.Duration(i) * 100 * time.Millisecond
		before := rec.count()
		j.Add(authzPart(fmt.Sprint("call-", i), at), t0.Add(at))
		if at > window && rec.count() == before {
			t.Fatalf("call %d, %s in: held (%d pending), want it handed on at once", i, at, j.Pending())
		}
	}
	if n := j.Pending(); n != 0 {
		t.Fatalf("%d calls still held after a minute of one source", n)
	}
	if rec.count() != calls {
		t.Fatalf("%d of %d calls handed on", rec.count(), calls)
	}
}

type sinkFunc func(*Transaction)

func (f sinkFunc) Consume(t *Transaction) { f(t) }

func TestQueuePushNeverBlocks(t *testing.T) {
	q := NewQueue(2)
	for i := 0; i < 2; i++ {
		if !q.Push(&Transaction{}) {
			t.Fatalf("push %d refused", i)
		}
	}
	for i := 0; i < 3; i++ {
		if q.Push(&Transaction{}) {
			t.Fatal("push into a full queue accepted")
		}
	}
	if q.Len() != 2 || q.Cap() != 2 || q.Pushed() != 2 || q.Dropped() != 3 {
		t.Fatalf("len %d cap %d pushed %d dropped %d", q.Len(), q.Cap(), q.Pushed(), q.Dropped())
	}
	if NewQueue(0).Cap() != 1 {
		t.Fatal("NewQueue(0) has no room")
	}
}

// TestQueuePushWait waits for room instead of dropping, and gives up when
// its context ends.
func TestQueuePushWait(t *testing.T) {
	q := NewQueue(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.PushWait(ctx, &Transaction{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- q.PushWait(ctx, &Transaction{Method: "second"}) }()
	<-q.ch // room for the waiting push
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("PushWait did not take the room")
	}
	if got := <-q.ch; got.Method != "second" || q.Dropped() != 0 || q.Pushed() != 2 {
		t.Fatalf("got %q, dropped %d, pushed %d", got.Method, q.Dropped(), q.Pushed())
	}
	short, stop := context.WithCancel(ctx)
	q.Push(&Transaction{})
	stop()
	if err := q.PushWait(short, &Transaction{}); err != context.Canceled {
		t.Fatalf("full queue, cancelled context: %v", err)
	}
}

// TestPipelineRun hands a joined call and a loose part through a running
// pipeline, then stops it: what is queued is drained and flushed.
func TestPipelineRun(t *testing.T) {
	q := NewQueue(16)
	rec := &recorder{ch: make(chan *Transaction, 16)}
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p := NewPipeline(q, window, clock, rec)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()

	q.Push(authzPart("a", 0))
	q.Push(responsePart("a", time.Millisecond, 200))
	select {
	case tx := <-rec.ch:
		if tx.RequestID != "a" || !tx.Complete || !tx.HasRequest {
			t.Fatalf("handed on %+v", tx)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("joined call not handed on")
	}

	q.Push(authzPart("b", 0)) // incomplete: only the final flush hands it on
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if rec.count() != 2 || rec.got[1].RequestID != "b" {
		t.Fatalf("handed on %d calls", rec.count())
	}
}

// TestPipelineRunDrainsOnCancel starts a pipeline whose context is already
// done: every queued part still reaches the sinks, each sink sees it.
func TestPipelineRunDrainsOnCancel(t *testing.T) {
	q := NewQueue(16)
	a, b := &recorder{}, &recorder{}
	p := NewPipeline(q, window, func() time.Time { return t0 }, a, b)
	q.Push(authzPart("x", 0))
	q.Push(&Transaction{HasRequest: true})
	q.Push(responsePart("x", time.Millisecond, 200))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Run(ctx)
	if a.count() != 2 || b.count() != 2 || q.Len() != 0 {
		t.Fatalf("sinks got %d and %d, %d left queued", a.count(), b.count(), q.Len())
	}
}

// BenchmarkJoiner joins a request and a response part per call, with about
// 10,000 calls inside the window.
func BenchmarkJoiner(b *testing.B) {
	j := NewJoiner(window, 1<<20, sinkFunc(func(*Transaction) {}))
	ids := make([]string, 1<<16) // more than live in one window: no reuse inside it
	for i := range ids {
		ids[i] = fmt.Sprint("req-", i)
	}
	req, resp := authzPart("", 0), responsePart("", time.Millisecond, 200)
	b.ReportAllocs()
	now := t0
	i := 0
	for b.Loop() {
		now = now.Add(time.Millisecond)
		q, r := *req, *resp // producers hand over fresh records
		q.RequestID, r.RequestID = ids[i%len(ids)], ids[i%len(ids)]
		j.Add(&q, now)
		j.Add(&r, now)
		i++
	}
}

// TestPipelineWarnsOfDroppedRecords: records dropped at a full queue are
// reported by the pipeline goroutine, with the count since the last
// warning, at most once per interval, and once more when it stops.
func TestPipelineWarnsOfDroppedRecords(t *testing.T) {
	q := NewQueue(4)
	var clock atomic.Int64
	clock.Store(t0.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	rec := &recorder{ch: make(chan *Transaction)} // the pipeline waits for each receive
	p := NewPipeline(q, 0, now, rec)
	type warning struct {
		n, total uint64
		at       time.Time
	}
	warnings := make(chan warning, 10)
	p.Watch(Watch{Count: q.Dropped, Every: 10 * time.Second, Warn: func(n, total uint64) { warnings <- warning{n, total, now()} }})
	next := func() warning {
		t.Helper()
		select {
		case w := <-warnings:
			return w
		case <-time.After(5 * time.Second):
			t.Fatal("no warning within 5s")
			return warning{}
		}
	}
	// held waits until the pipeline has taken n records, the last one
	// held in the sink.
	held := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); rec.count() < n; runtime.Gosched() {
			if time.Now().After(deadline) {
				t.Fatalf("the pipeline took %d records in 5s, want %d", rec.count(), n)
			}
		}
	}
	// fill pushes until the queue is full, then drops more; the pipeline
	// is held in the sink, so nothing is taken meanwhile.
	fill := func(drops int) {
		t.Helper()
		for q.Len() < q.Cap() {
			q.Push(&Transaction{HasRequest: true})
		}
		for range drops {
			if q.Push(&Transaction{HasRequest: true}) {
				t.Fatal("a record was queued in a full queue")
			}
		}
	}
	fill(10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	for range 4 {
		<-rec.ch
	}
	if w := next(); w.n != 10 || w.total != 10 {
		t.Fatalf("first warning %+v, want 10 dropped", w)
	}

	// Hold the pipeline in the sink, drop 5 more, let it go.
	q.Push(&Transaction{HasRequest: true})
	held(5)
	fill(5)
	for range 5 {
		<-rec.ch
	}
	clock.Add(int64(10 * time.Second)) // the next warning is due only now
	if w := next(); w.n != 5 || w.total != 15 || w.at.Before(t0.Add(10*time.Second)) {
		t.Fatalf("second warning %+v, want 5 more (15) no sooner than 10s after the first", w)
	}

	// Drops just before shutdown are reported at once, interval or not.
	q.Push(&Transaction{HasRequest: true})
	held(10)
	fill(3)
	cancel()
	go func() {
		for range rec.ch {
		}
	}()
	if w := next(); w.n != 3 || w.total != 18 {
		t.Fatalf("warning at shutdown %+v, want 3 more (18)", w)
	}
	<-done
	close(rec.ch)
	if len(warnings) != 0 {
		t.Fatalf("more warnings than drops: %+v", <-warnings)
	}
}

// TestPipelineLimitPending: with only ext_authz in front of an API, no
// part ever completes a call, so every call would wait its whole join
// window; past LimitPending the oldest are handed on at once, and the
// calls held stay at the limit.
func TestPipelineLimitPending(t *testing.T) {
	const calls, limit = 1000, 100
	q := NewQueue(calls)
	rec := &recorder{}
	p := NewPipeline(q, time.Hour, func() time.Time { return t0 }, rec)
	p.LimitPending(limit)
	for i := range calls {
		q.Push(authzPart(fmt.Sprintf("r%d", i), 0))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	for deadline := time.Now().Add(10 * time.Second); rec.count() < calls-limit; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls handed on within the hour-long window, want %d", rec.count(), calls-limit)
		}
	}
	cancel()
	<-done
	if rec.count() != calls {
		t.Fatalf("%d calls handed on after the final flush, want %d", rec.count(), calls)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i, tx := range rec.got[:calls-limit] {
		if want := fmt.Sprintf("r%d", i); tx.RequestID != want {
			t.Fatalf("call %d handed on is %s, want the oldest first (%s)", i, tx.RequestID, want)
		}
	}
}
