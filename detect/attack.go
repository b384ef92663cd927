package detect

import (
	"slices"
	"sort"
	"sync"
	"time"
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
	s.list = append(s.list, a)
	s.byID[a.ID] = a
	if len(s.list) > s.max {
		drop := len(s.list) - s.max
		for _, old := range s.list[:drop] {
			delete(s.byID, old.ID)
		}
		s.list = append(s.list[:0], s.list[drop:]...)
	}
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
	return t == AttackDecoy || t == AttackAnomalous || slices.Contains(AttackTypes(), t)
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
		for i, x := range s.list {
			if x == old {
				s.list[i] = a
			}
		}
	}
	s.byID[a.ID] = a
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
	Name  string  `json:"name"`
	Kind  string  `json:"kind"`
	OldTx float64 `json:"old_tx"`
	NewTx float64 `json:"new_tx"`
}
