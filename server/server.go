// Package server is the `vigil serve` process: New wires envoy, detect and
// decoy from the configuration's runtime settings (server/config), restores
// the durable state (server/store) and binds the gRPC server Envoy talks to
// and the admin HTTP API (server/admin); Run serves, snapshots the state
// and shuts down in order. Health, gRPC options and limits, metrics and
// warnings are here too; the command line is server/cli.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/vigil-project/vigil/decoy"
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/detect/observe"
	"github.com/vigil-project/vigil/envoy"
	"github.com/vigil-project/vigil/server/admin"
	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/server/notify"
	"github.com/vigil-project/vigil/server/store"
)

// Server is a running Vigil: listeners bound, services wired.
type Server struct {
	cfg   *config.Config
	log   zerolog.Logger
	now   func() time.Time
	after func(time.Duration) <-chan time.Time
	grpcL net.Listener
	admL  net.Listener

	grpc      *grpc.Server
	health    *health.Server
	stopWatch chan struct{} // closed when the shutdown reaches GracefulStop
	http      *http.Server
	ready     atomic.Bool
	catalog   atomic.Pointer[detect.Catalog]
	extractor *detect.Extractor
	enforcer  *detect.Enforcer
	queue     *detect.Queue
	inventory *observe.Inventory
	forensics *observe.Forensics
	budget    config.Budget // detection.max_memory's split, from config.Runtime
	engine    *behaviour.Engine
	// content is content inspection on the hot path; contentSink records
	// its attacks and learns its profiles (inspection.go).
	content     *detect.ContentGuard
	contentSink *detect.ContentSink
	trap        *decoy.Trap
	metrics     *metrics
	streams     *streamLimit // grpc.max_streams
	store       *store.Store
	notifier    *notify.Notifier
	replicas    *replicas // nil without redis.addrs

	// forensicsLost is what the forensics had forgotten at the last save.
	forensicsLost observe.ForensicsStats
}

// Options are the dependencies of New that tests replace.
type Options struct {
	Now func() time.Time // time.Now by default
	// After is the shutdown's timer (the drain delay, the shutdown
	// timeout); time.After by default.
	After func(time.Duration) <-chan time.Time
}

