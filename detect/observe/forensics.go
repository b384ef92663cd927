package observe

import (
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/vigil-project/vigil/detect"
)

// Bounds of one identity's forensic record: beyond them, new IPs, methods,
// URLs and APIs are counted under "(other)".
const (
	forensicMaxIPs     = 50
	forensicMaxMethods = 16
	forensicMaxURLs    = 200
	forensicMaxAPIs    = 20
	forensicOther      = "(other)"
	// forensicWeek is how many hours before the latest one are kept.
	forensicWeek = 24 * 7
)

// Forensics keeps, per identity, what it did: aggregated counts per IP,
// method, endpoint template and API, never a raw request log. The number of
// identities and the bytes they take are capped; the least recently seen
// are forgotten first.
//
// It runs on the pipeline for every call and may hold a million
// identities, most of them seen once (a botnet rotating addresses), so an
// identity is small: one record with its times, and its counts in one
// slice of 12-byte entries that name methods, templates and APIs by the
// number of a name shared by all records. It builds the JSON shape,
// ForensicRecord, only when asked.
type Forensics struct {
	mu       sync.Mutex
	max      int
	maxBytes int64 // 0: no byte budget
	recs     [detect.NumKinds]map[string]*forensicState
	peak     [detect.NumKinds]int // Go's maps do not shrink: their largest size
	n        int
	lru      forensicState // sentinel of the recency list: lru.next is the most recent
	names    nameTable
	other    uint32 // the name "(other)"
	ndirty   int    // records changed since the last Dirty, all at the front of the list
	recBytes int64  // the records' own bytes

	// Read without the lock (metrics).
	bytes     atomic.Int64
	count     atomic.Int64
	evictions atomic.Uint64
	unsaved   atomic.Uint64
}

// ForensicsStats is what a metrics scrape reads of the forensics.
type ForensicsStats struct {
	Records   int    // identities tracked
	Bytes     int64  // estimated heap bytes of their records, names and index
	Evictions uint64 // identities forgotten to stay within the bounds
	// Unsaved counts the evicted identities whose latest calls had not
	// been handed to Dirty (the store keeps their record as last saved).
	Unsaved uint64
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
	key   string
	ents  []fEntry
	more  *forensicMore // nil until the identity has IPs of its own or many entries
	first int64         // unix nanoseconds; zeroTime: none
	last  int64
	prev  *forensicState
	next  *forensicState
	// have counts the names of each tag (method, URL, API) in the
	// identity's own counts, "(other)" included.
	have     [3]uint16
	kind     detect.Kind
	flags    uint8
	firstLoc uint8
	lastLoc  uint8
}

const (
	stateDirty uint8 = 1 << iota // changed since the last Dirty
	// stateOneIP: every call of this non-IP identity came from more.ips[0],
	// whose counts are the identity's own (kept once).
	stateOneIP
)

// forensicMore is what only some identities need.
type forensicMore struct {
	ips   []forensicIP // the client IPs of a non-IP identity
	index map[uint64]int32
}

type forensicIP struct {
	ip   string
	have [3]uint16
}

// An entry counts calls under one name (or hour) of one tag, for the
// identity itself (ip 0) or for its IP number ip. Three words: the name,
// and a 48-bit count beside the tag and the IP.
type fEntry [3]uint32

const (
	tagMethod uint8 = iota
	tagURL
	tagAPI
	tagHour // the name is the unix hour, as an int32
)

var tagLimits = [3]int{forensicMaxMethods, forensicMaxURLs, forensicMaxAPIs}

func newEntry(tag, ip uint8, id uint32, n int64) fEntry {
	return fEntry{id, uint32(n), uint32(n>>32)&0xffff | uint32(tag)<<16 | uint32(ip)<<24}
}

func (e *fEntry) tag() uint8 { return uint8(e[2] >> 16) }
func (e *fEntry) ip() uint8  { return uint8(e[2] >> 24) }
func (e *fEntry) n() int64   { return int64(e[1]) | int64(e[2]&0xffff)<<32 }

func (e *fEntry) add(n int64) {
	c := min(e.n()+n, 1<<48-1)
	e[1], e[2] = uint32(c), e[2]&^0xffff|uint32(c>>32)&0xffff
}

