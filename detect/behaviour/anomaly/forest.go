package anomaly

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Defaults and limits of [Config].
const (
	DefaultTrees      = 100
	DefaultSampleSize = 256

	// MaxTrees and MaxSampleSize bound a model's size (at most
	// MaxTrees × (2·MaxSampleSize − 1) nodes, which fits the int32 node
	// indices) so a configuration mistake cannot exhaust memory.
	MaxTrees      = 10000
	MaxSampleSize = 1 << 16
)

// pcgStream is the second PCG word used when Fit derives its generator from
// Config.Seed; any constant works, it only has to stay fixed so that a seed
// always gives the same forest.
const pcgStream = 0x9e3779b97f4a7c15

// eulerGamma is the Euler–Mascheroni constant, used in c(n).
const eulerGamma = 0.5772156649015329

// Config parametrises [Fit]. The zero value is valid and means the defaults.
type Config struct {
	// Trees is the number of isolation trees; 0 means DefaultTrees.
	Trees int
	// SampleSize is ψ, the number of vectors each tree is grown on, drawn
	// without replacement; 0 means DefaultSampleSize. When fewer samples
	// are given to Fit, all of them are used.
	SampleSize int
	// Seed seeds the PCG generator Fit uses when it is given no *rand.Rand.
	Seed uint64
	// Features optionally names the vector's features. If set, its length
	// must equal the samples' length; the names are kept in the model, in
	// its JSON form and in each [Contribution].
	Features []string
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Trees < 0 || c.Trees > MaxTrees {
		errs = append(errs, fmt.Errorf("trees %d: want 1..%d, or 0 for %d", c.Trees, MaxTrees, DefaultTrees))
	}
	if c.SampleSize < 0 || c.SampleSize == 1 || c.SampleSize > MaxSampleSize {
		errs = append(errs, fmt.Errorf("sample size %d: want 2..%d, or 0 for %d", c.SampleSize, MaxSampleSize, DefaultSampleSize))
	}
	seen := make(map[string]int, len(c.Features))
	for i, name := range c.Features {
		if name == "" {
			errs = append(errs, fmt.Errorf("feature %d: empty name", i))
			continue
		}
		if j, dup := seen[name]; dup {
			errs = append(errs, fmt.Errorf("feature %d: name %q already used by feature %d", i, name, j))
			continue
		}
		seen[name] = i
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Trees == 0 {
		c.Trees = DefaultTrees
	}
	if c.SampleSize == 0 {
		c.SampleSize = DefaultSampleSize
	}
	return c
}

// node is one tree node; all trees share one flat array of nodes.
//
// An internal node sends x left when x[feat] < val and right otherwise; its
// children are nodes[child] and nodes[child+1], and child is always greater
// than the node's own index, so a walk always terminates. lo < hi is the
// range of feature feat among the training vectors that reached the node,
// used for the range extension. A leaf has feat == -1 and
// val = depth + c(size): the path length of every vector that ends there.
type node struct {
	val    float64
	lo, hi float64
	feat   int32
	child  int32
}

// Forest is a fitted Isolation Forest. It is immutable and safe for
// concurrent use; build one with [Fit] or by unmarshalling its JSON form.
type Forest struct {
	dims       int
	sampleSize int       // ψ actually used: min(Config.SampleSize, len(samples))
	features   []string  // optional names, len dims
	median     []float64 // per-feature training median, raw units
	roots      []int32   // index of each tree's root in nodes
	nodes      []node
	invNorm    float64 // 1 / (c(ψ) · trees)
}

// Fit grows an Isolation Forest on samples, which must hold at least two
// vectors of the same, non-zero length. Values are clamped as described in
// the package documentation; the samples are not modified.
//
// If rng is nil, Fit uses a PCG generator seeded from cfg.Seed; either way
// the forest depends only on the samples, cfg and the generator's state, so
// a fixed seed gives a bit-identical model.
func Fit(samples [][]float64, cfg Config, rng *rand.Rand) (*Forest, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("fit isolation forest: config: %w", err)
	}
	cfg = cfg.withDefaults()
	if len(samples) < 2 {
		return nil, fmt.Errorf("fit isolation forest: need at least 2 samples, got %d", len(samples))
	}
	dims := len(samples[0])
	if dims == 0 {
		return nil, errors.New("fit isolation forest: sample 0 has no features")
	}
	if cfg.Features != nil && len(cfg.Features) != dims {
		return nil, fmt.Errorf("fit isolation forest: %d feature names for %d features", len(cfg.Features), dims)
	}
	n := len(samples)
	data := make([]float64, n*dims)
	for i, s := range samples {
		if len(s) != dims {
			return nil, fmt.Errorf("fit isolation forest: sample %d has %d features, sample 0 has %d", i, len(s), dims)
		}
		for j, v := range s {
			data[i*dims+j] = clamp(v)
		}
	}
	if rng == nil {
		rng = rand.New(rand.NewPCG(cfg.Seed, pcgStream))
	}

	psi := min(cfg.SampleSize, n)
	b := builder{
		data:  data,
		dims:  dims,
		rng:   rng,
		limit: int(math.Ceil(math.Log2(float64(psi)))),
		lo:    make([]float64, dims),
		hi:    make([]float64, dims),
		cand:  make([]int, 0, dims),
		nodes: make([]node, 0, min(cfg.Trees*(2*psi-1), 1<<16)),
	}
	perm := make([]int32, n)
	for i := range perm {
		perm[i] = int32(i)
	}
	idx := make([]int32, psi)
	roots := make([]int32, cfg.Trees)
	for t := range roots {
		// A partial Fisher–Yates shuffle: perm[:psi] becomes a uniform
		// sample without replacement; perm stays a permutation for the
		// next tree.
		for i := range psi {
			j := i + rng.IntN(n-i)
			perm[i], perm[j] = perm[j], perm[i]
		}
		copy(idx, perm[:psi])
		roots[t] = int32(len(b.nodes))
		b.nodes = append(b.nodes, node{})
		b.grow(roots[t], idx, 0)
	}

	f := &Forest{
		dims:       dims,
		sampleSize: psi,
		features:   slices.Clone(cfg.Features),
		median:     medians(data, n, dims),
		roots:      roots,
		nodes:      slices.Clone(b.nodes),
	}
	f.invNorm = normaliser(psi, len(roots))
	return f, nil
}

