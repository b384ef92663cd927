package detect

import (
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// AttackType names a kind of attack.
type AttackType string

// Attack types.
const (
	AttackProbing            AttackType = "probing"
	AttackExcessiveErrors    AttackType = "excessive_errors"
	AttackCredentialStuffing AttackType = "credential_stuffing"
	AttackStolenToken        AttackType = "stolen_token"
	AttackDataExfiltration   AttackType = "data_exfiltration"
	AttackExtremeActivity    AttackType = "extreme_activity"
	AttackBOLAEnumeration    AttackType = "bola_enumeration"
	AttackMassDeletion       AttackType = "mass_deletion"
	AttackOversizedPayload   AttackType = "oversized_payload"
	AttackAnomalous          AttackType = "anomalous_behaviour"
	// AttackDecoy is a call to a decoy, or the use of a honeytoken.
	AttackDecoy AttackType = "decoy"

	// Content attacks, found inside one request (detect/inspect): a
	// signature on a value, or a value its learned profile or the API's
	// OpenAPI document does not allow.
	AttackSQLInjection     AttackType = "sql_injection"
	AttackXSS              AttackType = "xss"
	AttackCommandInjection AttackType = "command_injection"
	AttackPathTraversal    AttackType = "path_traversal"
	AttackSSRF             AttackType = "ssrf"
	AttackJNDIInjection    AttackType = "jndi_injection"
	AttackNoSQLInjection   AttackType = "nosql_injection"
	AttackCRLFInjection    AttackType = "crlf_injection"
	AttackXXE              AttackType = "xxe"
	AttackSchemaViolation  AttackType = "schema_violation"
	AttackMassAssignment   AttackType = "mass_assignment"
)

// AttackTypes lists the types the threshold models raise.
func AttackTypes() []AttackType {
	return []AttackType{AttackProbing, AttackExcessiveErrors, AttackCredentialStuffing, AttackStolenToken,
		AttackDataExfiltration, AttackExtremeActivity, AttackBOLAEnumeration, AttackMassDeletion, AttackOversizedPayload}
}

// Attack actions.
const (
	ActionBlocked    = "blocked"     // the identity went on the block list
	ActionWouldBlock = "would_block" // the API is in detect mode
	ActionDetected   = "detected"    // recorded only: the API is in learn mode, or a single-call detection short of EngineConfig.BlockAfter
)

// Attack is one detected attack, explained.
type Attack struct {
	ID         string          `json:"id"`
	Type       AttackType      `json:"type"`
	API        string          `json:"api"`
	Identity   AttackIdentity  `json:"identity"`
	FirstSeen  time.Time       `json:"first_seen"`
	DetectedAt time.Time       `json:"detected_at"`
	Variables  []VariableValue `json:"variables"`
	ClientIPs  []string        `json:"client_ips"`
	Action     string          `json:"action"`
	// BlockedUntil is when the block list entry expires, for blocked ones.
	BlockedUntil *time.Time `json:"blocked_until,omitempty"`
	// Repeat counts earlier attacks by the same identity on the same API
	// that were acted on (blocked or would-block).
	Repeat int `json:"repeat"`
	// Request describes the call that touched a decoy (decoy attacks).
	Request *AttackRequest `json:"request,omitempty"`
	// Honeytoken says which planted credential was used (decoy attacks).
	Honeytoken *HoneytokenUse `json:"honeytoken,omitempty"`
	// FalsePositive is set when a person marked the attack as one.
	FalsePositive *FalsePositive `json:"false_positive,omitempty"`
}

// FalsePositive records what marking an attack as a false positive did.
type FalsePositive struct {
	At           time.Time    `json:"at"`
	Unblocked    int          `json:"unblocked"`
	AllowedUntil *time.Time   `json:"allowed_until,omitempty"`
	Relaxed      []Relaxation `json:"relaxed,omitempty"`
}

// AttackRequest is the metadata of one call; secrets are not in it.
type AttackRequest struct {
	Method    string `json:"method"`
	Host      string `json:"host"`
	Path      string `json:"path"`
	UserAgent string `json:"user_agent,omitempty"`
}

// HoneytokenUse points a honeytoken's use back to the hit that leaked it.
type HoneytokenUse struct {
	Kind     string    `json:"kind"`
	MintedOn string    `json:"minted_on"` // API and path of the decoy answer that planted it
	MintedAt time.Time `json:"minted_at"`
	MintedBy string    `json:"minted_by"` // the attack ID of that hit
}

// AttackIdentity is who attacked: the IP or user name in clear, the
// fingerprint for secrets.
type AttackIdentity struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// VariableValue explains one variable of an attack.
type VariableValue struct {
	Name         string  `json:"name"`
	Observed     float64 `json:"observed"`
	Tn           float64 `json:"tn"`
	Tx           float64 `json:"tx"`
	DeviationPct float64 `json:"deviation_pct"`
	// Content attacks (sql_injection …): Name is where the value was, its
	// key path (query.q, body.user.role); Location its first element
	// (query, body, header, cookie, path); Detector the detector or profile
	// rule that matched; Excerpt the start of the value, secrets masked.
	// request_bytes_endpoint's Location is the endpoint it was judged
	// against ("PATCH /shop/order/{id}").
	Location string `json:"location,omitempty"`
	Detector string `json:"detector,omitempty"`
	Excerpt  string `json:"excerpt,omitempty"`
}

// AttackJournal keeps attack records durably.
type AttackJournal interface {
	PutAttack(a *Attack) error
}

// AttackStore keeps the most recent attack records in memory, bounded, and
// hands each new one to its journal.
type AttackStore struct {
	journal AttackJournal
	onError func(error)
	mu      sync.RWMutex
	max     int
	list    []*Attack // oldest first
	byID    map[string]*Attack
	// bytes estimates the records' own memory, kept as they come and go.
	bytes atomic.Int64
}

// NewAttackStore keeps at most max records.
func NewAttackStore(max int) *AttackStore {
	return &AttackStore{max: max, byID: make(map[string]*Attack)}
}

// SetJournal makes Add durable through j; onError hears of failures.
func (s *AttackStore) SetJournal(j AttackJournal, onError func(error)) {
	s.journal, s.onError = j, onError
}

// Add stores a record, dropping the oldest past the bound.
func (s *AttackStore) Add(a *Attack) {
	if s.journal != nil {
		if err := s.journal.PutAttack(a); err != nil && s.onError != nil {
			s.onError(err)
		}
	}
	s.load(a)
}

// Load puts a record read back from the journal, without journaling it.
func (s *AttackStore) Load(a *Attack) { s.load(a) }

func (s *AttackStore) load(a *Attack) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.byID[a.ID]; ok {
		// The same ID loaded twice: the record replaces the one kept.
		s.replace(old, a)
		return
	}
	s.list = append(s.list, a)
	s.byID[a.ID] = a
	s.bytes.Add(attackBytes(a))
	if len(s.list) > s.max {
		drop := len(s.list) - s.max
		for _, old := range s.list[:drop] {
			delete(s.byID, old.ID)
			s.bytes.Add(-attackBytes(old))
		}
		s.list = append(s.list[:0], s.list[drop:]...)
	}
}

