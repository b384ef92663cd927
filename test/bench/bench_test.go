// Package bench measures Vigil's ext_proc and ext_authz services against a
// null server (one that answers every message at once) in the same run, over
// real gRPC on loopback, one new stream per HTTP request as Envoy does, with
// 10,000 distinct client identities.
//
//	go test ./test/bench -run '^$' -bench VersusNull -benchtime 1x
//
// reports throughput ratios (vigil / null), the extra heap allocations per
// request beyond the null server's (gRPC's own), and the p99 of the decision
// time measured inside the server. The Benchmark{ExtProc,ExtAuthz}
// sub-benchmarks are the same loads in the usual form, for benchstat.
package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vigil-project/vigil/server"
	"github.com/vigil-project/vigil/test/vigiltest"
)

const identities = 10000

// load is one prepared workload: the messages of 10,000 clients, built once
// so the client's own work is the same for both servers.
type load struct {
	headers  []*extprocv3.ProcessingRequest
	response *extprocv3.ProcessingRequest
	checks   []*authv3.CheckRequest
}

func newLoad() *load {
	l := &load{}
	for i := range identities {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		token := fmt.Sprintf("tok-%08d-%x", i, i*7919)
		path := fmt.Sprintf("/shop/order/%d", 1000+i%500)
		hs := [][2]string{
			{":method", "GET"}, {":path", path}, {":authority", "api.example.com"}, {":scheme", "https"},
			{"user-agent", "bench/1.0"}, {"accept", "application/json"},
			{"authorization", "Bearer " + token}, {"x-forwarded-for", ip},
			{"x-request-id", fmt.Sprintf("req-%d", i)}, {"x-envoy-external-address", ip},
		}
		var hv []*corev3.HeaderValue
		m := map[string]string{}
		for _, h := range hs {
			hv = append(hv, &corev3.HeaderValue{Key: h[0], RawValue: []byte(h[1])})
			m[h[0]] = h[1]
		}
		l.headers = append(l.headers, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
			RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: hv}, EndOfStream: true},
		}})
		l.checks = append(l.checks, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}},
			}}},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Id: fmt.Sprintf("req-%d", i), Method: "GET", Path: path, Host: "api.example.com", Scheme: "https",
				Protocol: "HTTP/1.1", Size: -1, Headers: m,
			}},
		}})
	}
	l.response = &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":status", RawValue: []byte("200")}, {Key: "content-type", RawValue: []byte("application/json")},
			{Key: "content-length", RawValue: []byte("512")},
		}}, EndOfStream: true},
	}}
	return l
}

// exchange is one HTTP request as Envoy sends it over ext_proc: a new
// stream, request headers, response headers, close.
func exchange(ctx context.Context, c extprocv3.ExternalProcessorClient, req, resp *extprocv3.ProcessingRequest) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.Process(ctx)
	if err != nil {
		return err
	}
	if err := st.Send(req); err != nil {
		return err
	}
	r, err := st.Recv()
	if err != nil {
		return err
	}
	if r.GetImmediateResponse() != nil {
		return fmt.Errorf("unexpected immediate response")
	}
	if err := st.Send(resp); err != nil {
		return err
	}
	if _, err := st.Recv(); err != nil {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	if _, err := st.Recv(); err != io.EOF {
		return fmt.Errorf("want EOF at the end of the stream, got %v", err)
	}
	return nil
}

// nullServer answers every message at once, with the same shared replies a
// minimal server would use.
type nullServer struct {
	extprocv3.UnimplementedExternalProcessorServer
	authv3.UnimplementedAuthorizationServer
}

var (
	nullReqHeaders  = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
	nullRespHeaders = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
	nullOther       = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
)

func (nullServer) Process(s extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		m, err := s.Recv()
		if err != nil {
			return nil
		}
		r := nullOther
		switch m.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			r = nullReqHeaders
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			r = nullRespHeaders
		}
		if err := s.Send(r); err != nil {
			return nil
		}
	}
}

// nullAllow has the shape of Vigil's allow (OK plus a decision header), so
// the client decodes the same answer from both servers and the difference
// in allocations is the servers' own.
var nullAllow = &authv3.CheckResponse{
	Status: &rpcstatus.Status{},
	HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
		Headers: []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: "x-vigil-decision-id", Value: "000000000000000000000000"},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}},
	}},
}

func (nullServer) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return nullAllow, nil
}

// target is a running server under test.
type target struct {
	addr      string
	adminAddr string // vigil only
	stop      func()
}