// New validates cfg, prepares the data directory and binds both listeners.
// It starts nothing: Run does.
func New(cfg *config.Config, log zerolog.Logger, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	rt, err := cfg.Runtime() // the secret files again: one may have gone since Validate
	if err != nil {
		return nil, err
	}
	sec, fp := rt.Secrets, rt.Fingerprinter
	setMemoryLimit(cfg, rt.Budget, log)
	s := &Server{cfg: cfg, log: log, now: opts.Now, after: opts.After, budget: rt.Budget}
	s.catalog.Store(rt.Catalog)
	if s.extractor, err = rt.NewExtractor(); err != nil {
		return nil, err
	}
	allow, block := detect.NewLists()
	if s.enforcer, err = detect.NewEnforcer(allow, block, cfg.VerdictCache); err != nil {
		s.extractor.Close()
		return nil, err
	}
	s.queue = detect.NewQueue(cfg.Pipeline.QueueSize)
	s.inventory = observe.NewInventory(s.catalog.Load().APIs(), cfg.Discovery.MaxAPIs, cfg.Discovery.MaxEndpointsPerAPI)
	s.forensics = observe.NewForensics(cfg.Retention.ForensicsIdentities, rt.Budget.Forensics)
	s.metrics = newMetrics(s.queue, allow, block)
	s.metrics.watchInventory(s.inventory)
	if s.store, err = store.Open(cfg.DataDir); err != nil {
		s.closeState()
		return nil, err
	}
	s.store.AttackMax, s.store.AttackMaxAge = cfg.Retention.AttacksMax, cfg.Retention.AttacksMaxAge
	s.notifier = notify.New(cfg.Notify, log.With().Str("component", "notify").Logger(), nil)
	s.metrics.reg.MustRegister(s.notifier.Collectors()...)
	models, err := s.store.LoadModels()
	if err != nil {
		s.closeState()
		return nil, err
	}
	if s.replicas, err = openReplicas(cfg, rt, log); err != nil {
		s.closeState()
		return nil, err
	}
	hooks := attackHooks(log, block, s.metrics, s.notifier, s.flagAttacker)
	if s.engine, err = newEngine(rt, log, hooks, models, s.replicas); err != nil {
		s.closeState()
		return nil, err
	}
	if err := s.newContent(rt, hooks); err != nil {
		s.closeState()
		return nil, err
	}
	s.metrics.reg.MustRegister(newMemoryCollector(memorySources{
		budget: rt.Budget, states: s.engine.Stats, forensics: s.forensics.Stats,
		inventory: s.inventory.Bytes, attacks: s.engine.Store().Bytes,
	}))
	if err := s.restore(allow, block, len(models)); err != nil {
		s.closeState()
		return nil, err
	}
	if s.trap, err = newTrap(cfg, s.catalog.Load(), fp, s.engine, block, s.inventory, log, s.now); err != nil {
		s.closeState()
		return nil, err
	}
	s.enforcer.SetDecoy(s.trap.Hook)
	s.trap.Journal = s.store
	s.trap.OnJournalError = func(err error) { s.log.Error().Err(err).Msg("honeytoken not stored durably") }
	if err := s.store.LoadHoneytokens(s.trap.Restore); err != nil {
		s.closeState()
		return nil, err
	}
	hits, err := s.store.LoadDecoyHits()
	if err != nil {
		s.closeState()
		return nil, err
	}
	for _, h := range hits {
		s.trap.RestoreHits(h)
	}
	s.replicas.start(s)
	var grpcTLS, adminTLS *tls.Config
	if cfg.GRPCTLS.Enabled() {
		if grpcTLS, err = cfg.GRPCTLS.TLSConfig(); err != nil {
			s.closeState()
			return nil, fmt.Errorf("grpc_tls: %w", err)
		}
	}
	if cfg.AdminTLS.Enabled() {
		if adminTLS, err = cfg.AdminTLS.TLSConfig(); err != nil {
			s.closeState()
			return nil, fmt.Errorf("admin_tls: %w", err)
		}
	}
	if s.grpcL, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		s.closeState()
		return nil, fmt.Errorf("listen gRPC on %s: %w", cfg.GRPCAddr, err)
	}
	if s.admL, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		s.grpcL.Close()
		s.closeState()
		return nil, fmt.Errorf("listen admin on %s: %w", cfg.AdminAddr, err)
	}
	if adminTLS != nil {
		s.admL = tls.NewListener(s.admL, adminTLS)
	}
	s.grpc = s.newGRPCServer(grpcTLS)
	admLog := log.With().Str("component", "admin").Logger()
	adm := admin.Handler(admin.Deps{
		Log: admLog, Token: []byte(sec.AdminToken), ReadToken: []byte(sec.AdminReadToken), Fingerprinter: fp,
		Allow: allow, Block: block, Inventory: s.inventory, Catalog: &s.catalog, Metrics: s.metrics.reg, Panics: s.metrics.panics,
		Ready: &s.ready, Now: s.now, Attacks: s.engine.Store(), Engine: s.engine, Trap: s.trap, Forensics: s.forensics,
		ClusterStatus: s.replicas.status, Content: s.contentSink, OpenAPI: rt.OpenAPI,
	})
	s.http = &http.Server{
		Handler:           adm,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          stdlog.New(admLog, "", 0), // not the standard library's global logger
	}
	return s, nil
}

