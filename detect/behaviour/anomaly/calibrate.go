package anomaly

import (
	"math"
	"slices"
)

// Calibrate returns the score threshold at the given quantile of scores,
// which should be the scores of benign vectors (typically the training set,
// see [Forest.ScoreAll]). It is the smallest score t such that at least a
// fraction quantile of the scores are ≤ t, so at most a fraction
// 1 − quantile of them satisfy [Anomalous]; on traffic like the calibration
// data the false-positive rate is therefore about 1 − quantile.
//
// NaN scores are ignored. quantile is clamped to [0, 1] (NaN counts as 1).
// With no usable score Calibrate returns 1, a threshold no score exceeds.
// scores is not modified.
func Calibrate(scores []float64, quantile float64) float64 {
	s := make([]float64, 0, len(scores))
	for _, v := range scores {
		if !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	if len(s) == 0 {
		return 1
	}
	slices.Sort(s)
	if math.IsNaN(quantile) {
		quantile = 1
	}
	quantile = min(max(quantile, 0), 1)
	k := int(math.Ceil(quantile*float64(len(s)))) - 1
	return s[min(max(k, 0), len(s)-1)]
}

// Anomalous reports whether score is above threshold.
func Anomalous(score, threshold float64) bool {
	return score > threshold
}
