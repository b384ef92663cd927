package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/detect/spec"
)

// Runtime is the runtime form of a validated Config: the settings that
// `vigil serve` and `vigil replay` build their detection from. It is
// derived in one place (Config.Runtime), so a knob cannot reach one and
// miss the other, which would make a replay silently differ from serve.
type Runtime struct {
	// specs are the APIs' compiled OpenAPI documents (NewContent).
	specs map[string]*spec.Spec

	// Secrets are the values in effect of the keys that may come from a
	// file, read when the Runtime was derived.
	Secrets Secrets
	// Fingerprinter keys identity fingerprints (fingerprint_key, or the
	// key kept in data_dir, created on first start).
	Fingerprinter *detect.Fingerprinter
	// FingerprintCheck is FingerprintCheck of the fingerprint key: what
	// replicas sharing Redis compare (the key itself never leaves).
	FingerprintCheck []byte
	// Catalog is the configured APIs with the defaults applied, and the
	// settings of discovered ones.
	Catalog *detect.Catalog
	// Budget is detection.max_memory split between the structures that
	// grow with identities and endpoints.
	Budget Budget

	trustedHops int
	maxAttacks  int
	engine      behaviour.EngineConfig
	// models are the apis[].detection settings, applied to the engine
	// once it is built.
	models []apiModel
}

// apiModel is one API's detection settings from the file.
type apiModel struct {
	api    string
	update *behaviour.ModelUpdate
}

// EngineHooks are what the caller of Runtime.NewEngine adds to the
// derived settings: how the engine runs and where its results go, never
// what it decides.
type EngineHooks struct {
	// Inline runs the engine in the caller, in record order (replay),
	// instead of on detection.workers shards.
	Inline bool
	// Block puts an entry on the block list (nil: nobody is blocked).
	Block func(detect.Entry)
	// Blocked reports a live block list entry of an identity (nil: none
	// known; see behaviour.EngineConfig.Blocked).
	Blocked func(k detect.Kind, id string, at time.Time) bool
	// OnAttack is called for every attack raised.
	OnAttack func(*detect.Attack)
	// Snapshots are models learned earlier (serve's data directory),
	// restored before apis[].detection is applied on top of them: the
	// file's settings win over what was stored.
	Snapshots []*behaviour.ModelDoc
	// OnSnapshotError is told of a snapshot that could not be restored;
	// the engine starts without it.
	OnSnapshotError func(api string, err error)
	// Trainer, Replicas and OnModelChange tie the engine to the replicas
	// sharing Redis (server/cluster: the training lease, the live replicas,
	// model changes published to the others); nil without Redis and in a
	// replay, a single node (see behaviour.EngineConfig).
	Trainer       func() bool
	Replicas      func() int
	OnModelChange func(api string, u *behaviour.ModelUpdate)
}

// Runtime derives the runtime settings of a validated configuration. It
// reads the secret files again (one may have gone since Validate) and
// creates the fingerprint key in data_dir when none is configured.
func (c *Config) Runtime() (*Runtime, error) {
	sec, errs := c.Secrets()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	key, err := fingerprintKey(c.DataDir, sec)
	if err != nil {
		return nil, err
	}
	fp, err := detect.NewFingerprinter(key)
	if err != nil {
		return nil, err
	}
	r := &Runtime{Secrets: sec, Fingerprinter: fp, FingerprintCheck: FingerprintCheck(key), Catalog: c.Catalog(), Budget: c.Budget(),
		trustedHops: c.TrustedHops, maxAttacks: c.Detection.MaxAttacks}
	r.engine = behaviour.EngineConfig{
		Workers:   c.Detection.Workers,
		MaxStates: c.Detection.MaxStates,
		MaxBytes:  r.Budget.States,
		MaxAPIs:   c.Discovery.MaxAPIs,
		Training: behaviour.TrainingConfig{
			Duration: c.Training.Duration, MinRequests: c.Training.MinRequests,
			MinIdentities: c.Training.MinIdentities, RelearnInterval: c.Training.RelearnInterval,
		},
		BlockTTL:    c.BlockTTL,
		TypeTTL:     c.typeTTLs(),
		BlockAfter:  c.Detection.BlockAfter,
		BlockWindow: c.Detection.BlockWindow,
		APIs:        r.Catalog.APIs(),
	}
	if c.Redis.Enabled() {
		// Shared windows only where there is a cluster to share them
		// with: the same for serve and for a replay of this file.
		r.engine.ShareFraction = c.Redis.ShareFraction
	}
	for _, a := range c.APIs {
		if a.Detection != nil {
			r.models = append(r.models, apiModel{a.Name, a.Detection})
		}
	}
	return r, nil
}

