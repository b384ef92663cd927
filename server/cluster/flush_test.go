package cluster

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/test/redistest"
)

// fakeShared hands out prepared deltas and keeps the windows applied.
type fakeShared struct {
	next    []behaviour.SharedDelta
	applied [][]behaviour.SharedWindow
}

func (f *fakeShared) CollectShared(context.Context) []behaviour.SharedDelta {
	d := f.next
	f.next = nil
	return d
}

func (f *fakeShared) ApplyShared(_ context.Context, ws []behaviour.SharedWindow) {
	f.applied = append(f.applied, ws)
}

func (f *fakeShared) last(t *testing.T) behaviour.SharedWindow {
	t.Helper()
	if len(f.applied) == 0 || len(f.applied[len(f.applied)-1]) != 1 {
		t.Fatalf("applied %v, want one window", f.applied)
	}
	return f.applied[len(f.applied)-1][0]
}

func regs(set map[int]byte) []byte {
	b := make([]byte, behaviour.SketchRegisters)
	for i, v := range set {
		b[i] = v
	}
	return b
}

var keyA = behaviour.SharedKey{API: "shop", Kind: detect.KindIP, ID: "45.128.0.7"}

// Two replicas' deltas of one identity sum per bucket and max-merge per
// register, and each reads the merged windows back in the same flush.
func TestFlushMergesReplicasDeltas(t *testing.T) {
	r := redistest.Start(t)
	rc := newTestCluster(t, r.Addr())
	c := rc.Client()
	ctx := context.Background()
	a, b := &fakeShared{}, &fakeShared{}
	fa := NewFlusher(rc, a, FlushOptions{Log: zerolog.Nop()})
	fb := NewFlusher(rc, b, FlushOptions{Log: zerolog.Nop()})

	a.next = []behaviour.SharedDelta{{Key: keyA,
		Buckets: []behaviour.SharedBucket{
			{Short: true, Index: 100, Counts: [5]uint32{7}},
			{Index: 20, Counts: [5]uint32{7, 1, 5, 0, 0}, Bytes: 1000},
		},
		Sketches: []behaviour.SharedSketch{{Sketch: 0, Epoch: 3, Regs: regs(map[int]byte{0: 3, 5: 1})}},
	}}
	if err := fa.FlushOnce(ctx); err != nil {
		t.Fatal(err)
	}
	b.next = []behaviour.SharedDelta{{Key: keyA,
		Buckets: []behaviour.SharedBucket{
			{Short: true, Index: 100, Counts: [5]uint32{2}},
			{Short: true, Index: 101, Counts: [5]uint32{4}},
			{Index: 20, Counts: [5]uint32{6, 0, 6, 1, 2}, Bytes: 24},
		},
		Sketches: []behaviour.SharedSketch{{Sketch: 0, Epoch: 3, Regs: regs(map[int]byte{0: 1, 5: 4, 63: 2})}},
	}}
	if err := fb.FlushOnce(ctx); err != nil {
		t.Fatal(err)
	}
	w := b.last(t)
	if w.Key != keyA {
		t.Fatalf("key %+v", w.Key)
	}
	want := []behaviour.SharedBucket{
		{Short: true, Index: 100, Counts: [5]uint32{9}},
		{Short: true, Index: 101, Counts: [5]uint32{4}},
		{Index: 20, Counts: [5]uint32{13, 1, 11, 1, 2}, Bytes: 1024},
	}
	if len(w.Buckets) != len(want) {
		t.Fatalf("buckets %+v, want %+v", w.Buckets, want)
	}
	for i := range want {
		if w.Buckets[i] != want[i] {
			t.Fatalf("bucket %d = %+v, want %+v", i, w.Buckets[i], want[i])
		}
	}
	if len(w.Sketches) != 1 || !bytes.Equal(w.Sketches[0].Regs, regs(map[int]byte{0: 3, 5: 4, 63: 2})) || w.Sketches[0].Epoch != 3 {
		t.Fatalf("sketches %+v", w.Sketches)
	}
	// Nothing of the identity in clear in Redis, and the key expires.
	keys, err := c.Do(ctx, c.B().Keys().Pattern("t:b:*").Build()).AsStrSlice()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v %v", keys, err)
	}
	if bytes.Contains([]byte(keys[0]), []byte("45.128")) || keys[0][:4] != "t:b:" {
		t.Fatalf("key %q", keys[0])
	}
	ttl, _ := c.Do(ctx, c.B().Pttl().Key(keys[0]).Build()).AsInt64()
	if ttl < int64(time.Hour/time.Millisecond) {
		t.Fatalf("pttl %d ms, want past the widest window", ttl)
	}
}

