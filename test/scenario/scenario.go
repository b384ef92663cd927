// Package scenario owns Vigil's labelled traffic: a deterministic generator of
// recorded API calls against a model of the talk's bidding shop, with benign
// populations and attackers of every detection type, and the evaluator that
// scores the attacks an engine raised against those labels (per type recall,
// type accuracy, time to detect, and the benign false-positive rate).
//
// Traffic is produced in recorded time only: the same Config yields the same
// records, byte for byte, on every machine. The first TrainingDuration holds
// benign traffic only; attackers start after it while benign traffic goes on.
package scenario

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// Identity kinds, as the engine names them.
const (
	KindIP       = "ip"
	KindToken    = "token"
	KindAPIKey   = "api_key"
	KindCookie   = "cookie"
	KindUsername = "username"
)

// Attack types, as the engine names them.
const (
	TypeProbing            = "probing"
	TypeExcessiveErrors    = "excessive_errors"
	TypeCredentialStuffing = "credential_stuffing"
	TypeStolenToken        = "stolen_token"
	TypeDataExfiltration   = "data_exfiltration"
	TypeExtremeActivity    = "extreme_activity"
	TypeBOLAEnumeration    = "bola_enumeration"
	TypeMassDeletion       = "mass_deletion"
	TypeOversizedPayload   = "oversized_payload"
)

// Speeds of an attacker.
const (
	SpeedFast = "fast"
	SpeedSlow = "slow"
	// SpeedStealth is an attacker of the stealth preset whose rates and
	// totals are set from the benign population's own extremes.
	SpeedStealth = "stealth"
)

// AttackTypes lists every attack type the generator produces, in report order.
func AttackTypes() []string {
	return []string{
		TypeProbing, TypeExcessiveErrors, TypeCredentialStuffing, TypeStolenToken,
		TypeDataExfiltration, TypeExtremeActivity, TypeBOLAEnumeration,
		TypeMassDeletion, TypeOversizedPayload,
	}
}

// Identity is one client identity in clear: an IP, a username, or the raw
// credential of a token (without the "Bearer " scheme), API key or session
// cookie.
type Identity struct {
	Kind string `json:"kind"`
	Raw  string `json:"raw"`
}

func (id Identity) String() string { return id.Kind + ":" + id.Raw }

// Attacker labels one attack in the traffic.
type Attacker struct {
	Type string `json:"type"`
	// Identity is the identity the attack should be attributed to.
	Identity Identity `json:"identity"`
	// Start is the time of the attacker's first request; End of its last.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Speed string    `json:"speed"`
	// Variant names the flavour within the type ("stuffing", "spraying",
	// "brute_force", "cookie", …).
	Variant  string `json:"variant"`
	Requests int    `json:"requests"`
	// Uses is every identity the attacker's requests carried, Identity
	// included. None of them is ever used by benign traffic.
	Uses []Identity `json:"uses"`
	// Members are identities that name the attacker as well as Identity
	// does: a distributed attacker's other networks and its addresses.
	Members []Identity `json:"members,omitempty"`
	// HeldOut marks a stealthy variant kept out of tuning (left out when
	// Config.HeldOutVariants is off).
	HeldOut bool `json:"held_out,omitempty"`
	// AlsoRight are the other attack types that name the attacker rightly:
	// a more specific detector that catches what its calls are (malformed
	// queries that break the API's declared parameter types are
	// schema_violation) before the behaviour adds up.
	AlsoRight []string `json:"also_right,omitempty"`
	// Times are the times of the attacker's requests, in order: the
	// evaluation counts the requests it made before it was detected.
	Times []time.Time `json:"-"`
}

