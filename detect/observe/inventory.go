package observe

import (
	"github.com/vigil-project/vigil/detect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Inventory is the API inventory built from traffic: configured and
// discovered APIs with their endpoint templates and counts.
//
// Clients choose paths, so the inventory keeps what the APIs showed to be
// real. A call to a path that is no endpoint yet, answered 400, 404 or 405,
// is a miss: counted per API, never an endpoint; one Vigil refused itself
// adds no endpoint either. It is bounded: at an API's
// endpoint limit, a new endpoint answered 2xx or 3xx takes the place of the
// least recently called endpoint that was never answered 2xx or 3xx (a
// scanner's paths answered 401, 403 or 5xx, or ones whose answer Vigil did
// not see); other new endpoints, and new discovered APIs past their limit,
// are counted as overflow.
//
// Consume also says what it knew of each call's endpoint, in its Route,
// for the behaviour engine that runs after it: RouteKnown when the call's
// method and template ("GET /items/{id}") are an endpoint the API answered
// 2xx or 3xx at least once, this call included (so a 404 on it is a
// missing object, not a missing route); RouteUnknown when they are not (a
// path or a method the API never answered with success: a 404 on
// /items/{id}/export, a 405 on DELETE /items/{id}); RouteUnjudged when the
// inventory cannot tell: a call to an endpoint or an API it holds no
// record of while at a limit (the limit may have turned the endpoint away:
// proven endpoints are never given up, but one past the limit is never
// admitted), or one Vigil refused or whose answer it did not see, on an API
// whose answers it never saw (ext_authz alone). A call Vigil refused
// itself is judged by its path only: a decoy's 200 proves nothing. The
// endpoints an API's OpenAPI document declares are not known before
// traffic proves them: a call off the document is already a
// schema_violation, and the inventory holds no document (detect/spec's
// Mark reads it on the admin API's side). Restore brings the proven
// endpoints back, so routes stay known across a restart.
type Inventory struct {
	mu           sync.Mutex
	apis         map[string]*apiRecord
	discovered   int // records of discovered APIs, bounded by maxAPIs
	maxAPIs      int
	maxEndpoints int
	maxBytes     int64 // 0: no byte budget; under mu

	// Read without the lock (metrics, the pipeline's warnings).
	overflowAPIs, overflowEndpoints, evicted, misses atomic.Uint64
	lastOverflowAPI                                  string // under mu
	// bytes estimates the heap bytes of the records, kept as they change.
	bytes atomic.Int64
}

type apiRecord struct {
	name       string
	basePath   string
	hosts      map[string]struct{}
	configured *detect.API
	first      time.Time
	last       time.Time
	requests   uint64
	blocked    uint64
	wouldBlock uint64
	endpoints  map[string]*endpointRecord // by "METHOD template"
	activity   *activity                  // never nil
	overflow   uint64
	misses     uint64
	evicted    uint64
	// weak lists the endpoints never answered 2xx or 3xx, least recently
	// called first: the ones given up at the endpoint limit.
	weak endpointList
	// answered is set once the API answered a call 2xx or 3xx: its
	// answers are seen, so an endpoint it never proved is not one it has.
	answered bool
}

type endpointRecord struct {
	key         string // "METHOD template"
	first, last int64  // unix nanoseconds (zeroTime: none), as forensics keep them
	requests    uint64
	status      [6]uint64 // unknown, 1xx … 5xx
	prev, next  *endpointRecord
	methodLen   uint32 // the method is key[:methodLen], the template after the space
	firstLoc    uint8
	lastLoc     uint8
	listed      bool // on its API's weak list
}

func newEndpoint(key string, methodLen int) *endpointRecord {
	return &endpointRecord{key: key, methodLen: uint32(methodLen), first: zeroTime, last: zeroTime}
}

func (ep *endpointRecord) method() string { return ep.key[:ep.methodLen] }
func (ep *endpointRecord) path() string   { return ep.key[ep.methodLen+1:] }

// widen extends the endpoint's span [first, last] to cover when; zero
// times are unknown.
func (ep *endpointRecord) widen(when time.Time) {
	if when.IsZero() {
		return
	}
	w, loc := stamp(when), locationID(when)
	if ep.first == zeroTime || w < ep.first {
		ep.first, ep.firstLoc = w, loc
	}
	if w > ep.last {
		ep.last, ep.lastLoc = w, loc
	}
}

// proven reports whether the endpoint was ever answered 2xx or 3xx.
func (ep *endpointRecord) proven() bool { return ep.status[2] > 0 || ep.status[3] > 0 }

// endpointList is a doubly linked list of endpoints, oldest first.
type endpointList struct{ head, tail *endpointRecord }

func (l *endpointList) push(ep *endpointRecord) {
	ep.prev, ep.next, ep.listed = l.tail, nil, true
	if l.tail != nil {
		l.tail.next = ep
	} else {
		l.head = ep
	}
	l.tail = ep
}

func (l *endpointList) remove(ep *endpointRecord) {
	if ep.prev != nil {
		ep.prev.next = ep.next
	} else {
		l.head = ep.next
	}
	if ep.next != nil {
		ep.next.prev = ep.prev
	} else {
		l.tail = ep.prev
	}
	ep.prev, ep.next, ep.listed = nil, nil, false
}

// APIStats is the inventory's view of one API.
type APIStats struct {
	Name       string          `json:"name"`
	BasePath   string          `json:"base_path"`
	Hosts      []string        `json:"hosts"`
	Discovered bool            `json:"discovered"`
	Mode       string          `json:"mode"`
	FirstSeen  *time.Time      `json:"first_seen,omitempty"`
	LastSeen   *time.Time      `json:"last_seen,omitempty"`
	Requests   uint64          `json:"requests"`
	Blocked    uint64          `json:"blocked"`
	WouldBlock uint64          `json:"would_block"`
	Endpoints  []EndpointStats `json:"endpoints"`
	// OverflowRequests counts requests to endpoints past the per-API limit.
	OverflowRequests uint64 `json:"overflow_requests,omitempty"`
	// Misses counts calls to paths that are no endpoint, answered 400, 404
	// or 405 (a scanner's guesses).
	Misses uint64 `json:"misses"`
	// EvictedEndpoints counts endpoints never answered 2xx or 3xx given up
	// at the endpoint limit for one that was.
	EvictedEndpoints uint64 `json:"evicted_endpoints,omitempty"`
	// OpenAPI is set when the API has an OpenAPI document (apis[].openapi):
	// its endpoints are then marked Shadow when the document does not
	// declare them, and Zombies lists the document's operations never
	// called. The inventory itself does not set these (detect/spec's Mark
	// does, when the admin API answers).
	OpenAPI bool `json:"openapi,omitempty"`
	// Zombies are the operations the OpenAPI document declares that no
	// call reached, by method and full path template (base path included).
	Zombies []ZombieEndpoint `json:"zombies,omitempty"`
}

// ZombieEndpoint is an operation of an API's OpenAPI document never called.
type ZombieEndpoint struct {
	Method string `json:"method"`
	// Path is the document's template with the base path: /api/v1/pets/{petId}.
	Path string `json:"path"`
}

// EndpointStats is one endpoint template of an API.
type EndpointStats struct {
	Method    string            `json:"method"`
	Path      string            `json:"path"`
	Requests  uint64            `json:"requests"`
	Status    map[string]uint64 `json:"status"`
	FirstSeen time.Time         `json:"first_seen"`
	LastSeen  time.Time         `json:"last_seen"`
	// Shadow is set when the API has an OpenAPI document that does not
	// declare this endpoint (seen in traffic, absent from the document).
	Shadow bool `json:"shadow,omitempty"`
}

// NewInventory returns an inventory that knows the configured APIs and
// tracks at most maxAPIs discovered APIs and maxEndpoints endpoints per API.
func NewInventory(configured []*detect.API, maxAPIs, maxEndpoints int) *Inventory {
	inv := &Inventory{apis: make(map[string]*apiRecord), maxAPIs: maxAPIs, maxEndpoints: maxEndpoints}
	for _, a := range configured {
		inv.addConfigured(a)
	}
	return inv
}

func (inv *Inventory) addConfigured(a *detect.API) *apiRecord {
	r := newAPIRecord(a.Name, a.BasePath, a)
	for _, h := range a.Hosts {
		inv.addHost(r, h, false)
	}
	inv.addAPI(a.Name, r, false)
	return r
}

// Sizes of the inventory's records, for its estimate of the bytes it holds.
var (
	apiRecordBytes      = detect.AllocSize(int(unsafe.Sizeof(apiRecord{})))
	activityBytes       = detect.AllocSize(int(unsafe.Sizeof(activity{})))
	endpointRecordBytes = detect.AllocSize(int(unsafe.Sizeof(endpointRecord{})))
)

// addAPI keeps r under name; owned says whether its names are its own
// copies (a discovered API) rather than the configuration's.
func (inv *Inventory) addAPI(name string, r *apiRecord, owned bool) {
	n := len(inv.apis)
	inv.apis[name] = r
	b := apiRecordBytes + activityBytes + detect.MapBytes(n+1, 16+8) - detect.MapBytes(n, 16+8)
	if owned {
		b += detect.StringSize(r.name) + detect.StringSize(r.basePath)
	}
	inv.bytes.Add(b)
}

// addHost adds a host to r's; owned says whether h is a copy of its own.
func (inv *Inventory) addHost(r *apiRecord, h string, owned bool) {
	n := len(r.hosts)
	r.hosts[h] = struct{}{}
	if len(r.hosts) == n {
		return
	}
	b := detect.MapBytes(n+1, 16) - detect.MapBytes(n, 16)
	if owned {
		b += detect.StringSize(h)
	}
	inv.bytes.Add(b)
}

// addEndpoint adds ep to r's endpoints.
func (inv *Inventory) addEndpoint(r *apiRecord, ep *endpointRecord) {
	n := len(r.endpoints)
	r.endpoints[ep.key] = ep
	inv.bytes.Add(endpointRecordBytes + detect.StringSize(ep.key) + detect.MapBytes(n+1, 16+8) - detect.MapBytes(n, 16+8))
}

// removeEndpoint forgets ep.
func (inv *Inventory) removeEndpoint(r *apiRecord, ep *endpointRecord) {
	// Go's maps do not shrink: the slot stays counted.
	delete(r.endpoints, ep.key)
	inv.bytes.Add(-endpointRecordBytes - detect.StringSize(ep.key))
}

// Bytes estimates the heap bytes of the inventory and the APIs' activity.
// Safe to call at any time.
func (inv *Inventory) Bytes() int64 { return inv.bytes.Load() }

// SetMaxBytes bounds the bytes of the inventory (estimated; 0: no bound):
// past it, new discovered APIs and new endpoints are counted as overflow,
// as past their count limits. Configured APIs are always kept.
func (inv *Inventory) SetMaxBytes(n int64) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.maxBytes = n
}

