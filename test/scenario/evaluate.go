package scenario

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Attack is one attack the engine raised, as its attack record names it:
// Value is the IP or user name in clear, or the fingerprint ("fp:…") of a
// token, API key or cookie.
type Attack struct {
	Type       string    `json:"type"`
	Kind       string    `json:"kind"`
	Value      string    `json:"value"`
	DetectedAt time.Time `json:"detected_at"`
}

// The detection goals of the scenario suite.
const (
	GoalRecall               = 0.95
	GoalTypeCorrect          = 0.90
	GoalBenignFlagged        = 0.005
	GoalMedianTTDFast        = 60 * time.Second
	GoalBenignFlaggedStretch = 0.001
)

// TypeReport scores the attackers of one type (or all of them, in
// Report.Overall). Ratios are 0 when their denominator is.
type TypeReport struct {
	Type      string `json:"type"`
	Attackers int    `json:"attackers"`
	// Detected attackers are named by an attack raised at or after their
	// start; TypeCorrect of them by an attack of their own type.
	Detected         int     `json:"detected"`
	TypeCorrect      int     `json:"type_correct"`
	Recall           float64 `json:"recall"`
	TypeCorrectRatio float64 `json:"type_correct_ratio"` // of the detected
	// MedianTTD is the median time from an attacker's first request to the
	// first attack naming it, over detected attackers; MedianTTDFast over
	// fast ones only. In JSON, seconds.
	MedianTTD     time.Duration `json:"-"`
	MaxTTD        time.Duration `json:"-"`
	FastAttackers int           `json:"fast_attackers"`
	FastDetected  int           `json:"fast_detected"`
	MedianTTDFast time.Duration `json:"-"`
	// Missed describes each undetected attacker; WrongType each detected
	// one never named with its own type, with the types it was named with.
	Missed    []string `json:"missed,omitempty"`
	WrongType []string `json:"wrong_type,omitempty"`
	// Variants score the attackers of each speed and variant ("fast
	// spraying") of the type: fast, slow and stealth, each in order of
	// first appearance.
	Variants []VariantReport `json:"variants,omitempty"`
}

// VariantReport counts the attackers of one speed and variant of a type.
type VariantReport struct {
	Speed       string `json:"speed"`
	Variant     string `json:"variant"`
	Attackers   int    `json:"attackers"`
	Detected    int    `json:"detected"`
	TypeCorrect int    `json:"type_correct"`
	// HeldOut marks a stealthy variant kept out of tuning.
	HeldOut bool `json:"held_out,omitempty"`
	// MedianTTD and MaxTTD are over the detected attackers (JSON:
	// seconds); MedianRequests and MaxRequests count the requests each
	// had made when it was first detected (its first detection included).
	MedianTTD      time.Duration `json:"-"`
	MaxTTD         time.Duration `json:"-"`
	MedianRequests int           `json:"median_requests"`
	MaxRequests    int           `json:"max_requests"`
}

// Recall is the share of the variant's attackers detected.
func (v VariantReport) Recall() float64 { return ratio(v.Detected, v.Attackers) }

// MarshalJSON writes the times to detect in seconds.
func (v VariantReport) MarshalJSON() ([]byte, error) {
	type plain VariantReport
	return json.Marshal(struct {
		plain
		Recall    float64 `json:"recall"`
		MedianTTD float64 `json:"median_ttd"`
		MaxTTD    float64 `json:"max_ttd"`
	}{plain(v), v.Recall(), v.MedianTTD.Seconds(), v.MaxTTD.Seconds()})
}

// MarshalJSON writes the times to detect in seconds.
func (t TypeReport) MarshalJSON() ([]byte, error) {
	type plain TypeReport
	return json.Marshal(struct {
		plain
		MedianTTD     float64 `json:"median_ttd"`
		MaxTTD        float64 `json:"max_ttd"`
		MedianTTDFast float64 `json:"median_ttd_fast"`
	}{plain(t), t.MedianTTD.Seconds(), t.MaxTTD.Seconds(), t.MedianTTDFast.Seconds()})
}

