package behaviour

import (
	"fmt"
	"github.com/vigil-project/vigil/detect"
	"testing"
	"time"
)

// TestComputeThresholds checks threshold learning on small fixed samples
// against quantiles and floors worked out by hand. Quantiles are nearest
// rank: the q-quantile of n sorted values is the ⌈q·n⌉-th.
func TestComputeThresholds(t *testing.T) {
	seq := func(from, to, step float64) (out []float64) {
		for x := from; x <= to; x += step {
			out = append(out, x)
		}
		return out
	}
	rep := func(x float64, n int) (out []float64) {
		for range n {
			out = append(out, x)
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		v       string
		samples []float64
		base    *UserThreshold // imported
		user    *UserThreshold
		tn, tx  float64
	}{
		// No samples, or fewer than 30: half and twice the floor (25).
		{"no samples", "not_found_10m", nil, nil, nil, 12.5, 50},
		{"29 samples", "not_found_10m", seq(1, 29, 1), nil, nil, 12.5, 50},
		// 1..40: the 99th percentile is the ⌈39.6⌉ = 40th, so is the
		// 99.9th; Tx = max(25, 3 × 40, 1.5 × 40) = 120.
		{"40 samples", "not_found_10m", seq(1, 40, 1), nil, nil, 40, 120},
		// 1..200: 99th = the 198th = 198, 99.9th = the ⌈199.8⌉ = 200th;
		// Tx = max(25, 594, 300).
		{"200 samples", "not_found_10m", seq(1, 200, 1), nil, nil, 198, 594},
		// All 2: Tx = max(25, 6, 3): the floor.
		{"floor", "not_found_10m", rep(2, 100), nil, nil, 2, 25},
		// 990 ones and ten 100s: 99th = the 990th = 1, 99.9th = the 999th
		// = 100; Tx = max(25, 3, 150).
		{"tail", "not_found_10m", append(rep(1, 990), rep(100, 10)...), nil, nil, 1, 150},
		// Per request: Tx = max(floor, 2 × the largest). 10, 20 … 300:
		// 99th = the ⌈29.7⌉ = 30th = 300; Tx = max(200, 600).
		{"per request", "json_elements", seq(10, 300, 10), nil, nil, 300, 600},
		{"per request floor", "json_elements", rep(50, 30), nil, nil, 50, 200},
		// Imported thresholds stand until 1,000 samples of this deployment.
		{"imported, 999 samples", "not_found_10m", rep(2, 999), &UserThreshold{Tn: 7, Tx: 70}, nil, 7, 70},
		{"imported, 1000 samples", "not_found_10m", rep(2, 1000), &UserThreshold{Tn: 7, Tx: 70}, nil, 2, 25},
		// A person's values win over everything.
		{"user", "not_found_10m", seq(1, 200, 1), &UserThreshold{Tn: 7, Tx: 70}, &UserThreshold{Tn: 3, Tx: 9}, 3, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newAPIModel("shop", nil, TrainingConfig{})
			v, _ := varByName(tc.v)
			for _, x := range tc.samples {
				m.sample(pop(detect.KindIP), v, x)
			}
			if tc.base != nil {
				m.base = map[userKey]UserThreshold{{pop(detect.KindIP), v, ""}: *tc.base}
			}
			if tc.user != nil {
				m.user[userKey{pop(detect.KindIP), v, ""}] = *tc.user
			}
			ts := m.compute()
			if got := ts[detect.KindIP][v]; got.Tn != tc.tn || got.Tx != tc.tx || got.User != (tc.user != nil) {
				t.Fatalf("ip %s: %+v, want tn %v tx %v", tc.v, got, tc.tn, tc.tx)
			}
			// Each kind learns on its own: tokens keep the defaults.
			if got := ts[detect.KindToken][v]; got.Tn != varDefs[v].floor/2 || got.Tx != 2*varDefs[v].floor {
				t.Fatalf("token %s learned from ip samples: %+v", tc.v, got)
			}
		})
	}
}

// A reservoir past its size keeps a uniform sample: the 99th percentile
// of 1..20,000 (fed in a scrambled order) is learned near 19,800.
func TestComputeFromAFullReservoir(t *testing.T) {
	m := newAPIModel("shop", nil, TrainingConfig{})
	const n = 20000
	for i := range n {
		m.sample(pop(detect.KindIP), vFailedRequests, float64(1+(i*7919)%n))
	}
	got := m.compute()[detect.KindIP][vFailedRequests]
	// A 1,024-value sample's 99th percentile has a standard error of
	// √(0.99 × 0.01 / 1024) × 20,000 ≈ 62: within 250 of 19,800.
	if got.Tn < 19800-250 || got.Tn > 19800+250 || got.Tx < 3*got.Tn {
		t.Fatalf("learned %+v from 1..%d, want tn near 19800 and tx ≥ 3 tn", got, n)
	}
}

// TestOwnBaseline: what an identity itself did while its API learned is
// normal for it. A batch job that deleted 40 objects in a minute during
// training is flagged only past 1.5 × 40 = 60 deletes after it, while a
// client with no such history is flagged past Tx (30).
func TestOwnBaseline(t *testing.T) {
	f := newBoundaryFixture(t, EngineConfig{})
	f.e.cfg.Training = TrainingConfig{Duration: 15 * time.Minute, RelearnInterval: 24 * time.Hour}
	f.m.cfg = f.e.cfg.Training
	f.userTx(detect.KindIP, "deletes_10m", 5, 30)
	del := func(ip string, n int) {
		for i := range n {
			f.call(ip, func(t *detect.Transaction) {
				t.Method, t.Path, t.Status = "DELETE", fmt.Sprintf("/shop/order/%d", i), 204
			})
		}
	}
	const batch, fresh = "10.0.0.5", "10.0.0.6"
	del(batch, 40)
	// Its next call, a minute on, samples its windows: 40 deletes.
	f.now = f.now.Add(time.Minute)
	f.call(batch, nil)
	if f.m.ready.Load() {
		t.Fatal("ready too soon")
	}
	// Training ends; ten minutes later the windows are empty again.
	f.now = f.now.Add(15 * time.Minute)
	f.call("10.0.0.9", nil)
	if !f.m.ready.Load() {
		t.Fatal("not ready after training")
	}
	if st := f.e.shards[0].get(stateKey{f.m, detect.KindIP, batch}); st == nil || st.ownMax() == nil || st.ownMax()[vDeletes] != 40 {
		t.Fatalf("batch job's own maximum not kept: %+v", st)
	}
	del(batch, 60)
	if len(f.attacks) != 0 {
		t.Fatalf("the batch job flagged at its own 1.5 × baseline: %+v", f.attacks[0])
	}
	del(batch, 1)
	if len(f.attacks) != 1 || f.attacks[0].Identity.Value != batch || f.attacks[0].Type != detect.AttackMassDeletion {
		t.Fatalf("61 deletes by the batch job: %+v", f.attacks)
	}
	del(fresh, 31)
	if len(f.attacks) != 2 || f.attacks[1].Identity.Value != fresh {
		t.Fatalf("31 deletes by a client without history: %+v", f.attacks)
	}
}
