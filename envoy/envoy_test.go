package envoy

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/vigil-project/vigil/detect"
)

// newTestConfig wires the services to real detect parts.
func newTestConfig(tb testing.TB, mode detect.Mode) (Config, *detect.List) {
	tb.Helper()
	fp, err := detect.NewFingerprinter(make([]byte, 32))
	if err != nil {
		tb.Fatal(err)
	}
	x, err := detect.NewExtractor(fp, 1)
	if err != nil {
		tb.Fatal(err)
	}
	allow, block := detect.NewLists()
	enf, err := detect.NewEnforcer(allow, block, 10000)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { x.Close(); enf.Close() })
	api := &detect.API{Name: "shop", BasePath: "/shop", Mode: mode, MaxBodyBytes: 1 << 20, MaxJSONElements: 100,
		Identities: detect.IdentitySources{}.WithDefaults()}
	fallback := &detect.API{BasePath: "/", Mode: mode, Identities: detect.IdentitySources{}.WithDefaults()}
	var cat atomic.Pointer[detect.Catalog]
	cat.Store(detect.NewCatalog([]*detect.API{api}, fallback))
	return Config{Log: zerolog.Nop(), Catalog: &cat, Extractor: x, Enforcer: enf, Queue: detect.NewQueue(1 << 16)}, block
}

// memStream is an in-memory ext_proc stream: the handler's own cost, with
// no transport.
type memStream struct {
	ctx  context.Context
	in   []*extprocv3.ProcessingRequest
	i    int
	sent int
	last *extprocv3.ProcessingResponse
}

func (m *memStream) Recv() (*extprocv3.ProcessingRequest, error) {
	if m.i == len(m.in) {
		return nil, io.EOF
	}
	m.i++
	return m.in[m.i-1], nil
}
func (m *memStream) Send(r *extprocv3.ProcessingResponse) error {
	m.sent++
	m.last = r
	return nil
}
func (m *memStream) Context() context.Context     { return m.ctx }
func (m *memStream) SetHeader(metadata.MD) error  { return nil }
func (m *memStream) SendHeader(metadata.MD) error { return nil }
func (m *memStream) SetTrailer(metadata.MD)       {}
func (m *memStream) SendMsg(any) error            { return nil }
func (m *memStream) RecvMsg(any) error            { return nil }

func headers(kv ...string) *extprocv3.ProcessingRequest {
	var hs []*corev3.HeaderValue
	for i := 0; i < len(kv); i += 2 {
		hs = append(hs, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: hs}, EndOfStream: true}}}
}

var responseHeaders = &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
	ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":status", RawValue: []byte("200")}, {Key: "content-length", RawValue: []byte("42")}}}}}}

// clients builds n distinct clients' request headers.
func clients(n int) []*extprocv3.ProcessingRequest {
	out := make([]*extprocv3.ProcessingRequest, n)
	for i := range out {
		out[i] = headers(":method", "GET", ":path", fmt.Sprintf("/shop/order/%d", i), ":authority", "shop.example.com",
			"x-forwarded-for", fmt.Sprintf("10.0.%d.%d", i>>8&255, i&255), "authorization", fmt.Sprintf("Bearer tok-%d", i),
			"x-request-id", fmt.Sprintf("r-%d", i), "user-agent", "test")
	}
	return out
}

func TestExtProcOneReplyPerMessageAndOneRecord(t *testing.T) {
	cfg, block := newTestConfig(t, detect.ModeBlock)
	s := NewExtProc(cfg)
	m := &memStream{ctx: context.Background(), in: []*extprocv3.ProcessingRequest{clients(1)[0], responseHeaders}}
	if err := s.Process(m); err != nil {
		t.Fatal(err)
	}
	if m.sent != 2 || m.last.GetResponseHeaders() == nil {
		t.Fatalf("sent %d replies, last %v", m.sent, m.last)
	}
	if cfg.Queue.Len() != 1 {
		t.Fatalf("%d records queued, want 1", cfg.Queue.Len())
	}
	block.Put(detect.Entry{Kind: detect.KindIP, Value: "10.0.0.0"})
	m = &memStream{ctx: context.Background(), in: []*extprocv3.ProcessingRequest{clients(1)[0], responseHeaders}}
	if err := s.Process(m); err != nil {
		t.Fatal(err)
	}
	if m.sent != 1 || m.last.GetImmediateResponse().GetStatus().GetCode() != 403 {
		t.Fatalf("blocked: sent %d, last %v", m.sent, m.last)
	}
}

