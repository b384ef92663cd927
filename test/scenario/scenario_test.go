package scenario

import (
	"bufio"
	"bytes"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// fastScenario is the CI preset, generated once for every test reading it.
var fastScenario = sync.OnceValue(func() *Scenario { return Generate(FastConfig(1)) })

// tinyConfig is a small scenario with every population, and a fast and a
// slow attacker of every type.
func tinyConfig(seed uint64) Config {
	return Config{
		Seed: seed, TrainingDuration: 30 * time.Minute, AttackDuration: 30 * time.Minute,
		Users: 150, NewUsers: 15, NATSites: 1, NATUsers: 30, MobileUsers: 30,
		Partners: 1, NewPartners: 1, BatchJobs: 1, BatchPeriod: 20 * time.Minute,
		AttackersPerType: 2, Fast: true,
	}
}

func jsonl(t testing.TB, s *Scenario) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, s.Records); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	s1, s2 := Generate(tinyConfig(42)), Generate(tinyConfig(42))
	b1 := jsonl(t, s1)
	if !bytes.Equal(b1, jsonl(t, s2)) {
		t.Fatal("the same seed gave different traffic")
	}
	if !slices.EqualFunc(s1.Attackers, s2.Attackers, func(x, y Attacker) bool {
		return x.Identity == y.Identity && x.Start.Equal(y.Start) && slices.Equal(x.Uses, y.Uses)
	}) || !slices.Equal(s1.Benign, s2.Benign) {
		t.Fatal("the same seed gave different labels")
	}
	if bytes.Equal(b1, jsonl(t, Generate(tinyConfig(43)))) {
		t.Fatal("different seeds gave the same traffic")
	}
}

// TestJSONLIsReplayInput reads every line back as the engine does.
func TestJSONLIsReplayInput(t *testing.T) {
	t.Parallel()
	s := Generate(tinyConfig(1))
	sc := bufio.NewScanner(bytes.NewReader(jsonl(t, s)))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		r, err := detect.ParseRecord(sc.Bytes())
		if err != nil {
			t.Fatalf("line %d: %v: %s", n+1, err, sc.Bytes())
		}
		if want := s.Records[n]; !r.Time.Equal(want.Time) || r.Path != want.Path || r.ClientIP != want.ClientIP || r.ResponseBytes != want.ResponseBytes {
			t.Fatalf("line %d: read %+v, wrote %+v", n+1, r, want)
		}
		n++
	}
	if n != len(s.Records) {
		t.Fatalf("read %d lines, want %d", n, len(s.Records))
	}
}

func TestRecordsSortedAndInRange(t *testing.T) {
	s := fastScenario()
	for i, r := range s.Records {
		if i > 0 && r.Time.Before(s.Records[i-1].Time) {
			t.Fatalf("record %d at %s comes after one at %s", i, r.Time, s.Records[i-1].Time)
		}
		if r.Time.Before(s.Config.Start) || !r.Time.Before(s.End) {
			t.Fatalf("record %d at %s outside [%s, %s)", i, r.Time, s.Config.Start, s.End)
		}
		if r.Authority != Host || !strings.HasPrefix(r.Path, "/") || r.Status == 0 || r.Time.Location() != time.UTC {
			t.Fatalf("record %d malformed: %+v", i, r)
		}
	}
}

// recordIdentities lists the identities a record carries (a login body's
// name included).
func recordIdentities(r *detect.Record) []Identity {
	var out []Identity
	recordIdentityFn(r, func(id Identity) { out = append(out, id) })
	return out
}

// TestLabels checks that benign and attacker identities never overlap,
// that every record belongs to exactly one side, that every labelled
// identity appears in the records, and that the training phase holds
// benign traffic only.
func TestLabels(t *testing.T) { checkLabels(t, fastScenario()) }

// isNetwork reports whether an identity is a /24 network a distributed
// attacker is named by: no record carries it.
func isNetwork(id Identity) bool { return id.Kind == KindIP && strings.Contains(id.Raw, "/") }

