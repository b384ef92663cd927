package behaviour

import (
	"fmt"
	"github.com/vigil-project/vigil/detect"
	"math"
	"testing"
	"time"
)

// boundaryFixture is an engine whose one API's model is made ready at once
// from samples a test chooses, so that every threshold is known by hand.
// It never relearns during a test, and its clock is the records' time.
type boundaryFixture struct {
	t       *testing.T
	e       *Engine
	api     *detect.API
	m       *apiModel
	now     time.Time
	attacks []*detect.Attack
	blocked []detect.Entry
}

const (
	attackerIP    = "203.0.113.7"
	attackerToken = "fp:attacker"
)

func newBoundaryFixture(t *testing.T, cfg EngineConfig) *boundaryFixture {
	t.Helper()
	f := &boundaryFixture{t: t, now: t0, api: &detect.API{Name: "shop", BasePath: "/shop", Mode: detect.ModeBlock}}
	cfg.Training = TrainingConfig{RelearnInterval: 24 * time.Hour}
	cfg.APIs = []*detect.API{f.api}
	cfg.Block = func(e detect.Entry) { f.blocked = append(f.blocked, e) }
	cfg.OnAttack = func(a *detect.Attack) { f.attacks = append(f.attacks, a) }
	f.e = NewEngine(cfg)
	f.m = f.e.modelByName("shop")
	return f
}

// learn feeds a variable's training samples: 99 identities showed a, one
// showed b. Tn is then a (the 99th percentile of 100 values is the 99th
// smallest) and the 99.9th percentile is b.
func (f *boundaryFixture) learn(kind detect.Kind, name string, a, b float64) {
	v, ok := varByName(name)
	if !ok {
		f.t.Fatalf("no variable %q", name)
	}
	for range 99 {
		f.m.sample(pop(kind), v, a)
	}
	f.m.sample(pop(kind), v, b)
}

// ready ends training the way traffic does (training needs no time, calls
// or identities here): thresholds are computed from the samples.
func (f *boundaryFixture) ready() {
	f.m.tick(f.now)
	f.m.tick(f.now)
	if !f.m.ready.Load() {
		f.t.Fatal("model not ready")
	}
}

func (f *boundaryFixture) apply(u *ModelUpdate) {
	f.t.Helper()
	if err := f.e.Apply("shop", u); err != nil {
		f.t.Fatal(err)
	}
}

// userTx sets a person's Tn and Tx for a variable and kind.
func (f *boundaryFixture) userTx(kind detect.Kind, name string, tn, tx float64) {
	f.apply(&ModelUpdate{Variables: []VariableUpdate{{Name: name, Kind: kind.String(), Mode: "user", Tn: &tn, Tx: &tx}}})
}

// only disables every attack type but typ.
func (f *boundaryFixture) only(typ detect.AttackType) {
	u := &ModelUpdate{Types: map[detect.AttackType]TypeKnobsUpdate{}}
	off := false
	for _, x := range allTypes() {
		if x != typ {
			u.Types[x] = TypeKnobsUpdate{Enabled: &off}
		}
	}
	f.apply(u)
}

// call sends one call from ip, 100 ms after the previous one.
func (f *boundaryFixture) call(ip string, edit func(*detect.Transaction)) {
	f.now = f.now.Add(100 * time.Millisecond)
	t := &detect.Transaction{API: f.api, Host: "shop.example.com", Method: "GET", Path: "/shop/orders", Status: 200,
		Start: f.now, HasRequest: true, Complete: true, UserAgent: "app/1.0"}
	t.Identities[detect.KindIP] = ip
	if edit != nil {
		edit(t)
	}
	f.e.Consume(t)
}

// Traffic that gives a variable of the attacker exactly the value n.
func notFound(f *boundaryFixture, n int) {
	for range n {
		f.call(attackerIP, func(t *detect.Transaction) { t.Path, t.Status = "/shop/missing", 404 })
	}
}

