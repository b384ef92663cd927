package behaviour

import (
	"github.com/vigil-project/vigil/detect"
	"math"
	"math/rand/v2"
	"testing"
)

// TestMultivariateFlagsUnusualCombinations fits the per-kind forest on
// benign vectors and checks that a vector unlike any of them, with several
// variables above normal, is explained as anomalous_behaviour, while benign
// vectors and a vector with a single raised variable are not.
func TestMultivariateFlagsUnusualCombinations(t *testing.T) {
	m := newAPIModel("shop", &detect.API{Name: "shop"}, TrainingConfig{})
	rng := rand.New(rand.NewPCG(3, 4))
	feats := windowVars(detect.KindIP)
	benign := func() []float64 {
		v := make([]float64, len(feats))
		for i, f := range feats {
			switch f {
			case vRequestsPerMin:
				v[i] = float64(1 + rng.IntN(20))
			case vResponseBytes:
				v[i] = float64(10_000 + rng.IntN(200_000))
			case vDistinctObjects:
				v[i] = float64(rng.IntN(10))
			case vErrors:
				v[i] = float64(rng.IntN(3))
			}
		}
		return v
	}
	var vecs [][]float64
	for range 3000 {
		vec := benign()
		vecs = append(vecs, vec)
	}
	ts := train(m, vecs)
	flagged := 0
	for _, v := range vecs[:1000] {
		if m.anomalous(detect.KindIP, v, ts) != nil {
			flagged++
		}
	}
	if flagged > 0 {
		t.Fatalf("%d of 1000 benign vectors flagged", flagged)
	}
	odd := make([]float64, len(feats))
	for i, f := range feats {
		switch f {
		case vRequestsPerMin:
			odd[i] = 90 // busy, under requests_per_min's floor
		case vDistinctObjects:
			odd[i] = 60 // many objects, under its floor
		case vErrors:
			odd[i] = 40
		case vResponseBytes:
			odd[i] = 150_000
		}
	}
	vars := m.anomalous(detect.KindIP, odd, ts)
	if vars == nil {
		t.Fatal("an unusual combination was not flagged")
	}
	if last := vars[len(vars)-1]; last.Name != "isolation_score" || last.Observed <= last.Tx {
		t.Fatalf("no isolation score in the explanation: %+v", vars)
	}
	names := map[string]bool{}
	for _, v := range vars[:len(vars)-1] {
		names[v.Name] = true
	}
	if !names["requests_per_min"] && !names["distinct_object_ids"] && !names["errors_10m"] {
		t.Fatalf("explanation misses the raised variables: %+v", vars)
	}
	single := vecs[0]
	single = append([]float64(nil), single...)
	for i, f := range feats {
		if f == vRequestsPerMin {
			single[i] = 95
		}
	}
	if m.anomalous(detect.KindIP, single, ts) != nil {
		t.Fatal("one raised variable alone is the thresholds' job, not an anomaly")
	}
}

// TestMultivariateSensitivity: the type's sensitivity divides the score
// threshold like every other Tx. A combination flagged at 1 is not at 0.5
// when its score is below twice the threshold, and the explanation carries
// the effective threshold.
func TestMultivariateSensitivity(t *testing.T) {
	m := newAPIModel("shop", &detect.API{Name: "shop"}, TrainingConfig{})
	rng := rand.New(rand.NewPCG(5, 6))
	feats := windowVars(detect.KindIP)
	var vecs [][]float64
	for range 2000 {
		vec := make([]float64, len(feats))
		for i, f := range feats {
			switch f {
			case vRequestsPerMin:
				vec[i] = float64(1 + rng.IntN(20))
			case vErrors:
				vec[i] = float64(rng.IntN(3))
			}
		}
		vecs = append(vecs, vec)
	}
	ts := train(m, vecs)
	odd := make([]float64, len(feats))
	for i, f := range feats {
		switch f {
		case vRequestsPerMin:
			odd[i] = 90
		case vErrors:
			odd[i] = 40
		case vDistinctObjects:
			odd[i] = 60
		}
	}
	setSens := func(s float64) {
		k := *m.knobsSnap.Load()
		k[anomalousType].Sensitivity = s
		m.knobsSnap.Store(&k)
	}
	vars := m.anomalous(detect.KindIP, odd, ts)
	if vars == nil {
		t.Fatal("not flagged at sensitivity 1")
	}
	score, thr := vars[len(vars)-1].Observed, vars[len(vars)-1].Tx
	if score >= 2*thr {
		t.Fatalf("score %v is past twice the threshold %v: the test needs a milder vector", score, thr)
	}
	setSens(0.5)
	if v := m.anomalous(detect.KindIP, odd, ts); v != nil {
		t.Fatalf("flagged at sensitivity 0.5 (threshold %v×2, score %v): %+v", thr, score, v)
	}
	setSens(2)
	v := m.anomalous(detect.KindIP, odd, ts)
	if v == nil {
		t.Fatal("not flagged at sensitivity 2")
	}
	if got, want := v[len(v)-1].Tx, math.Round(thr/2*1000)/1000; math.Abs(got-want) > 0.001 {
		t.Fatalf("explained threshold %v at sensitivity 2, want %v", got, want)
	}
}

// train samples the IP vectors into m as training does, then computes its
// thresholds and fits its forests.
func train(m *apiModel, vecs [][]float64) *thresholdSet {
	feats := windowVars(detect.KindIP)
	for _, vec := range vecs {
		m.sampleVector(detect.KindIP, vec)
		for i, f := range feats {
			m.sample(detect.KindIP, f, vec[i])
		}
	}
	m.mu.Lock()
	m.thresholds.Store(m.compute())
	m.fitForests()
	m.mu.Unlock()
	return m.thresholds.Load()
}