// setMemoryLimit gives the Go runtime its soft memory limit from
// detection.max_memory (config.MemoryLimit: the budget plus a quarter), so
// that the garbage collector works harder as the process nears it instead of
// letting the heap double past the live data as GOGC alone would. The
// GOMEMLIMIT environment variable, read by the runtime at start, wins.
func setMemoryLimit(cfg *config.Config, b config.Budget, log zerolog.Logger) {
	ev := log.Info().Int64("max_memory", b.Total).Int64("states_bytes", b.States).
		Int64("forensics_bytes", b.Forensics).Int64("rest_bytes", b.Rest)
	if env := os.Getenv("GOMEMLIMIT"); env != "" {
		ev.Int64("memory_limit", debug.SetMemoryLimit(-1)).Str("source", "GOMEMLIMIT").Msg("memory budget")
		return
	}
	limit := cfg.MemoryLimit()
	debug.SetMemoryLimit(limit)
	ev.Int64("memory_limit", limit).Str("source", "detection.max_memory").Msg("memory budget")
}

func (s *Server) closeState() {
	s.extractor.Close()
	if s.enforcer != nil {
		s.enforcer.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
	s.replicas.close()
}

// restore reads the durable state back (lists, attack records, inventory,
// forensics; models were restored with the engine, models the number) and
// makes every later change durable.
func (s *Server) restore(allow, block *detect.List, models int) error {
	now := s.now()
	for name, l := range map[string]*detect.List{"allow": allow, "block": block} {
		entries, err := s.store.LoadList(name, now)
		if err != nil {
			return err
		}
		for _, e := range entries {
			l.Put(e)
		}
	}
	s.replicas.shareLists(s, map[string]*detect.List{"allow": allow, "block": block})
	attacks, err := s.store.LoadAttacks(s.cfg.Detection.MaxAttacks)
	if err != nil {
		return err
	}
	as := s.engine.Store()
	for _, a := range attacks {
		as.Load(a)
	}
	s.replicas.shareAttacks(s, as, func(err error) { s.log.Error().Err(err).Msg("attack record not stored") }, allow, block)
	inv, err := s.store.LoadInventory()
	if err != nil {
		return err
	}
	s.inventory.Restore(inv)
	// Newest first, one record at a time, until the forensics are full:
	// a store holding more (a flood saved by an older version) is read no
	// further, and pruned at the first save.
	if err := s.store.LoadForensics(s.forensics.PutOlder); err != nil {
		return err
	}
	s.log.Info().Int("attacks", len(attacks)).Int("models", models).Int("blocklist", block.Len()).
		Int("allowlist", allow.Len()).Msg("durable state restored")
	return nil
}

// saveModels snapshots the models, the forensic records changed since the
// last save, the decoys' hits and the inventory every minute; Run saves
// once more after the pipeline has drained.
func (s *Server) saveModels(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.saveSnapshots()
		case <-ctx.Done():
			return
		}
	}
}

// forensicsSaveBatch is how many changed forensic records are built and
// written in one store transaction.
const forensicsSaveBatch = 5000

func (s *Server) saveSnapshots() {
	s.saveProfiles()
	if err := s.store.PutModels(s.engine.ModelDocs()); err != nil {
		s.log.Error().Err(err).Msg("models not saved")
	}
	// A batch at a time: a flood changes hundreds of thousands of records
	// a minute, and building them all at once would take gigabytes. The
	// records of identities memory forgot are deleted: the store holds no
	// more than memory.
	if err := s.forensics.Save(forensicsSaveBatch, s.store); err != nil {
		s.log.Error().Err(err).Msg("forensics not saved")
	}
	// Evicted identities' histories are gone from memory and now from
	// the store: said once per save, with the totals.
	if st, was := s.forensics.Stats(), s.forensicsLost; st.Evictions > was.Evictions {
		s.log.Info().Uint64("evicted", st.Evictions-was.Evictions).Uint64("never_saved", st.Unsaved-was.Unsaved).
			Uint64("evicted_total", st.Evictions).Uint64("never_saved_total", st.Unsaved).
			Msg("forensic records of the least recently seen identities forgotten (retention.forensics_identities or memory budget)")
		s.forensicsLost = st
	}
	if err := s.store.PutDecoyHits(s.trap.Stats()); err != nil {
		s.log.Error().Err(err).Msg("decoy hits not saved")
	}
	if err := s.store.PutInventory(s.inventory.APIs(nil)); err != nil {
		s.log.Error().Err(err).Msg("inventory not saved")
	}
}

