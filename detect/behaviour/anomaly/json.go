package anomaly

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// ModelVersion is the version of the JSON form of a [Forest] that this
// package writes; it reads only this version.
const ModelVersion = 1

const (
	modelKind      = "isolation-forest"
	modelTransform = "log1p"
)

// forestJSON is the exported form of a Forest. Nodes of all trees are stored
// in parallel arrays indexed by node: Feature (-1 for a leaf), Child (index
// of the left child; the right one is Child+1; 0 for a leaf), Value (the split
// threshold in raw feature units, or a leaf's path length depth + c(size))
// and Lo, Hi (the split feature's training range at the node, for the range
// extension; 0 for a leaf). Roots holds each tree's root index. Transform records
// how thresholds were drawn (uniformly in log1p space); scoring only compares
// raw values against thresholds.
type forestJSON struct {
	Version    int       `json:"version"`
	Kind       string    `json:"kind"`
	Transform  string    `json:"transform"`
	Dims       int       `json:"dims"`
	SampleSize int       `json:"sample_size"`
	Features   []string  `json:"features,omitempty"`
	Median     []float64 `json:"median"`
	Roots      []int32   `json:"roots"`
	Feature    []int32   `json:"feature"`
	Child      []int32   `json:"child"`
	Value      []float64 `json:"value"`
	Lo         []float64 `json:"lo"`
	Hi         []float64 `json:"hi"`
}

// MarshalJSON encodes the forest in its versioned, flat JSON form. Float
// values round-trip exactly, so an unmarshalled forest scores identically.
func (f Forest) MarshalJSON() ([]byte, error) {
	if len(f.roots) == 0 {
		return nil, errors.New("marshal isolation forest: forest is not fitted")
	}
	m := forestJSON{
		Version:    ModelVersion,
		Kind:       modelKind,
		Transform:  modelTransform,
		Dims:       f.dims,
		SampleSize: f.sampleSize,
		Features:   f.features,
		Median:     f.median,
		Roots:      f.roots,
		Feature:    make([]int32, len(f.nodes)),
		Child:      make([]int32, len(f.nodes)),
		Value:      make([]float64, len(f.nodes)),
		Lo:         make([]float64, len(f.nodes)),
		Hi:         make([]float64, len(f.nodes)),
	}
	for i, n := range f.nodes {
		m.Feature[i], m.Child[i], m.Value[i], m.Lo[i], m.Hi[i] = n.feat, n.child, n.val, n.lo, n.hi
	}
	return json.Marshal(m)
}

// UnmarshalJSON decodes and validates a forest written by MarshalJSON.
// Unknown fields, other versions and any structural inconsistency are
// rejected, so a decoded forest can be scored without risk of a panic or an
// endless walk. On error f is left unchanged.
func (f *Forest) UnmarshalJSON(b []byte) error {
	var m forestJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("unmarshal isolation forest: %w", err)
	}
	nodes, err := m.validate()
	if err != nil {
		return fmt.Errorf("unmarshal isolation forest: %w", err)
	}
	*f = Forest{
		dims:       m.Dims,
		sampleSize: m.SampleSize,
		features:   m.Features,
		median:     m.Median,
		roots:      m.Roots,
		nodes:      nodes,
		invNorm:    normaliser(m.SampleSize, len(m.Roots)),
	}
	return nil
}

// validate checks m and returns its nodes.
func (m *forestJSON) validate() ([]node, error) {
	if m.Version != ModelVersion {
		return nil, fmt.Errorf("version %d: want %d", m.Version, ModelVersion)
	}
	if m.Kind != modelKind {
		return nil, fmt.Errorf("kind %q: want %q", m.Kind, modelKind)
	}
	if m.Transform != modelTransform {
		return nil, fmt.Errorf("transform %q: want %q", m.Transform, modelTransform)
	}
	if m.Dims < 1 {
		return nil, fmt.Errorf("dims %d: want at least 1", m.Dims)
	}
	if m.SampleSize < 2 || m.SampleSize > MaxSampleSize {
		return nil, fmt.Errorf("sample_size %d: want 2..%d", m.SampleSize, MaxSampleSize)
	}
	if m.Features != nil {
		if len(m.Features) != m.Dims {
			return nil, fmt.Errorf("%d feature names for %d dims", len(m.Features), m.Dims)
		}
		if err := (Config{Features: m.Features}).Validate(); err != nil {
			return nil, err
		}
	}
	if len(m.Median) != m.Dims {
		return nil, fmt.Errorf("%d medians for %d dims", len(m.Median), m.Dims)
	}
	for j, v := range m.Median {
		if !(v >= 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("median %d is %v: want a finite value >= 0", j, v)
		}
	}
	if len(m.Roots) < 1 || len(m.Roots) > MaxTrees {
		return nil, fmt.Errorf("%d trees: want 1..%d", len(m.Roots), MaxTrees)
	}
	n := len(m.Feature)
	if len(m.Child) != n || len(m.Value) != n || len(m.Lo) != n || len(m.Hi) != n {
		return nil, fmt.Errorf("node arrays differ in length: feature %d, child %d, value %d, lo %d, hi %d",
			n, len(m.Child), len(m.Value), len(m.Lo), len(m.Hi))
	}
	if n > math.MaxInt32 {
		return nil, fmt.Errorf("%d nodes: too many", n)
	}
	for t, r := range m.Roots {
		if r < 0 || int(r) >= n {
			return nil, fmt.Errorf("tree %d: root %d out of range [0, %d)", t, r, n)
		}
	}
	nodes := make([]node, n)
	for i := range n {
		feat, child, val, lo, hi := m.Feature[i], m.Child[i], m.Value[i], m.Lo[i], m.Hi[i]
		switch {
		case feat == -1:
			if child != 0 || lo != 0 || hi != 0 {
				return nil, fmt.Errorf("node %d: leaf with child %d, lo %v, hi %v: want zeros", i, child, lo, hi)
			}
			if !(val >= 0) || math.IsInf(val, 0) {
				return nil, fmt.Errorf("node %d: leaf path length %v: want a finite value >= 0", i, val)
			}
		case feat < 0 || int(feat) >= m.Dims:
			return nil, fmt.Errorf("node %d: feature %d out of range [0, %d)", i, feat, m.Dims)
		case int(child) <= i || int(child) >= n-1:
			// child > i makes every walk strictly increasing, hence finite.
			return nil, fmt.Errorf("node %d: children %d and %d: want indices in (%d, %d)", i, child, int64(child)+1, i, n)
		case !(val > 0) || math.IsInf(val, 0):
			// Score relies on thresholds > 0 to treat NaN and negatives as 0.
			return nil, fmt.Errorf("node %d: threshold %v: want a finite value > 0", i, val)
		case !(lo >= 0 && lo < hi) || math.IsInf(hi, 0):
			// 0 <= lo < hi keeps the range extension's probability in [0, 1].
			return nil, fmt.Errorf("node %d: range [%v, %v]: want finite 0 <= lo < hi", i, lo, hi)
		}
		nodes[i] = node{val: val, lo: lo, hi: hi, feat: feat, child: child}
	}
	return nodes, nil
}
