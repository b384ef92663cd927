package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"
)

// Defaults of the Options left zero.
const (
	DefaultKeyPrefix         = "vigil:"
	DefaultReconcileInterval = 5 * time.Minute
	DefaultHealthInterval    = time.Second
	DefaultOutboxSize        = 100000
	DefaultStreamMaxLen      = 100000
)

// ErrFingerprintMismatch is returned (wrapped) by Open when the cluster
// already uses another fingerprint key.
var ErrFingerprintMismatch = errors.New("fingerprint key differs from the one the cluster's replicas use")

// Options configure the connection to Redis.
type Options struct {
	// Addrs are host:port addresses: one is a standalone server, several
	// (or Cluster) a Redis Cluster's seed nodes.
	Addrs    []string
	Cluster  bool
	Username string
	Password string
	// PasswordFunc, when set, is called at every connection instead of
	// using Password (a rotated password file is picked up on reconnection,
	// config.RedisConfig.Password).
	PasswordFunc func() (string, error)
	// TLS, when set, connects with TLS (RootCAs from redis's CA file).
	TLS *tls.Config
	// KeyPrefix starts every key (default "vigil:"); it may not contain
	// braces, which Redis Cluster reads as a hash tag.
	KeyPrefix string
	// ReplicaID names this process in events; random when empty.
	ReplicaID string
	// FingerprintCheck is config.FingerprintCheck of the fingerprint key
	// (a keyed check value, never the key); nil: not checked.
	FingerprintCheck []byte
	// ReconcileInterval is how often every shared set is reloaded in full
	// (default 5 minutes).
	ReconcileInterval time.Duration
	// HealthInterval is how often Redis is checked (default 1 s).
	HealthInterval time.Duration
	// OutboxSize bounds the changes queued while Redis is down (default 100000).
	OutboxSize int
	// StreamMaxLen caps the events stream (XADD MAXLEN ~, default 100000).
	StreamMaxLen int64
	// MaxAttacks bounds the attack records kept in Redis (default 10000).
	MaxAttacks int
	Log        zerolog.Logger
	Now        func() time.Time
}

// Cluster is this replica's link to the shared state in Redis. Nothing on
// the request path calls Redis: changes are queued in the outbox and sent by
// its goroutines, changes of other replicas are applied by its follower.
type Cluster struct {
	opts    Options
	copt    rueidis.ClientOption
	prefix  string
	replica string
	log     zerolog.Logger
	now     func() time.Time

	client    atomic.Pointer[rueidis.Client] // nil until Redis first answered
	up        atomic.Bool
	downSince atomic.Int64 // unix nanoseconds; 0 while up
	replicas  atomic.Int64 // live replicas seen at the last health round
	lastLag   atomic.Int64 // nanoseconds, the last change applied
	fatal     atomic.Pointer[error]

	mu      sync.Mutex
	runID   string
	reseeds []func(context.Context)
	sets    map[string]*shared // by kind
	order   []*shared
	onEvent map[string][]func(Event)
	tasks   []func(context.Context, rueidis.Client) error // run every HealthInterval while up
	attacks *sharedAttacks
	// jq feeds the journal goroutine: the local journaling of other
	// replicas' changes, in order, off the follower.
	jq   chan func()
	upCh chan struct{} // closed and replaced at every down → up

	outbox    *outbox
	wakeW     chan struct{} // the writer
	resync    chan struct{} // the follower: reload every shared set
	metrics   *metrics
	startRun  sync.Once
	running   atomic.Bool // Run's journal goroutine is there
	closeOnce sync.Once
	closed    atomic.Bool
	wg        sync.WaitGroup
}

