package cluster

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"
	"github.com/vigil-project/vigil/detect/behaviour"
)

//go:embed flush.lua
var flushLua string

// flushSHA names flush.lua for EVALSHA; FlushOnce loads the script on a
// server that does not know it yet (first use, a restart).
var flushSHA = sha1Hex(flushLua)

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// FlushOptions configures a Flusher. Zero fields take their defaults.
type FlushOptions struct {
	// Interval between two flushes (default 250 ms).
	Interval time.Duration
	// Timeout bounds one flush (default 1 s): past it the flush gives up
	// and the engine goes on deciding on its local windows.
	Timeout time.Duration
	// MaxPending bounds the identities whose deltas a failed flush carries
	// to the next one (default 100,000); past it they are dropped and
	// counted.
	MaxPending int
	Log        zerolog.Logger
}

// SharedEngine is what a Flusher needs of the behaviour engine
// (*behaviour.Engine).
type SharedEngine interface {
	CollectShared(ctx context.Context) []behaviour.SharedDelta
	ApplyShared(ctx context.Context, ws []behaviour.SharedWindow)
}

// Flusher sends the engine's shared deltas to Redis every Interval and
// gives the engine the merged windows read back in the same round trip.
//
// What is sent: only the states the engine shares (a window variable past
// a fraction of its threshold, see behaviour.EngineConfig.ShareFraction),
// so Redis traffic follows suspicious traffic, not all traffic. Per
// identity one EVALSHA of flush.lua on one hash (<prefix>b:{hash}), every
// identity of a flush pipelined in one DoMulti (grouped per slot by the
// client in a Cluster).
//
// A failed flush (Redis down, slow past Timeout, an error reply) loses
// nothing that matters: each identity's bucket increments are carried, as
// a segment numbered by the flush that collected them, and resent with the
// next flush (still one EVALSHA per identity); flush.lua applies a segment
// only when its number is past the last one this flusher applied on that
// identity, so a flush that timed out and still runs when Redis wakes up
// and its resent segment count once between them. Sketch registers merge
// by max, so they are resent as they are. The carry is bounded:
// MaxPending identities (past it the carry is dropped and counted) and
// maxSegments segments per identity (past it the two oldest merge under
// the older number: if that one did land, the newer's increments are lost,
// an under-count, never a double count).
type Flusher struct {
	redis  *Cluster
	prefix string
	engine SharedEngine
	o      FlushOptions

	ttl, keepShort, keepLong string
	seqField                 string // q<random id>: this flusher's last segment applied, per identity

	lastOK atomic.Int64 // unix ns of the last flush that succeeded

	mu      sync.Mutex // one flush at a time
	seq     uint64     // the last flush's segment number
	pending map[behaviour.SharedKey]*carried
	failing bool

	latency    prometheus.Histogram
	errs       prometheus.Counter
	identities prometheus.Histogram
	commands   prometheus.Counter
	dropped    prometheus.Counter
}

// Resender is implemented by an engine (*behaviour.Engine) that can send
// every shared state's whole windows again, for a Redis that lost them.
type Resender interface {
	ResendShared(ctx context.Context)
}

// NewFlusher returns a flusher of engine's shared windows to the Redis of
// c, under c's key prefix. When engine is a Resender it is told to send
// everything again after Redis lost its data (c.OnReseed): call NewFlusher
// before c.Run.
func NewFlusher(c *Cluster, engine SharedEngine, o FlushOptions) *Flusher {
	if o.Interval <= 0 {
		o.Interval = 250 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 100000
	}
	if r, ok := engine.(Resender); ok {
		c.OnReseed(r.ResendShared)
	}
	short, long, shortN, longN, epoch, wide := behaviour.SharedWindows()
	widest := max(short*time.Duration(shortN), long*time.Duration(longN), 2*epoch, 2*wide)
	return &Flusher{
		redis: c, prefix: c.Prefix(), engine: engine, o: o,
		ttl:       strconv.FormatInt((widest + 5*time.Minute).Milliseconds(), 10),
		keepShort: strconv.Itoa(shortN + 1),
		keepLong:  strconv.Itoa(longN + 1),
		seqField:  "q" + randomID(),
		pending:   map[behaviour.SharedKey]*carried{},
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_redis_flush_seconds",
			Help:    "Duration of a flush of shared behaviour windows to Redis (failed ones included).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_redis_flush_errors_total", Help: "Flushes of shared behaviour windows that failed (wholly or for some identities).",
		}),
		identities: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_redis_flush_identities",
			Help:    "Identities sent per flush of shared behaviour windows.",
			Buckets: []float64{1, 10, 100, 1000, 10000, 100000},
		}),
		commands: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_redis_flush_commands_total", Help: "Redis commands sent by flushes of shared behaviour windows.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_redis_flush_dropped_total", Help: "Identities whose carried deltas were dropped because too many failed flushes piled up.",
		}),
	}
}

