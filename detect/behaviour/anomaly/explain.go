package anomaly

import (
	"cmp"
	"slices"
)

// Contribution is one feature's share of an anomaly score, as computed by
// [Forest.Explain].
type Contribution struct {
	// Feature is the index into the feature vector.
	Feature int `json:"feature"`
	// Name is Config.Features[Feature] when names were given at fit time.
	Name string `json:"name,omitempty"`
	// Drop is Score(x) minus the score of x with this feature replaced by
	// its training median; always > 0 in Explain's result.
	Drop float64 `json:"drop"`
	// Share is Drop divided by the sum of all positive drops, so the shares
	// of all features with a positive drop (not only the top ones
	// returned) sum to 1.
	Share float64 `json:"share"`
	// Value is x's value of the feature after clamping.
	Value float64 `json:"value"`
	// Median is the feature's training median.
	Median float64 `json:"median"`
}

// Explain returns the features that contributed most to x's anomaly score,
// at most top of them (all of them if top <= 0), largest first.
//
// Method: counterfactual replacement. For each feature j, x is re-scored
// with x[j] set to the training median of feature j; the contribution of j is
// the score drop. A feature that alone makes x unusual gives a large drop,
// one that is ordinary gives none. Features whose replacement does not lower
// the score are left out, so a normal x may yield few or no contributions;
// explain vectors that were flagged. Ties are broken by feature index.
//
// The method costs Dims()+1 scores. Its limit: an anomaly made only of a
// combination of features, each of which is unremarkable alone and several
// of which keep x isolated when one is reset, spreads small drops over those
// features; the ranking among them remains meaningful, the shares less so.
func (f *Forest) Explain(x []float64, top int) []Contribution {
	if f == nil || len(f.roots) == 0 {
		return nil
	}
	y := make([]float64, f.dims)
	for j := range y {
		if j < len(x) {
			y[j] = clamp(x[j])
		}
	}
	base := f.Score(y)
	var out []Contribution
	var total float64
	for j, v := range y {
		y[j] = f.median[j]
		drop := base - f.Score(y)
		y[j] = v
		if drop > 0 {
			c := Contribution{Feature: j, Drop: drop, Value: v, Median: f.median[j]}
			if f.features != nil {
				c.Name = f.features[j]
			}
			out = append(out, c)
			total += drop
		}
	}
	for i := range out {
		out[i].Share = out[i].Drop / total
	}
	slices.SortStableFunc(out, func(a, b Contribution) int {
		return cmp.Compare(b.Drop, a.Drop)
	})
	if top > 0 && len(out) > top {
		out = out[:top]
	}
	return out
}
