package behaviour

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/vigil-project/vigil/detect"
)

// TestStateBytesEstimateTracksTheHeap: the bytes the engine says its
// states hold (Stats().Bytes, what MaxBytes bounds) are within 25 % of
// the live heap they take, for IP-only clients and for clients with an IP
// and a token.
func TestStateBytesEstimateTracksTheHeap(t *testing.T) {
	const n = 20_000
	for _, tokens := range []bool{false, true} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		e := NewEngine(EngineConfig{MaxStates: 1 << 20})
		memoryLoad(e, n, tokens)
		runtime.GC()
		runtime.ReadMemStats(&after)
		st := e.Stats()
		// The sightings table is allocated up front, the same on both
		// sides: the states alone are compared.
		table := e.shards[0].door.bytes()
		st.Bytes -= table
		after.HeapAlloc -= uint64(table)
		states := st.States[detect.KindIP] + st.States[detect.KindToken]
		if want := int64(n); tokens && states != 2*want || !tokens && states != want {
			t.Fatalf("tokens %v: %d states tracked, want one per identity: %+v", tokens, states, st)
		}
		heap := float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
		ratio := float64(st.Bytes) / heap
		t.Logf("tokens %v: estimate %.0f B/state, heap %.0f B/state", tokens, float64(st.Bytes)/float64(states), heap/float64(states))
		if ratio < 0.75 || ratio > 1.25 {
			t.Errorf("tokens %v: estimated %d bytes, the heap grew by %.0f (%.2f×)", tokens, st.Bytes, heap, ratio)
		}
		runtime.KeepAlive(e)
	}
}

// TestEngineStaysWithinMaxBytes: a flood of fresh IPs past a small byte
// budget keeps the estimate within it, counts what it forgets, and the
// engine still catches a scanner that comes after the flood.
func TestEngineStaysWithinMaxBytes(t *testing.T) {
	f := newEngineFixture(t, detect.ModeBlock)
	const budget = 256 << 10
	cfg := f.e.cfg
	cfg.MaxBytes = budget
	f.e = NewEngine(cfg)
	f.benign(45*time.Minute, rand.New(rand.NewPCG(1, 2)))
	if len(f.attacks) != 0 {
		t.Fatalf("attacks raised on benign traffic: %+v", f.attacks[0])
	}
	for i := range 20_000 {
		if i%100 == 0 {
			f.now = f.now.Add(time.Second)
		}
		ip := fmt.Sprintf("172.16.%d.%d", i>>8&255, i&255)
		f.tx(ip, "", "GET", fmt.Sprintf("/shop/order/%d", i), 200, 800)
		if i%3 == 0 {
			f.tx(ip, "", "GET", fmt.Sprintf("/shop/missing-%d", i), 404, 100)
		} else {
			f.tx(ip, "", "GET", fmt.Sprintf("/shop/order/%d", i+1), 200, 800)
		}
		if st := f.e.Stats(); st.Bytes > budget {
			t.Fatalf("after %d fresh IPs: %d estimated bytes, budget %d", i+1, st.Bytes, budget)
		}
	}
	st := f.e.Stats()
	tracked := st.States[detect.KindIP] + st.States[detect.KindToken]
	if st.Evictions == 0 || tracked == 0 || int(tracked) != f.e.shards[0].numStates() {
		t.Fatalf("after the flood: %+v, %d states in the index", st, f.e.shards[0].numStates())
	}
	if n := uint64(tracked) + st.Evictions; n != 20_000+120 {
		t.Fatalf("%d tracked + %d evicted, want every state created (20,000 + 120) accounted for", tracked, st.Evictions)
	}
	for i := range 300 {
		if i%5 == 0 {
			f.now = f.now.Add(time.Second)
		}
		f.tx("203.0.113.66", "", "GET", fmt.Sprintf("/shop/admin-%d", i), 404, 100)
	}
	caught := false
	for _, a := range f.attacks {
		caught = caught || a.Type == detect.AttackProbing && a.Identity.Value == "203.0.113.66"
	}
	if !caught {
		t.Fatalf("a scanner after the flood was not caught; attacks %v", f.attacks)
	}
	if st := f.e.Stats(); st.Bytes > budget {
		t.Fatalf("%d estimated bytes, budget %d", st.Bytes, budget)
	}
}

// TestStatsCountsStatesPerKindWithWorkers: Stats, read while workers run,
// settles on one state per identity and kind.
func TestStatsCountsStatesPerKindWithWorkers(t *testing.T) {
	e := NewEngine(EngineConfig{Workers: 2})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	memoryLoad(e, 500, true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := e.Stats()
		if st.States[detect.KindIP] == 500 && st.States[detect.KindToken] == 500 && st.Bytes > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want 500 IP and 500 token states", st)
		}
		runtime.Gosched()
	}
	cancel()
	<-done
	// What a scrape reads is what the shards hold, new states' bytes
	// included (they were published only when a state grew or went).
	var held int64
	for _, s := range e.shards {
		held += s.bytes
	}
	if got := e.Stats().Bytes; got != held {
		t.Fatalf("Stats().Bytes %d, the shards hold %d", got, held)
	}
}

// TestStateIsCompact pins the sizes the memory figures rest on: a state
// in the 240-byte size class, sketches of 24 (sparse) or 136 (dense)
// bytes, a first sighting of 48.
func TestStateIsCompact(t *testing.T) {
	if n := size(unsafe.Sizeof(identityState{})); n > 240 {
		t.Errorf("identityState takes %d bytes (%d), want at most 240", n, unsafe.Sizeof(identityState{}))
	}
	if n := unsafe.Sizeof(sparsePair{}); n != 24 {
		t.Errorf("sparsePair is %d bytes, want 24", n)
	}
	if n := unsafe.Sizeof(sketchPair{}); n != 136 {
		t.Errorf("sketchPair is %d bytes, want 136", n)
	}
	if sightingBytes != 48 {
		t.Errorf("a sighting takes %d bytes, want 48", sightingBytes)
	}
}
