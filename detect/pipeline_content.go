package detect

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vigil-project/vigil/detect/inspect"
)

// ContentSinkConfig configures the ContentSink.
type ContentSinkConfig struct {
	// Guard is the hot path's content inspection, whose profiles the sink
	// publishes.
	Guard *ContentGuard
	// Store keeps the attack records (the engine's, so that one list
	// shows every attack); IDs names them.
	Store *AttackStore
	IDs   *IDGenerator
	// Block, Blocked and OnAttack are the engine's hooks (block list,
	// live block lookup, log, metrics and webhooks).
	Block    func(Entry)
	Blocked  func(k Kind, id string, at time.Time) bool
	OnAttack func(*Attack)
	// BlockTTL (doubling per repeat offence up to 24h), TypeTTL per type,
	// BlockAfter content attacks of one identity within BlockWindow block
	// it (0: 3 and 10 minutes); the earlier ones are recorded as detected
	// (in block mode each of them was refused on the spot).
	BlockTTL    time.Duration
	TypeTTL     map[AttackType]time.Duration
	BlockAfter  int
	BlockWindow time.Duration
	// Learn holds the learners' knobs (zero fields: inspect's defaults).
	Learn inspect.LearnConfig
	// PublishEvery is how often, on the records' clock, a learner that
	// learned something publishes its model to the hot path (0: 2s).
	PublishEvery time.Duration
	// MaxStates bounds the identities tracked (0: 100000).
	MaxStates int
}

// ContentSink is the pipeline sink of content inspection: it records the
// attacks content inspection found (one record per finding until the
// identity is acted on, BlockAfter findings within BlockWindow), blocks
// the identity in block mode (would_block in detect mode), and feeds each
// configured API's profile learner with the sampled calls of identities
// neither flagged nor blocked, publishing its model to the hot path.
type ContentSink struct {
	cfg ContentSinkConfig

	mu       sync.Mutex
	states   map[string]*contentState
	suspects map[string]int64 // identity key → flagged until (unix ns)
	learners map[string]*contentLearner
}

type contentState struct {
	first   time.Time
	hits    []int64 // times of recent findings, at most BlockAfter
	until   int64   // acted on until (unix ns): later findings are counted only
	attacks int     // times acted on: the block doubles with each
	skipped uint64
}

type contentLearner struct {
	l         *inspect.Learner
	dirty     bool
	published time.Time
}

// NewContentSink returns the sink.
func NewContentSink(cfg ContentSinkConfig) *ContentSink {
	if cfg.BlockAfter <= 0 {
		cfg.BlockAfter = 3
	}
	if cfg.BlockWindow <= 0 {
		cfg.BlockWindow = 10 * time.Minute
	}
	if cfg.BlockTTL <= 0 {
		cfg.BlockTTL = time.Hour
	}
	if cfg.PublishEvery <= 0 {
		cfg.PublishEvery = 2 * time.Second
	}
	if cfg.MaxStates <= 0 {
		cfg.MaxStates = 100000
	}
	if cfg.IDs == nil {
		cfg.IDs = NewIDGenerator()
	}
	return &ContentSink{cfg: cfg, states: map[string]*contentState{}, suspects: map[string]int64{}, learners: map[string]*contentLearner{}}
}

// primaryIdentity is who a content attack is held against: the call's
// credential (token, API key, session cookie) when it has one, else its
// IP. A user name alone may be claimed by anyone.
func primaryIdentity(ids *Identities) (Kind, string) {
	for _, k := range []Kind{KindToken, KindAPIKey, KindCookie} {
		if ids[k] != "" {
			return k, ids[k]
		}
	}
	return KindIP, ids[KindIP]
}

// contentAPIName is the name of a call's API in records: a configured
// API's, or the discovered one's (host and base path).
func contentAPIName(t *Transaction) string {
	if t.API != nil && !t.API.Discovered {
		return t.API.Name
	}
	return DiscoveredName(t.Host, DiscoveredBase(t.Path))
}

// Consume records a content attack or learns from a benign sampled call.
func (s *ContentSink) Consume(t *Transaction) {
	switch {
	case t.Content != nil:
		s.attack(t)
	case t.Sample != nil:
		s.learn(t)
	}
}