// Collectors returns the flusher's metrics, for the server's registry.
func (f *Flusher) Collectors() []prometheus.Collector {
	return []prometheus.Collector{f.latency, f.errs, f.identities, f.commands, f.dropped}
}

// Run flushes every Interval until ctx ends.
func (f *Flusher) Run(ctx context.Context) {
	t := time.NewTicker(f.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := f.FlushOnce(ctx)
			f.mu.Lock()
			was := f.failing
			f.failing = err != nil
			f.mu.Unlock()
			switch {
			case err != nil && !was && ctx.Err() == nil:
				f.o.Log.Warn().Err(err).Msg("flush of shared behaviour windows to Redis failed; deciding on local windows until it succeeds")
			case err == nil && was:
				f.o.Log.Info().Msg("flush of shared behaviour windows to Redis succeeds again")
			}
		}
	}
}

// FlushOnce collects the engine's shared deltas, sends them with those
// carried from failed flushes, and applies the merged windows read back,
// within Timeout. It returns the first error met (the identities that
// succeeded are applied all the same).
func (f *Flusher) FlushOnce(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	batch := f.withPending(f.seq, f.engine.CollectShared(ctx))
	if len(batch) == 0 {
		if f.redis.Up() { // nothing to send, nothing behind
			f.lastOK.Store(time.Now().UnixNano())
		}
		return nil
	}
	start := time.Now()
	cl := f.redis.Client()
	if cl == nil { // Redis never answered yet
		for _, c := range batch {
			f.keep(c)
		}
		f.errs.Inc()
		return fmt.Errorf("flush to redis: %w", errNotConnected)
	}
	tctx, cancel := context.WithTimeout(ctx, f.o.Timeout)
	defer cancel()

	keys := make([]string, len(batch))
	cmds := make(rueidis.Commands, len(batch))
	args := make([][]string, len(batch))
	for i, c := range batch {
		keys[i] = f.key(c.key)
		args[i] = f.args(c)
		cmds[i] = cl.B().Evalsha().Sha1(flushSHA).Numkeys(1).Key(keys[i]).Arg(args[i]...).Build()
	}
	res := cl.DoMulti(tctx, cmds...)
	sent := len(cmds)
	// A server that does not know the script yet (first use, a restart):
	// load it on every node once and send those identities again, rather
	// than the script whole with each of them.
	var again []int
	for i, r := range res {
		if isNoScript(r.Error()) {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		if err := loadScript(tctx, cl, flushLua); err == nil {
			retry := make(rueidis.Commands, len(again))
			for j, i := range again {
				retry[j] = cl.B().Evalsha().Sha1(flushSHA).Numkeys(1).Key(keys[i]).Arg(args[i]...).Build()
			}
			for j, r := range cl.DoMulti(tctx, retry...) {
				res[again[j]] = r
			}
			sent += len(cl.Nodes()) + len(retry)
		}
	}

	windows := make([]behaviour.SharedWindow, 0, len(batch))
	var first error
	failed := 0
	for i, r := range res {
		var w behaviour.SharedWindow
		flat, err := r.AsStrSlice()
		if err == nil {
			w, err = parseWindow(batch[i].key, flat)
		}
		if err != nil {
			if first == nil {
				first = err
			}
			failed++
			f.keep(batch[i])
			continue
		}
		windows = append(windows, w)
	}
	if len(windows) > 0 {
		f.engine.ApplyShared(ctx, windows)
	}
	f.latency.Observe(time.Since(start).Seconds())
	f.identities.Observe(float64(len(batch)))
	f.commands.Add(float64(sent))
	if first != nil {
		f.errs.Inc()
		return fmt.Errorf("flush to redis: %d of %d identities failed: %w", failed, len(batch), first)
	}
	f.lastOK.Store(time.Now().UnixNano())
	return nil
}

// LastFlush returns when a flush last succeeded (every identity sent and
// read back, or nothing to send while Redis is up); zero before the
// first. For /v1/status.
func (f *Flusher) LastFlush() time.Time {
	if n := f.lastOK.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

var errNotConnected = errors.New("not connected (redis never answered)")

// keep carries a command that failed to the next flush, within MaxPending.
func (f *Flusher) keep(c *carried) {
	if len(f.pending) < f.o.MaxPending {
		f.pending[c.key] = c
	} else {
		f.dropped.Inc()
	}
}

// maxSegments bounds the segments carried per identity.
const maxSegments = 16

// carried is what one identity's command sends: its bucket increments
// per flush not yet known applied, and its latest registers.
type carried struct {
	key      behaviour.SharedKey
	segs     []segment
	sketches []behaviour.SharedSketch
}

type segment struct {
	seq     uint64
	buckets []behaviour.SharedBucket
}

// withPending makes this flush's commands: the new deltas (segment seq)
// after the segments carried from failed flushes of the same identity,
// and the carried identities with nothing new.
func (f *Flusher) withPending(seq uint64, ds []behaviour.SharedDelta) []*carried {
	out := make([]*carried, 0, len(ds)+len(f.pending))
	for i := range ds {
		d := &ds[i]
		c, ok := f.pending[d.Key]
		if !ok {
			c = &carried{key: d.Key}
		}
		delete(f.pending, d.Key)
		if len(d.Buckets) > 0 {
			c.segs = append(c.segs, segment{seq: seq, buckets: d.Buckets})
		}
		c.sketches = mergeSketches(c.sketches, d.Sketches)
		for len(c.segs) > maxSegments {
			c.segs[1] = segment{seq: c.segs[0].seq, buckets: mergeBuckets(c.segs[0].buckets, c.segs[1].buckets)}
			c.segs = c.segs[1:]
		}
		out = append(out, c)
	}
	for _, c := range f.pending {
		out = append(out, c)
	}
	clear(f.pending)
	return out
}

// key is the hash of one identity's windows. The hash tag is a hash of
// (api, kind, id): ids may hold braces, and nothing of an identity shows
// in Redis (secret ones are fingerprints already).
func (f *Flusher) key(k behaviour.SharedKey) string {
	return f.prefix + "b:{" + identityHash(k) + "}"
}

func identityHash(k behaviour.SharedKey) string {
	h := sha256.New()
	h.Write([]byte(k.API))
	h.Write([]byte{0, byte(k.Kind), 0})
	h.Write([]byte(k.ID))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// args encodes an identity's command for flush.lua.
func (f *Flusher) args(c *carried) []string {
	n := 5 + 2*len(c.sketches)
	for _, sg := range c.segs {
		n += 2 + 2*6*len(sg.buckets)
	}
	a := make([]string, 0, n)
	a = append(a, f.ttl, f.keepShort, f.keepLong, f.seqField, strconv.Itoa(len(c.segs)))
	for _, sg := range c.segs {
		a = append(a, strconv.FormatUint(sg.seq, 10), "")
		at, pairs := len(a)-1, 0
		for _, b := range sg.buckets {
			idx := strconv.FormatInt(b.Index, 10)
			if b.Short {
				if b.Counts[0] > 0 {
					a = append(a, "s"+idx, strconv.FormatUint(uint64(b.Counts[0]), 10))
					pairs++
				}
				continue
			}
			for c, v := range b.Counts {
				if v > 0 {
					a = append(a, "l"+idx+"."+strconv.Itoa(c), strconv.FormatUint(uint64(v), 10))
					pairs++
				}
			}
			if b.Bytes > 0 {
				a = append(a, "b"+idx, strconv.FormatUint(min(b.Bytes, math.MaxInt64), 10))
				pairs++
			}
		}
		a[at] = strconv.Itoa(pairs)
	}
	for _, s := range c.sketches {
		a = append(a, "k"+strconv.Itoa(int(s.Sketch))+"."+strconv.FormatInt(s.Epoch, 10), string(s.Regs))
	}
	return a
}

// parseWindow decodes flush.lua's reply.
func parseWindow(key behaviour.SharedKey, flat []string) (behaviour.SharedWindow, error) {
	w := behaviour.SharedWindow{Key: key}
	if len(flat)%2 != 0 {
		return w, errors.New("flush reply: odd field count")
	}
	long := map[int64]int{} // index → position in w.Buckets
	bucket := func(idx int64) *behaviour.SharedBucket {
		p, ok := long[idx]
		if !ok {
			p = len(w.Buckets)
			long[idx] = p
			w.Buckets = append(w.Buckets, behaviour.SharedBucket{Index: idx})
		}
		return &w.Buckets[p]
	}
	for i := 0; i < len(flat); i += 2 {
		f, v := flat[i], flat[i+1]
		if f == "" {
			continue
		}
		switch f[0] {
		case 's':
			idx, err1 := strconv.ParseInt(f[1:], 10, 64)
			n, err2 := strconv.ParseInt(v, 10, 64)
			if err1 != nil || err2 != nil {
				return w, fmt.Errorf("flush reply: bad field %q", f)
			}
			w.Buckets = append(w.Buckets, behaviour.SharedBucket{Short: true, Index: idx, Counts: [5]uint32{clamp32(n)}})
		case 'l':
			is, cs, ok := strings.Cut(f[1:], ".")
			idx, err1 := strconv.ParseInt(is, 10, 64)
			c, err2 := strconv.Atoi(cs)
			n, err3 := strconv.ParseInt(v, 10, 64)
			if !ok || err1 != nil || err2 != nil || err3 != nil || c < 0 || c >= 5 {
				return w, fmt.Errorf("flush reply: bad field %q", f)
			}
			bucket(idx).Counts[c] = clamp32(n)
		case 'b':
			idx, err1 := strconv.ParseInt(f[1:], 10, 64)
			n, err2 := strconv.ParseInt(v, 10, 64)
			if err1 != nil || err2 != nil {
				return w, fmt.Errorf("flush reply: bad field %q", f)
			}
			bucket(idx).Bytes = uint64(max(n, 0))
		case 'k':
			ss, es, ok := strings.Cut(f[1:], ".")
			s, err1 := strconv.Atoi(ss)
			e, err2 := strconv.ParseInt(es, 10, 64)
			if !ok || err1 != nil || err2 != nil || s < 0 || s > math.MaxUint8 {
				return w, fmt.Errorf("flush reply: bad field %q", f)
			}
			w.Sketches = append(w.Sketches, behaviour.SharedSketch{Sketch: uint8(s), Epoch: e, Regs: []byte(v)})
		}
	}
	sort.Slice(w.Buckets, func(i, j int) bool {
		a, b := w.Buckets[i], w.Buckets[j]
		if a.Short != b.Short {
			return a.Short
		}
		return a.Index < b.Index
	})
	sort.Slice(w.Sketches, func(i, j int) bool {
		a, b := w.Sketches[i], w.Sketches[j]
		if a.Sketch != b.Sketch {
			return a.Sketch < b.Sketch
		}
		return a.Epoch < b.Epoch
	})
	return w, nil
}

func clamp32(n int64) uint32 { return uint32(min(max(n, 0), math.MaxUint32)) }

// mergeBuckets sums two lists of bucket increments.
func mergeBuckets(a, b []behaviour.SharedBucket) []behaviour.SharedBucket {
	type bk struct {
		short bool
		idx   int64
	}
	out := make([]behaviour.SharedBucket, 0, len(a)+len(b))
	pos := map[bk]int{}
	for _, src := range [][]behaviour.SharedBucket{a, b} {
		for _, x := range src {
			k := bk{x.Short, x.Index}
			p, ok := pos[k]
			if !ok {
				pos[k] = len(out)
				out = append(out, x)
				continue
			}
			y := &out[p]
			for c := range y.Counts {
				y.Counts[c] = uint32(min(uint64(y.Counts[c])+uint64(x.Counts[c]), math.MaxUint32))
			}
			y.Bytes += x.Bytes
		}
	}
	return out
}

// mergeSketches merges two lists of sketch registers by register-wise max
// (b's registers win when the lengths differ).
func mergeSketches(a, b []behaviour.SharedSketch) []behaviour.SharedSketch {
	if len(a) == 0 {
		return b
	}
	type sk struct {
		s uint8
		e int64
	}
	out := make([]behaviour.SharedSketch, 0, len(a)+len(b))
	pos := map[sk]int{}
	for _, src := range [][]behaviour.SharedSketch{a, b} {
		for _, x := range src {
			k := sk{x.Sketch, x.Epoch}
			p, ok := pos[k]
			if !ok {
				pos[k] = len(out)
				out = append(out, behaviour.SharedSketch{Sketch: x.Sketch, Epoch: x.Epoch, Regs: append([]byte(nil), x.Regs...)})
				continue
			}
			y := &out[p]
			if len(y.Regs) != len(x.Regs) {
				y.Regs = append(y.Regs[:0], x.Regs...)
				continue
			}
			for r := range y.Regs {
				y.Regs[r] = max(y.Regs[r], x.Regs[r])
			}
		}
	}
	// Only a sketch's newest epoch and the one before are live (as
	// flush.lua prunes): a carry through a long outage stays small.
	var newest [256]int64
	var seen [256]bool
	for _, x := range out {
		if !seen[x.Sketch] || x.Epoch > newest[x.Sketch] {
			newest[x.Sketch], seen[x.Sketch] = x.Epoch, true
		}
	}
	live := out[:0]
	for _, x := range out {
		if x.Epoch >= newest[x.Sketch]-1 {
			live = append(live, x)
		}
	}
	return live
}
