package behaviour

import (
	"net/netip"
	"strings"
	"unsafe"
)

// First sightings. Most identities of a botnet rotating addresses make one
// call and are never seen again; a full state for each would let such a
// flood push out the states of the identities that matter (those mid-way
// through an attack, the long-lived clients). So an identity's first call
// is run on a scratch state, and unless it already showed something (it
// raised an attack, or holds what a sighting cannot) only its compact
// facts are kept, in a fixed, pointer-free table per shard: a sighting. If
// the identity calls again, its state is created, the first call replayed
// into it exactly as it was counted, and the call processed: detection
// counts are those of a state kept from the first call. A sighting pushed
// out of the table by newer ones is forgotten: the identity's next call is
// a first sighting again.

// sighting is the first call of an identity, as its state held it.
type sighting struct {
	key   uint64 // shard.hash of the state key; 0: empty
	first int64  // unix nanoseconds
	resp  uint32 // response bytes
	// regs holds, per sketch, its one register set (index<<8 | rank),
	// 0 when the call added nothing to it.
	regs [numSketches]uint16
	ip   [16]byte // the client IP of a non-IP identity (ipLen 4 or 16)
	// counts has bit c set when the call counted in counter c; bit
	// sightObserved when it was observed (not refused by Vigil).
	counts uint8
	ipLen  uint8
}

const sightObserved = 1 << 7

// sightingWays is the entries per set of the table: a new sighting
// replaces the oldest of its set.
const sightingWays = 4

// sightingBytes is what a sighting takes in the table.
const sightingBytes = int64(unsafe.Sizeof(sighting{}))

// sightings is a set-associative table of first sightings.
type sightings struct {
	sets [][sightingWays]sighting
	mask uint64
}

// newSightings returns a table of about n entries (a power of two sets of
// sightingWays, at least one set).
func newSightings(n int64) *sightings {
	sets := int64(1)
	for sets*2*sightingWays <= n {
		sets *= 2
	}
	return &sightings{sets: make([][sightingWays]sighting, sets), mask: uint64(sets - 1)}
}

func (t *sightings) bytes() int64 { return int64(len(t.sets)) * sightingWays * sightingBytes }

// take removes and returns the sighting of key, if held.
func (t *sightings) take(key uint64) (sighting, bool) {
	set := &t.sets[key>>3&t.mask]
	for i := range set {
		if set[i].key == key {
			e := set[i]
			set[i] = sighting{}
			return e, true
		}
	}
	return sighting{}, false
}

// put adds a sighting, in place of the oldest of its set when full; it
// reports whether the table holds one more.
func (t *sightings) put(e sighting) bool {
	set := &t.sets[e.key>>3&t.mask]
	oldest := 0
	for i := range set {
		if set[i].key == 0 {
			set[i] = e
			return true
		}
		if set[i].first < set[oldest].first {
			oldest = i
		}
	}
	set[oldest] = e
	return false
}

// reset empties the scratch state for a first call of key.
func (s *identityState) resetScratch(k stateKey, pairs *[numSketches]sketchPair, extra *stateExtra) {
	*pairs = [numSketches]sketchPair{}
	ips := extra.clientIPs[:0]
	*extra = stateExtra{clientIPs: ips}
	*s = identityState{model: k.model, kind: k.kind, id: k.id, sk: (*uint64)(unsafe.Pointer(&pairs[0])), skSlots: skPrealloc}
	s.extra = extra
}

// sighting returns the compact form of a scratch state after its first
// call, and false if it holds more than a sighting can.
func (s *identityState) sighting(key uint64) (sighting, bool) {
	e := sighting{key: key, first: s.first}
	if x := s.extra; x != nil {
		if x.ownMax != nil || x.flagged != nil || x.strikes != nil || x.attacks != 0 || len(x.clientIPs) > 1 {
			return e, false
		}
		if len(x.clientIPs) == 1 {
			ip := x.clientIPs[0]
			a, err := netip.ParseAddr(ip)
			if err != nil || a.Zone() != "" || a.String() != ip {
				return e, false
			}
			e.ip, e.ipLen = a.As16(), 16
			if a.Is4() {
				e.ipLen = 4
			}
		}
	}
	if s.shortSum() != 0 { // observed, not refused
		e.counts = sightObserved
		li := int64(s.longHead) % longBuckets
		for c, n := range s.long[li] {
			if n > 1 {
				return e, false
			}
			if n == 1 {
				e.counts |= 1 << c
			}
		}
		e.resp = s.longBytes[li]
	}
	for i := range numSketches {
		p := s.densePair(i)
		if p == nil {
			continue
		}
		for r, v := range p.cur {
			if v == 0 {
				continue
			}
			if e.regs[i] != 0 || p.prev != (hll{}) {
				return e, false
			}
			e.regs[i] = uint16(r)<<8 | uint16(v)
		}
		if e.regs[i] == 0 {
			return e, false
		}
	}
	return e, true
}

// replay puts a sighting's first call into a new state, as observe and
// process had counted it.
func (e *sighting) replay(s *identityState) {
	s.first = e.first
	if e.counts&sightObserved != 0 {
		s.advance(e.first)
		s.short[int64(s.shortHead)%shortBuckets] = 1
		li := int64(s.longHead) % longBuckets
		for c := range numCounters {
			if e.counts&(1<<c) != 0 {
				s.long[li][c] = 1
			}
		}
		s.longBytes[li] = e.resp
		s.lastSample = int32(e.first / int64(longBucket))
	}
	for i, r := range e.regs {
		if r != 0 {
			s.addReg(i, int(r>>8), uint8(r))
		}
	}
	switch e.ipLen {
	case 4:
		s.noteIP(netip.AddrFrom4([4]byte(e.ip[12:])).String())
	case 16:
		s.noteIP(netip.AddrFrom16(e.ip).String())
	}
}

// adopt turns a scratch state that showed something after its first call
// into a state of its own, in exact-size allocations.
func (s *identityState) adopt() *identityState {
	st := new(identityState)
	*st = *s
	st.id = strings.Clone(s.id)
	st.sk, st.skSlots = nil, 0
	for i := range numSketches {
		if p := s.densePair(i); p != nil {
			st.copySketch(i, p)
		}
	}
	st.extra = nil
	if x := s.extra; x != nil && (x.ownMax != nil || x.flagged != nil || x.strikes != nil || x.attacks != 0 || len(x.clientIPs) > 0) {
		c := *x
		c.clientIPs = append([]string(nil), x.clientIPs...)
		st.extra = &c
	}
	return st
}
