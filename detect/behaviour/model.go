package behaviour

import (
	"github.com/vigil-project/vigil/detect"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// varID identifies a behavioural variable.
type varID uint8

// Variables. Each belongs to one attack type and applies to some identity
// kinds; window variables are measured per identity over its windows, per
// request variables on each call.
const (
	vRequestsPerMin varID = iota
	vErrors
	vErrorRatio
	vFailedRequests
	vDistinctFailedPaths
	vLoginFailures
	vDistinctLoginUsers
	vDistinctIPs
	vDistinctAgents
	vResponseBytes
	vDistinctObjects
	vDeletes
	vUnknownRoutes
	vUnknownShare
	vScannerPaths
	vRequestsHour
	vRequestsDay
	vErrorsHour
	vErrorRatioHour
	vLoginFailuresHour
	vResponseBytesHour
	vResponseBytesDay
	vObjectsHour
	vLoginUsersHour
	vDeletesHour
	vSelfRequests
	vSelfErrors
	vSelfBytes
	vRequestBytes
	vJSONElements
	// vDeleteRatioHour is the share of deletes among an identity's calls
	// over the hour, from deleteRatioFrom deletes on (after the per-request
	// variables: a variable's index seeds its reservoir, and the others'
	// samples stay as they were).
	vDeleteRatioHour
	// vAddressSwitches counts a session's calls from another address than
	// its call before (addressSwitches).
	vAddressSwitches
	// vEndpointBytes is request_bytes against the call's endpoint
	// (endpoint.go): its thresholds are per endpoint, not per population,
	// so it applies to no population.
	vEndpointBytes
	numVars
)

const (
	allKinds     = 1<<detect.KindIP | 1<<detect.KindToken | 1<<detect.KindAPIKey | 1<<detect.KindCookie | 1<<detect.KindUsername
	secretKinds  = 1<<detect.KindToken | 1<<detect.KindAPIKey | 1<<detect.KindCookie
	loginKinds   = 1<<detect.KindIP | 1<<detect.KindUsername | 1<<detect.KindCookie
	sprayerKinds = 1<<detect.KindIP | 1<<detect.KindCookie
	sessionKinds = 1<<detect.KindToken | 1<<detect.KindCookie
	ipKinds      = 1 << detect.KindIP
	// accountKinds are the identities that last: API keys and user
	// accounts (a token or cookie is one session; an address, anyone's).
	accountKinds = 1<<detect.KindAPIKey | 1<<detect.KindUsername
)

type varDef struct {
	name   string
	attack detect.AttackType
	kinds  uint8
	// floor is the least observed value that can raise an attack, whatever
	// was learned: a handful of 404s is never probing.
	floor float64
	// perRequest variables are measured on each call, not over a window.
	perRequest bool
	// slow marks the hour and day variables (longterm.go): they restate
	// the short windows' measures over longer spans, so the multivariate
	// model leaves them out (two of them past Tn would be one fact).
	slow bool
}

var varDefs = [numVars]varDef{
	vRequestsPerMin:      {"requests_per_min", detect.AttackExtremeActivity, allKinds, 100, false, false},
	vErrors:              {"errors_10m", detect.AttackExcessiveErrors, allKinds, 60, false, false},
	vErrorRatio:          {"error_ratio_10m", detect.AttackExcessiveErrors, allKinds, 0.8, false, false},
	vFailedRequests:      {"not_found_10m", detect.AttackProbing, allKinds, 25, false, false},
	vDistinctFailedPaths: {"distinct_failed_paths", detect.AttackProbing, allKinds, 15, false, false},
	vLoginFailures:       {"login_failures_10m", detect.AttackCredentialStuffing, loginKinds, 12, false, false},
	vDistinctLoginUsers:  {"distinct_login_usernames", detect.AttackCredentialStuffing, sprayerKinds, 6, false, false},
	vDistinctIPs:         {"distinct_ips", detect.AttackStolenToken, secretKinds, 6, false, false},
	vDistinctAgents:      {"distinct_user_agents", detect.AttackStolenToken, secretKinds, 2, false, false},
	vResponseBytes:       {"response_bytes_10m", detect.AttackDataExfiltration, allKinds, 2 << 20, false, false},
	vDistinctObjects:     {"distinct_object_ids", detect.AttackBOLAEnumeration, allKinds, 80, false, false},
	vDeletes:             {"deletes_10m", detect.AttackMassDeletion, allKinds, 25, false, false},
	vUnknownRoutes:       {"distinct_unknown_routes", detect.AttackProbing, allKinds, 8, false, false},
	vUnknownShare:        {"unknown_route_share", detect.AttackProbing, allKinds, 0.5, false, false},
	vScannerPaths:        {"scanner_paths", detect.AttackProbing, allKinds, 3, false, false},
	vRequestsHour:        {"requests_1h", detect.AttackExtremeActivity, allKinds, 300, false, true},
	vRequestsDay:         {"requests_24h", detect.AttackExtremeActivity, allKinds, 4000, false, true},
	vErrorsHour:          {"errors_1h", detect.AttackExcessiveErrors, allKinds, 12, false, true},
	vErrorRatioHour:      {"error_ratio_1h", detect.AttackExcessiveErrors, allKinds, 0.4, false, true},
	vLoginFailuresHour:   {"login_failures_1h", detect.AttackCredentialStuffing, loginKinds, 10, false, true},
	vResponseBytesHour:   {"response_bytes_1h", detect.AttackDataExfiltration, allKinds, 2 << 20, false, true},
	vResponseBytesDay:    {"response_bytes_24h", detect.AttackDataExfiltration, allKinds, 32 << 20, false, true},
	vObjectsHour:         {"distinct_object_ids_1h", detect.AttackBOLAEnumeration, allKinds, 150, false, true},
	vLoginUsersHour:      {"distinct_login_usernames_1h", detect.AttackCredentialStuffing, ipKinds, 4, false, true},
	vDeletesHour:         {"deletes_1h", detect.AttackMassDeletion, allKinds, 10, false, true},
	vSelfRequests:        {"requests_10m_vs_own", detect.AttackExtremeActivity, accountKinds, 10, false, true},
	vSelfErrors:          {"errors_10m_vs_own", detect.AttackExcessiveErrors, accountKinds, 10, false, true},
	vSelfBytes:           {"response_bytes_10m_vs_own", detect.AttackDataExfiltration, accountKinds, 10, false, true},
	vRequestBytes:        {"request_bytes", detect.AttackOversizedPayload, allKinds, 8 << 10, true, false},
	vJSONElements:        {"json_elements", detect.AttackOversizedPayload, allKinds, 200, true, false},
	vDeleteRatioHour:     {"delete_ratio_1h", detect.AttackMassDeletion, allKinds, 0.25, false, true},
	vAddressSwitches:     {"address_switches_10m", detect.AttackStolenToken, sessionKinds, 8, false, false},
	vEndpointBytes:       {"request_bytes_endpoint", detect.AttackOversizedPayload, 0, endpointFloor, true, false},
}

// numTypes is the number of attack types: the threshold ones and
// anomalous_behaviour.
const numTypes = 10

// allTypes lists every type the engine raises, in knob order.
func allTypes() []detect.AttackType { return append(detect.AttackTypes(), detect.AttackAnomalous) }

// varType is the knob index (typeIndex) of each variable's attack type.
var varType = func() (out [numVars]int) {
	for v := range numVars {
		out[v] = typeIndex(varDefs[v].attack)
	}
	return out
}()

func typeIndex(t detect.AttackType) int {
	for i, x := range allTypes() {
		if x == t {
			return i
		}
	}
	return -1
}

// value measures a window variable on a state already advanced to now.
func (s *identityState) value(v varID) float64 {
	switch v {
	case vRequestsPerMin:
		return s.shortSum()
	case vErrors:
		return s.longSum(cErrors)
	case vErrorRatio:
		n := s.longSum(cRequests)
		if n < 20 {
			return 0
		}
		return s.longSum(cErrors) / n
	case vFailedRequests:
		return s.longSum(cFailed)
	case vDistinctFailedPaths:
		return s.estimate(skFailedPaths)
	case vLoginFailures:
		return s.longSum(cLoginFail)
	case vDistinctLoginUsers:
		return s.estimate(skLoginUsers)
	case vDistinctIPs:
		return s.estimate(skIPs)
	case vDistinctAgents:
		return s.estimate(skAgents)
	case vAddressSwitches:
		return s.addressSwitches(int32(s.longHead))
	case vResponseBytes:
		return s.respBytes()
	case vDistinctObjects:
		return s.estimate(skObjects)
	case vDeletes:
		return s.longSum(cDeletes)
	case vUnknownRoutes:
		return s.estimate(skUnknownRoutes)
	case vUnknownShare:
		n := s.ltValue(ltRequests, false)
		if n < 20 {
			return 0
		}
		return min(s.estimate(skUnknownRoutes)/n, 1)
	case vScannerPaths:
		return s.estimate(skScannerPaths)
	case vRequestsHour:
		return s.ltValue(ltRequests, false)
	case vRequestsDay:
		return s.ltValue(ltRequests, true)
	case vErrorsHour:
		return s.ltValue(ltErrors, false)
	case vErrorRatioHour:
		n := s.ltValue(ltRequests, false)
		if n < 40 {
			return 0
		}
		return s.ltValue(ltErrors, false) / n
	case vDeleteRatioHour:
		d := s.ltValue(ltDeletes, false)
		if d < deleteRatioFrom {
			return 0
		}
		return d / s.ltValue(ltRequests, false)
	case vLoginFailuresHour:
		return s.ltValue(ltLoginFail, false)
	case vResponseBytesHour:
		return s.ltValue(ltBytes, false)
	case vResponseBytesDay:
		return s.ltValue(ltBytes, true)
	case vObjectsHour:
		return s.estimate(skObjectsWide)
	case vLoginUsersHour:
		return s.estimate(skLoginUsersWide)
	case vDeletesHour:
		return s.ltValue(ltDeletes, false)
	case vSelfRequests:
		return s.self(ltRequests, s.longSum(cRequests))
	case vSelfErrors:
		return s.self(ltErrors, s.longSum(cErrors))
	case vSelfBytes:
		return s.self(ltBytes, s.respBytes())
	}
	return 0
}

// deleteRatioFrom is how many deletes an hour must hold before its share
// of the calls counts: a person who deletes two orders in three calls is
// tidying up, an address whose accounts log in only to delete is not.
const deleteRatioFrom = 10

// TrainingConfig says when an API's model is trained and how often it
// relearns.
type TrainingConfig struct {
	Duration        time.Duration
	MinRequests     int64
	MinIdentities   int64
	RelearnInterval time.Duration
}

// threshold is a learned (or user-set) pair for one variable and kind.
type threshold struct {
	Tn, Tx float64
	User   bool
}

type thresholdSet [numPops][numVars]threshold

// reservoir keeps a uniform sample of a variable's per-identity values.
type reservoir struct {
	vals []float32
	seen int64
	max  float64
	size int // the sample's size; 0: reservoirSize
	// rng is the reservoir's own, seeded by its API, kind and variable:
	// which samples one variable keeps depends on nothing else, so adding
	// a variable changes no other's thresholds.
	rng uint64
}

const reservoirSize = 1024

func (r *reservoir) add(v float64) {
	rng := &r.rng
	r.seen++
	if v > r.max {
		r.max = v
	}
	size := r.size
	if size == 0 {
		size = reservoirSize
	}
	if len(r.vals) < size {
		r.vals = append(r.vals, float32(v))
		return
	}
	*rng ^= *rng << 13
	*rng ^= *rng >> 7
	*rng ^= *rng << 17
	if j := *rng % uint64(r.seen); j < uint64(size) {
		r.vals[j] = float32(v)
	}
}

func (r *reservoir) quantile(q float64) float64 {
	if len(r.vals) == 0 {
		return 0
	}
	s := slices.Clone(r.vals)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return float64(s[max(0, min(i, len(s)-1))])
}

// TypeKnobs are the human settings of one attack type on one API.
type TypeKnobs struct {
	Enabled     bool    `json:"enabled"`
	Sensitivity float64 `json:"sensitivity"` // effective Tx = Tx / Sensitivity: > 1 detects more, < 1 less
}

// UserThreshold is a person's Tn/Tx for one variable and identity kind.
type UserThreshold struct {
	Tn float64 `json:"tn"`
	Tx float64 `json:"tx"`
}

// apiModel is one API's behavioural model: training state, samples,
// thresholds and knobs.
type apiModel struct {
	name string
	api  *detect.API
	cfg  TrainingConfig

	requests   atomic.Int64
	identities atomic.Int64
	wouldBe    atomic.Int64
	ready      atomic.Bool
	// since is start in unix nanoseconds, for the workers (armed).
	since      atomic.Int64
	thresholds atomic.Pointer[thresholdSet]
	knobsSnap  atomic.Pointer[[numTypes]TypeKnobs]

	mu          sync.Mutex
	start       time.Time
	lastSeen    time.Time
	readyAt     time.Time
	nextRelearn time.Time
	samples     [numPops][numVars]*reservoir
	rng         uint64
	knobs       [numTypes]TypeKnobs
	user        map[userKey]UserThreshold
	// base holds imported learned thresholds, used while this deployment
	// has too few samples of its own.
	base map[userKey]UserThreshold
	// mv holds the multivariate model's vectors; forests its fitted
	// forests, read by the workers without the lock.
	mv      [numPops]*mvModel
	forests atomic.Pointer[[numPops]*mvFitted]
	// endpoints are the request-size samples per endpoint (routeKey),
	// epThresholds their thresholds, read by the workers without the lock
	// (endpoint.go).
	endpoints    map[uint64]*endpointLearner
	epThresholds atomic.Pointer[endpointThresholds]

	// sharedIPs holds the addresses its address states found shared, each
	// with the minute it last was (population.go): what a credential's
	// state, owned by another worker, is told of its call's address.
	sharedIPs      sync.Map // string → int32
	sharedIPStores atomic.Int64

	// trainer and replicas are EngineConfig's (nil: a single node).
	trainer  func() bool
	replicas func() int
}

type userKey struct {
	pop pop
	v   varID
	ep  string // request_bytes_endpoint's endpoint ("PATCH /shop/order/{id}")
}

// newModel returns a model of the engine: the replica's role and count
// with it.
func (e *Engine) newModel(name string, api *detect.API) *apiModel {
	m := newAPIModel(name, api, e.cfg.Training)
	m.trainer, m.replicas = e.cfg.Trainer, e.cfg.Replicas
	return m
}

func newAPIModel(name string, api *detect.API, cfg TrainingConfig) *apiModel {
	m := &apiModel{name: name, api: api, cfg: cfg, rng: hashString(name) | 1, user: map[userKey]UserThreshold{}}
	for i := range m.knobs {
		m.knobs[i] = TypeKnobs{Enabled: true, Sensitivity: 1}
	}
	k := m.knobs
	m.knobsSnap.Store(&k)
	m.thresholds.Store(m.compute())
	return m
}

// clusterRequests estimates the calls the API had on every replica: this
// replica's times the live replicas, since Envoy spreads calls evenly (the
// identities are not scaled: each replica sees nearly all of them).
func (m *apiModel) clusterRequests() int64 {
	n := m.requests.Load()
	if m.replicas != nil {
		n *= int64(max(m.replicas(), 1))
	}
	return n
}

// sample records a training value (from an identity not flagged).
func (m *apiModel) sample(kind pop, v varID, x float64) {
	m.mu.Lock()
	m.sampleLocked(kind, v, x)
	m.mu.Unlock()
}

// sampleLocked is sample with m.mu held.
func (m *apiModel) sampleLocked(kind pop, v varID, x float64) {
	r := m.samples[kind][v]
	if r == nil {
		r = &reservoir{rng: (hashString(m.name) ^ (uint64(kind)<<8|uint64(v))*0x9E3779B97F4A7C15) | 1}
		m.samples[kind][v] = r
	}
	r.add(x)
}

// tick moves training on: readiness, then relearning on the interval. It
// reports whether it computed the learned thresholds (training ended, or
// a relearn), for OnModelChange. A model of a replica that is not the
// trainer (EngineConfig.Trainer) does neither: it takes its thresholds
// and its readiness from Adopt.
func (m *apiModel) tick(now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.After(m.lastSeen) {
		m.lastSeen = now
	}
	if m.start.IsZero() {
		m.start = now
		m.since.Store(now.UnixNano())
		m.nextRelearn = now.Add(m.relearnEvery())
		return false
	}
	if !m.training() {
		return false
	}
	if !m.ready.Load() && now.Sub(m.start) >= m.cfg.Duration &&
		m.clusterRequests() >= m.cfg.MinRequests && m.identities.Load() >= m.cfg.MinIdentities {
		m.thresholds.Store(m.compute())
		m.fitForests()
		m.readyAt = now
		m.ready.Store(true)
		m.nextRelearn = now.Add(m.relearnEvery())
		return true
	}
	if !now.Before(m.nextRelearn) {
		m.thresholds.Store(m.compute())
		if m.ready.Load() {
			m.fitForests()
		}
		m.nextRelearn = now.Add(m.relearnEvery())
		return true
	}
	return false
}

// training reports whether this replica trains the model (a single node
// always does).
func (m *apiModel) training() bool { return m.trainer == nil || m.trainer() }

func (m *apiModel) relearnEvery() time.Duration {
	if m.cfg.RelearnInterval > 0 {
		return m.cfg.RelearnInterval
	}
	return 10 * time.Minute
}

// compute derives thresholds from the samples: Tn is the 99th percentile of
// per-identity values, Tx the largest of the variable's floor, 3 × Tn and
// 1.5 × the 99.9th percentile (2 × the largest value seen for per-request
// variables). Percentiles ignore the few attackers hidden in training data;
// user-set values win. A replica that is not the trainer ignores its own
// samples: its learned thresholds are the base the trainer published.
// It stores the endpoints' thresholds (computeEndpoints) on the way.
// Call with m.mu held (or before m is shared).
func (m *apiModel) compute() *thresholdSet {
	ts := new(thresholdSet)
	own := m.training()
	for k := range pop(numPops) {
		for v := range numVars {
			d := varDefs[v]
			if !applies(v, k) {
				continue
			}
			t := threshold{Tn: d.floor / 2, Tx: d.floor * 2}
			if b, ok := m.base[userKey{k, v, ""}]; ok {
				t = threshold{Tn: b.Tn, Tx: b.Tx}
			}
			if _, imported := m.base[userKey{k, v, ""}]; k.derived() && !imported {
				// Too few shared addresses, networks or credentials on
				// shared addresses of its own yet: its kind's (computed
				// first).
				t = ts[k.kind()][v]
				t.User = false
			}
			if r := m.samples[k][v]; own && r != nil && r.seen >= minSamples(m.base != nil) {
				q99, q999 := r.quantile(0.99), r.quantile(0.999)
				t.Tn = q99
				if d.perRequest {
					t.Tx = max(d.floor, 2*r.max)
				} else {
					t.Tx = max(d.floor, 3*q99, 1.5*q999)
				}
			}
			if u, ok := m.user[userKey{k, v, ""}]; ok {
				t = threshold{Tn: u.Tn, Tx: u.Tx, User: true}
			}
			ts[k][v] = t
		}
	}
	eps := m.computeEndpoints()
	m.epThresholds.Store(&eps)
	return ts
}

// minSamples is how many samples a variable needs before its learned
// thresholds replace the defaults, or the imported ones.
func minSamples(imported bool) int64 {
	if imported {
		return 1000
	}
	return 30
}
