package behaviour

import "unsafe"

// The sketches of a state live in one pointer-free allocation of 64-bit
// words, sketch by sketch in the order of their index, each in one of two
// forms: sparse (sparsePair, 24 bytes) while the current and the previous
// epoch each set at most sparseRegs registers, dense (sketchPair, 136
// bytes) past that. Both give exactly the same estimates: the sparse form
// lists the registers that the dense one would hold.
//
// skSlots: bit i says sketch i is allocated, bit numSketches+i that it is
// dense. A shard's scratch state (prealloc) has sk point to numSketches
// dense pairs indexed by sketch.

// skSlots holds 2 × numSketches bits.
var _ = [16 - 2*numSketches]struct{}{}

const (
	skDense    = numSketches
	sparseRegs = 4
)

// sparsePair is a sketchPair that sets few registers: each entry is
// index<<8 | rank (rank ≥ 1), 0 when free.
type sparsePair struct {
	cur, prev [sparseRegs]uint16
	est       float64 // < 0: not cached
}

const (
	sparseWords = int(unsafe.Sizeof(sparsePair{}) / 8)
	denseWords  = int(unsafe.Sizeof(sketchPair{}) / 8)
)

func (s *identityState) has(i int) bool   { return s.skSlots&(1<<i) != 0 }
func (s *identityState) dense(i int) bool { return s.skSlots&(1<<(skDense+i)) != 0 }

func (s *identityState) pairWords(i int) int {
	if s.dense(i) {
		return denseWords
	}
	return sparseWords
}

// offset is the first word of sketch i.
func (s *identityState) offset(i int) int {
	n := 0
	for j := range i {
		if s.has(j) {
			n += s.pairWords(j)
		}
	}
	return n
}

// sketchWords is the length of the allocation.
func (s *identityState) sketchWords() int {
	if s.prealloc() {
		return numSketches * denseWords
	}
	return s.offset(numSketches)
}

func (s *identityState) word(off int) unsafe.Pointer {
	return unsafe.Add(unsafe.Pointer(s.sk), off*8)
}

// densePair returns sketch i in dense form (nil: not allocated or sparse).
func (s *identityState) densePair(i int) *sketchPair {
	switch {
	case !s.has(i) || !s.dense(i):
		return nil
	case s.prealloc():
		return (*sketchPair)(s.word(i * denseWords))
	}
	return (*sketchPair)(s.word(s.offset(i)))
}

func (s *identityState) sparsePair(i int) *sparsePair {
	return (*sparsePair)(s.word(s.offset(i)))
}

// relayout reallocates the sketches with sketch i added (as sparse) or
// turned dense, keeping the others' words.
func (s *identityState) relayout(i int, slots uint16) {
	old := unsafe.Slice(s.sk, s.sketchWords())
	before := s.offset(i)
	after := before
	if s.has(i) {
		after += s.pairWords(i)
	}
	prev := *s
	s.skSlots = slots
	words := make([]uint64, s.sketchWords())
	copy(words, old[:before])
	copy(words[before+s.pairWords(i):], old[after:])
	s.sk = &words[0]
	if !prev.has(i) {
		s.sparsePair(i).est = 0 // empty: an estimate of 0
		return
	}
	// sparse to dense
	sp := (*sparsePair)(unsafe.Pointer(&old[before]))
	d := s.densePair(i)
	for _, r := range sp.cur {
		if r != 0 {
			d.cur[r>>8] = uint8(r)
		}
	}
	for _, r := range sp.prev {
		if r != 0 {
			d.prev[r>>8] = uint8(r)
		}
	}
	d.est = sp.est
}

// add counts a hashed value in sketch i, allocated if needed.
func (s *identityState) add(i int, x uint64) {
	idx, rank := split(x)
	s.addReg(i, idx, rank)
}