// Open connects to Redis, checks the fingerprint key against the cluster's
// and registers the run id. Redis not answering is not an error: the
// Cluster starts down and connects when Redis answers (Run retries every
// HealthInterval); a fingerprint mismatch found then stops all sharing and
// is logged. A fingerprint mismatch found at Open is an error wrapping
// ErrFingerprintMismatch: the replica must refuse to start. ctx bounds the
// first checks.
func Open(ctx context.Context, o Options) (*Cluster, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("redis: no address")
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = DefaultKeyPrefix
	}
	if strings.ContainsAny(o.KeyPrefix, "{}") {
		return nil, fmt.Errorf("redis.key_prefix %q: braces are not allowed (Redis Cluster reads them as a hash tag)", o.KeyPrefix)
	}
	if o.ReplicaID == "" {
		o.ReplicaID = randomID()
	}
	if o.ReconcileInterval <= 0 {
		o.ReconcileInterval = DefaultReconcileInterval
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = DefaultHealthInterval
	}
	if o.OutboxSize <= 0 {
		o.OutboxSize = DefaultOutboxSize
	}
	if o.StreamMaxLen <= 0 {
		o.StreamMaxLen = DefaultStreamMaxLen
	}
	if o.MaxAttacks <= 0 {
		o.MaxAttacks = 10000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Cluster{
		opts: o, prefix: o.KeyPrefix, replica: o.ReplicaID, log: o.Log, now: o.Now,
		sets:    make(map[string]*shared),
		onEvent: make(map[string][]func(Event)),
		outbox:  newOutbox(o.OutboxSize),
		wakeW:   make(chan struct{}, 1),
		resync:  make(chan struct{}, 1),
		jq:      make(chan func(), journalQueue),
		upCh:    make(chan struct{}),
		metrics: newMetrics(),
	}
	c.markDown(nil)
	c.copt = rueidis.ClientOption{
		InitAddress:      o.Addrs,
		Username:         o.Username,
		Password:         o.Password,
		TLSConfig:        o.TLS,
		DisableCache:     true,
		ConnWriteTimeout: 2 * time.Second,
		Dialer:           net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second},
		ClientName:       "vigil-" + o.ReplicaID,
	}
	if !(o.Cluster || len(o.Addrs) > 1) {
		c.copt.ForceSingleClient = true
	}
	if f := o.PasswordFunc; f != nil {
		user := o.Username
		c.copt.Username, c.copt.Password = "", ""
		c.copt.AuthCredentialsFn = func(rueidis.AuthCredentialsContext) (rueidis.AuthCredentials, error) {
			pw, err := f()
			return rueidis.AuthCredentials{Username: user, Password: pw}, err
		}
	}
	if err := c.check(ctx); err != nil {
		if errors.Is(err, ErrFingerprintMismatch) {
			c.Close()
			return nil, err
		}
		c.log.Warn().Err(err).Strs("addrs", o.Addrs).Msg("redis unreachable: serving on local state, will connect when it answers")
	}
	return c, nil
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// connect returns the client, making it when Redis first answers.
func (c *Cluster) connect() (rueidis.Client, error) {
	if c.closed.Load() {
		return nil, errors.New("closed")
	}
	if p := c.client.Load(); p != nil {
		return *p, nil
	}
	cl, err := rueidis.NewClient(c.copt)
	if err != nil {
		return nil, err
	}
	if !c.client.CompareAndSwap(nil, &cl) || c.closed.Load() {
		cl.Close()
	}
	return *c.client.Load(), nil
}

// cli returns the client, nil while Redis never answered.
func (c *Cluster) cli() rueidis.Client {
	if p := c.client.Load(); p != nil {
		return *p
	}
	return nil
}

// Client returns the Redis client (shared: do not close it); nil while
// Redis never answered. Other files of the package (flush, models) use it
// from their own goroutines, never on the request path.
func (c *Cluster) Client() rueidis.Client { return c.cli() }

// Prefix returns the key prefix.
func (c *Cluster) Prefix() string { return c.prefix }

// ReplicaID returns this replica's id in events.
func (c *Cluster) ReplicaID() string { return c.replica }

// Up reports whether Redis answered the last check.
func (c *Cluster) Up() bool { return c.up.Load() }

