package detect

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"hash/maphash"
	"math/bits"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// Reason says why a verdict is what it is.
type Reason uint8

// Reasons.
const (
	ReasonNone Reason = iota
	ReasonAllowList
	ReasonBlockList
	ReasonDecoy
	ReasonBodyTooLarge
	ReasonTooManyElements
	ReasonJSONTooDeep
	// Content inspection's reasons (content.go), one per attack type, in
	// the order of detect/inspect's kinds: the reason is the type's name.
	ReasonSQLInjection
	ReasonXSS
	ReasonCommandInjection
	ReasonPathTraversal
	ReasonSSRF
	ReasonJNDIInjection
	ReasonNoSQLInjection
	ReasonCRLFInjection
	ReasonXXE
	ReasonSchemaViolation
	ReasonMassAssignment
	numReasons
)

var reasonNames = [numReasons]string{"none", "allowlist", "blocklist", "decoy", "body_too_large", "too_many_json_elements", "json_too_deep",
	string(AttackSQLInjection), string(AttackXSS), string(AttackCommandInjection), string(AttackPathTraversal), string(AttackSSRF),
	string(AttackJNDIInjection), string(AttackNoSQLInjection), string(AttackCRLFInjection), string(AttackXXE),
	string(AttackSchemaViolation), string(AttackMassAssignment)}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons lists every reason, for metrics.
func Reasons() []Reason {
	out := make([]Reason, numReasons)
	for i := range out {
		out[i] = Reason(i)
	}
	return out
}

// refuses reports whether a rule with this reason refuses the request.
func (r Reason) refuses() bool { return r >= ReasonBlockList }

// Request is what the enforcement hot path knows of one API call.
type Request struct {
	API        *API
	Host       string
	Method     string
	Path       string // without the query string
	Query      string
	Identities Identities
	// ContentLength is the declared request body size, or -1.
	ContentLength int64
	// UserAgent is the client's user agent, for records.
	UserAgent string
	// PasswordFP is the fingerprint of a Basic authorization's password:
	// not an identity (a common password is shared by many users), only
	// compared with honeytokens.
	PasswordFP string
}

// DecoyResponse is how Vigil answers a call to a decoy.
type DecoyResponse struct {
	Status  int
	Headers [][2]string
	Body    []byte
	// Delay holds the answer back, as a slow real endpoint would.
	Delay time.Duration
}

// DecoyFunc is the decoy hook of the hot path: it returns the decoy answer
// when the request touches a decoy, or nil. It must not block.
type DecoyFunc func(req *Request) *DecoyResponse

// Verdict is the answer to one request, or to one of its bodies.
type Verdict struct {
	// Deny is set when the request is refused: a rule fired and the API is
	// in block mode.
	Deny bool
	// WouldBlock is set when a rule fired but the API's mode (learn or
	// detect) keeps the request flowing.
	WouldBlock bool
	// Status is the HTTP status of the refusal: 403, 413, or the decoy's.
	Status int
	Reason Reason
	// Match is the list entry that decided, for allowlist and blocklist.
	Match *Entry
	// Decoy is the decoy's answer, for ReasonDecoy.
	Decoy *DecoyResponse
	// DecisionID identifies a refusal (or a would-be refusal) in logs, the
	// response header and attack records.
	DecisionID string
}

// Refused reports whether a rule fired, whatever the mode.
func (v *Verdict) Refused() bool { return v.Deny || v.WouldBlock }

// Enforcer decides on requests: allow list, then block list, then decoys,
// then hard limits. It does no I/O and takes no lock shared by all requests.
type Enforcer struct {
	allow, block *List
	cache        *ristretto.Cache[uint64, *listVerdict]
	seed, check  maphash.Seed
	decoy        atomic.Pointer[DecoyFunc]
	ids          *IDGenerator
}

type listVerdict struct {
	check      uint64
	gen        uint64
	validUntil int64 // unix nanoseconds; 0: until the lists change
	reason     Reason
	entry      Entry
}

// NewEnforcer returns an enforcer over the given lists. cacheSize bounds the
// verdict cache in entries; 0 disables it.
func NewEnforcer(allow, block *List, cacheSize int64) (*Enforcer, error) {
	e := &Enforcer{allow: allow, block: block, seed: maphash.MakeSeed(), check: maphash.MakeSeed(), ids: NewIDGenerator()}
	if cacheSize > 0 {
		c, err := ristretto.NewCache(&ristretto.Config[uint64, *listVerdict]{
			NumCounters:        cacheSize * 10,
			MaxCost:            cacheSize,
			BufferItems:        64,
			IgnoreInternalCost: true,
		})
		if err != nil {
			return nil, err
		}
		e.cache = c
	}
	return e, nil
}

// Close releases the verdict cache.
func (e *Enforcer) Close() {
	if e.cache != nil {
		e.cache.Close()
	}
}