func entryKey(tag, ip uint8, id uint32) uint64 { return uint64(id) | uint64(tag)<<32 | uint64(ip)<<40 }

// forensicIndexAt is how many entries a record searches in order before
// it keeps an index.
const forensicIndexAt = 24

// Sizes for the estimate of the bytes held.
var (
	stateBytes = detect.AllocSize(int(unsafe.Sizeof(forensicState{})))
	moreBytes  = detect.AllocSize(int(unsafe.Sizeof(forensicMore{})))
)

const (
	entrySize   = int(unsafe.Sizeof(fEntry{}))
	ipSize      = int(unsafe.Sizeof(forensicIP{}))
	recSlotSize = 16 + 8 // string key, pointer
)

// nameTable numbers the methods, templates and APIs that records count,
// each kept once; a name no record counts any more is forgotten.
type nameTable struct {
	ids   map[string]uint32
	list  []nameSlot // by id
	free  []uint32
	peak  int
	bytes int64 // the names' own bytes
}

type nameSlot struct {
	name string
	refs uint32
}

func (t *nameTable) lookup(name string) (uint32, bool) {
	id, ok := t.ids[name]
	return id, ok
}

// add numbers a new name, counted by no record yet.
func (t *nameTable) add(name string) uint32 {
	name = strings.Clone(name) // request strings may alias Envoy's buffers
	var id uint32
	if n := len(t.free); n > 0 {
		id = t.free[n-1]
		t.free = t.free[:n-1]
		t.list[id] = nameSlot{name: name}
	} else {
		id = uint32(len(t.list))
		t.list = append(t.list, nameSlot{name: name})
	}
	t.ids[name] = id
	t.peak = max(t.peak, len(t.ids))
	t.bytes += detect.StringSize(name)
	return id
}

// id returns name's number, numbering it if new.
func (t *nameTable) id(name string) uint32 {
	if id, ok := t.ids[name]; ok {
		return id
	}
	return t.add(name)
}

func (t *nameTable) ref(id uint32) { t.list[id].refs++ }

// unref forgets a name no record counts any more.
func (t *nameTable) unref(id uint32) {
	s := &t.list[id]
	if s.refs--; s.refs == 0 {
		t.forget(id)
	}
}

func (t *nameTable) forget(id uint32) {
	s := &t.list[id]
	delete(t.ids, s.name)
	t.bytes -= detect.StringSize(s.name)
	*s = nameSlot{}
	t.free = append(t.free, id)
}

func (t *nameTable) size() int64 {
	return t.bytes + detect.AllocSize(cap(t.list)*int(unsafe.Sizeof(nameSlot{}))) + detect.AllocSize(cap(t.free)*4) +
		detect.MapBytes(t.peak, 16+8)
}

// NewForensics keeps at most maxIdentities identities, in at most maxBytes
// bytes (estimated; 0: no byte budget).
func NewForensics(maxIdentities int, maxBytes int64) *Forensics {
	f := &Forensics{max: maxIdentities, maxBytes: maxBytes, names: nameTable{ids: map[string]uint32{}}}
	for k := range f.recs {
		f.recs[k] = map[string]*forensicState{}
	}
	f.lru.next, f.lru.prev = &f.lru, &f.lru
	f.other = f.names.add(forensicOther)
	f.names.ref(f.other) // kept for good
	f.publish()
	return f
}

// Stats returns the number of identities, the estimated bytes they take and
// the evictions so far. Safe to call at any time.
func (f *Forensics) Stats() ForensicsStats {
	return ForensicsStats{Records: int(f.count.Load()), Bytes: f.bytes.Load(), Evictions: f.evictions.Load(),
		Unsaved: f.unsaved.Load()}
}

// total estimates the bytes held: records, names and the index.
func (f *Forensics) total() int64 {
	b := f.recBytes + f.names.size()
	for _, p := range f.peak {
		b += detect.MapBytes(p, recSlotSize)
	}
	return b
}

func (f *Forensics) publish() {
	f.bytes.Store(f.total())
	f.count.Store(int64(f.n))
}

// Forensics is one of the pipeline's sinks.
var _ detect.Sink = (*Forensics)(nil)

