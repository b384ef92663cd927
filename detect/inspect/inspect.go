// Package inspect looks inside one request: it extracts the values of the
// query string, form and JSON bodies, selected headers, cookies and path
// segments, each with its location and key path (query.q,
// body.items[].note, header.user-agent), decodes them (URL, double URL,
// HTML entities, unicode escapes, base64 where it is clearly base64) under
// fixed caps, and runs injection detectors on them (SQL injection and XSS
// through libinjection, path traversal, command injection, SSRF targets,
// JNDI lookups, NoSQL operators, CRLF injection, XXE, shellshock), the
// expensive ones only when a cheap character-class pre-filter says a value
// could be an attack.
//
// The package imports nothing of Vigil, so the hot path (detect's enforcer
// or envoy/) can call it without an import cycle. Its attack kinds carry
// the contract's names (detect.AttackSQLInjection and the others); a test
// keeps the two in step.
//
// A Learner learns, off the hot path, what each parameter of each endpoint
// normally carries (type, length, character classes, small enums, JSON key
// sets, signature hits), trusting it only once enough distinct identities
// over enough time agree, and publishes an immutable Model; Request judges
// values against the endpoint's Profiles from it: a signature on a
// parameter that never carries such characters stands, one on a parameter
// that normally carries such text is tolerated (counted, not blocked), a
// value breaking its profile is a schema_violation, a new JSON key on a
// write a mass_assignment.
//
// JSONStringEnd and AppendJSONUnquoted read the JSON strings of a body held
// whole, for detect's login bodies and detect/spec's judge.
//
// An Inspector is safe for concurrent use; one call to Request per request,
// without allocation for benign requests in the steady state (per-request
// scratch comes from a pool; libinjection-go allocates a little inside,
// for the values the pre-filter hands it).
package inspect

import (
	"sync"
	"sync/atomic"
)

// Kind is a kind of content attack. Its String is the attack type's name of
// the contract.
type Kind uint8

// Kinds of content attacks. Shellshock is reported as CommandInjection with
// the detector "shellshock".
const (
	KindNone Kind = iota
	SQLInjection
	XSS
	CommandInjection
	PathTraversal
	SSRF
	JNDIInjection
	NoSQLInjection
	CRLFInjection
	XXE
	SchemaViolation
	MassAssignment
	numKinds
)

var kindNames = [numKinds]string{
	KindNone:         "",
	SQLInjection:     "sql_injection",
	XSS:              "xss",
	CommandInjection: "command_injection",
	PathTraversal:    "path_traversal",
	SSRF:             "ssrf",
	JNDIInjection:    "jndi_injection",
	NoSQLInjection:   "nosql_injection",
	CRLFInjection:    "crlf_injection",
	XXE:              "xxe",
	SchemaViolation:  "schema_violation",
	MassAssignment:   "mass_assignment",
}

// String is the attack type's name ("sql_injection"), "" for KindNone.
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "unknown"
}

// Kinds lists every kind but KindNone, in order.
func Kinds() []Kind {
	out := make([]Kind, 0, numKinds-1)
	for k := KindNone + 1; k < numKinds; k++ {
		out = append(out, k)
	}
	return out
}

// Set is a set of kinds, used to choose the detectors that run.
type Set uint32

// AllSignatures is every signature detector (the profile kinds,
// SchemaViolation and MassAssignment, are not signatures).
const AllSignatures Set = 1<<SQLInjection | 1<<XSS | 1<<CommandInjection | 1<<PathTraversal |
	1<<SSRF | 1<<JNDIInjection | 1<<NoSQLInjection | 1<<CRLFInjection | 1<<XXE

// Has reports whether k is in the set.
func (s Set) Has(k Kind) bool { return s&(1<<k) != 0 }

// With returns the set with k added.
func (s Set) With(k Kind) Set { return s | 1<<k }

// Without returns the set with k removed.
func (s Set) Without(k Kind) Set { return s &^ (1 << k) }

// Location is where in the request a value was found.
type Location uint8

// Locations of values.
const (
	LocNone Location = iota
	LocQuery
	LocBody
	LocHeader
	LocCookie
	LocPath
)

var locNames = [...]string{"", "query", "body", "header", "cookie", "path"}

// String is the location's name, the first element of a key path.
func (l Location) String() string {
	if int(l) < len(locNames) {
		return locNames[l]
	}
	return "unknown"
}

// Config sets what an Inspector does. Zero fields take the defaults.
type Config struct {
	// Detectors are the signature detectors that run; zero means
	// AllSignatures.
	Detectors Set
	// MaxValues caps the values inspected per request (default 256).
	MaxValues int
	// MaxValueBytes caps the bytes of one value inspected, raw (default
	// 4096); the rest of a longer value is not looked at.
	MaxValueBytes int
	// MaxTotalBytes caps the raw bytes of values inspected per request
	// (default 65536).
	MaxTotalBytes int
	// MaxBodyBytes caps the body bytes parsed (default 1 MiB).
	MaxBodyBytes int
}

// Defaults for Config.
const (
	DefaultMaxValues     = 256
	DefaultMaxValueBytes = 4096
	DefaultMaxTotalBytes = 64 << 10
	DefaultMaxBodyBytes  = 1 << 20
)