// ClusterStatus is this replica's view of the replicas sharing Redis (as
// /v1/status shows it); nil without Redis.
func (s *Server) ClusterStatus() *adminapi.ClusterStatus { return s.replicas.status() }

// GRPCAddr returns the bound gRPC address.
func (s *Server) GRPCAddr() string { return s.grpcL.Addr().String() }

// AdminAddr returns the bound admin address.
func (s *Server) AdminAddr() string { return s.admL.Addr().String() }

// Enforcer returns the enforcement hot path (tests and benchmarks).
func (s *Server) Enforcer() *detect.Enforcer { return s.enforcer }

// Engine returns the detection engine (tests: attack records put in its
// store, transactions consumed).
func (s *Server) Engine() *behaviour.Engine { return s.engine }

// Ingest feeds one transaction record to the detection pipeline as if Envoy
// had sent it, waiting for room in the queue: the demo pre-trains with it on
// records stamped in the past. Only whole records (HasRequest and Complete)
// pass the joiner at once; Run must be running.
func (s *Server) Ingest(ctx context.Context, t *detect.Transaction) error {
	return s.queue.PushWait(ctx, t)
}

// IngestRecord feeds one recorded call (the replay format, its own time
// kept) to the pipeline, with the API matched and identities extracted and
// fingerprinted as they would be live, and content inspection run on it
// (its query, headers and request_body) as vigil replay does: a benign
// call may be sampled for the profile learner.
func (s *Server) IngestRecord(ctx context.Context, r *detect.Record) error {
	t := r.Transaction(s.catalog.Load(), s.extractor)
	if s.content != nil {
		rv := r.ContentView()
		s.content.InspectTransaction(t, &rv)
	}
	return s.Ingest(ctx, t)
}

// Models returns the training state of every API model.
func (s *Server) Models() []behaviour.ModelStatus { return s.engine.Models() }

// newGRPCServer sets every option on purpose: Envoy multiplexes one stream
// per HTTP request on few HTTP/2 connections, so concurrent streams are
// many, yet bounded per connection (Envoy opens another connection at its
// cluster's max_concurrent_streams) and in total (grpc.max_streams), since an
// idle stream costs memory and anyone connected can open them; BUFFERED bodies and ext_authz bodies arrive
// in single messages, so the receive limit follows the config; keepalive
// finds dead connections; recovery wraps every handler so that a panic
// becomes an INTERNAL status, which Envoy handles by its failure mode. The
// stream limit is the outermost stream interceptor: it cannot panic, it
// refuses a stream before anything else runs, and, shallow on the stream's
// goroutine, it grows that goroutine's stack at once (growStack), as
// ext_authz's registration (GRPCRegistrar) does for each Check.
func (s *Server) newGRPCServer(tlsConfig *tls.Config) *grpc.Server {
	s.streams = newStreamLimit(s.cfg.GRPC.MaxStreams)
	s.metrics.streams(s.streams)
	opts := grpcOptions(s.cfg, func(p any) {
		s.metrics.panics.Inc()
		s.log.Error().Interface("panic", p).Msg("recovered from panic in gRPC handler")
	}, s.streams)
	if tlsConfig != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	srv := grpc.NewServer(opts...)
	ec := envoy.Config{
		Log:       s.log.With().Str("component", "envoy").Logger(),
		Catalog:   &s.catalog,
		Extractor: s.extractor,
		Enforcer:  s.enforcer,
		Queue:     s.queue,
		Metrics:   s.metrics,
		Now:       s.now,
		Content:   s.content,
	}
	extprocv3.RegisterExternalProcessorServer(srv, envoy.NewExtProc(ec))
	authv3.RegisterAuthorizationServer(GRPCRegistrar(srv), envoy.NewExtAuthz(ec))
	s.health = health.NewServer()
	s.stopWatch = make(chan struct{})
	healthpb.RegisterHealthServer(srv, &healthService{Server: s.health, stop: s.stopWatch})
	reflection.Register(srv)
	return srv
}

