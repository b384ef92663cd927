package demo

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vigil-project/vigil/detect"
)

// fakeVigil is an ExternalProcessor on loopback that records what the
// front door sends and answers with reply (nil: CONTINUE for the phase;
// a nil result: no answer at all).
type fakeVigil struct {
	extprocv3.UnimplementedExternalProcessorServer
	reply func(*extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse

	mu      sync.Mutex
	got     []*extprocv3.ProcessingRequest
	streams atomic.Int64
	ended   chan struct{}
}

func (f *fakeVigil) Process(s extprocv3.ExternalProcessor_ProcessServer) error {
	f.streams.Add(1)
	defer func() { f.ended <- struct{}{} }()
	for {
		req, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.got = append(f.got, req)
		f.mu.Unlock()
		var resp *extprocv3.ProcessingResponse
		if f.reply != nil {
			resp = f.reply(req)
		} else {
			resp = continueFor(req)
		}
		if resp != nil {
			if err := s.Send(resp); err != nil {
				return err
			}
		}
	}
}

func continueFor(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
	case *extprocv3.ProcessingRequest_RequestBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
	}
	return nil
}

func (f *fakeVigil) requests() []*extprocv3.ProcessingRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*extprocv3.ProcessingRequest(nil), f.got...)
}

// waitEnded waits until n streams have ended.
func (f *fakeVigil) waitEnded(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for range n {
		select {
		case <-f.ended:
		case <-deadline:
			t.Fatal("the front door did not end its ext_proc stream")
		}
	}
}

type upstream struct {
	srv   *httptest.Server
	calls atomic.Int64
	last  atomic.Pointer[http.Request]
	body  atomic.Pointer[[]byte]
}

type harness struct {
	vigil *fakeVigil
	up    *upstream
	front string
}

func newHarness(t *testing.T, v *fakeVigil, grpcAddr string) *harness {
	t.Helper()
	if v != nil {
		v.ended = make(chan struct{}, 64)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		g := grpc.NewServer()
		extprocv3.RegisterExternalProcessorServer(g, v)
		go g.Serve(l)
		t.Cleanup(g.Stop)
		grpcAddr = l.Addr().String()
	}
	up := &upstream{}
	up.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up.calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		up.last.Store(r)
		up.body.Store(&b)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "11")
		w.WriteHeader(201)
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(up.srv.Close)
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	u, _ := url.Parse(up.srv.URL)
	front := httptest.NewServer(&FrontDoor{Upstream: u, ExtProc: extprocv3.NewExternalProcessorClient(conn)})
	t.Cleanup(front.Close)
	return &harness{vigil: v, up: up, front: front.URL}
}

