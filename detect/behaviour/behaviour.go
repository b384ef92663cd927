package behaviour

import (
	"math"
	"math/bits"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/vigil-project/vigil/detect"
)

// Windows of the per-identity state: a short one for rates (1 min in 10 s
// buckets) and a long one for attacks that build slowly (10 min in 1 min
// buckets). Distinct counts use small HyperLogLog sketches over two
// tumbling 5-minute epochs, so they cover the last 5 to 10 minutes.
const (
	shortBucket  = 10 * time.Second
	shortBuckets = 6
	longBucket   = time.Minute
	longBuckets  = 10
	sketchEpoch  = 5 * time.Minute
	// wideEpoch is the epoch of the sketches of where an identity comes
	// from (IPs, user agents): a stolen token used from a new address every
	// few minutes shows only over half an hour or more.
	wideEpoch = 30 * time.Minute
)

// Counters kept per long-window bucket.
const (
	cRequests = iota
	cErrors   // status ≥ 400 other than failed logins, 404 and 405
	cFailed   // 404, 405: paths or methods that do not exist
	cLoginFail
	cDeletes
	numCounters
)

// sketchPair is the current and the previous epoch's sketch of one
// variable, with the estimate of their union cached: it is read on every
// request and changes only when a register does. est < 0: not cached.
// Pointer-free, so the garbage collector never scans it.
type sketchPair struct {
	cur, prev hll
	est       float64
}

func (p *sketchPair) add(x uint64) {
	if p.cur.add(x) {
		p.est = -1
	}
}

func (p *sketchPair) estimate() float64 {
	if p.est < 0 {
		u := p.cur
		u.merge(&p.prev)
		p.est = u.estimate()
	}
	return p.est
}

// The sketched variables: the slots of identityState.skSlots.
const (
	skFailedPaths = iota
	skLoginUsers
	skIPs
	skAgents
	skObjects
	// skObjectsWide is skObjects over wideEpoch: an ID walk slow enough to
	// stay under the 10-minute count shows over the hour.
	skObjectsWide
	// skUnknownRoutes counts the distinct routes (method and template) an
	// identity failed on that the API is not known to have
	// (Transaction.Route), over wideEpoch: a probe paced under any
	// 10-minute count still adds up over the half hour.
	skUnknownRoutes
	// skScannerPaths counts the distinct scanner-shaped paths
	// (detect.ScannerPath) an identity failed on, over wideEpoch.
	skScannerPaths
	numSketches
)

// wideSketch marks the sketches over wideEpoch.
func wideSketch(i int) bool {
	return i == skIPs || i == skAgents || i == skObjectsWide || i == skUnknownRoutes || i == skScannerPaths
}

// identityState is what Vigil remembers of one identity on one API: 240
// bytes (one size class) whatever its traffic, plus the sketches it needed
// (24 bytes each while they hold few values, 136 past that; in one
// allocation) and, rarely, stateExtra.
//
// Counters saturate rather than wrap: at most 65,535 calls (and as many
// errors, misses, failed logins and deletes) per identity per minute, and
// per 10-second bucket of the rate window; at most 4 GiB - 1 of response
// bytes per identity per minute. Every threshold is far below.
// Bucket indexes are int32: 10-second buckets since 1970 fit until 2650.
type identityState struct {
	model *apiModel
	id    string
	first int64 // unix nanoseconds
	// sk points to the sketch pairs, one pointer-free allocation;
	// skSlots says which sketches it holds and in which form (sketches.go).
	sk    *uint64
	extra *stateExtra // nil for most identities

	// least-recently-seen list of the shard
	prev, next *identityState

	shortHead  int32 // index of the newest short bucket (time / shortBucket)
	longHead   int32
	lastSample int32 // long bucket index of the last training sample
	skEpoch    int32 // sketchEpoch of the sketches (time / sketchEpoch)
	skWide     int32 // wideEpoch of ips and agents
	short      [shortBuckets]uint16
	long       [longBuckets][numCounters]uint16
	longBytes  [longBuckets]uint32 // response bytes
	skSlots    uint16
	kind       detect.Kind
	marks      stateFlags
}

