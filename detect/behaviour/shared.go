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
// limit on this replica (and minShareEvidence); from then on, until it is
// forgotten, the replica hands its increments to the store
// (CollectShared) and installs the cluster's merged windows read back
// (ApplyShared), and every decision on it uses the cluster's windows plus
// what this replica has not flushed yet: per bucket, local + (cluster −
// what this replica had sent when it read the cluster's); per sketch, the
// register-wise max of its own and the cluster's. Only shared states
// carry that part (sharedState, behind stateExtra.shared, 1,152 bytes);
// the others keep their size. The engine knows nothing of the store:
// server/cluster moves SharedDelta to it and SharedWindow back.

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

// ResendShared is for a store that lost its data (Redis restarted
// empty): the next CollectShared sends every shared state's whole windows
// again, as if none had been sent (its bucket counts and every sketch's
// registers), so that the store holds this replica's part once more.
// Called when the store still had them, it would count them twice. Same
// concurrency as CollectShared.
func (e *Engine) ResendShared(ctx context.Context) {
	e.onShards(ctx, func(_ int, s *shard) {
		for _, st := range s.shared {
			sh := st.extra.shared
			sh.sentShort, sh.sentLong, sh.sentBytes = [shortBuckets]uint16{}, [longBuckets][numCounters]uint16{}, [longBuckets]uint32{}
			sh.dirty, sh.idle = 1<<numSketches-1, 0
		}
	})
}

