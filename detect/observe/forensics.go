package observe

import (
	"cmp"
	"github.com/vigil-project/vigil/detect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Bounds of one identity's forensic record: beyond them, new IPs, URLs
// and APIs are counted under "(other)".
const (
	forensicMaxIPs  = 50
	forensicMaxURLs = 200
	forensicMaxAPIs = 20
	forensicOther   = "(other)"
)

// Forensics keeps, per identity, what it did: aggregated counts per IP,
// method, endpoint template and API, never a raw request log. The number of
// identities and the bytes they take are capped; the least recently seen
// are forgotten first.
//
// It runs on the pipeline for every call, so it keeps each identity in a
// compact form (small slices, one map lookup per identity and call) and
// builds the JSON shape, ForensicRecord, only when asked.
type Forensics struct {
	mu       sync.Mutex
	max      int
	maxBytes int64 // 0: no byte budget
	recs     map[forensicKey]*forensicState
	lru      forensicState // sentinel of the recency list: lru.next is the most recent
	dirty    []*forensicState
	// bytes is the sum of the records' estimates, kept as they change.
	bytes     atomic.Int64
	count     atomic.Int64
	evictions atomic.Uint64
}

// ForensicsStats is what a metrics scrape reads of the forensics.
type ForensicsStats struct {
	Records   int    // identities tracked
	Bytes     int64  // estimated heap bytes of their records and index
	Evictions uint64 // identities forgotten to stay within the bounds
}

type forensicKey struct {
	kind  detect.Kind
	value string
}

// ForensicRecord is one identity's aggregated activity, as the admin API
// shows it and the store keeps it.
type ForensicRecord struct {
	Kind      string                  `json:"kind"`
	Value     string                  `json:"value"`
	FirstSeen time.Time               `json:"first_seen"`
	LastSeen  time.Time               `json:"last_seen"`
	Total     int64                   `json:"total_requests"`
	IPs       map[string]*ForensicsIP `json:"ips"`
	Methods   map[string]int64        `json:"methods"`
	URLs      map[string]int64        `json:"urls"`
	APIs      map[string]int64        `json:"apis"`
	// Hours counts requests per hour (unix hour → count), the last 7 days.
	Hours map[int64]int64 `json:"hours"`
}

// ForensicsIP is one IP's share of an identity's activity.
type ForensicsIP struct {
	Total   int64            `json:"total_requests"`
	Methods map[string]int64 `json:"methods"`
	URLs    map[string]int64 `json:"urls"`
	APIs    map[string]int64 `json:"apis"`
}

// forensicState is one identity's activity.
type forensicState struct {
	key         forensicKey
	first, last time.Time
	total       int64
	methods     tally
	urls        tally
	apis        tally
	hours       []hourCount // ascending, the last 7 days
	// ips is the activity per client IP of a non-IP identity; an IP
	// identity's record is its own only IP.
	ips        []*ipTally
	dirty      bool
	gone       bool  // evicted
	bytes      int64 // estimate of the record's heap bytes
	prev, next *forensicState
}

type ipTally struct {
	ip                  string
	total               int64
	methods, urls, apis tally
}

type hourCount struct{ hour, n int64 }

// tally counts names, at most limit of them; beyond, new names are counted
// under "(other)". Identities use few methods, endpoints and APIs, so the
// counts are a slice searched in order, with an index once it grows.
type tally struct {
	counts []nameCount
	index  map[string]int
}

type nameCount struct {
	name string
	n    int64
}

const tallyIndexAt = 16

// add counts one call under name, read from b when name is empty (so that
// a name built on the stack is copied only when it is new). It reports
// whether a name was added.
func (t *tally) add(name string, b []byte, limit int) bool {
	if name == "" {
		name = unsafe.String(unsafe.SliceData(b), len(b))
	}
	if i, ok := t.find(name); ok {
		t.counts[i].n++
		return false
	}
	if len(t.counts) >= limit {
		if i, ok := t.find(forensicOther); ok {
			t.counts[i].n++
			return false
		}
		t.set(forensicOther, 1)
		return true
	}
	if b != nil {
		name = string(b)
	}
	t.set(name, 1)
	return true
}

// bytes estimates the tally's heap bytes.
func (t *tally) bytes() int64 {
	n := detect.AllocSize(cap(t.counts) * int(unsafe.Sizeof(nameCount{})))
	for _, c := range t.counts {
		n += detect.StringSize(c.name)
	}
	if t.index != nil {
		n += detect.MapBytes(len(t.index), 16+8)
	}
	return n
}

func (t *tally) find(name string) (int, bool) {
	if t.index != nil {
		i, ok := t.index[name]
		return i, ok
	}
	for i := range t.counts {
		if t.counts[i].name == name {
			return i, true
		}
	}
	return 0, false
}

func (t *tally) set(name string, n int64) {
	t.counts = append(t.counts, nameCount{name, n})
	if t.index != nil {
		t.index[name] = len(t.counts) - 1
	} else if len(t.counts) > tallyIndexAt {
		t.index = make(map[string]int, len(t.counts)*2)
		for i, c := range t.counts {
			t.index[c.name] = i
		}
	}
}

func (t *tally) get(name string) int64 {
	if i, ok := t.find(name); ok {
		return t.counts[i].n
	}
	return 0
}

func (t *tally) toMap() map[string]int64 {
	m := make(map[string]int64, len(t.counts))
	for _, c := range t.counts {
		m[c.name] = c.n
	}
	return m
}

func tallyOf(m map[string]int64) tally {
	var t tally
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		t.set(k, m[k])
	}
	return t
}

