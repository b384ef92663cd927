package envoysim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ---- in-test servers -------------------------------------------------------

type procServer struct {
	extprocv3.UnimplementedExternalProcessorServer
	fn func(extprocv3.ExternalProcessor_ProcessServer) error
}

func (p *procServer) Process(s extprocv3.ExternalProcessor_ProcessServer) error { return p.fn(s) }

type authServer struct {
	authv3.UnimplementedAuthorizationServer
	mu  sync.Mutex
	got []*authv3.CheckRequest
}

func (a *authServer) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	a.mu.Lock()
	a.got = append(a.got, req)
	a.mu.Unlock()
	if strings.HasPrefix(req.GetAttributes().GetRequest().GetHttp().GetPath(), "/admin") {
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status: &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}, Body: "denied"}},
		}, nil
	}
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.OK)}}, nil
}

func (a *authServer) last() *authv3.CheckRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got[len(a.got)-1]
}

// start serves fn (and auth, if any) on a real 127.0.0.1:0 listener.
func start(t *testing.T, fn func(extprocv3.ExternalProcessor_ProcessServer) error, auth authv3.AuthorizationServer) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	if fn != nil {
		extprocv3.RegisterExternalProcessorServer(srv, &procServer{fn: fn})
	}
	if auth != nil {
		authv3.RegisterAuthorizationServer(srv, auth)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// recorder keeps what one server stream received and how it ended.
type recorder struct {
	mu     sync.Mutex
	reqs   []*extprocv3.ProcessingRequest
	endErr error
	done   chan struct{}
}

func newRecorder() *recorder { return &recorder{done: make(chan struct{})} }

func (r *recorder) add(m *extprocv3.ProcessingRequest) {
	r.mu.Lock()
	r.reqs = append(r.reqs, m)
	r.mu.Unlock()
}

func (r *recorder) end(err error) {
	r.mu.Lock()
	r.endErr = err
	r.mu.Unlock()
	close(r.done)
}

// wait returns the received messages and the Recv error that ended the
// stream (nil for io.EOF) once the server's Process has returned.
func (r *recorder) wait(t *testing.T) ([]*extprocv3.ProcessingRequest, error) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		t.Fatal("server stream did not end")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*extprocv3.ProcessingRequest(nil), r.reqs...), r.endErr
}

// serve is a server loop: it records every message and sends answer's
// replies for it. It returns when the client half-closes or resets.
func serve(rec *recorder, answer func(*extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse) func(extprocv3.ExternalProcessor_ProcessServer) error {
	return func(s extprocv3.ExternalProcessor_ProcessServer) error {
		for {
			req, err := s.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					rec.end(nil)
					return nil
				}
				rec.end(err)
				return err
			}
			rec.add(req)
			for _, r := range answer(req) {
				if err := s.Send(r); err != nil {
					return err
				}
			}
		}
	}
}

// cont is the plain CONTINUE reply matching m.
func cont(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch m.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
	case *extprocv3.ProcessingRequest_RequestBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	}
	panic("unknown request")
}

func allowAll(m *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
	return []*extprocv3.ProcessingResponse{cont(m)}
}

func setHeader(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, RawValue: []byte(v)}}
}

func kind(m *extprocv3.ProcessingRequest) string {
	switch m.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return "request_headers"
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return "response_headers"
	case *extprocv3.ProcessingRequest_RequestBody:
		return "request_body"
	case *extprocv3.ProcessingRequest_ResponseBody:
		return "response_body"
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return "request_trailers"
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return "response_trailers"
	}
	return "?"
}

func kinds(ms []*extprocv3.ProcessingRequest) string {
	var out []string
	for _, m := range ms {
		out = append(out, kind(m))
	}
	return strings.Join(out, ",")
}

func wantKind(t *testing.T, err error, want ...Kind) *ProtocolError {
	t.Helper()
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("error = %v, want a *ProtocolError of kind %v", err, want)
	}
	for _, k := range want {
		if pe.Kind == k {
			return pe
		}
	}
	t.Fatalf("ProtocolError kind = %v (%v), want one of %v", pe.Kind, pe, want)
	return nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// do runs Do with a generous message timeout unless the test sets one: the
