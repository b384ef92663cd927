package behaviour

import (
	"github.com/vigil-project/vigil/detect"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/vigil-project/vigil/detect/behaviour/anomaly"
)

// The multivariate model: per API and identity kind, an Isolation Forest
// over the identities' window vectors (every window variable that applies
// to the kind), fitted on the same once-a-minute samples as the thresholds.
// It raises anomalous_behaviour for a combination no single threshold
// catches: a vector more isolated than any seen in training, with at least
// two variables above their normal (Tn). The variables that contributed
// most explain it, and the one furthest on its way to its own limit names
// it when it is past half way: an ID walker the forest isolates at 68
// distinct objects (limit 80) is bola_enumeration seen early, not an
// unnamed anomaly.

const (
	mvReservoir  = 4096 // vectors kept per kind
	mvMinVectors = 512  // vectors needed before a forest is fitted
	mvMinAbove   = 2    // variables above Tn an anomaly needs
	// mvNameAt is how far from its normal (Tn) to its limit a variable of
	// the explanation must be for its attack type to name the anomaly.
	mvNameAt = 0.5
)

type mvModel struct {
	features []varID
	vecs     [][]float64
	seen     int64
	fitted   *mvFitted
}

type mvFitted struct {
	forest    *anomaly.Forest
	threshold float64
}

// kindVars lists, per kind, the window variables that apply to it, and
// forestVars those of them the forest uses (all but the slow ones), in the
// same order.
var kindVars, forestVars = func() (all, forest [numPops][]varID) {
	for k := range pop(numPops) {
		for v := range numVars {
			if applies(v, k) && !varDefs[v].perRequest {
				all[k] = append(all[k], varID(v))
				if !varDefs[v].slow {
					forest[k] = append(forest[k], varID(v))
				}
			}
		}
	}
	return all, forest
}()

// windowVars lists the variables of the multivariate model's vectors.
func windowVars(kind pop) []varID { return forestVars[kind] }

// sampleVector records an identity's window vector (a copy, when its
// reservoir keeps it: vec may be the caller's buffer). Call with m.mu held.
func (m *apiModel) sampleVector(kind pop, vec []float64) {
	mv := m.mv[kind]
	if mv == nil {
		mv = &mvModel{features: windowVars(kind)}
		m.mv[kind] = mv
	}
	mv.seen++
	if len(mv.vecs) < mvReservoir {
		mv.vecs = append(mv.vecs, slices.Clone(vec))
		return
	}
	m.rng ^= m.rng << 13
	m.rng ^= m.rng >> 7
	m.rng ^= m.rng << 17
	if j := m.rng % uint64(mv.seen); j < mvReservoir {
		mv.vecs[j] = slices.Clone(vec)
	}
}

// fitForests refits every kind's forest from its vectors, with a seed
// fixed by the API's name so that replay is repeatable. The threshold is
// the highest score of a training vector. Call with m.mu held.
func (m *apiModel) fitForests() {
	for k := range numPops {
		mv := m.mv[k]
		if mv == nil || len(mv.vecs) < mvMinVectors || pop(k).addressJudged() {
			// A shared address's or a network's window adds up
			// unrelated clients: what is joint in it is no one
			// client's behaviour, and it is judged by its population's
			// thresholds alone.
			continue
		}
		names := make([]string, len(mv.features))
		for i, v := range mv.features {
			names[i] = varDefs[v].name
		}
		seed := hashString(m.name) + uint64(k)
		f, err := anomaly.Fit(mv.vecs, anomaly.Config{Seed: seed, Features: names}, rand.New(rand.NewPCG(seed, 7)))
		if err != nil {
			continue
		}
		thr := 0.0
		for _, s := range f.ScoreAll(mv.vecs, nil) {
			thr = math.Max(thr, s)
		}
		mv.fitted = &mvFitted{forest: f, threshold: thr}
	}
	fitted := [numPops]*mvFitted{}
	for k := range numPops {
		if m.mv[k] != nil {
			fitted[k] = m.mv[k].fitted
		}
	}
	m.forests.Store(&fitted)
}

// anomalousType is anomalous_behaviour's index among the knobs.
var anomalousType = typeIndex(detect.AttackAnomalous)

// anomalous scores an identity's window vector. For an anomaly it returns
// the attack type that names it and the variables that explain it; nil
// variables otherwise.
func (m *apiModel) anomalous(kind pop, vec []float64, ts *thresholdSet) (detect.AttackType, []detect.VariableValue) {
	fs := m.forests.Load()
	if fs == nil || fs[kind] == nil {
		return "", nil
	}
	fit := fs[kind]
	feats := windowVars(kind)
	above := 0
	for i, v := range feats {
		if tn := ts[kind][v].Tn; vec[i] > tn && vec[i] >= varDefs[v].floor/2 {
			above++
		}
	}
	if above < mvMinAbove {
		return "", nil
	}
	// The type's sensitivity scales the score threshold as it scales every
	// other Tx: threshold / sensitivity (> 1 detects more).
	knobs := m.knobsSnap.Load()
	thr := fit.threshold
	if knobs != nil && knobs[anomalousType].Sensitivity > 0 {
		thr /= knobs[anomalousType].Sensitivity
	}
	score := fit.forest.Score(vec)
	if score <= thr {
		return "", nil
	}
	typ, best := detect.AttackAnomalous, mvNameAt
	var out []detect.VariableValue
	for _, c := range fit.forest.Explain(vec, 3) {
		v, x := feats[c.Feature], vec[c.Feature]
		th := ts[kind][v]
		dev := deviation(v, x, th.Tn)
		limit := th.Tx
		if knobs != nil {
			limit = extreme(ts, knobs, kind, v)
		}
		limit = max(limit, varDefs[v].floor)
		if way := (x - th.Tn) / (limit - th.Tn); limit > th.Tn && way >= best && (knobs == nil || knobs[varType[v]].Enabled) {
			typ, best = varDefs[v].attack, way
		}
		out = append(out, detect.VariableValue{Name: varDefs[v].name, Observed: round(x), Tn: round(th.Tn), Tx: round(limit), DeviationPct: dev})
	}
	out = append(out, detect.VariableValue{Name: "isolation_score", Observed: round(score*1000) / 1000, Tn: 0.5, Tx: round(thr*1000) / 1000,
		DeviationPct: math.Round((score-thr)/thr*1000) / 10})
	return typ, out
}
