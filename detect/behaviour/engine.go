package behaviour

import (
	"context"
	"github.com/vigil-project/vigil/detect"
	"hash/maphash"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// EngineConfig configures the detection engine.
type EngineConfig struct {
	// Workers is the number of shards, each a goroutine owning the state of
	// the identities that hash to it. 0 processes every transaction in the
	// caller, in order (replay, tests).
	Workers int
	// MaxStates caps the tracked (API, identity) states; past it the least
	// recently seen are forgotten, so a botnet of fresh IPs cannot exhaust
	// memory.
	MaxStates int
	// MaxBytes is the budget for the estimated bytes of the identity
	// states and their indexes (0: no byte budget, MaxStates alone bounds
	// them). Like MaxStates it is split over the shards, and past it the
	// least recently seen states are forgotten. An eighth of it (without
	// it, a quarter of MaxStates × 48 bytes) is the table of first
	// sightings, allocated up front: an identity's first call is kept
	// there, 48 bytes, and it becomes a state when it calls again (see
	// sighting.go).
	MaxBytes int64
	// MaxAPIs caps the models (one per API, discovered ones included).
	MaxAPIs  int
	Training TrainingConfig
	// BlockTTL is how long an attacker stays blocked; it doubles with each
	// repeat offence, up to 24 hours.
	BlockTTL time.Duration
	// TypeTTL overrides BlockTTL per attack type.
	TypeTTL map[detect.AttackType]time.Duration
	// BlockAfter is how many detections of a single-call type
	// (oversized_payload: one call's size or JSON element count past Tx)
	// an identity needs within BlockWindow before it is acted on (blocked,
	// or would_block in detect mode); the earlier ones are recorded with
	// action "detected". One call is no pattern: it is statistical
	// evidence, not proof. Types measured over a window of calls (probing,
	// rates, distinct counts …) carry their repetition in their variables
	// and are acted on at their first detection, as are decoys and
	// honeytokens, which are proof. 0 means 3; 1 acts on every detection.
	BlockAfter int
	// BlockWindow is the window of BlockAfter (0: 10 minutes).
	BlockWindow time.Duration
	// Block puts an entry on the block list (nil: no blocking).
	Block func(detect.Entry)
	// Blocked reports whether an identity has a live block list entry at
	// a time (nil: never). A call that was let through while its identity
	// has one was in flight when the block landed (the engine runs behind
	// the request path): an attack it raises is recorded, and neither
	// replaces that block nor counts as a repeat offence that doubles it.
	Blocked func(k detect.Kind, id string, at time.Time) bool
	// OnAttack is called for every attack raised, from a worker.
	OnAttack func(*detect.Attack)
	Store    *detect.AttackStore
	IDs      *detect.IDGenerator
	// APIs are the configured APIs, whose models can be set before they
	// see traffic.
	APIs []*detect.API

	// The fields below run one engine as a replica of several sharing a
	// store (server/cluster); all optional, their zero values are a single
	// node, whose behaviour they leave unchanged.

	// ShareFraction > 0 enables shared windows (shared.go): a state is
	// shared once one of its window variables (the error ratio aside)
	// passes this fraction of its limit (its effective Tx, and at least
	// the variable's floor) and 3 (minShareEvidence) on this replica, and
	// stays shared until it is forgotten. Only shared states are collected for the store, so its
	// traffic follows suspicious identities, not all traffic.
	ShareFraction float64
	// Trainer reports whether this replica trains the models (nil: it
	// always does). While it reports false, a model neither computes
	// thresholds nor becomes ready by itself: it takes them from Adopt.
	Trainer func() bool
	// Replicas is the number of live replicas (nil: 1). Envoy spreads an
	// identity's calls over them, so a state that is not shared holds
	// about 1/Replicas of its additive counters: the trainer scales those
	// variables of such states' training samples by it (see sampleScale).
	Replicas func() int
	// OnModelChange is told of every change of a model made on this
	// replica, for the server to pass it on: after Apply, Import and Relax
	// with the update that makes the same knob and user-threshold change
	// on another replica (ApplyFromPeer); and with a nil update after the
	// trainer computed the learned thresholds (training ended, or a
	// relearn), from the goroutine calling Consume (it must not block):
	// publish Model(api) for the others to Adopt. Never for ApplyFromPeer,
	// Adopt or Restore.
	OnModelChange func(api string, u *ModelUpdate)
}

// Engine is the behavioural detection pipeline sink: per-identity windows,
// per-API models, attack records and blocking.
type Engine struct {
	cfg    EngineConfig
	seed   maphash.Seed
	shards []*shard

	mu     sync.RWMutex
	models map[string]*apiModel
}

type shard struct {
	e  *Engine
	ch chan work
	// states indexes the states by the hash of their key (stateKey), a
	// 16-byte entry (index.go); coll holds the rare state whose hash another state's
	// already takes.
	states   stateIndex
	coll     map[stateKey]*identityState
	seed     maphash.Seed
	max      int
	maxBytes int64 // 0: none
	bytes    int64 // estimated bytes of the states and the sightings table
	door     *sightings
	// scratch is the state a first call runs on (see sighting.go).
	scratch      identityState
	scratchPairs [numSketches]sketchPair
	scratchExtra stateExtra
	head         *identityState // most recently seen
	tail         *identityState
	// shared lists the shard's shared states (shared.go).
	shared []*identityState

	// Read by Stats, written only by the shard's worker.
	nStates   [detect.NumKinds]atomic.Int64
	evictions atomic.Uint64
	nBytes    atomic.Int64
	sightings atomic.Int64
}

// Stats are the engine's gauges and counters for metrics.
type Stats struct {
	// States is the number of tracked states per identity kind.
	States [detect.NumKinds]int64
	// Sightings is the number of identities held only as a cheap first
	// sighting, not yet as a state.
	Sightings int64
	// Evictions counts the states forgotten to stay within MaxStates and
	// MaxBytes.
	Evictions uint64
	// Bytes is the estimated bytes of the states and their indexes, the
	// table of first sightings included.
	Bytes int64
}

// Stats returns the engine's current figures. It is safe to call at any
// time, concurrently with the workers.
func (e *Engine) Stats() Stats {
	var st Stats
	for _, s := range e.shards {
		for k := range st.States {
			st.States[k] += s.nStates[k].Load()
		}
		st.Sightings += s.sightings.Load()
		st.Evictions += s.evictions.Load()
		st.Bytes += s.nBytes.Load()
	}
	return st
}

type stateKey struct {
	model *apiModel
	kind  detect.Kind
	id    string
}

type work struct {
	t     *detect.Transaction
	model *apiModel
	kind  detect.Kind
	// primary marks the call's most specific identity, which answers for
	// the per-request variables.
	primary bool
	// id, when set, is the identity instead of the call's of kind (an
	// address's network).
	id   string
	call callFacts
	// ctl, when set, is work of the engine's own (CollectShared,
	// ApplyShared) run in the shard's goroutine instead of a call.
	ctl func()
}

// callFacts are derived from a transaction once, for all its identities.
type callFacts struct {
	login     bool   // the API's login endpoint
	object    uint64 // objectKey of the path
	hasObject bool
	route     uint64 // routeKey of the call, for a failed call or one with a body
	scanner   bool   // a scanner-shaped path (detect.ScannerPath)
	// sharedIP: the call's address was lately found shared and the call
	// carries a credential or account (population.go).
	sharedIP bool
}

// NewEngine returns an engine; Run starts its workers.
func NewEngine(cfg EngineConfig) *Engine {
	if cfg.MaxStates <= 0 {
		cfg.MaxStates = 1 << 20
	}
	if cfg.MaxAPIs <= 0 {
		cfg.MaxAPIs = 1000
	}
	if cfg.BlockTTL <= 0 {
		cfg.BlockTTL = time.Hour
	}
	if cfg.BlockAfter <= 0 {
		cfg.BlockAfter = 3
	}
	if cfg.BlockWindow <= 0 {
		cfg.BlockWindow = 10 * time.Minute
	}
	if cfg.Store == nil {
		cfg.Store = detect.NewAttackStore(10000)
	}
	if cfg.IDs == nil {
		cfg.IDs = detect.NewIDGenerator()
	}
	e := &Engine{cfg: cfg, seed: maphash.MakeSeed(), models: map[string]*apiModel{}}
	n := max(cfg.Workers, 1)
	for range n {
		s := &shard{e: e, coll: map[stateKey]*identityState{}, seed: maphash.MakeSeed(), max: max(cfg.MaxStates/n, 1), ch: make(chan work, 4096)}
		// First sightings take an eighth of the byte budget, or a table
		// of a quarter of MaxStates.
		if cfg.MaxBytes > 0 {
			s.maxBytes = max(cfg.MaxBytes/int64(n), 1)
			s.door = newSightings(s.maxBytes / 8 / sightingBytes)
		} else {
			s.door = newSightings(int64(s.max / 4))
		}
		s.bytes = s.door.bytes()
		s.nBytes.Store(s.bytes)
		e.shards = append(e.shards, s)
	}
	return e
}

// Store returns the attack records.
func (e *Engine) Store() *detect.AttackStore { return e.cfg.Store }

// Run runs the workers until ctx ends and their queues are drained. With
// Workers = 0 it returns at once.
func (e *Engine) Run(ctx context.Context) {
	if e.cfg.Workers == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, s := range e.shards {
		wg.Go(func() {
			for {
				select {
				case w := <-s.ch:
					s.process(w)
				case <-ctx.Done():
					for {
						select {
						case w := <-s.ch:
							s.process(w)
						default:
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
}

// notable reports whether a call moves a slow variable other than volume
// (a delete, an error, a login): its slow variables are judged at once,
// not at the identity's next minute, since a slow attacker's last delete
// or failed login may be its last call. They are a small share of calls.
func notable(t *detect.Transaction, call *callFacts) bool {
	return t.Method == "DELETE" || t.Status >= 400 || call.login
}

// The engine is one of the pipeline's sinks.
var _ detect.Sink = (*Engine)(nil)

// Consume takes one transaction from the pipeline.
func (e *Engine) Consume(t *detect.Transaction) {
	if !t.HasRequest || !detect.TimeInRange(t.Start) {
		// No time, or one the windows cannot count (a broken log's 1969
		// or year 9999 in a replay): nothing to learn or judge.
		return
	}
	m := e.model(t)
	if m == nil {
		return
	}
	m.requests.Add(1)
	if m.tick(t.Start) {
		e.changed(m.name, nil)
	}
	primary, _ := primaryIdentity(t)
	t.Prepare()
	call := callFacts{login: m.api.IsLoginPath(t.Path)}
	call.object, call.hasObject = objectKey(t)
	if t.Status >= 400 || t.RequestBytes > 0 {
		call.route = routeKey(t.Method, t.Template)
	}
	if t.Status >= 400 {
		call.scanner = detect.ScannerPath(t.Path)
	}
	ip := t.Identities[detect.KindIP]
	if ip != "" && primary != detect.KindIP {
		call.sharedIP = m.sharedIP(ip, unixMinute(t.Start.UnixNano()))
	}
	for k := range detect.NumKinds {
		if id := t.Identities[k]; id != "" {
			e.dispatch(id, work{t: t, model: m, kind: k, primary: k == primary, call: call})
		}
	}
	// The address's network, where the call is evidence (population.go).
	if ip != "" && evidence(t, &call) {
		if n := network(ip); n != "" {
			e.dispatch(n, work{t: t, model: m, kind: detect.KindIP, id: n, call: call})
		}
	}
}

// dispatch hands w, for the state of identity id, to the shard owning it
// (processed in the caller without workers).
func (e *Engine) dispatch(id string, w work) {
	if e.cfg.Workers == 0 {
		e.shards[0].process(w)
		return
	}
	e.shards[e.shardIndex(id)].ch <- w
}

// shardIndex is the shard owning the states of identity id.
func (e *Engine) shardIndex(id string) uint64 {
	return maphash.String(e.seed, id) % uint64(len(e.shards))
}

// model returns the model of a transaction's API, created on first sight.
func (e *Engine) model(t *detect.Transaction) *apiModel {
	// Traffic outside the configured APIs is modelled per host: a scanner
	// trying /admin, /.env, /backup.sql … is one client probing one host,
	// not a client of a thousand APIs (and cannot exhaust the models).
	// On a host that a configured API serves, such traffic belongs to that
	// API's model, which has learned what its clients do.
	name := ""
	api := t.API
	switch {
	case api != nil && !api.Discovered:
		name = api.Name
	default:
		if a := e.hostAPI(t.Host); a != nil {
			name, api = a.Name, a
		} else {
			name = detect.DiscoveredName(t.Host, "/")
		}
	}
	e.mu.RLock()
	m := e.models[name]
	e.mu.RUnlock()
	if m != nil {
		return m
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if m = e.models[name]; m != nil {
		return m
	}
	if len(e.models) >= e.cfg.MaxAPIs {
		return nil
	}
	name = strings.Clone(name)
	m = e.newModel(name, api)
	e.models[name] = m
	return m
}

// perRequest checks the per-request variables (oversized payloads) on the
// call's most specific identity: the body against its population's, and
// against its endpoint's (endpoint.go).
func (s *shard) perRequest(st *identityState, t *detect.Transaction, call *callFacts) {
	m := st.model
	ts, knobs := m.thresholds.Load(), m.knobsSnap.Load()
	obs := []float64{float64(t.RequestBytes), float64(t.JSONElements)}
	p := st.pop()
	var over [2]bool
	fired := false
	for i, v := range []varID{vRequestBytes, vJSONElements} {
		over[i] = st.beyond(v, obs[i], extreme(ts, knobs, p, v))
		fired = fired || over[i]
	}
	var ep detect.VariableValue
	hasEP, epFires := false, false
	if t.RequestBytes > 0 {
		ep, epFires, hasEP = m.judgeEndpoint(call.route, t, knobs)
	}
	if st.flagged() == nil && !t.Blocked {
		// Only values under Tx train the model: one attack must not raise
		// the bar for the next. A refused body is no endpoint's normal.
		m.mu.Lock()
		for i, v := range []varID{vRequestBytes, vJSONElements} {
			if !over[i] {
				m.sampleLocked(p, v, obs[i])
			}
		}
		if t.RequestBytes > 0 && !epFires && t.Status < 400 {
			m.sampleEndpointLocked(call.route, t)
		}
		m.mu.Unlock()
	}
	if !fired && !epFires {
		return
	}
	vars, fires := m.explain(st, detect.AttackOversizedPayload, t.Start.UnixNano(), obs)
	if hasEP {
		vars = append(vars, ep)
	}
	if fires || epFires {
		s.e.raiseExplained(st, detect.AttackOversizedPayload, t, vars, obs...)
	}
}

func primaryIdentity(t *detect.Transaction) (detect.Kind, string) {
	for _, k := range []detect.Kind{detect.KindToken, detect.KindAPIKey, detect.KindCookie, detect.KindUsername, detect.KindIP} {
		if id := t.Identities[k]; id != "" {
			return k, id
		}
	}
	return 0, ""
}

// process updates one identity's state with a transaction and checks its
// variables, then keeps the shard within its bounds.
func (s *shard) process(w work) {
	if w.ctl != nil {
		w.ctl()
		return
	}
	id := w.id
	if id == "" {
		id = w.t.Identities[w.kind]
	}
	key := stateKey{w.model, w.kind, id}
	h := s.hash(key)
	st := s.lookup(key, h)
	switch {
	case st != nil:
		s.touch(st)
	case s.door != nil:
		e, seen := s.door.take(h)
		if !seen {
			s.firstSighting(key, h, w)
			return
		}
		s.sightings.Add(-1)
		st = s.newState(key, h, nil)
		e.replay(st)
		s.bytes += st.bytes()
	default:
		st = s.newState(key, h, nil)
		s.bytes += st.bytes()
		w.model.identities.Add(1)
	}
	before := st.bytes()
	s.update(st, w)
	s.settle(st, st.bytes()-before)
}

// firstSighting runs an identity's first call on the scratch state and
// keeps it as a sighting, or as a state if it showed more.
func (s *shard) firstSighting(key stateKey, h uint64, w work) {
	sc := &s.scratch
	sc.resetScratch(key, &s.scratchPairs, &s.scratchExtra)
	s.update(sc, w)
	key.model.identities.Add(1)
	if e, ok := sc.sighting(h); ok {
		if s.door.put(e) {
			s.sightings.Add(1)
		}
		return
	}
	st := s.newState(key, h, sc.adopt())
	s.bytes += st.bytes()
	s.settle(st, 0)
}

// update adds a call to the state and raises what it shows.
func (s *shard) update(st *identityState, w work) {
	t, m := w.t, w.model
	now := t.Start.UnixNano()
	if t.Blocked {
		// Vigil answered this call itself (block list, decoy, hard limit):
		// it never reached the API, and its status is Vigil's, so it is no
		// behaviour to learn from or to count. A blocked attacker's
		// retries would otherwise raise new attacks of other types (errors,
		// rates) on top of the one that blocked it. Only the payload it
		// sent is judged, and an attack record still says when the
		// identity was first seen and from where.
		if st.first == 0 {
			st.first = now
		}
		if w.kind != detect.KindIP && t.Identities[detect.KindIP] != "" {
			st.noteIP(t.Identities[detect.KindIP])
		}
		if w.primary {
			s.perRequest(st, t, &w.call)
		}
		return
	}
	// Once a minute, the identity's windows as of its last call become a
	// training sample (flagged identities never train the model), and the
	// multivariate model judges them.
	var mvType detect.AttackType
	var mvVars []detect.VariableValue
	// The slow variables (hour, day, self-baselines) move little from one
	// call to the next: they are judged on an identity's first call of
	// each minute, with its training sample, so that detection pays for
	// them once a minute per active identity (their quarry is slower),
	// and on its notable calls (deletes, errors, logins).
	minute := int32(now / int64(longBucket))
	slow := minute != st.lastSample || st.first == 0 || notable(t, &w.call)
	if w.call.sharedIP && w.kind != detect.KindIP {
		st.marks |= flagOnSharedIP
	}
	if minute != st.lastSample && st.first != 0 {
		if st.flagged() == nil {
			learning := !m.ready.Load()
			scale := s.e.sampleScale(st)
			// On the stack: sampleVector copies it only when its
			// reservoir keeps it, so most samples allocate nothing.
			var buf, all [numVars]float64
			vec := buf[:0]
			p := st.pop()
			for i, v := range kindVars[p] {
				x := st.value(v)
				if additive[v] {
					x *= scale
				}
				all[i] = x
				if !varDefs[v].slow {
					vec = append(vec, x)
				}
				if learning && x > 0 {
					x32, ext := float32(paceOfHour(v, x, now-st.first)), st.ext()
					if ext.ownMax == nil {
						ext.ownMax = new([numVars]float32)
					}
					ext.ownMax[v] = max(ext.ownMax[v], x32)
				}
			}
			// Once the model is ready, a value that would raise the
			// variable's limit by itself (1.5 × a quantile past Tx /
			// 1.5) trains nothing: an attacker on its way to a limit,
			// or under a floor, or not flagged yet, must not raise the
			// bar for the next, nor may the limit ratchet itself up
			// on values just under it. Only a shift of the population
			// (its 99th percentile) still moves it. A population with
			// no thresholds of its own yet (a derived one on its
			// kind's) takes every value.
			//
			// And once the model is ready, an identity trains a
			// population that has samples enough only in the first
			// minute of each power of two of its age (1, 2, 4, 8…
			// minutes), not in every minute it is active: a few
			// identities active for an hour (slow attackers not flagged
			// yet) would otherwise be a large share of the samples'
			// tail, raise the 99th percentile and so every limit.
			var ts *thresholdSet
			if !learning {
				ts = m.thresholds.Load()
			}
			octave := learning || st.newOctave(minute)
			m.mu.Lock()
			least := minSamples(m.base != nil)
			for i, v := range kindVars[p] {
				r := m.samples[p][v]
				if ts == nil || r == nil || r.seen < least || octave && all[i] <= ts[p][v].Tx/trainedGrowth {
					m.sampleLocked(p, v, all[i])
				}
			}
			if mv := m.mv[p]; octave || mv == nil || len(mv.vecs) < mvMinVectors {
				m.sampleVector(p, vec)
			}
			m.mu.Unlock()
			if !learning {
				if mvType, mvVars = m.anomalous(p, vec, m.thresholds.Load()); mvVars != nil {
					mvVars = st.withContext(mvVars, p)
				}
			}
		}
		st.lastSample = minute
	}
	st.observe(t, now, &w.call)
	if st.lastSample == 0 {
		st.lastSample = int32(now / int64(longBucket))
	}
	if w.primary {
		s.perRequest(st, t, &w.call)
	}
	ts, knobs := m.thresholds.Load(), m.knobsSnap.Load()
	p := st.pop()
	if p == popSharedIP {
		m.noteSharedIP(st.id, unixMinute(now))
	}
	var fired [numTypes]bool
	any := false
	// A state that nears a limit is shared (never the scratch state of a
	// first call: its next call, as a state, is checked again).
	share := s.e.cfg.ShareFraction > 0 && !st.prealloc() && st.sharedPart() == nil
	vars := forestVars[p] // the window variables but the slow ones
	if slow {
		vars = kindVars[p]
	}
	for _, v := range vars {
		if !knobs[varType[v]].Enabled {
			continue
		}
		x, tx := st.value(v), extreme(ts, knobs, p, v)
		if share {
			s.shareIfNear(st, v, x, tx)
			share = st.sharedPart() == nil
		}
		if st.beyond(v, x, tx) && m.armed(v, now, ts[p][v]) && st.spread(p, v) {
			fired[varType[v]] = true
			any = true
		}
	}
	// A specific type names the attack: the multivariate model's
	// anomaly is raised only when no threshold fired with it.
	if !any {
		if mvVars != nil {
			if st.walking(ts, knobs) {
				mvType = detect.AttackBOLAEnumeration
			}
			s.e.raiseExplained(st, mvType, t, mvVars)
		}
		return
	}
	if bola := typeIndex(detect.AttackBOLAEnumeration); !fired[bola] && (fired[errorsType] || fired[probingType] && !st.missingRoutes(ts, knobs, p)) && st.walking(ts, knobs) {
		// The errors and misses of an ID walk (403 and 404 on objects
		// of a known route it may not read) name no other attack than
		// the walk.
		vars, _ := m.explain(st, detect.AttackBOLAEnumeration, now, nil)
		for _, ti := range []int{errorsType, probingType} {
			if fired[ti] {
				fired[ti] = false
				more, _ := m.explain(st, allTypes()[ti], now, nil)
				vars = append(vars, more...)
			}
		}
		s.e.raiseExplained(st, detect.AttackBOLAEnumeration, t, vars)
	}
	for i, typ := range detect.AttackTypes() {
		if fired[i] {
			s.e.raise(st, typ, t, nil)
		}
	}
}

// trainedGrowth bounds what trains a ready model: values up to Tx divided
// by it (the factor compute applies to the 99.9th percentile).
const trainedGrowth = 1.5

// walking reports whether a state walks object IDs: nearly every call of
// its 10 minutes (walkShare, at least walkMinObjects) a new object read and
// many of its calls missing or refused (walkMissing: IDs guessed past the
// ones that exist or not its own; a partner reading its own orders finds
// them); or, over the hour, at least walkHourMisses reads of objects
// refused or missing, most of its errors, and of about as many distinct
// objects (a walk in bursts, its 10 minutes between two); or distinct
// objects at least half way from their normal (Tn) to their limit over 10
// minutes or the hour. The errors or the anomaly it shows are then an ID
// walk's (bola_enumeration), however slow it goes.
func (s *identityState) walking(ts *thresholdSet, knobs *[numTypes]TypeKnobs) bool {
	if !knobs[typeIndex(detect.AttackBOLAEnumeration)].Enabled {
		return false
	}
	n := s.longSum(cRequests)
	if o := s.value(vDistinctObjects); o >= walkMinObjects && o >= walkShare*n && s.longSum(cFailed)+s.longSum(cErrors) >= walkMissing*n {
		return true
	}
	if l := s.lt(); l != nil {
		miss := l.hourSum(ltObjectMisses)
		if miss >= walkHourMisses && miss >= walkShare*l.hourSum(ltErrors) && s.value(vObjectsHour) >= walkShare*miss {
			return true
		}
	}
	p := s.pop()
	for _, v := range []varID{vDistinctObjects, vObjectsHour} {
		if !applies(v, p) {
			continue
		}
		x, tn := s.value(v), ts[p][v].Tn
		limit := max(extreme(ts, knobs, p, v), varDefs[v].floor)
		if x >= varDefs[v].floor/2 && limit > tn && (x-tn)/(limit-tn) >= mvNameAt {
			return true
		}
	}
	return false
}

// additive marks the variables that add up calls (or bytes) over a
// window: with several replicas, each holds about its share of them.
var additive = [numVars]bool{vRequestsPerMin: true, vErrors: true, vFailedRequests: true,
	vLoginFailures: true, vResponseBytes: true, vDeletes: true, vRequestsHour: true, vRequestsDay: true,
	vErrorsHour: true, vLoginFailuresHour: true, vResponseBytesHour: true, vResponseBytesDay: true, vDeletesHour: true}

// sampleScale is what a state's additive variables are multiplied by in
// its training samples (and the multivariate vector checked with them,
// and the identity's own maxima): the live replicas (EngineConfig.Replicas)
// for a state that is not shared, since Envoy spreads an identity's calls
// over all replicas and such a state holds about 1/N of them; 1 for a
// shared state, whose windows are already the cluster's, and for a single
// node. Distinct counts (paths, users, IPs, agents, objects) are not
// scaled, as no factor is right for them: 1/N of the calls shows from
// 1/N of the distinct values (every call a new object) to all of them (an
// identity's one IP and user agent), so they are learned as this replica
// sees them, which can be below the cluster's value of the same identity
// by up to N times; Tx's margin (at least 3 × the 99th percentile) covers
// that for up to three replicas. The error ratio is a ratio, the same on
// every replica.
func (e *Engine) sampleScale(st *identityState) float64 {
	if e.cfg.Replicas == nil || st.sharedPart() != nil {
		return 1
	}
	return float64(max(e.cfg.Replicas(), 1))
}

// hash returns the 64-bit hash of a state's key; never 0.
func (s *shard) hash(k stateKey) uint64 {
	h := maphash.String(s.seed, k.id)
	h ^= (uint64(uintptr(unsafe.Pointer(k.model))) + uint64(k.kind)) * 0x9E3779B97F4A7C15
	h ^= h >> 29
	return h | 1
}

// lookup returns the state of key (whose hash is h), nil if none.
func (s *shard) lookup(key stateKey, h uint64) *identityState {
	st := s.states.get(h)
	if st != nil && st.model == key.model && st.kind == key.kind && st.id == key.id {
		return st
	}
	if len(s.coll) == 0 {
		return nil
	}
	return s.coll[key]
}

func (s *shard) numStates() int { return s.states.len() + len(s.coll) }

// newState adds the state of key (st, or a new one) to the shard, as
// the most recently seen; the caller accounts for its bytes, and settle
// then keeps the shard within its bounds.
func (s *shard) newState(key stateKey, h uint64, st *identityState) *identityState {
	if st == nil {
		st = &identityState{model: key.model, kind: key.kind, id: strings.Clone(key.id)}
	}
	if s.states.get(h) != nil {
		s.coll[stateKey{key.model, key.kind, st.id}] = st
	} else {
		s.states.put(h, st)
	}
	s.pushFront(st)
	s.nStates[key.kind].Add(1)
	return st
}

// settle accounts for what st grew by in a call, then forgets the least
// recently seen states (never st, the one just seen) while the shard is
// past MaxStates or its share of MaxBytes.
func (s *shard) settle(st *identityState, grew int64) {
	s.bytes += grew
	for (s.numStates() > s.max || s.maxBytes > 0 && s.bytes > s.maxBytes) && s.tail != nil && s.tail != st {
		s.evict(s.tail)
	}
	// A new state's bytes were added before this call: compare with what
	// was published, not with grew.
	if s.nBytes.Load() != s.bytes {
		s.nBytes.Store(s.bytes)
	}
}

// evict forgets a state.
func (s *shard) evict(old *identityState) {
	s.evictKeyed(old, s.hash(stateKey{old.model, old.kind, old.id}))
}

// evictKeyed forgets a state whose key hashes to h.
func (s *shard) evictKeyed(old *identityState, h uint64) {
	s.unlink(old)
	s.unshare(old)
	if s.states.get(h) == old {
		s.states.del(h)
	} else {
		delete(s.coll, stateKey{old.model, old.kind, old.id})
	}
	s.bytes -= old.bytes()
	s.nStates[old.kind].Add(-1)
	s.evictions.Add(1)
}

func (s *shard) touch(st *identityState) {
	if s.head == st {
		return
	}
	s.unlink(st)
	s.pushFront(st)
}

func (s *shard) pushFront(st *identityState) {
	st.prev, st.next = nil, s.head
	if s.head != nil {
		s.head.prev = st
	}
	s.head = st
	if s.tail == nil {
		s.tail = st
	}
}

func (s *shard) unlink(st *identityState) {
	if st.prev != nil {
		st.prev.next = st.next
	} else {
		s.head = st.next
	}
	if st.next != nil {
		st.next.prev = st.prev
	} else {
		s.tail = st.prev
	}
	st.prev, st.next = nil, nil
}

// raise records an attack of type typ by the state's identity, unless one
// was raised lately, and acts on it by the API's mode. While the API
// learns, it is only counted. perReq carries the per-request observations.
func (e *Engine) raise(st *identityState, typ detect.AttackType, t *detect.Transaction, perReq []float64) {
	e.raiseExplained(st, typ, t, nil, perReq...)
}

// raiseExplained is raise with the explaining variables given (the
// multivariate model's), or measured here when vars is nil.
func (e *Engine) raiseExplained(st *identityState, typ detect.AttackType, t *detect.Transaction, given []detect.VariableValue, perReq ...float64) {
	m := st.model
	knobs := m.knobsSnap.Load()
	ti := typeIndex(typ)
	if !knobs[ti].Enabled {
		return
	}
	vars, fires := given, true
	if given == nil {
		vars, fires = m.explain(st, typ, t.Start.UnixNano(), perReq)
	}
	if !fires {
		return
	}
	now := t.Start
	if f := st.flagged(); f != nil && now.UnixNano() < f[ti] {
		return // raised lately: one record per attack, not per request
	}
	if !m.ready.Load() {
		m.wouldBe.Add(1)
		return
	}
	if singleCall[ti] && !st.repeated(ti, now.UnixNano(), e.cfg.BlockAfter, e.cfg.BlockWindow) {
		// Recorded, not acted on: the identity is not flagged, so its next
		// detections count towards BlockAfter.
		e.recordOnly(st, typ, m.name, now, vars)
		return
	}
	ttl := e.cfg.BlockTTL
	if d, ok := e.cfg.TypeTTL[typ]; ok && d > 0 {
		ttl = d
	}
	mode := detect.ModeBlock
	if m.api != nil {
		mode = m.api.Mode
	}
	if mode == detect.ModeBlock && !t.Blocked && e.cfg.Blocked != nil && e.cfg.Blocked(st.kind, st.id, now) {
		st.flags()[ti] = now.Add(ttl).UnixNano()
		e.recordOnly(st, typ, m.name, now, vars)
		return
	}
	ttl <<= min(st.attacks(), 5)
	ttl = min(ttl, 24*time.Hour)
	st.flags()[ti] = now.Add(ttl).UnixNano()
	a := e.newAttack(st, typ, m.name, now, vars)
	st.extra.attacks++
	carrier, carried := carrierOf(st, t)
	if carried != "" {
		a.Identity = detect.AttackIdentity{Kind: carrier.String(), Value: carried}
		// Says the variables are the address's (Relax sets the ip
		// population's thresholds, not the credential's).
		a.Variables = append(a.Variables, detect.VariableValue{Name: addressVariable, Observed: 1})
	}
	var entry, carrierEntry *detect.Entry
	switch mode {
	case detect.ModeBlock:
		a.Action = detect.ActionBlocked
		until := now.Add(ttl).UTC()
		a.BlockedUntil = &until
		entry = &detect.Entry{Kind: st.kind, Value: st.id, Reason: "attack " + string(typ) + " " + a.ID, AttackID: a.ID, CreatedAt: now, ExpiresAt: until}
		if carried != "" {
			c := *entry
			c.Kind, c.Value = carrier, carried
			carrierEntry = &c
		}
	case detect.ModeDetect:
		a.Action = detect.ActionWouldBlock
	default:
		a.Action = detect.ActionDetected
	}
	// The record exists before the block it explains takes effect.
	e.cfg.Store.Add(a)
	if e.cfg.OnAttack != nil {
		e.cfg.OnAttack(a)
	}
	if entry != nil && e.cfg.Block != nil {
		e.cfg.Block(*entry)
		if carrierEntry != nil {
			e.cfg.Block(*carrierEntry)
		}
	}
}

// carrierOf returns the credential that carried the call on which a
// single client's address shows an attack: the attack is the credential's
// (a token, an API key, a session cookie: who acts), recorded under it and
// blocked with the address. The credential's own state judges it too,
// but its windows may lag the address's by the call that logged it in,
// and once the address is blocked it sees nothing more. A shared address
// or a network keeps its attacks (it then behaves like one attacker), and
// a login attempt's user name is its target, never its carrier.
func carrierOf(st *identityState, t *detect.Transaction) (detect.Kind, string) {
	if st.kind != detect.KindIP || st.pop() != pop(detect.KindIP) {
		return 0, ""
	}
	for _, k := range []detect.Kind{detect.KindToken, detect.KindAPIKey, detect.KindCookie} {
		if id := t.Identities[k]; id != "" {
			return k, id
		}
	}
	return 0, ""
}

var (
	errorsType  = typeIndex(detect.AttackExcessiveErrors)
	probingType = typeIndex(detect.AttackProbing)
)

// missingRoutes reports whether a state's probing shows routes the API
// does not have (or scanner-shaped paths), not only missing objects.
func (s *identityState) missingRoutes(ts *thresholdSet, knobs *[numTypes]TypeKnobs, p pop) bool {
	for _, v := range []varID{vUnknownRoutes, vUnknownShare, vScannerPaths} {
		if applies(v, p) && s.beyond(v, s.value(v), extreme(ts, knobs, p, v)) {
			return true
		}
	}
	return false
}

// An identity walks IDs when at least walkShare of its calls over 10
// minutes, and walkMinObjects of them, read distinct objects (the sketch's
// error is about 13 %: a walk of distinct IDs shows 0.87 and more; a
// client refused on updates of a few objects, far less).
const (
	walkShare      = 0.7
	walkMinObjects = 15
	walkMissing    = 0.15
	walkHourMisses = 12
)

// explain measures the variables of type typ on a state (perReq: the
// per-request observations): the explanation, and whether one of them
// fires.
func (m *apiModel) explain(st *identityState, typ detect.AttackType, now int64, perReq []float64) ([]detect.VariableValue, bool) {
	ts, knobs := m.thresholds.Load(), m.knobsSnap.Load()
	p := st.pop()
	var vars []detect.VariableValue
	fires := false
	for v := range numVars {
		d := varDefs[v]
		if d.attack != typ || !applies(v, p) {
			continue
		}
		var x float64
		if d.perRequest {
			x = perReq[v-vRequestBytes]
		} else {
			x = st.value(v)
		}
		th := ts[p][v]
		tx := extreme(ts, knobs, p, v)
		if st.beyond(v, x, tx) && m.armed(v, now, th) && st.spread(p, v) {
			fires = true
		}
		vars = append(vars, detect.VariableValue{Name: d.name, Observed: round(x), Tn: round(th.Tn), Tx: round(tx), DeviationPct: deviation(v, x, th.Tn)})
	}
	if vars != nil {
		vars = st.withContext(vars, p)
	}
	return vars, fires
}

// withContext adds to an explanation how the state was judged: the users
// behind a shared address, the addresses of a network, a credential seen
// from a shared address.
func (s *identityState) withContext(vars []detect.VariableValue, p pop) []detect.VariableValue {
	switch {
	case p == popSharedIP:
		vars = append(vars, s.usersVariable())
	case p == popNetwork:
		vars = append(vars, s.addressesVariable())
	case p >= popOnShared:
		vars = append(vars, sharedAddressVariable())
	}
	return vars
}

// recordOnly records an attack that is not acted on (action detected).
func (e *Engine) recordOnly(st *identityState, typ detect.AttackType, api string, now time.Time, vars []detect.VariableValue) {
	a := e.newAttack(st, typ, api, now, vars)
	a.Action = detect.ActionDetected
	e.cfg.Store.Add(a)
	if e.cfg.OnAttack != nil {
		e.cfg.OnAttack(a)
	}
}

// extreme returns the extreme threshold that decides whether variable v
// of an identity of kind k raises an attack: its Tx (learned or user-set)
// divided by the sensitivity of v's attack type, so a sensitivity above 1
// detects more and one below 1 less. Every check and every explanation
// takes Tx from here.
func extreme(ts *thresholdSet, knobs *[numTypes]TypeKnobs, k pop, v varID) float64 {
	sens := knobs[varType[v]].Sensitivity
	if sens <= 0 {
		sens = 1
	}
	return ts[k][v].Tx / sens
}

// singleCall marks the attack types whose variables are measured on one
// call (per request): BlockAfter applies to them.
var singleCall = func() (out [numTypes]bool) {
	for v := range numVars {
		if varDefs[v].perRequest {
			out[varType[v]] = true
		}
	}
	return out
}()

// repeated notes a detection of type ti at now and reports whether it is
// the n-th within window: the identity is then acted on, and the count
// starts again.
func (s *identityState) repeated(ti int, now int64, n int, window time.Duration) bool {
	if n <= 1 {
		return true
	}
	ext := s.ext()
	if ext.strikes == nil {
		ext.strikes = new([numTypes][]int64)
	}
	times := ext.strikes[ti][:0]
	for _, at := range ext.strikes[ti] {
		if now-at < int64(window) {
			times = append(times, at)
		}
	}
	times = append(times, now)
	if len(times) >= n {
		times = times[:0]
		ext.strikes[ti] = times
		return true
	}
	ext.strikes[ti] = times
	return false
}

// attackIPs returns the client IPs an attack record names.
func (s *identityState) attackIPs() []string {
	if s.kind == detect.KindIP {
		return []string{s.id}
	}
	return append([]string(nil), s.clientIPs()...)
}

func round(x float64) float64 { return math.Round(x*100) / 100 }

// deviation is how far x is above (or below) tn, in percent of tn; for a
// normal of 0 (benign identities never showed the variable, as with
// scanner-shaped paths), in percent of half the variable's floor, the
// default normal.
func deviation(v varID, x, tn float64) float64 {
	if tn <= 0 {
		return math.Round(x/(varDefs[v].floor/2)*1000) / 10
	}
	return deviationFrom(x, tn)
}

// deviationFrom is how far x is from tn (> 0), in percent of tn.
func deviationFrom(x, tn float64) float64 { return math.Round((x-tn)/tn*1000) / 10 }

// ModelStatus is an API model's training state.
type ModelStatus struct {
	API               string    `json:"api"`
	State             string    `json:"state"` // learning or ready
	Start             time.Time `json:"start,omitzero"`
	ReadyAt           time.Time `json:"ready_at,omitzero"`
	Requests          int64     `json:"requests"`
	Identities        int64     `json:"identities"`
	WouldBeDetections int64     `json:"would_be_detections"`
	// Progress is how far each training condition is, from 0 to 1.
	Progress struct {
		Duration   float64 `json:"duration"`
		Requests   float64 `json:"requests"`
		Identities float64 `json:"identities"`
	} `json:"progress"`
}

// Models returns the status of every API model, sorted by API.
func (e *Engine) Models() []ModelStatus {
	e.mu.RLock()
	models := make([]*apiModel, 0, len(e.models))
	for _, m := range e.models {
		models = append(models, m)
	}
	e.mu.RUnlock()
	out := make([]ModelStatus, 0, len(models))
	for _, m := range models {
		out = append(out, m.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].API < out[j].API })
	return out
}

func (m *apiModel) status() ModelStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := ModelStatus{API: m.name, State: "learning", Start: m.start, ReadyAt: m.readyAt,
		Requests: m.requests.Load(), Identities: m.identities.Load(), WouldBeDetections: m.wouldBe.Load()}
	if m.ready.Load() {
		s.State = "ready"
	}
	frac := func(a, b float64) float64 {
		if b <= 0 {
			return 1
		}
		return min(1, a/b)
	}
	if !m.start.IsZero() {
		s.Progress.Duration = frac(float64(m.lastSeen.Sub(m.start)), float64(m.cfg.Duration))
	}
	s.Progress.Requests = frac(float64(m.clusterRequests()), float64(m.cfg.MinRequests))
	s.Progress.Identities = frac(float64(s.Identities), float64(m.cfg.MinIdentities))
	if m.ready.Load() {
		s.Progress.Duration, s.Progress.Requests, s.Progress.Identities = 1, 1, 1
	}
	return s
}

// hostAPI returns the configured API that names host among its exact
// hosts, if any.
func (e *Engine) hostAPI(host string) *detect.API {
	if host == "" {
		return nil
	}
	h := detect.HostOnly(host)
	for _, a := range e.cfg.APIs {
		for _, x := range a.Hosts {
			if x != "*" && !strings.HasPrefix(x, "*.") && strings.EqualFold(x, h) {
				return a
			}
		}
	}
	return nil
}

// Report records an attack raised outside the engine (a decoy hit): it is
// stored and handed to OnAttack like the engine's own.
func (e *Engine) Report(a *detect.Attack) {
	e.cfg.Store.Add(a)
	if e.cfg.OnAttack != nil {
		e.cfg.OnAttack(a)
	}
}

// NewAttackID returns a fresh attack ID.
func (e *Engine) NewAttackID() string { return e.cfg.IDs.Next() }

// newAttack is the record of an attack st raised on api at now.
func (e *Engine) newAttack(st *identityState, typ detect.AttackType, api string, now time.Time, vars []detect.VariableValue) *detect.Attack {
	return &detect.Attack{
		ID: e.cfg.IDs.Next(), Type: typ, API: api,
		Identity:   detect.AttackIdentity{Kind: st.kind.String(), Value: st.id},
		FirstSeen:  time.Unix(0, st.first).UTC(),
		DetectedAt: now.UTC(),
		Variables:  vars,
		ClientIPs:  st.attackIPs(),
		Repeat:     st.attacks(),
	}
}