// ApplyShared installs the cluster's merged windows read back from the
// store. Windows of states that are not shared here (forgotten, or never
// shared on this replica) are ignored, as are buckets and epochs that left
// the window, sketches of the wrong length and buckets more than a bucket
// past the API's latest call. Same concurrency as CollectShared.
func (e *Engine) ApplyShared(ctx context.Context, ws []SharedWindow) {
	if len(ws) == 0 {
		return
	}
	parts := make([][]int, len(e.shards))
	for i := range ws {
		j := 0
		if len(e.shards) > 1 {
			j = int(e.shardIndex(ws[i].Key.ID))
		}
		parts[j] = append(parts[j], i)
	}
	e.onShards(ctx, func(j int, s *shard) {
		for _, i := range parts[j] {
			s.applyShared(&ws[i])
		}
	})
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

// sharedState is the cluster's part of a shared state, behind
// stateExtra.shared: an unshared state carries none of it.
type sharedState struct {
	// peer* hold, per bucket of the state's rings (same slots), the other
	// replicas' part: the cluster's total when last read, minus what this
	// replica had sent of that bucket then (never below 0).
	peerShort [shortBuckets]uint32
	peerLong  [longBuckets][numCounters]uint32
	peerBytes [longBuckets]uint64
	// sent* hold what this replica has collected of each of its buckets.
	sentShort [shortBuckets]uint16
	sentLong  [longBuckets][numCounters]uint16
	sentBytes [longBuckets]uint32
	// peerSk holds the cluster's registers of each sketch's current [0]
	// and previous [1] epoch (the state's epochs).
	peerSk [numSketches][2]hll
	// est caches each sketch's estimate of local ∪ cluster (< 0: none).
	est [numSketches]float64
	// dirty marks the sketches that gained a register locally since the
	// last collect.
	dirty uint16
	// idle counts the collects in a row that had nothing new to send.
	idle int32
	// pos is the state's index in shard.shared.
	pos int
}

// A shared state with nothing new is still sent (empty, so that its
// window is read back) at every collect for sharedIdleCollects collects in
// a row (a minute at the default 250 ms), then at every sharedIdleEvery-th
// collect (2.5 s) until sharedIdleMax (about the long window, 11 minutes):
// a slow attacker whose calls reach this replica a minute apart is judged
// on a window at most a few seconds old, not one a minute old, while an
// idle identity costs Redis a tenth of the commands. Past sharedIdleMax
// the replica stops asking until it gets a call again, and the decision on
// that call uses the window last read (the flush that follows brings it up
// to date).
const (
	sharedIdleCollects = 240
	sharedIdleEvery    = 10
	sharedIdleMax      = 2640
)

func newSharedState(pos int) *sharedState {
	sh := &sharedState{pos: pos, dirty: 1<<numSketches - 1}
	for i := range sh.est {
		sh.est[i] = -1
	}
	return sh
}

// sharedPart returns the cluster's part of a shared state, nil if the
// state is not shared.
func (s *identityState) sharedPart() *sharedState {
	if s.extra == nil {
		return nil
	}
	return s.extra.shared
}

// touched notes that sketch i gained a register locally.
func (sh *sharedState) touched(i int) {
	sh.dirty |= 1 << i
	sh.est[i] = -1
}

// rotate moves the cluster's sketches from epochs (e0, w0) to (e1, w1),
// as the state's own (never back).
func (sh *sharedState) rotate(e0, e1, w0, w1 int32) {
	for i := range numSketches {
		from, to := e0, e1
		if wideSketch(i) {
			from, to = w0, w1
		}
		if to == from {
			continue
		}
		p := &sh.peerSk[i]
		if to == from+1 {
			p[1] = p[0]
		} else {
			p[1] = hll{}
		}
		p[0] = hll{}
		sh.est[i] = -1
	}
}

// localRegs returns sketch i's registers of the current and the previous
// epoch, whatever its form (zero when not allocated).
func (s *identityState) localRegs(i int) (cur, prev hll) {
	if !s.has(i) {
		return
	}
	if d := s.densePair(i); d != nil {
		return d.cur, d.prev
	}
	p := s.sparsePair(i)
	for _, r := range p.cur {
		if r != 0 {
			cur[r>>8] = max(cur[r>>8], uint8(r))
		}
	}
	for _, r := range p.prev {
		if r != 0 {
			prev[r>>8] = max(prev[r>>8], uint8(r))
		}
	}
	return
}

// sharedEstimate is the distinct count of sketch i of a shared state over
// both epochs: the register-wise max of this replica's sketches and the
// cluster's, which is the sketch of every replica's values.
func (s *identityState) sharedEstimate(sh *sharedState, i int) float64 {
	if sh.est[i] < 0 {
		u := sh.peerSk[i][0]
		u.merge(&sh.peerSk[i][1])
		cur, prev := s.localRegs(i)
		u.merge(&cur)
		u.merge(&prev)
		sh.est[i] = u.estimate()
	}
	return sh.est[i]
}

// minShareEvidence is the value a variable must pass, whatever the
// fraction, for a state to become shared: every identity shows an IP and
// a user agent, and two or three 404s or failed logins in ten minutes are
// everyday noise (at 0.1 of the default limits, one user agent, two
// distinct missed paths or three misses would share most benign users).
const minShareEvidence = 3

// shareIfNear makes st shared when variable v's value x passes the
// engine's ShareFraction of its limit tx (at least the variable's floor)
// and minShareEvidence.
func (s *shard) shareIfNear(st *identityState, v varID, x, tx float64) {
	if v == vErrorRatio || varDefs[v].slow || x <= minShareEvidence || x <= s.e.cfg.ShareFraction*max(tx, varDefs[v].floor) {
		return
	}
	st.ext().shared = newSharedState(len(s.shared))
	s.shared = append(s.shared, st)
}

// unshare drops a state being forgotten from the shard's shared states.
func (s *shard) unshare(st *identityState) {
	sh := st.sharedPart()
	if sh == nil {
		return
	}
	last := s.shared[len(s.shared)-1]
	s.shared[sh.pos] = last
	last.extra.shared.pos = sh.pos
	s.shared[len(s.shared)-1] = nil
	s.shared = s.shared[:len(s.shared)-1]
}

// collectShared returns the deltas of the shard's shared states: the
// buckets' increments since the last collect, the registers of the
// sketches that changed; a state with nothing new goes empty, to have its
// window read back, for sharedIdleCollects collects.
func (s *shard) collectShared() []SharedDelta {
	var out []SharedDelta
	for _, st := range s.shared {
		sh := st.extra.shared
		d := SharedDelta{Key: SharedKey{API: st.model.name, Kind: st.kind, ID: st.id}}
		for k := range int64(shortBuckets) {
			idx := int64(st.shortHead) - k
			if idx < 0 {
				break
			}
			j := idx % shortBuckets
			if l := st.short[j]; l > sh.sentShort[j] {
				d.Buckets = append(d.Buckets, SharedBucket{Short: true, Index: idx, Counts: [5]uint32{uint32(l - sh.sentShort[j])}})
				sh.sentShort[j] = l
			}
		}
		for k := range int64(longBuckets) {
			idx := int64(st.longHead) - k
			if idx < 0 {
				break
			}
			j := idx % longBuckets
			var b SharedBucket
			any := false
			for c := range numCounters {
				if l := st.long[j][c]; l > sh.sentLong[j][c] {
					b.Counts[c] = uint32(l - sh.sentLong[j][c])
					sh.sentLong[j][c] = l
					any = true
				}
			}
			if l := st.longBytes[j]; l > sh.sentBytes[j] {
				b.Bytes = uint64(l - sh.sentBytes[j])
				sh.sentBytes[j] = l
				any = true
			}
			if any {
				b.Index = idx
				d.Buckets = append(d.Buckets, b)
			}
		}
		for i := range numSketches {
			if sh.dirty&(1<<i) == 0 || !st.has(i) {
				continue
			}
			epoch := int64(st.skEpoch)
			if wideSketch(i) {
				epoch = int64(st.skWide)
			}
			cur, prev := st.localRegs(i)
			if cur != (hll{}) {
				d.Sketches = append(d.Sketches, SharedSketch{Sketch: uint8(i), Epoch: epoch, Regs: append([]byte(nil), cur[:]...)})
			}
			if prev != (hll{}) {
				d.Sketches = append(d.Sketches, SharedSketch{Sketch: uint8(i), Epoch: epoch - 1, Regs: append([]byte(nil), prev[:]...)})
			}
		}
		sh.dirty = 0
		if len(d.Buckets) > 0 || len(d.Sketches) > 0 {
			sh.idle = 0
		} else if sh.idle++; sh.idle > sharedIdleMax || sh.idle > sharedIdleCollects && sh.idle%sharedIdleEvery != 0 {
			continue
		}
		out = append(out, d)
	}
	return out
}

// maxRegister is the largest rank a register holds (split): a store's
// larger value is clamped, as the merge needs a byte's high bit free.
const maxRegister = 59

// applyShared installs one identity's merged windows on its state, if
// shared here.
func (s *shard) applyShared(w *SharedWindow) {
	if int(w.Key.Kind) >= int(detect.NumKinds) {
		return
	}
	s.e.mu.RLock()
	m := s.e.models[w.Key.API]
	s.e.mu.RUnlock()
	if m == nil {
		return
	}
	key := stateKey{m, w.Key.Kind, w.Key.ID}
	st := s.lookup(key, s.hash(key))
	if st == nil {
		return
	}
	sh := st.sharedPart()
	if sh == nil {
		return
	}
	// The cluster's newest buckets and epochs may be past this state's
	// (its last call here was a while ago): move it there first, but not
	// past the API's latest call (a bucket's skew allowed).
	m.mu.Lock()
	last := m.lastSeen.UnixNano()
	m.mu.Unlock()
	hs, hl := int64(st.shortHead), int64(st.longHead)
	e, wd := int64(st.skEpoch), int64(st.skWide)
	for _, b := range w.Buckets {
		if b.Short && b.Index <= last/int64(shortBucket)+1 {
			hs = max(hs, b.Index)
		} else if !b.Short && b.Index <= last/int64(longBucket)+1 {
			hl = max(hl, b.Index)
		}
	}
	for _, k := range w.Sketches {
		switch {
		case int(k.Sketch) >= numSketches:
		case wideSketch(int(k.Sketch)) && k.Epoch <= last/int64(wideEpoch)+1:
			wd = max(wd, k.Epoch)
		case !wideSketch(int(k.Sketch)) && k.Epoch <= last/int64(sketchEpoch)+1:
			e = max(e, k.Epoch)
		}
	}
	st.advanceShort(hs)
	st.advanceLong(hl)
	st.rotateTo(int32(e), int32(wd))

	sh.peerShort, sh.peerLong, sh.peerBytes = [shortBuckets]uint32{}, [longBuckets][numCounters]uint32{}, [longBuckets]uint64{}
	for _, b := range w.Buckets {
		if b.Short {
			if b.Index > hs-shortBuckets && b.Index <= hs {
				j := b.Index % shortBuckets
				sh.peerShort[j] = b.Counts[0] - min(b.Counts[0], uint32(sh.sentShort[j]))
			}
			continue
		}
		if b.Index > hl-longBuckets && b.Index <= hl {
			j := b.Index % longBuckets
			for c := range numCounters {
				sh.peerLong[j][c] = b.Counts[c] - min(b.Counts[c], uint32(sh.sentLong[j][c]))
			}
			sh.peerBytes[j] = b.Bytes - min(b.Bytes, uint64(sh.sentBytes[j]))
		}
	}
	for _, k := range w.Sketches {
		i := int(k.Sketch)
		if i >= numSketches || len(k.Regs) != SketchRegisters {
			continue
		}
		epoch := int64(st.skEpoch)
		if wideSketch(i) {
			epoch = int64(st.skWide)
		}
		var p *hll
		switch k.Epoch {
		case epoch:
			p = &sh.peerSk[i][0]
		case epoch - 1:
			p = &sh.peerSk[i][1]
		default:
			continue
		}
		for r, v := range k.Regs {
			p[r] = max(p[r], min(v, maxRegister))
		}
		sh.est[i] = -1
	}
}