func (c Config) withDefaults() Config {
	if c.Detectors == 0 {
		c.Detectors = AllSignatures
	}
	if c.MaxValues <= 0 {
		c.MaxValues = DefaultMaxValues
	}
	if c.MaxValueBytes <= 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.MaxTotalBytes <= 0 {
		c.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return c
}

// RequestView is what Request reads of one request. Strings and the body
// are only read, never kept past the call.
type RequestView struct {
	Method string
	// Path is the request's path without the query string, as sent.
	Path string
	// Query is the raw query string, without the '?'.
	Query       string
	ContentType string
	// Body is the request body (what ext_proc buffered), possibly cut.
	Body      []byte
	UserAgent string
	Referer   string
	// Cookie is the Cookie header's value.
	Cookie string
}

// Finding is what Request found: Kind is KindNone when nothing was. It is
// a plain value with fixed-size room for the key path and an excerpt, so
// returning it allocates nothing.
type Finding struct {
	Kind Kind
	// Detector names the detector or rule that matched ("libinjection",
	// "dotdot", "shellshock").
	Detector string
	Loc      Location
	// Decodings are the decodings applied to the value that matched.
	Decodings Decodings
	// Tolerated is set when the only finding is a signature hit on a
	// parameter whose learned profile normally carries such text (a rich
	// text field): count it, do not block.
	Tolerated bool
	// Values is how many values were inspected; Capped says which caps
	// were hit during this request.
	Values int
	Capped Caps

	pathLen, excerptLen uint8
	path                [maxKeyPath]byte
	excerpt             [maxExcerpt]byte
}

const (
	maxKeyPath = 96
	maxExcerpt = 64
)

// KeyPath is where the value was found, e.g. "query.q",
// "body.items[].note", "header.user-agent".
func (f *Finding) KeyPath() string { return string(f.path[:f.pathLen]) }

// Excerpt is the start of the decoded value that matched, capped in length,
// with control characters shown as '?'.
func (f *Finding) Excerpt() string { return string(f.excerpt[:f.excerptLen]) }

// Caps is a set of caps hit.
type Caps uint8

// The caps.
const (
	CapValues     Caps = 1 << iota // more values than MaxValues
	CapValueBytes                  // a value longer than MaxValueBytes
	CapTotalBytes                  // more bytes than MaxTotalBytes
	CapBodyBytes                   // a body longer than MaxBodyBytes
	CapDepth                       // JSON nested deeper than the key path can say
)

// Stats counts, since the Inspector was made, the requests inspected, the
// findings (Tolerated: signature hits on parameters that normally carry
// such text, not findings), and how often each cap was hit.
type Stats struct {
	Requests, Findings, Tolerated                    uint64
	CappedValues, CappedValueBytes, CappedTotalBytes uint64
	CappedBodyBytes, CappedDepth                     uint64
}

// Inspector inspects requests; build it with New.
type Inspector struct {
	cfg  Config
	pool sync.Pool

	requests, findings, tolerated      atomic.Uint64
	capValues, capValueBytes, capTotal atomic.Uint64
	capBody, capDepth                  atomic.Uint64
}

// New returns an Inspector for cfg.
func New(cfg Config) *Inspector {
	in := &Inspector{cfg: cfg.withDefaults()}
	in.pool.New = func() any { return newState(in) }
	return in
}

// Config is the Inspector's configuration with the defaults filled in.
func (in *Inspector) Config() Config { return in.cfg }

// Stats returns the Inspector's counters.
func (in *Inspector) Stats() Stats {
	return Stats{
		Requests: in.requests.Load(), Findings: in.findings.Load(), Tolerated: in.tolerated.Load(),
		CappedValues: in.capValues.Load(), CappedValueBytes: in.capValueBytes.Load(),
		CappedTotalBytes: in.capTotal.Load(), CappedBodyBytes: in.capBody.Load(),
		CappedDepth: in.capDepth.Load(),
	}
}

// Request inspects one request and returns the first finding (Kind is
// KindNone when there is none). prof, the learned profiles of the request's
// endpoint, may be nil: every signature hit is then a finding.
func (in *Inspector) Request(r *RequestView, prof *Profiles) Finding {
	st := in.pool.Get().(*state)
	st.reset(prof)
	st.request(r)
	f := st.f
	if f.Kind == KindNone && st.tol.Kind != KindNone {
		f = st.tol
		f.Tolerated = true
	}
	f.Values = st.values
	f.Capped = st.capped
	in.pool.Put(st)

	in.requests.Add(1)
	switch {
	case f.Tolerated:
		in.tolerated.Add(1)
	case f.Kind != KindNone:
		in.findings.Add(1)
	}
	if f.Capped != 0 {
		in.countCaps(f.Capped)
	}
	return f
}

func (in *Inspector) countCaps(c Caps) {
	if c&CapValues != 0 {
		in.capValues.Add(1)
	}
	if c&CapValueBytes != 0 {
		in.capValueBytes.Add(1)
	}
	if c&CapTotalBytes != 0 {
		in.capTotal.Add(1)
	}
	if c&CapBodyBytes != 0 {
		in.capBody.Add(1)
	}
	if c&CapDepth != 0 {
		in.capDepth.Add(1)
	}
}

// Value inspects one value found at loc under keyPath (for tests and
// tools; Request is the hot path's call).
func (in *Inspector) Value(loc Location, keyPath, raw string) Finding {
	st := in.pool.Get().(*state)
	st.reset(nil)
	st.setPath(loc, keyPath)
	st.emit(loc, bytesOf(raw), decodeQuery)
	f := st.f
	f.Values = st.values
	f.Capped = st.capped
	in.pool.Put(st)
	return f
}