func distinctNotFound(f *boundaryFixture, n int) {
	for i := range n {
		f.call(attackerIP, func(t *detect.Transaction) { t.Path, t.Status = fmt.Sprintf("/shop/missing-%d", i), 404 })
	}
}

func serverErrors(f *boundaryFixture, n int) {
	for range n {
		f.call(attackerIP, func(t *detect.Transaction) { t.Status = 500 })
	}
}

// errorRatio sends total calls, the last n of them errors, so that the
// ratio only grows to n/total.
func errorRatio(total int) func(*boundaryFixture, int) {
	return func(f *boundaryFixture, n int) {
		for i := range total {
			f.call(attackerIP, func(t *detect.Transaction) {
				if i >= total-n {
					t.Status = 500
				}
			})
		}
	}
}

func loginFailures(f *boundaryFixture, n int) {
	for range n {
		f.call(attackerIP, func(t *detect.Transaction) { t.Method, t.Path, t.Status = "POST", "/shop/login", 401 })
	}
}

func loginUsers(f *boundaryFixture, n int) {
	for i := range n {
		f.call(attackerIP, func(t *detect.Transaction) {
			t.Method, t.Path, t.Status = "POST", "/shop/login", 401
			t.Identities[detect.KindUsername] = fmt.Sprintf("name%d", i)
		})
	}
}

func tokenIPs(f *boundaryFixture, n int) {
	for i := range n {
		f.call(fmt.Sprintf("198.51.100.%d", i), func(t *detect.Transaction) { t.Identities[detect.KindToken] = attackerToken })
	}
}

func tokenAgents(f *boundaryFixture, n int) {
	for i := range n {
		f.call(attackerIP, func(t *detect.Transaction) {
			t.Identities[detect.KindToken] = attackerToken
			t.UserAgent = fmt.Sprintf("agent/%d", i)
		})
	}
}

// responseBytes reads n bytes in ten calls.
func responseBytes(f *boundaryFixture, n int) {
	for range 10 {
		f.call(attackerIP, func(t *detect.Transaction) { t.ResponseBytes = int64(n / 10) })
	}
}

func requests(f *boundaryFixture, n int) {
	for range n {
		f.call(attackerIP, nil)
	}
}

func objects(f *boundaryFixture, n int) {
	for i := range n {
		f.call(attackerIP, func(t *detect.Transaction) { t.Path = fmt.Sprintf("/shop/order/%d", 1000+i) })
	}
}

func deletes(f *boundaryFixture, n int) {
	for i := range n {
		f.call(attackerIP, func(t *detect.Transaction) {
			t.Method, t.Path, t.Status = "DELETE", fmt.Sprintf("/shop/order/%d", 1000+i), 204
		})
	}
}

func requestBytes(f *boundaryFixture, n int) {
	f.call(attackerIP, func(t *detect.Transaction) { t.Method, t.RequestBytes = "POST", int64(n) })
}

func jsonElements(f *boundaryFixture, n int) {
	f.call(attackerIP, func(t *detect.Transaction) { t.Method, t.JSONElements = "PATCH", n })
}

