package anomaly

import (
	"fmt"
	"math"
	"testing"
)

func TestExperiment(t *testing.T) {
	train := newPopulation(trainSeed).benignN(trainSize)
	hold := newPopulation(holdoutSeed).benignN(20000)
	for _, ext := range []bool{false, true} {
		for _, full := range []bool{false, true} {
			for _, ss := range []int{256, 1024} {
				ExtendRange = ext
				if full {
					HeightLimit = func(psi int) int { return psi }
				} else {
					HeightLimit = func(psi int) int { return int(math.Ceil(math.Log2(float64(psi)))) }
				}
				f, _ := Fit(train, Config{Seed: 42, SampleSize: ss}, nil)
				benign := f.ScoreAll(hold, nil)
				th := Calibrate(f.ScoreAll(train, nil), 0.999)
				fp := 0
				for _, s := range benign {
					if s > th {
						fp++
					}
				}
				p := newPopulation(outlierSeed)
				var all []float64
				line := ""
				for k := range outlierKinds {
					sc := make([]float64, 100)
					for i := range sc {
						sc[i] = f.Score(p.outlier(k))
					}
					all = append(all, sc...)
					line += fmt.Sprintf(" %.3f", auc(benign[:3000], sc))
				}
				rec := 0
				for _, s := range all {
					if s > th {
						rec++
					}
				}
				t.Logf("ext=%v full=%v ss=%d AUC=%.4f fpr=%.4f recall=%.3f |%s", ext, full, ss, auc(benign[:3000], all), float64(fp)/float64(len(benign)), float64(rec)/float64(len(all)), line)
			}
		}
	}
}