func checkLabels(t *testing.T, s *Scenario) {
	benign := map[Identity]bool{}
	for _, id := range s.Benign {
		benign[id] = true
	}
	owner := map[Identity]int{}
	for i, a := range s.Attackers {
		if !slices.Contains(a.Uses, a.Identity) && !isNetwork(a.Identity) {
			t.Errorf("attacker %d (%s): identity %s not among those it uses", i, a.Type, a.Identity)
		}
		for _, m := range a.Members {
			if !slices.Contains(a.Uses, m) && !isNetwork(m) {
				t.Errorf("attacker %d (%s): member %s not among those it uses", i, a.Type, m)
			}
		}
		if len(a.Times) != a.Requests || !slices.IsSortedFunc(a.Times, time.Time.Compare) || !a.Times[0].Equal(a.Start) {
			t.Errorf("attacker %d (%s): %d request times for %d requests", i, a.Type, len(a.Times), a.Requests)
		}
		if a.Start.Before(s.TrainingEnd) || a.End.Before(a.Start) || !a.End.Before(s.End) {
			t.Errorf("attacker %d (%s): window [%s, %s] outside the attack phase", i, a.Type, a.Start, a.End)
		}
		for _, id := range a.Uses {
			if benign[id] {
				t.Errorf("attacker %d (%s) uses benign identity %s", i, a.Type, id)
			}
			if j, dup := owner[id]; dup {
				t.Errorf("attackers %d and %d share %s", j, i, id)
			}
			owner[id] = i
		}
	}
	starts := make([]time.Time, len(s.Attackers))
	for i, a := range s.Attackers {
		starts[i] = a.End // becomes the first record seen
	}
	seen := map[Identity]bool{}
	for i := range s.Records {
		r := &s.Records[i]
		side := -2 // -1 benign, else attacker index
		for _, id := range recordIdentities(r) {
			seen[id] = true
			who, ok := owner[id]
			switch {
			case benign[id]:
				who = -1
			case !ok:
				t.Fatalf("record %d carries unlabelled identity %s", i, id)
			}
			if side != -2 && side != who {
				t.Fatalf("record %d mixes identities of %d and %d", i, side, who)
			}
			side = who
		}
		if side >= 0 {
			if r.Time.Before(s.TrainingEnd) {
				t.Fatalf("record %d of attacker %d in the training phase", i, side)
			}
			starts[side] = minTime(starts[side], r.Time)
		}
	}
	for id := range benign {
		if !seen[id] {
			t.Errorf("benign identity %s in no record", id)
		}
	}
	for id, i := range owner {
		if !seen[id] {
			t.Errorf("identity %s of attacker %d in no record", id, i)
		}
	}
	for i, a := range s.Attackers {
		if !starts[i].Equal(a.Start) {
			t.Errorf("attacker %d (%s): first record at %s, labelled start %s", i, a.Type, starts[i], a.Start)
		}
	}
}

// wantKinds are the identity kinds each type's attackers are attributed to.
var wantKinds = map[string][]string{
	TypeProbing:            {KindIP, KindToken},
	TypeExcessiveErrors:    {KindIP, KindToken},
	TypeCredentialStuffing: {KindIP, KindUsername},
	TypeStolenToken:        {KindToken, KindCookie, KindAPIKey},
	TypeDataExfiltration:   {KindToken},
	TypeExtremeActivity:    {KindIP, KindToken},
	TypeBOLAEnumeration:    {KindToken},
	TypeMassDeletion:       {KindToken},
	TypeOversizedPayload:   {KindToken},
}

func TestEveryTypeAndSpeed(t *testing.T) {
	s := fastScenario()
	for _, typ := range AttackTypes() {
		speeds, kinds := map[string]int{}, map[string]bool{}
		for _, a := range s.Attackers {
			if a.Type == typ {
				speeds[a.Speed]++
				kinds[a.Identity.Kind] = true
				if a.Requests < 5 {
					t.Errorf("%s %s %s: only %d requests", typ, a.Speed, a.Variant, a.Requests)
				}
			}
		}
		if n := s.Config.AttackersPerType / 2; speeds[SpeedFast] != n || speeds[SpeedSlow] != n {
			t.Errorf("%s: %d fast and %d slow attackers, want %d each", typ, speeds[SpeedFast], speeds[SpeedSlow], n)
		}
		for _, k := range wantKinds[typ] {
			if !kinds[k] {
				t.Errorf("%s: no attacker attributed to kind %s", typ, k)
			}
		}
	}
}

