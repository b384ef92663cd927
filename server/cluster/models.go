package cluster

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"
	"github.com/vigil-project/vigil/detect/behaviour"
)

// Trained models across replicas.
//
// One replica trains: it holds the trainer lease (SET NX PX, extended by
// its holder every Renew; another replica takes it once it lapses, or at
// once when its holder shuts down and calls Release). The trainer
// publishes each API's model document under a new version whenever its
// thresholds, knobs or readiness change; the other replicas poll the
// versions every Poll and Adopt the documents of versions they have not
// adopted. Model updates made on any replica (PUT /v1/models/{api},
// relax, import) go to every other replica as events of the Cluster's
// stream (kind "model"), applied with ApplyFromPeer; the trainer's next
// publication then carries them too.
//
// Keys (p = redis.key_prefix), all in the hash tag {models} so that
// publish.lua, which checks the lease, works on Redis Cluster:
//
//	p+"{models}:trainer"       the lease: the holder's replica id, PX Lease
//	p+"{models}:replicas"      ZSET of heartbeats (replica id, Redis time in
//	                           ms), older than Lease forgotten: Replicas()
//	p+"{models}:versions"      HASH api → the last version published
//	p+"{models}:model:"+api    HASH version, replica, doc (the ModelDoc JSON)

//go:embed lease.lua
var leaseLua string

//go:embed release.lua
var releaseLua string

//go:embed publish.lua
var publishLua string

var (
	leaseScript   = rueidis.NewLuaScript(leaseLua)
	releaseScript = rueidis.NewLuaScript(releaseLua)
	publishScript = rueidis.NewLuaScript(publishLua)
)

// EventModel is the kind of the model-update events on the stream.
const EventModel = "model"

// Defaults of the ModelOptions left zero.
const (
	DefaultLease = 15 * time.Second
	DefaultPoll  = 2 * time.Second
)

// ModelOptions configures Models. Zero fields take their defaults.
type ModelOptions struct {
	// Lease is the trainer lease's time (default 15 s); Renew how often
	// it is extended and heartbeats sent (default Lease/3).
	Lease, Renew time.Duration
	// Poll is how often a follower looks for new versions and the
	// trainer for changes to publish (default 2 s).
	Poll time.Duration
	Log  zerolog.Logger
}

// ModelEngine is what Models needs of the behaviour engine
// (*behaviour.Engine).
type ModelEngine interface {
	ModelDocs() []*behaviour.ModelDoc
	Adopt(doc *behaviour.ModelDoc) error
	ApplyFromPeer(api string, u *behaviour.ModelUpdate) error
}

// Models runs this replica's part in training: the lease, publication
// when it trains, adoption when it does not, model updates both ways.
// IsTrainer, Replicas and Changed are what behaviour.EngineConfig's
// Trainer, Replicas and OnModelChange take, so make Models before the
// engine and give Run the engine.
type Models struct {
	c       *Cluster
	o       ModelOptions
	replica string

	engine  atomic.Pointer[engineRef]
	held    atomic.Bool
	contact atomic.Int64 // unix ns of the last lease round Redis answered
	live    atomic.Int64 // replicas counted at the last round
	kickPub chan struct{}
	lost    chan struct{} // the lease was lost: adopt everything again

	mu        sync.Mutex
	published map[string][32]byte // api → fingerprint published (trainer)
	adopted   map[string]int64    // api → version adopted (follower)

	trainer    prometheus.Gauge
	replicas   prometheus.Gauge
	publishes  prometheus.Counter
	adoptions  prometheus.Counter
	updates    *prometheus.CounterVec
	modelErrs  prometheus.Counter
	startedRun atomic.Bool
}

type engineRef struct{ e ModelEngine }

// NewModels returns this replica's Models on c and registers its handler
// of model-update events and its re-seed (the trainer publishes again
// after Redis lost its data): call it before c.Run.
func NewModels(c *Cluster, o ModelOptions) *Models {
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.Renew <= 0 {
		o.Renew = o.Lease / 3
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	m := &Models{
		c: c, o: o, replica: c.ReplicaID(),
		kickPub:   make(chan struct{}, 1),
		lost:      make(chan struct{}, 1),
		published: map[string][32]byte{},
		adopted:   map[string]int64{},
		trainer: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_redis_trainer", Help: "1 while this replica trains the models (holds the trainer lease, or Redis is unreachable).",
		}),
		replicas: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_redis_replicas", Help: "Live replicas sharing this Redis (heartbeats within the lease time).",
		}),
		publishes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_redis_model_publishes_total", Help: "Model documents this replica published as the trainer.",
		}),
		adoptions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_redis_model_adoptions_total", Help: "Model documents of the trainer this replica adopted.",
		}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_redis_model_updates_total", Help: "Model updates sent to (dir=out) or applied from (dir=in) other replicas.",
		}, []string{"dir"}),
		modelErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_redis_model_errors_total", Help: "Failed lease rounds, publications, adoptions and model updates.",
		}),
	}
	m.live.Store(1)
	m.contact.Store(time.Now().UnixNano())
	c.OnEvent(EventModel, m.onEvent)
	c.OnReseed(func(context.Context) {
		m.mu.Lock()
		clear(m.published)
		m.mu.Unlock()
		m.kick()
	})
	return m
}

