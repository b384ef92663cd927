package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/testlog"
)

// The package's own tests keep this small harness instead of
// test/vigiltest: they are white-box tests (servedServices, the enforcer,
// the engine, Run's return observed without stopping it), and vigiltest
// imports server, so importing it here would be a cycle. Everything
// outside this package starts a server with vigiltest.

// testConfig is the embedded defaults on ephemeral loopback ports, a
// temporary data directory and no drain delay.
func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Shutdown.DrainDelay = 0
	cfg.Shutdown.Timeout = 5 * time.Second
	return cfg
}

// testServer is a Server running in the background.
type testServer struct {
	*Server
	logs   *testlog.Buffer
	cancel context.CancelFunc
	done   chan error
	base   string // admin base URL
}

// startServer runs New and Run and waits until /readyz answers 200. The
// server is stopped when the test ends.
func startServer(t *testing.T, cfg *config.Config) *testServer {
	t.Helper()
	return startServerWith(t, cfg, Options{})
}

func startServerWith(t *testing.T, cfg *config.Config, opts Options) *testServer {
	t.Helper()
	logs := testlog.New(t) // every line checked when the test ends
	s, err := New(cfg, NewLogger(logs, cfg).Level(zerolog.DebugLevel), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: s, logs: logs, cancel: cancel, done: make(chan error, 1), base: "http://" + s.AdminAddr()}
	go func() { ts.done <- s.Run(ctx) }()
	t.Cleanup(func() { ts.stop(t) })
	waitFor(t, 5*time.Second, "readyz 200", func() bool {
		resp, err := http.Get(ts.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return ts
}

// stop cancels the server and waits for Run to return; it may be called
// more than once.
func (ts *testServer) stop(t *testing.T) {
	t.Helper()
	ts.cancel()
	select {
	case err, ok := <-ts.done:
		if ok {
			close(ts.done)
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		<-tick.C
	}
}

func dialGRPC(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestRunServesAndStops(t *testing.T) {
	ts := startServer(t, testConfig(t))
	conn := dialGRPC(t, ts.GRPCAddr())
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, svc := range servedServices {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatalf("health %q: %v", svc, err)
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q = %s, want SERVING", svc, resp.Status)
		}
	}
	ts.stop(t)
	if _, err := net.DialTimeout("tcp", ts.GRPCAddr(), time.Second); err == nil {
		t.Error("the gRPC listener is still open after Run returned")
	}
	if _, err := net.DialTimeout("tcp", ts.AdminAddr(), time.Second); err == nil {
		t.Error("the admin listener is still open after Run returned")
	}
	logs := ts.logs.String()
	for _, msg := range []string{`"message":"vigil serving"`, `"message":"shutting down"`, `"message":"vigil stopped"`} {
		if !strings.Contains(logs, msg) {
			t.Errorf("logs lack %s:\n%s", msg, logs)
		}
	}
}

// shutdownTimers is Options.After for the shutdown tests: each timer the
// shutdown starts is reported on asked and fires only when the test says,
// so no assertion depends on how fast the machine is.
type shutdownTimers struct {
	asked chan time.Duration
	fire  map[time.Duration]chan time.Time
}

func newShutdownTimers(ds ...time.Duration) *shutdownTimers {
	st := &shutdownTimers{asked: make(chan time.Duration, 4), fire: map[time.Duration]chan time.Time{}}
	for _, d := range ds {
		st.fire[d] = make(chan time.Time, 1)
	}
	return st
}

func (st *shutdownTimers) After(d time.Duration) <-chan time.Time {
	st.asked <- d
	return st.fire[d] // nil, never firing, for a timer the test did not expect
}

// started waits until the shutdown starts a timer and returns its duration.
func (st *shutdownTimers) started(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-st.asked:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("the shutdown started no timer")
		return 0
	}
}

// returned reports whether Run has returned, without waiting.
func (ts *testServer) returned() bool {
	select {
	case err := <-ts.done:
		ts.done <- err
		return true
	default:
		return false
	}
}

// TestShutdownReportsNotServingBeforeClosing checks the shutdown order:
// NOT_SERVING (gRPC health and /readyz) while the listeners still accept
// connections, for the drain delay; then the listeners close.
func TestShutdownReportsNotServingBeforeClosing(t *testing.T) {
	cfg := testConfig(t)
	const drain = 5 * time.Second
	cfg.Shutdown.DrainDelay = drain
	cfg.Shutdown.Timeout = time.Minute
	timers := newShutdownTimers(drain)
	ts := startServerWith(t, cfg, Options{After: timers.After})

	conn := dialGRPC(t, ts.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{Service: "envoy.service.ext_proc.v3.ExternalProcessor"})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first health update: %v, %v; want SERVING", resp, err)
	}

	ts.cancel()
	resp, err := watch.Recv()
	if err != nil || resp.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health update after cancel: %v, %v; want NOT_SERVING", resp, err)
	}
	if d := timers.started(t); d != drain {
		t.Fatalf("the shutdown's first timer is %s, want the drain delay %s", d, drain)
	}

	// Still draining (the drain timer has not fired): a new connection is
	// accepted and told NOT_SERVING, and the admin API says not ready.
	fresh := dialGRPC(t, ts.GRPCAddr())
	check, err := healthpb.NewHealthClient(fresh).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health check on a new connection during the drain delay: %v", err)
	}
	if check.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health check during the drain delay = %s, want NOT_SERVING", check.Status)
	}
	r, err := http.Get(ts.base + "/readyz")
	if err != nil {
		t.Fatalf("readyz during the drain delay: %v", err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz during the drain delay = %d, want 503", r.StatusCode)
	}
	if ts.returned() {
		t.Fatal("Run returned before the drain delay ended")
	}

	// The drain ends. The open Watch stream ends too, instead of holding
	// GracefulStop until the shutdown timeout (whose timer never fires here:
	// Run would not return).
	timers.fire[drain] <- time.Time{}
	ts.stop(t)
	if _, err := watch.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("Watch after the shutdown: %v, want UNAVAILABLE", err)
	}
	if strings.Contains(ts.logs.String(), "streams still open") {
		t.Error("the shutdown timed out")
	}
	if _, err := net.DialTimeout("tcp", ts.GRPCAddr(), time.Second); err == nil {
		t.Error("the gRPC listener is still open after Run returned")
	}
}