func TestFastPresetSize(t *testing.T) {
	s := fastScenario()
	if n := len(s.Records); n < 100_000 || n > 300_000 {
		t.Errorf("fast preset has %d records, want 100k to 300k", n)
	}
	attack := 0
	for _, a := range s.Attackers {
		attack += a.Requests
	}
	if attack > len(s.Records)/2 {
		t.Errorf("%d of %d records are attacks: benign traffic should dominate", attack, len(s.Records))
	}
	kinds := map[string]int{}
	for _, id := range s.Benign {
		kinds[id.Kind]++
	}
	for _, k := range []string{KindIP, KindToken, KindAPIKey, KindCookie, KindUsername} {
		if kinds[k] == 0 {
			t.Errorf("no benign identity of kind %s", k)
		}
	}
	t.Logf("%d records (%d attack), %d attackers, benign identities %v", len(s.Records), attack, len(s.Attackers), kinds)
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if want := FullConfig(0); c.Users != want.Users || c.TrainingDuration != 2*time.Hour || c.AttackDuration != time.Hour || c.Intensity != 1 || !c.Start.Equal(DefaultStart) {
		t.Errorf("zero config: %+v", c)
	}
	if !slices.Equal(c.Types, AttackTypes()) {
		t.Errorf("types %v", c.Types)
	}
	c = Config{Fast: true, Partners: -1, Users: 7}.withDefaults()
	if c.Partners != 0 || c.Users != 7 || c.MobileUsers != FastConfig(0).MobileUsers {
		t.Errorf("fast config with overrides: %+v", c)
	}
}

func TestTypesFilterAndIntensity(t *testing.T) {
	cfg := tinyConfig(3)
	cfg.Types = []string{TypeOversizedPayload, "no_such_type"}
	low := Generate(cfg)
	cfg.Intensity = 4
	high := Generate(cfg)
	if len(low.Attackers) != cfg.AttackersPerType || len(high.Attackers) != cfg.AttackersPerType {
		t.Fatalf("%d and %d attackers, want %d", len(low.Attackers), len(high.Attackers), cfg.AttackersPerType)
	}
	maxBody := func(s *Scenario) int64 {
		var m int64
		for _, r := range s.Records {
			m = max(m, r.RequestBytes)
		}
		return m
	}
	if l, h := maxBody(low), maxBody(high); h < 3*l {
		t.Errorf("intensity 4 gave a largest body of %d, intensity 1 of %d", h, l)
	}
	if len(low.Benign) != len(high.Benign) {
		t.Errorf("intensity changed benign traffic: %d vs %d identities", len(low.Benign), len(high.Benign))
	}
}

// signal is a per-identity measure that should set a type's attackers far
// apart from every benign identity of the same kind. Measures are taken
// over fixed windows, and the largest window counts.
type signal struct {
	typ    string
	window time.Duration
	stat   func(rs []*detect.Record) float64
	factor float64 // attackers' minimum ≥ factor × benign maximum
}

func count(pred func(*detect.Record) bool) func([]*detect.Record) float64 {
	return func(rs []*detect.Record) float64 {
		n := 0
		for _, r := range rs {
			if pred(r) {
				n++
			}
		}
		return float64(n)
	}
}

func distinct(key func(*detect.Record) string) func([]*detect.Record) float64 {
	return func(rs []*detect.Record) float64 {
		seen := map[string]bool{}
		for _, r := range rs {
			if k := key(r); k != "" {
				seen[k] = true
			}
		}
		return float64(len(seen))
	}
}