// 200ms default is too tight for -race on a loaded machine.
func do(t *testing.T, cc *grpc.ClientConn, cfg Config, req HTTPRequest, upstream func(HTTPRequest) HTTPResponse) (*Result, error) {
	t.Helper()
	if cfg.MessageTimeout == 0 {
		cfg.MessageTimeout = 5 * time.Second
	}
	return Do(ctxT(t), extprocv3.NewExternalProcessorClient(cc), cfg, req, upstream)
}

func testRequest() HTTPRequest {
	return HTTPRequest{
		Method: "POST",
		Path:   "/login?user=a",
		Headers: [][2]string{
			{"Host", "shop.example"},
			{"Content-Type", "application/json"},
			{"X-Dup", "a"},
			{"X-Dup", "b"},
			{"X-Remove-Me", "1"},
		},
		Body:       []byte(`{"user":"a"}`),
		SourceAddr: "10.1.2.3:4567",
	}
}

// ---- ext_proc ----------------------------------------------------------------

func TestAllowingServer(t *testing.T) {
	rec := newRecorder()
	cc := start(t, serve(rec, func(m *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
		switch m.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{
				Response: &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{
					SetHeaders:    []*corev3.HeaderValueOption{setHeader("x-vigil-score", "0.1"), setHeader("x-envoy-ignored", "1")},
					RemoveHeaders: []string{"x-remove-me", ":path"},
				}}}}}}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{
				Response: &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{
					SetHeaders: []*corev3.HeaderValueOption{setHeader("x-vigil", "seen")}}}}}}}
		}
		return allowAll(m)
	}), nil)

	cfg := Config{RequestBodyMode: Buffered, RequestAttributes: map[string]string{"request.path": "/login"}}
	var upstreamSaw HTTPRequest
	res, err := do(t, cc, cfg, testRequest(), func(r HTTPRequest) HTTPResponse {
		upstreamSaw = r
		return HTTPResponse{Status: 201, Headers: [][2]string{{"Content-Type", "text/plain"}}, Body: []byte("ok")}
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if res.Status != 201 || string(res.Body) != "ok" || res.Header("x-vigil") != "seen" || res.Header("Content-Type") != "text/plain" {
		t.Errorf("result = %d %q %v", res.Status, res.Body, res.Headers)
	}
	if !res.UpstreamCalled || !res.StreamOpened || res.ClosedByServer || res.Immediate != nil {
		t.Errorf("flags: %+v", res)
	}
	if v, _ := hdrGet(upstreamSaw.Headers, "x-vigil-score"); v != "0.1" {
		t.Errorf("upstream x-vigil-score = %q, headers %v", v, upstreamSaw.Headers)
	}
	if _, ok := hdrGet(upstreamSaw.Headers, "x-remove-me"); ok {
		t.Error("x-remove-me reached the upstream")
	}
	if _, ok := hdrGet(upstreamSaw.Headers, "x-envoy-ignored"); ok {
		t.Error("x-envoy-* set by the server reached the upstream")
	}
	if upstreamSaw.Path != "/login?user=a" || upstreamSaw.Method != "POST" || upstreamSaw.Authority != "shop.example" || string(upstreamSaw.Body) != `{"user":"a"}` {
		t.Errorf("upstream request = %+v", upstreamSaw)
	}
	if len(res.Responses) != 3 || len(res.Requests) != 3 {
		t.Errorf("%d requests, %d responses", len(res.Requests), len(res.Responses))
	}

	got, endErr := rec.wait(t)
	if endErr != nil {
		t.Errorf("server stream ended with %v, want io.EOF", endErr)
	}
	if k := kinds(got); k != "request_headers,request_body,response_headers" {
		t.Fatalf("server got %s", k)
	}
	first := got[0]
	if pc := first.GetProtocolConfig(); pc == nil || pc.GetRequestBodyMode() != Buffered || pc.GetResponseBodyMode() != None {
		t.Errorf("protocol_config on the first message = %v", pc)
	}
	for i, m := range got[1:] {
		if m.GetProtocolConfig() != nil {
			t.Errorf("message %d carries protocol_config", i+1)
		}
		if m.GetAttributes() != nil && kind(m) != "response_headers" {
			t.Errorf("message %d carries attributes", i+1)
		}
	}
	if a := first.GetAttributes()[FilterName].GetFields()["request.path"].GetStringValue(); a != "/login" {
		t.Errorf("attributes = %v", first.GetAttributes())
	}
	if first.GetObservabilityMode() {
		t.Error("observability_mode set")
	}
	hs := first.GetRequestHeaders()
	if hs.GetEndOfStream() {
		t.Error("request_headers end_of_stream = true with a body")
	}
	var keys []string
	for _, h := range hs.GetHeaders().GetHeaders() {
		keys = append(keys, h.GetKey())
		if h.GetValue() != "" || (len(h.GetRawValue()) == 0 && h.GetKey() != "") {
			t.Errorf("header %q: value=%q raw_value=%q", h.GetKey(), h.GetValue(), h.GetRawValue())
		}
	}
	if want := ":method,:path,:authority,:scheme,content-type,x-dup,x-dup,x-remove-me,content-length,x-forwarded-proto,x-request-id"; strings.Join(keys, ",") != want {
		t.Errorf("header keys = %v, want %v", keys, want)
	}
	if b := got[1].GetRequestBody(); string(b.GetBody()) != `{"user":"a"}` || !b.GetEndOfStream() {
		t.Errorf("request_body = %v", b)
	}
	rh := got[2].GetResponseHeaders().GetHeaders().GetHeaders()
	if rh[0].GetKey() != ":status" || string(rh[0].GetRawValue()) != "201" {
		t.Errorf("response headers = %v", rh)
	}
	if got[2].GetResponseHeaders().GetEndOfStream() {
		t.Error("response_headers end_of_stream = true with a body")
	}
}

func TestImmediateResponse403(t *testing.T) {
	rec := newRecorder()
	cc := start(t, serve(rec, func(m *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
		return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden},
			Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader("x-vigil-block", "1")}},
			Body:    []byte("blocked"),
			Details: "vigil blocked",
		}}}}
	}), nil)
	res, err := do(t, cc, Config{RequestBodyMode: Buffered}, testRequest(), func(HTTPRequest) HTTPResponse {
		t.Error("upstream called")
		return HTTPResponse{}
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if res.Status != 403 || res.Immediate == nil || string(res.Body) != "blocked" || res.UpstreamCalled {
		t.Errorf("result = %+v", res)
	}
	if res.Header("x-vigil-block") != "1" || res.Header("content-type") != "text/plain" || res.LocalReplyDetails != "vigil_blocked" {
		t.Errorf("headers = %v, details %q", res.Headers, res.LocalReplyDetails)
	}
	got, _ := rec.wait(t)
	if k := kinds(got); k != "request_headers" {
		t.Errorf("server got %s, want only request_headers", k)
	}
}

func TestDoubleReplyDetected(t *testing.T) {
	double := func(m *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
		if m.GetRequestHeaders() != nil {
			return []*extprocv3.ProcessingResponse{cont(m), cont(m)}
		}
		return allowAll(m)
	}
	t.Run("before the next message", func(t *testing.T) {
		rec := newRecorder()
		cc := start(t, serve(rec, double), nil)
		res, err := do(t, cc, Config{}, HTTPRequest{Path: "/"}, nil)
		wantKind(t, err, KindSpurious, KindUnexpectedReply)
		if res.Status != 500 {
			t.Errorf("status = %d, want 500 (Envoy fails closed on spurious messages)", res.Status)
		}
	})
	t.Run("after the last message", func(t *testing.T) {
		rec := newRecorder()
		cc := start(t, serve(rec, double), nil)
		res, err := do(t, cc, Config{ResponseHeaderMode: Skip}, HTTPRequest{Path: "/"}, nil)
		pe := wantKind(t, err, KindSpurious)
		if pe.Reply.GetRequestHeaders() == nil {
			t.Errorf("offending reply = %v", pe.Reply)
		}
		if res.Status != 200 || !res.UpstreamCalled {
			t.Errorf("result = %+v", res)
		}
	})
	t.Run("mismatched oneof", func(t *testing.T) {
		rec := newRecorder()
		cc := start(t, serve(rec, func(m *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
			return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}}
		}), nil)
		res, err := do(t, cc, Config{}, HTTPRequest{}, nil)
		pe := wantKind(t, err, KindUnexpectedReply)
		if pe.Phase != "request_headers" || res.Status != 500 || res.UpstreamCalled {
			t.Errorf("error %v, result %+v", pe, res)
		}
	})
}

