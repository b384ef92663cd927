package observe

import (
	"cmp"
	"hash/maphash"
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
// identity is small: an identity seen once is one 80-byte record naming
// its call's method, template and API by the numbers of names shared by
// all records; one that returns gets its counts in one slice of 12-byte
// entries. It builds the JSON shape, ForensicRecord, only when asked.
type Forensics struct {
	mu       sync.Mutex
	max      int
	maxBytes int64 // 0: no byte budget
	// recs indexes the records by a 64-bit hash of kind and key (16-byte
	// slots); a record whose hash another has is in clash.
	recs     map[uint64]*forensicState
	clash    map[forensicKey]*forensicState
	seed     maphash.Seed
	mask     uint64 // of the hash: all ones (tests clear bits to make clashes)
	peak     [2]int // Go's maps do not shrink: their largest sizes
	n        int
	lru      forensicState // sentinel of the recency list: lru.next is the most recent
	names    nameTable
	other    uint32 // the name "(other)"
	ndirty   int    // records changed since the last Dirty, all at the front of the list
	recBytes int64  // the records' own bytes
	fixed    int64  // the bytes of the names and index, as of…
	sized    bool   // …unless names or index grew since
	// gone lists the stored identities evicted since the last Save, whose
	// records the store is to delete (at most forensicMaxGone: past it,
	// Save prunes the store to the number of records held).
	gone   []ForensicKey
	saveMu sync.Mutex // one Save at a time

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

// forensicState is one identity's activity. An identity seen once has no
// body: ids, first and ip say what its call was.
type forensicState struct {
	key   string
	ip    string        // the client IP of a non-IP identity's only call
	body  *forensicBody // nil until a second call
	prev  *forensicState
	next  *forensicState
	first int64     // unix nanoseconds; zeroTime: none
	ids   [3]uint32 // the only call's method, template and API
	kind  detect.Kind
	flags uint8
	// The time zones of first and last.
	firstLoc uint8
	lastLoc  uint8
}

const (
	stateDirty uint8 = 1 << iota // changed since the last Dirty
	// stateOneIP: every call of this non-IP identity came from body.ips[0],
	// whose counts are the identity's own (kept once).
	stateOneIP
	// stateStored: the store holds a record of this identity (read back,
	// or handed to a save).
	stateStored
)

// forensicMaxGone bounds the evicted identities remembered for the store
// to delete (a flood evicts more: the store is then pruned by age).
const forensicMaxGone = 16384

// ForensicKey names an identity's forensic record.
type ForensicKey struct {
	Kind, Value string
}

// ForensicsStore is where Save keeps the records: it stores and deletes
// them, and prunes the least recently seen past a number.
type ForensicsStore interface {
	PutForensics([]*ForensicRecord) error
	DeleteForensics([]ForensicKey) error
	PruneForensics(keep int) (int, error)
}

// forensicBody holds the counts of an identity seen more than once.
type forensicBody struct {
	ents  []fEntry
	ips   []forensicIP // the client IPs of a non-IP identity
	index map[uint64]int32
	last  int64
	// have counts the names of each tag (method, URL, API) in the
	// identity's own counts, "(other)" included.
	have [3]uint16
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
	bodyBytes  = detect.AllocSize(int(unsafe.Sizeof(forensicBody{})))
)

const (
	entrySize     = int(unsafe.Sizeof(fEntry{}))
	ipSize        = int(unsafe.Sizeof(forensicIP{}))
	recSlotSize   = 8 + 8      // hash, pointer
	clashSlotSize = 8 + 16 + 8 // kind, key, pointer
)

// nameTable numbers the methods, templates and APIs that records count,
// each kept once; a name no record counts any more is forgotten.
type nameTable struct {
	ids     map[string]uint32
	list    []nameSlot // by id
	free    []uint32
	peak    int
	bytes   int64 // the names' own bytes
	changed bool  // since size was last asked
	// recent is the last name looked up, per tag: calls repeat them.
	recent [3]struct {
		name string
		id   uint32
		ok   bool
	}
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
	t.changed = true
	t.bytes += detect.StringSize(name)
	return id
}

// id returns name's number, numbering it if new; tag picks the recent
// name compared first.
func (t *nameTable) id(tag uint8, name string) uint32 {
	r := &t.recent[tag]
	if r.ok && r.name == name {
		return r.id
	}
	id, ok := t.ids[name]
	if !ok {
		id = t.add(name)
	}
	r.name, r.id, r.ok = t.list[id].name, id, true
	return id
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
	for i := range t.recent {
		if t.recent[i].id == id {
			t.recent[i].ok = false
		}
	}
	s := &t.list[id]
	delete(t.ids, s.name)
	t.bytes -= detect.StringSize(s.name)
	t.changed = true
	*s = nameSlot{}
	t.free = append(t.free, id)
}

func (t *nameTable) size() int64 {
	t.changed = false
	return t.bytes + detect.AllocSize(cap(t.list)*int(unsafe.Sizeof(nameSlot{}))) + detect.AllocSize(cap(t.free)*4) +
		detect.MapBytes(t.peak, 16+8)
}

// NewForensics keeps at most maxIdentities identities, in at most maxBytes
// bytes (estimated; 0: no byte budget).
func NewForensics(maxIdentities int, maxBytes int64) *Forensics {
	f := &Forensics{max: maxIdentities, maxBytes: maxBytes, names: nameTable{ids: map[string]uint32{}}}
	f.recs, f.clash, f.seed, f.mask = map[uint64]*forensicState{}, map[forensicKey]*forensicState{}, maphash.MakeSeed(), ^uint64(0)
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
	if !f.sized || f.names.changed {
		f.fixed = f.names.size()
		f.fixed += detect.MapBytes(f.peak[0], recSlotSize) + detect.MapBytes(f.peak[1], clashSlotSize)
		f.sized = true
	}
	return f.recBytes + f.fixed
}

type forensicKey struct {
	kind  detect.Kind
	value string
}

func (f *Forensics) hash(k detect.Kind, v string) uint64 {
	return (maphash.String(f.seed, v) ^ (uint64(k)+1)*0x9e3779b97f4a7c15) & f.mask
}

// lookup returns the record of an identity, or nil.
func (f *Forensics) lookup(k detect.Kind, v string) *forensicState {
	if s := f.recs[f.hash(k, v)]; s != nil && s.kind == k && s.key == v {
		return s
	}
	if len(f.clash) > 0 {
		return f.clash[forensicKey{k, v}]
	}
	return nil
}

// insert indexes a new record.
func (f *Forensics) insert(s *forensicState) {
	f.n++
	if h := f.hash(s.kind, s.key); f.recs[h] == nil {
		f.recs[h] = s
	} else {
		f.clash[forensicKey{s.kind, s.key}] = s
	}
	if n := len(f.recs); n > f.peak[0] {
		f.peak[0], f.sized = n, false
	}
	if n := len(f.clash); n > f.peak[1] {
		f.peak[1], f.sized = n, false
	}
}

// unindex takes a record out of the index.
func (f *Forensics) unindex(s *forensicState) {
	f.n--
	if h := f.hash(s.kind, s.key); f.recs[h] == s {
		delete(f.recs, h)
	} else {
		delete(f.clash, forensicKey{s.kind, s.key})
	}
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
	ids := [3]uint32{f.names.id(tagMethod, t.Method), f.names.id(tagURL, t.Template), f.names.id(tagAPI, api)}
	ipKey := "" // the IP, the bytes of its record's key once seen
	for k := range detect.NumKinds {
		v := t.Identities[k]
		if v == "" {
			continue
		}
		st := f.lookup(k, v)
		if st == nil {
			// A first sighting: one small record.
			st = &forensicState{key: strings.Clone(v), kind: k, first: at, ids: ids, firstLoc: loc, lastLoc: loc,
				flags: stateDirty}
			if k != detect.KindIP {
				st.ip = ipKey
			}
			for _, id := range ids {
				f.names.ref(id)
			}
			f.insert(st)
			f.ndirty++
			f.recBytes += st.size()
			f.pushFront(st)
			if k == detect.KindIP {
				ipKey = st.key // the token's record shares these bytes
			}
			continue
		}
		st.unlink()
		f.pushFront(st)
		if st.flags&stateDirty == 0 {
			st.flags |= stateDirty
			f.ndirty++
		}
		shape := st.shape()
		if st.body == nil {
			f.expand(st)
		}
		// zeroTime is below every time, as the zero time.Time is.
		if st.first == zeroTime || at < st.first {
			st.first, st.firstLoc = at, loc
		}
		if at > st.body.last {
			st.body.last, st.lastLoc = at, loc
		}
		if k == detect.KindIP {
			ipKey = st.key
		}
		f.countCall(st, k, ip, ipKey, ids, hour)
		if now := st.shape(); now != shape {
			f.recBytes += now.size() - shape.size()
		}
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
	b := st.body
	if k != detect.KindIP {
		switch {
		case st.flags&stateOneIP != 0 && ip == b.ips[0].ip:
		default:
			if st.flags&stateOneIP != 0 {
				f.splitIPs(st)
			}
			if ip != "" {
				perIP = b.ipNumber(ip, ipKey)
			}
		}
	}
	for tag := range uint8(3) {
		f.countName(b, tag, 0, ids[tag], &b.have[tag])
		if perIP != 0 {
			f.countName(b, tag, perIP, ids[tag], &b.ips[perIP-1].have[tag])
		}
	}
	b.countHour(hour)
}

// expand gives a record seen once the body that counts further calls.
func (f *Forensics) expand(st *forensicState) {
	b := &forensicBody{ents: make([]fEntry, 0, 4), last: st.first, have: [3]uint16{1, 1, 1}}
	for tag, id := range st.ids {
		b.ents = append(b.ents, newEntry(uint8(tag), 0, id, 1)) // the names' references move to the entries
	}
	b.ents = append(b.ents, newEntry(tagHour, 0, uint32(hourOf(st.first)), 1))
	if st.ip != "" {
		// Its IP's counts are the identity's own until another shows.
		b.ips = []forensicIP{{ip: st.ip}}
		st.flags |= stateOneIP
	}
	st.body, st.ip, st.ids = b, "", [3]uint32{}
}

// hourOf returns the unix hour of a time kept, as Consume counts it.
func hourOf(ns int64) int32 {
	return int32(max(min(timeOf(ns, 0).Unix()/3600, math.MaxInt32), math.MinInt32))
}

// countName counts a call under name id of tag for the identity (ip 0) or
// one of its IPs; past the tag's limit, new names count under "(other)".
func (f *Forensics) countName(st *forensicBody, tag, ip uint8, id uint32, have *uint16) {
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
	b := st.body
	b.ips[0].have = b.have
	for i, n := 0, len(b.ents); i < n; i++ {
		e := b.ents[i]
		if tag := e.tag(); tag != tagHour {
			f.names.ref(e[0])
			b.push(newEntry(tag, 1, e[0], e.n()))
		}
	}
}

// ipNumber returns the number (from 1) of a client IP among st's, the
// "(other)" one past forensicMaxIPs.
func (st *forensicBody) ipNumber(ip, ipKey string) uint8 {
	ips := st.ips
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
	st.ips = append(ips, forensicIP{ip: name})
	return uint8(len(st.ips))
}

// find returns the entry counting name id of tag for ip, or -1.
func (st *forensicBody) find(tag, ip uint8, id uint32) int {
	if st.index != nil {
		if i, ok := st.index[entryKey(tag, ip, id)]; ok {
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
func (st *forensicBody) push(e fEntry) {
	st.ents = append(st.ents, e)
	switch {
	case st.index != nil:
		st.index[entryKey(e.tag(), e.ip(), e[0])] = int32(len(st.ents) - 1)
	case len(st.ents) > forensicIndexAt:
		st.reindex()
	}
}

func (st *forensicBody) reindex() {
	if len(st.ents) <= forensicIndexAt {
		st.index = nil
		return
	}
	st.index = make(map[uint64]int32, len(st.ents))
	for i := range st.ents {
		e := &st.ents[i]
		st.index[entryKey(e.tag(), e.ip(), e[0])] = int32(i)
	}
}

// countHour counts a call in its hour and forgets hours older than a week
// before the latest.
func (st *forensicBody) countHour(hour int32) {
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

// recordShape is what a record's size depends on.
type recordShape struct {
	key            int
	body           bool
	ents, ips, idx int
}

func (st *forensicState) shape() recordShape {
	if b := st.body; b != nil {
		return recordShape{len(st.key), true, cap(b.ents), cap(b.ips), len(b.index)}
	}
	return recordShape{key: len(st.key)}
}

// size estimates a record's heap bytes. The bytes of its IPs' strings are
// the IP identities' keys, counted there.
func (sh recordShape) size() int64 {
	n := stateBytes + detect.AllocSize(sh.key)
	if sh.body {
		n += bodyBytes + detect.AllocSize(sh.ents*entrySize) + detect.AllocSize(sh.ips*ipSize)
		if sh.idx > 0 {
			n += detect.MapBytes(sh.idx, 16)
		}
	}
	return n
}

// size estimates a record's heap bytes.
func (st *forensicState) size() int64 { return st.shape().size() }

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
	if old.flags&stateStored != 0 && len(f.gone) < forensicMaxGone {
		f.gone = append(f.gone, ForensicKey{old.kind.String(), old.key})
	}
	f.remove(old)
	f.evictions.Add(1)
}

// remove forgets a record and the names only it counted.
func (f *Forensics) remove(s *forensicState) {
	s.unlink()
	f.unindex(s)
	if s.flags&stateDirty != 0 {
		f.ndirty--
	}
	f.recBytes -= s.size()
	if s.body == nil {
		for _, id := range s.ids {
			f.names.unref(id)
		}
		return
	}
	for i := range s.body.ents {
		if e := &s.body.ents[i]; e.tag() != tagHour {
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
	s := f.lookup(k, value)
	if s == nil {
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
	if old := f.lookup(k, r.Value); old != nil {
		f.remove(old)
	}
	s := f.build(k, r)
	f.insert(s)
	f.recBytes += s.size()
	f.pushFront(s)
	f.trim()
	f.publish()
}

// PutOlder installs a record read back from storage as the least recently
// seen, if it fits: put records newest first, until PutOlder returns false
// (the records are full: older ones would not be kept). A record of an
// identity already held is skipped.
func (f *Forensics) PutOlder(r *ForensicRecord) bool {
	k, err := detect.ParseKind(r.Kind)
	if err != nil {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n >= f.max {
		return false
	}
	if f.lookup(k, r.Value) != nil {
		return true
	}
	s := f.build(k, r)
	f.insert(s)
	f.recBytes += s.size()
	s.prev, s.next = f.lru.prev, &f.lru
	f.lru.prev.next = s
	f.lru.prev = s
	fits := !f.full() || f.n == 1
	if !fits {
		f.remove(s) // the store keeps it until Save prunes it
	}
	f.publish()
	return fits
}

// build makes the state of a record read back from storage.
func (f *Forensics) build(k detect.Kind, r *ForensicRecord) *forensicState {
	b := &forensicBody{last: stamp(r.LastSeen)}
	s := &forensicState{key: r.Value, kind: k, first: stamp(r.FirstSeen), body: b, flags: stateStored,
		firstLoc: locationID(r.FirstSeen), lastLoc: locationID(r.LastSeen)}
	put := func(tag, ip uint8, m map[string]int64, have *uint16) {
		for name, n := range m {
			id := f.names.id(tag, name)
			f.names.ref(id)
			b.push(newEntry(tag, ip, id, n))
		}
		*have = uint16(min(len(m), math.MaxUint16))
	}
	put(tagMethod, 0, r.Methods, &b.have[0])
	put(tagURL, 0, r.URLs, &b.have[1])
	put(tagAPI, 0, r.APIs, &b.have[2])
	for h, n := range r.Hours {
		b.push(newEntry(tagHour, 0, uint32(int32(max(min(h, math.MaxInt32), math.MinInt32))), n))
	}
	if k != detect.KindIP && len(r.IPs) > 0 {
		if ip, p, ok := onlyIP(r); ok && p.Total == r.Total && maps.Equal(p.Methods, r.Methods) &&
			maps.Equal(p.URLs, r.URLs) && maps.Equal(p.APIs, r.APIs) {
			b.ips = []forensicIP{{ip: ip}}
			s.flags |= stateOneIP
		} else {
			ips := make([]string, 0, len(r.IPs))
			for ip := range r.IPs {
				ips = append(ips, ip)
			}
			sort.Strings(ips)
			for i, ip := range ips[:min(len(ips), math.MaxUint8)] {
				p := r.IPs[ip]
				b.ips = append(b.ips, forensicIP{ip: ip})
				have := &b.ips[i].have
				put(tagMethod, uint8(i+1), p.Methods, &have[0])
				put(tagURL, uint8(i+1), p.URLs, &have[1])
				put(tagAPI, uint8(i+1), p.APIs, &have[2])
			}
		}
	}
	return s
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

// SaveDirty hands the records changed since the last save to put, at most
// batch at a time, so that saving a million changed identities takes the
// memory of one batch (Dirty builds them all at once) and the lock is
// held for one batch at a time. The records of a batch put fails stay
// changed, to be saved next time; SaveDirty returns the first error.
func (f *Forensics) SaveDirty(batch int, put func([]*ForensicRecord) error) error {
	batch = max(batch, 1)
	f.mu.Lock()
	pending := make([]*forensicState, 0, f.ndirty)
	// Changed records moved to the front when they changed.
	for s := f.lru.next; s != &f.lru && len(pending) < f.ndirty; s = s.next {
		if s.flags&stateDirty != 0 {
			pending = append(pending, s)
		}
	}
	f.mu.Unlock()
	var first error
	for len(pending) > 0 {
		part := pending[:min(batch, len(pending))]
		pending = pending[len(part):]
		out := make([]*ForensicRecord, 0, len(part))
		taken := part[:0]
		f.mu.Lock()
		for _, s := range part {
			// Skip the records evicted since, and those saved since.
			if s.flags&stateDirty != 0 && f.lookup(s.kind, s.key) == s {
				// Stored from now on: evicted before put returns, it is
				// deleted at the next save.
				s.flags = s.flags&^stateDirty | stateStored
				f.ndirty--
				out = append(out, f.record(s))
				taken = append(taken, s)
			}
		}
		f.mu.Unlock()
		if len(out) == 0 {
			continue
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Value < out[j].Value })
		if err := put(out); err != nil {
			first = cmp.Or(first, err)
			f.mu.Lock()
			for _, s := range taken {
				if s.flags&stateDirty == 0 && f.lookup(s.kind, s.key) == s {
					s.flags |= stateDirty
					f.ndirty++
				}
			}
			f.mu.Unlock()
		}
		clear(part)
	}
	return first
}

// Save brings st in line with memory: it deletes the records of the
// identities evicted since the last Save, stores the changed ones a batch
// at a time (SaveDirty), and prunes the least recently seen records past
// the number held (those evicted beyond what was remembered, or left by an
// older version). An evicted identity's history is thus gone from the
// store too: one that returns starts again, as it does in memory (Stats
// counts the evictions, and the evicted whose latest calls were never
// saved). Returns the first error; what failed is tried again next time.
func (f *Forensics) Save(batch int, st ForensicsStore) error {
	f.saveMu.Lock()
	defer f.saveMu.Unlock()
	f.mu.Lock()
	// An identity back since it was evicted is stored anew below.
	gone := slices.DeleteFunc(f.gone, func(k ForensicKey) bool {
		kind, err := detect.ParseKind(k.Kind)
		return err == nil && f.lookup(kind, k.Value) != nil
	})
	f.gone = nil
	f.mu.Unlock()
	// Deleted before the changed are put: an identity back meanwhile is
	// stored anew.
	var first error
	if err := st.DeleteForensics(gone); err != nil {
		first = err
		f.mu.Lock()
		for _, k := range gone {
			if len(f.gone) < forensicMaxGone {
				f.gone = append(f.gone, k)
			}
		}
		f.mu.Unlock()
	}
	if err := f.SaveDirty(batch, st.PutForensics); err != nil {
		first = cmp.Or(first, err)
	}
	if _, err := st.PruneForensics(f.Len()); err != nil {
		first = cmp.Or(first, err)
	}
	return first
}

// record builds the JSON shape of an identity's activity.
func (f *Forensics) record(s *forensicState) *ForensicRecord {
	r := &ForensicRecord{Kind: s.kind.String(), Value: s.key, FirstSeen: timeOf(s.first, s.firstLoc), Hours: map[int64]int64{}}
	b := s.body
	if b == nil {
		// Seen once.
		r.LastSeen = timeOf(s.first, s.lastLoc)
		r.Total = 1
		r.Methods = map[string]int64{f.names.list[s.ids[0]].name: 1}
		r.URLs = map[string]int64{f.names.list[s.ids[1]].name: 1}
		r.APIs = map[string]int64{f.names.list[s.ids[2]].name: 1}
		r.Hours[int64(hourOf(s.first))] = 1
		r.IPs = make(map[string]*ForensicsIP, 1)
		if ip := s.ip; s.kind == detect.KindIP || ip != "" {
			if s.kind == detect.KindIP {
				ip = s.key
			}
			r.IPs[ip] = &ForensicsIP{Total: 1, Methods: maps.Clone(r.Methods), URLs: maps.Clone(r.URLs), APIs: maps.Clone(r.APIs)}
		}
		return r
	}
	r.LastSeen = timeOf(b.last, s.lastLoc)
	r.Methods, r.URLs, r.APIs = make(map[string]int64, b.have[0]), make(map[string]int64, b.have[1]), make(map[string]int64, b.have[2])
	var ips []*ForensicsIP
	if s.flags&stateOneIP == 0 {
		ips = make([]*ForensicsIP, len(b.ips))
		for i, p := range b.ips {
			ips[i] = &ForensicsIP{Methods: make(map[string]int64, p.have[0]), URLs: make(map[string]int64, p.have[1]),
				APIs: make(map[string]int64, p.have[2])}
		}
	}
	for i := range b.ents {
		e := &b.ents[i]
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
				p.Total += n
			}
		}
		m[f.names.list[e[0]].name] = n
	}
	r.IPs = make(map[string]*ForensicsIP, max(len(ips), 1))
	switch {
	case s.kind == detect.KindIP:
		r.IPs[s.key] = &ForensicsIP{Total: r.Total, Methods: maps.Clone(r.Methods), URLs: maps.Clone(r.URLs), APIs: maps.Clone(r.APIs)}
	case s.flags&stateOneIP != 0:
		r.IPs[b.ips[0].ip] = &ForensicsIP{Total: r.Total, Methods: maps.Clone(r.Methods), URLs: maps.Clone(r.URLs), APIs: maps.Clone(r.APIs)}
	}
	for i, p := range ips {
		r.IPs[b.ips[i].ip] = p
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
		top := func(s *forensicState) {
			n := int64(0)
			switch {
			case s.body == nil && s.ids[2] == id:
				n = 1
			case s.body != nil:
				if i := s.body.find(tagAPI, 0, id); i >= 0 {
					n = s.body.ents[i].n()
				}
			}
			if n > 0 {
				out = append(out, TopIdentity{Kind: s.kind.String(), Value: s.key, Requests: n})
			}
		}
		for _, s := range f.recs {
			top(s)
		}
		for _, s := range f.clash {
			top(s)
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
