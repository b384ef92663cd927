package anomaly

import (
	"testing"
)

// benignScores are the scores of held-out benign identities.
func benignScores(f *Forest, n int) []float64 {
	return f.ScoreAll(newPopulation(holdoutSeed).benignN(n), nil)
}

func TestDetectsAttacks(t *testing.T) {
	f, _ := trained()
	benign := benignScores(f, 5000)
	p := newPopulation(outlierSeed)
	var all []float64
	for k, kind := range attacks {
		scores := make([]float64, 100)
		for i := range scores {
			scores[i] = f.Score(p.attack(k))
		}
		all = append(all, scores...)
		a := auc(benign, scores)
		t.Logf("AUC %-20s %.4f", kind.name, a)
		if a <= 0.95 {
			t.Errorf("%s: AUC %.4f, want > 0.95", kind.name, a)
		}
	}
	a := auc(benign, all)
	t.Logf("AUC all attacks         %.4f", a)
	if a <= 0.95 {
		t.Errorf("AUC %.4f, want > 0.95", a)
	}
}

// TestDetectsSpikes measures the known weakness: an anomaly confined to one
// feature of twelve is tested by only about one split in twelve, so it is
// scored well above typical traffic but not always above the benign tail.
// The bound guards against regressions; the logged AUCs are the figures to
// quote.
func TestDetectsSpikes(t *testing.T) {
	f, _ := trained()
	benign := benignScores(f, 5000)
	p := newPopulation(outlierSeed)
	var all []float64
	for k := range numFeatures {
		scores := make([]float64, 100)
		for i := range scores {
			scores[i] = f.Score(p.spike(k))
		}
		all = append(all, scores...)
		a := auc(benign, scores)
		t.Logf("AUC spike in %-14s %.4f", featureNames[k], a)
		if a <= 0.85 {
			t.Errorf("spike in %s: AUC %.4f, want > 0.85", featureNames[k], a)
		}
	}
	a := auc(benign, all)
	t.Logf("AUC all spikes             %.4f", a)
	if a <= 0.9 {
		t.Errorf("AUC %.4f, want > 0.9", a)
	}
}

func TestCalibratedFalsePositiveRate(t *testing.T) {
	const quantile = 0.999
	f, train := trained()
	threshold := Calibrate(f.ScoreAll(train, nil), quantile)

	holdout := newPopulation(holdoutSeed).benignN(50000)
	fp := 0
	for _, x := range holdout {
		if Anomalous(f.Score(x), threshold) {
			fp++
		}
	}
	fpr := float64(fp) / float64(len(holdout))
	t.Logf("threshold %.4f: held-out FPR %.3f%% (%d/%d)", threshold, 100*fpr, fp, len(holdout))
	if fpr > 0.002 {
		t.Errorf("held-out false-positive rate %.4f, want <= 0.002", fpr)
	}

	// Recall at that threshold, 200 draws per kind. The floors are the
	// recall observed with these seeds (the populations are seeded, so it
	// is exact) less two binomial standard errors of 200 draws, rounded
	// down, at most 97 %: a model that halves any of them fails. Observed:
	// flood 18.5 %, fuzzing 100 %, bulk export 24 %, shared token 100 %,
	// brute force 43.5 %, id walking 12.5 %, mass delete 23.5 %, scraping
	// 37 %, credential stuffing 100 %, enumeration 100 %; all attacks
	// 55.9 %; a spike in one feature of twelve 2.7 % on average (the known
	// weakness, still 20 times the false-positive rate).
	floors := map[string]float64{
		"flood": 0.13, "fuzzing": 0.97, "bulk export": 0.18, "shared token": 0.97, "brute force": 0.36,
		"id walking": 0.07, "mass delete": 0.17, "scraping": 0.30, "credential stuffing": 0.97, "enumeration": 0.97,
	}
	p := newPopulation(outlierSeed)
	recall := func(draw func() []float64) float64 {
		tp := 0
		for range 200 {
			if Anomalous(f.Score(draw()), threshold) {
				tp++
			}
		}
		return float64(tp) / 200
	}
	var all float64
	for k, kind := range attacks {
		r := recall(func() []float64 { return p.attack(k) })
		all += r / float64(len(attacks))
		t.Logf("recall %-20s %5.1f%%", kind.name, 100*r)
		floor, ok := floors[kind.name]
		if !ok {
			t.Errorf("no recall floor stated for %s", kind.name)
		}
		if r < floor {
			t.Errorf("recall of %s %.1f%%, want at least %.0f%%", kind.name, 100*r, 100*floor)
		}
	}
	if all < 0.53 {
		t.Errorf("recall of all attacks %.1f%%, want at least 53%%", 100*all)
	}
	var spikes float64
	for k := range numFeatures {
		r := recall(func() []float64 { return p.spike(k) })
		spikes += r / numFeatures
		t.Logf("recall spike in %-14s %5.1f%%", featureNames[k], 100*r)
	}
	// 2,400 draws: 2.7 % less two standard errors (0.33 points each).
	if spikes < 0.02 {
		t.Errorf("recall of one-feature spikes %.2f%%, want at least 2%%", 100*spikes)
	}
}