// GRPCOptions are the options of Vigil's gRPC server for cfg, with
// onPanic told of every recovered panic. The benchmark gives its null server
// the same ones, so that the comparison is of the handlers alone.
func GRPCOptions(cfg *config.Config, onPanic func(p any)) []grpc.ServerOption {
	return grpcOptions(cfg, onPanic, newStreamLimit(cfg.GRPC.MaxStreams))
}

func grpcOptions(cfg *config.Config, onPanic func(p any), streams *streamLimit) []grpc.ServerOption {
	g := cfg.GRPC
	recovered := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		onPanic(p)
		return status.Error(codes.Internal, "internal error")
	})
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(g.MaxRecvMsgBytes),
		grpc.MaxConcurrentStreams(g.MaxConcurrentStreams),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: g.KeepaliveTime, Timeout: g.KeepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: g.KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(recovery.UnaryServerInterceptor(recovered)),
		grpc.ChainStreamInterceptor(streams.intercept, recovery.StreamServerInterceptor(recovered)),
	}
}

var servedServices = []string{
	"", // the server as a whole
	"envoy.service.ext_proc.v3.ExternalProcessor",
	"envoy.service.auth.v3.Authorization",
}

// Run serves until ctx is cancelled, then shuts down in order: health
// NOT_SERVING and readyz 503, the drain delay, GracefulStop bounded by the
// shutdown timeout, Stop, then the admin listener and the pipeline.
func (s *Server) Run(ctx context.Context) error {
	defer s.closeState()
	pipeCtx, stopPipe := context.WithCancel(context.Background())
	pipeline := detect.NewPipeline(s.queue, s.cfg.Pipeline.JoinWindow, s.now, s.inventory, s.forensics, s.engine, s.trap, s.contentSink)
	pipeline.LimitPending(s.budget.PendingJoins())
	pipeline.Watch(s.warnings()...)
	engineCtx, stopEngine := context.WithCancel(context.Background())
	var engineWG sync.WaitGroup
	engineWG.Go(func() { s.engine.Run(engineCtx) })
	engineWG.Go(func() { s.publishProfiles(engineCtx) })
	var wg sync.WaitGroup
	wg.Go(func() { pipeline.Run(pipeCtx) })
	wg.Go(func() { s.sweep(pipeCtx) })
	wg.Go(func() { s.saveModels(pipeCtx) })
	wg.Go(func() { s.notifier.Run(pipeCtx) })
	replCtx, stopReplicas := context.WithCancel(context.Background())
	waitReplicas := s.replicas.run(replCtx, s)

	errc := make(chan error, 2)
	go func() {
		if err := s.grpc.Serve(s.grpcL); err != nil {
			errc <- fmt.Errorf("gRPC server: %w", err)
		}
	}()
	go func() {
		if err := s.http.Serve(s.admL); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("admin server: %w", err)
		}
	}()
	for _, name := range servedServices {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	s.ready.Store(true)
	if s.cfg.GRPCOpen() {
		s.log.Warn().Str("grpc_addr", s.GRPCAddr()).Bool("grpc_insecure", s.cfg.GRPCInsecure).
			Msg("gRPC serves every caller off loopback without a client certificate (grpc_insecure): " +
				"anyone who reaches the port can block any client; require Envoy's with grpc_tls.client_ca_file " +
				"unless a mesh or network policy admits only Envoy")
	}
	s.log.Info().Str("grpc_addr", s.GRPCAddr()).Str("admin_addr", s.AdminAddr()).
		Int("apis", len(s.catalog.Load().APIs())).Msg("vigil serving")

	var runErr error
	select {
	case <-ctx.Done():
		s.log.Info().Msg("shutting down")
	case runErr = <-errc:
		s.log.Error().Err(runErr).Msg("server failed; shutting down")
	}
	s.shutdown()
	stopPipe()
	wg.Wait()
	stopReplicas() // before the engine: a flush asks the engine's shards for their deltas
	waitReplicas()
	stopEngine()
	engineWG.Wait()
	s.saveSnapshots() // what the drained pipeline and engine added
	s.log.Info().Uint64("queue_dropped", s.queue.Dropped()).Msg("vigil stopped")
	return runErr
}

