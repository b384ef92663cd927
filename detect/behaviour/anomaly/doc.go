// Package anomaly owns Vigil's unsupervised multivariate anomaly detection:
// given one feature vector per identity (one identity's window variables for
// one API: requests per minute, error ratio, distinct endpoints, bytes out,
// distinct IPs, …), it learns what normal traffic looks like without labels
// and scores how isolated a new vector is.
//
// The detector is an Isolation Forest (Liu, Ting and Zhou, "Isolation
// Forest", ICDM 2008): [Fit] grows Config.Trees random binary trees, each on a
// subsample of Config.SampleSize vectors drawn without replacement, splitting
// on a random feature at a random threshold until a vector is alone or the
// height limit ceil(log2(SampleSize)) is reached. Anomalies are few and
// different, so they are isolated after fewer splits. [Forest.Score] returns
// the standard normalised score
//
//	s(x) = 2^(-E[h(x)] / c(ψ))
//
// where h(x) is the path length of x in one tree (plus c(size) at a leaf that
// still holds size > 1 training vectors), E is the mean over trees, ψ is the
// subsample size and c(n) = 2H(n−1) − 2(n−1)/n is the average path length of
// an unsuccessful binary-search-tree lookup. Scores near 1 are anomalies,
// scores well below 0.5 are normal.
//
// # Range extension
//
// A plain Isolation Forest cannot see how far a value lies beyond the
// training range: a split threshold is always drawn inside the range of the
// vectors at a node, so a client sending 100× the largest benign rate walks
// the same path as the largest benign client. Each internal node therefore
// also keeps the range [lo, hi] of its split feature among its training
// vectors, and h(x) is the expected path length had x been part of the
// node's sample: if x's value v lies outside [lo, hi], a threshold drawn
// uniformly in log1p space over the range widened to include v would have
// cut x off alone with probability
//
//	p = (log1p(v) − log1p(hi)) / (log1p(v) − log1p(lo))   for v > hi
//	p = (log1p(lo) − log1p(v)) / (log1p(hi) − log1p(v))   for v < lo
//
// in which case its path ends one level below the node; otherwise (1 − p)
// x follows the tree as usual. For a vector inside the range of every node
// it passes, h(x) is exactly the standard path length. On the synthetic
// traffic of the tests it raises the AUC for outliers confined to one
// feature of twelve from about 0.84 to about 0.93. The escape probabilities
// add no work for in-range values and three log1p calls for each node where
// a value is out of range.
//
// # Feature transform
//
// Per-identity traffic variables are non-negative, heavy-tailed and often
// zero. A uniform split between a node's minimum and maximum would then land
// almost always in the empty tail, wasting splits. So split thresholds are
// drawn uniformly in log1p space: for a feature with node range [lo, hi] the
// threshold is expm1(U(log1p(lo), log1p(hi))). Trees only compare values, so
// this is exactly an Isolation Forest on log1p(x) — it is the distribution of
// thresholds that changes — but the model stores thresholds in raw feature
// units, so scoring needs no logarithms and the exported model is readable.
//
// # Bad input
//
// Nothing in this package panics on a bad vector. The clamping rule is the
// same for fitting and scoring: NaN, −Inf, negative values and −0 count as 0;
// +Inf counts as the largest float64. A vector shorter than the model's
// dimension is padded with zeros and extra values are ignored. Callers that
// prefer an error use [Forest.Check]. [Fit] does reject structural mistakes:
// fewer than two samples, an empty first sample, or samples of different
// lengths.
//
// # Attribution
//
// [Forest.Explain] answers "which variables made this identity anomalous" by
// counterfactual replacement: for each feature j it re-scores x with x[j] set
// to that feature's training median and reports the score drop. See
// [Contribution].
//
// # Thresholds
//
// [Calibrate] turns the scores of benign (training) vectors into a threshold
// at a chosen quantile, so that on traffic like the training data the false
// positive rate is about 1 − quantile; [Anomalous] applies it.
//
// # Limitations
//
//   - An anomaly confined to one feature is seen only by the splits on that
//     feature, about one in Dims() per level, so among twelve features such
//     a vector scores clearly above typical traffic but often below the
//     benign tail: a threshold at the 0.999 quantile catches only a few
//     percent of them. Single-variable extremes are better caught by
//     per-variable thresholds; the forest is for combinations. Anomalies in
//     two or three features at once are ranked almost perfectly.
//   - The model is of the population, not of each identity: an identity
//     that multiplies its own usual rate but stays within what other
//     identities do is not an outlier here.
//   - Splits are axis-parallel, so anomalies made only of an unusual ratio
//     between features that are each in range are seen poorly.
//   - Fitting trusts its samples: attack traffic in the training window
//     becomes normal and raises the calibrated threshold.
//
// A fitted [Forest] is immutable and safe for concurrent use. It marshals to
// a compact, versioned JSON document (nodes in flat arrays) and unmarshals
// with full validation, so an imported model cannot make Score loop or panic.
package anomaly