// SetDecoy installs the decoy hook; nil removes it.
func (e *Enforcer) SetDecoy(f DecoyFunc) {
	if f == nil {
		e.decoy.Store(nil)
		return
	}
	e.decoy.Store(&f)
}

// Lists returns the allow and block lists.
func (e *Enforcer) Lists() (allow, block *List) { return e.allow, e.block }

// IDs returns the decision ID generator.
func (e *Enforcer) IDs() *IDGenerator { return e.ids }

// Check decides on a request from its headers.
func (e *Enforcer) Check(req *Request, now time.Time) Verdict {
	lv := e.lists(&req.Identities, now)
	switch lv.reason {
	case ReasonAllowList:
		entry := lv.entry
		return Verdict{Reason: ReasonAllowList, Match: &entry}
	case ReasonBlockList:
		entry := lv.entry
		return e.refuse(req, Verdict{Status: 403, Reason: ReasonBlockList, Match: &entry})
	}
	if f := e.decoy.Load(); f != nil {
		if d := (*f)(req); d != nil {
			return e.refuse(req, Verdict{Status: d.Status, Reason: ReasonDecoy, Decoy: d})
		}
	}
	if max := req.API.MaxBodyBytes; max > 0 && req.ContentLength > max {
		return e.refuse(req, Verdict{Status: 413, Reason: ReasonBodyTooLarge})
	}
	return Verdict{}
}

// CheckUsername decides on the user name read from a login's body
// (API.LoginUsername) after Check decided on the headers: a block list
// entry for it refuses the call as it would have refused a header's name
// (403, reason blocklist). The caller skips it for a call already refused
// or allow-listed; the other identities were looked up by Check.
func (e *Enforcer) CheckUsername(req *Request, now time.Time) Verdict {
	if entry, ok := e.block.Lookup(KindUsername, req.Identities[KindUsername], now); ok {
		return e.refuse(req, Verdict{Status: 403, Reason: ReasonBlockList, Match: &entry})
	}
	return Verdict{}
}

// CheckBody applies the hard limits to the request body seen so far: total
// bytes and the JSON counter's element count and depth (json may be nil).
// It does not consult the lists: the caller skips it for a request whose
// header verdict came from the allow list, which exempts it.
func (e *Enforcer) CheckBody(req *Request, bytes int64, json *JSONCounter) Verdict {
	api := req.API
	switch {
	case api.MaxBodyBytes > 0 && bytes > api.MaxBodyBytes:
		return e.refuse(req, Verdict{Status: 413, Reason: ReasonBodyTooLarge})
	case json != nil && api.MaxJSONElements > 0 && json.MaxElements > api.MaxJSONElements:
		return e.refuse(req, Verdict{Status: 413, Reason: ReasonTooManyElements})
	case json != nil && api.MaxJSONElements > 0 && json.TooDeep:
		return e.refuse(req, Verdict{Status: 413, Reason: ReasonJSONTooDeep})
	}
	return Verdict{}
}

// refuse applies the API's mode to a verdict whose rule fired.
func (e *Enforcer) refuse(req *Request, v Verdict) Verdict {
	if Blocks(req.API, v.Reason) {
		v.Deny = true
	} else {
		v.WouldBlock = true
	}
	v.DecisionID = e.ids.Next()
	return v
}

// lists looks the identities up in the allow and block lists, through the
// verdict cache. The cache only saves work: every cached answer carries the
// lists' generation and the expiry of the entry it came from, so a list change
// or an expiry is seen at once, and a dropped Set only costs a recomputation.
func (e *Enforcer) lists(ids *Identities, now time.Time) listVerdict {
	if e.allow.Len() == 0 && e.block.Len() == 0 {
		return listVerdict{}
	}
	gen := e.generation()
	var key, chk uint64
	if e.cache != nil {
		key, chk = e.hash(ids)
		if v, ok := e.cache.Get(key); ok && v.check == chk && v.gen == gen && (v.validUntil == 0 || now.UnixNano() < v.validUntil) {
			return *v
		}
	}
	v := listVerdict{check: chk, gen: gen}
	// A user name may come from an unverified JWT or from Basic auth
	// without its password: anyone can claim one. So an allow-listed user
	// name does not override the block list; allow-listed identities a
	// client cannot forge (IP, credentials' fingerprints) do.
	if entry, ok := e.allow.matchKinds(ids, now, KindUsername); ok {
		v.reason, v.entry = ReasonAllowList, entry
	} else if entry, ok := e.block.Match(ids, now); ok {
		v.reason, v.entry = ReasonBlockList, entry
	} else if entry, ok := e.allow.Lookup(KindUsername, ids[KindUsername], now); ok {
		v.reason, v.entry = ReasonAllowList, entry
	}
	if !v.entry.ExpiresAt.IsZero() {
		v.validUntil = v.entry.ExpiresAt.UnixNano()
	}
	if e.cache != nil {
		// A copy, so that v itself stays on the stack when there is no cache.
		c := v
		e.cache.Set(key, &c, 1)
	}
	return v
}