// KindReport counts benign identities of one kind.
type KindReport struct {
	Kind       string `json:"kind"`
	Identities int    `json:"identities"`
	Flagged    int    `json:"flagged"`
}

// PopulationReport counts benign identities of one population (PopUser,
// PopNAT, PopCrawler, …).
type PopulationReport struct {
	Population string `json:"population"`
	Identities int    `json:"identities"`
	Flagged    int    `json:"flagged"`
}

// BenignReport counts benign identities named by any attack.
type BenignReport struct {
	Identities int          `json:"identities"`
	Flagged    int          `json:"flagged"`
	Rate       float64      `json:"rate"`
	ByKind     []KindReport `json:"by_kind"`
	// ByPopulation counts them per population, when the scenario names
	// them (Scenario.Population).
	ByPopulation []PopulationReport `json:"by_population,omitempty"`
	// Examples are up to 20 flagged identities as the engine named them,
	// with the attack types raised ("ip 100.64.1.2: credential_stuffing").
	Examples []string `json:"examples,omitempty"`
	// FlaggedList is up to 100 flagged identities with their population
	// ("nat ip 34.64.1.2: credential_stuffing").
	FlaggedList []string `json:"flagged_list,omitempty"`
}

// Report is the score of one run of the engine over a scenario.
type Report struct {
	Types   []TypeReport `json:"types"`
	Overall TypeReport   `json:"overall"`
	Benign  BenignReport `json:"benign"`
	// Attacks is the number of attacks evaluated. Of those, Early named an
	// attacker's identity before its start; Secondary named another
	// identity an attacker used (not a false positive, not a detection);
	// Unknown named an identity that appears nowhere in the scenario.
	Attacks   int `json:"attacks"`
	Early     int `json:"early"`
	Secondary int `json:"secondary"`
	Unknown   int `json:"unknown"`
}

type idKey struct{ kind, value string }

