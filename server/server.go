// Package server is the Vigil process: configuration (embedded defaults,
// strict YAML, flags, validation), the gRPC server that Envoy talks to, the
// admin HTTP API and metrics, the wiring between envoy and detect, and an
// ordered graceful shutdown.
package server

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	"github.com/vigil-project/vigil/server/store"
)

// Server is a running Vigil: listeners bound, services wired.
type Server struct {
	cfg   *Config
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
	engine    *behaviour.Engine
	trap      *decoy.Trap
	metrics   *metrics
	streams   *streamLimit // grpc.max_streams
	store     *store.Store
	notifier  *Notifier
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
func New(cfg *Config, log zerolog.Logger, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	sec, errs := cfg.secrets() // the files again: one may have gone since Validate
	if len(errs) > 0 {
		return nil, errs[0]
	}
	key, err := fingerprintKey(cfg, sec)
	if err != nil {
		return nil, err
	}
	fp, err := detect.NewFingerprinter(key)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, now: opts.Now, after: opts.After}
	s.catalog.Store(cfg.Catalog())
	if s.extractor, err = detect.NewExtractor(fp, cfg.TrustedHops); err != nil {
		return nil, err
	}
	allow, block := detect.NewLists()
	if s.enforcer, err = detect.NewEnforcer(allow, block, cfg.VerdictCache); err != nil {
		s.extractor.Close()
		return nil, err
	}
	s.queue = detect.NewQueue(cfg.Pipeline.QueueSize)
	s.inventory = observe.NewInventory(s.catalog.Load().APIs(), cfg.Discovery.MaxAPIs, cfg.Discovery.MaxEndpointsPerAPI)
	s.forensics = observe.NewForensics(cfg.Retention.ForensicsIdentities)
	s.metrics = newMetrics(s.queue, allow, block)
	s.metrics.watchInventory(s.inventory)
	if s.store, err = store.Open(cfg.DataDir); err != nil {
		s.closeState()
		return nil, err
	}
	s.store.AttackMax, s.store.AttackMaxAge = cfg.Retention.AttacksMax, cfg.Retention.AttacksMaxAge
	s.notifier = NewNotifier(cfg.Notify, log.With().Str("component", "notify").Logger(), nil)
	s.metrics.reg.MustRegister(s.notifier.Collectors()...)
	s.engine = newEngine(cfg, log, block, s.metrics, s.catalog.Load().APIs(), s.notifier)
	if err := s.restore(allow, block); err != nil {
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
	for _, a := range cfg.APIs {
		if a.Detection != nil {
			if err := s.engine.Apply(a.Name, a.Detection); err != nil {
				s.closeState()
				return nil, fmt.Errorf("apis %s detection: %w", a.Name, err)
			}
		}
	}

	var grpcTLS, adminTLS *tls.Config
	if cfg.GRPCTLS.enabled() {
		if grpcTLS, err = cfg.GRPCTLS.tlsConfig(); err != nil {
			s.closeState()
			return nil, fmt.Errorf("grpc_tls: %w", err)
		}
	}
	if cfg.AdminTLS.enabled() {
		if adminTLS, err = cfg.AdminTLS.tlsConfig(); err != nil {
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
	adm := &admin{
		log: log.With().Str("component", "admin").Logger(), token: []byte(sec.adminToken), readToken: []byte(sec.adminReadToken), fp: fp,
		allow: allow, block: block, inventory: s.inventory, catalog: &s.catalog, metrics: s.metrics, ready: &s.ready, now: s.now,
		attacks: s.engine.Store(), engine: s.engine, trap: s.trap, forensics: s.forensics,
	}
	s.http = &http.Server{
		Handler:           adm.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          stdlog.New(adm.log, "", 0), // not the standard library's global logger
	}
	return s, nil
}

func (s *Server) closeState() {
	s.extractor.Close()
	if s.enforcer != nil {
		s.enforcer.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
}

// restore reads the durable state back (lists, attack records, models) and
// makes every later change durable.
func (s *Server) restore(allow, block *detect.List) error {
	now := s.now()
	for name, l := range map[string]*detect.List{"allow": allow, "block": block} {
		entries, err := s.store.LoadList(name, now)
		if err != nil {
			return err
		}
		for _, e := range entries {
			l.Put(e)
		}
		l.SetJournal(s.store.ListJournal(name))
	}
	attacks, err := s.store.LoadAttacks(s.cfg.Detection.MaxAttacks)
	if err != nil {
		return err
	}
	as := s.engine.Store()
	for _, a := range attacks {
		as.Load(a)
	}
	as.SetJournal(s.store, func(err error) { s.log.Error().Err(err).Msg("attack record not stored") })
	inv, err := s.store.LoadInventory()
	if err != nil {
		return err
	}
	s.inventory.Restore(inv)
	recs, err := s.store.LoadForensics()
	if err != nil {
		return err
	}
	slices.SortFunc(recs, func(a, b *observe.ForensicRecord) int { return a.LastSeen.Compare(b.LastSeen) })
	for _, r := range recs { // oldest first: the least recently seen are forgotten first
		s.forensics.Put(r)
	}
	models, err := s.store.LoadModels()
	if err != nil {
		return err
	}
	for _, d := range models {
		if err := s.engine.Restore(d); err != nil {
			s.log.Warn().Err(err).Str("api", d.API).Msg("stored model not restored")
		}
	}
	s.log.Info().Int("attacks", len(attacks)).Int("models", len(models)).Int("blocklist", block.Len()).
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

func (s *Server) saveSnapshots() {
	if err := s.store.PutModels(s.engine.ModelDocs()); err != nil {
		s.log.Error().Err(err).Msg("models not saved")
	}
	if err := s.store.PutForensics(s.forensics.Dirty()); err != nil {
		s.log.Error().Err(err).Msg("forensics not saved")
	}
	if err := s.store.PutDecoyHits(s.trap.Stats()); err != nil {
		s.log.Error().Err(err).Msg("decoy hits not saved")
	}
	if err := s.store.PutInventory(s.inventory.APIs(nil)); err != nil {
		s.log.Error().Err(err).Msg("inventory not saved")
	}
}

// GRPCAddr returns the bound gRPC address.
func (s *Server) GRPCAddr() string { return s.grpcL.Addr().String() }

// AdminAddr returns the bound admin address.
func (s *Server) AdminAddr() string { return s.admL.Addr().String() }

// Enforcer returns the enforcement hot path (tests and benchmarks).
func (s *Server) Enforcer() *detect.Enforcer { return s.enforcer }

// Ingest feeds one transaction record to the detection pipeline as if Envoy
// had sent it, waiting for room in the queue: the demo pre-trains with it on
// records stamped in the past. Only whole records (HasRequest and Complete)
// pass the joiner at once; Run must be running.
func (s *Server) Ingest(ctx context.Context, t *detect.Transaction) error {
	return s.queue.PushWait(ctx, t)
}

// IngestRecord feeds one recorded call (the replay format, its own time
// kept) to the pipeline, with the API matched and identities extracted and
// fingerprinted as they would be live.
func (s *Server) IngestRecord(ctx context.Context, r *detect.Record) error {
	return s.Ingest(ctx, r.Transaction(s.catalog.Load(), s.extractor))
}

// Models returns the training state of every API model.
func (s *Server) Models() []behaviour.ModelStatus { return s.engine.Models() }

// newGRPCServer sets every option on purpose: Envoy multiplexes one stream
// per HTTP request on few HTTP/2 connections, so concurrent streams are
// many, yet bounded per connection (Envoy opens another connection at its
// cluster's max_concurrent_streams) and in total (grpc.max_streams), since an
// idle stream costs memory and anyone connected can open them; BUFFERED bodies and ext_authz bodies arrive
// in single messages, so the receive limit follows the config; keepalive
// finds dead connections; recovery is the outermost interceptor so that a
// panic becomes an INTERNAL status, which Envoy handles by its failure mode.
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
	}
	extprocv3.RegisterExternalProcessorServer(srv, envoy.NewExtProc(ec))
	authv3.RegisterAuthorizationServer(srv, envoy.NewExtAuthz(ec))
	s.health = health.NewServer()
	s.stopWatch = make(chan struct{})
	healthpb.RegisterHealthServer(srv, &healthService{Server: s.health, stop: s.stopWatch})
	reflection.Register(srv)
	return srv
}

// GRPCOptions are the options of Vigil's gRPC server for cfg, with
// onPanic told of every recovered panic. The benchmark gives its null server
// the same ones, so that the comparison is of the handlers alone.
func GRPCOptions(cfg *Config, onPanic func(p any)) []grpc.ServerOption {
	return grpcOptions(cfg, onPanic, newStreamLimit(cfg.GRPC.MaxStreams))
}

func grpcOptions(cfg *Config, onPanic func(p any), streams *streamLimit) []grpc.ServerOption {
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
		grpc.ChainStreamInterceptor(recovery.StreamServerInterceptor(recovered), streams.intercept),
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
	pipeline := detect.NewPipeline(s.queue, s.cfg.Pipeline.JoinWindow, s.now, s.inventory, s.forensics, s.engine, s.trap)
	pipeline.Watch(s.warnings()...)
	engineCtx, stopEngine := context.WithCancel(context.Background())
	var engineWG sync.WaitGroup
	engineWG.Go(func() { s.engine.Run(engineCtx) })
	var wg sync.WaitGroup
	wg.Go(func() { pipeline.Run(pipeCtx) })
	wg.Go(func() { s.sweep(pipeCtx) })
	wg.Go(func() { s.saveModels(pipeCtx) })
	wg.Go(func() { s.notifier.Run(pipeCtx) })

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
	if s.cfg.grpcOpen() {
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

// fingerprintKey returns the configured key (sec, from cfg.secrets), or the
// one kept in the data directory, created on first start.
func fingerprintKey(cfg *Config, sec secrets) ([]byte, error) {
	if sec.fingerprintKey != "" {
		return hex.DecodeString(sec.fingerprintKey)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(cfg.DataDir, "fingerprint.key")
	key, err := readKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key = detect.NewKey()
	switch err := createKeyFile(path, []byte(hex.EncodeToString(key)+"\n")); {
	case errors.Is(err, fs.ErrExist):
		return readKeyFile(path) // another process sharing the directory was first
	case err != nil:
		return nil, fmt.Errorf("write fingerprint key: %w", err)
	}
	return key, nil
}

func readKeyFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("read fingerprint key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("%s: not a hex key of at least 32 bytes", path)
	}
	return key, nil
}

// createKeyFile writes a secret file with mode 0600, whole or not at all,
// and fails with fs.ErrExist if the file is already there. It writes a fresh
// temporary file (os.WriteFile on a left-over one would keep that file's
// mode) and links it into place, which unlike a rename never replaces a key
// that another process has just created.
func createKeyFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp, path); err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	// The file system has no hard links: a rename is the best left.
	return os.Rename(tmp, path)
}

// newEngine builds the detection engine: attacks are logged as one JSON
// line each, counted, and put on the block list by the engine when their
// API is in block mode.
func newEngine(cfg *Config, log zerolog.Logger, block *detect.List, m *metrics, apis []*detect.API, n *Notifier) *behaviour.Engine {
	alog := log.With().Str("component", "detect").Logger()
	return behaviour.NewEngine(behaviour.EngineConfig{
		Workers:   cfg.Detection.Workers,
		MaxStates: cfg.Detection.MaxStates,
		MaxAPIs:   cfg.Discovery.MaxAPIs,
		Training: behaviour.TrainingConfig{
			Duration: cfg.Training.Duration, MinRequests: cfg.Training.MinRequests,
			MinIdentities: cfg.Training.MinIdentities, RelearnInterval: cfg.Training.RelearnInterval,
		},
		BlockTTL: cfg.BlockTTL,
		TypeTTL:  cfg.typeTTLs(),

		BlockAfter:  cfg.Detection.BlockAfter,
		BlockWindow: cfg.Detection.BlockWindow,

		APIs: apis,
		Block: func(e detect.Entry) {
			if err := block.Store(e); err != nil {
				log.Error().Err(err).Str("kind", e.Kind.String()).Msg("block list entry not stored durably")
			}
		},
		Store: detect.NewAttackStore(cfg.Detection.MaxAttacks),
		OnAttack: func(a *detect.Attack) {
			m.attack(a)
			n.Notify(a)
			alog.Warn().Str("attack_id", a.ID).Str("type", string(a.Type)).Str("api", a.API).
				Str("identity_kind", a.Identity.Kind).Str("identity", a.Identity.Value).
				Str("action", a.Action).Interface("variables", a.Variables).Strs("client_ips", a.ClientIPs).
				Time("detected_at", a.DetectedAt).Msg("attack")
		},
	})
}