// Buckets and epochs older than the windows, counted back from the newest
// the identity has, are pruned from Redis.
func TestFlushPrunesPastTheWindows(t *testing.T) {
	r := redistest.Start(t)
	rc := newTestCluster(t, r.Addr())
	c := rc.Client()
	ctx := context.Background()
	e := &fakeShared{}
	f := NewFlusher(rc, e, FlushOptions{Log: zerolog.Nop()})
	_, _, shortN, longN, _, _ := behaviour.SharedWindows()
	e.next = []behaviour.SharedDelta{{Key: keyA,
		Buckets: []behaviour.SharedBucket{
			{Short: true, Index: 100, Counts: [5]uint32{1}},
			{Index: 20, Counts: [5]uint32{1}, Bytes: 5},
		},
		Sketches: []behaviour.SharedSketch{{Sketch: 2, Epoch: 3, Regs: regs(nil)}, {Sketch: 2, Epoch: 4, Regs: regs(nil)}},
	}}
	if err := f.FlushOnce(ctx); err != nil {
		t.Fatal(err)
	}
	e.next = []behaviour.SharedDelta{{Key: keyA,
		Buckets: []behaviour.SharedBucket{
			{Short: true, Index: 100 + int64(shortN) + 1, Counts: [5]uint32{1}},
			{Index: 20 + int64(longN) + 1, Counts: [5]uint32{1}},
			{Index: 20 + int64(longN), Counts: [5]uint32{1}},
		},
		Sketches: []behaviour.SharedSketch{{Sketch: 2, Epoch: 5, Regs: regs(nil)}},
	}}
	if err := f.FlushOnce(ctx); err != nil {
		t.Fatal(err)
	}
	w := e.last(t)
	for _, b := range w.Buckets {
		if (b.Short && b.Index == 100) || (!b.Short && b.Index == 20) {
			t.Fatalf("bucket %+v past the window kept", b)
		}
	}
	if len(w.Buckets) != 3 {
		t.Fatalf("buckets %+v", w.Buckets)
	}
	if len(w.Sketches) != 2 || w.Sketches[0].Epoch != 4 || w.Sketches[1].Epoch != 5 {
		t.Fatalf("sketches %+v, want epochs 4 and 5", w.Sketches)
	}
	n, _ := c.Do(ctx, c.B().Hlen().Key(f.key(keyA)).Build()).AsInt64()
	if n != 6 { // s, two long buckets' counter 0, two epochs, the flusher's segment
		t.Fatalf("hash holds %d fields, want 6", n)
	}
}

// A flush against a stopped Redis gives up within its timeout; what it
// wrote runs when Redis wakes up, and the next flush resends it all the
// same: each increment counts once, the registers are there.
func TestFlushGivesUpOnAStoppedRedis(t *testing.T) {
	r := redistest.Start(t)
	rc := newTestCluster(t, r.Addr())
	ctx := context.Background()
	e := &fakeShared{}
	f := NewFlusher(rc, e, FlushOptions{Timeout: 300 * time.Millisecond, Log: zerolog.Nop()})
	e.next = []behaviour.SharedDelta{{Key: keyA, Buckets: []behaviour.SharedBucket{{Short: true, Index: 1, Counts: [5]uint32{1}}}}}
	if err := f.FlushOnce(ctx); err != nil { // the script is loaded
		t.Fatal(err)
	}
	r.Stop()
	e.next = []behaviour.SharedDelta{{Key: keyA,
		Buckets:  []behaviour.SharedBucket{{Short: true, Index: 1, Counts: [5]uint32{5}}},
		Sketches: []behaviour.SharedSketch{{Sketch: 1, Epoch: 9, Regs: regs(map[int]byte{1: 6})}},
	}}
	ok := f.LastFlush()
	if ok.IsZero() {
		t.Fatal("LastFlush zero after a flush")
	}
	start := time.Now()
	err := f.FlushOnce(ctx)
	took := time.Since(start)
	if f.LastFlush() != ok {
		t.Fatal("a failed flush moved LastFlush")
	}
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("flush against a stopped redis: %v", err)
	}
	if took > time.Second {
		t.Fatalf("flush took %v, timeout 300ms", took)
	}
	r.Cont()
	e.next = []behaviour.SharedDelta{{Key: keyA, Buckets: []behaviour.SharedBucket{{Short: true, Index: 1, Counts: [5]uint32{1}}}}}
	deadline := time.Now().Add(10 * time.Second)
	for f.FlushOnce(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("flush does not succeed after CONT")
		}
	}
	w := e.last(t)
	if len(w.Sketches) != 1 || w.Sketches[0].Regs[1] != 6 {
		t.Fatalf("sketch not resent: %+v", w.Sketches)
	}
	if len(w.Buckets) != 1 || w.Buckets[0].Counts[0] != 7 {
		t.Fatalf("buckets %+v, want the short bucket at 1+5+1", w.Buckets)
	}
}