// Evaluate scores attacks against the scenario's labels. fingerprint turns a
// raw token, API key or cookie into the value the engine reports for it (the
// engine's keyed fingerprint); when nil, secrets are compared in clear.
func Evaluate(s *Scenario, attacks []Attack, fingerprint func(raw string) string) Report {
	key := func(id Identity) idKey {
		if fingerprint != nil && (id.Kind == KindToken || id.Kind == KindAPIKey || id.Kind == KindCookie) {
			return idKey{id.Kind, fingerprint(id.Raw)}
		}
		return idKey{id.Kind, id.Raw}
	}
	benign := make(map[idKey]int, len(s.Benign))
	for i, id := range s.Benign {
		benign[key(id)] = i
	}
	primary := map[idKey][]int{}
	secondary := map[idKey]bool{}
	for i, a := range s.Attackers {
		primary[key(a.Identity)] = append(primary[key(a.Identity)], i)
		for _, m := range a.Members {
			if m != a.Identity {
				primary[key(m)] = append(primary[key(m)], i)
			}
		}
		for _, u := range a.Uses {
			secondary[key(u)] = true
		}
	}

	type outcome struct {
		first time.Time
		types map[string]bool
	}
	outcomes := make([]outcome, len(s.Attackers))
	flagged := map[int][]string{} // benign index → attack types
	rep := Report{Attacks: len(attacks)}
	for _, at := range attacks {
		k := idKey{at.Kind, at.Value}
		if i, ok := benign[k]; ok {
			if !slices.Contains(flagged[i], at.Type) {
				flagged[i] = append(flagged[i], at.Type)
			}
		}
		idx, isPrimary := primary[k]
		for _, i := range idx {
			if at.DetectedAt.Before(s.Attackers[i].Start) {
				rep.Early++
				continue
			}
			o := &outcomes[i]
			if o.types == nil {
				o.types, o.first = map[string]bool{}, at.DetectedAt
			}
			o.types[at.Type] = true
			o.first = minTime(o.first, at.DetectedAt)
		}
		switch _, isBenign := benign[k]; {
		case !isPrimary && !isBenign && secondary[k]:
			rep.Secondary++
		case !isPrimary && !isBenign:
			rep.Unknown++
		}
	}

	byType := map[string]*TypeReport{}
	var order []string
	for _, t := range s.Config.Types {
		if _, ok := attackSpecs[t]; ok && byType[t] == nil {
			byType[t] = &TypeReport{Type: t}
			order = append(order, t)
		}
	}
	ttds := map[string][]time.Duration{}
	fastTTDs := map[string][]time.Duration{}
	type variantKey struct{ typ, speed, variant string }
	vTTDs := map[variantKey][]time.Duration{}
	vReqs := map[variantKey][]int{}
	for i, a := range s.Attackers {
		tr := byType[a.Type]
		if tr == nil {
			tr = &TypeReport{Type: a.Type}
			byType[a.Type] = tr
			order = append(order, a.Type)
		}
		fast := a.Speed == SpeedFast
		tr.Attackers++
		vi := slices.IndexFunc(tr.Variants, func(v VariantReport) bool { return v.Speed == a.Speed && v.Variant == a.Variant })
		if vi < 0 {
			tr.Variants = append(tr.Variants, VariantReport{Speed: a.Speed, Variant: a.Variant})
			vi = len(tr.Variants) - 1
		}
		vr := &tr.Variants[vi]
		vr.Attackers++
		vr.HeldOut = vr.HeldOut || a.HeldOut
		if fast {
			tr.FastAttackers++
		}
		o := outcomes[i]
		if o.types == nil {
			tr.Missed = append(tr.Missed, describe(a))
			continue
		}
		tr.Detected++
		vr.Detected++
		ttd := o.first.Sub(a.Start)
		ttds[a.Type] = append(ttds[a.Type], ttd)
		vk := variantKey{a.Type, a.Speed, a.Variant}
		vTTDs[vk] = append(vTTDs[vk], ttd)
		if len(a.Times) > 0 {
			vReqs[vk] = append(vReqs[vk], requestsBy(a.Times, o.first))
		}
		if fast {
			tr.FastDetected++
			fastTTDs[a.Type] = append(fastTTDs[a.Type], ttd)
		}
		if o.types[a.Type] || slices.ContainsFunc(a.AlsoRight, func(t string) bool { return o.types[t] }) {
			tr.TypeCorrect++
			vr.TypeCorrect++
		} else {
			got := make([]string, 0, len(o.types))
			for t := range o.types {
				got = append(got, t)
			}
			slices.Sort(got)
			tr.WrongType = append(tr.WrongType, describe(a)+" → "+strings.Join(got, ","))
		}
	}
	rep.Overall.Type = "overall"
	var allTTD, allFast []time.Duration
	speedRank := map[string]int{SpeedFast: 0, SpeedSlow: 1, SpeedStealth: 2}
	for _, t := range order {
		tr := byType[t]
		tr.finish(ttds[t], fastTTDs[t])
		slices.SortStableFunc(tr.Variants, func(a, b VariantReport) int { return speedRank[a.Speed] - speedRank[b.Speed] })
		for j := range tr.Variants {
			v := &tr.Variants[j]
			vk := variantKey{t, v.Speed, v.Variant}
			v.MedianTTD, v.MaxTTD = median(vTTDs[vk]), slices.Max(append([]time.Duration{0}, vTTDs[vk]...))
			if rs := vReqs[vk]; len(rs) > 0 {
				slices.Sort(rs)
				v.MedianRequests, v.MaxRequests = rs[len(rs)/2], rs[len(rs)-1]
			}
		}
		rep.Types = append(rep.Types, *tr)
		o := &rep.Overall
		o.Attackers += tr.Attackers
		o.Detected += tr.Detected
		o.TypeCorrect += tr.TypeCorrect
		o.FastAttackers += tr.FastAttackers
		o.FastDetected += tr.FastDetected
		allTTD = append(allTTD, ttds[t]...)
		allFast = append(allFast, fastTTDs[t]...)
	}
	rep.Overall.finish(allTTD, allFast)

	rep.Benign = benignReport(s.Benign, s.Population, flagged, key)
	return rep
}

