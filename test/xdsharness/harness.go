// Package xdsharness drives an Envoy ext_proc server under test with a real,
// independent ext_proc client: grpc-go's xDS ext_proc HTTP filter (gRFC A93,
// google.golang.org/grpc/internal/xds/httpfilter/extproc).
//
// Start launches, all on 127.0.0.1:0:
//
//  1. a backend gRPC server exposing grpc.health.v1.Health (built into grpc-go,
//     so no protos are generated), which records the metadata of every call it
//     receives;
//  2. an xDS management server (go-control-plane snapshot cache + ADS) serving a
//     Listener (api_listener HCM, RDS over ADS, http_filters [ext_proc, router]),
//     a RouteConfiguration, a Cluster (EDS over ADS) and a ClusterLoadAssignment;
//  3. a grpc.ClientConn dialled at xds:///<listener> with an in-process bootstrap.
//
// Every RPC on Harness.Conn therefore runs through the ext_proc filter, which
// opens an envoy.service.ext_proc.v3.ExternalProcessor/Process stream to
// Options.ExtProcAddr.
//
// grpc-go only registers the filter when GRPC_EXPERIMENTAL_XDS_EXT_PROC_ON_CLIENT
// is "true" at process start (it is read in an init function), so a test
// package using this harness should have:
//
//	func TestMain(m *testing.M) { xdsharness.Main(m) }
//
// Main re-executes the test binary with the variable set when it is missing.
//
// What grpc-go's client does differently from Envoy (so tests must not expect
// Envoy-only behaviour here): request_headers carry gRPC metadata only, with no
// pseudo-headers; :path, :method and :authority arrive only as the
// request.path / request.method / request.host attributes under
// attributes["envoy.filters.http.ext_proc"]; body modes are NONE or GRPC only,
// and in GRPC mode every body response must carry
// body_mutation.streamed_response (an empty BodyResponse fails the RPC);
// ImmediateResponse ends the RPC with grpc_status (default INTERNAL) and
// details, the HTTP status is ignored; "source.address" and other attributes
// outside request.* are silently not sent.
package xdsharness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/xds"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
)

// DefaultRequestAttributes is used when Options.RequestAttributes is nil.
// grpc-go 1.85 only understands request.* attributes (request.path,
// request.url_path, request.host, request.method, request.headers,
// request.referer, request.useragent, request.id, request.query); anything
// else, including source.address, is accepted in the config but never sent.
var DefaultRequestAttributes = []string{"request.path", "request.method", "request.host", "source.address"}

// ProcessingMode selects which events the ext_proc filter sends. The zero
// value sends nothing; use DefaultProcessingMode for Envoy's default.
type ProcessingMode struct {
	RequestHeaders  bool // request_header_mode SEND (false: SKIP)
	ResponseHeaders bool // response_header_mode SEND (false: SKIP)
	RequestBody     bool // request_body_mode GRPC (false: NONE)
	// ResponseBody selects response_body_mode GRPC (false: NONE). grpc-go
	// requires response_trailer_mode SEND with it, so ResponseBody implies
	// ResponseTrailers.
	ResponseBody     bool
	ResponseTrailers bool // response_trailer_mode SEND (false: SKIP)
}

// DefaultProcessingMode mirrors Envoy's defaults: request and response headers
// are sent, bodies and trailers are not.
func DefaultProcessingMode() ProcessingMode {
	return ProcessingMode{RequestHeaders: true, ResponseHeaders: true}
}

// AllProcessingMode sends every event grpc-go supports: headers, GRPC bodies
// in both directions and response trailers.
func AllProcessingMode() ProcessingMode {
	return ProcessingMode{RequestHeaders: true, ResponseHeaders: true, RequestBody: true, ResponseBody: true, ResponseTrailers: true}
}

func (pm ProcessingMode) proto() *extprocfilterv3.ProcessingMode {
	hdr := func(send bool) extprocfilterv3.ProcessingMode_HeaderSendMode {
		if send {
			return extprocfilterv3.ProcessingMode_SEND
		}
		return extprocfilterv3.ProcessingMode_SKIP
	}
	body := func(send bool) extprocfilterv3.ProcessingMode_BodySendMode {
		if send {
			return extprocfilterv3.ProcessingMode_GRPC
		}
		return extprocfilterv3.ProcessingMode_NONE
	}
	return &extprocfilterv3.ProcessingMode{
		RequestHeaderMode:   hdr(pm.RequestHeaders),
		ResponseHeaderMode:  hdr(pm.ResponseHeaders),
		RequestBodyMode:     body(pm.RequestBody),
		ResponseBodyMode:    body(pm.ResponseBody),
		RequestTrailerMode:  extprocfilterv3.ProcessingMode_SKIP, // grpc-go never sends request trailers
		ResponseTrailerMode: hdr(pm.ResponseTrailers || pm.ResponseBody),
	}
}