// NewForensics keeps at most maxIdentities identities, in at most maxBytes
// bytes (estimated; 0: no byte budget).
func NewForensics(maxIdentities int, maxBytes int64) *Forensics {
	f := &Forensics{max: maxIdentities, maxBytes: maxBytes, recs: map[forensicKey]*forensicState{}}
	f.lru.next, f.lru.prev = &f.lru, &f.lru
	return f
}

// Stats returns the number of identities, the estimated bytes they take and
// the evictions so far. Safe to call at any time.
func (f *Forensics) Stats() ForensicsStats {
	n := f.count.Load()
	return ForensicsStats{Records: int(n), Bytes: f.bytes.Load() + forensicIndexBytes(int(n)), Evictions: f.evictions.Load()}
}

// forensicIndexBytes estimates the bytes of the index of n records and of
// the list of dirty ones.
func forensicIndexBytes(n int) int64 {
	return detect.MapBytes(n, int(unsafe.Sizeof(forensicKey{}))+8) + int64(n)*8
}

// size estimates a record's heap bytes.
func (s *forensicState) size() int64 {
	n := detect.AllocSize(int(unsafe.Sizeof(*s))) + detect.StringSize(s.key.value)
	n += s.methods.bytes() + s.urls.bytes() + s.apis.bytes()
	n += detect.AllocSize(cap(s.hours) * int(unsafe.Sizeof(hourCount{})))
	n += detect.AllocSize(cap(s.ips) * 8)
	for _, p := range s.ips {
		n += detect.AllocSize(int(unsafe.Sizeof(*p))) + p.methods.bytes() + p.urls.bytes() + p.apis.bytes()
		if p.ip != s.key.value {
			n += detect.StringSize(p.ip)
		}
	}
	return n
}

// resize brings the record's estimate and the total up to date.
func (f *Forensics) resize(s *forensicState) {
	b := s.size()
	f.bytes.Add(b - s.bytes)
	s.bytes = b
}

// full reports whether the records are past a bound.
func (f *Forensics) full() bool {
	return len(f.recs) > f.max || (f.maxBytes > 0 && f.bytes.Load()+forensicIndexBytes(len(f.recs)) > f.maxBytes)
}

// trim forgets the least recently seen identities until the records are
// within their bounds, keeping keep, the one just seen.
func (f *Forensics) trim(keep *forensicState) {
	for f.full() && f.lru.prev != keep && f.lru.prev != &f.lru {
		f.evict()
	}
}

// Forensics is one of the pipeline's sinks.
var _ detect.Sink = (*Forensics)(nil)