// DownSince returns when Redis stopped answering; zero while it is up.
func (c *Cluster) DownSince() time.Time {
	if n := c.downSince.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// OnReseed registers a function called (from the health goroutine) when
// Redis lost its data (a new run id): it writes this replica's local state
// back. Register before Run.
func (c *Cluster) OnReseed(f func(ctx context.Context)) {
	c.mu.Lock()
	c.reseeds = append(c.reseeds, f)
	c.mu.Unlock()
}

// key returns a shared-state key: every one of them shares a hash tag, so
// the hash and the events stream sit in one slot and a change writes both
// atomically.
func (c *Cluster) key(name string) string { return c.prefix + "{shared}:" + name }

// Key returns prefix+name, for keys of other files of the package.
func (c *Cluster) Key(name string) string { return c.prefix + name }

func (c *Cluster) markDown(err error) {
	wasUp := c.up.Swap(false)
	if wasUp || c.downSince.Load() == 0 {
		c.downSince.Store(c.now().UnixNano())
		c.metrics.up.Set(0)
		if wasUp {
			c.log.Warn().Err(err).Msg("redis down: serving on local state, list changes queued")
		}
	}
}

func (c *Cluster) markUp() {
	if c.fatal.Load() != nil {
		return
	}
	if !c.up.Swap(true) {
		since := c.DownSince()
		c.downSince.Store(0)
		c.metrics.up.Set(1)
		c.log.Info().Time("down_since", since).Msg("redis up")
		c.mu.Lock()
		close(c.upCh)
		c.upCh = make(chan struct{})
		c.mu.Unlock()
		c.kick(c.wakeW)
		c.kick(c.resync)
	}
}

func (c *Cluster) upChan() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.upCh
}

// waitUp returns true once Redis is up and the client made, false when ctx
// ends first. The channel is taken before the flag is read: a markUp
// between the two closes the channel held, where reading the flag first
// could wait on the next channel until Redis went down and up again.
func (c *Cluster) waitUp(ctx context.Context) bool {
	for {
		ch := c.upChan()
		if c.Up() && c.cli() != nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}

func (c *Cluster) kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (c *Cluster) countErr(op string, err error) {
	if err != nil {
		c.metrics.errors.WithLabelValues(op).Inc()
	}
}

// check is one health round: the connection, the fingerprint check value,
// the run id, up or down. A run id other than the one seen last means Redis
// lost its data (or another replica noticed first and set a new one): the
// shared sets and the OnReseed functions write the local state back, and
// every shared set is reloaded.
func (c *Cluster) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(c.opts.HealthInterval, 2*time.Second))
	defer cancel()
	cl, err := c.connect()
	if err != nil {
		c.countErr("connect", err)
		c.markDown(err)
		return err
	}
	if err := c.checkFingerprint(ctx, cl); err != nil {
		if errors.Is(err, ErrFingerprintMismatch) {
			c.fatal.Store(&err)
			c.markDown(err)
			return err
		}
		c.countErr("health", err)
		c.markDown(err)
		return err
	}
	runKey := c.Key("runid")
	fresh := randomID()
	b := cl.B()
	// The live replicas: a sorted set of replica ids scored by their last
	// health round (one key: one slot on Redis Cluster).
	now := c.now()
	live := c.Key("replicas")
	res := cl.DoMulti(ctx,
		b.Set().Key(runKey).Value(fresh).Nx().Build(),
		b.Get().Key(runKey).Build(),
		b.Zadd().Key(live).ScoreMember().ScoreMember(float64(now.UnixMilli()), c.replica).Build(),
		b.Zremrangebyscore().Key(live).Min("-inf").Max(strconv.FormatInt(now.Add(-replicaTTL(c.opts.HealthInterval)).UnixMilli(), 10)).Build(),
		b.Zcard().Key(live).Build(),
		b.Pexpire().Key(live).Milliseconds(replicaTTL(c.opts.HealthInterval).Milliseconds()*10).Build())
	if n, err := res[4].AsInt64(); err == nil {
		c.replicas.Store(n)
	}
	if err := res[0].Error(); err != nil && !rueidis.IsRedisNil(err) {
		c.countErr("health", err)
		c.markDown(err)
		return err
	}
	id, err := res[1].ToString()
	if err != nil {
		c.countErr("health", err)
		c.markDown(err)
		return err
	}
	c.mu.Lock()
	prev := c.runID
	reseeds := append([]func(context.Context){}, c.reseeds...)
	sets := append([]*shared{}, c.order...)
	c.mu.Unlock()
	// The run id is recorded after the re-seed: until then the follower
	// does not load (an empty Redis would empty the local lists).
	defer func() {
		c.mu.Lock()
		c.runID = id
		c.mu.Unlock()
	}()
	if id != prev && (prev != "" || id == fresh) {
		// Redis holds none of this replica's state: write it back.
		c.log.Info().Str("run_id", id).Bool("was_known", prev != "").Msg("redis holds none of this replica's state: re-seeding it")
		c.metrics.reseeds.Inc()
		rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
		for _, s := range sets {
			if err := c.reseedSet(rctx, cl, s); err != nil {
				c.countErr("reseed", err)
				c.log.Warn().Err(err).Str("set", s.kind).Msg("redis re-seed failed")
			}
		}
		for _, f := range reseeds {
			f(rctx)
		}
		rcancel()
		defer c.kick(c.resync)
	}
	c.markUp()
	return nil
}