func (s *Server) shutdown() {
	s.ready.Store(false)
	s.health.Shutdown() // every service NOT_SERVING: Envoy's health checks move traffic away
	if d := s.cfg.Shutdown.DrainDelay; d > 0 {
		s.log.Info().Dur("drain_delay", d).Msg("draining")
		<-s.after(d)
	}
	close(s.stopWatch) // watchers have seen NOT_SERVING for the whole drain delay
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-s.after(s.cfg.Shutdown.Timeout):
		s.log.Warn().Dur("timeout", s.cfg.Shutdown.Timeout).Msg("streams still open after the shutdown timeout; closing them")
		s.grpc.Stop()
		<-done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		s.http.Close()
	}
}

// healthService is the standard health service, except that Watch streams
// end when the shutdown reaches GracefulStop. A Watch never ends by itself,
// so one open watcher (gRPC client-side health checking, a probe) would
// otherwise hold every shutdown until the timeout and its Stop.
type healthService struct {
	*health.Server
	stop <-chan struct{}
}

// Watch implements healthpb.HealthServer.
func (h *healthService) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-h.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := h.Server.Watch(req, &watchStream{Health_WatchServer: stream, ctx: ctx})
	select {
	case <-h.stop:
		return status.Error(codes.Unavailable, "server is shutting down")
	default:
		return err
	}
}

// watchStream replaces the context of a Watch stream.
type watchStream struct {
	healthpb.Health_WatchServer
	ctx context.Context
}

func (w *watchStream) Context() context.Context { return w.ctx }

// sweep frees expired list entries every 30 seconds.
func (s *Server) sweep(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	allow, block := s.enforcer.Lists()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := s.now()
			allow.Sweep(now)
			block.Sweep(now)
		}
	}
}

// attackHooks are where attacks go, the engine's and content
// inspection's: logged as one JSON line each, counted, sent to the
// webhooks, handed to flag, and put on the block list when their API is in
// block mode.
func attackHooks(log zerolog.Logger, block *detect.List, m *metrics, n *notify.Notifier, flag func(*detect.Attack)) config.EngineHooks {
	alog := log.With().Str("component", "detect").Logger()
	return config.EngineHooks{
		Block: func(e detect.Entry) {
			if err := block.Store(e); err != nil {
				log.Error().Err(err).Str("kind", e.Kind.String()).Msg("block list entry not stored durably")
			}
		},
		Blocked: func(k detect.Kind, id string, at time.Time) bool {
			_, ok := block.Lookup(k, id, at)
			return ok
		},
		OnAttack: func(a *detect.Attack) {
			flag(a)
			m.attack(a)
			n.Notify(a)
			alog.Warn().Str("attack_id", a.ID).Str("type", string(a.Type)).Str("api", a.API).
				Str("identity_kind", a.Identity.Kind).Str("identity", a.Identity.Value).
				Str("action", a.Action).Interface("variables", a.Variables).Strs("client_ips", a.ClientIPs).
				Time("detected_at", a.DetectedAt).Msg("attack")
		},
	}
}

// newEngine builds the detection engine from the runtime settings (as
// replay does) with the attack hooks and the stored models.
func newEngine(rt *config.Runtime, log zerolog.Logger, h config.EngineHooks, models []*behaviour.ModelDoc, r *replicas) (*behaviour.Engine, error) {
	h.Snapshots = models
	h.OnSnapshotError = func(api string, err error) {
		log.Warn().Err(err).Str("api", api).Msg("stored model not restored")
	}
	return rt.NewEngine(r.hooks(h))
}
