package inspect

import (
	"hash/maphash"
	"math/bits"
	"time"
)

// A profile counts distinct identities with an idSketch: 64 bits, one per
// hash of an identity modulo 64. Its population count is a lower bound of
// the identities seen (collisions only lower it), so a profile, a type, a
// character class or a JSON key is trusted only once that many different
// callers used it: one attacker, whatever it sends, adds one bit.
type idSketch uint64

func (s idSketch) count() int { return bits.OnesCount64(uint64(s)) }

var idSeed = maphash.MakeSeed()

func identityBit(identity string) idSketch {
	return 1 << (maphash.String(idSeed, identity) % 64)
}

// Profiles are the learned profiles of one endpoint's parameters, by key
// path (query.q, body.items[].sku), and the key sets of its JSON objects
// (by object path: body, body.items[]). A nil *Profiles means no profile:
// every signature hit is a finding. Profiles published by Learner.Model are
// never changed afterwards, so the hot path reads them without locks.
type Profiles struct {
	Endpoint string `json:"endpoint"`
	Method   string `json:"method"`
	// Requests is how many requests the profile learned from.
	Requests uint64    `json:"requests"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	IDs      idSketch  `json:"ids"`
	// Trusted is derived: enough identities over enough time.
	Trusted bool                      `json:"trusted"`
	Params  map[string]*ParamProfile  `json:"params"`
	Objects map[string]*ObjectProfile `json:"objects,omitempty"`

	minIDs int // LearnConfig.MinIdentities, for keys
}

// ParamProfile is what one parameter normally carries.
type ParamProfile struct {
	// Count is the values seen; Present the requests that had it (its
	// presence rate is Present/Profiles.Requests).
	Count   uint64    `json:"count"`
	Present uint64    `json:"present"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
	IDs     idSketch  `json:"ids"`
	// Types counts and sketches the identities per value type (by name).
	Types map[string]*Seen `json:"types"`
	// Classes sketches the identities per character class (by name).
	Classes map[string]idSketch `json:"classes"`
	// Signatures sketches the identities whose values hit each signature
	// kind while learning: a parameter that normally carries such text
	// (rich text, code) tolerates it.
	Signatures map[string]idSketch `json:"signatures,omitempty"`
	// LenMax is the longest value seen; LenHist counts values by length
	// (bucket i holds lengths in [2^(i-1), 2^i)).
	LenMax  int        `json:"len_max"`
	LenHist [14]uint64 `json:"len_hist"`
	// Enum holds the distinct values while there are at most
	// LearnConfig.MaxEnum of them (short ones); EnumOpen once there were
	// more. A closed enum of a token or boolean parameter with at least
	// two values, each seen 20 times on average, is judged.
	Enum     map[string]uint64 `json:"enum,omitempty"`
	EnumOpen bool              `json:"enum_open"`

	// Derived when the model is built.
	Trusted bool   `json:"trusted"`
	Type    string `json:"type"` // the most frequent type

	seq       uint64 // the Profiles.Requests of the last request that had it
	allowT    typeSet
	allowC    classes
	tolerates Set
	enumOK    bool // Enum is closed and trusted
}

// Seen counts values and sketches their identities.
type Seen struct {
	Count uint64   `json:"count"`
	IDs   idSketch `json:"ids"`
}

// ObjectProfile is the key set of one JSON object path.
type ObjectProfile struct {
	Count uint64              `json:"count"`
	IDs   idSketch            `json:"ids"`
	Keys  map[string]idSketch `json:"keys"`
	// KeysOpen is set once the object had more than MaxKeys keys (a map
	// keyed by data, not a record): its keys are not judged.
	KeysOpen bool `json:"keys_open"`
	Trusted  bool `json:"trusted"`
}

// class names, by bit, for the exported profiles.
var classNames = [...]string{
	"alpha", "digit", "space", "crlf", "control", "non_ascii", "quote", "backtick", "lt", "gt",
	"dot", "slash", "backslash", "dollar", "brace", "paren", "bracket", "semicolon", "pipe",
	"amp", "eq", "colon", "hash", "dash", "star", "comma", "percent", "excl", "other",
}

func classByName(s string) (classes, bool) {
	for i, n := range classNames {
		if n == s {
			return 1 << i, true
		}
	}
	return 0, false
}

// param looks up a parameter's profile by key path without allocating.
func (p *Profiles) param(path []byte) *ParamProfile {
	if p == nil {
		return nil
	}
	return p.Params[string(path)]
}

// Profile rules, as findings name them (in Detector) when a value breaks
// its profile without a signature.
const (
	RuleType    = "profile-type"    // a value of a type the parameter never carries
	RuleCharset = "profile-charset" // characters the parameter never carries
	RuleLength  = "profile-length"  // far longer than any value seen
	RuleEnum    = "profile-enum"    // not one of the parameter's few values
	RuleNewKey  = "profile-new-key" // a JSON key the object never carries, on a write
)

// Judge decides one value of a parameter against its profile, given the
// signature kind that matched it (KindNone for none):
//   - signature hit, and the profile does not carry that kind of text or
//     the value has characters the parameter never carries: the signature
//     stands (tolerated false);
//   - signature hit on a parameter that normally carries such text, with
//     no unusual character: tolerated (counted, not blocked);
//   - no signature, but the value breaks the profile (type, characters,
//     length, enum): SchemaViolation with the rule.
//
// An untrusted or nil profile changes nothing: the signature stands.
func (pp *ParamProfile) Judge(v []byte, sig Kind) (kind Kind, rule string, tolerated bool) {
	return pp.judge(v, classify(v), sig)
}

func (pp *ParamProfile) judge(v []byte, c classes, sig Kind) (Kind, string, bool) {
	if pp == nil || !pp.Trusted {
		return sig, "", false
	}
	if sig != KindNone {
		if pp.tolerates.Has(sig) && c&^pp.allowC == 0 {
			return sig, "", true
		}
		return sig, "", false
	}
	if len(v) == 0 {
		return KindNone, "", false
	}
	if accepts := pp.allowT; accepts != 0 && accepts&(1<<TypeOf(v)) == 0 {
		return SchemaViolation, RuleType, false
	}
	if c&^pp.allowC != 0 {
		return SchemaViolation, RuleCharset, false
	}
	if len(v) > 2*pp.LenMax+16 {
		return SchemaViolation, RuleLength, false
	}
	if pp.enumOK {
		if _, ok := pp.Enum[string(v)]; !ok {
			return SchemaViolation, RuleEnum, false
		}
	}
	return KindNone, "", false
}

// checkKey checks a JSON key of a write against the object's learned key
// set: a key no trusted number of identities ever sent is mass assignment.
func (p *Profiles) checkKey(st *state, objPath, key []byte) {
	if !p.Trusted {
		return
	}
	op := p.Objects[string(objPath)]
	if op == nil || !op.Trusted || op.KeysOpen {
		return
	}
	if ids, ok := op.Keys[string(key)]; ok && ids.count() >= p.minIDs {
		return
	}
	st.path = append(st.path[:len(objPath)], '.')
	st.appendPathBytes(key)
	st.found(MassAssignment, RuleNewKey, LocBody, key, 0)
}