func (c *Cluster) checkFingerprint(ctx context.Context, cl rueidis.Client) error {
	if c.opts.FingerprintCheck == nil {
		return nil
	}
	want := hex.EncodeToString(c.opts.FingerprintCheck)
	key := c.Key("fpcheck")
	b := cl.B()
	res := cl.DoMulti(ctx,
		b.Set().Key(key).Value(want).Nx().Build(),
		b.Get().Key(key).Build())
	if err := res[0].Error(); err != nil && !rueidis.IsRedisNil(err) {
		return err
	}
	got, err := res[1].ToString()
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("redis %s: %w: every replica sharing a Redis (and key prefix %q) must use the same fingerprint_key_file", strings.Join(c.opts.Addrs, ","), ErrFingerprintMismatch, c.prefix)
	}
	return nil
}

// Run runs the health checks, the writer of queued changes and the
// follower of the events stream until ctx ends, then closes the client.
// Register the shared sets (ShareList, ShareTokens, ShareAttacks, OnEvent,
// OnReseed) before.
func (c *Cluster) Run(ctx context.Context) {
	c.startRun.Do(func() {
		c.running.Store(true)
		c.wg.Add(3)
		go func() { defer c.wg.Done(); c.healthLoop(ctx) }()
		go func() { defer c.wg.Done(); c.writeLoop(ctx) }()
		go func() { defer c.wg.Done(); c.taskLoop(ctx) }()
		follower := make(chan struct{})
		go func() { defer close(follower); c.followLoop(ctx) }()
		journaled := make(chan struct{})
		go func() { defer close(journaled); c.journalLoop() }()
		c.wg.Wait()
		// A blocked XREAD does not heed ctx: closing the client ends it.
		c.Close()
		<-follower
		// The follower was the journal queue's only sender: drain it.
		close(c.jq)
		<-journaled
	})
}

func (c *Cluster) healthLoop(ctx context.Context) {
	repeat(ctx, c.opts.HealthInterval, func() {
		if c.fatal.Load() == nil {
			if err := c.check(ctx); errors.Is(err, ErrFingerprintMismatch) {
				c.log.Error().Err(err).Msg("redis: sharing stopped")
			}
		}
	})
}

// repeat calls f every d until ctx ends.
func repeat(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f()
	}
}

// Close closes the client (Run does when it ends; Close is for a Cluster
// opened but never run).
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		if cl := c.cli(); cl != nil {
			cl.Close()
		}
	})
}

// replicaTTL is how long a replica counts as live after its last health
// round.
func replicaTTL(health time.Duration) time.Duration { return max(3*health, 3*time.Second) }