// full reports whether the inventory is at its byte budget.
func (inv *Inventory) full() bool { return inv.maxBytes > 0 && inv.bytes.Load() >= inv.maxBytes }

func newAPIRecord(name, base string, configured *detect.API) *apiRecord {
	// The activity is there from the start: a configured API before its
	// first call, and every API restored after a restart, has an empty
	// time line, not none.
	return &apiRecord{name: name, basePath: base, configured: configured, hosts: make(map[string]struct{}),
		endpoints: make(map[string]*endpointRecord), activity: new(activity)}
}

// The inventory is one of the pipeline's sinks.
var _ detect.Sink = (*Inventory)(nil)

// Consume records one transaction.
func (inv *Inventory) Consume(t *detect.Transaction) {
	if !t.HasRequest {
		return // a response seen alone (an observer's late part) is no call
	}
	// A call answered 400, 404 or 405 adds no API and no endpoint: clients
	// choose hosts and paths, and a scanner's misses are not an inventory.
	// Nor does a call that Vigil refused itself (a blocked client, a
	// decoy): the API never answered it. A scanner, once blocked, sends
	// nothing else.
	miss := t.Status == 400 || t.Status == 404 || t.Status == 405
	admits := !miss && !t.Blocked
	name, base := inv.Name(t)
	c := t.Status / 100
	if c < 1 || c > 5 {
		c = 0
	}
	// "METHOD template", built on the stack: looking it up allocates
	// nothing, only a new endpoint does.
	t.Prepare()
	var buf [256]byte
	key := append(buf[:0], t.Method...)
	key = append(key, ' ')
	pathAt := len(key)
	key = append(key, t.Template...)
	when := t.Start
	inv.mu.Lock()
	defer inv.mu.Unlock()
	r, ok := inv.apis[name]
	switch {
	case ok:
	case t.API != nil && !t.API.Discovered:
		// Configured after the inventory was built: never counted against
		// the limit of discovered APIs.
		r = inv.addConfigured(t.API)
	case !admits:
		if miss {
			inv.misses.Add(1)
		}
		t.Route = route(t, c, nil, nil, inv.discovered >= inv.maxAPIs || inv.full())
		return
	case inv.discovered >= inv.maxAPIs || inv.full():
		inv.overflowAPIs.Add(1)
		t.Route = route(t, c, nil, nil, true)
		return
	default:
		// Request strings may alias Envoy's message buffers: keep copies.
		name = strings.Clone(name)
		r = newAPIRecord(name, strings.Clone(base), nil)
		inv.addAPI(name, r, true)
		inv.discovered++
	}
	if h := strings.ToLower(detect.HostOnly(t.Host)); h != "" && len(r.hosts) < 16 {
		if _, ok := r.hosts[h]; !ok {
			inv.addHost(r, strings.Clone(h), true)
		}
	}
	// Joined calls reach the inventory out of order.
	r.first, r.last = widen(r.first, r.last, when)
	r.activity.add(t)
	r.requests++
	if t.Blocked {
		r.blocked++
	}
	if t.WouldBlock {
		r.wouldBlock++
	}
	if admits && (c == 2 || c == 3) {
		r.answered = true
	}
	ep, ok := r.endpoints[string(key)]
	if !ok {
		// At the endpoint limit, a call's endpoint may be one the limit
		// turned away: it is not judged unknown.
		atLimit := len(r.endpoints) >= inv.maxEndpoints || inv.full()
		switch {
		case miss:
			r.misses++
			inv.misses.Add(1)
			t.Route = route(t, c, r, nil, atLimit)
			return
		case !admits:
			t.Route = route(t, c, r, nil, atLimit)
			return
		case atLimit:
			if (c != 2 && c != 3) || r.weak.head == nil {
				r.overflow++
				inv.overflowEndpoints.Add(1)
				inv.lastOverflowAPI = r.name
				t.Route = route(t, c, r, nil, true)
				return
			}
			victim := r.weak.head
			r.weak.remove(victim)
			inv.removeEndpoint(r, victim)
			r.evicted++
			inv.evicted.Add(1)
		}
		k := string(key)
		ep = newEndpoint(k, pathAt-1)
		inv.addEndpoint(r, ep)
	}
	ep.requests++
	ep.widen(when)
	ep.status[c]++
	r.track(ep)
	t.Route = route(t, c, r, ep, false)
}