// Shares of detection.max_memory, in percent (Budget).
const (
	statesShare    = 60
	forensicsShare = 15
)

// Memory beyond detection.max_memory: Go's soft memory limit is the budget
// plus a quarter of it (MemoryLimit), room for the garbage collector to work
// without running all the time, for goroutine stacks and for what the
// estimates miss; the process needs NonHeapOverhead more (the binary's
// text and data mapped in, C and kernel memory the Go runtime does not
// count), measured as the idle binary's RSS (22 MB, 17 MB of it the
// binary's own pages) with room.
const (
	softLimitHeadroomPercent = 25
	NonHeapOverhead          = 32 << 20
)

// Budget is detection.max_memory split between the structures that grow
// with the number of identities and endpoints. Each structure bounded in
// bytes evicts its least recently seen entries past its share; the rest
// is what the structures bounded by count (pipeline.queue_size
// transactions, detection.max_attacks records, the inventory's
// discovery.max_apis × max_endpoints_per_api, verdict_cache_size, models,
// gRPC streams) may take.
type Budget struct {
	Total     int64 // detection.max_memory
	States    int64 // behaviour states, their indexes and sketches (60%)
	Forensics int64 // forensic records (15%)
	Rest      int64 // the count-bounded structures (25%)
}

// Budget splits detection.max_memory.
func (c *Config) Budget() Budget {
	t := c.Detection.MaxMemory
	b := Budget{Total: t, States: t * statesShare / 100, Forensics: t * forensicsShare / 100}
	b.Rest = t - b.States - b.Forensics
	return b
}

// PendingJoins is how many calls may wait for their other parts (ext_authz
// and ext_proc of one request) at once: a quarter of the rest's share at
// about 1 KiB a call, between 1,024 and 1<<20. At the 256MiB default that
// is 16,384, under a second of a flood at full speed, while the parts of
// one call arrive milliseconds apart.
func (b Budget) PendingJoins() int {
	return int(min(max(b.Rest/4/1024, 1024), 1<<20))
}

// MemoryLimit is the soft memory limit `vigil serve` gives the Go runtime
// (debug.SetMemoryLimit) unless GOMEMLIMIT is set: detection.max_memory
// plus a quarter. A pod or container needs MemoryLimit + NonHeapOverhead.
func (c *Config) MemoryLimit() int64 {
	return c.Detection.MaxMemory + c.Detection.MaxMemory*softLimitHeadroomPercent/100
}

// NewExtractor returns the extractor of client IPs and identities
// (trusted_hops, fingerprinted with the Runtime's key). Close it after use.
func (r *Runtime) NewExtractor() (*detect.Extractor, error) {
	return detect.NewExtractor(r.Fingerprinter, r.trustedHops)
}

// NewEngine builds the detection engine from the derived settings and the
// caller's hooks: the snapshots restored, then each API's detection
// settings (apis[].detection) applied.
func (r *Runtime) NewEngine(h EngineHooks) (*behaviour.Engine, error) {
	e := behaviour.NewEngine(r.engineConfig(h))
	for _, d := range h.Snapshots {
		if err := e.Restore(d); err != nil && h.OnSnapshotError != nil {
			h.OnSnapshotError(d.API, err)
		}
	}
	for _, m := range r.models {
		if err := e.Apply(m.api, m.update); err != nil {
			return nil, fmt.Errorf("apis %s detection: %w", m.api, err)
		}
	}
	return e, nil
}

// engineConfig is the engine's configuration: the derived settings, the
// hooks, and a fresh attack store (detection.max_attacks).
func (r *Runtime) engineConfig(h EngineHooks) behaviour.EngineConfig {
	ec := r.engine
	if h.Inline {
		ec.Workers = 0
	}
	ec.Block, ec.Blocked, ec.OnAttack = h.Block, h.Blocked, h.OnAttack
	ec.Trainer, ec.Replicas, ec.OnModelChange = h.Trainer, h.Replicas, h.OnModelChange
	ec.Store = detect.NewAttackStore(r.maxAttacks)
	return ec
}

// Modes of APIs when defaults.mode is empty: a configured API blocks (its
// operator chose to protect it), an API discovered from traffic only
// detects (nobody has looked at it yet).
const (
	defaultConfiguredMode = "block"
	defaultDiscoveredMode = "detect"
)

type resolvedAPI struct {
	mode     string
	maxBody  int64
	maxElems int
	ids      detect.IdentitySources
	inspect  bool
}