// Flag keeps an attacker's identities out of learning (every attack
// raised, whatever its type, is handed here) until the block it may carry
// ends, and at least an hour.
func (s *ContentSink) Flag(a *Attack) {
	until := a.DetectedAt.Add(time.Hour)
	if a.BlockedUntil != nil && a.BlockedUntil.After(until) {
		until = *a.BlockedUntil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := a.DetectedAt.UnixNano()
	s.flagLocked(a.Identity.Kind, a.Identity.Value, until.UnixNano(), now)
	for _, ip := range a.ClientIPs {
		s.flagLocked("ip", ip, until.UnixNano(), now)
	}
}

// flagLocked keeps an identity out of learning until a time; now (the
// records' clock) lets an overfull set forget the flags that ended.
func (s *ContentSink) flagLocked(kind, id string, until, now int64) {
	if id == "" {
		return
	}
	key := kind + ":" + id
	if len(s.suspects) >= s.cfg.MaxStates {
		for k, u := range s.suspects {
			if u < now || len(s.suspects) >= s.cfg.MaxStates {
				delete(s.suspects, k)
			}
		}
	}
	if until > s.suspects[key] {
		s.suspects[key] = until
	}
}

func (s *ContentSink) attack(t *Transaction) {
	c := t.Content
	api := contentAPIName(t)
	kind, id := primaryIdentity(&t.Identities)
	now := t.Start
	ns := now.UnixNano()
	key := api + "\x00" + kind.String() + ":" + id
	s.mu.Lock()
	st := s.states[key]
	if st == nil {
		if len(s.states) >= s.cfg.MaxStates {
			s.evictLocked(ns)
		}
		st = &contentState{first: now}
		s.states[key] = st
	}
	if ns < st.until {
		// Acted on already: one record per attack, not per request.
		st.skipped++
		s.mu.Unlock()
		return
	}
	// Findings within the window, this one included.
	hits := st.hits[:0]
	for _, h := range st.hits {
		if ns-h < int64(s.cfg.BlockWindow) {
			hits = append(hits, h)
		}
	}
	hits = append(hits, ns)
	if len(hits) > s.cfg.BlockAfter {
		hits = hits[len(hits)-s.cfg.BlockAfter:]
	}
	st.hits = hits
	act := len(hits) >= s.cfg.BlockAfter
	mode := ModeBlock
	if t.API != nil {
		mode = t.API.Mode
	}
	ttl := s.cfg.BlockTTL
	if d, ok := s.cfg.TypeTTL[c.Type]; ok && d > 0 {
		ttl = d
	}
	repeat := st.attacks
	if act {
		if mode == ModeBlock && !t.Blocked && s.cfg.Blocked != nil && s.cfg.Blocked(kind, id, now) {
			// A block landed while this call was in flight: recorded only,
			// neither replacing that block nor counting as a repeat.
			act = false
		} else {
			ttl = min(ttl<<min(st.attacks, 5), 24*time.Hour)
			st.until = now.Add(ttl).UnixNano()
			st.attacks++
			st.hits = st.hits[:0]
		}
	}
	first := st.first
	s.flagLocked(kind.String(), id, now.Add(max(ttl, time.Hour)).UnixNano(), ns)
	s.flagLocked("ip", t.Identities[KindIP], now.Add(max(ttl, time.Hour)).UnixNano(), ns)
	s.mu.Unlock()

	loc, _, _ := strings.Cut(c.KeyPath, ".")
	a := &Attack{
		ID: s.cfg.IDs.Next(), Type: c.Type, API: api,
		Identity:   AttackIdentity{Kind: kind.String(), Value: id},
		FirstSeen:  first.UTC(),
		DetectedAt: now.UTC(),
		Variables:  []VariableValue{{Name: c.KeyPath, Location: loc, Detector: c.Detector, Excerpt: c.Excerpt}},
		Action:     ActionDetected,
		Repeat:     repeat,
		Request:    &AttackRequest{Method: t.Method, Host: t.Host, Path: t.Path, UserAgent: t.UserAgent},
	}
	if ip := t.Identities[KindIP]; ip != "" {
		a.ClientIPs = []string{ip}
	}
	var entry *Entry
	if act && id != "" {
		switch mode {
		case ModeBlock:
			a.Action = ActionBlocked
			until := now.Add(ttl).UTC()
			a.BlockedUntil = &until
			entry = &Entry{Kind: kind, Value: id, Reason: "attack " + string(c.Type) + " " + a.ID, AttackID: a.ID, CreatedAt: now, ExpiresAt: until}
		case ModeDetect:
			a.Action = ActionWouldBlock
		}
	}
	// The record exists before the block it explains takes effect.
	if s.cfg.Store != nil {
		s.cfg.Store.Add(a)
	}
	if s.cfg.OnAttack != nil {
		s.cfg.OnAttack(a)
	}
	if entry != nil && s.cfg.Block != nil {
		s.cfg.Block(*entry)
	}
}

// evictLocked makes room in the states: those neither acted on nor with a
// finding within the window go first, then any.
func (s *ContentSink) evictLocked(now int64) {
	for k, st := range s.states {
		last := int64(0)
		if n := len(st.hits); n > 0 {
			last = st.hits[n-1]
		}
		if st.until < now && now-last >= int64(s.cfg.BlockWindow) {
			delete(s.states, k)
		}
	}
	for k := range s.states {
		if len(s.states) < s.cfg.MaxStates {
			return
		}
		delete(s.states, k)
	}
}

// suspect reports whether any identity of a call is flagged or blocked.
func (s *ContentSink) suspectLocked(t *Transaction) bool {
	ns := t.Start.UnixNano()
	for k, v := range t.Identities {
		if v == "" {
			continue
		}
		if until, ok := s.suspects[Kind(k).String()+":"+v]; ok && ns < until {
			return true
		}
		if s.cfg.Blocked != nil && s.cfg.Blocked(Kind(k), v, t.Start) {
			return true
		}
	}
	return false
}

func (s *ContentSink) learn(t *Transaction) {
	if t.Blocked || t.WouldBlock || t.Reason != ReasonNone || t.API == nil || t.API.Discovered || !t.API.Inspection {
		return
	}
	if t.Status >= 400 {
		// A call the back end refused teaches nothing about what it accepts.
		return
	}
	t.Prepare()
	kind, id := primaryIdentity(&t.Identities)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.suspectLocked(t) {
		return
	}
	cl := s.learnerLocked(t.API.Name)
	cl.l.Observe(t.Template, &t.Sample.View, kind.String()+":"+id, t.Start)
	cl.dirty = true
	if t.Start.Sub(cl.published) >= s.cfg.PublishEvery {
		s.publishLocked(t.API.Name, cl, t.Start)
	}
}

func (s *ContentSink) learnerLocked(api string) *contentLearner {
	cl := s.learners[api]
	if cl == nil {
		cl = &contentLearner{l: inspect.NewLearner(s.cfg.Guard.Inspector(), s.cfg.Learn)}
		s.learners[api] = cl
	}
	return cl
}

func (s *ContentSink) publishLocked(api string, cl *contentLearner, now time.Time) {
	cl.dirty, cl.published = false, now
	if s.cfg.Guard != nil {
		s.cfg.Guard.SetModel(api, cl.l.Model())
	}
}

// Publish publishes every learner's model that learned something since
// its last publication (serve calls it periodically, so that the last
// calls of a quiet API are not left out).
func (s *ContentSink) Publish(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for api, cl := range s.learners {
		if cl.dirty {
			s.publishLocked(api, cl, now)
		}
	}
}

// ContentModelDoc is content inspection's part of an API's model document
// (GET /v1/models/{api}, export and import): the learner's knobs and the
// learned parameter profiles.
type ContentModelDoc struct {
	Knobs     ContentKnobs        `json:"knobs"`
	Endpoints []*inspect.Profiles `json:"endpoints"`
}

// ContentKnobs are the knobs of an API's profile learning: a profile is
// trusted once MinIdentities distinct identities over MinSpan and
// MinSamples values agree; SampleEvery is how many calls inspection lets
// through per call the learners get (one setting for every API; 0: none).
type ContentKnobs struct {
	MinIdentities int              `json:"min_identities"`
	MinSpan       inspect.Duration `json:"min_span"`
	MinSamples    int              `json:"min_samples"`
	SampleEvery   int              `json:"sample_every"`
}

// ContentKnobsUpdate changes some knobs; absent fields keep their value.
type ContentKnobsUpdate struct {
	MinIdentities *int              `json:"min_identities" yaml:"min_identities"`
	MinSpan       *inspect.Duration `json:"min_span" yaml:"min_span"`
	MinSamples    *int              `json:"min_samples" yaml:"min_samples"`
	SampleEvery   *int              `json:"sample_every" yaml:"sample_every"`
}

// Validate reports the first bad value.
func (u *ContentKnobsUpdate) Validate() error {
	switch {
	case u.MinIdentities != nil && (*u.MinIdentities < 1 || *u.MinIdentities > 1e6):
		return fmt.Errorf("inspection.min_identities: %d, want 1 to 1000000", *u.MinIdentities)
	case u.MinSpan != nil && (*u.MinSpan < 0 || time.Duration(*u.MinSpan) > 90*24*time.Hour):
		return fmt.Errorf("inspection.min_span: %s, want 0 to 2160h", time.Duration(*u.MinSpan))
	case u.MinSamples != nil && (*u.MinSamples < 1 || *u.MinSamples > 1e9):
		return fmt.Errorf("inspection.min_samples: %d, want 1 to 1000000000", *u.MinSamples)
	case u.SampleEvery != nil && (*u.SampleEvery < 0 || *u.SampleEvery > 1e6):
		return fmt.Errorf("inspection.sample_every: %d, want 0 (none) to 1000000", *u.SampleEvery)
	}
	return nil
}

// learnConfigLocked is the learner configuration of an API.
func (s *ContentSink) learnConfigLocked(api string) inspect.LearnConfig {
	if cl := s.learners[api]; cl != nil {
		return cl.l.Config()
	}
	return inspect.NewLearner(s.cfg.Guard.Inspector(), s.cfg.Learn).Config()
}

// ContentModel is an API's content model document.
func (s *ContentSink) ContentModel(api string) *ContentModelDoc {
	s.mu.Lock()
	defer s.mu.Unlock()
	lc := s.learnConfigLocked(api)
	d := &ContentModelDoc{Knobs: ContentKnobs{MinIdentities: lc.MinIdentities, MinSpan: lc.MinSpan, MinSamples: lc.MinSamples,
		SampleEvery: s.cfg.Guard.sampleEveryValue()}, Endpoints: []*inspect.Profiles{}}
	if cl := s.learners[api]; cl != nil {
		if m := cl.l.Model(); m != nil && m.Endpoints != nil {
			d.Endpoints = m.Endpoints
		}
	}
	return d
}

// ApplyContent changes an API's knobs: what was learned is judged again
// with the new thresholds and published at once.
func (s *ContentSink) ApplyContent(api string, u *ContentKnobsUpdate) error {
	if err := u.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyLocked(api, u, nil)
	return nil
}

func (s *ContentSink) applyLocked(api string, u *ContentKnobsUpdate, m *inspect.Model) {
	lc := s.learnConfigLocked(api)
	if u.MinIdentities != nil {
		lc.MinIdentities = *u.MinIdentities
	}
	if u.MinSpan != nil {
		lc.MinSpan = *u.MinSpan
	}
	if u.MinSamples != nil {
		lc.MinSamples = *u.MinSamples
	}
	if u.SampleEvery != nil {
		s.cfg.Guard.SetSampleEvery(*u.SampleEvery)
	}
	if m == nil {
		if old := s.learners[api]; old != nil {
			m = old.l.Model()
		}
	}
	cl := &contentLearner{l: inspect.NewLearner(s.cfg.Guard.Inspector(), lc)}
	if m != nil {
		cl.l.Restore(m)
	}
	s.learners[api] = cl
	s.publishLocked(api, cl, time.Time{})
}

// ImportContent installs an exported content model: its knobs, then its
// profiles, judged with them.
func (s *ContentSink) ImportContent(api string, d *ContentModelDoc) error {
	k := d.Knobs
	u := &ContentKnobsUpdate{MinIdentities: &k.MinIdentities, MinSpan: &k.MinSpan, MinSamples: &k.MinSamples, SampleEvery: &k.SampleEvery}
	if err := u.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(struct {
		Endpoints []*inspect.Profiles `json:"endpoints"`
	}{d.Endpoints})
	if err != nil {
		return err
	}
	m, err := inspect.ParseModel(b)
	if err != nil {
		return fmt.Errorf("inspection: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyLocked(api, u, m)
	return nil
}

// ContentModels are the content model documents of every API a learner
// learned for (what serve keeps across a restart).
func (s *ContentSink) ContentModels() map[string]*ContentModelDoc {
	s.mu.Lock()
	apis := make([]string, 0, len(s.learners))
	for api := range s.learners {
		apis = append(apis, api)
	}
	s.mu.Unlock()
	out := make(map[string]*ContentModelDoc, len(apis))
	for _, api := range apis {
		out[api] = s.ContentModel(api)
	}
	return out
}