// Scenario is generated traffic with its labels.
type Scenario struct {
	// Config is the configuration with every default filled in.
	Config Config
	// TrainingEnd is Config.Start + TrainingDuration: no attacker traffic
	// comes before it. End is where traffic stops.
	TrainingEnd, End time.Time
	// Records are sorted by time. Records of one client may share their
	// RequestHeaders map: treat it as read-only.
	Records []detect.Record
	// Attackers are in order of start.
	Attackers []Attacker
	// Benign is every identity benign traffic used, sorted by kind and value.
	Benign []Identity
	// Population names the benign population each of Benign belongs to
	// (PopUser, PopNAT, PopCrawler, …), index for index.
	Population []string
	// Extremes are the benign traffic's extremes the stealthy attackers
	// were set from; nil when the scenario has none.
	Extremes *Extremes
}

// Config describes a scenario. Zero fields take the preset's value (Fast
// selects the CI-sized preset); a negative population size means none.
type Config struct {
	Seed uint64
	// Start is the time of the first record (default 2026-11-27T08:00:00Z).
	Start time.Time
	// TrainingDuration is the benign-only phase (default 2h).
	TrainingDuration time.Duration
	// AttackDuration follows training; benign traffic continues (default 1h).
	AttackDuration time.Duration

	// Users are ordinary users, each behind an address of their own.
	Users int
	// NewUsers are ordinary users whose first call comes after training.
	NewUsers int
	// NATSites are corporate proxies, each one address for NATUsers users.
	NATSites, NATUsers int
	// MobileUsers move between their home and carrier addresses, within a
	// session too.
	MobileUsers int
	// Partners are integrations with an API key calling at a steady rate;
	// NewPartners of them start after training.
	Partners, NewPartners int
	// BatchJobs pull bursts of exports at a fixed minute of every
	// BatchPeriod (default 1h, so that training sees them).
	BatchJobs   int
	BatchPeriod time.Duration

	// AttackersPerType alternates fast and slow attackers of each type.
	AttackersPerType int
	// Types restricts the attack types generated (all when empty).
	Types []string
	// Intensity multiplies attack rates, sizes and spreads (default 1).
	Intensity float64

	// Fast selects the CI-sized preset for zero fields.
	Fast bool

	// Stealth selects the stealth preset for zero fields (StealthConfig),
	// and has every login carry the attempted name in its body (a form for
	// web users, JSON for apps and integrations) and not in x-username.
	Stealth bool
	// Crawlers are search-engine and price-comparison crawlers, each from
	// an address of its own, walking the catalogue with many missing item
	// IDs (404) at a steady rate.
	Crawlers int
	// IntegrationSites are shared egress addresses, each carrying
	// IntegrationClients API keys and service accounts.
	IntegrationSites, IntegrationClients int
	// StealthAttackers is the number of stealthy attackers of each stealthy
	// variant (rates and totals set from the benign extremes).
	StealthAttackers int
	// HeldOutVariants includes the stealthy variants kept out of tuning.
	// StealthConfig turns it on; tuning runs turn it off. It takes no
	// default from the preset.
	HeldOutVariants bool
	// NextHeldOut, with HeldOutVariants, includes the next held-out set
	// too (NextHeldOutVariants): off in the suite's runs, on to measure it.
	NextHeldOut bool
}

// DefaultStart is the default time of the first record.
var DefaultStart = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

// FastConfig is the CI-sized preset: about 200k records, generated well
// under a second.
func FastConfig(seed uint64) Config {
	return Config{
		Seed: seed, Start: DefaultStart, TrainingDuration: 2 * time.Hour, AttackDuration: time.Hour,
		Users: 2000, NewUsers: 200, NATSites: 1, NATUsers: 150, MobileUsers: 300,
		Partners: 4, NewPartners: 1, BatchJobs: 2, BatchPeriod: time.Hour,
		AttackersPerType: 6, Intensity: 1, Fast: true,
	}
}

// FullConfig is the full preset, also that of a zero Config: about 1.4M
// records, generated in a few seconds.
func FullConfig(seed uint64) Config {
	return Config{
		Seed: seed, Start: DefaultStart, TrainingDuration: 2 * time.Hour, AttackDuration: time.Hour,
		Users: 20000, NewUsers: 2000, NATSites: 4, NATUsers: 300, MobileUsers: 3000,
		Partners: 20, NewPartners: 3, BatchJobs: 6, BatchPeriod: time.Hour,
		AttackersPerType: 20, Intensity: 1,
	}
}