// Consume records one transaction under each of its identities.
func (f *Forensics) Consume(t *detect.Transaction) {
	if !t.HasRequest {
		return
	}
	api := ""
	if t.API != nil && !t.API.Discovered {
		api = t.API.Name
	} else {
		api = detect.DiscoveredName(t.Host, detect.DiscoveredBase(t.Path))
	}
	t.Prepare()
	url := t.Template
	method := t.Method
	ip := t.Identities[detect.KindIP]
	hour := t.Start.Unix() / 3600
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range detect.NumKinds {
		v := t.Identities[k]
		if v == "" {
			continue
		}
		st := f.recs[forensicKey{k, v}]
		grown := st == nil
		if st == nil {
			st = &forensicState{key: forensicKey{k, strings.Clone(v)}}
			f.recs[st.key] = st
			f.count.Store(int64(len(f.recs)))
		} else {
			st.unlink()
		}
		f.pushFront(st)
		if !st.dirty {
			st.dirty = true
			f.dirty = append(f.dirty, st)
		}
		if st.first.IsZero() || t.Start.Before(st.first) {
			st.first = t.Start
		}
		if t.Start.After(st.last) {
			st.last = t.Start
		}
		st.total++
		grown = st.methods.add(method, nil, 16) || grown
		grown = st.urls.add(url, nil, forensicMaxURLs) || grown
		grown = st.apis.add(api, nil, forensicMaxAPIs) || grown
		grown = st.countHour(hour) || grown
		if ip != "" && k != detect.KindIP {
			n := len(st.ips)
			pi := st.ipTally(ip)
			pi.total++
			grown = pi.methods.add(method, nil, 16) || grown
			grown = pi.urls.add(url, nil, forensicMaxURLs) || grown
			grown = pi.apis.add(api, nil, forensicMaxAPIs) || grown
			grown = grown || len(st.ips) != n
		}
		if grown {
			f.resize(st)
			f.trim(st)
		}
	}
}

// countHour counts a call in its hour and forgets hours older than a week.
// It reports whether an hour was added.
func (s *forensicState) countHour(hour int64) bool {
	if n := len(s.hours); n > 0 && s.hours[n-1].hour == hour {
		s.hours[n-1].n++
		return false
	}
	i := sort.Search(len(s.hours), func(i int) bool { return s.hours[i].hour >= hour })
	switch {
	case i < len(s.hours) && s.hours[i].hour == hour:
		s.hours[i].n++
		return false
	case i == 0 && len(s.hours) > 0 && hour < s.hours[len(s.hours)-1].hour-24*7:
		return false // older than the week kept
	}
	s.hours = slices.Insert(s.hours, i, hourCount{hour, 1})
	cut := 0
	for cut < len(s.hours) && s.hours[cut].hour < s.hours[len(s.hours)-1].hour-24*7 {
		cut++
	}
	if cut > 0 {
		s.hours = slices.Delete(s.hours, 0, cut)
	}
	return true
}

// ipTally returns the counts of one client IP, the "(other)" one past
// forensicMaxIPs.
func (s *forensicState) ipTally(ip string) *ipTally {
	for _, p := range s.ips {
		if p.ip == ip {
			return p
		}
	}
	name := forensicOther
	if len(s.ips) < forensicMaxIPs {
		name = strings.Clone(ip)
	} else {
		for _, p := range s.ips {
			if p.ip == forensicOther {
				return p
			}
		}
	}
	p := &ipTally{ip: name}
	s.ips = append(s.ips, p)
	return p
}

func (f *Forensics) pushFront(s *forensicState) {
	s.prev, s.next = &f.lru, f.lru.next
	f.lru.next.prev = s
	f.lru.next = s
}

func (s *forensicState) unlink() {
	s.prev.next, s.next.prev = s.next, s.prev
	s.prev, s.next = nil, nil
}

// evict forgets the least recently seen identity.
func (f *Forensics) evict() {
	old := f.lru.prev
	if old == &f.lru {
		return
	}
	f.drop(old)
	delete(f.recs, old.key)
	f.count.Store(int64(len(f.recs)))
	f.evictions.Add(1)
}