func (h *harness) send(t *testing.T, method, path, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, h.front+path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func headerOf(m *corev3.HeaderMap, name string) (string, bool) {
	for _, h := range m.GetHeaders() {
		if h.GetKey() == name {
			return string(h.GetRawValue()), true
		}
	}
	return "", false
}

// mapReader lets Vigil's extractor read a header map.
type mapReader struct{ m *corev3.HeaderMap }

func (r mapReader) Header(name string) string { v, _ := headerOf(r.m, name); return v }

func TestFrontDoorSpeaksExtProcLikeEnvoy(t *testing.T) {
	h := newHarness(t, &fakeVigil{}, "")
	resp, body := h.send(t, "PUT", "/shopapi-bid/order?x=1", `{"item_id":1}`, "Content-Type", "application/json", "X-Envoy-Original-Path", "/spoofed")
	if resp.StatusCode != 201 || body != `{"ok":true}` {
		t.Fatalf("proxied answer: %d %q", resp.StatusCode, body)
	}
	h.vigil.waitEnded(t, 1)
	reqs := h.vigil.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d messages, want request_headers, request_body, response_headers", len(reqs))
	}
	first := reqs[0]
	if pc := first.GetProtocolConfig(); pc.GetRequestBodyMode().String() != "BUFFERED" || pc.GetResponseBodyMode().String() != "NONE" {
		t.Errorf("protocol_config %v", pc)
	}
	attrs := first.GetAttributes()[filterName].GetFields()
	if !strings.HasPrefix(attrs["source.address"].GetStringValue(), "127.0.0.1:") || attrs["request.id"].GetStringValue() == "" {
		t.Errorf("attributes %v", attrs)
	}
	if port := attrs["source.port"].GetNumberValue(); port <= 0 || !strings.HasSuffix(attrs["source.address"].GetStringValue(), ":"+strconv.Itoa(int(port))) {
		t.Errorf("source.port %v: want the peer's port as a number, as Envoy sends it", attrs["source.port"])
	}
	hm := first.GetRequestHeaders().GetHeaders()
	for name, want := range map[string]string{":method": "PUT", ":path": "/shopapi-bid/order?x=1", ":scheme": "http", "content-type": "application/json", "content-length": "13", "x-forwarded-proto": "http"} {
		if got, _ := headerOf(hm, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if a, _ := headerOf(hm, ":authority"); a == "" {
		t.Error("no :authority")
	}
	if _, ok := headerOf(hm, "x-envoy-original-path"); ok {
		t.Error("x-envoy-* from the client reached Vigil")
	}
	for _, hv := range hm.GetHeaders() {
		if hv.GetValue() != "" {
			t.Errorf("header %s in value, not raw_value", hv.GetKey())
		}
	}
	if first.GetRequestHeaders().GetEndOfStream() {
		t.Error("end_of_stream on headers of a request with a body")
	}
	if b := reqs[1].GetRequestBody(); string(b.GetBody()) != `{"item_id":1}` || !b.GetEndOfStream() {
		t.Errorf("request_body %v", b)
	}
	rh := reqs[2].GetResponseHeaders().GetHeaders()
	if s, _ := headerOf(rh, ":status"); s != "201" {
		t.Errorf(":status %q", s)
	}
	if cl, _ := headerOf(rh, "content-length"); cl != "11" {
		t.Errorf("response content-length %q", cl)
	}
}

func TestFrontDoorXForwardedFor(t *testing.T) {
	h := newHarness(t, &fakeVigil{}, "")
	fp, err := detect.NewFingerprinter(detect.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	x, err := detect.NewExtractor(fp, 2) // the demo's trusted_hops
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for _, tc := range []struct {
		xff      []string
		wantXFF  string
		clientIP string
	}{
		{nil, "127.0.0.1", "127.0.0.1"},
		{[]string{"203.0.113.7"}, "203.0.113.7, 127.0.0.1", "203.0.113.7"},
		{[]string{"198.51.100.1, 203.0.113.7"}, "198.51.100.1, 203.0.113.7, 127.0.0.1", "203.0.113.7"},
	} {
		var hdr []string
		for _, v := range tc.xff {
			hdr = append(hdr, "X-Forwarded-For", v)
		}
		before := len(h.vigil.requests())
		h.send(t, "GET", "/shopapi-bid/search?q=a", "", hdr...)
		h.vigil.waitEnded(t, 1)
		first := h.vigil.requests()[before]
		hm := first.GetRequestHeaders().GetHeaders()
		if got, _ := headerOf(hm, "x-forwarded-for"); got != tc.wantXFF {
			t.Errorf("XFF %v: Vigil got %q, want %q", tc.xff, got, tc.wantXFF)
		}
		src := first.GetAttributes()[filterName].GetFields()["source.address"].GetStringValue()
		if ip := x.ClientIP(mapReader{hm}, src); ip != tc.clientIP {
			t.Errorf("XFF %v: Vigil's client IP %q, want %q", tc.xff, ip, tc.clientIP)
		}
		if !first.GetRequestHeaders().GetEndOfStream() {
			t.Error("a GET without a body: end_of_stream should be set on its headers")
		}
	}
	if got := h.up.last.Load().Header.Get("X-Forwarded-For"); got != "198.51.100.1, 203.0.113.7, 127.0.0.1" {
		t.Errorf("the back end got X-Forwarded-For %q", got)
	}
}

func TestFrontDoorPassesImmediateResponseBack(t *testing.T) {
	v := &fakeVigil{reply: func(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if req.GetRequestHeaders() == nil {
			return continueFor(req)
		}
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden},
			Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
				{Header: &corev3.HeaderValue{Key: "content-type", RawValue: []byte("application/json")}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD},
				{Header: &corev3.HeaderValue{Key: DecisionHeader, RawValue: []byte("d-1")}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD},
			}},
			Body: []byte(`{"error":"forbidden"}`),
		}}}
	}}
	h := newHarness(t, v, "")
	resp, body := h.send(t, "POST", "/shopapi-bid/login", "username=a&password=b", "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != 403 || body != `{"error":"forbidden"}` || resp.Header.Get(DecisionHeader) != "d-1" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("client got %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if h.up.calls.Load() != 0 {
		t.Fatal("the back end was called after an ImmediateResponse")
	}
	h.vigil.waitEnded(t, 1)
	if n := len(h.vigil.requests()); n != 1 {
		t.Fatalf("%d messages after an ImmediateResponse to the headers, want 1", n)
	}
}