func TestServerNeverReplies(t *testing.T) {
	for _, allow := range []bool{false, true} {
		rec := newRecorder()
		cc := start(t, func(s extprocv3.ExternalProcessor_ProcessServer) error {
			m, err := s.Recv()
			if err != nil {
				rec.end(err)
				return err
			}
			rec.add(m)
			<-s.Context().Done() // never reply
			rec.end(s.Context().Err())
			return nil
		}, nil)
		cfg := Config{MessageTimeout: 50 * time.Millisecond, FailureModeAllow: allow}
		begin := time.Now()
		res, err := do(t, cc, cfg, HTTPRequest{}, nil)
		wantKind(t, err, KindTimeout)
		if time.Since(begin) > 3*time.Second {
			t.Errorf("Do took %v", time.Since(begin))
		}
		if allow {
			if res.Status != 200 || !res.UpstreamCalled {
				t.Errorf("failure_mode_allow: result = %+v", res)
			}
		} else if res.Status != 504 || res.UpstreamCalled || res.LocalReplyDetails != "ext_proc_error_per-message_timeout_exceeded" {
			t.Errorf("result = %+v", res)
		}
		if _, endErr := rec.wait(t); endErr == nil {
			t.Error("server stream was not reset after the timeout")
		}
	}
}

func TestStreamedChunking(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pipeline bool
		trailers bool
	}{{"lockstep", false, false}, {"pipelined", true, false}, {"with trailers", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			cc := start(t, serve(rec, func(m *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
				if b := m.GetRequestBody(); b != nil && string(b.GetBody()) == "4567" {
					return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{
						Response: &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: []byte("XXXX")}}}}}}}
				}
				return allowAll(m)
			}), nil)
			cfg := Config{RequestBodyMode: Streamed, ChunkSize: 4, PipelineStreamedChunks: tc.pipeline, RequestTrailerMode: Send, ResponseHeaderMode: Skip}
			req := HTTPRequest{Method: "PUT", Headers: [][2]string{{"content-length", "10"}}, Body: []byte("0123456789")}
			if tc.trailers {
				req.Trailers = [][2]string{{"x-checksum", "abc"}}
			}
			var upBody []byte
			var upHeaders [][2]string
			res, err := do(t, cc, cfg, req, func(r HTTPRequest) HTTPResponse {
				upBody, upHeaders = r.Body, r.Headers
				return HTTPResponse{}
			})
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if string(upBody) != "0123XXXX89" {
				t.Errorf("upstream body = %q", upBody)
			}
			if _, ok := hdrGet(upHeaders, "content-length"); ok {
				t.Error("content-length kept in STREAMED mode")
			}
			got, _ := rec.wait(t)
			want := "request_headers,request_body,request_body,request_body"
			if tc.trailers {
				want += ",request_trailers"
			}
			if k := kinds(got); k != want {
				t.Fatalf("server got %s, want %s", k, want)
			}
			if _, ok := hdrGet(headerList(got[0].GetRequestHeaders().GetHeaders()), "content-length"); !ok {
				t.Error("content-length missing from the request_headers message")
			}
			for i, wantBody := range []string{"0123", "4567", "89"} {
				b := got[1+i].GetRequestBody()
				wantEOS := i == 2 && !tc.trailers
				if string(b.GetBody()) != wantBody || b.GetEndOfStream() != wantEOS {
					t.Errorf("chunk %d = %q eos=%v, want %q eos=%v", i, b.GetBody(), b.GetEndOfStream(), wantBody, wantEOS)
				}
			}
			if res.Status != 200 {
				t.Errorf("status = %d", res.Status)
			}
		})
	}
}