// Collectors returns the metrics, for the server's registry.
func (m *Models) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.trainer, m.replicas, m.publishes, m.adoptions, m.updates, m.modelErrs}
}

// IsTrainer reports whether this replica trains: it holds the lease, or
// Redis did not answer for a whole lease time (each replica then learns
// from its own share, as a single node would, until Redis is back and it
// adopts the trainer's models again). For EngineConfig.Trainer.
func (m *Models) IsTrainer() bool {
	return m.held.Load() || time.Since(time.Unix(0, m.contact.Load())) > m.o.Lease
}

// Replicas returns the live replicas counted at the last lease round (1
// before the first one). For EngineConfig.Replicas.
func (m *Models) Replicas() int { return int(max(m.live.Load(), 1)) }

// Changed sends a model update made on this replica to the others (through
// the Cluster's outbox: it never waits for Redis). For
// EngineConfig.OnModelChange.
func (m *Models) Changed(api string, u *behaviour.ModelUpdate) {
	if u != nil {
		b, err := json.Marshal(u)
		if err != nil {
			m.modelErrs.Inc()
			return
		}
		m.c.Publish(EventModel, api, b, time.Time{})
		m.updates.WithLabelValues("out").Inc()
	}
	m.kick()
}

func (m *Models) kick() {
	select {
	case m.kickPub <- struct{}{}:
	default:
	}
}

// onEvent applies another replica's model update (in the Cluster's
// follower goroutine).
func (m *Models) onEvent(ev Event) {
	ref := m.engine.Load()
	if ref == nil {
		return // not running yet: the trainer's next publication carries it
	}
	var u behaviour.ModelUpdate
	if err := json.Unmarshal(ev.Value, &u); err != nil {
		m.modelErrs.Inc()
		m.o.Log.Warn().Err(err).Str("api", ev.Field).Str("from", ev.Replica).Msg("model update from another replica: bad JSON, ignored")
		return
	}
	if err := ref.e.ApplyFromPeer(ev.Field, &u); err != nil {
		m.modelErrs.Inc()
		m.o.Log.Warn().Err(err).Str("api", ev.Field).Str("from", ev.Replica).Msg("model update from another replica not applied")
		return
	}
	m.updates.WithLabelValues("in").Inc()
	m.kick() // the trainer publishes the updated model
}

// Run keeps the lease and publishes (trainer) or adopts (follower) e's
// models until ctx ends.
func (m *Models) Run(ctx context.Context, e ModelEngine) {
	if !m.startedRun.CompareAndSwap(false, true) {
		panic("cluster: Models.Run called twice")
	}
	m.engine.Store(&engineRef{e})
	// Adopt what is published before trying for the lease: a replica that
	// takes over trains from the cluster's model, not from nothing.
	m.follow(ctx, e)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); m.leaseLoop(ctx) }()
	t := time.NewTicker(m.o.Poll)
	defer t.Stop()
	for ctx.Err() == nil {
		if m.held.Load() {
			m.publish(ctx, e)
		} else {
			m.follow(ctx, e)
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-m.kickPub:
		case <-m.lost:
			m.mu.Lock()
			clear(m.adopted)
			m.mu.Unlock()
		}
	}
	wg.Wait()
}

// Release gives the lease up (another replica takes it at its next round)
// and leaves the heartbeats: call it at shutdown, after Run returned.
func (m *Models) Release(ctx context.Context) error {
	m.held.Store(false)
	cl := m.c.Client()
	if cl == nil {
		return errNotConnected
	}
	return releaseScript.Exec(ctx, cl, []string{m.key("trainer"), m.key("replicas")}, []string{m.replica}).Error()
}

func (m *Models) key(name string) string { return m.c.Prefix() + "{models}:" + name }

