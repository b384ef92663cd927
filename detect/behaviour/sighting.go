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
	sightingFacts
}

// sightingFacts is what a sighting holds besides its key and time.
type sightingFacts struct {
	resp uint32 // response bytes
	// regs lists the sketch registers the call set, one per sketch it
	// added to (sketch<<12 | index<<6 | rank; rank ≥ 1, so 0 is free).
	regs [sightingRegs]uint16
	ip   [16]byte // the client IP of a non-IP identity (ipLen 4 or 16)
	// counts has bit c set when the call counted in counter c; bit
	// sightObserved when it was observed (not refused by Vigil).
	counts uint8
	ipLen  uint8
}

const sightObserved = 1 << 7

// sightingRegs is how many sketches a first call can add to and still be
// kept as a sighting (an object read by a token adds to four: ips, agents
// and both object sketches).
const sightingRegs = 5

// packReg and unpackReg turn a register of sketch i into a sighting's entry
// and back: 4 bits of sketch, 6 of register index (hllRegisters = 64), 6 of
// rank (at most 59).
func packReg(i, idx int, rank uint8) uint16 { return uint16(i)<<12 | uint16(idx)<<6 | uint16(rank) }

func unpackReg(r uint16) (i, idx int, rank uint8) {
	return int(r >> 12), int(r >> 6 & 63), uint8(r & 63)
}

// sightingWays is the entries per set of the table: a new sighting
// replaces the oldest of its set.
const sightingWays = 4

// sightingSet is one set of the table: keys and times in the first 64
// bytes (a cache line: a lookup that misses reads only that), then the
// facts.
type sightingSet struct {
	keys   [sightingWays]uint64
	firsts [sightingWays]int64
	facts  [sightingWays]sightingFacts
}

// sightingBytes is what a sighting takes in the table: 48 bytes.
const sightingBytes = int64(unsafe.Sizeof(sightingSet{}) / sightingWays)

// sightings is a set-associative table of first sightings, pointer-free.
type sightings struct {
	sets []sightingSet
	mask uint64
}

// newSightings returns a table of about n entries (a power of two sets of
// sightingWays, at least one set).
func newSightings(n int64) *sightings {
	sets := int64(1)
	for sets*2*sightingWays <= n {
		sets *= 2
	}
	return &sightings{sets: make([]sightingSet, sets), mask: uint64(sets - 1)}
}

func (t *sightings) bytes() int64 { return int64(len(t.sets)) * sightingWays * sightingBytes }

func (t *sightings) capacity() int { return len(t.sets) * sightingWays }

// take removes and returns the sighting of key, if held.
func (t *sightings) take(key uint64) (sighting, bool) {
	set := &t.sets[key>>3&t.mask]
	for i, k := range set.keys {
		if k == key {
			e := sighting{key: key, first: set.firsts[i], sightingFacts: set.facts[i]}
			set.keys[i] = 0
			return e, true
		}
	}
	return sighting{}, false
}

// put adds a sighting, in place of the oldest of its set when full; it
// reports whether the table holds one more.
func (t *sightings) put(e sighting) bool {
	set := &t.sets[e.key>>3&t.mask]
	slot, added := -1, false
	for i, k := range set.keys {
		if k == 0 {
			slot, added = i, true
			break
		}
		if slot < 0 || set.firsts[i] < set.firsts[slot] {
			slot = i
		}
	}
	set.keys[slot], set.firsts[slot], set.facts[slot] = e.key, e.first, e.sightingFacts
	return added
}

// reset empties the scratch state for a first call of key.
func (s *identityState) resetScratch(k stateKey, pairs *[numSketches]sketchPair, extra *stateExtra) {
	*pairs = [numSketches]sketchPair{}
	ips := extra.clientIPs[:0]
	*extra = stateExtra{clientIPs: ips}
	*s = identityState{model: k.model, kind: k.kind, id: k.id, sk: (*uint64)(unsafe.Pointer(&pairs[0])), marks: flagPrealloc}
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
	n := 0
	for i := range numSketches {
		p := s.densePair(i)
		if p == nil {
			continue
		}
		set := false
		for r, v := range p.cur {
			if v == 0 {
				continue
			}
			if set || p.prev != (hll{}) || n == sightingRegs {
				return e, false
			}
			e.regs[n], set = packReg(i, r, v), true
			n++
		}
		if !set {
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
	for _, r := range e.regs {
		if r != 0 {
			s.addReg(unpackReg(r))
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
	st.marks &^= flagPrealloc
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