// TestShutdownBoundedWithOpenStream leaves an ext_proc stream open and silent:
// GracefulStop would wait for it forever, so Run must give up after the
// shutdown timeout and Stop.
func TestShutdownBoundedWithOpenStream(t *testing.T) {
	cfg := testConfig(t)
	const timeout = 30 * time.Second
	cfg.Shutdown.Timeout = timeout
	timers := newShutdownTimers(timeout)
	ts := startServerWith(t, cfg, Options{After: timers.After})

	conn := dialGRPC(t, ts.GRPCAddr())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A round trip first, so that the connection is up when the stream opens.
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	stream, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The stream is open on the server before the shutdown starts: it has
	// answered the request headers and waits for the rest of the call.
	hdrs := &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":method", RawValue: []byte("GET")}, {Key: ":path", RawValue: []byte("/x")}, {Key: ":authority", RawValue: []byte("a.example")},
	}}
	if err := stream.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: hdrs}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("reply to the request headers: %v", err)
	}

	ts.cancel()
	if d := timers.started(t); d != timeout {
		t.Fatalf("the shutdown's timer is %s, want the shutdown timeout %s", d, timeout)
	}
	if ts.returned() {
		t.Fatal("Run returned before the shutdown timeout: the open stream was not waited for")
	}
	if strings.Contains(ts.logs.String(), "streams still open") {
		t.Fatal("the warning came before the shutdown timeout")
	}
	timers.fire[timeout] <- time.Time{}
	ts.stop(t)
	if !strings.Contains(ts.logs.String(), "streams still open after the shutdown timeout") {
		t.Errorf("no warning about the streams closed at the timeout:\n%s", ts.logs.String())
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable && status.Code(err) != codes.Canceled {
		t.Errorf("Recv on the stream closed by Stop: %v, want Unavailable", err)
	}
}

