package anomaly

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestJSONRoundTrip(t *testing.T) {
	f, train := trained()
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("model: %d trees, %d nodes, %d bytes of JSON", f.Trees(), len(f.nodes), len(b))
	var g Forest
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	xs := slices.Clone(train[:2000])
	p := newPopulation(outlierSeed)
	for k := range attacks {
		xs = append(xs, p.attack(k))
	}
	for _, bv := range badVectors {
		xs = append(xs, bv.x)
	}
	for i, x := range xs {
		if a, b := f.Score(x), g.Score(x); a != b {
			t.Fatalf("vector %d: score %v before, %v after the round trip", i, a, b)
		}
	}
	x := p.attack(0)
	if a, b := f.Explain(x, 0), g.Explain(x, 0); !slices.Equal(a, b) {
		t.Errorf("Explain differs after the round trip:\n%+v\n%+v", a, b)
	}
	if !slices.Equal(g.Features(), featureNames) || g.Dims() != f.Dims() || g.SampleSize() != f.SampleSize() {
		t.Errorf("metadata differs: %v %d %d", g.Features(), g.Dims(), g.SampleSize())
	}
	again, err := json.Marshal(&g)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, again) {
		t.Error("re-marshalled model differs")
	}
	// A value, not only a pointer, marshals to the full model.
	if byValue, err := json.Marshal(*f); err != nil || !bytes.Equal(b, byValue) {
		t.Errorf("marshal by value: %v, equal %v", err, bytes.Equal(b, byValue))
	}
}

func TestMarshalUnfitted(t *testing.T) {
	if _, err := json.Marshal(&Forest{}); err == nil || !strings.Contains(err.Error(), "not fitted") {
		t.Errorf("marshal of an empty forest: %v", err)
	}
}