// TestBoundaryOfEveryVariable drives each variable of each behaviour attack
// type to 0.9 × and 1.1 × its threshold, user-set and learned: no attack
// below, one above, explained with the numbers worked out by hand here.
//
// Learned thresholds come from 99 samples of a and one of b (see learn):
// Tn = a; Tx = max(floor, 3a, 1.5b) for window variables, max(floor, 2b)
// for per-request ones. Deviation = (observed − Tn) / Tn in percent.
// Distinct counts are HyperLogLog estimates (standard error 13 %): their
// observed value is checked against the exact count at detection, within
// three standard errors. At ±10 % of Tx their outcome is within that
// error, so the drivers' value names are ones whose (fixed, unseeded)
// hashes estimate 0.9 × Tx below Tx and 1.1 × Tx above it; of eight
// name patterns tried for user names, two did (TestHLLAgainstExactCounts
// bounds the error itself).
func TestBoundaryOfEveryVariable(t *testing.T) {
	type want struct{ observed, tn, tx, dev float64 }
	for _, tc := range []struct {
		typ     detect.AttackType
		name    string
		kind    detect.Kind
		learned []float64 // a, b; nil: user-set tn, tx
		tn, tx  float64   // user-set
		drive   func(*boundaryFixture, int)
		under   int  // 0.9 × Tx
		over    int  // 1.1 × Tx
		want    want // the explanation, at the call that passes Tx
		// distinct: the observed value is an estimate, checked against
		// the exact count at detection (the number of calls so far).
		distinct bool
	}{
		// A count passes Tx on the call that takes it to Tx + 1.
		{detect.AttackExtremeActivity, "requests_per_min", detect.KindIP, nil, 50, 150, requests, 135, 165, want{151, 50, 150, 202}, false},
		// max(100, 3 × 60, 1.5 × 80) = 180; (181 − 60) / 60 = 201.7 %
		{detect.AttackExtremeActivity, "requests_per_min", detect.KindIP, []float64{60, 80}, 0, 0, requests, 162, 198, want{181, 60, 180, 201.7}, false},

		{detect.AttackExcessiveErrors, "errors_10m", detect.KindIP, nil, 20, 100, serverErrors, 90, 110, want{101, 20, 100, 405}, false},
		// max(60, 3 × 30, 1.5 × 80) = 120: the 99.9th percentile decides
		{detect.AttackExcessiveErrors, "errors_10m", detect.KindIP, []float64{30, 80}, 0, 0, serverErrors, 108, 132, want{121, 30, 120, 303.3}, false},
		// 162 and 198 errors of 200 calls (0.81, 0.99), after 38 and 2
		// successes: the ratio passes 0.9 at 19 errors of 21 calls (the
		// first window of 20 calls holds 18): 0.90476, 80.95 % over 0.5.
		{detect.AttackExcessiveErrors, "error_ratio_10m", detect.KindIP, nil, 0.5, 0.9, errorRatio(200), 162, 198, want{0.9, 0.5, 0.9, 81}, false},
		// max(0.8, 3 × 19/64, 1.5 × 0.3) = 57/64 = 0.890625; 513 and 627 errors
		// of 640 calls (0.8016, 0.9797), after 127 and 13 successes: the
		// ratio passes it at 106 errors of 119 calls, 0.890756, which is
		// (0.890756 − 0.296875) / 0.296875 = 200.04 % over Tn.
		{detect.AttackExcessiveErrors, "error_ratio_10m", detect.KindIP, []float64{0.296875, 0.3}, 0, 0, errorRatio(640), 513, 627, want{0.89, 0.3, 0.89, 200}, false},

		{detect.AttackProbing, "not_found_10m", detect.KindIP, nil, 10, 50, notFound, 45, 55, want{51, 10, 50, 410}, false},
		// max(25, 3 × 10, 1.5 × 12) = 30
		{detect.AttackProbing, "not_found_10m", detect.KindIP, []float64{10, 12}, 0, 0, notFound, 27, 33, want{31, 10, 30, 210}, false},
		{detect.AttackProbing, "distinct_failed_paths", detect.KindIP, nil, 10, 100, distinctNotFound, 90, 110, want{0, 10, 100, 0}, true},
		// max(15, 3 × 20, 1.5 × 30) = 60
		{detect.AttackProbing, "distinct_failed_paths", detect.KindIP, []float64{20, 30}, 0, 0, distinctNotFound, 54, 66, want{0, 20, 60, 0}, true},

		{detect.AttackCredentialStuffing, "login_failures_10m", detect.KindIP, nil, 5, 20, loginFailures, 18, 22, want{21, 5, 20, 320}, false},
		// max(12, 3 × 10, 1.5 × 12) = 30
		{detect.AttackCredentialStuffing, "login_failures_10m", detect.KindIP, []float64{10, 12}, 0, 0, loginFailures, 27, 33, want{31, 10, 30, 210}, false},
		{detect.AttackCredentialStuffing, "distinct_login_usernames", detect.KindIP, nil, 2, 20, loginUsers, 18, 22, want{0, 2, 20, 0}, true},
		{detect.AttackCredentialStuffing, "distinct_login_usernames", detect.KindIP, []float64{10, 12}, 0, 0, loginUsers, 27, 33, want{0, 10, 30, 0}, true},

		{detect.AttackStolenToken, "distinct_ips", detect.KindToken, nil, 2, 20, tokenIPs, 18, 22, want{0, 2, 20, 0}, true},
		{detect.AttackStolenToken, "distinct_ips", detect.KindToken, []float64{10, 12}, 0, 0, tokenIPs, 27, 33, want{0, 10, 30, 0}, true},
		{detect.AttackStolenToken, "distinct_user_agents", detect.KindToken, nil, 2, 20, tokenAgents, 18, 22, want{0, 2, 20, 0}, true},
		{detect.AttackStolenToken, "distinct_user_agents", detect.KindToken, []float64{10, 12}, 0, 0, tokenAgents, 27, 33, want{0, 10, 30, 0}, true},

		// Ten reads of a tenth each: Tx is passed by the tenth.
		{detect.AttackDataExfiltration, "response_bytes_10m", detect.KindIP, nil, 1e6, 1e7, responseBytes, 9e6, 11e6, want{11e6, 1e6, 1e7, 1000}, false},
		// max(2 MiB, 3 × 1e6, 1.5 × 1e6) = 3e6
		{detect.AttackDataExfiltration, "response_bytes_10m", detect.KindIP, []float64{1e6, 1e6}, 0, 0, responseBytes, 2.7e6, 3.3e6, want{3.3e6, 1e6, 3e6, 230}, false},

		{detect.AttackBOLAEnumeration, "distinct_object_ids", detect.KindIP, nil, 20, 100, objects, 90, 110, want{0, 20, 100, 0}, true},
		// max(80, 3 × 40, 1.5 × 50) = 120
		{detect.AttackBOLAEnumeration, "distinct_object_ids", detect.KindIP, []float64{40, 50}, 0, 0, objects, 108, 132, want{0, 40, 120, 0}, true},

		{detect.AttackMassDeletion, "deletes_10m", detect.KindIP, nil, 10, 50, deletes, 45, 55, want{51, 10, 50, 410}, false},
		{detect.AttackMassDeletion, "deletes_10m", detect.KindIP, []float64{10, 12}, 0, 0, deletes, 27, 33, want{31, 10, 30, 210}, false},

		// One call each: observed is the call's value.
		{detect.AttackOversizedPayload, "request_bytes", detect.KindIP, nil, 10000, 100000, requestBytes, 90000, 110000, want{110000, 10000, 100000, 1000}, false},
		// max(64 KiB, 2 × 50000) = 100000
		{detect.AttackOversizedPayload, "request_bytes", detect.KindIP, []float64{20000, 50000}, 0, 0, requestBytes, 90000, 110000, want{110000, 20000, 100000, 450}, false},
		{detect.AttackOversizedPayload, "json_elements", detect.KindIP, nil, 50, 500, jsonElements, 450, 550, want{550, 50, 500, 1000}, false},
		// max(200, 2 × 250) = 500
		{detect.AttackOversizedPayload, "json_elements", detect.KindIP, []float64{100, 250}, 0, 0, jsonElements, 450, 550, want{550, 100, 500, 450}, false},
	} {
		source := "user"
		if tc.learned != nil {
			source = "learned"
		}
		for _, side := range []string{"under", "over"} {
			t.Run(fmt.Sprintf("%s/%s/%s/%s", tc.typ, tc.name, source, side), func(t *testing.T) {
				f := newBoundaryFixture(t, EngineConfig{})
				f.only(tc.typ)
				// The other variables of the type stay out of the way.
				v, _ := varByName(tc.name)
				for _, p := range varDefs {
					if p.attack == tc.typ && p.name != tc.name && p.kinds&(1<<tc.kind) != 0 {
						f.userTx(tc.kind, p.name, 0, 1e12)
					}
				}
				if tc.learned != nil {
					f.learn(tc.kind, tc.name, tc.learned[0], tc.learned[1])
				} else {
					f.userTx(tc.kind, tc.name, tc.tn, tc.tx)
				}
				f.ready()
				if th := f.m.thresholds.Load()[tc.kind][v]; th.User != (tc.learned == nil) {
					t.Fatalf("threshold %+v, want user %v", th, tc.learned == nil)
				}
				n := tc.under
				if side == "over" {
					n = tc.over
				}
				tc.drive(f, n)
				if st := f.e.Models()[0]; st.State != "ready" || st.WouldBeDetections != 0 {
					t.Fatalf("model %+v", st)
				}
				if side == "under" {
					if len(f.attacks) != 0 {
						t.Fatalf("%d at 0.9 × Tx raised %+v", n, f.attacks[0])
					}
					return
				}
				if len(f.attacks) != 1 {
					t.Fatalf("%d at 1.1 × Tx raised %d attacks, want 1: %+v", n, len(f.attacks), f.attacks)
				}
				a := f.attacks[0]
				id := attackerIP
				if tc.kind == detect.KindToken {
					id = attackerToken
				}
				if a.Type != tc.typ || a.Identity.Kind != tc.kind.String() || a.Identity.Value != id {
					t.Fatalf("attack %s by %+v, want %s by %s %s", a.Type, a.Identity, tc.typ, tc.kind, id)
				}
				var got *detect.VariableValue
				for i := range a.Variables {
					if a.Variables[i].Name == tc.name {
						got = &a.Variables[i]
					}
				}
				if got == nil {
					t.Fatalf("%s missing from the explanation %+v", tc.name, a.Variables)
				}
				w := tc.want
				if tc.distinct {
					// One new value per call: the exact count at detection
					// is the number of calls since training ended.
					exact := float64(a.DetectedAt.Sub(t0) / (100 * time.Millisecond))
					w.observed = got.Observed
					w.dev = math.Round((got.Observed-w.tn)/w.tn*1000) / 10
					if got.Observed <= w.tx || math.Abs(got.Observed-exact) > 3*0.13*exact {
						t.Fatalf("estimated %v distinct after %v: not past Tx %v, or off by more than 3 standard errors", got.Observed, exact, w.tx)
					}
				}
				slack := 0.1 // the deviation's rounding; an estimate's too
				if tc.distinct {
					slack += 100 * 0.005 / w.tn
				}
				if got.Observed != w.observed || got.Tn != w.tn || got.Tx != w.tx || math.Abs(got.DeviationPct-w.dev) > slack {
					t.Fatalf("explained as %+v, want observed %v, tn %v, tx %v, deviation %v%%", *got, w.observed, w.tn, w.tx, w.dev)
				}
			})
		}
	}
}

