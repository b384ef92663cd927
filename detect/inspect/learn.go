package inspect

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"sync"
	"time"
)

// LearnConfig holds the learner's knobs and the trust thresholds. Zero
// fields take the defaults.
type LearnConfig struct {
	// MinIdentities is how many distinct identities must agree before a
	// profile, or a type, character class, tolerated signature or JSON
	// key within it, is trusted (default 5).
	MinIdentities int `json:"min_identities"`
	// MinSpan is how long a profile must have been learned, from its
	// first value to its last (default 1h).
	MinSpan Duration `json:"min_span"`
	// MinSamples is how many values a parameter (and requests an
	// endpoint) must have had (default 50).
	MinSamples int `json:"min_samples"`
	// MaxEndpoints, MaxParams (per endpoint), MaxKeys (per JSON object)
	// and MaxEnum (distinct values kept as an enum, each at most
	// MaxEnumLen bytes) bound the memory (defaults 1024, 256, 128, 16,
	// 32).
	MaxEndpoints int `json:"max_endpoints"`
	MaxParams    int `json:"max_params"`
	MaxKeys      int `json:"max_keys"`
	MaxEnum      int `json:"max_enum"`
	MaxEnumLen   int `json:"max_enum_len"`
}

// Duration is a time.Duration written in JSON as a string ("1h0m0s");
// a number is read as nanoseconds.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration: %s is neither a string nor a number", b)
	}
	*d = Duration(n)
	return nil
}

// Learner defaults.
const (
	DefaultMinIdentities = 5
	DefaultMinSpan       = time.Hour
	DefaultMinSamples    = 50
	DefaultMaxEndpoints  = 1024
	DefaultMaxParams     = 256
	DefaultMaxKeys       = 128
	DefaultMaxEnum       = 16
	DefaultMaxEnumLen    = 32
)

func (c LearnConfig) withDefaults() LearnConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MinIdentities, DefaultMinIdentities)
	def(&c.MinSamples, DefaultMinSamples)
	def(&c.MaxEndpoints, DefaultMaxEndpoints)
	def(&c.MaxParams, DefaultMaxParams)
	def(&c.MaxKeys, DefaultMaxKeys)
	def(&c.MaxEnum, DefaultMaxEnum)
	def(&c.MaxEnumLen, DefaultMaxEnumLen)
	if c.MinSpan <= 0 {
		c.MinSpan = Duration(DefaultMinSpan)
	}
	if c.MinIdentities > 64 {
		c.MinIdentities = 64 // what an idSketch can count
	}
	return c
}

type epKey struct{ endpoint, method string }

// Learner learns per-parameter profiles from requests, off the hot path
// (a pipeline sink), and publishes them as an immutable Model. The caller
// leaves out identities flagged as attackers, as the behaviour models do.
// It is safe for concurrent use.
type Learner struct {
	in  *Inspector
	cfg LearnConfig

	mu  sync.Mutex
	eps map[epKey]*Profiles
	st  *state
	// the request being observed
	cur *Profiles
	bit idSketch
	at  time.Time
}

// NewLearner returns a Learner extracting values as in does.
func NewLearner(in *Inspector, cfg LearnConfig) *Learner {
	l := &Learner{in: in, cfg: cfg.withDefaults(), eps: map[epKey]*Profiles{}}
	l.st = newState(in)
	l.st.visit = l.value
	l.st.visitKey = l.key
	return l
}

// Config is the learner's configuration with the defaults filled in.
func (l *Learner) Config() LearnConfig { return l.cfg }

// Observe learns from one request to endpoint (its template, /orders/{id})
// made by identity at a time.
func (l *Learner) Observe(endpoint string, r *RequestView, identity string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := epKey{endpoint, r.Method}
	p := l.eps[k]
	if p == nil {
		if len(l.eps) >= l.cfg.MaxEndpoints {
			return
		}
		p = &Profiles{Endpoint: endpoint, Method: r.Method, First: at,
			Params: map[string]*ParamProfile{}, Objects: map[string]*ObjectProfile{}}
		l.eps[k] = p
	}
	p.Requests++
	p.IDs |= identityBit(identity)
	if at.After(p.Last) {
		p.Last = at
	}
	if at.Before(p.First) {
		p.First = at
	}
	l.cur, l.bit, l.at = p, identityBit(identity), at
	l.st.reset(nil)
	l.st.request(r)
	l.cur = nil
}