// Deltas of a flush that could not reach Redis at all (nothing listens)
// are carried whole and arrive with the next flush that can.
func TestFlushCarriesDeltasWhileRedisIsDown(t *testing.T) {
	r := redistest.Start(t)
	rc := newTestCluster(t, r.Addr())
	ctx := context.Background()
	e := &fakeShared{}
	f := NewFlusher(rc, e, FlushOptions{Timeout: 500 * time.Millisecond, Log: zerolog.Nop()})
	e.next = []behaviour.SharedDelta{{Key: keyA, Buckets: []behaviour.SharedBucket{{Short: true, Index: 1, Counts: [5]uint32{1}}}}}
	if err := f.FlushOnce(ctx); err != nil {
		t.Fatal(err)
	}
	r.Kill()
	e.next = []behaviour.SharedDelta{{Key: keyA, Buckets: []behaviour.SharedBucket{{Short: true, Index: 1, Counts: [5]uint32{4}}}}}
	if err := f.FlushOnce(ctx); err == nil {
		t.Fatal("flush to a killed redis succeeded")
	}
	r.Restart()
	e.next = []behaviour.SharedDelta{{Key: keyA, Buckets: []behaviour.SharedBucket{{Short: true, Index: 1, Counts: [5]uint32{2}}}}}
	deadline := time.Now().Add(10 * time.Second)
	for f.FlushOnce(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("flush does not succeed after redis restarted")
		}
	}
	w := e.last(t)
	if len(w.Buckets) != 1 || w.Buckets[0].Counts[0] != 6 {
		t.Fatalf("buckets %+v, want the carried 4 and the new 2 (redis restarted empty)", w.Buckets)
	}
}

