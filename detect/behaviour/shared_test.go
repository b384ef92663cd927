package behaviour

import (
	"context"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

func TestSharedWindowsGeometry(t *testing.T) {
	short, long, shortN, longN, epoch, wide := SharedWindows()
	if short != 10*time.Second || long != time.Minute || shortN != 6 || longN != 10 || epoch != 5*time.Minute || wide != 30*time.Minute {
		t.Fatalf("SharedWindows() = %v %v %d %d %v %v", short, long, shortN, longN, epoch, wide)
	}
	if SketchRegisters != 64 {
		t.Fatalf("SketchRegisters = %d", SketchRegisters)
	}
}

// Without ShareFraction nothing is shared, whatever the traffic: a
// prober's windows stay local and CollectShared has nothing to send.
func TestShareFractionZeroSharesNothing(t *testing.T) {
	for _, workers := range []int{0, 2} {
		f := newEngineFixture(t, detect.ModeBlock)
		f.e = NewEngine(EngineConfig{Workers: workers})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { f.e.Run(ctx); close(done) }()
		for i := range 200 {
			f.now = f.now.Add(100 * time.Millisecond)
			f.tx("203.0.113.9", "", "GET", "/shop/nope-"+string(rune('a'+i%26))+string(rune('a'+i/26)), 404, 100)
		}
		if d := f.e.CollectShared(ctx); len(d) != 0 {
			t.Fatalf("workers %d: CollectShared = %d deltas, want none", workers, len(d))
		}
		cancel()
		<-done
	}
}

// Apply tells OnModelChange; ApplyFromPeer does not.
func TestApplyFromPeerDoesNotCallOnModelChange(t *testing.T) {
	var calls int
	e := NewEngine(EngineConfig{APIs: []*detect.API{{Name: "shop"}}, OnModelChange: func(string, *ModelUpdate) { calls++ }})
	off := false
	u := &ModelUpdate{Types: map[detect.AttackType]TypeKnobsUpdate{detect.AttackProbing: {Enabled: &off}}}
	if err := e.ApplyFromPeer("shop", u); err != nil || calls != 0 {
		t.Fatalf("ApplyFromPeer: err %v, %d OnModelChange calls, want none", err, calls)
	}
	if err := e.Apply("shop", u); err != nil || calls != 1 {
		t.Fatalf("Apply: err %v, %d OnModelChange calls, want 1", err, calls)
	}
}