// TestSensitivityScalesTxBothWays: the effective Tx is Tx / sensitivity, in
// the check as in the explanation. With a user Tx of 100 on both probing
// variables, 70 distinct 404s pass only half of it (sensitivity 2), and 150
// pass it at sensitivity 1 and 2 but not twice it (0.5).
func TestSensitivityScalesTxBothWays(t *testing.T) {
	for _, tc := range []struct {
		misses int
		sens   float64
		attack bool
		tx     float64 // the explanation's Tx
	}{
		{70, 0.5, false, 0},
		{70, 1, false, 0},
		{70, 2, true, 50},
		{150, 0.5, false, 0},
		{150, 1, true, 100},
		{150, 2, true, 50},
	} {
		t.Run(fmt.Sprintf("%d misses at sensitivity %v", tc.misses, tc.sens), func(t *testing.T) {
			f := newBoundaryFixture(t, EngineConfig{})
			// Every probing variable at Tx 100, so that every one of the
			// explanation shows the scaled Tx.
			for _, p := range varDefs {
				if p.attack == detect.AttackProbing {
					f.userTx(detect.KindIP, p.name, 10, 100)
				}
			}
			s := tc.sens
			f.apply(&ModelUpdate{Types: map[detect.AttackType]TypeKnobsUpdate{detect.AttackProbing: {Sensitivity: &s}}})
			f.ready()
			for i := range tc.misses {
				// One a second: no other type comes near its floor.
				f.now = f.now.Add(900 * time.Millisecond)
				f.call(attackerIP, func(t *detect.Transaction) { t.Path, t.Status = fmt.Sprintf("/shop/missing-%d", i), 404 })
			}
			if !tc.attack {
				if len(f.attacks) != 0 {
					t.Fatalf("attack raised: %+v", f.attacks[0])
				}
				return
			}
			if len(f.attacks) != 1 || f.attacks[0].Type != detect.AttackProbing {
				t.Fatalf("attacks %+v, want one probing", f.attacks)
			}
			for _, v := range f.attacks[0].Variables {
				if v.Tx != tc.tx {
					t.Fatalf("%s explained with Tx %v, want %v", v.Name, v.Tx, tc.tx)
				}
			}
		})
	}
}

