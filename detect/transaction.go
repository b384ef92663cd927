package detect

import (
	"context"
	"sync/atomic"
	"time"
	"unsafe"
)

// Transaction is one API call, request and response joined: what detection
// learns from. Secret identities are fingerprints.
type Transaction struct {
	API    *API
	Host   string
	Method string
	Path   string // raw path without query
	// Template is the path's endpoint template, set by Prepare.
	Template   string
	objectID   string // the path's last ID segment, set by Prepare
	Identities Identities
	UserAgent  string
	// RequestID is Envoy's x-request-id, used to join the parts of one call
	// seen by several filters (ext_authz, ext_proc, an observer).
	RequestID string
	// HasRequest is set when the request side was seen.
	HasRequest bool
	// LoginBody is set when the username identity was read from the body
	// of a login call (API.LoginUsername): the account the attempt is on.
	LoginBody bool

	Status        int   // HTTP status returned to the client; 0 if unknown
	RequestBytes  int64 // request body bytes seen (or declared)
	ResponseBytes int64 // response body bytes seen (or declared)
	JSONElements  int   // largest JSON container in the request body

	Start   time.Time     // request headers seen
	Latency time.Duration // request headers to response headers; 0 if no response

	Reason     Reason // the rule that fired, if any
	Blocked    bool   // Vigil refused the call
	WouldBlock bool   // a rule fired in learn or detect mode
	DecisionID string
	// Complete is set when the response was seen.
	Complete bool
	// Sources says which filters reported the call (SourceExtAuthz, …).
	Sources uint8
	// Content is what content inspection found (nil: nothing); the
	// attack it raises is recorded by the ContentSink.
	Content *ContentFinding
	// Sample is the call's content copied for the profile learner, for a
	// sampled call that inspection let through (nil: not sampled).
	Sample *ContentSample
	// Route says whether the call's method and endpoint template are an
	// endpoint its API is known to have (set by observe.Inventory, a sink
	// that runs before the behaviour engine; RouteUnjudged when no
	// inventory saw the call).
	Route Route

	join joinState
}

// Route is what the API inventory knew of a call's endpoint.
type Route uint8

const (
	// RouteUnjudged: no inventory judged the call.
	RouteUnjudged Route = iota
	// RouteKnown: the method and template are an endpoint the API has
	// answered with success (or declared), so a miss on it is a missing
	// object, not a missing route.
	RouteKnown
	// RouteUnknown: an endpoint the API is not known to have.
	RouteUnknown
)

// Sources of a transaction part.
const (
	SourceExtAuthz uint8 = 1 << iota
	SourceExtProc
	SourceObserver // an ext_proc filter in observability mode
)

// Prepare derives from the path, once per call, what several sinks use:
// the endpoint template and the object the call reads. The pipeline calls
// it before the sinks; each sink calls it too, for callers that feed it
// directly (replay, tests). Not safe for concurrent use: call it before
// sharing t between goroutines.
func (t *Transaction) Prepare() {
	if t.Template != "" {
		return
	}
	var buf [256]byte
	b, id := appendTemplate(buf[:0], t.Path)
	t.Template, t.objectID = string(b), id
}

// ObjectID is the path's last ID segment (the object the call reads), set
// by Prepare; empty when the path has none.
func (t *Transaction) ObjectID() string { return t.objectID }

// Queue is the bounded hand-off from the hot path to the detection pipeline.
// Push never blocks: when the queue is full the record is dropped and counted.
type Queue struct {
	ch      chan *Transaction
	dropped atomic.Uint64
	pushed  atomic.Uint64
}

// NewQueue returns a queue holding at most size records.
func NewQueue(size int) *Queue {
	if size < 1 {
		size = 1
	}
	return &Queue{ch: make(chan *Transaction, size)}
}

// Push hands a record over, or drops it when the queue is full.
func (q *Queue) Push(t *Transaction) bool {
	select {
	case q.ch <- t:
		q.pushed.Add(1)
		return true
	default:
		q.dropped.Add(1)
		return false
	}
}

// PushWait hands a record over, waiting for room until ctx ends. It is for
// offline feeds (pre-training, imports), never for the request path.
func (q *Queue) PushWait(ctx context.Context, t *Transaction) error {
	select {
	case q.ch <- t:
		q.pushed.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Len returns the records waiting.
func (q *Queue) Len() int { return len(q.ch) }

// Cap returns the queue's capacity.
func (q *Queue) Cap() int { return cap(q.ch) }

// Dropped returns how many records were dropped because the queue was full.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }

// Pushed returns how many records were queued.
func (q *Queue) Pushed() uint64 { return q.pushed.Load() }

// Bounds of the strings a detached record keeps.
const (
	maxRecordHost      = 256
	maxRecordPath      = 2048
	maxRecordAgent     = 256
	maxRecordRequestID = 128
	maxRecordShort     = 256 // method, IP, user name
)

// Detach returns a copy of t that shares no memory with the messages it
// was read from: its strings are packed into one new buffer, each cut to a
// bound. A queued or joined record then never keeps an Envoy message (nor
// the credentials in its headers) alive.
func (t *Transaction) Detach() *Transaction {
	c := new(Transaction)
	*c = *t
	c.join = joinState{}
	n := min(len(t.Host), maxRecordHost) + min(len(t.Path), maxRecordPath) + min(len(t.UserAgent), maxRecordAgent) +
		min(len(t.RequestID), maxRecordRequestID) + min(len(t.Method), maxRecordShort) +
		min(len(t.Identities[KindIP]), maxRecordShort) + min(len(t.Identities[KindUsername]), maxRecordShort) +
		min(len(t.DecisionID), maxRecordShort)
	buf := make([]byte, 0, n)
	pack := func(s string, limit int) string {
		if len(s) > limit {
			s = s[:limit]
		}
		if s == "" {
			return ""
		}
		start := len(buf)
		buf = append(buf, s...) // never grows: the capacity is the total
		return unsafe.String(&buf[start], len(s))
	}
	c.Host = pack(t.Host, maxRecordHost)
	c.Path = pack(t.Path, maxRecordPath)
	c.UserAgent = pack(t.UserAgent, maxRecordAgent)
	c.RequestID = pack(t.RequestID, maxRecordRequestID)
	c.Method = pack(t.Method, maxRecordShort)
	c.Identities[KindIP] = pack(t.Identities[KindIP], maxRecordShort)
	c.Identities[KindUsername] = pack(t.Identities[KindUsername], maxRecordShort)
	c.DecisionID = pack(t.DecisionID, maxRecordShort) // may be in a reply's memory (ext_authz)
	return c
}
