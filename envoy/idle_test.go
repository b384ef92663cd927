package envoy

import (
	"context"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"
	"weak"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"

	"github.com/vigil-project/vigil/detect"
)

// idleStream is an ext_proc stream that, after its first message, waits
// (as Envoy does while the upstream answers) until release is closed, then
// sends the response headers and ends.
type idleStream struct {
	first   *extprocv3.ProcessingRequest
	release chan struct{}
	sent    chan *extprocv3.ProcessingResponse
	n       int
}

func (s *idleStream) Recv() (*extprocv3.ProcessingRequest, error) {
	s.n++
	switch s.n {
	case 1:
		m := s.first
		s.first = nil
		return m, nil
	case 2:
		<-s.release
		return responseHeaders, nil
	}
	return nil, io.EOF
}
func (s *idleStream) Send(r *extprocv3.ProcessingResponse) error { s.sent <- r; return nil }
func (s *idleStream) Context() context.Context                   { return context.Background() }
func (s *idleStream) SetHeader(metadata.MD) error                { return nil }
func (s *idleStream) SendHeader(metadata.MD) error               { return nil }
func (s *idleStream) SetTrailer(metadata.MD)                     {}
func (s *idleStream) SendMsg(any) error                          { return nil }
func (s *idleStream) RecvMsg(any) error                          { return nil }

type sinkFunc func(*detect.Transaction)

func (f sinkFunc) Consume(t *detect.Transaction) { f(t) }

// TestExtProcIdleStreamHoldsNoMessage: a stream waiting for the upstream's
// response after its request headers were decided no longer holds Envoy's
// request message (every header, ~2 KB), only its record; the record
// handed on at the end still has the request's facts.
func TestExtProcIdleStreamHoldsNoMessage(t *testing.T) {
	cfg, _ := newTestConfig(t, detect.ModeBlock)
	records := runPipeline(cfg.Queue)
	msg := headers(":method", "GET", ":path", "/shop/order/7?x=1", ":authority", "shop.example.com",
		"x-forwarded-for", "10.9.8.7", "authorization", "Bearer tok-7", "x-request-id", "r-idle", "user-agent", "idle-test")
	// Its header values: the stream's strings were views of their bytes.
	held := weak.Make(msg.GetRequestHeaders().GetHeaders().GetHeaders()[3])
	s := &idleStream{first: msg, release: make(chan struct{}), sent: make(chan *extprocv3.ProcessingResponse, 2)}
	msg = nil
	errc := make(chan error, 1)
	go func() { errc <- NewExtProc(cfg).Process(s) }()
	if r := <-s.sent; r.GetRequestHeaders() == nil {
		t.Fatalf("first reply %v, want request headers to continue", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for held.Value() != nil && time.Now().Before(deadline) {
		runtime.GC()
	}
	if held.Value() != nil {
		t.Error("the idle stream still holds the request headers message")
	}
	close(s.release)
	<-s.sent
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	recs := records()
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	r := recs[0]
	if r.Host != "shop.example.com" || r.Path != "/shop/order/7" || r.Method != "GET" || r.UserAgent != "idle-test" ||
		r.RequestID != "r-idle" || r.Identities[detect.KindIP] != "10.9.8.7" || r.Identities[detect.KindToken] == "" ||
		r.Status != 200 || !r.Complete || !r.HasRequest {
		t.Errorf("record %+v", r)
	}
}

// TestExtAuthzRecordOwnsItsDecisionID: an allowed request's decision ID is
// written into the reply's memory (no allocation of its own); the record
// handed on carries the same ID in memory of its own, so a record kept for
// minutes does not keep the reply alive.
func TestExtAuthzRecordOwnsItsDecisionID(t *testing.T) {
	cfg, _ := newTestConfig(t, detect.ModeBlock)
	records := runPipeline(cfg.Queue)
	resp, err := NewExtAuthz(cfg).Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/shop/order/1", Host: "shop.example.com",
			Headers: map[string]string{"x-forwarded-for": "10.1.2.3", "x-request-id": "r-authz"},
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetOkResponse().GetHeaders()[0].GetHeader().GetValue()
	recs := records()
	if len(recs) != 1 || len(id) != detect.DecisionIDLen || recs[0].DecisionID != id {
		t.Fatalf("decision header %q, records %d (first ID %q); want one record with the header's ID", id, len(recs), recs[0].DecisionID)
	}
	if unsafe.StringData(recs[0].DecisionID) == unsafe.StringData(id) {
		t.Error("the record's decision ID shares the reply's memory")
	}
}

// runPipeline runs a pipeline over q that keeps what it hands on; the
// function it returns stops it, drains it and returns the records.
func runPipeline(q *detect.Queue) func() []*detect.Transaction {
	var (
		mu   sync.Mutex
		recs []*detect.Transaction
	)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		detect.NewPipeline(q, time.Millisecond, time.Now, sinkFunc(func(tx *detect.Transaction) {
			mu.Lock()
			recs = append(recs, tx)
			mu.Unlock()
		})).Run(ctx)
		close(done)
	}()
	return func() []*detect.Transaction {
		stop()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return recs
	}
}