// route judges a call's endpoint, once the call is counted: c is its
// status class (0: unknown), r its API's record and ep its endpoint's (nil:
// none kept), lost whether a limit may have kept them out. A call the API
// answered 2xx or 3xx proves its endpoint; Vigil's own answer to a call it
// refused (a decoy's 200) proves nothing.
func route(t *detect.Transaction, c int, r *apiRecord, ep *endpointRecord, lost bool) detect.Route {
	answered := !t.Blocked && t.Status != 0
	switch {
	case answered && (c == 2 || c == 3), ep != nil && ep.proven():
		return detect.RouteKnown
	case lost, answered && c == 1:
		// An interim answer (101 Switching Protocols) tells nothing.
		return detect.RouteUnjudged
	case answered && c >= 4:
		return detect.RouteUnknown // the API answered it, never with success
	case r != nil && r.answered:
		// Refused, or its answer unseen, on an API whose answers are
		// seen: none proved this endpoint.
		return detect.RouteUnknown
	}
	// Neither the call nor the API shows what the API has (ext_authz
	// alone sees no answers).
	return detect.RouteUnjudged
}

// track keeps ep's place on the weak list: off it once proven, else last
// (the most recently called).
func (r *apiRecord) track(ep *endpointRecord) {
	if ep.listed {
		r.weak.remove(ep)
	}
	if !ep.proven() {
		r.weak.push(ep)
	}
}