func (m *Models) leaseLoop(ctx context.Context) {
	t := time.NewTicker(m.o.Renew)
	defer t.Stop()
	for {
		m.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// round is one lease round: heartbeat, lease, live replicas.
func (m *Models) round(ctx context.Context) {
	was := m.IsTrainer()
	defer func() {
		now := m.IsTrainer()
		if now {
			m.trainer.Set(1)
		} else {
			m.trainer.Set(0)
		}
		if was && !now {
			select {
			case m.lost <- struct{}{}:
			default:
			}
		}
		if now != was {
			m.o.Log.Info().Bool("trainer", now).Msg("trainer lease changed hands")
			m.kick()
		}
	}()
	cl := m.c.Client()
	if cl == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, m.o.Renew)
	defer cancel()
	res, err := leaseScript.Exec(rctx, cl, []string{m.key("trainer"), m.key("replicas")},
		[]string{m.replica, strconv.FormatInt(m.o.Lease.Milliseconds(), 10)}).AsIntSlice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("lease reply %v", res)
	}
	if err != nil {
		if ctx.Err() == nil {
			m.modelErrs.Inc()
		}
		// Still the holder until the lease lapses, as Redis sees it.
		if m.held.Load() && time.Since(time.Unix(0, m.contact.Load())) > m.o.Lease {
			m.held.Store(false)
		}
		return
	}
	m.contact.Store(time.Now().UnixNano())
	m.held.Store(res[0] == 1)
	m.live.Store(res[1])
	m.replicas.Set(float64(res[1]))
}

// fingerprint is what makes a new version worth publishing: knobs,
// thresholds and readiness, not the status's running counts.
func fingerprint(d *behaviour.ModelDoc) [32]byte {
	c := *d
	if d.Status != nil {
		c.Status = &behaviour.ModelStatus{API: d.Status.API, State: d.Status.State, ReadyAt: d.Status.ReadyAt}
	}
	b, _ := json.Marshal(&c)
	return sha256.Sum256(b)
}

// publish publishes the models whose fingerprint changed since this
// replica last published them.
func (m *Models) publish(ctx context.Context, e ModelEngine) {
	cl := m.c.Client()
	if cl == nil {
		return
	}
	for _, d := range e.ModelDocs() {
		fp := fingerprint(d)
		m.mu.Lock()
		same := m.published[d.API] == fp
		m.mu.Unlock()
		if same {
			continue
		}
		b, err := json.Marshal(d)
		if err != nil {
			m.modelErrs.Inc()
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := publishScript.Exec(pctx, cl,
			[]string{m.key("trainer"), m.key("versions"), m.key("model:" + d.API)},
			[]string{m.replica, d.API, string(b)}).AsInt64()
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				m.modelErrs.Inc()
				m.o.Log.Debug().Err(err).Str("api", d.API).Msg("model publication failed; retried")
			}
			return
		}
		if v < 0 { // the lease went to another replica
			m.held.Store(false)
			return
		}
		m.mu.Lock()
		m.published[d.API] = fp
		m.adopted[d.API] = v
		m.mu.Unlock()
		m.publishes.Inc()
	}
}

// follow adopts the published versions this replica has not adopted (a
// different version, not only a higher one: Redis restarted empty starts
// the versions again).
func (m *Models) follow(ctx context.Context, e ModelEngine) {
	cl := m.c.Client()
	if cl == nil {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	vs, err := cl.Do(fctx, cl.B().Hgetall().Key(m.key("versions")).Build()).AsStrMap()
	if err != nil {
		if ctx.Err() == nil {
			m.modelErrs.Inc()
		}
		return
	}
	var apis []string
	m.mu.Lock()
	for api, s := range vs {
		if v, err := strconv.ParseInt(s, 10, 64); err == nil && v != m.adopted[api] {
			apis = append(apis, api)
		}
	}
	clear(m.published) // a follower that becomes the trainer publishes all
	m.mu.Unlock()
	if len(apis) == 0 {
		return
	}
	cmds := make(rueidis.Commands, len(apis))
	for i, api := range apis {
		cmds[i] = cl.B().Hmget().Key(m.key("model:"+api)).Field("version", "doc").Build()
	}
	for i, r := range cl.DoMulti(fctx, cmds...) {
		err := m.adopt(e, apis[i], r)
		if err != nil {
			m.modelErrs.Inc()
			m.o.Log.Warn().Err(err).Str("api", apis[i]).Msg("published model not adopted")
		}
	}
}

func (m *Models) adopt(e ModelEngine, api string, r rueidis.RedisResult) error {
	f, err := r.ToArray()
	if err != nil {
		return err
	}
	if len(f) != 2 {
		return errors.New("model hash: bad reply")
	}
	vs, err1 := f[0].ToString()
	doc, err2 := f[1].ToString()
	if err1 != nil || err2 != nil {
		return nil // not written yet (or lost): the next poll sees it
	}
	v, err := strconv.ParseInt(vs, 10, 64)
	if err != nil {
		return fmt.Errorf("model version %q", vs)
	}
	err = adoptDoc(e, api, doc)
	// A document that cannot be adopted is not retried before the next
	// version (said once, not at every poll).
	m.mu.Lock()
	m.adopted[api] = v
	m.mu.Unlock()
	if err == nil {
		m.adoptions.Inc()
	}
	return err
}

func adoptDoc(e ModelEngine, api, doc string) error {
	var d behaviour.ModelDoc
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		return fmt.Errorf("model document: %w", err)
	}
	if d.API != api {
		return fmt.Errorf("model document of API %q under %q", d.API, api)
	}
	return e.Adopt(&d)
}
