package xdsharness_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/vigil-project/vigil/test/xdsharness"
)

func TestMain(m *testing.M) { xdsharness.Main(m) }

// fakeProc is a minimal ext_proc server: it answers every ProcessingRequest
// with the matching empty response (echoing bodies as streamed_response, as
// grpc-go's GRPC body mode requires), blocks requests carrying "x-block: 1"
// with an ImmediateResponse, and never answers in observability mode.
type fakeProc struct {
	extprocv3.UnimplementedExternalProcessorServer

	mu      sync.Mutex
	streams [][]*extprocv3.ProcessingRequest
	sent    int
}

func (f *fakeProc) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	f.mu.Lock()
	idx := len(f.streams)
	f.streams = append(f.streams, nil)
	f.mu.Unlock()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.streams[idx] = append(f.streams[idx], proto.Clone(req).(*extprocv3.ProcessingRequest))
		f.mu.Unlock()
		if req.GetObservabilityMode() {
			continue
		}
		resp, final := respond(req)
		if err := stream.Send(resp); err != nil {
			return err
		}
		f.mu.Lock()
		f.sent++
		f.mu.Unlock()
		if final {
			return nil
		}
	}
}

func respond(req *extprocv3.ProcessingRequest) (resp *extprocv3.ProcessingResponse, final bool) {
	echo := func(b *extprocv3.HttpBody) *extprocv3.BodyResponse {
		return &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
			BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_StreamedResponse{
				StreamedResponse: &extprocv3.StreamedBodyResponse{
					Body:                      b.GetBody(),
					EndOfStream:               b.GetEndOfStream(),
					EndOfStreamWithoutMessage: b.GetEndOfStreamWithoutMessage(),
				},
			}},
		}}
	}
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		if header(r.RequestHeaders.GetHeaders(), "x-block") == "1" {
			return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
				ImmediateResponse: &extprocv3.ImmediateResponse{
					Status:     &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden},
					GrpcStatus: &extprocv3.GrpcStatus{Status: uint32(codes.PermissionDenied)},
					Details:    "blocked",
				},
			}}, true
		}
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}, false
	case *extprocv3.ProcessingRequest_RequestBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: echo(r.RequestBody)}}, false
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}, false
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}, false
	case *extprocv3.ProcessingRequest_ResponseBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: echo(r.ResponseBody)}}, false
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}, false
	default:
		panic(fmt.Sprintf("unexpected ProcessingRequest %T", r))
	}
}

func header(hm *corev3.HeaderMap, key string) string {
	for _, h := range hm.GetHeaders() {
		if h.GetKey() == key {
			if h.GetRawValue() != nil {
				return string(h.GetRawValue())
			}
			return h.GetValue()
		}
	}
	return ""
}

func (f *fakeProc) snapshot() (streams [][]*extprocv3.ProcessingRequest, sent int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.streams {
		streams = append(streams, append([]*extprocv3.ProcessingRequest(nil), s...))
	}
	return streams, f.sent
}

func startFakeProc(t *testing.T) (*fakeProc, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeProc{}
	s := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(s, f)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return f, lis.Addr().String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// kinds lists the oneof kinds of one stream's requests.
func kinds(reqs []*extprocv3.ProcessingRequest) []string {
	var out []string
	for _, r := range reqs {
		switch b := r.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			out = append(out, "request_headers")
		case *extprocv3.ProcessingRequest_RequestBody:
			if b.RequestBody.GetEndOfStreamWithoutMessage() {
				out = append(out, "request_body(eos)")
			} else {
				out = append(out, "request_body")
			}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			out = append(out, "response_headers")
		case *extprocv3.ProcessingRequest_ResponseBody:
			out = append(out, "response_body")
		case *extprocv3.ProcessingRequest_ResponseTrailers:
			out = append(out, "response_trailers")
		default:
			out = append(out, fmt.Sprintf("%T", b))
		}
	}
	return out
}