// addReg raises register idx of sketch i's current epoch to rank.
func (s *identityState) addReg(i, idx int, rank uint8) {
	if sh := s.sharedPart(); sh != nil && s.localReg(i, idx) < rank {
		sh.touched(i)
	}
	if s.prealloc() {
		s.skSlots |= 1<<i | 1<<(skDense+i)
		p := s.densePair(i)
		if rank > p.cur[idx] {
			p.cur[idx], p.est = rank, -1
		}
		return
	}
	if !s.has(i) {
		s.relayout(i, s.skSlots|1<<i)
	}
	if !s.dense(i) {
		p := s.sparsePair(i)
		free := -1
		for j, r := range p.cur {
			switch {
			case r == 0:
				if free < 0 {
					free = j
				}
			case int(r>>8) == idx:
				if rank > uint8(r) {
					p.cur[j], p.est = uint16(idx)<<8|uint16(rank), -1
				}
				return
			}
		}
		if free >= 0 {
			p.cur[free], p.est = uint16(idx)<<8|uint16(rank), -1
			return
		}
		s.relayout(i, s.skSlots|1<<(skDense+i))
	}
	p := s.densePair(i)
	if rank > p.cur[idx] {
		p.cur[idx], p.est = rank, -1
	}
}

// localReg returns register idx of sketch i's current epoch.
func (s *identityState) localReg(i, idx int) uint8 {
	if !s.has(i) {
		return 0
	}
	if d := s.densePair(i); d != nil {
		return d.cur[idx]
	}
	for _, r := range s.sparsePair(i).cur {
		if r != 0 && int(r>>8) == idx {
			return uint8(r)
		}
	}
	return 0
}

// estimate returns the distinct count of sketch i over both epochs (a
// shared state's with the cluster's registers).
func (s *identityState) estimate(i int) float64 {
	if sh := s.sharedPart(); sh != nil {
		return s.sharedEstimate(sh, i)
	}
	if !s.has(i) {
		return 0
	}
	if d := s.densePair(i); d != nil {
		return d.estimate()
	}
	p := s.sparsePair(i)
	if p.est < 0 {
		var u hll
		for _, r := range p.cur {
			if r != 0 {
				u[r>>8] = max(u[r>>8], uint8(r))
			}
		}
		for _, r := range p.prev {
			if r != 0 {
				u[r>>8] = max(u[r>>8], uint8(r))
			}
		}
		p.est = u.estimate()
	}
	return p.est
}

// rotate moves the sketches to now's epochs.
func (s *identityState) rotate(now int64) {
	s.rotateTo(int32(now/int64(sketchEpoch)), int32(now/int64(wideEpoch)))
}

// rotateTo moves the sketches to epochs e and (wide) w.
func (s *identityState) rotateTo(e, w int32) {
	if e == s.skEpoch && w == s.skWide {
		return
	}
	if sh := s.sharedPart(); sh != nil {
		// The cluster's windows may have moved a shared state's epochs
		// ahead of a call that arrives late: never back.
		e, w = max(e, s.skEpoch), max(w, s.skWide)
		if e == s.skEpoch && w == s.skWide {
			return
		}
		sh.rotate(s.skEpoch, e, s.skWide, w)
	}
	for i := range numSketches {
		epoch, to := s.skEpoch, e
		if wideSketch(i) {
			epoch, to = s.skWide, w
		}
		if !s.has(i) || to == epoch {
			continue
		}
		if d := s.densePair(i); d != nil {
			if to == epoch+1 {
				d.prev = d.cur
			} else {
				d.prev.reset()
			}
			d.cur.reset()
			d.est = -1
			continue
		}
		p := s.sparsePair(i)
		if to == epoch+1 {
			p.prev = p.cur
		} else {
			p.prev = [sparseRegs]uint16{}
		}
		p.cur = [sparseRegs]uint16{}
		p.est = -1
	}
	s.skEpoch, s.skWide = e, w
}

// copySketch sets sketch i of s, not allocated yet, to d, in the smaller
// form that holds it.
func (s *identityState) copySketch(i int, d *sketchPair) {
	n, m := 0, 0
	for r := range d.cur {
		if d.cur[r] != 0 {
			n++
		}
		if d.prev[r] != 0 {
			m++
		}
	}
	if n > sparseRegs || m > sparseRegs {
		s.relayout(i, s.skSlots|1<<i|1<<(skDense+i))
		*s.densePair(i) = *d
		return
	}
	s.relayout(i, s.skSlots|1<<i)
	p := s.sparsePair(i)
	n, m = 0, 0
	for r := range d.cur {
		if d.cur[r] != 0 {
			p.cur[n] = uint16(r)<<8 | uint16(d.cur[r])
			n++
		}
		if d.prev[r] != 0 {
			p.prev[m] = uint16(r)<<8 | uint16(d.prev[r])
			m++
		}
	}
	p.est = -1
}