func headerList(m *corev3.HeaderMap) [][2]string {
	var out [][2]string
	for _, h := range m.GetHeaders() {
		out = append(out, [2]string{h.GetKey(), string(h.GetRawValue())})
	}
	return out
}

func TestObservabilityMode(t *testing.T) {
	cfg := Config{ObservabilityMode: true, RequestBodyMode: Streamed, ResponseBodyMode: Buffered}
	req := HTTPRequest{Method: "POST", Body: []byte("hello")}
	upstream := func(HTTPRequest) HTTPResponse { return HTTPResponse{Status: 404, Body: []byte("nope")} }

	t.Run("silent server", func(t *testing.T) {
		rec := newRecorder()
		cc := start(t, serve(rec, func(*extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse { return nil }), nil)
		res, err := do(t, cc, cfg, req, upstream)
		if err != nil {
			t.Fatalf("Do: %v", err)
		}
		if res.Status != 404 || string(res.Body) != "nope" || !res.UpstreamCalled {
			t.Errorf("result = %+v", res)
		}
		got, endErr := rec.wait(t)
		if endErr != nil {
			t.Errorf("server stream ended with %v", endErr)
		}
		// BUFFERED bodies are not sent in observability mode.
		if k := kinds(got); k != "request_headers,request_body,response_headers" {
			t.Errorf("server got %s", k)
		}
		for i, m := range got {
			if !m.GetObservabilityMode() || m.GetProtocolConfig() != nil {
				t.Errorf("message %d: observability_mode=%v protocol_config=%v", i, m.GetObservabilityMode(), m.GetProtocolConfig())
			}
		}
	})
	t.Run("server replies", func(t *testing.T) {
		rec := newRecorder()
		cc := start(t, serve(rec, func(m *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
			if m.GetRequestHeaders() != nil {
				return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
					Status: &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}}}}}
			}
			return allowAll(m)
		}), nil)
		res, err := do(t, cc, cfg, req, upstream)
		wantKind(t, err, KindObservabilityReply)
		if res.Status != 404 || res.Immediate != nil {
			t.Errorf("replies must be ignored: result = %+v", res)
		}
		for _, v := range res.Violations {
			if v.Kind != KindObservabilityReply {
				t.Errorf("violation %v", v)
			}
		}
	})
}