func startNull(tb testing.TB) *target {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	// The same server options as Vigil's, from the same configuration, as
	// performance-floor.md asks: null and detector with the same gRPC
	// options.
	s := grpc.NewServer(server.GRPCOptions(vigiltest.Load(tb, tb.TempDir(), benchConfig), func(any) {})...)
	extprocv3.RegisterExternalProcessorServer(s, nullServer{})
	authv3.RegisterAuthorizationServer(s, nullServer{})
	go s.Serve(l)
	return &target{addr: l.Addr().String(), stop: s.Stop}
}

// benchConfig is Vigil's configuration on top of the embedded defaults;
// test/vigiltest adds the loopback ports, the data directory and the
// shutdown.
const benchConfig = `
trusted_hops: 1
log_level: warn
defaults:
  mode: block
  max_body_bytes: 1048576
  max_json_elements: 1000
apis:
  - name: shop
    hosts: [api.example.com]
    base_path: /shop
    mode: block
    max_body_bytes: 1048576
`

func startVigil(tb testing.TB) *target {
	// No log writer, as before the harness: the log is not what is measured.
	nop := zerolog.Nop()
	v := vigiltest.StartWith(tb, benchConfig, vigiltest.Options{Logger: &nop})
	t := &target{addr: v.GRPCAddr(), adminAddr: v.AdminAddr(), stop: v.Stop}
	// 1,000 block list entries for addresses the load never uses, so every
	// request goes through the lists and the verdict cache.
	for i := range 1000 {
		body := fmt.Sprintf(`{"kind":"ip","value":"192.0.2.%d","ttl":"1h","reason":"bench"}`, i%250)
		if i >= 250 {
			body = fmt.Sprintf(`{"kind":"token","value":"blocked-%d","ttl":"1h","reason":"bench"}`, i)
		}
		v.MustDo("POST", "/v1/blocklist", body, http.StatusCreated)
	}
	return t
}

func dial(tb testing.TB, addr string) *grpc.ClientConn {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	return cc
}

// result is one measured run.
type result struct {
	rps       float64
	allocsReq float64
}

// client makes request i of the load through one of the services.
type client struct {
	l     *load
	ep    extprocv3.ExternalProcessorClient
	az    authv3.AuthorizationClient
	authz bool
}

func newClient(l *load, cc *grpc.ClientConn, authz bool) *client {
	return &client{l: l, ep: extprocv3.NewExternalProcessorClient(cc), az: authv3.NewAuthorizationClient(cc), authz: authz}
}

// do is one HTTP request: a Check for ext_authz, an exchange for ext_proc.
func (c *client) do(ctx context.Context, i int) error {
	i %= identities
	if !c.authz {
		return exchange(ctx, c.ep, c.l.headers[i], c.l.response)
	}
	r, err := c.az.Check(ctx, c.l.checks[i])
	if err == nil && r.GetStatus().GetCode() != 0 {
		err = fmt.Errorf("denied: %v", r.GetStatus())
	}
	return err
}