// TestSingleCallDetectionsNeedRepetitionToBlock: one oversized call is
// statistical evidence about that call, not proof about the client. A
// 250-element JSON PATCH past a learned json_elements Tx of 200 is
// recorded (action detected) without blocking the token; the third within
// block_window blocks it; three spread wider than the window never do.
func TestSingleCallDetectionsNeedRepetitionToBlock(t *testing.T) {
	patch := func(f *boundaryFixture) {
		f.call("198.51.100.31", func(t *detect.Transaction) {
			t.Method, t.Path, t.JSONElements = "PATCH", "/shop/order/31", 250
			t.Identities[detect.KindToken] = "fp:user31"
		})
	}
	for _, tc := range []struct {
		name    string
		cfg     EngineConfig
		mode    detect.Mode
		gaps    []time.Duration // before each call after the first
		actions []string
	}{
		{"default: 3 within 10m", EngineConfig{}, detect.ModeBlock, []time.Duration{2 * time.Minute, 2 * time.Minute},
			[]string{detect.ActionDetected, detect.ActionDetected, detect.ActionBlocked}},
		{"spread wider than the window", EngineConfig{}, detect.ModeBlock, []time.Duration{6 * time.Minute, 6 * time.Minute, 6 * time.Minute},
			[]string{detect.ActionDetected, detect.ActionDetected, detect.ActionDetected, detect.ActionDetected}},
		{"detect mode", EngineConfig{}, detect.ModeDetect, []time.Duration{time.Minute, time.Minute},
			[]string{detect.ActionDetected, detect.ActionDetected, detect.ActionWouldBlock}},
		{"block_after 2 within 1m", EngineConfig{BlockAfter: 2, BlockWindow: time.Minute}, detect.ModeBlock, []time.Duration{2 * time.Minute, 30 * time.Second},
			[]string{detect.ActionDetected, detect.ActionDetected, detect.ActionBlocked}},
		{"block_after 1: every detection", EngineConfig{BlockAfter: 1}, detect.ModeBlock, nil, []string{detect.ActionBlocked}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newBoundaryFixture(t, tc.cfg)
			f.api.Mode = tc.mode
			f.learn(detect.KindToken, "json_elements", 0, 0) // normal 0: Tx is the floor, 200
			f.ready()
			patch(f)
			for _, gap := range tc.gaps {
				f.now = f.now.Add(gap)
				patch(f)
			}
			if len(f.attacks) != len(tc.actions) {
				t.Fatalf("%d attacks for %d oversized calls: %+v", len(f.attacks), len(tc.actions), f.attacks)
			}
			for i, a := range f.attacks {
				if a.Type != detect.AttackOversizedPayload || a.Identity.Value != "fp:user31" || a.Action != tc.actions[i] {
					t.Fatalf("attack %d: %s by %s, action %s; want oversized_payload by the token, %s", i, a.Type, a.Identity.Value, a.Action, tc.actions[i])
				}
				if v := a.Variables[1]; v.Name != "json_elements" || v.Observed != 250 || v.Tn != 0 || v.Tx != 200 {
					t.Fatalf("explained %+v", a.Variables)
				}
				if stored, ok := f.e.Store().Get(a.ID); !ok || stored != a {
					t.Fatalf("attack %d not recorded", i)
				}
				if (a.BlockedUntil != nil) != (a.Action == detect.ActionBlocked) {
					t.Fatalf("attack %d: action %s, blocked until %v", i, a.Action, a.BlockedUntil)
				}
			}
			last := f.attacks[len(f.attacks)-1]
			if wantBlock := last.Action == detect.ActionBlocked; wantBlock {
				if len(f.blocked) != 1 || f.blocked[0].Value != "fp:user31" || f.blocked[0].AttackID != last.ID {
					t.Fatalf("block list entries %+v", f.blocked)
				}
				if last.Repeat != 0 || !last.BlockedUntil.Equal(last.DetectedAt.Add(time.Hour)) {
					t.Fatalf("the first block lasts block_ttl (1h): repeat %d, until %s", last.Repeat, last.BlockedUntil)
				}
			} else if len(f.blocked) != 0 {
				t.Fatalf("blocked on %d oversized calls: %+v", len(f.attacks), f.blocked)
			}
		})
	}
}