func TestInvalidHeaderMutation(t *testing.T) {
	for name, hv := range map[string]*corev3.HeaderValue{
		"both value and raw_value": {Key: "x-a", Value: "v", RawValue: []byte("v")},
		"value only":               {Key: "x-a", Value: "v"},
	} {
		t.Run(name, func(t *testing.T) {
			rec := newRecorder()
			cc := start(t, serve(rec, func(m *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
				return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{
					Response: &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{
						SetHeaders: []*corev3.HeaderValueOption{{Header: hv}}}}}}}}
			}), nil)
			res, err := do(t, cc, Config{}, HTTPRequest{}, nil)
			wantKind(t, err, KindInvalidMutation)
			if res.Status != 500 || res.UpstreamCalled {
				t.Errorf("result = %+v", res)
			}
		})
	}
}

func TestModeOverride(t *testing.T) {
	for _, allow := range []bool{false, true} {
		rec := newRecorder()
		cc := start(t, serve(rec, func(m *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
			r := cont(m)
			if m.GetRequestHeaders() != nil {
				r.ModeOverride = &extprocfv3.ProcessingMode{RequestBodyMode: Buffered}
			}
			return []*extprocv3.ProcessingResponse{r}
		}), nil)
		_, err := do(t, cc, Config{AllowModeOverride: allow, ResponseHeaderMode: Skip},
			HTTPRequest{Method: "POST", Body: []byte("payload")}, nil)
		if err != nil {
			t.Fatalf("Do: %v", err)
		}
		got, _ := rec.wait(t)
		want := "request_headers"
		if allow {
			want = "request_headers,request_body"
		}
		if k := kinds(got); k != want {
			t.Errorf("allow_mode_override=%v: server got %s, want %s", allow, k, want)
		}
	}
}

func TestBufferedOverLimit(t *testing.T) {
	rec := newRecorder()
	cc := start(t, serve(rec, allowAll), nil)
	res, err := do(t, cc, Config{RequestBodyMode: Buffered, BufferLimit: 8},
		HTTPRequest{Method: "POST", Body: bytes.Repeat([]byte("a"), 16)}, nil)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if res.Status != 413 || res.UpstreamCalled {
		t.Errorf("result = %+v", res)
	}
	got, _ := rec.wait(t)
	if k := kinds(got); k != "request_headers" {
		t.Errorf("server got %s", k)
	}
}