// Remove drops a record from memory (not from the journal) and reports
// whether it was there: with several replicas, the record of an attack
// another replica recorded first.
func (s *AttackStore) Remove(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byID[id]
	if !ok {
		return false
	}
	delete(s.byID, id)
	s.list = slices.DeleteFunc(s.list, func(x *Attack) bool { return x == a })
	s.bytes.Add(-attackBytes(a))
	return true
}

// Get returns a record by ID.
func (s *AttackStore) Get(id string) (*Attack, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.byID[id]
	return a, ok
}

// AttackFilter selects records.
type AttackFilter struct {
	API    string
	Type   AttackType
	Since  time.Time
	Offset int
	Limit  int
}

// List returns the records matching f, newest first, and how many match.
func (s *AttackStore) List(f AttackFilter) ([]*Attack, int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Attack
	for i := len(s.list) - 1; i >= 0; i-- {
		a := s.list[i]
		if (f.API != "" && a.API != f.API) || (f.Type != "" && a.Type != f.Type) || (!f.Since.IsZero() && a.DetectedAt.Before(f.Since)) {
			continue
		}
		out = append(out, a)
	}
	// Newest first by detection time (records arrive from several workers).
	sort.SliceStable(out, func(i, j int) bool { return out[i].DetectedAt.After(out[j].DetectedAt) })
	total := len(out)
	if f.Offset > len(out) {
		f.Offset = len(out)
	}
	out = out[f.Offset:]
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, total
}

// Len returns the number of records kept.
func (s *AttackStore) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.list)
}

// KnownAttackType reports whether t is a type the engine raises.
func KnownAttackType(t AttackType) bool {
	return t == AttackDecoy || t == AttackAnomalous || slices.Contains(AttackTypes(), t) || slices.Contains(ContentAttackTypes(), t)
}

// ContentAttackTypes lists the types content inspection raises.
func ContentAttackTypes() []AttackType {
	return []AttackType{AttackSQLInjection, AttackXSS, AttackCommandInjection, AttackPathTraversal, AttackSSRF,
		AttackJNDIInjection, AttackNoSQLInjection, AttackCRLFInjection, AttackXXE, AttackSchemaViolation, AttackMassAssignment}
}

