package scenario

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// stealthScenario is the stealth preset on a tuning seed, generated once
// for every test reading it.
var stealthScenario = sync.OnceValue(func() *Scenario {
	c := StealthConfig(1)
	c.NextHeldOut = true
	return Generate(c)
})

// tinyStealth is a small stealth scenario with every population and one
// attacker of every variant.
func tinyStealth(seed uint64) Config {
	c := tinyConfig(seed)
	c.Stealth, c.Crawlers, c.IntegrationSites, c.IntegrationClients = true, 1, 1, 3
	c.StealthAttackers, c.HeldOutVariants = 1, true
	return c
}

// TestPresetsUnchanged pins the fast preset's traffic: the stealth preset
// and its options leave it byte for byte as it was (the suite's limits
// were set on it). The full preset shares every line of code the fast one
// runs, with other sizes.
func TestPresetsUnchanged(t *testing.T) {
	sum := sha256.Sum256(jsonl(t, fastScenario()))
	if got, want := hex.EncodeToString(sum[:]), "a6d1eeba633d007715a911a6f906363f150c99d0e96e03ffe2563f5d4ebd019b"; got != want {
		t.Errorf("fast preset seed 1: sha256 %s, want %s: its traffic changed", got, want)
	}
}

func TestStealthDeterministic(t *testing.T) {
	t.Parallel()
	s1, s2 := Generate(tinyStealth(42)), Generate(tinyStealth(42))
	if !bytes.Equal(jsonl(t, s1), jsonl(t, s2)) {
		t.Fatal("the same seed gave different traffic")
	}
	if !slices.EqualFunc(s1.Attackers, s2.Attackers, func(x, y Attacker) bool {
		return x.Identity == y.Identity && x.Start.Equal(y.Start) && slices.Equal(x.Uses, y.Uses) && slices.Equal(x.Members, y.Members)
	}) || !slices.Equal(s1.Benign, s2.Benign) || !slices.Equal(s1.Population, s2.Population) {
		t.Fatal("the same seed gave different labels")
	}

	// Tuning runs leave the held-out variants out, and nothing else.
	cfg := tinyStealth(42)
	cfg.HeldOutVariants = false
	tuning := Generate(cfg)
	if !slices.Equal(tuning.Benign, s1.Benign) {
		t.Error("leaving the held-out variants out changed the benign traffic")
	}
	held := 0
	for _, a := range s1.Attackers {
		if a.HeldOut {
			held++
		}
	}
	for _, a := range tuning.Attackers {
		if a.HeldOut {
			t.Errorf("held-out variant %s %s generated with HeldOutVariants off", a.Type, a.Variant)
		}
	}
	if held == 0 || len(tuning.Attackers) != len(s1.Attackers)-held {
		t.Errorf("%d attackers with the held-out variants (%d held out), %d without", len(s1.Attackers), held, len(tuning.Attackers))
	}
}

// TestStealthLabels holds the stealth preset to TestLabels' checks, and
// has every stealthy variant, every benign population and a population for
// every benign identity.
func TestStealthLabels(t *testing.T) {
	s := stealthScenario()
	checkLabels(t, s)
	variants := map[string]int{}
	for _, a := range s.Attackers {
		if a.Speed == SpeedStealth {
			variants[a.Type+"/"+a.Variant]++
		}
	}
	for _, v := range StealthVariants() {
		if n := variants[v.Type+"/"+v.Name]; n != s.Config.StealthAttackers {
			t.Errorf("%s %s: %d attackers, want %d", v.Type, v.Name, n, s.Config.StealthAttackers)
		}
	}
	pops := map[string]int{}
	for i, id := range s.Benign {
		if s.Population[i] == "" {
			t.Errorf("benign %s has no population", id)
		}
		pops[s.Population[i]]++
	}
	for _, p := range []string{PopUser, PopPowerUser, PopNewUser, PopNAT, PopMobile, PopPartner, PopBatch, PopCrawler, PopIntegration} {
		if pops[p] == 0 {
			t.Errorf("no benign identity of population %s", p)
		}
	}
	t.Logf("benign identities by population: %v", pops)
}

// TestStealthBenignIsTheDemoShop checks every benign call of the stealth
// preset (crawlers' and integrations' included) against the shop's model.
func TestStealthBenignIsTheDemoShop(t *testing.T) {
	s := stealthScenario()
	benign := map[string]bool{}
	for _, id := range s.Benign {
		if id.Kind == KindIP {
			benign[id.Raw] = true
		}
	}
	checkShop(t, s, func(r *detect.Record) bool { return benign[r.ClientIP] })
}