// requestsBy counts the requests made at or before t.
func requestsBy(times []time.Time, t time.Time) int {
	n, _ := slices.BinarySearchFunc(times, t, func(x, t time.Time) int {
		if x.After(t) {
			return 1
		}
		return -1
	})
	return n
}

func (t *TypeReport) finish(ttds, fast []time.Duration) {
	t.Recall = ratio(t.Detected, t.Attackers)
	t.TypeCorrectRatio = ratio(t.TypeCorrect, t.Detected)
	t.MedianTTD = median(ttds)
	if len(ttds) > 0 {
		t.MaxTTD = slices.Max(ttds)
	}
	t.MedianTTDFast = median(fast)
}

func benignReport(ids []Identity, pops []string, flagged map[int][]string, key func(Identity) idKey) BenignReport {
	b := BenignReport{Identities: len(ids), Flagged: len(flagged)}
	b.Rate = ratio(b.Flagged, b.Identities)
	kinds := map[string]*KindReport{}
	for i, id := range ids {
		k := kinds[id.Kind]
		if k == nil {
			k = &KindReport{Kind: id.Kind}
			kinds[id.Kind] = k
		}
		k.Identities++
		pop := ""
		if i < len(pops) {
			pop = pops[i]
			pr := slices.IndexFunc(b.ByPopulation, func(p PopulationReport) bool { return p.Population == pop })
			if pr < 0 {
				b.ByPopulation = append(b.ByPopulation, PopulationReport{Population: pop})
				pr = len(b.ByPopulation) - 1
			}
			b.ByPopulation[pr].Identities++
			if _, ok := flagged[i]; ok {
				b.ByPopulation[pr].Flagged++
			}
		}
		if types, ok := flagged[i]; ok {
			k.Flagged++
			v := key(id)
			if len(b.Examples) < 20 {
				b.Examples = append(b.Examples, v.kind+" "+v.value+": "+strings.Join(types, ","))
			}
			if pop != "" && len(b.FlaggedList) < 100 {
				b.FlaggedList = append(b.FlaggedList, pop+" "+v.kind+" "+v.value+": "+strings.Join(types, ","))
			}
		}
	}
	slices.SortFunc(b.ByPopulation, func(x, y PopulationReport) int { return strings.Compare(x.Population, y.Population) })
	for _, kind := range []string{KindIP, KindToken, KindAPIKey, KindCookie, KindUsername} {
		if k := kinds[kind]; k != nil {
			b.ByKind = append(b.ByKind, *k)
		}
	}
	return b
}

// describe names an attacker for a report without its credential.
func describe(a Attacker) string {
	v := a.Identity.Raw
	if a.Identity.Kind == KindToken || a.Identity.Kind == KindAPIKey || a.Identity.Kind == KindCookie {
		v = redact(v)
	}
	return fmt.Sprintf("%s %s %s %s from %s", a.Speed, a.Variant, a.Identity.Kind, v, a.Start.Format(time.RFC3339))
}

// redact keeps the first four characters of a credential.
func redact(s string) string {
	if len(s) <= 4 {
		return "…"
	}
	return s[:4] + "…"
}