// clamp applies the package's bad-value rule: NaN, negatives (and −0, −Inf)
// become 0 and +Inf becomes the largest float64.
func clamp(v float64) float64 {
	if !(v > 0) {
		return 0
	}
	return min(v, math.MaxFloat64)
}

// avgPathLen is c(n), the average path length of an unsuccessful search in
// a binary search tree of n keys, with c(0) = c(1) = 0 and c(2) = 1.
func avgPathLen(n int) float64 {
	switch {
	case n <= 1:
		return 0
	case n == 2:
		return 1
	}
	fn := float64(n)
	return 2*(math.Log(fn-1)+eulerGamma) - 2*(fn-1)/fn
}

func normaliser(psi, trees int) float64 {
	return 1 / (avgPathLen(psi) * float64(trees))
}

func medians(data []float64, n, dims int) []float64 {
	col := make([]float64, n)
	med := make([]float64, dims)
	for j := range dims {
		for i := range n {
			col[i] = data[i*dims+j]
		}
		slices.Sort(col)
		if n%2 == 1 {
			med[j] = col[n/2]
		} else {
			med[j] = col[n/2-1]/2 + col[n/2]/2
		}
	}
	return med
}

// builder holds the state of growing trees; its scratch slices are reused
// at every node because a node's ranges are no longer needed once its split
// is chosen.
type builder struct {
	data   []float64 // n × dims, row-major, clamped
	dims   int
	rng    *rand.Rand
	limit  int // height limit ceil(log2 ψ)
	lo, hi []float64
	cand   []int
	nodes  []node
}

// grow turns nodes[at] into the subtree for the vectors idx at the given depth.
// It reorders idx.
func (b *builder) grow(at int32, idx []int32, depth int) {
	if depth >= b.limit || len(idx) <= 1 {
		b.leaf(at, len(idx), depth)
		return
	}
	for j := range b.dims {
		b.lo[j], b.hi[j] = math.Inf(1), math.Inf(-1)
	}
	for _, i := range idx {
		row := b.data[int(i)*b.dims : int(i+1)*b.dims]
		for j, v := range row {
			b.lo[j] = min(b.lo[j], v)
			b.hi[j] = max(b.hi[j], v)
		}
	}
	// Only features that vary in this node can split it. Picking uniformly
	// among them (rather than among all features, retrying on constant
	// ones) keeps every split useful on zero-heavy data.
	b.cand = b.cand[:0]
	for j := range b.dims {
		if b.lo[j] < b.hi[j] {
			b.cand = append(b.cand, j)
		}
	}
	if len(b.cand) == 0 { // all vectors in this node are identical
		b.leaf(at, len(idx), depth)
		return
	}
	q := b.cand[b.rng.IntN(len(b.cand))]
	lo, hi := b.lo[q], b.hi[q]
	llo, lhi := math.Log1p(lo), math.Log1p(hi)
	split := math.Expm1(llo + b.rng.Float64()*(lhi-llo))
	// Rounding in log1p/expm1 may push the threshold out of (lo, hi]; pull
	// it back so both children are non-empty. The threshold is then > lo ≥ 0,
	// which Score relies on to treat NaN and negatives as 0.
	if !(split > lo) {
		split = math.Nextafter(lo, math.Inf(1))
	}
	split = min(split, hi)

	left := 0
	for k, i := range idx {
		if b.data[int(i)*b.dims+q] < split {
			idx[left], idx[k] = idx[k], idx[left]
			left++
		}
	}
	child := int32(len(b.nodes))
	b.nodes = append(b.nodes, node{}, node{})
	b.nodes[at] = node{val: split, lo: lo, hi: hi, feat: int32(q), child: child}
	b.grow(child, idx[:left], depth+1)
	b.grow(child+1, idx[left:], depth+1)
}