// Times outside what unix nanoseconds hold are kept at the nearest end.
var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

const zeroTime = math.MinInt64

func stamp(t time.Time) int64 {
	switch {
	case t.IsZero():
		return zeroTime
	case t.Before(minTime):
		return minTime.UnixNano()
	case t.After(maxTime):
		return maxTime.UnixNano()
	}
	return t.UnixNano()
}

// locations numbers the time zones of the times kept, so that a record
// shows its times as they came; past 256 zones, times show in UTC.
var locations = struct {
	sync.RWMutex
	list []*time.Location
	ids  map[*time.Location]uint8
}{list: []*time.Location{time.UTC, time.Local}, ids: map[*time.Location]uint8{time.UTC: 0, time.Local: 1}}

func locationID(t time.Time) uint8 {
	l := t.Location()
	switch l {
	case time.UTC:
		return 0
	case time.Local:
		return 1
	}
	locations.RLock()
	id, ok := locations.ids[l]
	locations.RUnlock()
	if ok {
		return id
	}
	locations.Lock()
	defer locations.Unlock()
	if id, ok := locations.ids[l]; ok {
		return id
	}
	if len(locations.list) > math.MaxUint8 {
		return 0
	}
	id = uint8(len(locations.list))
	locations.list = append(locations.list, l)
	locations.ids[l] = id
	return id
}

func timeOf(ns int64, loc uint8) time.Time {
	if ns == zeroTime {
		return time.Time{}
	}
	locations.RLock()
	l := locations.list[loc]
	locations.RUnlock()
	return time.Unix(0, ns).In(l)
}

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
	ip := t.Identities[detect.KindIP]
	at := stamp(t.Start)
	hour := int32(max(min(t.Start.Unix()/3600, math.MaxInt32), math.MinInt32))
	loc := locationID(t.Start)
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := [3]uint32{f.names.id(t.Method), f.names.id(t.Template), f.names.id(api)}
	ipKey := ""
	for k := range detect.NumKinds {
		v := t.Identities[k]
		if v == "" {
			continue
		}
		st := f.recs[k][v]
		if st == nil {
			st = &forensicState{key: strings.Clone(v), kind: k, first: at, last: at, firstLoc: loc, lastLoc: loc}
			f.recs[k][st.key] = st
			f.peak[k] = max(f.peak[k], len(f.recs[k]))
			f.n++
			f.recBytes += st.size()
		} else {
			st.unlink()
			// zeroTime is below every time, as the zero time.Time is.
			if st.first == zeroTime || at < st.first {
				st.first, st.firstLoc = at, loc
			}
			if at > st.last {
				st.last, st.lastLoc = at, loc
			}
		}
		f.pushFront(st)
		if st.flags&stateDirty == 0 {
			st.flags |= stateDirty
			f.ndirty++
		}
		if k == detect.KindIP {
			ipKey = st.key
		}
		before := st.size()
		f.countCall(st, k, ip, ipKey, ids, hour)
		f.recBytes += st.size() - before
	}
	// A name this call brought that no record took (all past their limits).
	for i, id := range ids {
		if f.names.list[id].refs == 0 && !slices.Contains(ids[:i], id) {
			f.names.forget(id)
		}
	}
	f.trim()
	f.publish()
}

// countCall adds one call to st: its method, template and API (ids), hour and,
// for a non-IP identity, its client IP's share (ipKey is the IP's own
// record key, whose bytes st shares).
func (f *Forensics) countCall(st *forensicState, k detect.Kind, ip, ipKey string, ids [3]uint32, hour int32) {
	perIP := uint8(0)
	if k != detect.KindIP {
		switch {
		case ip != "" && len(st.ents) == 0 && st.more == nil:
			// The first call: its IP's counts are the identity's own.
			st.more = &forensicMore{ips: []forensicIP{{ip: ipKey}}}
			st.flags |= stateOneIP
		case st.flags&stateOneIP != 0 && ip == st.more.ips[0].ip:
		default:
			if st.flags&stateOneIP != 0 {
				f.splitIPs(st)
			}
			if ip != "" {
				perIP = st.ipNumber(ip, ipKey)
			}
		}
	}
	for tag := range uint8(3) {
		f.countName(st, tag, 0, ids[tag], &st.have[tag])
		if perIP != 0 {
			f.countName(st, tag, perIP, ids[tag], &st.more.ips[perIP-1].have[tag])
		}
	}
	st.countHour(hour)
}

