package behaviour

import (
	"math/rand/v2"
	"testing"
)

// TestStateIndexAgreesWithAMap: the shard's index finds what was put and
// not deleted, across growth and deletions among entries that share their
// first slot and wrap around the table's end.
func TestStateIndexAgreesWithAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var x stateIndex
	want := map[uint64]*identityState{}
	// Few distinct high bits: many keys share a home slot; half of them
	// have it at the table's end, so that their runs wrap around.
	key := func() uint64 {
		if rng.IntN(2) == 0 {
			return ^uint64(0) - rng.Uint64N(1<<12)<<40
		}
		return rng.Uint64N(8)<<61 | rng.Uint64N(1<<12)<<1 | 1
	}
	steps := 200_000
	if raceDetector {
		steps = 20_000
	}
	for step := range steps {
		h := key()
		switch st, ok := want[h]; {
		case ok && step%3 != 0:
			x.del(h)
			delete(want, h)
		case ok:
			if got := x.get(h); got != st {
				t.Fatalf("step %d: get(%x) = %p, want %p", step, h, got, st)
			}
		default:
			st := new(identityState)
			x.put(h, st)
			want[h] = st
		}
		if x.len() != len(want) {
			t.Fatalf("step %d: %d entries, want %d", step, x.len(), len(want))
		}
	}
	for h, st := range want {
		if got := x.get(h); got != st {
			t.Fatalf("get(%x) = %p, want %p", h, got, st)
		}
	}
	for range 1000 {
		if h := key(); want[h] == nil && x.get(h) != nil {
			t.Fatalf("get(%x) finds a state never put", h)
		}
	}
}