// widen extends the span [first, last] to cover when; zero times are unknown.
func widen(first, last, when time.Time) (time.Time, time.Time) {
	if when.IsZero() {
		return first, last
	}
	if first.IsZero() || when.Before(first) {
		first = when
	}
	if when.After(last) {
		last = when
	}
	return first, last
}

// Name returns the API a transaction belongs to and its base path: the
// configured API, or one discovered from host and leading path segments.
func (inv *Inventory) Name(t *detect.Transaction) (name, base string) {
	if t.API != nil && !t.API.Discovered {
		return t.API.Name, t.API.BasePath
	}
	base = detect.DiscoveredBase(t.Path)
	return detect.DiscoveredName(t.Host, base), base
}

// OverflowAPIs returns how many requests belonged to discovered APIs past
// the limit.
func (inv *Inventory) OverflowAPIs() uint64 { return inv.overflowAPIs.Load() }

// OverflowEndpoints returns how many calls to new endpoints were turned
// away at an API's endpoint limit, all APIs together.
func (inv *Inventory) OverflowEndpoints() uint64 { return inv.overflowEndpoints.Load() }

// LastOverflowAPI returns the API whose endpoint limit turned a call away
// last.
func (inv *Inventory) LastOverflowAPI() string {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.lastOverflowAPI
}

// EvictedEndpoints returns how many endpoints never answered 2xx or 3xx
// were given up for one that was, all APIs together.
func (inv *Inventory) EvictedEndpoints() uint64 { return inv.evicted.Load() }