// run drives the service at addr with c concurrent clients for d after a
// warm-up, and measures requests per second and heap allocations per
// request (client and server share the process; the difference between two
// servers is the servers' own).
func run(tb testing.TB, l *load, addr string, authz bool, c int, warm, d time.Duration) result {
	cc := dial(tb, addr)
	defer cc.Close()
	cl := newClient(l, cc, authz)
	var (
		count   atomic.Int64
		measure atomic.Bool
		stop    atomic.Bool
		wg      sync.WaitGroup
		errOnce sync.Once
		runErr  error
	)
	ctx := context.Background()
	for w := range c {
		wg.Go(func() {
			for i := w; !stop.Load(); i += c {
				if err := cl.do(ctx, i); err != nil {
					errOnce.Do(func() { runErr = err })
					stop.Store(true)
					return
				}
				if measure.Load() {
					count.Add(1)
				}
			}
		})
	}
	deadline := time.Now().Add(warm)
	for time.Now().Before(deadline) && !stop.Load() {
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	measure.Store(true)
	time.Sleep(d)
	measure.Store(false)
	elapsed := time.Since(start)
	n := count.Load()
	runtime.ReadMemStats(&after)
	stop.Store(true)
	wg.Wait()
	if runErr != nil {
		tb.Fatal(runErr)
	}
	return result{rps: float64(n) / elapsed.Seconds(), allocsReq: float64(after.Mallocs-before.Mallocs) / float64(n)}
}

// decisionQuantile reads the vigil_decision_seconds histogram of a service
// from /metrics and returns its q-quantile, interpolated within the bucket.
func decisionQuantile(tb testing.TB, adminAddr, service string, q float64) time.Duration {
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	f := fams["vigil_decision_seconds"]
	if f == nil {
		tb.Fatal("no vigil_decision_seconds in /metrics")
	}
	for _, m := range f.GetMetric() {
		if label(m, "service") != service {
			continue
		}
		h := m.GetHistogram()
		total := float64(h.GetSampleCount())
		if total == 0 {
			return 0
		}
		want := q * total
		prevBound, prevCount := 0.0, 0.0
		for _, b := range h.GetBucket() {
			c := float64(b.GetCumulativeCount())
			if c >= want {
				frac := (want - prevCount) / math.Max(c-prevCount, 1)
				return time.Duration((prevBound + frac*(b.GetUpperBound()-prevBound)) * float64(time.Second))
			}
			prevBound, prevCount = b.GetUpperBound(), c
		}
		return time.Duration(prevBound * float64(time.Second))
	}
	tb.Fatalf("no histogram for service %q", service)
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkVersusNull runs null and vigil interleaved (fresh servers each
// round) for ext_proc and ext_authz and reports, as medians over the rounds:
// throughput ratios vigil/null, extra allocations per request, and the p99
// decision time inside vigil. Run it with -benchtime 1x; VIGIL_BENCH_ROUNDS
// (default 3) and VIGIL_BENCH_SECONDS (default 3) set its length.
func BenchmarkVersusNull(b *testing.B) {
	rounds, secs := envInt("VIGIL_BENCH_ROUNDS", 3), envInt("VIGIL_BENCH_SECONDS", 3)
	// Longer than the pipeline's join window (5 s), whose first window
	// joins calls whatever the deployment: Vigil is measured in its steady
	// state. Both servers get the same warm-up.
	const warm = 6 * time.Second
	l := newLoad()
	for _, svc := range []struct {
		name  string
		authz bool
	}{{"ext_proc", false}, {"ext_authz", true}} {
		var ratios, extra, nullRPS, vigilRPS, p99s, p50s []float64
		for range rounds {
			n := startNull(b)
			rn := run(b, l, n.addr, svc.authz, 64, warm, time.Duration(secs)*time.Second)
			n.stop()
			v := startVigil(b)
			rv := run(b, l, v.addr, svc.authz, 64, warm, time.Duration(secs)*time.Second)
			p99s = append(p99s, float64(decisionQuantile(b, v.adminAddr, svc.name, 0.99))/1e3)
			p50s = append(p50s, float64(decisionQuantile(b, v.adminAddr, svc.name, 0.50))/1e3)
			v.stop()
			ratios = append(ratios, rv.rps/rn.rps)
			extra = append(extra, rv.allocsReq-rn.allocsReq)
			nullRPS = append(nullRPS, rn.rps)
			vigilRPS = append(vigilRPS, rv.rps)
		}
		b.Logf("%s: null %.0f req/s, vigil %.0f req/s, ratio %.3f, extra allocs/req %.1f, decision p50 %.1fµs p99 %.1fµs (medians of %d rounds of %ds)",
			svc.name, median(nullRPS), median(vigilRPS), median(ratios), median(extra), median(p50s), median(p99s), rounds, secs)
		b.ReportMetric(median(ratios), svc.name+"_x_null")
		b.ReportMetric(median(extra), svc.name+"_extra_allocs/req")
		b.ReportMetric(median(p99s), svc.name+"_p99_decision_µs")
	}
}

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(name), &n); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkExtProc is the ext_proc load in the usual form: one op is one
// HTTP request (stream, request headers, response headers, close).
func BenchmarkExtProc(b *testing.B) { benchService(b, false) }

// BenchmarkExtAuthz is the ext_authz load in the usual form.
func BenchmarkExtAuthz(b *testing.B) { benchService(b, true) }

func benchService(b *testing.B, authz bool) {
	l := newLoad()
	for _, s := range []struct {
		name  string
		start func(testing.TB) *target
	}{{"null", startNull}, {"vigil", startVigil}} {
		b.Run(s.name, func(b *testing.B) {
			t := s.start(b)
			defer t.stop()
			cc := dial(b, t.addr)
			defer cc.Close()
			cl := newClient(l, cc, authz)
			var next atomic.Int64
			b.SetParallelism(32)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := cl.do(context.Background(), int(next.Add(1))); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
