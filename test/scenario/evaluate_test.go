package scenario

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func ip(v string) Identity    { return Identity{KindIP, v} }
func token(v string) Identity { return Identity{KindToken, v} }

// handScenario has two probing attackers (one fast, one slow), two fast
// stolen-token attackers and four benign identities.
func handScenario() *Scenario {
	return &Scenario{
		Config: Config{Types: []string{TypeProbing, TypeStolenToken}},
		Attackers: []Attacker{
			{Type: TypeProbing, Identity: ip("45.0.0.1"), Start: at(0), Speed: SpeedFast, Uses: []Identity{ip("45.0.0.1")}},
			{Type: TypeProbing, Identity: ip("45.0.0.2"), Start: at(10 * time.Minute), Speed: SpeedSlow, Uses: []Identity{ip("45.0.0.2")}},
			{Type: TypeStolenToken, Identity: token("tokA"), Start: at(0), Speed: SpeedFast, Uses: []Identity{ip("45.0.0.3"), token("tokA")}},
			{Type: TypeStolenToken, Identity: token("tokB"), Start: at(0), Speed: SpeedFast, Uses: []Identity{token("tokB")}},
		},
		Benign: []Identity{ip("100.64.0.1"), ip("100.64.0.2"), token("tokC"), {KindUsername, "alice"}},
	}
}

// fakeFP stands for the engine's keyed fingerprint.
func fakeFP(raw string) string { return "fp:" + strings.ToUpper(raw) }

func handAttacks() []Attack {
	return []Attack{
		{TypeProbing, KindIP, "45.0.0.1", at(30 * time.Second)},
		{TypeExcessiveErrors, KindIP, "45.0.0.1", at(10 * time.Second)}, // first, of another type
		{TypeProbing, KindIP, "45.0.0.2", at(5 * time.Minute)},          // before its start
		{"anomalous_behaviour", KindIP, "45.0.0.2", at(12 * time.Minute)},
		{TypeStolenToken, KindToken, "fp:TOKA", at(20 * time.Second)},
		{TypeStolenToken, KindToken, "tokB", at(20 * time.Second)}, // not a fingerprint: unknown
		{TypeCredentialStuffing, KindIP, "100.64.0.1", at(time.Minute)},
		{TypeStolenToken, KindToken, "fp:TOKC", at(time.Minute)},
		{TypeDataExfiltration, KindToken, "fp:TOKC", at(2 * time.Minute)}, // flagged once
		{TypeStolenToken, KindIP, "45.0.0.3", at(time.Minute)},            // an attacker's other identity
	}
}

func TestEvaluate(t *testing.T) {
	rep := Evaluate(handScenario(), handAttacks(), fakeFP)

	if len(rep.Types) != 2 || rep.Types[0].Type != TypeProbing || rep.Types[1].Type != TypeStolenToken {
		t.Fatalf("types %+v", rep.Types)
	}
	p, st := rep.Types[0], rep.Types[1]
	check := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("probing attackers", p.Attackers, 2)
	check("probing detected", p.Detected, 2)
	check("probing recall", p.Recall, 1.0)
	check("probing type correct", p.TypeCorrectRatio, 0.5)
	check("probing median TTD", p.MedianTTD, 65*time.Second) // 10 s and 2 min
	check("probing fast", p.FastDetected, 1)
	check("probing median TTD fast", p.MedianTTDFast, 10*time.Second)
	if len(p.WrongType) != 1 || !strings.Contains(p.WrongType[0], "anomalous_behaviour") || !strings.Contains(p.WrongType[0], "45.0.0.2") {
		t.Errorf("probing wrong type %q", p.WrongType)
	}

	check("stolen attackers", st.Attackers, 2)
	check("stolen detected", st.Detected, 1)
	check("stolen recall", st.Recall, 0.5)
	check("stolen type correct", st.TypeCorrectRatio, 1.0)
	check("stolen median TTD", st.MedianTTD, 20*time.Second)
	if len(st.Missed) != 1 || strings.Contains(st.Missed[0], "tokB") {
		t.Errorf("stolen missed %q: want one, credential redacted", st.Missed)
	}

	o := rep.Overall
	check("overall attackers", o.Attackers, 4)
	check("overall detected", o.Detected, 3)
	check("overall recall", o.Recall, 0.75)
	check("overall median TTD", o.MedianTTD, 20*time.Second) // 10 s, 20 s, 2 min
	check("overall fast", o.FastAttackers, 3)

	b := rep.Benign
	check("benign identities", b.Identities, 4)
	check("benign flagged", b.Flagged, 2)
	check("benign rate", b.Rate, 0.5)
	wantKinds := []KindReport{{KindIP, 2, 1}, {KindToken, 1, 1}, {KindUsername, 1, 0}}
	if !slices.Equal(b.ByKind, wantKinds) {
		t.Errorf("by kind %+v, want %+v", b.ByKind, wantKinds)
	}
	if len(b.Examples) != 2 || !slices.Contains(b.Examples, "token fp:TOKC: stolen_token,data_exfiltration") {
		t.Errorf("examples %q", b.Examples)
	}

	check("attacks", rep.Attacks, 10)
	check("early", rep.Early, 1)
	check("secondary", rep.Secondary, 1)
	check("unknown", rep.Unknown, 1)

	short := strings.Join(rep.Shortfalls(), "\n")
	for _, want := range []string{"stolen_token: recall 0.500", "probing: right type for 0.500", "benign identities flagged 50.0000%"} {
		if !strings.Contains(short, want) {
			t.Errorf("shortfalls %q lack %q", short, want)
		}
	}
}