// drop takes a record off the recency list and out of the estimate.
func (f *Forensics) drop(s *forensicState) {
	s.unlink()
	s.gone = true
	f.bytes.Add(-s.bytes)
	s.bytes = 0
}

// Get returns an identity's record.
func (f *Forensics) Get(k detect.Kind, value string) (*ForensicRecord, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.recs[forensicKey{k, value}]
	if !ok {
		return nil, false
	}
	return s.record(), true
}

// Put installs a record read back from storage as the most recently seen:
// put records oldest first.
func (f *Forensics) Put(r *ForensicRecord) {
	k, err := detect.ParseKind(r.Kind)
	if err != nil {
		return
	}
	s := &forensicState{key: forensicKey{k, r.Value}, first: r.FirstSeen, last: r.LastSeen, total: r.Total,
		methods: tallyOf(r.Methods), urls: tallyOf(r.URLs), apis: tallyOf(r.APIs)}
	for h, n := range r.Hours {
		s.hours = append(s.hours, hourCount{h, n})
	}
	slices.SortFunc(s.hours, func(a, b hourCount) int { return cmp.Compare(a.hour, b.hour) })
	if k != detect.KindIP {
		ips := make([]string, 0, len(r.IPs))
		for ip := range r.IPs {
			ips = append(ips, ip)
		}
		sort.Strings(ips)
		for _, ip := range ips {
			p := r.IPs[ip]
			s.ips = append(s.ips, &ipTally{ip: ip, total: p.Total, methods: tallyOf(p.Methods), urls: tallyOf(p.URLs), apis: tallyOf(p.APIs)})
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if old := f.recs[s.key]; old != nil {
		f.drop(old)
	}
	f.recs[s.key] = s
	f.count.Store(int64(len(f.recs)))
	f.pushFront(s)
	f.resize(s)
	f.trim(s)
}

// Dirty returns the records changed since the last call.
func (f *Forensics) Dirty() []*ForensicRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*ForensicRecord, 0, len(f.dirty))
	for _, s := range f.dirty {
		s.dirty = false
		if !s.gone {
			out = append(out, s.record())
		}
	}
	clear(f.dirty)
	f.dirty = f.dirty[:0]
	sort.Slice(out, func(i, j int) bool { return out[i].Value < out[j].Value })
	return out
}

// record builds the JSON shape of an identity's activity.
func (s *forensicState) record() *ForensicRecord {
	r := &ForensicRecord{Kind: s.key.kind.String(), Value: s.key.value, FirstSeen: s.first, LastSeen: s.last, Total: s.total,
		Methods: s.methods.toMap(), URLs: s.urls.toMap(), APIs: s.apis.toMap(),
		Hours: make(map[int64]int64, len(s.hours)), IPs: make(map[string]*ForensicsIP, max(len(s.ips), 1))}
	for _, h := range s.hours {
		r.Hours[h.hour] = h.n
	}
	if s.key.kind == detect.KindIP {
		r.IPs[s.key.value] = &ForensicsIP{Total: s.total, Methods: s.methods.toMap(), URLs: s.urls.toMap(), APIs: s.apis.toMap()}
	}
	for _, p := range s.ips {
		r.IPs[p.ip] = &ForensicsIP{Total: p.total, Methods: p.methods.toMap(), URLs: p.urls.toMap(), APIs: p.apis.toMap()}
	}
	return r
}

// Len returns the number of identities tracked.
func (f *Forensics) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.recs)
}

// TopIdentity is one of an API's busiest identities.
type TopIdentity struct {
	Kind     string `json:"kind"`
	Value    string `json:"value"`
	Requests int64  `json:"requests"`
}

// Top returns the n identities with the most requests to api.
func (f *Forensics) Top(api string, n int) []TopIdentity {
	f.mu.Lock()
	var out []TopIdentity
	for k, s := range f.recs {
		if c := s.apis.get(api); c > 0 {
			out = append(out, TopIdentity{Kind: k.kind.String(), Value: k.value, Requests: c})
		}
	}
	f.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Requests != out[j].Requests {
			return out[i].Requests > out[j].Requests
		}
		return out[i].Kind+out[i].Value < out[j].Kind+out[j].Value
	})
	return out[:min(n, len(out))]
}