var signals = []signal{
	{TypeProbing, 10 * time.Minute, distinct(func(r *detect.Record) string {
		if r.Status == 404 || r.Status == 405 {
			return detect.TemplatePath(r.Path)
		}
		return ""
	}), 2},
	{TypeExcessiveErrors, 10 * time.Minute, count(func(r *detect.Record) bool {
		return r.Status >= 400 && r.Status != 404 && r.Status != 401
	}), 2},
	{TypeCredentialStuffing, 10 * time.Minute, count(func(r *detect.Record) bool {
		return r.Path == LoginPath && r.Status == 401
	}), 2},
	{TypeStolenToken, time.Hour, distinct(func(r *detect.Record) string { return r.ClientIP }), 2},
	{TypeDataExfiltration, 10 * time.Minute, func(rs []*detect.Record) float64 {
		var n int64
		for _, r := range rs {
			n += r.ResponseBytes
		}
		return float64(n)
	}, 2},
	{TypeExtremeActivity, time.Minute, func(rs []*detect.Record) float64 { return float64(len(rs)) }, 2.5},
	{TypeBOLAEnumeration, 10 * time.Minute, distinct(func(r *detect.Record) string {
		if r.Method == "GET" && strings.HasPrefix(r.Path, Base+"/order/") {
			return r.Path
		}
		return ""
	}), 2},
	{TypeMassDeletion, 10 * time.Minute, count(func(r *detect.Record) bool { return r.Method == "DELETE" }), 3},
	{TypeOversizedPayload, 10 * time.Minute, func(rs []*detect.Record) float64 {
		var m int64
		for _, r := range rs {
			m = max(m, r.RequestBytes)
		}
		return float64(m)
	}, 50},
}

// identityOf returns the identity of kind a record carries, in clear.
func identityOf(r *detect.Record, kind string) string {
	switch kind {
	case KindIP:
		return r.ClientIP
	case KindToken:
		v, _ := strings.CutPrefix(r.RequestHeaders[HeaderToken], "Bearer ")
		return v
	case KindCookie:
		v, _ := strings.CutPrefix(r.RequestHeaders["cookie"], SessionCookie+"=")
		return v
	case KindAPIKey:
		return r.RequestHeaders[HeaderAPIKey]
	}
	return r.RequestHeaders[HeaderUsername]
}

// TestAttackersStandOut checks that each type's attackers are far from
// every benign identity of the same kind on the measure that defines the
// type: the traffic is learnable. It logs the numbers.
func TestAttackersStandOut(t *testing.T) {
	s := fastScenario()
	benign := map[Identity]bool{}
	for _, id := range s.Benign {
		benign[id] = true
	}
	for _, sg := range signals {
		t.Run(sg.typ, func(t *testing.T) {
			attackers := map[Identity]string{}
			for _, a := range s.Attackers {
				if a.Type == sg.typ {
					attackers[a.Identity] = a.Speed + " " + a.Variant
				}
			}
			// Group each kind's records by identity and window.
			type cell struct {
				id Identity
				w  int64
			}
			cells := map[cell][]*detect.Record{}
			kinds := map[string]bool{}
			for id := range attackers {
				kinds[id.Kind] = true
			}
			for i := range s.Records {
				r := &s.Records[i]
				for kind := range kinds {
					raw := identityOf(r, kind)
					if raw == "" {
						continue
					}
					id := Identity{kind, raw}
					if _, att := attackers[id]; att || benign[id] {
						c := cell{id, r.Time.Sub(s.Config.Start).Milliseconds() / sg.window.Milliseconds()}
						cells[c] = append(cells[c], r)
					}
				}
			}
			peak := map[Identity]float64{}
			for c, rs := range cells {
				peak[c.id] = max(peak[c.id], sg.stat(rs))
			}
			for kind := range kinds {
				benignMax, worst, worstName := 0.0, -1.0, ""
				for id, v := range peak {
					if id.Kind != kind {
						continue
					}
					if name, att := attackers[id]; att {
						if worst < 0 || v < worst {
							worst, worstName = v, name
						}
					} else {
						benignMax = max(benignMax, v)
					}
				}
				t.Logf("%s by %s per %s: benign max %s, weakest attacker (%s) %s", sg.typ, kind, sg.window, human(benignMax), worstName, human(worst))
				if worst < sg.factor*benignMax {
					t.Errorf("%s by %s: weakest attacker %s < %.1f × benign max %s", sg.typ, kind, human(worst), sg.factor, human(benignMax))
				}
			}
		})
	}
}

func human(v float64) string {
	if v >= 10_000 {
		return strconv.FormatFloat(v/1000, 'f', 0, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func BenchmarkGenerateFast(b *testing.B) {
	var n int
	for b.Loop() {
		n = len(Generate(FastConfig(1)).Records)
	}
	b.ReportMetric(float64(n), "records")
}

func BenchmarkWriteJSONL(b *testing.B) {
	s := Generate(tinyConfig(1))
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := WriteJSONL(&buf, s.Records); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(s.Records)), "records")
}