// A segment that ran late (a flush that timed out, run when Redis woke up)
// and its resent copy count once, in either order, and an older segment
// arriving after a newer one is skipped.
func TestFlushScriptAppliesASegmentOnce(t *testing.T) {
	r := redistest.Start(t)
	rc := newTestCluster(t, r.Addr())
	c := rc.Client()
	ctx := context.Background()
	f := NewFlusher(rc, &fakeShared{}, FlushOptions{Log: zerolog.Nop()})
	seg := func(seq uint64, n uint32) segment {
		return segment{seq: seq, buckets: []behaviour.SharedBucket{{Short: true, Index: 1, Counts: [5]uint32{n}}}}
	}
	run := func(segs ...segment) string {
		t.Helper()
		args := f.args(&carried{key: keyA, segs: segs})
		flat, err := c.Do(ctx, c.B().Eval().Script(flushLua).Numkeys(1).Key(f.key(keyA)).Arg(args...).Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		w, err := parseWindow(keyA, flat)
		if err != nil || len(w.Buckets) != 1 {
			t.Fatalf("window %+v %v", w, err)
		}
		return strconv.Itoa(int(w.Buckets[0].Counts[0]))
	}
	if got := run(seg(1, 1)); got != "1" {
		t.Fatalf("first: %s", got)
	}
	if got := run(seg(2, 5), seg(3, 1)); got != "7" { // the resend
		t.Fatalf("resend: %s, want 7", got)
	}
	if got := run(seg(2, 5)); got != "7" { // the original, late
		t.Fatalf("late original: %s, want 7", got)
	}
	if got := run(seg(4, 2)); got != "9" {
		t.Fatalf("next: %s, want 9", got)
	}
}

// On a 3-master Redis Cluster, identities spread over every node and two
// replicas' deltas merge exactly, the script loaded on each node as needed.
func TestFlushOnRedisCluster(t *testing.T) {
	rcl := redistest.StartCluster(t, 3)
	ctx := context.Background()
	a, b := &fakeShared{}, &fakeShared{}
	fa := NewFlusher(newTestCluster(t, rcl.Addrs()...), a, FlushOptions{Log: zerolog.Nop()})
	fb := NewFlusher(newTestCluster(t, rcl.Addrs()...), b, FlushOptions{Log: zerolog.Nop()})
	const n = 60
	delta := func(i int, reqs uint32, reg byte) behaviour.SharedDelta {
		return behaviour.SharedDelta{
			Key:      behaviour.SharedKey{API: "shop", Kind: detect.KindIP, ID: "10.0.0." + strconv.Itoa(i) + "{x}"},
			Buckets:  []behaviour.SharedBucket{{Index: 7, Counts: [5]uint32{reqs, 1}}},
			Sketches: []behaviour.SharedSketch{{Sketch: 0, Epoch: 1, Regs: regs(map[int]byte{i: reg})}},
		}
	}
	for i := range n {
		a.next = append(a.next, delta(i, 3, 2))
		b.next = append(b.next, delta(i, 4, 5))
	}
	if err := fa.FlushOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if err := fb.FlushOnce(ctx); err != nil {
		t.Fatal(err)
	}
	ws := b.applied[len(b.applied)-1]
	if len(ws) != n {
		t.Fatalf("%d windows, want %d", len(ws), n)
	}
	nodes := map[string]bool{}
	for _, w := range ws {
		i, _ := strconv.Atoi(w.Key.ID[len("10.0.0.") : len(w.Key.ID)-3])
		if len(w.Buckets) != 1 || w.Buckets[0].Counts != [5]uint32{7, 2} {
			t.Fatalf("%s: buckets %+v, want 7 requests, 2 errors", w.Key.ID, w.Buckets)
		}
		if len(w.Sketches) != 1 || w.Sketches[0].Regs[i] != 5 {
			t.Fatalf("%s: sketches %+v", w.Key.ID, w.Sketches)
		}
		slot := clusterSlot(fa.key(w.Key))
		for _, s := range rcl.Nodes {
			if r, err := redistest.Command(s.Addr(), "CLUSTER", "COUNTKEYSINSLOT", strconv.Itoa(slot)); err == nil && r != "0" {
				nodes[s.Addr()] = true
			}
		}
	}
	if len(nodes) != 3 {
		t.Fatalf("identities on %d nodes, want all 3", len(nodes))
	}
}

// clusterSlot is Redis Cluster's slot of a key (CRC16 of its hash tag).
func clusterSlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// resending is an engine that counts ResendShared calls.
type resending struct {
	fakeShared
	n atomic.Int32
}

func (r *resending) ResendShared(context.Context) { r.n.Add(1) }

// Redis restarted empty: the engine is told to send its shared windows
// whole again.
func TestFlushResendsAfterRedisLostItsData(t *testing.T) {
	r := redistest.Start(t)
	e := &resending{}
	open(t, testOptions(r.Addr()), func(c *Cluster) { NewFlusher(c, e, FlushOptions{Log: zerolog.Nop()}) })
	if e.n.Load() != 0 {
		t.Fatal("resent at start")
	}
	r.Restart()
	eventually(t, 10*time.Second, "ResendShared after redis restarted empty", func() bool { return e.n.Load() > 0 })
}

// Deltas carried through a long outage keep only the live sketch epochs
// (the newest of each sketch and the one before), register-wise max.
func TestMergeSketchesKeepsLiveEpochs(t *testing.T) {
	var carried []behaviour.SharedSketch
	for e := int64(1); e <= 50; e++ {
		carried = mergeSketches(carried, []behaviour.SharedSketch{
			{Sketch: 0, Epoch: e, Regs: regs(map[int]byte{int(e): 1})},
			{Sketch: 2, Epoch: e / 10, Regs: regs(map[int]byte{int(e): 2})},
		})
	}
	if len(carried) != 4 {
		t.Fatalf("%d sketches carried, want 4: %+v", len(carried), carried)
	}
	for _, s := range carried {
		switch {
		case s.Sketch == 0 && (s.Epoch == 49 || s.Epoch == 50) && s.Regs[s.Epoch] == 1:
		case s.Sketch == 2 && s.Epoch == 4 && s.Regs[40] == 2 && s.Regs[49] == 2 && s.Regs[39] == 0:
		case s.Sketch == 2 && s.Epoch == 5 && s.Regs[50] == 2:
		default:
			t.Fatalf("carried %+v", s)
		}
	}
}