// modeOf is the mode of discovered APIs, or the default mode of configured
// ones: defaults.mode when set (it then applies to both, as it always has),
// else defaultDiscoveredMode or defaultConfiguredMode.
func (c *Config) modeOf(discovered bool) string {
	switch {
	case c.Defaults.Mode != "":
		return c.Defaults.Mode
	case discovered:
		return defaultDiscoveredMode
	}
	return defaultConfiguredMode
}

// resolveAPI applies the defaults to one configured API.
func (c *Config) resolveAPI(a APIConfig) resolvedAPI {
	r := resolvedAPI{mode: c.modeOf(false), maxBody: c.Defaults.MaxBodyBytes, maxElems: c.Defaults.MaxJSONElements, ids: c.Defaults.Identities,
		inspect: inspectionOn(c.Defaults.Inspection)}
	if a.Inspection != nil {
		r.inspect = inspectionOn(*a.Inspection)
	}
	if a.Mode != nil {
		r.mode = *a.Mode
	}
	if a.MaxBodyBytes != nil {
		r.maxBody = *a.MaxBodyBytes
	}
	if a.MaxJSONElements != nil {
		r.maxElems = *a.MaxJSONElements
	}
	if o := a.Identities; o != nil {
		set := func(dst *string, src *string) {
			if src != nil {
				*dst = *src
			}
		}
		set(&r.ids.TokenHeader, o.TokenHeader)
		set(&r.ids.APIKeyHeader, o.APIKeyHeader)
		set(&r.ids.APIKeyQuery, o.APIKeyQuery)
		set(&r.ids.Cookie, o.Cookie)
		set(&r.ids.UsernameHeader, o.UsernameHeader)
		set(&r.ids.UsernameClaim, o.UsernameClaim)
	}
	return r
}

// Catalog builds the API catalog of a validated configuration.
func (c *Config) Catalog() *detect.Catalog {
	apis := make([]*detect.API, 0, len(c.APIs))
	for _, a := range c.APIs {
		r := c.resolveAPI(a)
		mode, _ := detect.ParseMode(r.mode)
		hosts := make([]string, 0, len(a.Hosts))
		for _, h := range a.Hosts {
			hosts = append(hosts, strings.ToLower(h))
		}
		apis = append(apis, &detect.API{
			Name: a.Name, Hosts: hosts, BasePath: NormalizeBasePath(a.BasePath), Mode: mode,
			MaxBodyBytes: r.maxBody, MaxJSONElements: r.maxElems, Identities: r.ids.WithDefaults(),
			LoginPaths: a.LoginPaths, Inspection: r.inspect, OpenAPIPath: a.OpenAPI,
			LoginUsernameFields: loginUsernameFields(a.LoginUsernameFields),
		})
	}
	mode, _ := detect.ParseMode(c.modeOf(true))
	fallback := &detect.API{
		Name: "", BasePath: "/", Mode: mode, MaxBodyBytes: c.Defaults.MaxBodyBytes,
		MaxJSONElements: c.Defaults.MaxJSONElements, Identities: c.Defaults.Identities.WithDefaults(),
		// Discovered APIs detect by default, but decoy APIs and honeytokens
		// are configured traps: they refuse unless the operator chose detect.
		DecoysBlock: c.Defaults.Mode == "",
		Inspection:  inspectionOn(c.Defaults.Inspection),
	}
	return detect.NewCatalog(apis, fallback)
}

// loginUsernameFields is an API's login_username_fields for the catalog:
// nil when unset (the defaults), else a copy, empty when the list is.
func loginUsernameFields(p *[]string) []string {
	if p == nil {
		return nil
	}
	return append([]string{}, *p...)
}

// inspectionOn reads an inspection switch: on unless "off" (or "false").
// Validate refuses anything but on, off, true and false; empty is on, the
// embedded default.
func inspectionOn(s string) bool { return s != "off" && s != "false" }

// NormalizeBasePath removes trailing slashes; empty is "/".
func NormalizeBasePath(p string) string {
	for len(p) > 1 && strings.HasSuffix(p, "/") {
		p = p[:len(p)-1]
	}
	if p == "" {
		return "/"
	}
	return p
}

// typeTTLs converts block_ttl_by_type for the engine.
func (c *Config) typeTTLs() map[detect.AttackType]time.Duration {
	out := make(map[detect.AttackType]time.Duration, len(c.BlockTTLByType))
	for t, d := range c.BlockTTLByType {
		out[detect.AttackType(t)] = d
	}
	return out
}