func TestServerEndsStream(t *testing.T) {
	t.Run("cleanly", func(t *testing.T) {
		cc := start(t, func(s extprocv3.ExternalProcessor_ProcessServer) error {
			_, err := s.Recv()
			return err // OK close without replying: Envoy goes on without the server
		}, nil)
		res, err := do(t, cc, Config{}, HTTPRequest{}, nil)
		if err != nil {
			t.Fatalf("Do: %v", err)
		}
		if !res.ClosedByServer || !res.UpstreamCalled || res.Status != 200 || len(res.Requests) != 1 {
			t.Errorf("result = %+v", res)
		}
	})
	t.Run("with an error", func(t *testing.T) {
		cc := start(t, func(s extprocv3.ExternalProcessor_ProcessServer) error {
			if _, err := s.Recv(); err != nil {
				return err
			}
			return status.Error(codes.Internal, "boom")
		}, nil)
		res, err := do(t, cc, Config{}, HTTPRequest{}, nil)
		pe := wantKind(t, err, KindStreamError)
		if status.Code(pe) != codes.Internal || res.Status != 500 || res.UpstreamCalled {
			t.Errorf("error %v, result %+v", pe, res)
		}
	})
	t.Run("not after half-close", func(t *testing.T) {
		cc := start(t, func(s extprocv3.ExternalProcessor_ProcessServer) error {
			for {
				m, err := s.Recv()
				if err != nil {
					<-s.Context().Done() // ignores io.EOF
					return nil
				}
				if err := s.Send(cont(m)); err != nil {
					return err
				}
			}
		}, nil)
		_, err := do(t, cc, Config{CloseTimeout: 100 * time.Millisecond}, HTTPRequest{}, nil)
		wantKind(t, err, KindCloseTimeout)
	})
}

func TestSkipEverythingOpensNoStream(t *testing.T) {
	cc := start(t, func(extprocv3.ExternalProcessor_ProcessServer) error {
		t.Error("stream opened")
		return nil
	}, nil)
	res, err := do(t, cc, Config{RequestHeaderMode: Skip, ResponseHeaderMode: Skip}, HTTPRequest{}, nil)
	if err != nil || res.StreamOpened || !res.UpstreamCalled {
		t.Errorf("err %v, result %+v", err, res)
	}
}