// countName counts a call under name id of tag for the identity (ip 0) or
// one of its IPs; past the tag's limit, new names count under "(other)".
func (f *Forensics) countName(st *forensicState, tag, ip uint8, id uint32, have *uint16) {
	if i := st.find(tag, ip, id); i >= 0 {
		st.ents[i].add(1)
		return
	}
	if int(*have) >= tagLimits[tag] {
		id = f.other
		if i := st.find(tag, ip, id); i >= 0 {
			st.ents[i].add(1)
			return
		}
	}
	f.names.ref(id)
	*have++
	st.push(newEntry(tag, ip, id, 1))
}

// splitIPs ends a one-IP identity's shared counts: its IP gets its own
// copy before a call from elsewhere is counted.
func (f *Forensics) splitIPs(st *forensicState) {
	st.flags &^= stateOneIP
	st.more.ips[0].have = st.have
	for i, n := 0, len(st.ents); i < n; i++ {
		e := st.ents[i]
		if tag := e.tag(); tag != tagHour {
			f.names.ref(e[0])
			st.push(newEntry(tag, 1, e[0], e.n()))
		}
	}
}

// ipNumber returns the number (from 1) of a client IP among st's, the
// "(other)" one past forensicMaxIPs.
func (st *forensicState) ipNumber(ip, ipKey string) uint8 {
	if st.more == nil {
		st.more = &forensicMore{}
	}
	ips := st.more.ips
	for i := range ips {
		if ips[i].ip == ip {
			return uint8(i + 1)
		}
	}
	name := ipKey
	if len(ips) >= forensicMaxIPs {
		for i := range ips {
			if ips[i].ip == forensicOther {
				return uint8(i + 1)
			}
		}
		name = forensicOther
	} else if name != ip {
		name = strings.Clone(ip)
	}
	st.more.ips = append(ips, forensicIP{ip: name})
	return uint8(len(st.more.ips))
}

// find returns the entry counting name id of tag for ip, or -1.
func (st *forensicState) find(tag, ip uint8, id uint32) int {
	if st.more != nil && st.more.index != nil {
		if i, ok := st.more.index[entryKey(tag, ip, id)]; ok {
			return int(i)
		}
		return -1
	}
	want := uint32(tag)<<16 | uint32(ip)<<24
	for i := range st.ents {
		if e := &st.ents[i]; e[0] == id && e[2]&^0xffff == want {
			return i
		}
	}
	return -1
}

// push appends an entry, keeping the index once there are many.
func (st *forensicState) push(e fEntry) {
	if st.ents == nil {
		st.ents = make([]fEntry, 0, 4) // a first call: method, template, API, hour
	}
	st.ents = append(st.ents, e)
	switch {
	case st.more != nil && st.more.index != nil:
		st.more.index[entryKey(e.tag(), e.ip(), e[0])] = int32(len(st.ents) - 1)
	case len(st.ents) > forensicIndexAt:
		st.reindex()
	}
}

func (st *forensicState) reindex() {
	if len(st.ents) <= forensicIndexAt {
		if st.more != nil {
			st.more.index = nil
		}
		return
	}
	if st.more == nil {
		st.more = &forensicMore{}
	}
	st.more.index = make(map[uint64]int32, len(st.ents))
	for i := range st.ents {
		e := &st.ents[i]
		st.more.index[entryKey(e.tag(), e.ip(), e[0])] = int32(i)
	}
}

// countHour counts a call in its hour and forgets hours older than a week
// before the latest.
func (st *forensicState) countHour(hour int32) {
	id := uint32(hour)
	if i := st.find(tagHour, 0, id); i >= 0 {
		st.ents[i].add(1)
		return
	}
	latest, any := int32(math.MinInt32), false
	for i := range st.ents {
		if e := &st.ents[i]; e.tag() == tagHour {
			latest, any = max(latest, int32(e[0])), true
		}
	}
	if any && int64(hour) < int64(latest)-forensicWeek {
		return // older than the week kept
	}
	st.push(newEntry(tagHour, 0, id, 1))
	if !any || hour <= latest {
		return
	}
	kept := st.ents[:0]
	for _, e := range st.ents {
		if e.tag() != tagHour || int64(int32(e[0])) >= int64(hour)-forensicWeek {
			kept = append(kept, e)
		}
	}
	if len(kept) < len(st.ents) {
		clear(st.ents[len(kept):])
		st.ents = kept
		st.reindex()
	}
}