func ratio(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// Shortfalls lists every goal of the suite the report misses: per type
// recall and type accuracy, median time to detect fast attackers, and the
// share of benign identities flagged. Empty means every goal is met.
func (r Report) Shortfalls() []string {
	var out []string
	for _, t := range r.Types {
		if t.Recall < GoalRecall {
			out = append(out, fmt.Sprintf("%s: recall %.3f < %.2f", t.Type, t.Recall, GoalRecall))
		}
		if t.Detected > 0 && t.TypeCorrectRatio < GoalTypeCorrect {
			out = append(out, fmt.Sprintf("%s: right type for %.3f of detected < %.2f", t.Type, t.TypeCorrectRatio, GoalTypeCorrect))
		}
		if t.FastDetected > 0 && t.MedianTTDFast > GoalMedianTTDFast {
			out = append(out, fmt.Sprintf("%s: median time to detect fast attackers %s > %s", t.Type, t.MedianTTDFast, GoalMedianTTDFast))
		}
	}
	if r.Benign.Rate > GoalBenignFlagged {
		out = append(out, fmt.Sprintf("benign identities flagged %.4f%% > %.1f%%", 100*r.Benign.Rate, 100*GoalBenignFlagged))
	}
	return out
}

// Goals are detection goals on traffic never tuned on (issue 15's, as
// StealthGoals), checked by Report.MissedGoals.
type Goals struct {
	// MinRecall is per type (every speed and variant together);
	// MinVariantRecall per speed and variant.
	MinRecall, MinVariantRecall float64
	// MinTypeCorrect is the share of each type's detected attackers named
	// with their own type.
	MinTypeCorrect float64
	// MaxBenignFlagged is the share of benign identities any attack names.
	MaxBenignFlagged float64
	// MaxMedianTTDFast bounds each type's median time to detect its fast
	// attackers.
	MaxMedianTTDFast time.Duration
	// Every attacker of ScannerVariant is detected by the time it has
	// made ScannerWithin requests.
	ScannerVariant string
	ScannerWithin  int
}

// StealthGoals are issue 15's goals: recall at least 0.95 per type and
// variant (the stealthy ones included), the right type for 0.95 of the
// detected, at most 0.1% of benign identities flagged with shared
// addresses and crawlers present, fast attackers detected within 30 s
// (median), and a small scanner within its first 50 requests.
var StealthGoals = Goals{
	MinRecall: 0.95, MinVariantRecall: 0.95, MinTypeCorrect: 0.95, MaxBenignFlagged: 0.001,
	MaxMedianTTDFast: 30 * time.Second, ScannerVariant: "small_scanner", ScannerWithin: 50,
}

// MissedGoals lists every goal of g the report misses; empty means none.
func (r Report) MissedGoals(g Goals) []string {
	var out []string
	for _, t := range r.Types {
		if t.Recall < g.MinRecall {
			out = append(out, fmt.Sprintf("%s: recall %.3f < %.2f (%s)", t.Type, t.Recall, g.MinRecall, strings.Join(t.Missed, "; ")))
		}
		if t.Detected > 0 && t.TypeCorrectRatio < g.MinTypeCorrect {
			out = append(out, fmt.Sprintf("%s: right type for %.3f of the detected < %.2f (%s)", t.Type, t.TypeCorrectRatio, g.MinTypeCorrect, strings.Join(t.WrongType, "; ")))
		}
		if t.FastDetected > 0 && t.MedianTTDFast > g.MaxMedianTTDFast {
			out = append(out, fmt.Sprintf("%s: median time to detect fast attackers %s > %s", t.Type, t.MedianTTDFast, g.MaxMedianTTDFast))
		}
		for _, v := range t.Variants {
			if v.Recall() < g.MinVariantRecall {
				out = append(out, fmt.Sprintf("%s (%s %s): %d of %d attackers detected, recall %.3f < %.2f", t.Type, v.Speed, v.Variant, v.Detected, v.Attackers, v.Recall(), g.MinVariantRecall))
			}
			if v.Variant == g.ScannerVariant && g.ScannerWithin > 0 && (v.Detected < v.Attackers || v.MaxRequests > g.ScannerWithin) {
				out = append(out, fmt.Sprintf("%s (%s %s): %d of %d detected, the last after %d requests (goal: every one within its first %d)", t.Type, v.Speed, v.Variant, v.Detected, v.Attackers, v.MaxRequests, g.ScannerWithin))
			}
		}
	}
	if r.Benign.Rate > g.MaxBenignFlagged {
		out = append(out, fmt.Sprintf("benign identities flagged: %d of %d (%.4f%%) > %.2f%% (%s)", r.Benign.Flagged, r.Benign.Identities, 100*r.Benign.Rate, 100*g.MaxBenignFlagged, strings.Join(r.Benign.FlaggedList, "; ")))
	}
	return out
}

// Limits are what a run of the suite is held to, set from the rates the
// engine is observed to reach with headroom (see suite_test.go for the
// figures): tight enough that thresholds drifting by 2× either way fail,
// loose enough for another seed's luck.
type Limits struct {
	// MaxBenignFlagged is the share of benign identities that may be named
	// by any attack.
	MaxBenignFlagged float64
	// Every attacker of every type, speed and variant must be detected and
	// named with its own type at least these shares of the time.
	MinVariantRecall, MinTypeCorrect float64
	// VariantRecall overrides MinVariantRecall for the variants it names
	// ("type/speed/variant", e.g. "probing/stealth/slow_probe").
	VariantRecall map[string]float64
	// MaxMedianTTD and MaxMedianTTDFast bound, per type, the median time to
	// detect all attackers and fast ones (traffic time); a type missing
	// from a map is not bounded.
	MaxMedianTTD, MaxMedianTTDFast map[string]time.Duration
}

// Exceeded lists every limit the report passes; empty means none.
func (r Report) Exceeded(l Limits) []string {
	var out []string
	for _, t := range r.Types {
		for _, v := range t.Variants {
			least := l.MinVariantRecall
			if m, ok := l.VariantRecall[t.Type+"/"+v.Speed+"/"+v.Variant]; ok {
				least = m
			}
			if got := ratio(v.Detected, v.Attackers); got < least {
				out = append(out, fmt.Sprintf("%s (%s %s): %d of %d attackers detected, recall %.3f < %.3f", t.Type, v.Speed, v.Variant, v.Detected, v.Attackers, got, least))
			}
		}
		if t.Detected > 0 && t.TypeCorrectRatio < l.MinTypeCorrect {
			out = append(out, fmt.Sprintf("%s: right type for %.3f of the detected < %.3f (%s)", t.Type, t.TypeCorrectRatio, l.MinTypeCorrect, strings.Join(t.WrongType, "; ")))
		}
		if max, ok := l.MaxMedianTTD[t.Type]; ok && t.Detected > 0 && t.MedianTTD > max {
			out = append(out, fmt.Sprintf("%s: median time to detect %s > %s", t.Type, t.MedianTTD, max))
		}
		if max, ok := l.MaxMedianTTDFast[t.Type]; ok && t.FastDetected > 0 && t.MedianTTDFast > max {
			out = append(out, fmt.Sprintf("%s: median time to detect fast attackers %s > %s", t.Type, t.MedianTTDFast, max))
		}
	}
	if r.Benign.Rate > l.MaxBenignFlagged {
		out = append(out, fmt.Sprintf("benign identities flagged: %d of %d (%.4f%%) > %.4f%% (%s)", r.Benign.Flagged, r.Benign.Identities, 100*r.Benign.Rate, 100*l.MaxBenignFlagged, strings.Join(r.Benign.Examples, "; ")))
	}
	return out
}

// Table renders the report as an aligned text table.
func (r Report) Table() string {
	// Every cell of the first column is padded to one width, so that it
	// reads left-aligned while the numbers align right.
	width := len("type")
	for _, t := range append([]TypeReport{r.Overall}, r.Types...) {
		width = max(width, len(t.Type))
	}
	var tab bytes.Buffer
	w := tabwriter.NewWriter(&tab, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "%-*s\tattackers\tdetected\trecall\tright type\tmedian TTD\tmedian TTD fast\t\n", width, "type")
	row := func(t TypeReport) {
		fmt.Fprintf(w, "%-*s\t%d\t%d\t%.3f\t%.3f\t%s\t%s\t\n", width, t.Type, t.Attackers, t.Detected, t.Recall, t.TypeCorrectRatio, ttd(t.MedianTTD, t.Detected), ttd(t.MedianTTDFast, t.FastDetected))
	}
	for _, t := range r.Types {
		row(t)
	}
	row(r.Overall)
	w.Flush()
	var out strings.Builder
	for line := range strings.Lines(tab.String()) {
		out.WriteString(strings.TrimPrefix(line, "  ")) // right alignment pads the first column too
	}
	fmt.Fprintf(&out, "\nbenign identities flagged: %d of %d (%.3f%%)", r.Benign.Flagged, r.Benign.Identities, 100*r.Benign.Rate)
	var kinds []string
	for _, k := range r.Benign.ByKind {
		kinds = append(kinds, fmt.Sprintf("%s %d/%d", k.Kind, k.Flagged, k.Identities))
	}
	if len(kinds) > 0 {
		fmt.Fprintf(&out, "  [%s]", strings.Join(kinds, ", "))
	}
	out.WriteByte('\n')
	if len(r.Benign.ByPopulation) > 0 {
		var pops []string
		for _, p := range r.Benign.ByPopulation {
			pops = append(pops, fmt.Sprintf("%s %d/%d", p.Population, p.Flagged, p.Identities))
		}
		fmt.Fprintf(&out, "by population: %s\n", strings.Join(pops, ", "))
		for _, f := range r.Benign.FlaggedList {
			fmt.Fprintf(&out, "  flagged %s\n", f)
		}
	}
	out.WriteByte('\n')
	out.WriteString(r.variantTable())
	return out.String()
}

// variantTable renders one row per type, speed and variant: recall, right
// type, time to detect and requests made by then. Held-out variants are
// marked *.
func (r Report) variantTable() string {
	var tab bytes.Buffer
	w := tabwriter.NewWriter(&tab, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "type/speed/variant\tattackers\tdetected\trecall\tright type\tmedian TTD\tmax TTD\tmedian requests\tmax requests\n")
	for _, t := range r.Types {
		for _, v := range t.Variants {
			name := t.Type + "/" + v.Speed + "/" + v.Variant
			if v.HeldOut {
				name += " *"
			}
			reqs := func(n int) string {
				if v.Detected == 0 {
					return "-"
				}
				return fmt.Sprint(n)
			}
			fmt.Fprintf(w, "%s\t%d\t%d\t%.3f\t%.3f\t%s\t%s\t%s\t%s\n", name, v.Attackers, v.Detected, v.Recall(), ratio(v.TypeCorrect, v.Detected),
				ttd(v.MedianTTD, v.Detected), ttd(v.MaxTTD, v.Detected), reqs(v.MedianRequests), reqs(v.MaxRequests))
		}
	}
	w.Flush()
	return tab.String()
}

func ttd(d time.Duration, n int) string {
	if n == 0 {
		return "-"
	}
	return d.Round(100 * time.Millisecond).String()
}

// JSON renders the report as indented JSON.
func (r Report) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

// ReadAttacks reads attack records, one JSON object per line, as the engine
// writes them (fields type, identity.kind, identity.value, detected_at; the
// others are ignored). Blank lines are skipped.
func ReadAttacks(r io.Reader) ([]Attack, error) {
	var out []Attack
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var rec struct {
			Type     string `json:"type"`
			Identity struct {
				Kind  string `json:"kind"`
				Value string `json:"value"`
			} `json:"identity"`
			DetectedAt time.Time `json:"detected_at"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("attack line %d: %w", n, err)
		}
		if rec.Type == "" || rec.Identity.Kind == "" || rec.DetectedAt.IsZero() {
			return nil, fmt.Errorf("attack line %d: missing type, identity.kind or detected_at", n)
		}
		out = append(out, Attack{Type: rec.Type, Kind: rec.Identity.Kind, Value: rec.Identity.Value, DetectedAt: rec.DetectedAt})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read attacks: %w", err)
	}
	return out, nil
}
