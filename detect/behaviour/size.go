package behaviour

import "unsafe"

// Estimating the memory of the identity states: what a state holds on
// the heap, rounded as Go's allocator rounds it, plus its share of the
// shard's index. The estimate is checked against the live heap by
// TestStateBytesEstimateTracksTheHeap.

// sizeClasses are the object sizes of Go's allocator up to 2 KiB
// (runtime/sizeclasses.go); an allocation takes the smallest that fits.
var sizeClasses = [...]uintptr{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048}

// classOf8 maps (n+7)/8 to the size class of n bytes, n ≤ 2048.
var classOf8 = func() (t [2048/8 + 1]uint16) {
	c := 0
	for i := 1; i < len(t); i++ {
		for uintptr(i*8) > sizeClasses[c] {
			c++
		}
		t[i] = uint16(sizeClasses[c])
	}
	return t
}()

// allocSize is the heap an allocation of n bytes takes.
func allocSize(n uintptr) uintptr {
	if n <= 2048 {
		return uintptr(classOf8[(n+7)/8])
	}
	return (n + 8191) &^ 8191
}

// mapEntryBytes is a state's share of its shard's index (stateIndex): a
// 16-byte entry (the key's 64-bit hash and the pointer) at the table's
// load, between 8/15 and 4/5, about two thirds on average.
const mapEntryBytes = 24

var stateStructBytes = allocSize(unsafe.Sizeof(identityState{}))

// bytes estimates the heap the state holds, its share of the index
// included.
func (s *identityState) bytes() uintptr {
	n := stateStructBytes + allocSize(uintptr(len(s.id))) + mapEntryBytes
	if s.skSlots != 0 {
		n += allocSize(uintptr(s.sketchWords()) * 8)
	}
	if x := s.extra; x != nil {
		n += allocSize(unsafe.Sizeof(*x))
		if x.ownMax != nil {
			n += allocSize(unsafe.Sizeof(*x.ownMax))
		}
		if x.flagged != nil {
			n += allocSize(unsafe.Sizeof(*x.flagged))
		}
		if x.strikes != nil {
			n += allocSize(unsafe.Sizeof(*x.strikes))
			for _, t := range x.strikes {
				n += allocSize(uintptr(cap(t)) * 8)
			}
		}
		n += allocSize(uintptr(cap(x.clientIPs)) * unsafe.Sizeof(""))
		for _, ip := range x.clientIPs {
			n += allocSize(uintptr(len(ip)))
		}
	}
	return n
}