func attr(req *extprocv3.ProcessingRequest, name string) string {
	return req.GetAttributes()["envoy.filters.http.ext_proc"].GetFields()[name].GetStringValue()
}

func TestAllowedCallReachesBackend(t *testing.T) {
	ctx := testCtx(t)
	proc, addr := startFakeProc(t)
	h := xdsharness.Start(ctx, t, xdsharness.Options{ExtProcAddr: addr})

	md := metadata.Pairs("x-forwarded-for", "203.0.113.7", "authorization", "Bearer abc")
	if err := h.Call(ctx, md); err != nil {
		t.Fatalf("allowed call failed: %v", err)
	}

	streams, _ := proc.snapshot()
	if len(streams) != 1 || len(streams[0]) == 0 {
		t.Fatalf("want 1 ext_proc stream with messages, got %d streams", len(streams))
	}
	first := streams[0][0]
	rh := first.GetRequestHeaders()
	if rh == nil {
		t.Fatalf("first message is %T, want request_headers", first.GetRequest())
	}
	if got := attr(first, "request.path"); got != xdsharness.CallMethod {
		t.Errorf("request.path attribute = %q, want %q", got, xdsharness.CallMethod)
	}
	if got := attr(first, "request.method"); got != "POST" {
		t.Errorf("request.method attribute = %q, want POST", got)
	}
	if got := attr(first, "request.host"); got == "" {
		t.Errorf("request.host attribute missing")
	}
	if got := header(rh.GetHeaders(), "x-forwarded-for"); got != "203.0.113.7" {
		t.Errorf("x-forwarded-for header = %q", got)
	}
	if got := header(rh.GetHeaders(), "authorization"); got != "Bearer abc" {
		t.Errorf("authorization header = %q", got)
	}
	if first.GetProtocolConfig() == nil {
		t.Errorf("first message has no protocol_config")
	}
	if first.GetObservabilityMode() {
		t.Errorf("observability_mode set in normal mode")
	}

	// Response headers arrive on the same stream once the backend answers.
	waitFor(t, "response_headers on the ext_proc stream", func() bool {
		s, _ := proc.snapshot()
		for _, r := range s[0] {
			if r.GetResponseHeaders() != nil {
				return true
			}
		}
		return false
	})

	calls := h.BackendCalls()
	if len(calls) != 1 || calls[0].Method != xdsharness.CallMethod {
		t.Fatalf("backend calls = %+v", calls)
	}
	if got := calls[0].Metadata.Get("x-forwarded-for"); len(got) != 1 || got[0] != "203.0.113.7" {
		t.Errorf("backend saw x-forwarded-for %q", got)
	}
}

func TestBlockedCallIsPermissionDenied(t *testing.T) {
	ctx := testCtx(t)
	_, addr := startFakeProc(t)
	h := xdsharness.Start(ctx, t, xdsharness.Options{ExtProcAddr: addr})

	err := h.Call(ctx, metadata.Pairs("x-block", "1"))
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("blocked call: got %v, want PermissionDenied", err)
	}
	if msg := status.Convert(err).Message(); msg != "blocked" {
		t.Errorf("status message = %q, want %q", msg, "blocked")
	}
	if calls := h.BackendCalls(); len(calls) != 0 {
		t.Errorf("blocked call reached the backend: %+v", calls)
	}
	// The harness keeps working after a block.
	if err := h.Call(ctx, nil); err != nil {
		t.Fatalf("allowed call after block failed: %v", err)
	}
}

func TestDisableImmediateResponse(t *testing.T) {
	ctx := testCtx(t)
	_, addr := startFakeProc(t)
	h := xdsharness.Start(ctx, t, xdsharness.Options{ExtProcAddr: addr, DisableImmediateResponse: true})
	err := h.Call(ctx, metadata.Pairs("x-block", "1"))
	if status.Code(err) != codes.Internal {
		t.Fatalf("immediate response with disable_immediate_response: got %v, want Internal", err)
	}
}