func TestEvaluateWithoutFingerprint(t *testing.T) {
	rep := Evaluate(handScenario(), []Attack{{TypeStolenToken, KindToken, "tokB", at(time.Second)}}, nil)
	if rep.Types[1].Detected != 1 || rep.Unknown != 0 {
		t.Errorf("raw comparison: %+v", rep.Types[1])
	}
}

func TestEvaluateNothing(t *testing.T) {
	rep := Evaluate(handScenario(), nil, fakeFP)
	if rep.Overall.Detected != 0 || rep.Overall.Recall != 0 || rep.Overall.MedianTTD != 0 || rep.Benign.Flagged != 0 {
		t.Errorf("no attacks: %+v", rep)
	}
	if !strings.Contains(rep.Table(), "-") {
		t.Errorf("no time to detect should show as -:\n%s", rep.Table())
	}
}

func TestReportTableAndJSON(t *testing.T) {
	rep := Evaluate(handScenario(), handAttacks(), fakeFP)
	tab := rep.Table()
	lines := strings.Split(tab, "\n")
	if !strings.HasPrefix(lines[0], "type ") || !strings.Contains(lines[0], "median TTD fast") {
		t.Errorf("header %q", lines[0])
	}
	for i, want := range []string{"probing", "stolen_token", "overall"} {
		if !strings.HasPrefix(lines[i+1], want+" ") || len(lines[i+1]) != len(lines[0]) {
			t.Errorf("line %d %q: want %q aligned with the header", i+1, lines[i+1], want)
		}
	}
	if !strings.Contains(tab, "1m5s") || !strings.Contains(tab, "benign identities flagged: 2 of 4 (50.000%)  [ip 1/2, token 1/1, username 0/1]") {
		t.Errorf("table:\n%s", tab)
	}

	raw, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Types []struct {
			Type             string  `json:"type"`
			Recall           float64 `json:"recall"`
			TypeCorrectRatio float64 `json:"type_correct_ratio"`
			MedianTTD        float64 `json:"median_ttd"`
			MedianTTDFast    float64 `json:"median_ttd_fast"`
		} `json:"types"`
		Benign struct {
			Rate float64 `json:"rate"`
		} `json:"benign"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if p := got.Types[0]; p.Type != TypeProbing || p.MedianTTD != 65 || p.MedianTTDFast != 10 || p.TypeCorrectRatio != 0.5 || got.Benign.Rate != 0.5 {
		t.Errorf("JSON %s", raw)
	}
}

func TestReadAttacks(t *testing.T) {
	in := `{"id":"a1","type":"probing","api":"shop","identity":{"kind":"ip","value":"45.0.0.1"},"first_seen":"2026-11-27T10:00:00Z","detected_at":"2026-11-27T10:00:30.5Z","variables":[{"name":"distinct_404","observed":40,"tn":5,"tx":12,"deviation_pct":233}],"client_ips":["45.0.0.1"],"action":"blocked"}

{"id":"a2","type":"stolen_token","identity":{"kind":"token","value":"fp:TOKA"},"detected_at":"2026-11-27T10:00:20Z"}
`
	got, err := ReadAttacks(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Attack{
		{TypeProbing, KindIP, "45.0.0.1", at(30*time.Second + 500*time.Millisecond)},
		{TypeStolenToken, KindToken, "fp:TOKA", at(20 * time.Second)},
	}
	if !slices.EqualFunc(got, want, func(a, b Attack) bool {
		return a.Type == b.Type && a.Kind == b.Kind && a.Value == b.Value && a.DetectedAt.Equal(b.DetectedAt)
	}) {
		t.Errorf("got %+v", got)
	}
	for _, bad := range []string{"{\"type\":\"probing\"}\nnot json", "{}\n{\"type\":\"probing\"}"} {
		if _, err := ReadAttacks(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 2") && !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: err %v, want one naming the line", bad, err)
		}
	}
}

// TestEvaluateOracle scores an engine that names every attacker, with its
// type, a second after its start, through the real fingerprinter: every
// goal is met and no benign identity is flagged.
func TestEvaluateOracle(t *testing.T) {
	s := Generate(tinyConfig(5))
	fp, err := detect.NewFingerprinter(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	var attacks []Attack
	for _, a := range s.Attackers {
		v := a.Identity.Raw
		if a.Identity.Kind != KindIP && a.Identity.Kind != KindUsername {
			v = fp.Fingerprint(v)
		}
		attacks = append(attacks, Attack{a.Type, a.Identity.Kind, v, a.Start.Add(time.Second)})
	}
	rep := Evaluate(s, attacks, fp.Fingerprint)
	if short := rep.Shortfalls(); len(short) > 0 || rep.Overall.Recall != 1 || rep.Overall.MedianTTD != time.Second || rep.Unknown != 0 {
		t.Errorf("oracle: %v\n%s", short, rep.Table())
	}
	if len(rep.Types) != len(AttackTypes()) {
		t.Errorf("%d types reported", len(rep.Types))
	}
}

// TestLimitsExceeded: each limit is checked against the hand-computed
// report of handScenario, and none is reported when the report is inside.
func TestLimitsExceeded(t *testing.T) {
	s := handScenario()
	s.Attackers[0].Variant, s.Attackers[1].Variant = "scanner", "scanner"
	s.Attackers[2].Variant, s.Attackers[3].Variant = "replay", "replay"
	rep := Evaluate(s, handAttacks(), fakeFP)
	counts := func(v VariantReport) VariantReport {
		return VariantReport{Speed: v.Speed, Variant: v.Variant, Attackers: v.Attackers, Detected: v.Detected, TypeCorrect: v.TypeCorrect}
	}
	if v := rep.Types[1].Variants; len(v) != 1 || counts(v[0]) != (VariantReport{Speed: SpeedFast, Variant: "replay", Attackers: 2, Detected: 1, TypeCorrect: 1}) {
		t.Fatalf("stolen_token variants %+v, want fast replay 2 attackers, 1 detected, 1 of its type", v)
	}
	if v := rep.Types[0].Variants; len(v) != 2 || counts(v[1]) != (VariantReport{Speed: SpeedSlow, Variant: "scanner", Attackers: 1, Detected: 1, TypeCorrect: 0}) {
		t.Fatalf("probing variants %+v, want fast and slow scanner, the slow one detected as another type", v)
	}
	strict := Limits{
		MaxBenignFlagged: 0.49, MinVariantRecall: 1, MinTypeCorrect: 0.6,
		MaxMedianTTD:     map[string]time.Duration{TypeProbing: 64 * time.Second},
		MaxMedianTTDFast: map[string]time.Duration{TypeStolenToken: 19 * time.Second},
	}
	got := strings.Join(rep.Exceeded(strict), "\n")
	for _, want := range []string{
		"stolen_token (fast replay): 1 of 2 attackers detected, recall 0.500 < 1.000",
		"probing: right type for 0.500 of the detected < 0.600",
		"probing: median time to detect 1m5s > 1m4s",
		"stolen_token: median time to detect fast attackers 20s > 19s",
		"benign identities flagged: 2 of 4 (50.0000%) > 49.0000%",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("exceeded %q lacks %q", got, want)
		}
	}
	if n := len(rep.Exceeded(strict)); n != 5 {
		t.Errorf("%d limits exceeded, want 5:\n%s", n, got)
	}
	loose := Limits{MaxBenignFlagged: 0.5, MinVariantRecall: 0.5, MinTypeCorrect: 0.5,
		MaxMedianTTD: map[string]time.Duration{TypeProbing: 65 * time.Second}, MaxMedianTTDFast: map[string]time.Duration{TypeStolenToken: 20 * time.Second}}
	if out := rep.Exceeded(loose); len(out) != 0 {
		t.Errorf("limits exactly met reported as exceeded: %q", out)
	}
}

// TestEvaluateStealth scores a hand-made stealth scenario: a distributed
// attacker named by one of its members, requests counted to the first
// detection, per-variant times, populations of the flagged, and the
// issue's goals.
func TestEvaluateStealth(t *testing.T) {
	scan := make([]time.Time, 60)
	for i := range scan {
		scan[i] = at(time.Duration(2*i) * time.Second)
	}
	s := &Scenario{
		Config: Config{Types: []string{TypeProbing, TypeCredentialStuffing}},
		Attackers: []Attacker{
			{Type: TypeProbing, Identity: ip("45.0.0.1"), Start: at(0), Speed: SpeedStealth, Variant: "small_scanner", Times: scan, Uses: []Identity{ip("45.0.0.1")}},
			{Type: TypeCredentialStuffing, Identity: ip("91.240.1.0/24"), Members: []Identity{ip("91.240.2.0/24"), ip("91.240.2.7")}, Start: at(0), Speed: SpeedStealth,
				Variant: "distributed_stuffing", HeldOut: true, Times: []time.Time{at(0), at(time.Minute), at(2 * time.Minute)}, Uses: []Identity{ip("91.240.2.7")}},
		},
		Benign:     []Identity{ip("34.64.0.1"), ip("34.64.0.2"), ip("100.64.0.1"), token("tokC")},
		Population: []string{PopNAT, PopCrawler, PopUser, PopUser},
	}
	attacks := []Attack{
		{TypeProbing, KindIP, "45.0.0.1", at(100 * time.Second)}, // its 51st request was at 100 s
		{TypeCredentialStuffing, KindIP, "91.240.2.7", at(90 * time.Second)},
		{TypeExtremeActivity, KindIP, "34.64.0.1", at(time.Minute)},
	}
	rep := Evaluate(s, attacks, fakeFP)
	scanner, stuffing := rep.Types[0].Variants[0], rep.Types[1].Variants[0]
	if scanner.MedianRequests != 51 || scanner.MaxRequests != 51 || scanner.MaxTTD != 100*time.Second {
		t.Errorf("scanner %+v: want 51 requests, 100 s", scanner)
	}
	if stuffing.Detected != 1 || !stuffing.HeldOut || stuffing.MedianRequests != 2 || stuffing.MedianTTD != 90*time.Second {
		t.Errorf("distributed stuffing %+v: want detected through a member after 2 requests, 90 s, held out", stuffing)
	}
	wantPops := []PopulationReport{{PopCrawler, 1, 0}, {PopNAT, 1, 1}, {PopUser, 2, 0}}
	if !slices.Equal(rep.Benign.ByPopulation, wantPops) || !slices.Equal(rep.Benign.FlaggedList, []string{"nat ip 34.64.0.1: extreme_activity"}) {
		t.Errorf("by population %+v, flagged %q", rep.Benign.ByPopulation, rep.Benign.FlaggedList)
	}
	missed := strings.Join(rep.MissedGoals(StealthGoals), "\n")
	for _, want := range []string{
		"probing (stealth small_scanner): 1 of 1 detected, the last after 51 requests (goal: every one within its first 50)",
		"benign identities flagged: 1 of 4 (25.0000%) > 0.10% (nat ip 34.64.0.1: extreme_activity)",
	} {
		if !strings.Contains(missed, want) {
			t.Errorf("missed goals %q lack %q", missed, want)
		}
	}
	if n := len(rep.MissedGoals(StealthGoals)); n != 2 {
		t.Errorf("%d goals missed, want 2:\n%s", n, missed)
	}
	tab := rep.Table()
	for _, want := range []string{"by population: crawler 0/1, nat 1/1, user 0/2", "  flagged nat ip 34.64.0.1: extreme_activity", "credential_stuffing/stealth/distributed_stuffing *", "1m40s"} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
	raw, err := rep.JSON()
	if err != nil || !strings.Contains(string(raw), `"max_requests": 51`) || !strings.Contains(string(raw), `"held_out": true`) || !strings.Contains(string(raw), `"max_ttd": 100`) {
		t.Errorf("JSON %s (%v)", raw, err)
	}
}

// TestEvaluateAlsoRight: an attacker caught by a type its variant lists
// as also right (malformed queries caught as schema_violation) is named
// rightly; by any other, wrongly.
func TestEvaluateAlsoRight(t *testing.T) {
	s := &Scenario{
		Config: Config{Types: []string{TypeExcessiveErrors}},
		Attackers: []Attacker{
			{Type: TypeExcessiveErrors, Identity: ip("45.0.0.1"), Start: at(0), Speed: SpeedStealth, Variant: "slow_errors_ip", AlsoRight: alsoRight("slow_errors_ip"), Uses: []Identity{ip("45.0.0.1")}},
			{Type: TypeExcessiveErrors, Identity: ip("45.0.0.2"), Start: at(0), Speed: SpeedStealth, Variant: "slow_errors_ip", AlsoRight: alsoRight("slow_errors_ip"), Uses: []Identity{ip("45.0.0.2")}},
		},
	}
	rep := Evaluate(s, []Attack{
		{"schema_violation", KindIP, "45.0.0.1", at(time.Minute)},
		{TypeProbing, KindIP, "45.0.0.2", at(time.Minute)},
	}, fakeFP)
	if v := rep.Types[0].Variants[0]; v.Detected != 2 || v.TypeCorrect != 1 || len(rep.Types[0].WrongType) != 1 || !strings.Contains(rep.Types[0].WrongType[0], "→ probing") {
		t.Errorf("variant %+v, wrong %q: want 2 detected, the schema_violation one rightly named", v, rep.Types[0].WrongType)
	}
}
