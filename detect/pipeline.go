package detect

import (
	"context"
	"strings"
	"time"
)

// Sink consumes transactions in the pipeline.
type Sink interface {
	Consume(t *Transaction)
}

// Pipeline moves transactions from the queue to the sinks, joining first the
// parts of one call that several Envoy filters report separately.
type Pipeline struct {
	queue   *Queue
	join    *Joiner
	now     func() time.Time
	tick    time.Duration
	watches []watch
}

// Watch is a counter of trouble the pipeline looks at after each poll
// (never the request path, which only counts): when the count has grown,
// Warn is called with the growth since the last call and the total, at
// most once per Every, and once more when the pipeline stops.
type Watch struct {
	Count func() uint64
	Warn  func(n, total uint64)
	Every time.Duration
}

type watch struct {
	Watch
	last     uint64
	warnedAt time.Time
}

// NewPipeline returns a pipeline that joins parts for up to window and hands
// whole transactions to the sinks.
func NewPipeline(q *Queue, window time.Duration, now func() time.Time, sinks ...Sink) *Pipeline {
	tick := window / 4
	if tick <= 0 || tick > time.Second {
		tick = time.Second
	}
	return &Pipeline{queue: q, join: NewJoiner(window, 1<<20, fanOut(sinks)), now: now, tick: tick}
}

// LimitPending bounds the calls waiting for their other parts (1<<20 by
// default); past it the oldest is handed on as it is. Call it before Run.
// With only ext_authz in front of an API, every call waits its whole join
// window for an ext_proc part that never comes: at 20,000 calls a second
// and a 5 s window that is 100,000 records, so serve bounds them from its
// memory budget.
func (p *Pipeline) LimitPending(n int) { p.join.max = max(n, 1) }

// Watch adds counters to look at; call it before Run. What they counted
// before is not reported.
func (p *Pipeline) Watch(ws ...Watch) {
	for _, w := range ws {
		p.watches = append(p.watches, watch{Watch: w, last: w.Count()})
	}
}

// check calls the warnings due at now; all calls every warning whatever
// its interval.
func (p *Pipeline) check(now time.Time, all bool) {
	for i := range p.watches {
		w := &p.watches[i]
		c := w.Count()
		if c == w.last || !all && !w.warnedAt.IsZero() && now.Sub(w.warnedAt) < w.Every {
			continue
		}
		w.Warn(c-w.last, c)
		w.last, w.warnedAt = c, now
	}
}

// pollInterval is how often the pipeline takes what the request path
// queued. The pipeline polls rather than waits on the queue: a goroutine
// waiting on a channel is woken by every send, on the sender's own
// processor and ahead of it (Go's runnext), so each call would put the
// pipeline's work on the request path. A few milliseconds of delay in
// detection cost nothing; the batch also shares one clock reading.
const pollInterval = 2 * time.Millisecond

// Run consumes until ctx ends, then drains what is queued and flushes every
// pending part.
func (p *Pipeline) Run(ctx context.Context) {
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	flush := time.NewTicker(p.tick)
	defer flush.Stop()
	for {
		select {
		case <-poll.C:
			p.drain()
			if len(p.watches) > 0 {
				p.check(p.now(), false)
			}
		case <-flush.C:
			p.drain()
			p.join.Flush(p.now(), false)
		case <-ctx.Done():
			for p.drain() {
			}
			p.join.Flush(p.now(), true)
			p.check(p.now(), true)
			return
		}
	}
}

// drain hands on what is queued, at most one queue's worth, and reports
// whether it stopped before the queue was empty.
func (p *Pipeline) drain() bool {
	now := p.now()
	for range cap(p.queue.ch) {
		select {
		case tx := <-p.queue.ch:
			p.join.Add(tx, now)
		default:
			return false
		}
	}
	return true
}

type fanOut []Sink

func (f fanOut) Consume(t *Transaction) {
	t.Prepare()
	for _, s := range f {
		s.Consume(t)
	}
}