// tinyModel is a fitted 2-feature, 2-tree forest in its JSON form, small
// enough for hand-made corruptions and fuzzing.
func tinyModel(t testing.TB) forestJSON {
	t.Helper()
	samples := [][]float64{{0, 1}, {1, 10}, {2, 100}, {3, 1000}, {4, 1}, {5, 2}}
	f, err := Fit(samples, Config{Trees: 2, SampleSize: 4, Seed: 3, Features: []string{"a", "b"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var m forestJSON
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// firstInternal is the index of the first internal node of m.
func firstInternal(m *forestJSON) int {
	for i, f := range m.Feature {
		if f >= 0 {
			return i
		}
	}
	panic("tiny model has no split")
}

func firstLeaf(m *forestJSON) int {
	return slices.Index(m.Feature, -1)
}

// badModels feed TestUnmarshalRejects and the FuzzUnmarshal seeds: each
// corrupts a valid tiny model and names the error it must cause.
var badModels = []struct {
	name    string
	corrupt func(m *forestJSON)
	want    string
}{
	{"version", func(m *forestJSON) { m.Version = 2 }, "version 2: want 1"},
	{"kind", func(m *forestJSON) { m.Kind = "hst" }, `kind "hst"`},
	{"transform", func(m *forestJSON) { m.Transform = "none" }, `transform "none"`},
	{"dims", func(m *forestJSON) { m.Dims = 0 }, "dims 0"},
	{"sample size", func(m *forestJSON) { m.SampleSize = 1 }, "sample_size 1"},
	{"feature names", func(m *forestJSON) { m.Features = []string{"a"} }, "1 feature names for 2 dims"},
	{"duplicate names", func(m *forestJSON) { m.Features = []string{"a", "a"} }, "already used"},
	{"medians", func(m *forestJSON) { m.Median = m.Median[:1] }, "1 medians for 2 dims"},
	{"negative median", func(m *forestJSON) { m.Median[0] = -1 }, "median 0 is -1"},
	{"no trees", func(m *forestJSON) { m.Roots = nil }, "0 trees"},
	{"ragged nodes", func(m *forestJSON) { m.Value = m.Value[1:] }, "node arrays differ"},
	{"root out of range", func(m *forestJSON) { m.Roots[1] = int32(len(m.Feature)) }, "tree 1: root"},
	{"negative root", func(m *forestJSON) { m.Roots[0] = -1 }, "tree 0: root -1"},
	{"feature out of range", func(m *forestJSON) { m.Feature[firstInternal(m)] = 2 }, "feature 2 out of range"},
	{"negative feature", func(m *forestJSON) { m.Feature[firstInternal(m)] = -2 }, "feature -2 out of range"},
	{"self loop", func(m *forestJSON) { i := firstInternal(m); m.Child[i] = int32(i) }, "want indices in"},
	{"back edge", func(m *forestJSON) { i := firstInternal(m); m.Child[i] = 0 }, "want indices in"},
	{"child past end", func(m *forestJSON) { m.Child[firstInternal(m)] = int32(len(m.Feature) - 1) }, "want indices in"},
	{"zero threshold", func(m *forestJSON) { m.Value[firstInternal(m)] = 0 }, "threshold 0"},
	{"empty range", func(m *forestJSON) { i := firstInternal(m); m.Lo[i] = m.Hi[i] }, "want finite 0 <= lo < hi"},
	{"negative lo", func(m *forestJSON) { m.Lo[firstInternal(m)] = -1 }, "want finite 0 <= lo < hi"},
	{"leaf with child", func(m *forestJSON) { m.Child[firstLeaf(m)] = 1 }, "leaf with child 1"},
	{"leaf with range", func(m *forestJSON) { m.Hi[firstLeaf(m)] = 1 }, "want zeros"},
	{"negative leaf", func(m *forestJSON) { m.Value[firstLeaf(m)] = -1 }, "leaf path length -1"},
}

func badModelJSON(t testing.TB, corrupt func(*forestJSON)) []byte {
	m := tinyModel(t)
	corrupt(&m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnmarshalRejects(t *testing.T) {
	valid, err := json.Marshal(tinyModel(t))
	if err != nil {
		t.Fatal(err)
	}
	var g Forest
	if err := json.Unmarshal(valid, &g); err != nil {
		t.Fatalf("valid tiny model rejected: %v", err)
	}
	want := g.Score([]float64{1, 2})
	for _, tt := range badModels {
		t.Run(tt.name, func(t *testing.T) {
			h := g // a failed unmarshal must leave the forest as it was
			err := json.Unmarshal(badModelJSON(t, tt.corrupt), &h)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if got := h.Score([]float64{1, 2}); got != want {
				t.Errorf("forest changed by a failed unmarshal: score %v, want %v", got, want)
			}
		})
	}
	for name, b := range map[string]string{
		"unknown field": strings.Replace(string(valid), `"version"`, `"extra":1,"version"`, 1),
		"not json":      "{",
		"wrong type":    `{"version":"1"}`,
	} {
		if err := json.Unmarshal([]byte(b), &g); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	valid, err := json.Marshal(tinyModel(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	for _, tt := range badModels {
		f.Add(badModelJSON(f, tt.corrupt))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var g Forest
		if g.UnmarshalJSON(b) != nil {
			return
		}
		for _, x := range [][]float64{nil, {0, 0}, {1, 1e300}, {math.NaN(), math.Inf(1)}, {5, 5, 5}} {
			if s := g.Score(x); !(s >= 0 && s <= 1) {
				t.Fatalf("Score(%v) = %v", x, s)
			}
			g.Explain(x, 0)
		}
	})
}

func FuzzScore(f *testing.F) {
	for _, bv := range badVectors {
		var a [3]float64
		copy(a[:], bv.x)
		f.Add(a[0], a[1], a[2], uint8(len(bv.x)))
	}
	model := smallForest(f)
	f.Fuzz(func(t *testing.T, a, b, c float64, n uint8) {
		x := []float64{a, b, c, a, b}[:n%6]
		s := model.Score(x)
		if !(s >= 0 && s <= 1) {
			t.Fatalf("Score(%v) = %v", x, s)
		}
		same := make([]float64, model.Dims())
		for j := range min(len(x), len(same)) {
			same[j] = clamp(x[j])
		}
		if want := model.Score(same); s != want {
			t.Fatalf("Score(%v) = %v, Score(%v) = %v", x, s, same, want)
		}
		for _, c := range model.Explain(x, 0) {
			if !(c.Drop > 0 && c.Share > 0 && c.Share <= 1) {
				t.Fatalf("Explain(%v): %+v", x, c)
			}
		}
	})
}