// newOctave reports whether the state's age in minutes (since its first
// call) is in a later power of two at minute than at its last sample:
// true in the first active minute of ages 1, 2–3, 4–7, 8–15…
func (s *identityState) newOctave(minute int32) bool {
	born := int32(s.first / int64(longBucket))
	age := func(m int32) uint32 { return uint32(max(0, m-born)) }
	return bits.Len32(age(minute)) != bits.Len32(age(s.lastSample))
}

// stateFlags are a state's marks, one bit each.
type stateFlags uint8

const (
	// flagPrealloc marks a shard's scratch state (sketches.go).
	flagPrealloc stateFlags = 1 << iota
	// flagOnSharedIP marks a credential or account seen from a shared
	// address (population.go).
	flagOnSharedIP
)

// prealloc reports whether the state is a shard's scratch state.
func (s *identityState) prealloc() bool { return s.marks&flagPrealloc != 0 }

// stateExtra holds what few identities need: history while the API
// learned, flags, strikes, client IPs (non-IP identities only).
type stateExtra struct {
	// ownMax is the largest value of each variable this identity showed
	// while its API learned: what is normal for this very identity (a
	// nightly batch job, a heavy partner) is not an attack from it.
	ownMax  *[numVars]float32
	flagged *[numTypes]int64
	// strikes holds, per single-call type, the times of its detections
	// not yet acted on (see EngineConfig.BlockAfter).
	strikes *[numTypes][]int64
	// clientIPs are up to maxClientIPs distinct, for non-IP identities.
	clientIPs []string
	// attacks counts the attacks acted on (blocked or would-block).
	attacks int32
	// lastIP is the index in clientIPs of the address of the session's
	// call before (-1: none of them), switches its switches of address.
	lastIP   int8
	switches *addressSwitches
	// shared holds the cluster's part of a shared state (shared.go).
	shared *sharedState
	// lt holds the hour and day windows, made once the identity has been
	// seen for longer than the 10-minute window (longterm.go).
	lt *longTerm
}

func (s *identityState) ext() *stateExtra {
	if s.extra == nil {
		s.extra = new(stateExtra)
	}
	return s.extra
}

// ownMax returns the identity's own maxima while its API learned (nil:
// none).
func (s *identityState) ownMax() *[numVars]float32 {
	if s.extra == nil {
		return nil
	}
	return s.extra.ownMax
}

// flags returns until when each type is flagged, made on first use.
func (s *identityState) flags() *[numTypes]int64 {
	ext := s.ext()
	if ext.flagged == nil {
		ext.flagged = new([numTypes]int64)
	}
	return ext.flagged
}

// flagged returns until when each type is flagged (nil: never flagged).
func (s *identityState) flagged() *[numTypes]int64 {
	if s.extra == nil {
		return nil
	}
	return s.extra.flagged
}

func (s *identityState) attacks() int {
	if s.extra == nil {
		return 0
	}
	return int(s.extra.attacks)
}

func (s *identityState) clientIPs() []string {
	if s.extra == nil {
		return nil
	}
	return s.extra.clientIPs
}

const maxClientIPs = 20

func inc16(p *uint16) {
	if *p < math.MaxUint16 {
		*p++
	}
}

// advance moves the windows to now, clearing buckets that went by.
func (s *identityState) advance(now int64) {
	s.advanceShort(now / int64(shortBucket))
	s.advanceLong(now / int64(longBucket))
	s.rotate(now)
}

// advanceShort moves the rate window's newest bucket to h (never back).
func (s *identityState) advanceShort(h int64) {
	if h == int64(s.shortHead) {
		return
	}
	sh := s.sharedPart()
	for i := int64(s.shortHead) + 1; i <= h && i <= int64(s.shortHead)+shortBuckets; i++ {
		s.short[i%shortBuckets] = 0
		if sh != nil {
			sh.peerShort[i%shortBuckets], sh.sentShort[i%shortBuckets] = 0, 0
		}
	}
	if h > int64(s.shortHead) {
		s.shortHead = int32(h)
	}
}