// Misses returns how many calls to paths that are no endpoint were
// answered 400, 404 or 405, all APIs together (unknown ones included).
func (inv *Inventory) Misses() uint64 { return inv.misses.Load() }

var statusClasses = [6]string{"unknown", "1xx", "2xx", "3xx", "4xx", "5xx"}

// APIs returns every API, sorted by name, with its endpoints sorted by path
// then method. fallback gives the mode of discovered APIs.
func (inv *Inventory) APIs(fallback *detect.API) []APIStats {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	out := make([]APIStats, 0, len(inv.apis))
	for _, r := range inv.apis {
		s := APIStats{
			Name: r.name, BasePath: r.basePath, Discovered: r.configured == nil,
			Requests: r.requests, Blocked: r.blocked, WouldBlock: r.wouldBlock, OverflowRequests: r.overflow,
			Misses: r.misses, EvictedEndpoints: r.evicted,
			Hosts: make([]string, 0, len(r.hosts)), Endpoints: make([]EndpointStats, 0, len(r.endpoints)),
		}
		mode := fallback
		if r.configured != nil {
			mode = r.configured
		}
		if mode != nil {
			s.Mode = mode.Mode.String()
		}
		if !r.first.IsZero() {
			f, l := r.first, r.last
			s.FirstSeen, s.LastSeen = &f, &l
		}
		for h := range r.hosts {
			s.Hosts = append(s.Hosts, h)
		}
		sort.Strings(s.Hosts)
		for _, ep := range r.endpoints {
			e := EndpointStats{Method: ep.method(), Path: ep.path(), Requests: ep.requests, FirstSeen: timeOf(ep.first, ep.firstLoc),
				LastSeen: timeOf(ep.last, ep.lastLoc), Status: map[string]uint64{}}
			for i, n := range ep.status {
				if n > 0 {
					e.Status[statusClasses[i]] = n
				}
			}
			s.Endpoints = append(s.Endpoints, e)
		}
		sort.Slice(s.Endpoints, func(i, j int) bool {
			a, b := s.Endpoints[i], s.Endpoints[j]
			if a.Path != b.Path {
				return a.Path < b.Path
			}
			return a.Method < b.Method
		})
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Restore puts back the inventory saved before a restart (APIs as
// APIs returned them): counts, hosts and endpoint templates.
func (inv *Inventory) Restore(stats []APIStats) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for _, s := range stats {
		r, ok := inv.apis[s.Name]
		if !ok {
			if !s.Discovered || inv.discovered >= inv.maxAPIs || inv.full() {
				continue // a configured API no longer configured, or past the bound
			}
			r = newAPIRecord(s.Name, s.BasePath, nil)
			inv.addAPI(s.Name, r, true)
			inv.discovered++
		}
		if s.FirstSeen != nil {
			r.first, r.last = widen(r.first, r.last, *s.FirstSeen)
			r.first, r.last = widen(r.first, r.last, *s.LastSeen)
		}
		r.requests += s.Requests
		r.blocked += s.Blocked
		r.wouldBlock += s.WouldBlock
		r.overflow += s.OverflowRequests
		r.misses += s.Misses
		r.evicted += s.EvictedEndpoints
		var restored []*endpointRecord
		for _, h := range s.Hosts {
			if len(r.hosts) < 16 {
				inv.addHost(r, h, true)
			}
		}
		for _, e := range s.Endpoints {
			key := e.Method + " " + e.Path
			ep := r.endpoints[key]
			if ep == nil {
				if len(r.endpoints) >= inv.maxEndpoints || inv.full() {
					continue
				}
				ep = newEndpoint(key, len(e.Method))
				inv.addEndpoint(r, ep)
			}
			ep.requests += e.Requests
			ep.widen(e.FirstSeen)
			ep.widen(e.LastSeen)
			for i, name := range statusClasses {
				ep.status[i] += e.Status[name]
			}
			if ep.proven() {
				r.answered = true
			}
			restored = append(restored, ep)
		}
		// The weak list in the order the endpoints were last called.
		sort.SliceStable(restored, func(i, j int) bool { return restored[i].last < restored[j].last })
		for _, ep := range restored {
			r.track(ep)
		}
	}
}

// Succeeded reports whether requests to path (any method) on api were
// answered with success (2xx).
func (inv *Inventory) Succeeded(api, path string) bool {
	tmpl := detect.TemplatePath(path)
	inv.mu.Lock()
	defer inv.mu.Unlock()
	r, ok := inv.apis[api]
	if !ok {
		return false
	}
	for _, ep := range r.endpoints {
		if strings.EqualFold(ep.path(), tmpl) && ep.status[2] > 0 {
			return true
		}
	}
	return false
}
