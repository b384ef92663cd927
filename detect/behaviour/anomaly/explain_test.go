package anomaly

import (
	"math"
	"testing"
)

// typical draws benign identities until one scores at most the median
// benign score, so that nothing about it is unusual before a test changes it.
func typical(f *Forest, p *population, median float64) []float64 {
	for {
		if x := p.benign(); f.Score(x) <= median {
			return x
		}
	}
}

func medianScore(f *Forest, train [][]float64) float64 {
	return Calibrate(f.ScoreAll(train, nil), 0.5)
}

func TestExplainRanksSpikedFeatureFirst(t *testing.T) {
	f, train := trained()
	median := medianScore(f, train)
	p := newPopulation(outlierSeed)
	for k := range numFeatures {
		for i := range 20 {
			x := typical(f, p, median)
			x[k] = spikes[k](p)
			ex := f.Explain(x, 3)
			if len(ex) == 0 || ex[0].Feature != k {
				t.Errorf("spike in %s #%d: Explain = %+v, want feature %d first", featureNames[k], i, ex, k)
				continue
			}
			c := ex[0]
			if c.Name != featureNames[k] || c.Value != x[k] || c.Median != f.Median()[k] || c.Share <= 0.5 {
				t.Errorf("spike in %s: contribution %+v", featureNames[k], c)
			}
		}
	}
}

func TestExplainSeveralFeatures(t *testing.T) {
	f, train := trained()
	median := medianScore(f, train)
	p := newPopulation(outlierSeed)
	groups := [][]int{
		{fAuthFail, fIPs},
		{fNotFound, fEndpoints, fNewEndpoints},
		{fKiBOut, fObjectIDs},
	}
	for _, g := range groups {
		for i := range 20 {
			x := typical(f, p, median)
			for _, k := range g {
				x[k] = spikes[k](p)
			}
			ex := f.Explain(x, len(g))
			got := make(map[int]bool)
			for _, c := range ex {
				got[c.Feature] = true
			}
			for _, k := range g {
				if !got[k] {
					t.Errorf("spikes in %v #%d: Explain = %+v, want those features on top", g, i, ex)
					break
				}
			}
		}
	}
}

func TestExplainShares(t *testing.T) {
	f, _ := trained()
	x := newPopulation(outlierSeed).attack(0)
	all := f.Explain(x, 0)
	var sum float64
	for i, c := range all {
		sum += c.Share
		if c.Drop <= 0 || (i > 0 && c.Drop > all[i-1].Drop) {
			t.Errorf("contribution %d: %+v out of order or not positive", i, c)
		}
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("shares sum to %v, want 1", sum)
	}
	if top := f.Explain(x, 2); len(top) != min(2, len(all)) || top[0] != all[0] {
		t.Errorf("Explain(top=2) = %+v, want prefix of %+v", top, all)
	}
}