func TestRawStream(t *testing.T) {
	t.Run("cancel mid-stream", func(t *testing.T) {
		rec := newRecorder()
		client := extprocv3.NewExternalProcessorClient(start(t, serve(rec, allowAll), nil))
		rs, err := Stream(ctxT(t), client)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		msg := WithProtocolConfig(HeadersMsg(":method", "POST", ":path", "/", ":authority", "a", ":scheme", "http"), Streamed, None)
		if err := rs.Send(msg); err != nil {
			t.Fatal(err)
		}
		r, err := rs.Recv(time.Second)
		if err != nil || r.GetRequestHeaders() == nil {
			t.Fatalf("Recv = %v, %v", r, err)
		}
		if err := rs.Send(BodyMsg([]byte("part"), false)); err != nil {
			t.Fatal(err)
		}
		if _, err := rs.Recv(time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := rs.Recv(0); !errors.Is(err, ErrTimeout) {
			t.Errorf("poll = %v, want ErrTimeout", err)
		}
		rs.Cancel()
		_, endErr := rec.wait(t)
		if status.Code(endErr) != codes.Canceled {
			t.Errorf("server saw %v, want Canceled", endErr)
		}
	})
	t.Run("half-close", func(t *testing.T) {
		client := extprocv3.NewExternalProcessorClient(start(t, serve(newRecorder(), allowAll), nil))
		rs, err := Stream(ctxT(t), client)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		if err := rs.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if err := rs.WaitEnd(time.Second); err != nil {
			t.Errorf("WaitEnd = %v", err)
		}
	})
}

// ---- ext_authz ---------------------------------------------------------------

func TestCheck(t *testing.T) {
	auth := &authServer{}
	cc := start(t, nil, auth)
	client := authv3.NewAuthorizationClient(cc)
	ctx := ctxT(t)

	req := testRequest()
	req.Headers = append(req.Headers, [2]string{"x-envoy-auth-partial-body", "forged"})
	resp, err := Check(ctx, client, req, CheckOptions{MaxRequestBytes: 1024, ContextExtensions: map[string]string{"route": "login"}})
	if err != nil {
		t.Fatal(err)
	}
	if !Allowed(resp) || DeniedStatus(resp) != 0 {
		t.Errorf("response = %v", resp)
	}
	got := auth.last().GetAttributes()
	sa := got.GetSource().GetAddress().GetSocketAddress()
	if sa.GetAddress() != "10.1.2.3" || sa.GetPortValue() != 4567 {
		t.Errorf("source = %v", sa)
	}
	if got.GetDestination().GetAddress().GetSocketAddress().GetPortValue() != 10000 || got.GetContextExtensions()["route"] != "login" {
		t.Errorf("attributes = %v", got)
	}
	h := got.GetRequest().GetHttp()
	if h.GetMethod() != "POST" || h.GetPath() != "/login?user=a" || h.GetHost() != "shop.example" || h.GetScheme() != "http" ||
		h.GetProtocol() != "HTTP/1.1" || h.GetId() == "" || h.GetSize() != int64(len(req.Body)) || got.GetRequest().GetTime() == nil {
		t.Errorf("http = %v", h)
	}
	hm := h.GetHeaders()
	if hm[":authority"] != "shop.example" || hm[":method"] != "POST" || hm[":path"] != "/login?user=a" ||
		hm["x-dup"] != "a,b" || hm["content-type"] != "application/json" || hm["x-envoy-auth-partial-body"] != "false" || hm["x-request-id"] == "" {
		t.Errorf("headers = %v", hm)
	}
	if _, ok := hm["host"]; ok {
		t.Error("host header sent; Envoy only has :authority")
	}
	if h.GetBody() != `{"user":"a"}` || h.GetRawBody() != nil || h.GetHeaderMap() != nil {
		t.Errorf("body = %q raw %q header_map %v", h.GetBody(), h.GetRawBody(), h.GetHeaderMap())
	}

	// Raw headers, bytes body, partial.
	if _, err := Check(ctx, client, req, CheckOptions{EncodeRawHeaders: true, PackAsBytes: true, MaxRequestBytes: 4, AllowPartialMessage: true}); err != nil {
		t.Fatal(err)
	}
	h = auth.last().GetAttributes().GetRequest().GetHttp()
	raw := headerList(h.GetHeaderMap())
	if h.GetHeaders() != nil || string(h.GetRawBody()) != `{"us` || h.GetBody() != "" {
		t.Errorf("http = %v", h)
	}
	var dups int
	for _, kv := range raw {
		if kv[0] == "x-dup" {
			dups++
		}
	}
	if v, _ := hdrGet(raw, "x-envoy-auth-partial-body"); v != "true" || dups != 2 {
		t.Errorf("header_map = %v", raw)
	}

	// Over the limit without allow_partial_message: 413 without a call.
	n := len(auth.got)
	if _, err := Check(ctx, client, req, CheckOptions{MaxRequestBytes: 4}); !errors.Is(err, ErrRequestEntityTooLarge) {
		t.Errorf("err = %v", err)
	}
	if len(auth.got) != n {
		t.Error("server called despite the 413")
	}

	// Denied.
	resp, err = Check(ctx, client, HTTPRequest{Path: "/admin"}, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if Allowed(resp) || DeniedStatus(resp) != 403 {
		t.Errorf("response = %v", resp)
	}
	if h := auth.last().GetAttributes().GetRequest().GetHttp(); h.GetBody() != "" || h.GetSize() != 0 || h.GetHeaders()["x-envoy-auth-partial-body"] != "" {
		t.Errorf("http without body buffering = %v", h)
	}
}

func TestBufferedBodyMutationAndContentLength(t *testing.T) {
	replaceBody := func(fixLength bool) func(*extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
		return func(m *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
			if m.GetRequestBody() == nil {
				return allowAll(m)
			}
			cr := &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: []byte("redacted")}}}
			if fixLength {
				cr.HeaderMutation = &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader("content-length", "8")}}
			}
			return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: cr}}}}
		}
	}
	req := HTTPRequest{Method: "POST", Body: []byte("secret=hunter2")}
	cfg := Config{RequestBodyMode: Buffered, ResponseHeaderMode: Skip}

	cc := start(t, serve(newRecorder(), replaceBody(false)), nil)
	res, err := do(t, cc, cfg, req, nil)
	wantKind(t, err, KindInvalidMutation)
	if res.Status != 500 || res.UpstreamCalled {
		t.Errorf("stale content-length: result = %+v", res)
	}

	cc = start(t, serve(newRecorder(), replaceBody(true)), nil)
	res, err = do(t, cc, cfg, req, nil)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if string(res.UpstreamRequest.Body) != "redacted" {
		t.Errorf("upstream body = %q", res.UpstreamRequest.Body)
	}
	if v, _ := hdrGet(res.UpstreamRequest.Headers, "content-length"); v != "8" {
		t.Errorf("upstream content-length = %q", v)
	}
}