// Options configures the harness. Only ExtProcAddr is required.
type Options struct {
	// ExtProcAddr is the ext_proc server under test, "host:port" (any grpc
	// target URI works).
	ExtProcAddr string

	ObservabilityMode        bool
	FailureModeAllow         bool
	DisableImmediateResponse bool

	// RequestAttributes defaults to DefaultRequestAttributes when nil; pass a
	// non-nil empty slice to request no attributes.
	RequestAttributes  []string
	ResponseAttributes []string

	// ProcessingMode defaults to DefaultProcessingMode() when nil.
	ProcessingMode *ProcessingMode

	// ExtProcTimeout sets grpc_service.timeout, the deadline grpc-go puts on
	// the whole Process stream. 0 leaves it unset (no deadline).
	ExtProcTimeout time.Duration

	// DeferredCloseTimeout sets deferred_close_timeout (observability mode
	// only). 0 leaves it unset (grpc-go default: 5s).
	DeferredCloseTimeout time.Duration

	// ListenerName is the xDS listener name and the xds:/// target; it also
	// becomes request.host. Default "vigil-xdsharness".
	ListenerName string

	// ReadyTimeout bounds Start's wait for the channel to become READY when
	// ctx has no earlier deadline. Default 15s.
	ReadyTimeout time.Duration

	// ConfigHook, if set, may edit the ext_proc filter config after the
	// harness has filled it in (mutation_rules, forward_rules, ...).
	ConfigHook func(*extprocfilterv3.ExternalProcessor)
}

// BackendCall is one RPC received by the backend, after the ext_proc filter.
type BackendCall struct {
	Method   string
	Metadata metadata.MD // incoming metadata as the backend saw it (includes header mutations)
}

// Harness is a running backend + xDS server + xDS client channel.
type Harness struct {
	opts Options

	cc            *grpc.ClientConn
	backend       *grpc.Server
	backendAddr   string
	xdsServer     *grpc.Server
	xdsAddr       string
	xdsCancel     context.CancelFunc
	snapshotCache cachev3.SnapshotCache

	mu       sync.Mutex
	calls    []BackendCall
	nacks    []string
	closed   bool
	closeErr error
}

var harnessSeq atomic.Int64

// Start is New for tests: it fails t on error and registers Close with
// t.Cleanup. ctx only bounds start-up; the harness lives until Close.
func Start(ctx context.Context, t testing.TB, opts Options) *Harness {
	t.Helper()
	RequireEnv(t)
	h, err := New(ctx, opts)
	if err != nil {
		t.Fatalf("xdsharness: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// New starts the harness and waits until the xDS channel is READY (LDS, RDS,
// CDS and EDS resolved, backend connected). It makes no RPC, so the ext_proc
// server sees no traffic until the test makes a call. ctx only bounds
// start-up. The caller must Close the harness.
func New(ctx context.Context, opts Options) (_ *Harness, retErr error) {
	if !Enabled() {
		return nil, errors.New(envMissingMessage)
	}
	if opts.ExtProcAddr == "" {
		return nil, errors.New("Options.ExtProcAddr is required")
	}
	if opts.RequestAttributes == nil {
		opts.RequestAttributes = DefaultRequestAttributes
	}
	if opts.ProcessingMode == nil {
		pm := DefaultProcessingMode()
		opts.ProcessingMode = &pm
	}
	if opts.ListenerName == "" {
		opts.ListenerName = "vigil-xdsharness"
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 15 * time.Second
	}

	h := &Harness{opts: opts}
	defer func() {
		if retErr != nil {
			_ = h.Close()
		}
	}()

	// 1. Backend.
	blis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("backend listen: %w", err)
	}
	h.backendAddr = blis.Addr().String()
	h.backend = grpc.NewServer(grpc.UnaryInterceptor(h.recordUnary), grpc.StreamInterceptor(h.recordStream))
	healthpb.RegisterHealthServer(h.backend, health.NewServer())
	go func() { _ = h.backend.Serve(blis) }()

	// 2. xDS management server.
	nodeID := "vigil-xdsharness-" + strconv.FormatInt(harnessSeq.Add(1), 10)
	h.snapshotCache = cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	res, err := buildResources(opts, h.backendAddr)
	if err != nil {
		return nil, err
	}
	snap, err := cachev3.NewSnapshot("1", res)
	if err != nil {
		return nil, fmt.Errorf("xds snapshot: %w", err)
	}
	// No snap.Consistent(): go-control-plane does not follow RDS references
	// inside api_listener, so it reports the route as unreferenced.
	if err := h.snapshotCache.SetSnapshot(ctx, nodeID, snap); err != nil {
		return nil, fmt.Errorf("xds set snapshot: %w", err)
	}
	xlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("xds listen: %w", err)
	}
	h.xdsAddr = xlis.Addr().String()
	var xdsCtx context.Context
	xdsCtx, h.xdsCancel = context.WithCancel(context.Background())
	callbacks := serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, req *discoveryv3.DiscoveryRequest) error {
			if ed := req.GetErrorDetail(); ed != nil {
				h.mu.Lock()
				h.nacks = append(h.nacks, fmt.Sprintf("%s NACK: %s", req.GetTypeUrl(), ed.GetMessage()))
				h.mu.Unlock()
			}
			return nil
		},
	}
	h.xdsServer = grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(h.xdsServer, serverv3.NewServer(xdsCtx, h.snapshotCache, callbacks))
	go func() { _ = h.xdsServer.Serve(xlis) }()

	// 3. xDS client channel.
	bootstrap := fmt.Sprintf(`{
  "xds_servers": [{
    "server_uri": %q,
    "channel_creds": [{"type": "insecure"}],
    "server_features": ["xds_v3", "trusted_xds_server"]
  }],
  "node": {"id": %q}
}`, h.xdsAddr, nodeID)
	rb, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		return nil, fmt.Errorf("xds resolver: %w", err)
	}
	h.cc, err = grpc.NewClient("xds:///"+opts.ListenerName,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(rb))
	if err != nil {
		return nil, fmt.Errorf("xds client: %w", err)
	}
	if err := h.waitReady(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Harness) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.opts.ReadyTimeout)
	defer cancel()
	h.cc.Connect()
	for {
		s := h.cc.GetState()
		if s == connectivity.Ready {
			return nil
		}
		if !h.cc.WaitForStateChange(ctx, s) {
			h.mu.Lock()
			nacks := append([]string(nil), h.nacks...)
			h.mu.Unlock()
			return fmt.Errorf("xds channel not READY (state %v) after %v: %w; NACKs from client: %q",
				h.cc.GetState(), h.opts.ReadyTimeout, ctx.Err(), nacks)
		}
	}
}

