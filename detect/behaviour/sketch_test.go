package behaviour

import (
	"math"
	"strconv"
	"testing"
)

// TestHLLAgainstExactCounts compares the distinct counter's estimates with
// exact counts from 1 to 100,000 distinct values, over many independent
// value sets (seeds). The bound stated on hllRegisters is a standard error
// of 1.04/√64 ≈ 13 %: per cardinality, the root-mean-square error must
// stay within 1.25 × that, the mean bias within 5 % (or three standard
// errors of the mean when few seeds are affordable), and at most 3 % of
// the estimates be more than three standard errors off (the estimates'
// tails are heavier than a normal's: two values share a register one time
// in 64). A counter biased
// by 40 % either way fails all three.
func TestHLLAgainstExactCounts(t *testing.T) {
	const se = 0.13
	var buf []byte
	for _, n := range []int{1, 2, 5, 10, 20, 50, 100, 120, 160, 200, 500, 1000, 5000, 10000, 100000} {
		seeds := 400
		switch {
		case n >= 100000:
			seeds = 20
		case n >= 5000:
			seeds = 100
		}
		var sum, sq float64
		far := 0
		for s := range seeds {
			var h hll
			for i := range n {
				buf = strconv.AppendInt(append(buf[:0], 's'), int64(s), 10)
				buf = strconv.AppendInt(append(buf, '-'), int64(i), 10)
				h.add(hashBytes(buf))
			}
			r := h.estimate()/float64(n) - 1
			sum += r
			sq += r * r
			if math.Abs(r) > 3*se {
				far++
			}
		}
		bias, rmse := sum/float64(seeds), math.Sqrt(sq/float64(seeds))
		t.Logf("%6d distinct: bias %+.3f, rms error %.3f, %d of %d beyond 3 standard errors", n, bias, rmse, far, seeds)
		if limit := max(0.05, 3*se/math.Sqrt(float64(seeds))); math.Abs(bias) > limit {
			t.Errorf("%d distinct: mean bias %+.3f, want within ±%.3f", n, bias, limit)
		}
		if rmse > 1.25*se {
			t.Errorf("%d distinct: rms error %.3f, want at most %.3f", n, rmse, 1.25*se)
		}
		if float64(far) > 0.03*float64(seeds) {
			t.Errorf("%d distinct: %d of %d estimates beyond 3 standard errors", n, far, seeds)
		}
	}
}

// The union of two sketches estimates the union of their sets, and a value
// counted twice is counted once.
func TestHLLMergeAndDuplicates(t *testing.T) {
	var a, b hll
	for i := range 50 {
		a.add(hashString("x" + strconv.Itoa(i)))
		a.add(hashString("x" + strconv.Itoa(i)))
		b.add(hashString("x" + strconv.Itoa(i+25))) // 25 shared
	}
	one := a
	one.merge(&a)
	if one != a {
		t.Fatal("merging a sketch with itself changed it")
	}
	a.merge(&b)
	if e := a.estimate(); math.Abs(e/75-1) > 3*0.13 {
		t.Fatalf("union of 75 distinct estimated %.1f", e)
	}
	var empty hll
	if e := empty.estimate(); e != 0 {
		t.Fatalf("empty sketch estimated %v", e)
	}
}