// value learns one value (the state's visit hook).
func (l *Learner) value(loc Location, path, v []byte) {
	p := l.cur
	pp := p.Params[string(path)]
	if pp == nil {
		if len(p.Params) >= l.cfg.MaxParams {
			return
		}
		pp = &ParamProfile{First: l.at, Types: map[string]*Seen{}, Classes: map[string]idSketch{}}
		p.Params[string(path)] = pp
	}
	pp.Count++
	if pp.seq != p.Requests {
		pp.seq = p.Requests
		pp.Present++
	}
	pp.IDs |= l.bit
	if l.at.After(pp.Last) {
		pp.Last = l.at
	}
	if l.at.Before(pp.First) {
		pp.First = l.at
	}
	t := TypeOf(v).String()
	s := pp.Types[t]
	if s == nil {
		s = &Seen{}
		pp.Types[t] = s
	}
	s.Count++
	s.IDs |= l.bit
	c := classify(v)
	for cc := c; cc != 0; cc &= cc - 1 {
		name := classNames[bits.TrailingZeros32(uint32(cc))]
		pp.Classes[name] |= l.bit
	}
	if k, _ := l.st.detectValue(loc, v, c); k != KindNone {
		if pp.Signatures == nil {
			pp.Signatures = map[string]idSketch{}
		}
		pp.Signatures[k.String()] |= l.bit
	}
	if len(v) > pp.LenMax {
		pp.LenMax = len(v)
	}
	pp.LenHist[min(bits.Len(uint(len(v))), len(pp.LenHist)-1)]++
	if !pp.EnumOpen && SecretParam(path) {
		// A password's few values are passwords: never kept, nor exported.
		pp.EnumOpen, pp.Enum = true, nil
	}
	if !pp.EnumOpen {
		if _, ok := pp.Enum[string(v)]; ok {
			pp.Enum[string(v)]++
		} else if len(v) <= l.cfg.MaxEnumLen && len(pp.Enum) < l.cfg.MaxEnum {
			if pp.Enum == nil {
				pp.Enum = map[string]uint64{}
			}
			pp.Enum[string(v)] = 1
		} else {
			pp.EnumOpen, pp.Enum = true, nil
		}
	}
}

// key learns one JSON key of the object at objPath (the state's visitKey
// hook).
func (l *Learner) key(objPath, key []byte) {
	p := l.cur
	op := p.Objects[string(objPath)]
	if op == nil {
		if len(p.Objects) >= l.cfg.MaxParams {
			return
		}
		op = &ObjectProfile{Keys: map[string]idSketch{}}
		p.Objects[string(objPath)] = op
	}
	op.Count++
	op.IDs |= l.bit
	if op.KeysOpen {
		return
	}
	if _, ok := op.Keys[string(key)]; !ok && len(op.Keys) >= l.cfg.MaxKeys {
		op.KeysOpen, op.Keys = true, nil
		return
	}
	op.Keys[string(key)] |= l.bit
}

// Model is a published, immutable set of learned profiles, exported and
// imported as JSON with the rest of an API's model.
type Model struct {
	Config    LearnConfig `json:"config"`
	Endpoints []*Profiles `json:"endpoints"`

	index map[epKey]*Profiles
}

// Model returns a snapshot of what the learner learned, with trust
// decided by its thresholds.
func (l *Learner) Model() *Model {
	l.mu.Lock()
	m := &Model{Config: l.cfg, Endpoints: make([]*Profiles, 0, len(l.eps))}
	for _, p := range l.eps {
		m.Endpoints = append(m.Endpoints, p.clone())
	}
	l.mu.Unlock()
	m.derive()
	return m
}

// Restore replaces what the learner learned with an imported model's
// profiles (its thresholds stay the learner's).
func (l *Learner) Restore(m *Model) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.eps = map[epKey]*Profiles{}
	for _, p := range m.Endpoints {
		c := p.clone()
		for _, pp := range c.Params {
			pp.seq = c.Requests
		}
		l.eps[epKey{p.Endpoint, p.Method}] = c
	}
}

