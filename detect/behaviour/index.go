package behaviour

import "math/bits"

// stateIndex maps the 64-bit hash of a state's key (never 0) to the
// state: an open-addressing table of 16-byte entries, probed linearly, so
// that a lookup reads one cache line, not a map's directory, table, control
// word and slot. It grows by half past a load of 4/5, and deletes by
// shifting the entries that follow back (no tombstones).
type stateIndex struct {
	e []indexEntry
	n int
}

type indexEntry struct {
	h  uint64 // 0: empty
	st *identityState
}

// home is the first slot probed for h.
func (x *stateIndex) home(h uint64) int {
	hi, _ := bits.Mul64(h, uint64(len(x.e)))
	return int(hi)
}

func (x *stateIndex) len() int { return x.n }

func (x *stateIndex) get(h uint64) *identityState {
	if x.n == 0 {
		return nil
	}
	for i := x.home(h); ; {
		switch x.e[i].h {
		case h:
			return x.e[i].st
		case 0:
			return nil
		}
		if i++; i == len(x.e) {
			i = 0
		}
	}
}

// put adds st under h, which the index does not hold.
func (x *stateIndex) put(h uint64, st *identityState) {
	if (x.n+1)*5 > len(x.e)*4 {
		x.grow()
	}
	i := x.home(h)
	for x.e[i].h != 0 {
		if i++; i == len(x.e) {
			i = 0
		}
	}
	x.e[i] = indexEntry{h, st}
	x.n++
}

func (x *stateIndex) grow() {
	old := x.e
	x.e = make([]indexEntry, max(16, len(old)+len(old)/2))
	x.n = 0
	for _, en := range old {
		if en.h != 0 {
			x.put(en.h, en.st)
		}
	}
}

// del removes h, if held.
func (x *stateIndex) del(h uint64) {
	if x.n == 0 {
		return
	}
	i := x.home(h)
	for x.e[i].h != h {
		if x.e[i].h == 0 {
			return
		}
		if i++; i == len(x.e) {
			i = 0
		}
	}
	// Shift back the entries after i that would not be found past the hole.
	for j := i; ; {
		if j++; j == len(x.e) {
			j = 0
		}
		if x.e[j].h == 0 {
			break
		}
		k := x.home(x.e[j].h)
		// Entry j stays when its home lies cyclically in (i, j].
		if i <= j && i < k && k <= j || i > j && (i < k || k <= j) {
			continue
		}
		x.e[i] = x.e[j]
		i = j
	}
	x.e[i] = indexEntry{}
	x.n--
}