// Replicas returns the live replicas (this one included) seen at the last
// health round; at least 1. It suits behaviour.EngineConfig.Replicas.
func (c *Cluster) Replicas() int { return int(max(c.replicas.Load(), 1)) }

// Status is what /v1/status says of Redis (adminapi.ClusterStatus takes
// its fields from it).
type Status struct {
	Up        bool      // Redis answered the last health round
	DownSince time.Time // zero while up
	// Mode is "standalone" or "cluster" (adminapi.ClusterMode…).
	Mode        string
	ReplicaID   string
	Replicas    int
	OutboxDepth int
	// PropagationLag is the time the last change of another replica took
	// from its write in Redis to its application here; zero before one.
	PropagationLag time.Duration
	// Error is set when sharing stopped for good (fingerprint mismatch).
	Error string
}

// Status returns the link's state; cheap, safe concurrently.
func (c *Cluster) Status() Status {
	mode := "standalone"
	if c.opts.Cluster || len(c.opts.Addrs) > 1 {
		mode = "cluster"
	}
	st := Status{Up: c.Up(), DownSince: c.DownSince(), Mode: mode, ReplicaID: c.replica,
		Replicas: c.Replicas(), OutboxDepth: c.outbox.len(), PropagationLag: time.Duration(c.lastLag.Load())}
	if e := c.fatal.Load(); e != nil {
		st.Error = (*e).Error()
	}
	return st
}

// Collectors returns the Prometheus collectors: vigil_redis_up and the
// others (errors, outbox depth and drops, propagation lag, reseeds).
func (c *Cluster) Collectors() []prometheus.Collector {
	m := c.metrics
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_redis_outbox_depth", Help: "Changes queued for Redis while it is down or behind.",
	}, func() float64 { return float64(c.outbox.len()) })
	dropped := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vigil_redis_outbox_dropped_total", Help: "Queued changes dropped because the outbox was full (oldest first).",
	}, func() float64 { return float64(c.outbox.dropped.Load()) })
	return []prometheus.Collector{m.up, m.errors, m.lag, m.reseeds, m.applied, m.reconciles, m.expired, m.claims, m.gaps, depth, dropped}
}

type metrics struct {
	up         prometheus.Gauge
	errors     *prometheus.CounterVec
	lag        prometheus.Histogram
	reseeds    prometheus.Counter
	applied    *prometheus.CounterVec
	reconciles prometheus.Counter
	expired    prometheus.Counter
	claims     *prometheus.CounterVec
	gaps       prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_redis_up", Help: "1 when Redis answers, 0 when it does not (Vigil then serves on local state).",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_redis_errors_total", Help: "Failed Redis operations, by operation.",
		}, []string{"op"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_redis_propagation_seconds", Help: "Time from a change on another replica to its application here.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		reseeds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_redis_reseeds_total", Help: "Times Redis was found without this replica's state and re-seeded.",
		}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_redis_events_applied_total", Help: "Changes of other replicas applied here, by kind.",
		}, []string{"kind"}),
		reconciles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_redis_reconciles_total", Help: "Full reloads of the shared sets from Redis (start, reconcile interval, reconnection).",
		}),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_redis_attack_claims_total", Help: "Attack records claimed in Redis, by outcome (won: published; lost: merged into another replica's).",
		}, []string{"outcome"}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_redis_stream_gaps_total", Help: "Times the events stream was trimmed past what this replica had read (it then reloaded every shared set).",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_redis_outbox_expired_total", Help: "Queued changes not sent because their entry expired while Redis was down.",
		}),
	}
}

// Event is one change read from the events stream.
type Event struct {
	ID      string // the stream entry's id
	Kind    string // the shared set, or an event kind of OnEvent
	Op      string // OpPut, OpDelete or OpEvent
	Field   string
	Value   []byte
	Replica string // the replica that made the change
}

// Operations of an event.
const (
	OpPut    = "put"
	OpDelete = "del"
	OpEvent  = "ev" // a message only, no state in a hash
)