// generation changes whenever either list changes. Lists made by one
// NewLists call share a counter; lists from two calls each have their own,
// and the sum of two counters that only grow changes whenever either does.
func (e *Enforcer) generation() uint64 {
	g := e.allow.Generation()
	if e.block.gen != e.allow.gen {
		g += e.block.Generation()
	}
	return g
}

// hash returns the cache key of a request's identities and an independent
// check of it: each identity hashed on its own (maphash.String, no
// buffering), mixed in by its position.
func (e *Enforcer) hash(ids *Identities) (uint64, uint64) {
	const mul = 0x9e3779b97f4a7c15 // odd: each step is a bijection
	var h, c uint64
	for k := range ids {
		var a, b uint64
		if s := ids[k]; s != "" {
			a, b = maphash.String(e.seed, s), maphash.String(e.check, s)
		}
		h = bits.RotateLeft64((h^a)*mul, 29) + uint64(k)
		c = bits.RotateLeft64((c^b)*mul, 31) + uint64(k)
	}
	return h, c
}

// WaitCache waits until pending cache writes are applied (tests).
func (e *Enforcer) WaitCache() {
	if e.cache != nil {
		e.cache.Wait()
	}
}

// IDGenerator makes decision IDs: a random per-process prefix and a counter,
// unique across restarts with overwhelming probability and cheap to make.
type IDGenerator struct {
	prefix [8]byte
	n      atomic.Uint64
}

// NewIDGenerator returns a generator with a fresh random prefix.
func NewIDGenerator() *IDGenerator {
	g := &IDGenerator{}
	var b [4]byte
	_, _ = rand.Read(b[:])
	hex.Encode(g.prefix[:], b[:])
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	g.n.Store(binary.BigEndian.Uint64(seed[:]) >> 24) // room to count without wrapping
	return g
}

// Next returns a new decision ID of 24 lower-case hex digits.
func (g *IDGenerator) Next() string {
	var out [DecisionIDLen]byte
	g.Fill(&out)
	return string(out[:])
}

// DecisionIDLen is the length of a decision ID.
const DecisionIDLen = 24

// Fill writes a new decision ID into out, for a caller that keeps it in
// memory of its own (no allocation).
func (g *IDGenerator) Fill(out *[DecisionIDLen]byte) {
	copy(out[:], g.prefix[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], g.n.Add(1))
	hex.Encode(out[8:], n[:])
}

// AppendDenyBody appends the JSON body of a refusal:
// {"error":"forbidden","decision_id":"…","reason":"…","status":403}, with
// "attack_id" when the block list entry came from a detected attack.
func AppendDenyBody(b []byte, v *Verdict) []byte {
	b = append(b, `{"error":"`...)
	if v.Status == 413 {
		b = append(b, "payload_too_large"...)
	} else {
		b = append(b, "forbidden"...)
	}
	b = append(b, `","decision_id":"`...)
	b = append(b, v.DecisionID...) // hex only
	b = append(b, `","reason":"`...)
	b = append(b, v.Reason.String()...) // fixed names only
	if v.Match != nil && v.Match.AttackID != "" {
		b = append(b, `","attack_id":"`...)
		b = append(b, v.Match.AttackID...) // hex only
	}
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(v.Status), 10)
	return append(b, '}')
}

// Outcome summarises a verdict for metrics: allowed, refused, or refused
// only in a dry run.
type Outcome uint8

// Outcomes.
const (
	OutcomeAllow Outcome = iota
	OutcomeDeny
	OutcomeWouldBlock
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"allow", "deny", "would_block"}

func (o Outcome) String() string {
	if o < numOutcomes {
		return outcomeNames[o]
	}
	return "unknown"
}

// Outcomes lists every outcome, for metrics.
func Outcomes() []Outcome { return []Outcome{OutcomeAllow, OutcomeDeny, OutcomeWouldBlock} }

// Outcome returns the verdict's outcome.
func (v *Verdict) Outcome() Outcome {
	switch {
	case v.Deny:
		return OutcomeDeny
	case v.WouldBlock:
		return OutcomeWouldBlock
	}
	return OutcomeAllow
}

// Blocks reports whether a rule with reason r refuses calls to api: in
// block mode every rule does; a decoy also does in learn mode (a decoy is
// proof, not a statistic, whatever the training state); detect mode only
// records, unless the API is set to let decoys block (DecoysBlock).
func Blocks(api *API, r Reason) bool {
	if api == nil {
		return true
	}
	return api.Mode == ModeBlock || r == ReasonDecoy && (api.Mode == ModeLearn || api.DecoysBlock)
}