// StealthConfig is the stealth preset: the fast preset's populations and
// attackers, with five corporate NATs of 60 users instead of one of 150,
// crawlers and integrations behind shared egress addresses, login names in
// request bodies only, and four stealthy attackers of every stealthy
// variant, the held-out ones included.
func StealthConfig(seed uint64) Config {
	c := FastConfig(seed)
	c.NATSites, c.NATUsers = 5, 60
	c.Stealth, c.Crawlers, c.IntegrationSites, c.IntegrationClients = true, 4, 3, 5
	c.StealthAttackers, c.HeldOutVariants = 4, true
	return c
}

// withDefaults fills zero fields from the preset and turns negative sizes
// into zero.
func (c Config) withDefaults() Config {
	p := FullConfig(c.Seed)
	switch {
	case c.Stealth:
		p = StealthConfig(c.Seed)
	case c.Fast:
		p = FastConfig(c.Seed)
	}
	if c.Start.IsZero() {
		c.Start = p.Start
	}
	c.Start = c.Start.UTC().Truncate(time.Millisecond)
	durOr := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	durOr(&c.TrainingDuration, p.TrainingDuration)
	durOr(&c.AttackDuration, p.AttackDuration)
	durOr(&c.BatchPeriod, p.BatchPeriod)
	sizeOr := func(v *int, d int) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			*v = 0
		}
	}
	sizeOr(&c.Users, p.Users)
	sizeOr(&c.NewUsers, p.NewUsers)
	sizeOr(&c.NATSites, p.NATSites)
	sizeOr(&c.NATUsers, p.NATUsers)
	sizeOr(&c.MobileUsers, p.MobileUsers)
	sizeOr(&c.Partners, p.Partners)
	sizeOr(&c.NewPartners, p.NewPartners)
	sizeOr(&c.BatchJobs, p.BatchJobs)
	sizeOr(&c.AttackersPerType, p.AttackersPerType)
	sizeOr(&c.Crawlers, p.Crawlers)
	sizeOr(&c.IntegrationSites, p.IntegrationSites)
	sizeOr(&c.IntegrationClients, p.IntegrationClients)
	sizeOr(&c.StealthAttackers, p.StealthAttackers)
	if c.Intensity <= 0 {
		c.Intensity = p.Intensity
	}
	if len(c.Types) == 0 {
		c.Types = AttackTypes()
	}
	c.Types = slices.Clone(c.Types)
	return c
}

// Generate produces the scenario cfg describes. Unknown attack types in
// cfg.Types are ignored.
func Generate(cfg Config) *Scenario {
	cfg = cfg.withDefaults()
	g := newGen(cfg)
	g.benignTraffic()
	if cfg.StealthAttackers > 0 {
		g.ext = measureExtremes(g.records.len(), g.records.at, cfg.Start, g.pop)
	}
	attackers := append(g.attackTraffic(), g.stealthTraffic()...)

	slices.SortStableFunc(attackers, func(a, b Attacker) int { return a.Start.Compare(b.Start) })
	benign := make([]Identity, 0, len(g.benign))
	for id := range g.benign {
		benign = append(benign, id)
	}
	sortIdentities(benign)
	pops := make([]string, len(benign))
	for i, id := range benign {
		pops[i] = g.pop[id]
	}
	return &Scenario{
		Config: cfg, TrainingEnd: g.trainEnd, End: g.end,
		Records: g.records.sorted(), Attackers: attackers, Benign: benign, Population: pops,
		Extremes: g.ext,
	}
}

func sortIdentities(ids []Identity) {
	slices.SortFunc(ids, func(a, b Identity) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Raw, b.Raw)
	})
}

// WriteJSONL writes records as replay input: one JSON object per line.
func WriteJSONL(w io.Writer, records []detect.Record) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range records {
		if err := enc.Encode(&records[i]); err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
	}
	return bw.Flush()
}