// TestStealthLoginBodies checks that every login attempt carries the name
// in its body (a form or JSON, as its content type says) and not in
// x-username, and that no header ever carries a password.
func TestStealthLoginBodies(t *testing.T) {
	s := stealthScenario()
	passwords := map[string]bool{}
	logins, forms := 0, 0
	for i := range s.Records {
		r := &s.Records[i]
		if r.Path != LoginPath || r.Method != "POST" {
			if r.RequestBody != "" {
				t.Fatalf("record %d: %s %s has a body", i, r.Method, r.Path)
			}
			continue
		}
		logins++
		ct := r.RequestHeaders["content-type"]
		switch {
		case r.RequestHeaders[HeaderUsername] != "":
			t.Fatalf("record %d: a login with x-username %q", i, r.RequestHeaders[HeaderUsername])
		case LoginName(r.RequestBody) == "" || LoginPassword(r.RequestBody) == "":
			t.Fatalf("record %d: login body %q holds no name or password", i, r.RequestBody)
		case ct == ContentTypeForm && strings.HasPrefix(r.RequestBody, "{"), ct == ContentTypeJSON && !strings.HasPrefix(r.RequestBody, "{"), ct != ContentTypeForm && ct != ContentTypeJSON:
			t.Fatalf("record %d: content type %q for body %q", i, ct, r.RequestBody)
		case ct == ContentTypeJSON && !strings.HasPrefix(r.RequestBody, `{"email":`):
			// Apps send their e-mail address; an attacker replays the
			// app's format (a field no app sends would give it away).
			t.Fatalf("record %d: JSON login %q without the app's email field", i, r.RequestBody)
		case r.RequestBytes != int64(len(r.RequestBody)):
			t.Fatalf("record %d: %d request bytes for a body of %d", i, r.RequestBytes, len(r.RequestBody))
		}
		if ct == ContentTypeForm {
			forms++
		}
		passwords[LoginPassword(r.RequestBody)] = true
	}
	for i := range s.Records {
		for k, v := range s.Records[i].RequestHeaders {
			if passwords[v] {
				t.Fatalf("record %d: header %s holds a password", i, k)
			}
		}
	}
	if logins == 0 || forms == 0 || forms == logins {
		t.Errorf("%d logins, %d of them forms: want both forms and JSON", logins, forms)
	}
	t.Logf("%d logins (%d forms), %d distinct passwords", logins, forms, len(passwords))
}

// attackerRecords returns each attacker's records, by the identities it
// uses.
func attackerRecords(s *Scenario) [][]*detect.Record {
	owner := map[Identity]int{}
	for i, a := range s.Attackers {
		for _, id := range a.Uses {
			owner[id] = i
		}
	}
	out := make([][]*detect.Record, len(s.Attackers))
	for i := range s.Records {
		r := &s.Records[i]
		if j, ok := owner[Identity{KindIP, r.ClientIP}]; ok {
			out[j] = append(out[j], r)
			continue
		}
		for _, id := range recordIdentities(r) {
			if j, ok := owner[id]; ok {
				out[j] = append(out[j], r)
				break
			}
		}
	}
	return out
}

// claimPeaks measures an attacker's records on claim c: the largest value
// of its measure over the identities of c's kind, or over all of them as
// one when c.Whole; and the smallest (its weakest identity).
func claimPeaks(s *Scenario, rs []*detect.Record, c Claim) (hi, lo float64) {
	keys := func(r *detect.Record, fn func(Identity)) {
		recordIdentityFn(r, func(id Identity) {
			if id.Kind == c.Kind {
				if c.Whole {
					id.Raw = "whole"
				}
				fn(id)
			}
		})
	}
	lo = -1
	for _, v := range measurePeaks(len(rs), func(i int) *detect.Record { return rs[i] }, s.Config.Start, c.Window, keys) {
		hi = max(hi, v[c.Measure])
		if lo < 0 || v[c.Measure] < lo {
			lo = v[c.Measure]
		}
	}
	return hi, lo
}