// advanceLong moves the long window's newest bucket to h (never back).
func (s *identityState) advanceLong(h int64) {
	if h == int64(s.longHead) {
		return
	}
	sh := s.sharedPart()
	for i := int64(s.longHead) + 1; i <= h && i <= int64(s.longHead)+longBuckets; i++ {
		s.long[i%longBuckets] = [numCounters]uint16{}
		s.longBytes[i%longBuckets] = 0
		if sh != nil {
			sh.peerLong[i%longBuckets], sh.sentLong[i%longBuckets] = [numCounters]uint32{}, [numCounters]uint16{}
			sh.peerBytes[i%longBuckets], sh.sentBytes[i%longBuckets] = 0, 0
		}
	}
	if h > int64(s.longHead) {
		s.longHead = int32(h)
	}
}

// longSum, respBytes and shortSum sum a window's buckets; a shared
// state's include the other replicas' part.
func (s *identityState) longSum(c int) float64 {
	var n uint64
	for i := range s.long {
		n += uint64(s.long[i][c])
	}
	if sh := s.sharedPart(); sh != nil {
		for i := range sh.peerLong {
			n += uint64(sh.peerLong[i][c])
		}
	}
	return float64(n)
}

func (s *identityState) respBytes() float64 {
	var n uint64
	for _, b := range s.longBytes {
		n += uint64(b)
	}
	if sh := s.sharedPart(); sh != nil {
		for _, b := range sh.peerBytes {
			n += b
		}
	}
	return float64(n)
}

func (s *identityState) shortSum() float64 {
	var n uint64
	for _, v := range s.short {
		n += uint64(v)
	}
	if sh := s.sharedPart(); sh != nil {
		for _, v := range sh.peerShort {
			n += uint64(v)
		}
	}
	return float64(n)
}

// observe adds one transaction to the state.
func (s *identityState) observe(t *detect.Transaction, now int64, call *callFacts) {
	// The hour and day windows first: a new one starts from the 10-minute
	// window before it moves on, which still holds the identity's whole
	// history (a sparse caller's first minutes would leave it otherwise).
	lt := s.longTerm(now)
	s.advance(now)
	if s.first == 0 {
		s.first = now
	}
	inc16(&s.short[int64(s.shortHead)%shortBuckets])
	li := int64(s.longHead) % longBuckets
	b := &s.long[li]
	inc16(&b[cRequests])
	rb := &s.longBytes[li]
	resp := uint64(max(t.ResponseBytes, 0))
	*rb = uint32(min(uint64(*rb)+resp, math.MaxUint32))
	if lt != nil {
		lt.add(ltRequests, 1)
		lt.add(ltBytes, resp)
	}
	failedLogin := call.login && (t.Status == 401 || t.Status == 403)
	switch {
	case failedLogin:
		inc16(&b[cLoginFail])
		if lt != nil {
			lt.add(ltLoginFail, 1)
		}
		if s.kind == detect.KindIP || s.kind == detect.KindCookie {
			if u := t.Identities[detect.KindUsername]; u != "" {
				h := hashString(u)
				s.add(skLoginUsers, h)
				if s.kind == detect.KindIP {
					s.add(skLoginUsersWide, h)
				}
			}
		}
	case t.Status == 404 || t.Status == 405:
		// Paths that do not exist: probing's signal, not an error rate.
		inc16(&b[cFailed])
		s.add(skFailedPaths, hashString(t.Path))
	case t.Status >= 400:
		inc16(&b[cErrors])
		if lt != nil {
			lt.add(ltErrors, 1)
		}
	}
	if t.Status >= 400 && !failedLogin {
		// Probing by what the API does not have: a route it is not known
		// to serve, a path shaped like a scanner's probe. A miss on a
		// known route (a missing object) is neither.
		if t.Route == detect.RouteUnknown {
			s.add(skUnknownRoutes, call.route)
		}
		if call.scanner {
			s.add(skScannerPaths, hashString(t.Path))
		}
	}
	if t.Method == "DELETE" {
		inc16(&b[cDeletes])
		if lt != nil {
			lt.add(ltDeletes, 1)
		}
	}
	if s.kind != detect.KindIP {
		if ip := t.Identities[detect.KindIP]; ip != "" {
			s.add(skIPs, hashString(ip))
			i := s.noteIP(ip)
			if s.kind == detect.KindToken || s.kind == detect.KindCookie {
				s.noteSwitch(i, int32(s.longHead))
			}
		}
		if s.kind.Secret() && t.UserAgent != "" {
			s.add(skAgents, hashString(t.UserAgent))
		}
	} else if isNetwork(s.id) {
		s.add(skAddresses, hashString(t.Identities[detect.KindIP]))
	} else if u := userOf(t); u != "" {
		s.add(skUsers, hashString(u))
	}
	if call.hasObject && (t.Method == "GET" || t.Method == "HEAD") {
		// Objects read: a walk reads; a client refused on updates of
		// many objects shows errors, not a walk.
		s.add(skObjects, call.object)
		s.add(skObjectsWide, call.object)
		if lt != nil && (t.Status == 403 || t.Status == 404) {
			lt.add(ltObjectMisses, 1)
		}
	}
}

