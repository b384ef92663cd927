package anomaly

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

const (
	trainSize   = 10000
	trainSeed   = 1
	holdoutSeed = 2
	outlierSeed = 3
	forestSeed  = 42
)

// trained is the forest most tests share: 10k benign identities, defaults.
var trained = sync.OnceValues(func() (*Forest, [][]float64) {
	train := newPopulation(trainSeed).benignN(trainSize)
	f, err := Fit(train, Config{Seed: forestSeed, Features: featureNames}, nil)
	if err != nil {
		panic(err)
	}
	return f, train
})

func TestFitErrors(t *testing.T) {
	ok := [][]float64{{1, 2}, {3, 4}}
	tests := []struct {
		name    string
		samples [][]float64
		cfg     Config
		want    []string
	}{
		{name: "no samples", want: []string{"need at least 2 samples, got 0"}},
		{name: "one sample", samples: ok[:1], want: []string{"need at least 2 samples, got 1"}},
		{name: "empty vector", samples: [][]float64{{}, {}}, want: []string{"sample 0 has no features"}},
		{name: "ragged", samples: [][]float64{{1, 2}, {3, 4}, {5}}, want: []string{"sample 2 has 1 features, sample 0 has 2"}},
		{name: "names", samples: ok, cfg: Config{Features: []string{"a"}}, want: []string{"1 feature names for 2 features"}},
		{
			name: "every config problem", samples: ok, cfg: Config{Trees: -1, SampleSize: 1, Features: []string{"a", ""}},
			want: []string{"trees -1", "sample size 1", "feature 1: empty name"},
		},
		{name: "duplicate name", samples: ok, cfg: Config{Features: []string{"a", "a"}}, want: []string{`feature 1: name "a" already used by feature 0`}},
		{name: "too many trees", samples: ok, cfg: Config{Trees: MaxTrees + 1}, want: []string{"trees 10001"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Fit(tt.samples, tt.cfg, nil)
			if err == nil {
				t.Fatalf("Fit = %v, want error", f)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestFitSmallAndDegenerate(t *testing.T) {
	// Two samples: ψ = 2, height limit 1.
	f, err := Fit([][]float64{{0, 1}, {5, 1}}, Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.SampleSize() != 2 || f.Trees() != DefaultTrees || f.Dims() != 2 {
		t.Errorf("ψ=%d trees=%d dims=%d", f.SampleSize(), f.Trees(), f.Dims())
	}
	// Identical samples cannot be split: every tree is one leaf holding ψ
	// vectors, E[h] = c(ψ) and every score is exactly 0.5.
	same := make([][]float64, 50)
	for i := range same {
		same[i] = []float64{3, 0, 7}
	}
	f, err = Fit(same, Config{Trees: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range [][]float64{{3, 0, 7}, {1000, 5, 0}} {
		if got := f.Score(x); got != 0.5 {
			t.Errorf("Score(%v) = %v, want 0.5", x, got)
		}
	}
}

func TestFitDeterministic(t *testing.T) {
	train := newPopulation(trainSeed).benignN(2000)
	marshal := func(f *Forest, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := marshal(Fit(train, Config{Seed: 9}, nil))
	b := marshal(Fit(train, Config{Seed: 9}, nil))
	c := marshal(Fit(train, Config{}, rand.New(rand.NewPCG(9, pcgStream))))
	d := marshal(Fit(train, Config{Seed: 10}, nil))
	if !bytes.Equal(a, b) {
		t.Error("same seed, different forests")
	}
	if !bytes.Equal(a, c) {
		t.Error("Seed and an equivalent *rand.Rand give different forests")
	}
	if bytes.Equal(a, d) {
		t.Error("different seeds, same forest")
	}
}

func TestFitDoesNotModifySamples(t *testing.T) {
	samples := [][]float64{{-1, math.NaN()}, {math.Inf(1), 2}, {3, 4}}
	if _, err := Fit(samples, Config{Trees: 3}, nil); err != nil {
		t.Fatal(err)
	}
	if samples[0][0] != -1 || !math.IsNaN(samples[0][1]) || !math.IsInf(samples[1][0], 1) {
		t.Errorf("samples changed: %v", samples)
	}
}

// badVectors feeds TestScoreBadInput and the FuzzScore seeds: each vector
// must score exactly like its clamped, resized equivalent.
var badVectors = []struct {
	name      string
	x, same   []float64
	checkFail string // what Check reports
}{
	{"NaN", []float64{math.NaN(), 1, 2}, []float64{0, 1, 2}, "feature 0 is NaN"},
	{"negative", []float64{1, -5, 2}, []float64{1, 0, 2}, "feature 1 is negative"},
	{"negative zero", []float64{math.Copysign(0, -1), 1, 2}, []float64{0, 1, 2}, ""},
	{"-Inf", []float64{1, 1, math.Inf(-1)}, []float64{1, 1, 0}, "feature 2 is -Inf"},
	{"+Inf", []float64{math.Inf(1), 1, 2}, []float64{math.MaxFloat64, 1, 2}, "feature 0 is +Inf"},
	{"short", []float64{4}, []float64{4, 0, 0}, "vector has 1 features, model has 3"},
	{"nil", nil, []float64{0, 0, 0}, "vector has 0 features, model has 3"},
	{"long", []float64{1, 2, 3, 4, 5}, []float64{1, 2, 3}, "vector has 5 features, model has 3"},
}

func smallForest(t testing.TB) *Forest {
	t.Helper()
	p := newPopulation(5)
	train := make([][]float64, 500)
	for i := range train {
		x := p.benign()
		train[i] = []float64{x[fRate], x[fErrRatio], x[fIPs]}
	}
	f, err := Fit(train, Config{Trees: 50, Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestScoreBadInput(t *testing.T) {
	f := smallForest(t)
	for _, tt := range badVectors {
		t.Run(tt.name, func(t *testing.T) {
			got, want := f.Score(tt.x), f.Score(tt.same)
			if got != want || !(got >= 0 && got <= 1) {
				t.Errorf("Score = %v, want %v (score of %v)", got, want, tt.same)
			}
			err := f.Check(tt.x)
			if tt.checkFail == "" && err != nil {
				t.Errorf("Check = %v, want nil", err)
			}
			if tt.checkFail != "" && (err == nil || !strings.Contains(err.Error(), tt.checkFail)) {
				t.Errorf("Check = %v, want %q", err, tt.checkFail)
			}
			if ex := f.Explain(tt.x, 0); len(ex) > 0 && math.IsNaN(ex[0].Drop) {
				t.Errorf("Explain = %+v", ex)
			}
		})
	}
	var nilForest *Forest
	if got := nilForest.Score([]float64{1}); got != 0 {
		t.Errorf("nil forest Score = %v", got)
	}
	if got := nilForest.Explain([]float64{1}, 1); got != nil {
		t.Errorf("nil forest Explain = %v", got)
	}
}

func TestScoreDoesNotAllocate(t *testing.T) {
	f, train := trained()
	x := train[17]
	if n := testing.AllocsPerRun(100, func() { f.Score(x) }); n != 0 {
		t.Errorf("Score allocates %v times", n)
	}
}

func TestScoreConcurrent(t *testing.T) {
	f, train := trained()
	want := f.ScoreAll(train[:200], nil)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i, x := range train[:200] {
				if got := f.Score(x); got != want[i] {
					t.Errorf("concurrent Score(train[%d]) = %v, want %v", i, got, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkScore(b *testing.B) {
	f, train := trained()
	xs := train[:1024]
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f.Score(xs[i&1023])
		i++
	}
}

func BenchmarkExplain(b *testing.B) {
	f, _ := trained()
	x := newPopulation(outlierSeed).spike(fKiBOut)
	b.ReportAllocs()
	for b.Loop() {
		f.Explain(x, 3)
	}
}

func BenchmarkFit10k(b *testing.B) {
	train := newPopulation(trainSeed).benignN(trainSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Fit(train, Config{Seed: forestSeed}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
