package behaviour

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestSparseSketchesEstimateAsDense: a state's sketches, sparse while
// they hold few registers and dense past that, give exactly the estimate
// of a dense pair fed the same values over the same epochs, from 0 to 300
// distinct values and across epoch changes (next epoch, and a gap).
func TestSparseSketchesEstimateAsDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 200 {
		var st identityState
		var ref [numSketches]sketchPair
		refEpoch := [numSketches]int64{}
		now := time.Unix(1_800_000_000, 0).UnixNano()
		n := rng.IntN(300)
		if round%2 == 0 {
			n = rng.IntN(12)
		}
		for range n {
			switch rng.IntN(40) {
			case 0:
				now += int64(sketchEpoch)
			case 1:
				now += 3 * int64(wideEpoch)
			}
			st.rotate(now)
			i := rng.IntN(numSketches)
			for j := range numSketches {
				e := now / int64(sketchEpoch)
				if wideSketch(j) {
					e = now / int64(wideEpoch)
				}
				if e != refEpoch[j] {
					if e == refEpoch[j]+1 {
						ref[j].prev = ref[j].cur
					} else {
						ref[j].prev.reset()
					}
					ref[j].cur.reset()
					ref[j].est = -1
					refEpoch[j] = e
				}
			}
			x := rng.Uint64()
			if rng.IntN(3) == 0 {
				x = uint64(rng.IntN(5)) * 0x9E3779B97F4A7C15 // repeats
			}
			st.add(i, x)
			ref[i].add(x)
			for j := range numSketches {
				want := 0.0
				if st.has(j) {
					want = ref[j].estimate()
				}
				if got := st.estimate(j); got != want {
					t.Fatalf("round %d, sketch %d: estimate %v, dense %v (dense form %v)", round, j, got, want, st.dense(j))
				}
			}
		}
		if st.sketchWords() > 0 && size(uintptr(st.sketchWords())*8) > numSketches*size(uintptr(denseWords)*8) {
			t.Fatalf("sketches take %d words", st.sketchWords())
		}
	}
}

// TestMergeTakesTheLargerRegister: merge keeps, register by register, the
// larger of the two, for every pair of ranks a register can hold.
func TestMergeTakesTheLargerRegister(t *testing.T) {
	for a := range uint8(60) {
		for b := range uint8(60) {
			var x, y hll
			for i := range x {
				x[i], y[i] = a, b
				if i%3 == 1 {
					x[i], y[i] = b, a
				}
			}
			x.merge(&y)
			for i, r := range x {
				if r != max(a, b) {
					t.Fatalf("merge of %d and %d: register %d is %d", a, b, i, r)
				}
			}
		}
	}
}