func TestFrontDoorAppliesHeaderMutations(t *testing.T) {
	v := &fakeVigil{reply: func(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		r := continueFor(req)
		if req.GetRequestHeaders() != nil {
			r.GetRequestHeaders().Response = &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{
				SetHeaders:    []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-vigil-seen", RawValue: []byte("yes")}}},
				RemoveHeaders: []string{"x-secret"},
			}}
		}
		if req.GetResponseHeaders() != nil {
			r.GetResponseHeaders().Response = &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{
				SetHeaders: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-answered", RawValue: []byte("1")}}},
			}}
		}
		return r
	}}
	h := newHarness(t, v, "")
	resp, _ := h.send(t, "GET", "/shopapi-bid/search?q=a", "", "X-Secret", "s")
	last := h.up.last.Load()
	if last.Header.Get("X-Vigil-Seen") != "yes" || last.Header.Get("X-Secret") != "" {
		t.Fatalf("the back end got %v", last.Header)
	}
	if resp.Header.Get("X-Answered") != "1" {
		t.Fatalf("the client got %v", resp.Header)
	}
}

func TestFrontDoorFailsClosed(t *testing.T) {
	t.Run("vigil down", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // nothing listens there any more
		h := newHarness(t, nil, addr)
		resp, _ := h.send(t, "GET", "/shopapi-bid/search?q=a", "")
		if resp.StatusCode != 500 && resp.StatusCode != 504 {
			t.Fatalf("status %d with Vigil down, want 500 or 504", resp.StatusCode)
		}
		if h.up.calls.Load() != 0 {
			t.Fatal("the back end was called while Vigil was down")
		}
	})
	t.Run("no reply within the message timeout", func(t *testing.T) {
		v := &fakeVigil{reply: func(*extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse { return nil }}
		h := newHarness(t, v, "")
		resp, _ := h.send(t, "GET", "/shopapi-bid/search?q=a", "")
		if resp.StatusCode != 504 || h.up.calls.Load() != 0 {
			t.Fatalf("status %d, back end calls %d; want 504 and none", resp.StatusCode, h.up.calls.Load())
		}
		h.vigil.waitEnded(t, 1) // the stream is reset, not left open
	})
	t.Run("wrong reply", func(t *testing.T) {
		v := &fakeVigil{reply: func(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
			return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
		}}
		h := newHarness(t, v, "")
		resp, _ := h.send(t, "GET", "/shopapi-bid/search?q=a", "")
		if resp.StatusCode != 500 || h.up.calls.Load() != 0 {
			t.Fatalf("status %d, back end calls %d; want 500 and none", resp.StatusCode, h.up.calls.Load())
		}
	})
}

func TestFrontDoorRefusesBodiesOverTheBufferLimit(t *testing.T) {
	h := newHarness(t, &fakeVigil{}, "")
	resp, _ := h.send(t, "PATCH", "/shopapi-bid/order/1", strings.Repeat("x", 1<<20+1), "Content-Type", "application/json")
	if resp.StatusCode != 413 || h.up.calls.Load() != 0 {
		t.Fatalf("status %d, back end calls %d; want 413 and none", resp.StatusCode, h.up.calls.Load())
	}
}

func TestFrontDoorAnswers503WhenTheBackEndIsDown(t *testing.T) {
	h := newHarness(t, &fakeVigil{}, "")
	h.up.srv.Close() // nothing answers there any more
	resp, body := h.send(t, "GET", "/shopapi-bid/search?q=a", "")
	if resp.StatusCode != 503 || !strings.Contains(body, "upstream connect error") {
		t.Fatalf("client got %d %q, want 503 from the front door", resp.StatusCode, body)
	}
	h.vigil.waitEnded(t, 1)
	reqs := h.vigil.requests()
	if len(reqs) != 2 || reqs[1].GetResponseHeaders() == nil {
		t.Fatalf("Vigil got %d messages, want request_headers and the 503's response_headers (as Envoy's router reply goes through the filter)", len(reqs))
	}
	if s, _ := headerOf(reqs[1].GetResponseHeaders().GetHeaders(), ":status"); s != "503" {
		t.Errorf(":status %q, want 503", s)
	}
}
