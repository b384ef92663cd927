package behaviour

import (
	"unsafe"

	"github.com/vigil-project/vigil/detect"
)

// Estimating the memory of the identity states: what a state holds on
// the heap, rounded as Go's allocator rounds it (detect.AllocSize), plus
// its share of the shard's index. The estimate is checked against the live heap by
// TestStateBytesEstimateTracksTheHeap.

// mapEntryBytes is a state's share of its shard's index (stateIndex): a
// 16-byte entry (the key's 64-bit hash and the pointer) at the table's
// load, between 8/15 and 4/5, about two thirds on average.
const mapEntryBytes = 24

var stateStructBytes = size(unsafe.Sizeof(identityState{}))

// size is the heap an allocation of n bytes takes.
func size(n uintptr) int64 { return detect.AllocSize(int(n)) }

// bytes estimates the heap the state holds, its share of the index
// included.
func (s *identityState) bytes() int64 {
	n := stateStructBytes + size(uintptr(len(s.id))) + mapEntryBytes
	if s.skSlots != 0 {
		n += size(uintptr(s.sketchWords()) * 8)
	}
	if x := s.extra; x != nil {
		n += size(unsafe.Sizeof(*x))
		if x.ownMax != nil {
			n += size(unsafe.Sizeof(*x.ownMax))
		}
		if x.flagged != nil {
			n += size(unsafe.Sizeof(*x.flagged))
		}
		if x.strikes != nil {
			n += size(unsafe.Sizeof(*x.strikes))
			for _, t := range x.strikes {
				n += size(uintptr(cap(t)) * 8)
			}
		}
		if x.shared != nil {
			n += size(unsafe.Sizeof(*x.shared))
		}
		if x.switches != nil {
			n += size(unsafe.Sizeof(*x.switches))
		}
		n += size(uintptr(cap(x.clientIPs)) * unsafe.Sizeof(""))
		for _, ip := range x.clientIPs {
			n += size(uintptr(len(ip)))
		}
	}
	return n
}