// Joiner merges the parts of one call that share an x-request-id: ext_authz
// reports the request, ext_proc the request and response, an observability
// filter the response. A call is handed on once both sides are known (or it
// was refused, so no response will come), or when window has passed.
// Parts arriving after their call was handed on, whichever way, are absorbed
// for another window, so a call is never counted twice.
//
// Joining costs a map entry per call held for two windows. A deployment
// where one filter alone reports (ext_authz only, or ext_proc only) has
// nothing to join, so once only one source has reported for
// topologyMemory (and the first window has passed), its calls go
// straight on. The first part from another source switches joining back
// on; only the calls in flight at that moment may then count twice.
type Joiner struct {
	next    Sink
	window  time.Duration
	max     int
	pending map[string]*Transaction // by RequestID
	order   []joinRef               // FIFO of deadlines, by time of scheduling
	head    int

	started time.Time
	seen    [8]time.Time // last part from each source bit
}

// topologyMemory is how long a filter that stopped reporting still counts
// as part of the deployment: low-traffic APIs keep joining.
const topologyMemory = time.Hour

// joinState is the joiner's bookkeeping, kept in the transaction itself so
// that joining allocates nothing per call.
type joinState struct {
	gen uint32 // bumped when the call is scheduled again
	// done is set once the call was handed on; it then only absorbs late
	// parts until its deadline.
	done bool
}

// joinRef is one deadline of a call; it is stale when the call was
// scheduled again since.
type joinRef struct {
	tx       *Transaction
	gen      uint32
	deadline time.Time
}

// NewJoiner returns a joiner that waits window for missing parts and keeps at
// most max calls pending.
func NewJoiner(window time.Duration, max int, next Sink) *Joiner {
	return &Joiner{next: next, window: window, max: max, pending: make(map[string]*Transaction)}
}

func whole(t *Transaction) bool { return (t.HasRequest && t.Complete) || t.Blocked }

// joining reports whether parts must wait for their partners: more than
// one source reported within topologyMemory, or the joiner is new.
func (j *Joiner) joining(sources uint8, now time.Time) bool {
	if j.started.IsZero() {
		j.started = now
	}
	for b := range len(j.seen) {
		if sources&(1<<b) != 0 {
			j.seen[b] = now
		}
	}
	if now.Sub(j.started) < j.window {
		return true // a partner from another filter may be on its way
	}
	active := 0
	for _, at := range j.seen {
		if !at.IsZero() && now.Sub(at) < topologyMemory {
			active++
		}
	}
	return active > 1
}

// Add takes one part.
func (j *Joiner) Add(t *Transaction, now time.Time) {
	if t.RequestID == "" {
		j.next.Consume(t)
		return
	}
	if !j.joining(t.Sources, now) {
		// One filter reports: nothing to wait for, but the calls still
		// held from before (their window, or absorbing late parts) and a
		// part of one of them.
		if len(j.pending) > 0 {
			j.Flush(now, false)
		}
		if _, held := j.pending[t.RequestID]; !held {
			t.join = joinState{done: true}
			j.next.Consume(t)
			return
		}
	}
	if e, ok := j.pending[t.RequestID]; ok {
		// The ID comes from the request and may be the client's: a part
		// that is not the missing piece of this call (a filter reporting
		// twice, or a request after the call was handed on) is a call of
		// its own, never dropped.
		if e.Sources&t.Sources != 0 || (e.join.done && t.HasRequest) {
			if t.HasRequest {
				j.next.Consume(t)
			}
			return
		}
		if e.join.done {
			return // a late response part of a call already handed on
		}
		merge(e, t)
		if whole(e) {
			j.handOn(e)
			j.schedule(e, now) // absorb late parts for a window from now
		}
		return
	}
	// The ID may share the bytes of Envoy's message: the map keeps a copy.
	t.RequestID = strings.Clone(t.RequestID)
	t.join = joinState{}
	if whole(t) {
		j.handOn(t)
	}
	j.pending[t.RequestID] = t
	j.schedule(t, now)
	for len(j.pending) > j.max {
		j.pop(true)
	}
	j.Flush(now, false)
}