func TestObservabilityMode(t *testing.T) {
	ctx := testCtx(t)
	proc, addr := startFakeProc(t)
	h := xdsharness.Start(ctx, t, xdsharness.Options{ExtProcAddr: addr, ObservabilityMode: true})

	// Even a request the server would block goes through: nothing is awaited.
	if err := h.Call(ctx, metadata.Pairs("x-block", "1")); err != nil {
		t.Fatalf("call in observability mode failed: %v", err)
	}
	waitFor(t, "request_headers and response_headers in observability mode", func() bool {
		s, _ := proc.snapshot()
		return len(s) == 1 && len(s[0]) >= 2
	})
	streams, sent := proc.snapshot()
	for _, r := range streams[0] {
		if !r.GetObservabilityMode() {
			t.Errorf("message %v without observability_mode", kinds([]*extprocv3.ProcessingRequest{r}))
		}
	}
	if got := attr(streams[0][0], "request.path"); got != xdsharness.CallMethod {
		t.Errorf("request.path attribute = %q", got)
	}
	if sent != 0 {
		t.Errorf("server sent %d responses in observability mode", sent)
	}
	if len(h.BackendCalls()) != 1 {
		t.Errorf("backend calls = %d, want 1", len(h.BackendCalls()))
	}
}

func TestGRPCBodyModeSequence(t *testing.T) {
	ctx := testCtx(t)
	proc, addr := startFakeProc(t)
	pm := xdsharness.AllProcessingMode()
	h := xdsharness.Start(ctx, t, xdsharness.Options{ExtProcAddr: addr, ProcessingMode: &pm})

	if err := h.Call(ctx, nil); err != nil {
		t.Fatalf("call with GRPC bodies failed: %v", err)
	}
	want := []string{"request_headers", "request_body", "request_body(eos)", "response_headers", "response_body", "response_trailers"}
	waitFor(t, "full message sequence", func() bool {
		s, _ := proc.snapshot()
		return len(s) == 1 && len(s[0]) >= len(want)
	})
	streams, _ := proc.snapshot()
	got := kinds(streams[0])
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sequence = %v, want %v", got, want)
	}
	pc := streams[0][0].GetProtocolConfig()
	if pc.GetRequestBodyMode().String() != "GRPC" || pc.GetResponseBodyMode().String() != "GRPC" {
		t.Errorf("protocol_config = %v", pc)
	}
}

func TestFailureMode(t *testing.T) {
	// An address with nothing listening.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()

	t.Run("deny", func(t *testing.T) {
		ctx := testCtx(t)
		h := xdsharness.Start(ctx, t, xdsharness.Options{ExtProcAddr: dead})
		if err := h.Call(ctx, nil); status.Code(err) != codes.Internal {
			t.Fatalf("ext_proc down, failure_mode_allow=false: got %v, want Internal", err)
		}
		if n := len(h.BackendCalls()); n != 0 {
			t.Errorf("backend calls = %d, want 0", n)
		}
	})
	t.Run("allow", func(t *testing.T) {
		ctx := testCtx(t)
		h := xdsharness.Start(ctx, t, xdsharness.Options{ExtProcAddr: dead, FailureModeAllow: true})
		if err := h.Call(ctx, nil); err != nil {
			t.Fatalf("ext_proc down, failure_mode_allow=true: got %v, want nil", err)
		}
	})
}

func TestExtProcConfigIsValid(t *testing.T) {
	pm := xdsharness.AllProcessingMode()
	cfg, err := xdsharness.ExtProcConfig(xdsharness.Options{
		ExtProcAddr:          "127.0.0.1:1",
		RequestAttributes:    xdsharness.DefaultRequestAttributes,
		ProcessingMode:       &pm,
		ExtProcTimeout:       time.Second,
		DeferredCloseTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.ValidateAll(); err != nil {
		t.Fatalf("PGV validation: %v", err)
	}
	if !xdsharness.Enabled() {
		t.Fatal("Enabled() = false inside the re-executed test binary")
	}
}