func (h *Harness) record(ctx context.Context, method string) {
	md, _ := metadata.FromIncomingContext(ctx)
	h.mu.Lock()
	h.calls = append(h.calls, BackendCall{Method: method, Metadata: md.Copy()})
	h.mu.Unlock()
}

func (h *Harness) recordUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	h.record(ctx, info.FullMethod)
	return handler(ctx, req)
}

func (h *Harness) recordStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	h.record(ss.Context(), info.FullMethod)
	return handler(srv, ss)
}

// Conn is the xDS channel; every RPC on it goes through the ext_proc filter.
// The backend serves grpc.health.v1.Health (Check, List, Watch).
func (h *Harness) Conn() *grpc.ClientConn { return h.cc }

// CallMethod is the full method name Call invokes; it is also the value of
// the request.path attribute.
const CallMethod = "/grpc.health.v1.Health/Check"

// Call makes one unary grpc.health.v1.Health/Check RPC through the ext_proc
// filter, with md as outgoing metadata (it reaches the ext_proc server as
// request_headers, values in raw_value). It returns nil when the RPC was
// allowed, or the RPC's status error (e.g. codes.PermissionDenied for an
// ImmediateResponse with grpc_status 7). opts may be used for
// grpc.Header/grpc.Trailer to observe response mutations.
func (h *Harness) Call(ctx context.Context, md metadata.MD, opts ...grpc.CallOption) error {
	if md != nil {
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	_, err := healthpb.NewHealthClient(h.cc).Check(ctx, &healthpb.HealthCheckRequest{}, opts...)
	return err
}

// BackendCalls returns a copy of the calls the backend received so far.
func (h *Harness) BackendCalls() []BackendCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]BackendCall(nil), h.calls...)
}

// NACKs returns the error details of any xDS resources the client rejected.
func (h *Harness) NACKs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.nacks...)
}

// BackendAddr is the backend's host:port.
func (h *Harness) BackendAddr() string { return h.backendAddr }

// XDSAddr is the xDS management server's host:port.
func (h *Harness) XDSAddr() string { return h.xdsAddr }

// Close stops the client, the xDS server and the backend. It is idempotent.
func (h *Harness) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return h.closeErr
	}
	h.closed = true
	h.mu.Unlock()

	var err error
	if h.cc != nil {
		err = h.cc.Close()
	}
	if h.xdsServer != nil {
		h.xdsServer.Stop()
	}
	if h.xdsCancel != nil {
		h.xdsCancel()
	}
	if h.backend != nil {
		h.backend.Stop()
	}
	h.mu.Lock()
	h.closeErr = err
	h.mu.Unlock()
	return err
}