// size estimates a record's heap bytes. The bytes of its IPs' strings are
// the IP identities' keys, counted there.
func (st *forensicState) size() int64 {
	n := stateBytes + detect.StringSize(st.key) + detect.AllocSize(cap(st.ents)*entrySize)
	if m := st.more; m != nil {
		n += moreBytes + detect.AllocSize(cap(m.ips)*ipSize)
		if m.index != nil {
			n += detect.MapBytes(len(m.index), 16)
		}
	}
	return n
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

// full reports whether the records are past a bound.
func (f *Forensics) full() bool {
	return f.n > f.max || (f.maxBytes > 0 && f.total() > f.maxBytes)
}

// trim forgets the least recently seen identities until the records are
// within their bounds, the most recent one kept whatever its size.
func (f *Forensics) trim() {
	for f.full() && f.lru.prev != f.lru.next {
		f.evict()
	}
}

// evict forgets the least recently seen identity.
func (f *Forensics) evict() {
	old := f.lru.prev
	if old == &f.lru {
		return
	}
	if old.flags&stateDirty != 0 {
		f.unsaved.Add(1)
	}
	f.remove(old)
	f.evictions.Add(1)
}

// remove forgets a record and the names only it counted.
func (f *Forensics) remove(s *forensicState) {
	s.unlink()
	delete(f.recs[s.kind], s.key)
	f.n--
	if s.flags&stateDirty != 0 {
		f.ndirty--
	}
	f.recBytes -= s.size()
	for i := range s.ents {
		if e := &s.ents[i]; e.tag() != tagHour {
			f.names.unref(e[0])
		}
	}
}

// Get returns an identity's record.
func (f *Forensics) Get(k detect.Kind, value string) (*ForensicRecord, bool) {
	if k >= detect.NumKinds {
		return nil, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.recs[k][value]
	if !ok {
		return nil, false
	}
	return f.record(s), true
}

// Put installs a record read back from storage as the most recently seen:
// put records oldest first.
func (f *Forensics) Put(r *ForensicRecord) {
	k, err := detect.ParseKind(r.Kind)
	if err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if old := f.recs[k][r.Value]; old != nil {
		f.remove(old)
	}
	s := &forensicState{key: r.Value, kind: k, first: stamp(r.FirstSeen), last: stamp(r.LastSeen),
		firstLoc: locationID(r.FirstSeen), lastLoc: locationID(r.LastSeen)}
	put := func(tag, ip uint8, m map[string]int64, have *uint16) {
		for name, n := range m {
			id := f.names.id(name)
			f.names.ref(id)
			s.push(newEntry(tag, ip, id, n))
		}
		*have = uint16(min(len(m), math.MaxUint16))
	}
	put(tagMethod, 0, r.Methods, &s.have[0])
	put(tagURL, 0, r.URLs, &s.have[1])
	put(tagAPI, 0, r.APIs, &s.have[2])
	for h, n := range r.Hours {
		s.push(newEntry(tagHour, 0, uint32(int32(max(min(h, math.MaxInt32), math.MinInt32))), n))
	}
	if k != detect.KindIP && len(r.IPs) > 0 {
		s.more = &forensicMore{}
		if ip, p, ok := onlyIP(r); ok && p.Total == r.Total && maps.Equal(p.Methods, r.Methods) &&
			maps.Equal(p.URLs, r.URLs) && maps.Equal(p.APIs, r.APIs) {
			s.more.ips = []forensicIP{{ip: ip}}
			s.flags |= stateOneIP
		} else {
			ips := make([]string, 0, len(r.IPs))
			for ip := range r.IPs {
				ips = append(ips, ip)
			}
			sort.Strings(ips)
			for i, ip := range ips[:min(len(ips), math.MaxUint8)] {
				p := r.IPs[ip]
				s.more.ips = append(s.more.ips, forensicIP{ip: ip})
				have := &s.more.ips[i].have
				put(tagMethod, uint8(i+1), p.Methods, &have[0])
				put(tagURL, uint8(i+1), p.URLs, &have[1])
				put(tagAPI, uint8(i+1), p.APIs, &have[2])
			}
		}
	}
	f.recs[k][s.key] = s
	f.peak[k] = max(f.peak[k], len(f.recs[k]))
	f.n++
	f.recBytes += s.size()
	f.pushFront(s)
	f.trim()
	f.publish()
}

func onlyIP(r *ForensicRecord) (string, *ForensicsIP, bool) {
	if len(r.IPs) != 1 {
		return "", nil, false
	}
	for ip, p := range r.IPs {
		return ip, p, p != nil
	}
	return "", nil, false
}

// Dirty returns the records changed since the last call.
func (f *Forensics) Dirty() []*ForensicRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*ForensicRecord, 0, f.ndirty)
	// Changed records moved to the front when they changed.
	for s := f.lru.next; s != &f.lru && len(out) < f.ndirty; s = s.next {
		if s.flags&stateDirty != 0 {
			s.flags &^= stateDirty
			out = append(out, f.record(s))
		}
	}
	f.ndirty = 0
	sort.Slice(out, func(i, j int) bool { return out[i].Value < out[j].Value })
	return out
}