// shared is one set shared through a hash and the events stream.
type shared struct {
	kind string
	hash string // its key
	// apply applies a change of another replica to the local state (journaled
	// locally, never published).
	apply func(op, field string, value []byte)
	// load receives the whole set from Redis (the start, a reconcile, after
	// Redis came back); first is true the first time, since is when the read
	// began; tombs (first load only) are the deleted fields and when. It
	// returns fields to prune from the hash (expired, unreadable).
	load func(all map[string]string, first bool, since time.Time, tombs map[string]int64) []string
	// local lists this replica's state, to re-seed a Redis that lost it.
	local  func() []change
	loaded bool
}

// register adds a shared set. Register before Run.
func (c *Cluster) register(s *shared) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.sets[s.kind]; dup {
		panic("cluster: set " + s.kind + " shared twice")
	}
	c.sets[s.kind] = s
	c.order = append(c.order, s)
}

// journalQueue bounds the changes of other replicas applied here and not
// yet journaled; past it the follower waits for the journal.
const journalQueue = 1 << 16

// journal queues the local journaling of a change applied here (called from
// the follower only; inline when Run is not running, as in tests).
func (c *Cluster) journal(f func()) {
	if !c.running.Load() {
		f()
		return
	}
	c.jq <- f
}

func (c *Cluster) journalLoop() {
	for f := range c.jq {
		f()
	}
}

// every registers a task run every HealthInterval while Redis is up, in one
// goroutine. Register before Run.
func (c *Cluster) every(f func(context.Context, rueidis.Client) error) {
	c.mu.Lock()
	c.tasks = append(c.tasks, f)
	c.mu.Unlock()
}

func (c *Cluster) taskLoop(ctx context.Context) {
	repeat(ctx, c.opts.HealthInterval, func() {
		cl := c.cli()
		if cl == nil || !c.Up() {
			return
		}
		c.mu.Lock()
		tasks := append([]func(context.Context, rueidis.Client) error{}, c.tasks...)
		c.mu.Unlock()
		for _, f := range tasks {
			tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			c.countErr("task", f(tctx, cl))
			cancel()
		}
	})
}

// OnEvent registers f for the events of kind published by other replicas
// (Publish). f runs in the follower goroutine: keep it short. Register
// before Run.
func (c *Cluster) OnEvent(kind string, f func(Event)) {
	c.mu.Lock()
	c.onEvent[kind] = append(c.onEvent[kind], f)
	c.mu.Unlock()
}

// Publish queues a message for the other replicas' OnEvent(kind) functions,
// through the outbox (sent in order, kept while Redis is down, dropped after
// expires unless that is zero). It never waits for Redis.
func (c *Cluster) Publish(kind, field string, value []byte, expires time.Time) {
	c.enqueue(change{kind: kind, op: OpEvent, field: field, value: string(value), expires: expires})
}

// eventsKey is the events stream; setKey a shared set's hash. They share a
// hash tag so that a change writes both in one script on Redis Cluster.
func (c *Cluster) eventsKey() string         { return c.key("events") }
func (c *Cluster) setKey(kind string) string { return c.key(kind) }

// tombKey is a shared set's tombstones: field → when it was deleted (unix
// ms, Redis' clock), so that a replica coming back with an entry deleted
// meanwhile drops it rather than bringing it back.
func (c *Cluster) tombKey(kind string) string { return c.key(kind + ":tomb") }