// TestHotPathAllocations bounds the heap allocations of one decision in
// each service, transport excluded: the budget is 10 per request.
func TestHotPathAllocations(t *testing.T) {
	cfg, block := newTestConfig(t, detect.ModeBlock)
	// The first 100 clients of each service are blocked: the budget covers
	// both verdicts, and each call must get the verdict its client is owed.
	for i := range 100 {
		block.Put(detect.Entry{Kind: detect.KindIP, Value: fmt.Sprintf("10.0.0.%d", i)})
		block.Put(detect.Entry{Kind: detect.KindIP, Value: fmt.Sprintf("10.1.0.%d", i)})
	}
	blocked := func(client int) bool { return client < 100 }
	// 10,000 distinct clients: most lookups miss the verdict cache, the
	// usual case rather than the best one.
	cs := clients(10000)
	ep := NewExtProc(cfg)
	m := &memStream{ctx: context.Background(), in: []*extprocv3.ProcessingRequest{nil, responseHeaders}}
	i, wrong, denied := 0, 0, 0
	procAllocs := testing.AllocsPerRun(5000, func() {
		c := i % len(cs)
		m.in[0], m.i, m.sent = cs[c], 0, 0
		i++
		err := ep.Process(m)
		switch {
		case err != nil:
			wrong++
		case blocked(c):
			denied++
			if m.sent != 1 || m.last.GetImmediateResponse().GetStatus().GetCode() != typev3.StatusCode_Forbidden {
				wrong++
			}
		case m.sent != 2 || m.last.GetResponseHeaders() == nil:
			wrong++
		}
	})
	if wrong > 0 || denied != 100 {
		t.Errorf("ext_proc: %d of %d calls got the wrong verdict, %d denied; want 0 wrong, 100 denied", wrong, i, denied)
	}
	az := NewExtAuthz(cfg)
	reqs := make([]*authv3.CheckRequest, 10000)
	for j := range reqs {
		reqs[j] = &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/shop/order/1", Host: "shop.example.com",
			Headers: map[string]string{"x-forwarded-for": fmt.Sprintf("10.1.%d.%d", j>>8, j&255), "authorization": fmt.Sprintf("Bearer tok-%d", j), "x-request-id": "r-1"},
		}}}}
	}
	i, wrong, denied = 0, 0, 0
	authzAllocs := testing.AllocsPerRun(5000, func() {
		c := i % len(reqs)
		i++
		resp, err := az.Check(context.Background(), reqs[c])
		switch {
		case err != nil:
			wrong++
		case blocked(c):
			denied++
			if codes.Code(resp.GetStatus().GetCode()) != codes.PermissionDenied || resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_Forbidden {
				wrong++
			}
		case codes.Code(resp.GetStatus().GetCode()) != codes.OK || resp.GetOkResponse() == nil:
			wrong++
		}
	})
	if wrong > 0 || denied != 100 {
		t.Errorf("ext_authz: %d of %d calls got the wrong verdict, %d denied; want 0 wrong, 100 denied", wrong, i, denied)
	}
	t.Logf("allocations per request: ext_proc %.1f, ext_authz %.1f", procAllocs, authzAllocs)
	if procAllocs > 10 || authzAllocs > 10 {
		t.Fatalf("allocations per request: ext_proc %.1f, ext_authz %.1f; budget 10", procAllocs, authzAllocs)
	}
}

func BenchmarkExtProcHandler(b *testing.B) {
	cfg, block := newTestConfig(b, detect.ModeBlock)
	for i := range 1000 {
		block.Put(detect.Entry{Kind: detect.KindIP, Value: fmt.Sprintf("192.0.2.%d", i%250)})
	}
	go detect.NewPipeline(cfg.Queue, time.Second, time.Now).Run(b.Context())
	cs := clients(benchClients)
	ep := NewExtProc(cfg)
	b.ReportAllocs()
	m := &memStream{ctx: context.Background(), in: make([]*extprocv3.ProcessingRequest, 2)}
	m.in[1] = responseHeaders
	for i := 0; b.Loop(); i++ {
		m.in[0], m.i = cs[i%len(cs)], 0
		ep.Process(m)
	}
}

var benchClients = 10000

// BenchmarkExtAuthzHandler runs ext_authz Checks of 10,000 clients with a
// block list of single addresses, and again with 1,000 CIDR ranges (IPv4
// and IPv6, 17 prefix lengths) that hold none of the clients.
func BenchmarkExtAuthzHandler(b *testing.B) {
	for _, ranges := range []int{0, 1000} {
		b.Run(fmt.Sprintf("ranges=%d", ranges), func(b *testing.B) {
			cfg, block := newTestConfig(b, detect.ModeBlock)
			for i := range 1000 {
				block.Put(detect.Entry{Kind: detect.KindIP, Value: fmt.Sprintf("192.0.2.%d", i%250)})
			}
			for i := range ranges {
				v := fmt.Sprintf("%d.%d.%d.0/%d", 11+i%200, i%256, i/256, 12+i%9)
				if i%2 == 1 {
					v = fmt.Sprintf("2001:db8:%x::/%d", i, 40+i%8)
				}
				v, err := detect.NormalizeIP(v)
				if err != nil {
					b.Fatal(err)
				}
				block.Put(detect.Entry{Kind: detect.KindIP, Value: v})
			}
			go detect.NewPipeline(cfg.Queue, time.Second, time.Now).Run(b.Context())
			reqs := make([]*authv3.CheckRequest, benchClients)
			for i := range reqs {
				reqs[i] = &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
					Method: "GET", Path: fmt.Sprintf("/shop/order/%d", i), Host: "shop.example.com",
					Headers: map[string]string{"x-forwarded-for": fmt.Sprintf("10.0.%d.%d", i>>8&255, i&255), "authorization": fmt.Sprintf("Bearer tok-%d", i), "x-request-id": fmt.Sprintf("r-%d", i)},
				}}}}
			}
			az := NewExtAuthz(cfg)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				az.Check(context.Background(), reqs[i%len(reqs)])
			}
		})
	}
}