func TestContinueAndReplace(t *testing.T) {
	rec := newRecorder()
	cc := start(t, serve(rec, func(m *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
		if m.GetRequestHeaders() != nil {
			return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{
				Response: &extprocv3.CommonResponse{
					Status:       extprocv3.CommonResponse_CONTINUE_AND_REPLACE,
					BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: []byte("new")}},
				}}}}}
		}
		return allowAll(m)
	}), nil)
	res, err := do(t, cc, Config{RequestBodyMode: Buffered, ResponseHeaderMode: Skip},
		HTTPRequest{Method: "POST", Body: []byte("old body")}, nil)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if string(res.UpstreamRequest.Body) != "new" {
		t.Errorf("upstream body = %q", res.UpstreamRequest.Body)
	}
	if _, ok := hdrGet(res.UpstreamRequest.Headers, "content-length"); ok {
		t.Error("content-length kept after CONTINUE_AND_REPLACE")
	}
	got, _ := rec.wait(t)
	if k := kinds(got); k != "request_headers" {
		t.Errorf("server got %s; nothing more is sent in this direction after CONTINUE_AND_REPLACE", k)
	}
}

func TestImmediateResponseOnResponseHeaders(t *testing.T) {
	rec := newRecorder()
	cc := start(t, serve(rec, func(m *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
		if m.GetResponseHeaders() != nil {
			return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
				Status: &typev3.HttpStatus{Code: typev3.StatusCode_BadGateway}}}}}
		}
		return allowAll(m)
	}), nil)
	cfg := Config{ResponseAttributes: map[string]string{"response.code": "200"}, ResponseBodyMode: Streamed}
	res, err := do(t, cc, cfg, HTTPRequest{},
		func(HTTPRequest) HTTPResponse { return HTTPResponse{Body: []byte("leak")} })
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if !res.UpstreamCalled || res.Status != 502 || len(res.Body) != 0 {
		t.Errorf("result = %+v", res)
	}
	got, _ := rec.wait(t)
	if k := kinds(got); k != "request_headers,response_headers" {
		t.Fatalf("server got %s", k)
	}
	if got[0].GetAttributes() != nil || got[1].GetAttributes()[FilterName].GetFields()["response.code"].GetStringValue() != "200" {
		t.Errorf("attributes: %v / %v", got[0].GetAttributes(), got[1].GetAttributes())
	}
}

func TestOverrideMessageTimeoutIsNotAReply(t *testing.T) {
	for _, max := range []time.Duration{0, time.Second} {
		cc := start(t, serve(newRecorder(), func(m *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
			return []*extprocv3.ProcessingResponse{{OverrideMessageTimeout: durationpb.New(500 * time.Millisecond)}, cont(m)}
		}), nil)
		res, err := do(t, cc, Config{MaxMessageTimeout: max}, HTTPRequest{}, nil)
		if err != nil {
			t.Fatalf("max_message_timeout %v: %v", max, err)
		}
		if len(res.Responses) != 4 || res.Status != 200 {
			t.Errorf("max_message_timeout %v: %d responses, status %d", max, len(res.Responses), res.Status)
		}
	}
}

func TestContextCancelled(t *testing.T) {
	cc := start(t, func(s extprocv3.ExternalProcessor_ProcessServer) error {
		<-s.Context().Done()
		return nil
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := Do(ctx, extprocv3.NewExternalProcessorClient(cc), Config{MessageTimeout: time.Minute}, HTTPRequest{}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
}

func TestResetOnClose(t *testing.T) {
	rec := newRecorder()
	cc := start(t, func(s extprocv3.ExternalProcessor_ProcessServer) error {
		for {
			m, err := s.Recv()
			if err != nil {
				<-s.Context().Done() // ignores io.EOF; only the reset ends it
				rec.end(s.Context().Err())
				return nil
			}
			if err := s.Send(cont(m)); err != nil {
				return err
			}
		}
	}, nil)
	res, err := do(t, cc, Config{ResetOnClose: true}, HTTPRequest{}, nil)
	if err != nil || res.Status != 200 {
		t.Fatalf("err %v, result %+v", err, res)
	}
	if _, endErr := rec.wait(t); !errors.Is(endErr, context.Canceled) {
		t.Errorf("server context ended with %v, want Canceled", endErr)
	}
}