// followLoop reads the events stream from the last seen id and applies the
// changes of other replicas; it reloads every shared set at the start,
// every ReconcileInterval, after Redis came back and after any read error
// (the stream may have been trimmed or lost meanwhile).
func (c *Cluster) followLoop(ctx context.Context) {
	reconcile := time.NewTicker(c.opts.ReconcileInterval)
	defer reconcile.Stop()
	last := ""
	var d rueidis.DedicatedClient
	defer func() {
		if d != nil {
			d.Close()
		}
	}()
	for ctx.Err() == nil {
		if !c.Up() || c.cli() == nil {
			if d != nil {
				d.Close()
				d = nil
			}
			if !c.waitUp(ctx) {
				return
			}
		}
		cl := c.cli()
		select {
		case <-c.resync:
			last = ""
		case <-reconcile.C:
			last = ""
		default:
		}
		if last == "" {
			id, err := c.loadAll(ctx, cl)
			if errors.Is(err, errRunChanged) {
				c.pause(ctx, 100*time.Millisecond)
				continue
			}
			if err != nil {
				c.countErr("load", err)
				c.log.Warn().Err(err).Msg("redis: loading the shared state failed, retrying")
				c.pause(ctx, 500*time.Millisecond)
				continue
			}
			last = id
		}
		// XREAD BLOCK runs on a dedicated connection, closed to end it at
		// shutdown (a blocked read does not heed ctx).
		if d == nil {
			d, _ = cl.Dedicate()
		}
		rctx, cancel := context.WithTimeout(ctx, followBlock+3*time.Second)
		stop := context.AfterFunc(ctx, d.Close)
		res, err := d.Do(rctx, d.B().Xread().Count(followCount).Block(followBlock.Milliseconds()).
			Streams().Key(c.eventsKey()).Id(last).Build()).AsXRead()
		cancel()
		if !stop() {
			d = nil // closed by AfterFunc
			return
		}
		if err != nil && !rueidis.IsRedisNil(err) {
			d.Close()
			d = nil
			c.countErr("follow", err)
			last = ""
			c.pause(ctx, 200*time.Millisecond)
			continue
		}
		entries := res[c.eventsKey()]
		for _, e := range entries {
			last = e.ID
			c.applyEntry(e)
		}
		if len(entries) == followCount && c.trimmedPast(ctx, cl, last) {
			// Far behind: the stream was trimmed past what was read.
			c.metrics.gaps.Inc()
			last = ""
		}
	}
}

// followCount is how many events one XREAD returns at most.
const followCount = 1000

// trimmedPast reports whether the stream's oldest entry is newer than the
// one after last: changes were trimmed (XADD MAXLEN ~) before this
// replica read them.
func (c *Cluster) trimmedPast(ctx context.Context, cl rueidis.Client, last string) bool {
	xs, err := cl.Do(ctx, cl.B().Xrange().Key(c.eventsKey()).Start("-").End("+").Count(1).Build()).AsXRange()
	if err != nil || len(xs) == 0 {
		return err != nil
	}
	return streamIDLess(last, xs[0].ID) && !streamIDNext(last, xs[0].ID)
}

// streamIDLess compares stream ids "ms-seq".
func streamIDLess(a, b string) bool {
	am, as := splitStreamID(a)
	bm, bs := splitStreamID(b)
	return am < bm || am == bm && as < bs
}

// streamIDNext reports whether b directly follows a within one millisecond.
func streamIDNext(a, b string) bool {
	am, as := splitStreamID(a)
	bm, bs := splitStreamID(b)
	return am == bm && bs == as+1
}

func splitStreamID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	q, _ := strconv.ParseUint(seq, 10, 64)
	return m, q
}

// tombstoneTTL is how long a deletion is remembered: a replica away longer
// brings back the entries deleted meanwhile (unless they expired).
const tombstoneTTL = 30 * 24 * time.Hour

// errRunChanged: Redis' run id is not the one this replica knows (Redis
// lost its data): loading waits for the health round's re-seed.
var errRunChanged = errors.New("redis run id changed: waiting for the re-seed")

// followBlock is how long one XREAD waits for events.
const followBlock = 2 * time.Second

func (c *Cluster) pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-c.upChan():
	}
}

