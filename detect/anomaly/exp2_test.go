package anomaly

import (
	"slices"
	"testing"
)

func TestExperiment2(t *testing.T) {
	ExtendRange = true
	train := newPopulation(trainSeed).benignN(trainSize)
	hold := newPopulation(holdoutSeed).benignN(20000)
	f, _ := Fit(train, Config{Seed: 42, Features: featureNames}, nil)
	sc := f.ScoreAll(hold, nil)
	idx := make([]int, len(sc))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		if sc[a] > sc[b] {
			return -1
		}
		return 1
	})
	for _, i := range idx[:15] {
		t.Logf("%.3f %v", sc[i], fmtv(hold[i]))
	}
	t.Logf("median benign %.3f", sc[idx[len(idx)/2]])
	p := newPopulation(outlierSeed)
	for k := range outlierKinds {
		x := p.outlier(k)
		t.Logf("%s %.3f %v", outlierKinds[k].name, f.Score(x), fmtv(x))
	}
}

func fmtv(x []float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(int(v*100)) / 100
	}
	return out
}
