package behaviour

import (
	"github.com/vigil-project/vigil/detect"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestMultivariateFlagsUnusualCombinations fits the per-kind forest on
// benign vectors and checks that a vector unlike any of them, with several
// variables above normal, is explained as anomalous_behaviour, while benign
// vectors and a vector with a single raised variable are not.
func TestMultivariateFlagsUnusualCombinations(t *testing.T) {
	m := newAPIModel("shop", &detect.API{Name: "shop"}, TrainingConfig{})
	rng := rand.New(rand.NewPCG(3, 4))
	feats := windowVars(pop(detect.KindIP))
	vecs := benignVectors(rng, 3000, vRequestsPerMin, vResponseBytes, vDistinctObjects, vErrors)
	ts := train(m, vecs)
	flagged := 0
	for _, v := range vecs[:1000] {
		if _, vars := m.anomalous(pop(detect.KindIP), v, ts); vars != nil {
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
	_, vars := m.anomalous(pop(detect.KindIP), odd, ts)
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
	if _, vars := m.anomalous(pop(detect.KindIP), single, ts); vars != nil {
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
	feats := windowVars(pop(detect.KindIP))
	vecs := benignVectors(rng, 2000, vRequestsPerMin, vErrors)
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
	_, vars := m.anomalous(pop(detect.KindIP), odd, ts)
	if vars == nil {
		t.Fatal("not flagged at sensitivity 1")
	}
	score, thr := vars[len(vars)-1].Observed, vars[len(vars)-1].Tx
	if score >= 2*thr {
		t.Fatalf("score %v is past twice the threshold %v: the test needs a milder vector", score, thr)
	}
	setSens(0.5)
	if _, v := m.anomalous(pop(detect.KindIP), odd, ts); v != nil {
		t.Fatalf("flagged at sensitivity 0.5 (threshold %v×2, score %v): %+v", thr, score, v)
	}
	setSens(2)
	_, v := m.anomalous(pop(detect.KindIP), odd, ts)
	if v == nil {
		t.Fatal("not flagged at sensitivity 2")
	}
	if got, want := v[len(v)-1].Tx, math.Round(thr/2*1000)/1000; math.Abs(got-want) > 0.001 {
		t.Fatalf("explained threshold %v at sensitivity 2, want %v", got, want)
	}
}

// TestMultivariateNamesTheDominantVariable: an anomaly is named after the
// variable of its explanation that is furthest on its way from normal to
// its own limit, once that is past half way (an ID walker isolated at 68
// distinct objects of 80 is bola_enumeration); with no variable that far,
// or with that variable's type disabled, it stays anomalous_behaviour.
func TestMultivariateNamesTheDominantVariable(t *testing.T) {
	m := newAPIModel("shop", &detect.API{Name: "shop"}, TrainingConfig{})
	rng := rand.New(rand.NewPCG(7, 8))
	feats := windowVars(pop(detect.KindIP))
	vecs := benignVectors(rng, 3000, vRequestsPerMin, vResponseBytes, vDistinctObjects, vErrors)
	ts := train(m, vecs)
	vector := func(set map[varID]float64) []float64 {
		vec := append([]float64(nil), vecs[0]...)
		for i, f := range feats {
			if x, ok := set[f]; ok {
				vec[i] = x
			}
		}
		return vec
	}
	walker := vector(map[varID]float64{vRequestsPerMin: 66, vDistinctObjects: 68})
	typ, vars := m.anomalous(pop(detect.KindIP), walker, ts)
	if vars == nil || typ != detect.AttackBOLAEnumeration {
		t.Fatalf("an ID walker at 68 of 80 distinct objects: %q %+v, want bola_enumeration", typ, vars)
	}
	for _, v := range vars {
		if v.Name == "distinct_object_ids" && v.Tx != 80 {
			t.Fatalf("distinct_object_ids explained with limit %v, want its floor 80: %+v", v.Tx, vars)
		}
	}
	mild := vector(map[varID]float64{vRequestsPerMin: 52, vDistinctObjects: 41, vErrors: 30})
	typ, vars = m.anomalous(pop(detect.KindIP), mild, ts)
	if vars == nil || typ != detect.AttackAnomalous {
		t.Fatalf("a combination with no variable half way to its limit: %q %+v, want anomalous_behaviour (Tn %v)", typ, vars, ts[detect.KindIP])
	}
	k := *m.knobsSnap.Load()
	k[typeIndex(detect.AttackBOLAEnumeration)].Enabled = false
	m.knobsSnap.Store(&k)
	if typ, vars = m.anomalous(pop(detect.KindIP), walker, ts); vars == nil || typ == detect.AttackBOLAEnumeration {
		t.Fatalf("bola_enumeration disabled, the walker is still named after it: %q %+v", typ, vars)
	}
}

// benignVectors returns n IP window vectors of benign clients, drawn for
// the given variables (the others 0): 1–20 calls a minute, 10–210 kB of
// responses, up to 9 distinct objects, up to 2 errors.
func benignVectors(rng *rand.Rand, n int, vars ...varID) [][]float64 {
	feats := windowVars(pop(detect.KindIP))
	vecs := make([][]float64, n)
	for j := range vecs {
		vec := make([]float64, len(feats))
		for i, f := range feats {
			if !slices.Contains(vars, f) {
				continue
			}
			switch f {
			case vRequestsPerMin:
				vec[i] = float64(1 + rng.IntN(20))
			case vResponseBytes:
				vec[i] = float64(10_000 + rng.IntN(200_000))
			case vDistinctObjects:
				vec[i] = float64(rng.IntN(10))
			case vErrors:
				vec[i] = float64(rng.IntN(3))
			}
		}
		vecs[j] = vec
	}
	return vecs
}

// train samples the IP vectors into m as training does, then computes its
// thresholds and fits its forests.
func train(m *apiModel, vecs [][]float64) *thresholdSet {
	feats := windowVars(pop(detect.KindIP))
	for _, vec := range vecs {
		m.sampleVector(pop(detect.KindIP), vec)
		for i, f := range feats {
			m.sample(pop(detect.KindIP), f, vec[i])
		}
	}
	m.mu.Lock()
	m.thresholds.Store(m.compute())
	m.fitForests()
	m.mu.Unlock()
	return m.thresholds.Load()
}