func (b *builder) leaf(at int32, size, depth int) {
	b.nodes[at] = node{val: float64(depth) + avgPathLen(size), feat: -1}
}

// Score returns the anomaly score of x in [0, 1]: close to 1 for vectors that
// are isolated quickly, around 0.5 or below for normal ones. h(x) is the
// range-extended path length described in the package documentation. Bad
// values and a wrong length are handled as the package documentation
// describes. Score does not allocate. A nil Forest scores everything 0.
func (f *Forest) Score(x []float64) float64 {
	if f == nil || len(f.roots) == 0 {
		return 0
	}
	return math.Exp2(-f.pathSum(x) * f.invNorm)
}

// pathSum is Σ over trees of the range-extended path length h(x).
func (f *Forest) pathSum(x []float64) float64 {
	nodes := f.nodes
	var sum float64
	for _, i := range f.roots {
		// h accumulates depth × P(x isolated at that depth by the range
		// extension); stay is P(not isolated yet).
		h, stay, depth := 0.0, 1.0, 0.0
		for {
			n := &nodes[i]
			if n.feat < 0 {
				sum += h + stay*n.val
				break
			}
			depth++
			var v float64
			if uint(n.feat) < uint(len(x)) {
				v = x[n.feat]
			}
			// Branch-free x[feat] >= val: the sign bit of v − val is 0
			// exactly when v >= val, for every v but NaN, which the
			// out-of-range case below handles.
			next := n.child + 1 - int32(math.Float64bits(v-n.val)>>63)
			if !(v >= n.lo && v <= n.hi) { // out of range, negative or NaN
				// Clamping maps NaN and negatives to 0, which goes left
				// (every threshold is > 0), and +Inf to the largest float64.
				v = clamp(v)
				if v < n.val {
					next = n.child
				}
				if p := escape(v, n.lo, n.hi); p > 0 {
					h += stay * p * depth
					stay *= 1 - p
				}
			}
			i = next
		}
	}
	return sum
}

// escape is the probability that a node whose training vectors span [lo, hi]
// in its split feature would have isolated a vector with value v, had v been
// in its sample: thresholds are uniform in log1p space, so it is the share of
// log1p([min(lo,v), max(hi,v)]) that lies outside log1p([lo, hi]). It is 0
// for lo <= v <= hi, and in [0, 1] whenever 0 <= lo < hi.
func escape(v, lo, hi float64) float64 {
	switch {
	case v > hi:
		lv := math.Log1p(v)
		return (lv - math.Log1p(hi)) / (lv - math.Log1p(lo))
	case v < lo:
		lv := math.Log1p(v)
		return (math.Log1p(lo) - lv) / (math.Log1p(hi) - lv)
	}
	return 0
}

// ScoreAll scores each vector of xs into dst, which is grown or allocated as
// needed, and returns it.
func (f *Forest) ScoreAll(xs [][]float64, dst []float64) []float64 {
	dst = slices.Grow(dst[:0], len(xs))[:len(xs)]
	for i, x := range xs {
		dst[i] = f.Score(x)
	}
	return dst
}

// Check reports why x would be clamped or padded by Score: a length other
// than the model's, or NaN, infinite or negative values. Score itself never
// fails; Check is for callers that would rather reject such vectors.
func (f *Forest) Check(x []float64) error {
	var errs []error
	if f != nil && len(x) != f.dims {
		errs = append(errs, fmt.Errorf("vector has %d features, model has %d", len(x), f.dims))
	}
	for j, v := range x {
		switch {
		case math.IsNaN(v):
			errs = append(errs, fmt.Errorf("feature %d is NaN", j))
		case math.IsInf(v, 0):
			errs = append(errs, fmt.Errorf("feature %d is %v", j, v))
		case v < 0:
			errs = append(errs, fmt.Errorf("feature %d is negative (%v)", j, v))
		}
	}
	return errors.Join(errs...)
}

// Dims is the length of the feature vectors the forest was fitted on.
func (f *Forest) Dims() int { return f.dims }

// Trees is the number of trees.
func (f *Forest) Trees() int { return len(f.roots) }

// SampleSize is ψ, the number of vectors each tree was grown on.
func (f *Forest) SampleSize() int { return f.sampleSize }

// Features returns the feature names given at fit time, or nil.
func (f *Forest) Features() []string { return slices.Clone(f.features) }

// Median returns the per-feature training medians (after clamping), the
// reference values [Forest.Explain] substitutes.
func (f *Forest) Median() []float64 { return slices.Clone(f.median) }