// record builds the JSON shape of an identity's activity.
func (f *Forensics) record(s *forensicState) *ForensicRecord {
	r := &ForensicRecord{Kind: s.kind.String(), Value: s.key, FirstSeen: timeOf(s.first, s.firstLoc),
		LastSeen: timeOf(s.last, s.lastLoc),
		Methods:  make(map[string]int64, s.have[0]), URLs: make(map[string]int64, s.have[1]),
		APIs: make(map[string]int64, s.have[2]), Hours: map[int64]int64{}}
	var ips []*ForensicsIP
	if s.more != nil && s.flags&stateOneIP == 0 {
		ips = make([]*ForensicsIP, len(s.more.ips))
		for i, p := range s.more.ips {
			ips[i] = &ForensicsIP{Methods: make(map[string]int64, p.have[0]), URLs: make(map[string]int64, p.have[1]),
				APIs: make(map[string]int64, p.have[2])}
		}
	}
	for i := range s.ents {
		e := &s.ents[i]
		tag, n := e.tag(), e.n()
		if tag == tagHour {
			r.Hours[int64(int32(e[0]))] = n
			continue
		}
		var m map[string]int64
		if ip := e.ip(); ip == 0 {
			m = [3]map[string]int64{r.Methods, r.URLs, r.APIs}[tag]
			if tag == tagMethod {
				r.Total += n // each call counts one method
			}
		} else {
			p := ips[ip-1]
			m = [3]map[string]int64{p.Methods, p.URLs, p.APIs}[tag]
			if tag == tagMethod {
				p.Total += n // each call counts one method
			}
		}
		m[f.names.list[e[0]].name] = n
	}
	r.IPs = make(map[string]*ForensicsIP, max(len(ips), 1))
	switch {
	case s.kind == detect.KindIP:
		r.IPs[s.key] = &ForensicsIP{Total: r.Total, Methods: maps.Clone(r.Methods), URLs: maps.Clone(r.URLs), APIs: maps.Clone(r.APIs)}
	case s.flags&stateOneIP != 0:
		r.IPs[s.more.ips[0].ip] = &ForensicsIP{Total: r.Total, Methods: maps.Clone(r.Methods), URLs: maps.Clone(r.URLs), APIs: maps.Clone(r.APIs)}
	}
	for i, p := range ips {
		r.IPs[s.more.ips[i].ip] = p
	}
	return r
}

// Len returns the number of identities tracked.
func (f *Forensics) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
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
	if id, ok := f.names.lookup(api); ok {
		for k := range f.recs {
			for v, s := range f.recs[k] {
				if i := s.find(tagAPI, 0, id); i >= 0 {
					out = append(out, TopIdentity{Kind: detect.Kind(k).String(), Value: v, Requests: s.ents[i].n()})
				}
			}
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