// noteIP adds ip to the state's client addresses and returns its index
// among them (-1: not among them, the list being full).
func (s *identityState) noteIP(ip string) int {
	for i, have := range s.clientIPs() {
		if have == ip {
			return i
		}
	}
	if x := s.ext(); len(x.clientIPs) < maxClientIPs {
		x.clientIPs = append(x.clientIPs, strings.Clone(ip))
		return len(x.clientIPs) - 1
	}
	return -1
}

// addressSwitches counts, per minute of the 10-minute window, the calls of
// a session (token or cookie) from another address than its call before.
// Its owner moving between networks switches now and then; a session
// stolen and used while its owner goes on using it switches at nearly
// every call, from two addresses, each of them under every count.
type addressSwitches struct {
	head int32 // the newest minute (unix minutes)
	n    [longBuckets]uint16
}

// noteSwitch counts a call from client address i (noteIP's index) at
// minute when the call before came from another one. The counts are made
// at the first switch: most sessions never switch.
func (s *identityState) noteSwitch(i int, minute int32) {
	x := s.ext()
	last := x.lastIP
	x.lastIP = int8(i)
	if i == int(last) && i >= 0 {
		return
	}
	w := x.switches
	if w == nil {
		w = &addressSwitches{head: minute}
		x.switches = w
	}
	if minute > w.head {
		for m := max(w.head+1, minute-longBuckets+1); m <= minute; m++ {
			w.n[m%longBuckets] = 0
		}
		w.head = minute
	}
	if minute > w.head-longBuckets {
		inc16(&w.n[minute%longBuckets])
	}
}

// addressSwitches returns the switches of the 10 minutes to minute.
func (s *identityState) addressSwitches(minute int32) float64 {
	if s.extra == nil || s.extra.switches == nil {
		return 0
	}
	w, n := s.extra.switches, 0
	for m := max(w.head-longBuckets+1, minute-longBuckets+1); m <= w.head; m++ {
		n += int(w.n[m%longBuckets])
	}
	return float64(n)
}

// routeKey hashes a method and endpoint template (a prepared call's): the
// route it asked for, the endpoint of request_bytes_endpoint.
func routeKey(method, template string) uint64 {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(method)
	d.WriteString(" ")
	d.WriteString(template)
	return d.Sum64()
}

// objectKey hashes the endpoint template and the last ID segment of a
// prepared call's path: the object the call reads.
func objectKey(t *detect.Transaction) (uint64, bool) {
	if t.ObjectID() == "" {
		return 0, false
	}
	var d xxhash.Digest
	d.Reset()
	d.WriteString(t.Template)
	d.WriteString("#")
	d.WriteString(t.ObjectID())
	return d.Sum64(), true
}

// beyond reports whether x, the value of v for this identity, passes the
// threshold tx: above tx and the variable's floor, and well above what the
// identity itself did while its API learned.
func (s *identityState) beyond(v varID, x, tx float64) bool {
	if x <= tx || x < varDefs[v].floor {
		return false
	}
	if h := s.ownHour(v); h > 0 && x <= 1.5*h {
		return false
	}
	own := s.ownMax()
	return own == nil || x > 1.5*float64(own[v])
}
