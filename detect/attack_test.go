package detect

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"
)

func liveHeap() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// testAttack is a record shaped like the engine's.
func testAttack(i int, at time.Time) *Attack {
	ips := make([]string, 0, 3)
	for j := range 3 {
		ips = append(ips, fmt.Sprintf("10.%d.%d.%d", i>>8&255, i&255, j))
	}
	return &Attack{ID: fmt.Sprintf("atk-%08d", i), Type: AttackProbing, API: "shop",
		Identity:  AttackIdentity{Kind: KindToken.String(), Value: fmt.Sprintf("fp:%016x", i)},
		FirstSeen: at, DetectedAt: at.Add(time.Second), ClientIPs: ips,
		Variables: []VariableValue{{Name: "errors", Observed: 30, Tn: 1, Tx: 10, DeviationPct: 200}, {Name: "calls", Observed: 3}},
		Action:    ActionBlocked}
}

// TestAttackStoreBytesMatchHeap: the store's estimate of its bytes follows
// the live heap, and falls back as the oldest records are dropped.
func TestAttackStoreBytesMatchHeap(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	const n = 20_000
	before := liveHeap()
	s := NewAttackStore(n)
	for i := range n {
		s.Add(testAttack(i, at))
	}
	grown := liveHeap() - before
	est := s.Bytes()
	t.Logf("heap grew %d B, estimate %d B (%.2f), %d B a record", grown, est, float64(est)/float64(grown), est/n)
	if est < grown*3/4 || est > grown*5/4 {
		t.Fatalf("estimate %d B, heap grew %d B: off by more than 25%%", est, grown)
	}
	// Past the bound the oldest go, and their bytes with them.
	for i := range n {
		s.Add(testAttack(n+i, at))
	}
	if again := s.Bytes(); again < est*9/10 || again > est*11/10 {
		t.Fatalf("estimate %d B after the records were replaced, %d B before", again, est)
	}
	// An update replaces a record's bytes; an ID loaded twice is kept once.
	a := testAttack(2*n-1, at)
	a.Request = &AttackRequest{Method: "GET", Host: "shop.test", Path: "/shop/decoy"}
	s.Update(a)
	s.Load(a)
	if s.Len() != n {
		t.Fatalf("%d records kept, bound %d", s.Len(), n)
	}
	if got, ok := s.Get(a.ID); !ok || got.Request == nil {
		t.Fatalf("updated record %+v", got)
	}
	runtime.KeepAlive(s)
	small := NewAttackStore(10)
	small.Load(a)
	small.Load(a)
	if l, _ := small.List(AttackFilter{}); small.Len() != 1 || len(l) != 1 {
		t.Fatalf("a record loaded twice is kept %d times", small.Len())
	}
}

// TestAllocSize: sizes round up to the allocator's size classes.
func TestAllocSize(t *testing.T) {
	for _, c := range []struct{ n, want int }{{0, 0}, {5, 5}, {16, 16}, {17, 24}, {97, 112}, {1000, 1024}, {1024, 1024},
		{1025, 1152}, {9000, 9472}, {32768, 32768}, {32769, 40960}} {
		if got := AllocSize(c.n); got != int64(c.want) {
			t.Errorf("AllocSize(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	for n := 16; n <= 32768; n++ {
		i, _ := slices.BinarySearch(sizeClasses[:], uint16(n))
		if AllocSize(n) != int64(sizeClasses[i]) {
			t.Fatalf("AllocSize(%d) = %d, size class %d", n, AllocSize(n), sizeClasses[i])
		}
	}
}