// Update replaces a stored record (same ID) in memory and in the journal.
func (s *AttackStore) Update(a *Attack) {
	if s.journal != nil {
		if err := s.journal.PutAttack(a); err != nil && s.onError != nil {
			s.onError(err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.byID[a.ID]; ok {
		s.replace(old, a)
		return
	}
	s.byID[a.ID] = a
	s.bytes.Add(attackBytes(a))
}

// replace puts a in old's place.
func (s *AttackStore) replace(old, a *Attack) {
	for i, x := range s.list {
		if x == old {
			s.list[i] = a
		}
	}
	s.byID[a.ID] = a
	s.bytes.Add(attackBytes(a) - attackBytes(old))
}

// Bytes estimates the heap bytes of the records kept, their list and
// index included. Safe to call at any time.
func (s *AttackStore) Bytes() int64 {
	s.mu.RLock()
	n, c := len(s.byID), cap(s.list)
	s.mu.RUnlock()
	return s.bytes.Load() + AllocSize(c*8) + MapBytes(n, 16+8)
}

// attackBytes estimates the heap bytes of one record: its struct, the
// strings it owns and what it points to. Constant strings (type, action,
// kind, variable names) and the API name are shared, not counted.
func attackBytes(a *Attack) int64 {
	n := AllocSize(int(unsafe.Sizeof(*a))) + StringSize(a.ID) + StringSize(a.Identity.Value)
	n += AllocSize(cap(a.Variables) * int(unsafe.Sizeof(VariableValue{})))
	n += AllocSize(cap(a.ClientIPs) * int(unsafe.Sizeof("")))
	for _, ip := range a.ClientIPs {
		n += StringSize(ip)
	}
	if a.BlockedUntil != nil {
		n += AllocSize(int(unsafe.Sizeof(time.Time{})))
	}
	if r := a.Request; r != nil {
		n += AllocSize(int(unsafe.Sizeof(*r))) + StringSize(r.Host) + StringSize(r.Path) + StringSize(r.UserAgent)
	}
	if h := a.Honeytoken; h != nil {
		n += AllocSize(int(unsafe.Sizeof(*h))) + StringSize(h.MintedOn) + StringSize(h.MintedBy)
	}
	if fp := a.FalsePositive; fp != nil {
		n += AllocSize(int(unsafe.Sizeof(*fp))) + AllocSize(cap(fp.Relaxed)*int(unsafe.Sizeof(Relaxation{})))
		if fp.AllowedUntil != nil {
			n += AllocSize(int(unsafe.Sizeof(time.Time{})))
		}
	}
	return n
}

// AttacksOf returns the attack records naming an identity, newest first.
func (s *AttackStore) AttacksOf(kind Kind, value string) []*Attack {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Attack
	for i := len(s.list) - 1; i >= 0; i-- {
		if a := s.list[i]; a.Identity.Kind == kind.String() && a.Identity.Value == value {
			out = append(out, a)
		}
	}
	return out
}

// Relaxation is one threshold a false positive relaxed.
type Relaxation struct {
	Name     string  `json:"name"`
	Kind     string  `json:"kind"`
	Endpoint string  `json:"endpoint,omitempty"` // request_bytes_endpoint's
	OldTx    float64 `json:"old_tx"`
	NewTx    float64 `json:"new_tx"`
}

// Memory estimates. The structures that grow with traffic (attack records,
// forensics, the inventory) report the bytes they hold from what they
// allocate, so that a memory budget can bound them without walking them.

// sizeClasses are the Go allocator's small object sizes (Go 1.22 and
// later, internal/runtime/gc.SizeClassToSize).
var sizeClasses = [...]uint16{0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048,
	2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880,
	12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768}

// sizeClass8 maps (n+7)/8 to n's size class, for n up to 1024.
var sizeClass8 = func() (t [1024/8 + 1]uint8) {
	c := 0
	for i := range t {
		for int(sizeClasses[c]) < i*8 {
			c++
		}
		t[i] = uint8(c)
	}
	return t
}()

// AllocSize returns the heap bytes one allocation of n bytes takes: n
// rounded up to its size class, or to whole pages past 32 KiB. Objects of
// fewer than 16 bytes without pointers (short strings) share 16-byte blocks
// and take about their own size.
func AllocSize(n int) int64 {
	switch {
	case n <= 0:
		return 0
	case n < 16:
		return int64(n)
	case n <= 1024:
		return int64(sizeClasses[sizeClass8[(n+7)/8]])
	case n > 32768:
		return int64((n + 8191) &^ 8191)
	}
	i, _ := slices.BinarySearch(sizeClasses[:], uint16(n))
	return int64(sizeClasses[i])
}

// StringSize returns the heap bytes of a string's own copy of its bytes.
func StringSize(s string) int64 { return AllocSize(len(s)) }

// MapBytes estimates the heap bytes of a map holding n entries of slot
// bytes each (key and value, aligned): Go's maps keep groups of 8 slots and
// a control word, in tables of up to 1024 slots grown by doubling while
// at most 7/8 full; past one table, tables split and are 7/16 to 7/8
// full, about 2/3 on average.
func MapBytes(n int, slot int) int64 {
	group := 8 + 8*slot
	switch {
	case n == 0:
		return 0
	case n <= 8:
		return AllocSize(group)
	case n <= 896:
		slots := 16
		for slots*7/8 < n {
			slots *= 2
		}
		return AllocSize(slots/8*group) + 64 // the table and its directory
	}
	return int64(n) * int64(group) * 3 / (8 * 2)
}