// Flush hands on the calls whose window has passed (all of them when all is
// set) and forgets the ones that absorbed late parts for a window.
func (j *Joiner) Flush(now time.Time, all bool) {
	for j.head < len(j.order) {
		if !all && now.Before(j.order[j.head].deadline) {
			break
		}
		if e := j.pop(all); e != nil {
			// Handed on by its deadline: absorb its late parts too.
			j.schedule(e, now)
		}
	}
	if j.head > 1024 && j.head*2 > len(j.order) {
		j.order = append(j.order[:0], j.order[j.head:]...)
		j.head = 0
	}
}

func (j *Joiner) handOn(t *Transaction) {
	t.join.done = true
	j.next.Consume(t)
}

func (j *Joiner) schedule(t *Transaction, now time.Time) {
	t.join.gen++
	j.order = append(j.order, joinRef{tx: t, gen: t.join.gen, deadline: now.Add(j.window)})
}

// pop takes the oldest deadline. A pending call is handed on; then, unless
// forget is set, it is returned so that it absorbs late parts. A call that
// was handed on already is forgotten.
func (j *Joiner) pop(forget bool) *Transaction {
	r := j.order[j.head]
	j.order[j.head] = joinRef{}
	j.head++
	t := r.tx
	if r.gen != t.join.gen {
		return nil // scheduled again later
	}
	if !t.join.done {
		j.handOn(t)
		if !forget {
			return t
		}
	}
	if j.pending[t.RequestID] == t {
		delete(j.pending, t.RequestID)
	}
	return nil
}

// Pending returns how many calls wait for parts or absorb late ones.
func (j *Joiner) Pending() int { return len(j.pending) }

// merge folds part p into t.
func merge(t, p *Transaction) {
	if p.HasRequest {
		if !t.HasRequest {
			if t.Complete && t.Latency == 0 && !p.Start.IsZero() && t.Start.After(p.Start) {
				// The response came first: its Start is when it was seen.
				t.Latency = t.Start.Sub(p.Start)
			}
			t.API, t.Host, t.Method, t.Path = p.API, p.Host, p.Method, p.Path
			t.Identities, t.UserAgent = p.Identities, p.UserAgent
			t.Start = p.Start
			t.HasRequest = true
			t.LoginBody = p.LoginBody
		} else if p.LoginBody && !t.LoginBody {
			// The part that read a login's body (ext_proc, when ext_authz
			// got no body) knows the account the attempt is on.
			t.Identities[KindUsername] = p.Identities[KindUsername]
			t.LoginBody = true
		}
		t.RequestBytes = max(t.RequestBytes, p.RequestBytes)
		t.JSONElements = max(t.JSONElements, p.JSONElements)
		if t.Reason == ReasonNone {
			t.Reason = p.Reason
		}
		if t.DecisionID == "" || (p.Blocked || p.WouldBlock) && !(t.Blocked || t.WouldBlock) {
			t.DecisionID = p.DecisionID
		}
		t.Blocked = t.Blocked || p.Blocked
		t.WouldBlock = t.WouldBlock || p.WouldBlock
		if t.Content == nil {
			t.Content = p.Content
		}
		if t.Sample == nil {
			t.Sample = p.Sample
		}
	}
	if p.Complete {
		if p.Status != 0 && (t.Status == 0 || !t.Complete) {
			t.Status = p.Status
		}
		t.ResponseBytes = max(t.ResponseBytes, p.ResponseBytes)
		if p.Latency > 0 {
			t.Latency = p.Latency
		}
		t.Complete = true
	}
	t.Sources |= p.Sources
	if t.Complete && t.Latency == 0 && p.Complete && !p.HasRequest && !t.Start.IsZero() && p.Start.After(t.Start) {
		t.Latency = p.Start.Sub(t.Start)
	}
}