// ParseModel reads a model exported as JSON and decides trust again from
// its configuration.
func ParseModel(b []byte) (*Model, error) {
	var m Model
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("inspection model: %w", err)
	}
	for i, p := range m.Endpoints {
		if p == nil {
			return nil, fmt.Errorf("inspection model: endpoint %d is null", i)
		}
		for k, pp := range p.Params {
			if pp == nil {
				return nil, fmt.Errorf("inspection model: %s %s: parameter %q is null", p.Method, p.Endpoint, k)
			}
			for name := range pp.Types {
				if _, ok := typeByName(name); !ok {
					return nil, fmt.Errorf("inspection model: %s %s: parameter %q: unknown type %q", p.Method, p.Endpoint, k, name)
				}
			}
			for name := range pp.Classes {
				if _, ok := classByName(name); !ok {
					return nil, fmt.Errorf("inspection model: %s %s: parameter %q: unknown character class %q", p.Method, p.Endpoint, k, name)
				}
			}
		}
		for k, op := range p.Objects {
			if op == nil {
				return nil, fmt.Errorf("inspection model: %s %s: object %q is null", p.Method, p.Endpoint, k)
			}
		}
	}
	m.derive()
	return &m, nil
}

// WithConfig returns a copy of the model judged with other thresholds
// (GET|PUT /v1/models/{api} changing them).
func (m *Model) WithConfig(cfg LearnConfig) *Model {
	n := &Model{Config: cfg, Endpoints: make([]*Profiles, len(m.Endpoints))}
	for i, p := range m.Endpoints {
		n.Endpoints[i] = p.clone()
	}
	n.derive()
	return n
}

// Profiles returns the profiles of an endpoint template and method, nil
// when there are none (or m is nil). It does not allocate.
func (m *Model) Profiles(endpoint, method string) *Profiles {
	if m == nil {
		return nil
	}
	return m.index[epKey{endpoint, method}]
}

// derive decides trust and the judged sets from the counts.
func (m *Model) derive() {
	m.Config = m.Config.withDefaults()
	cfg := m.Config
	minIDs, span := cfg.MinIdentities, time.Duration(cfg.MinSpan)
	m.index = make(map[epKey]*Profiles, len(m.Endpoints))
	for _, p := range m.Endpoints {
		if p.Params == nil {
			p.Params = map[string]*ParamProfile{}
		}
		m.index[epKey{p.Endpoint, p.Method}] = p
		p.minIDs = minIDs
		p.Trusted = p.IDs.count() >= minIDs && p.Last.Sub(p.First) >= span && p.Requests >= uint64(cfg.MinSamples)
		for _, pp := range p.Params {
			pp.Trusted = p.Trusted && pp.IDs.count() >= minIDs && pp.Last.Sub(pp.First) >= span &&
				pp.Count >= uint64(cfg.MinSamples)
			pp.allowT, pp.allowC, pp.tolerates, pp.Type = 0, 0, 0, ""
			var most uint64
			for name, s := range pp.Types {
				t, _ := typeByName(name)
				if s.IDs.count() >= minIDs {
					pp.allowT |= accepts[t]
				}
				if s.Count > most || s.Count == most && name < pp.Type {
					most, pp.Type = s.Count, name
				}
			}
			for name, ids := range pp.Classes {
				if c, ok := classByName(name); ok && ids.count() >= minIDs {
					pp.allowC |= c
				}
			}
			for name, ids := range pp.Signatures {
				for _, k := range Kinds() {
					if k.String() == name && ids.count() >= minIDs {
						pp.tolerates = pp.tolerates.With(k)
					}
				}
			}
			// An enum is judged only for identifier-like parameters with a
			// few values, each seen many times on average: free text that
			// happened to repeat is not an enum.
			pp.enumOK = !pp.EnumOpen && len(pp.Enum) >= 2 && pp.Count >= 20*uint64(len(pp.Enum)) &&
				(pp.Type == "token" || pp.Type == "boolean")
		}
		for _, op := range p.Objects {
			op.Trusted = p.Trusted && op.IDs.count() >= minIDs && op.Count >= uint64(cfg.MinSamples)
		}
	}
}

func (p *Profiles) clone() *Profiles {
	c := *p
	c.Params = make(map[string]*ParamProfile, len(p.Params))
	for k, pp := range p.Params {
		q := *pp
		q.Types = make(map[string]*Seen, len(pp.Types))
		for n, s := range pp.Types {
			s2 := *s
			q.Types[n] = &s2
		}
		q.Classes = cloneMap(pp.Classes)
		q.Signatures = cloneMap(pp.Signatures)
		q.Enum = cloneMap(pp.Enum)
		c.Params[k] = &q
	}
	c.Objects = make(map[string]*ObjectProfile, len(p.Objects))
	for k, op := range p.Objects {
		o := *op
		o.Keys = cloneMap(op.Keys)
		c.Objects[k] = &o
	}
	return &c
}

func cloneMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	c := make(map[string]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