func TestFingerprintKeyKeptInDataDir(t *testing.T) {
	const token = "eyJhbGciOiJIUzI1NiJ9.same-token-on-both-servers"
	dataDir := t.TempDir()
	post := func(ts *testServer) string {
		code, body := adminDo(t, ts.base, http.MethodPost, "/v1/blocklist", `{"kind":"token","value":"`+token+`"}`, "")
		if code != http.StatusCreated {
			t.Fatalf("POST: %d %s", code, body)
		}
		var e adminapi.Entry
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			t.Fatal(err)
		}
		return e.Value
	}

	cfg := testConfig(t)
	cfg.DataDir = filepath.Join(dataDir, "nested", "state") // created on first start
	first := startServer(t, cfg)
	fp1 := post(first)
	first.stop(t)

	path := filepath.Join(cfg.DataDir, "fingerprint.key")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no key file after the first start: %v", err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %o, want 600", perm)
	}
	keyHex, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(cfg.DataDir, "*.tmp"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left in the data dir: %v", leftovers)
	}

	second := startServer(t, cfg)
	fp2 := post(second)
	second.stop(t)
	if fp1 != fp2 {
		t.Errorf("the same token has fingerprint %s on the first server and %s on the second", fp1, fp2)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, keyHex) {
		t.Error("the key file was rewritten on restart")
	}

	// The key in the file is the one used.
	key, err := hex.DecodeString(strings.TrimSpace(string(keyHex)))
	if err != nil {
		t.Fatal(err)
	}
	if want := mustFingerprinter(t, key).Fingerprint(token); fp1 != want {
		t.Errorf("fingerprint %s, want %s from the key file", fp1, want)
	}
}

func TestFingerprintKeyFromConfigWins(t *testing.T) {
	const token = "config-key-token"
	key := bytes.Repeat([]byte{0xab}, 32)
	cfg := testConfig(t)
	cfg.FingerprintKey = hex.EncodeToString(key)
	// A key file with another key is ignored.
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "fingerprint.key"), []byte(hex.EncodeToString(bytes.Repeat([]byte{1}, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, cfg)
	code, body := adminDo(t, ts.base, http.MethodPost, "/v1/allowlist", `{"kind":"api_key","value":"`+token+`"}`, "")
	if code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, body)
	}
	if want := mustFingerprinter(t, key).Fingerprint(token); !strings.Contains(body, want) {
		t.Errorf("response %s does not hold the fingerprint under the configured key %s", body, want)
	}
}

func TestFingerprintKeyErrors(t *testing.T) {
	for name, content := range map[string]string{
		"not hex":   "this is not a key\n",
		"too short": hex.EncodeToString(make([]byte, 16)) + "\n",
		"empty":     "",
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t)
			path := filepath.Join(cfg.DataDir, "fingerprint.key")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := New(cfg, zerolog.Nop(), Options{})
			if err == nil {
				t.Fatal("New accepted a corrupt key file")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a hex key of at least 32 bytes") {
				t.Errorf("error %q does not name the file and the problem", err)
			}
			if got, _ := os.ReadFile(path); string(got) != content {
				t.Error("the corrupt key file was overwritten")
			}
		})
	}

	t.Run("data dir is a file", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.DataDir = filepath.Join(t.TempDir(), "not-a-dir")
		if err := os.WriteFile(cfg.DataDir, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := New(cfg, zerolog.Nop(), Options{}); err == nil || !strings.Contains(err.Error(), "data dir") {
			t.Errorf("New with a file as data dir: %v", err)
		}
	})
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.Defaults.Mode = "enforce"
	if _, err := New(cfg, zerolog.Nop(), Options{}); err == nil || !strings.Contains(err.Error(), "defaults.mode") {
		t.Errorf("New with an invalid config: %v", err)
	}
}

func TestNewReportsBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcAddr := free.Addr().String()
	free.Close()
	cfg := testConfig(t)
	cfg.GRPCAddr = grpcAddr
	cfg.AdminAddr = busy.Addr().String()
	_, err = New(cfg, zerolog.Nop(), Options{})
	if err == nil || !strings.Contains(err.Error(), "listen admin on "+busy.Addr().String()) {
		t.Fatalf("New on a busy admin port: %v", err)
	}
	// The gRPC listener bound before the failure was released.
	again, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		t.Fatalf("the gRPC port stays bound after New failed: %v", err)
	}
	again.Close()
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.GRPCAddr = busy.Addr().String()
	if _, err := New(cfg, zerolog.Nop(), Options{}); err == nil || !strings.Contains(err.Error(), "listen gRPC on") {
		t.Fatalf("New on a busy gRPC port: %v", err)
	}
}

// panicService is a gRPC service whose methods panic.
var panicService = grpc.ServiceDesc{
	ServiceName: "vigil.test.Panicker",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Unary",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(context.Context, any) (any, error) { panic("unary boom") }
			if interceptor == nil {
				return h(ctx, in)
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/vigil.test.Panicker/Unary"}, h)
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Stream",
		ServerStreams: true,
		ClientStreams: true,
		Handler:       func(any, grpc.ServerStream) error { panic("stream boom") },
	}},
}

// TestRecoveryInterceptor registers a panicking service on the server that
// newGRPCServer builds: a panic must become INTERNAL and be counted.
func TestRecoveryInterceptor(t *testing.T) {
	logs := testlog.New(t)
	allow, block := detect.NewLists()
	q := detect.NewQueue(8)
	s := &Server{cfg: config.Default(), log: zerolog.New(logs), now: time.Now, queue: q, metrics: newMetrics(q, allow, block)}
	g := s.newGRPCServer(nil)
	g.RegisterService(&panicService, struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	defer func() {
		g.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	conn := dialGRPC(t, lis.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = conn.Invoke(ctx, "/vigil.test.Panicker/Unary", &emptypb.Empty{}, &emptypb.Empty{})
	if status.Code(err) != codes.Internal {
		t.Errorf("unary panic: %v, want INTERNAL", err)
	}
	if strings.Contains(err.Error(), "boom") {
		t.Errorf("the panic value reaches the client: %v", err)
	}
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/vigil.test.Panicker/Stream")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.RecvMsg(&emptypb.Empty{}); status.Code(err) != codes.Internal {
		t.Errorf("stream panic: %v, want INTERNAL", err)
	}

	var m dto.Metric
	if err := s.metrics.panics.Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 2 {
		t.Errorf("vigil_panics_total = %v, want 2", got)
	}
	if !strings.Contains(logs.String(), "unary boom") || !strings.Contains(logs.String(), "stream boom") {
		t.Errorf("panics not logged:\n%s", logs.String())
	}

	// The server still serves after a panic.
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health after panics: %v", err)
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	cfg := config.Default()
	cfg.LogLevel = "warn"
	log := NewLogger(&buf, cfg)
	log.Info().Msg("hidden")
	log.Warn().Msg("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), `"message":"shown"`) {
		t.Errorf("json logger at warn wrote %q", buf.String())
	}
	buf.Reset()
	cfg.LogFormat = "console"
	console := NewLogger(&buf, cfg)
	console.Error().Msg("console line")
	if out := buf.String(); !strings.Contains(out, "console line") || strings.HasPrefix(out, "{") {
		t.Errorf("console logger wrote %q", out)
	}
}

func mustFingerprinter(t *testing.T, key []byte) *detect.Fingerprinter {
	t.Helper()
	fp, err := detect.NewFingerprinter(key)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// adminDo sends one admin request and returns the status and body.
func adminDo(t *testing.T, base, method, path, body, token string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