// TestStealthyAttackersStayUnderBenignExtremes is TestAttackersStandOut
// the other way round: every stealthy attacker keeps the measure its
// variant claims (Under) at or under the busiest benign identity of the
// same kind in every window, on every identity of that kind it uses, and
// is above it only over its whole run (Over). Oversized bodies are above
// the largest benign body of their endpoint and at most twice it. It logs
// the numbers.
func TestStealthyAttackersStayUnderBenignExtremes(t *testing.T) {
	s := stealthScenario()
	ext := s.Extremes
	records := attackerRecords(s)
	for _, v := range append(StealthVariants(), NextHeldOutVariants()...) {
		t.Run(v.Type+"/"+v.Name, func(t *testing.T) {
			underMax, overMin := 0.0, -1.0
			for i, a := range s.Attackers {
				if a.Speed != SpeedStealth || a.Variant != v.Name {
					continue
				}
				rs := records[i]
				if v.Under.Kind != "" {
					hi, _ := claimPeaks(s, rs, v.Under)
					underMax = max(underMax, hi)
					if b := ext.Max(v.Under.Kind, v.Under.Window, v.Under.Measure); hi > b {
						t.Errorf("%s: %s by %s per %s %s > benign max %s", describe(a), v.Under.Measure, v.Under.Kind, v.Under.Window, human(hi), human(b))
					}
				}
				if v.Over.Kind != "" {
					hi, _ := claimPeaks(s, rs, v.Over)
					if overMin < 0 || hi < overMin {
						overMin = hi
					}
					if b := ext.PersonMax(v.Over.Kind, v.Over.Window, v.Over.Measure); hi <= b {
						t.Errorf("%s: %s by %s per %s %s ≤ one person's max %s: it does not stand out even in total", describe(a), v.Over.Measure, v.Over.Kind, v.Over.Window, human(hi), human(b))
					}
				}
				if v.Type == TypeOversizedPayload {
					for _, r := range rs {
						if r.Path == LoginPath {
							continue
						}
						path, _, _ := strings.Cut(r.Path, "?")
						b := ext.MaxBody(r.Method, detect.TemplatePath(path))
						if r.RequestBytes > 0 && (r.RequestBytes <= b || r.RequestBytes > 2*b) {
							t.Errorf("%s: a body of %d bytes on %s %s, the largest benign one is %d", describe(a), r.RequestBytes, r.Method, path, b)
						}
					}
				}
			}
			if v.Under.Kind != "" {
				t.Logf("under: %s by %s per %s: benign max %s, attackers' max %s", v.Under.Measure, v.Under.Kind, v.Under.Window, human(ext.Max(v.Under.Kind, v.Under.Window, v.Under.Measure)), human(underMax))
			}
			if v.Over.Kind != "" {
				whole := ""
				if v.Over.Whole {
					whole = " (all its addresses)"
				}
				t.Logf("over: %s by %s%s per %s: one person's max %s (any benign identity's %s), weakest attacker %s", v.Over.Measure, v.Over.Kind, whole, v.Over.Window,
					human(ext.PersonMax(v.Over.Kind, v.Over.Window, v.Over.Measure)), human(ext.Max(v.Over.Kind, v.Over.Window, v.Over.Measure)), human(overMin))
			}
		})
	}
}

// TestSmallScannerIsSmall checks the small scanner's shape: about 60
// requests, about 30 distinct paths, most of them 404.
func TestSmallScannerIsSmall(t *testing.T) {
	s := stealthScenario()
	records := attackerRecords(s)
	for i, a := range s.Attackers {
		if a.Variant != "small_scanner" {
			continue
		}
		paths, missing := map[string]bool{}, map[string]bool{}
		for _, r := range records[i] {
			paths[r.Path] = true
			if r.Status == 404 {
				missing[r.Path] = true
			}
		}
		if a.Requests < 55 || a.Requests > 65 || len(paths) < 27 || len(paths) > 32 || len(missing) < len(paths)*3/4 {
			t.Errorf("%s: %d requests, %d paths, %d of them 404", describe(a), a.Requests, len(paths), len(missing))
		}
	}
}

// TestStealthGenerationCost logs what generating the stealth preset costs
// and holds it to a few seconds and a few hundred megabytes.
func TestStealthGenerationCost(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	s := Generate(StealthConfig(2))
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	attack := 0
	for _, a := range s.Attackers {
		attack += a.Requests
	}
	t.Logf("stealth preset: %d records (%d attack), %d attackers, %d benign identities; generated in %s, %d MB allocated",
		len(s.Records), attack, len(s.Attackers), len(s.Benign), took.Round(time.Millisecond), alloc>>20)
	if n := len(s.Records); n < 200_000 || n > 500_000 {
		t.Errorf("%d records, want 200k to 500k", n)
	}
	if took > 30*time.Second || alloc > 2<<30 {
		t.Errorf("generation took %s and %d MB", took, alloc>>20)
	}
}

// TestSeedsKeptApart: no held-out seed of any suite is a tuning seed.
func TestSeedsKeptApart(t *testing.T) {
	tuning := map[uint64]bool{}
	for s := uint64(1); s <= 8; s++ { // the fast and full presets' tuning seeds
		tuning[s] = true
	}
	for _, s := range stealthTuningSeeds {
		tuning[s] = true
	}
	for _, s := range append(append(slices.Clone(heldOutFast), heldOutFull), stealthHeldOutSeeds...) {
		if tuning[s] {
			t.Errorf("seed %d is both tuned on and held out", s)
		}
	}
}