// TestRelaxHonoursSensitivity: a false positive relaxes the fired variables
// so that the same behaviour no longer raises an attack. The explanation's Tx
// is the effective one (Tx / sensitivity), so at sensitivity 2 the user Tx
// stored must be 1.5 × observed × 2, or the relaxed limit would sit below
// what was observed and the same behaviour would fire again.
func TestRelaxHonoursSensitivity(t *testing.T) {
	f := newBoundaryFixture(t, EngineConfig{})
	f.userTx(detect.KindIP, "not_found_10m", 10, 100)
	f.userTx(detect.KindIP, "distinct_failed_paths", 10, 10000) // only the count fires
	s := 2.0
	f.apply(&ModelUpdate{Types: map[detect.AttackType]TypeKnobsUpdate{detect.AttackProbing: {Sensitivity: &s}}})
	f.ready()
	miss := func(ip string, n int) {
		for i := range n {
			f.now = f.now.Add(900 * time.Millisecond)
			f.call(ip, func(t *detect.Transaction) { t.Path, t.Status = fmt.Sprintf("/shop/missing-%d", i), 404 })
		}
	}
	miss(attackerIP, 60) // the 51st miss passes the effective Tx of 50
	if len(f.attacks) != 1 || f.attacks[0].Type != detect.AttackProbing {
		t.Fatalf("attacks %+v, want one probing", f.attacks)
	}
	rel, err := f.e.Relax(f.attacks[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(rel) == 0 {
		t.Fatal("nothing relaxed")
	}
	for _, r := range rel {
		// Observed 51 misses (the call that crossed): 51 × 1.5 × 2 = 153
		// stored, an effective limit of 76.5.
		if r.Name != "not_found_10m" || r.OldTx != 50 || r.NewTx != 153 {
			t.Fatalf("relaxed %s %v → %v, want not_found_10m 50 → 153", r.Name, r.OldTx, r.NewTx)
		}
	}
	miss("203.0.113.8", 60) // the same behaviour from another client
	if len(f.attacks) != 1 {
		t.Fatalf("the relaxed behaviour raised again: %+v", f.attacks[1])
	}
}