// applyEntry applies one stream entry of another replica.
func (c *Cluster) applyEntry(e rueidis.XRangeEntry) {
	fv := e.FieldValues
	if fv["r"] == c.replica {
		return
	}
	ev := Event{ID: e.ID, Kind: fv["k"], Op: fv["o"], Field: fv["f"], Value: []byte(fv["v"]), Replica: fv["r"]}
	if ms, _, ok := strings.Cut(e.ID, "-"); ok {
		if n, err := strconv.ParseInt(ms, 10, 64); err == nil {
			lag := max(0, c.now().Sub(time.UnixMilli(n)))
			c.lastLag.Store(int64(lag))
			c.metrics.lag.Observe(lag.Seconds())
		}
	}
	c.mu.Lock()
	s := c.sets[ev.Kind]
	fs := c.onEvent[ev.Kind]
	c.mu.Unlock()
	switch {
	case s != nil && (ev.Op == OpPut || ev.Op == OpDelete):
		s.apply(ev.Op, ev.Field, ev.Value)
	case ev.Op == OpEvent:
		for _, f := range fs {
			f(ev)
		}
	default:
		return
	}
	c.metrics.applied.WithLabelValues(ev.Kind).Inc()
}

// loadAll reads every shared set and the stream's last id in one pipeline
// (the last id first: a change landing in between is applied twice, which
// is harmless) and hands each set to its load function.
func (c *Cluster) loadAll(ctx context.Context, cl rueidis.Client) (string, error) {
	c.mu.Lock()
	sets := append([]*shared{}, c.order...)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	since := time.Now()
	b := cl.B()
	cmds := rueidis.Commands{b.Xrevrange().Key(c.eventsKey()).End("+").Start("-").Count(1).Build()}
	for _, s := range sets {
		cmds = append(cmds, b.Hgetall().Key(s.hash).Build())
	}
	for _, s := range sets {
		cmds = append(cmds, b.Hgetall().Key(c.tombKey(s.kind)).Build())
	}
	cmds = append(cmds, b.Get().Key(c.Key("runid")).Build())
	res := cl.DoMulti(ctx, cmds...)
	// A Redis that lost its data is not loaded before this replica re-seeded
	// it (the health round does, then records the run id).
	run, err := res[len(res)-1].ToString()
	c.mu.Lock()
	known := c.runID
	c.mu.Unlock()
	if err != nil || run != known {
		c.kick(c.resync)
		return "", errRunChanged
	}
	last := "0-0"
	xs, err := res[0].AsXRange()
	if err != nil {
		return "", err
	}
	if len(xs) > 0 {
		last = xs[0].ID
	}
	maps := make([]map[string]string, len(sets))
	for i := range sets {
		if maps[i], err = res[i+1].AsStrMap(); err != nil {
			return "", err
		}
	}
	var prune rueidis.Commands
	oldTomb := c.now().Add(-tombstoneTTL).UnixMilli()
	for i, s := range sets {
		tombs, err := res[len(sets)+i+1].AsIntMap()
		if err != nil {
			return "", err
		}
		var stale []string
		for f, at := range tombs {
			if at < oldTomb {
				stale = append(stale, f)
			}
		}
		if len(stale) > 0 {
			prune = append(prune, b.Hdel().Key(c.tombKey(s.kind)).Field(stale...).Build())
		}
		if fields := s.load(maps[i], !s.loaded, since, tombs); len(fields) > 0 {
			prune = append(prune, b.Hdel().Key(s.hash).Field(fields...).Build())
		}
		s.loaded = true
	}
	for _, r := range cl.DoMulti(ctx, prune...) {
		c.countErr("prune", r.Error())
	}
	c.metrics.reconciles.Inc()
	return last, nil
}

// reseedSet writes a set's local entries back to its hash (no events: the
// other replicas hold them already or re-seed their own).
func (c *Cluster) reseedSet(ctx context.Context, cl rueidis.Client, s *shared) error {
	now := c.now()
	var cmds rueidis.Commands
	for _, ch := range s.local() {
		if ch.expired(now) {
			continue
		}
		cmds = append(cmds, cl.B().Hset().Key(s.hash).FieldValue().FieldValue(ch.field, ch.value).Build())
	}
	for len(cmds) > 0 {
		n := min(len(cmds), 512)
		for _, r := range cl.DoMulti(ctx, cmds[:n]...) {
			if err := r.Error(); err != nil {
				return err
			}
		}
		cmds = cmds[n:]
	}
	return nil
}
