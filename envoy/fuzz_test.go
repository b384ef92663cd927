package envoy

import (
	"context"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/inspect"
)

// seedHeaders are header lists Envoy sends, used as fuzz seeds.
var seedHeaders = [][]string{
	{":method", "GET", ":path", "/shop/order/1?x=1", ":authority", "shop.example.com", "x-forwarded-for", "1.2.3.4, 10.0.0.1"},
	{":method", "PATCH", ":path", "/shop/order/1", ":authority", "[::1]:8443", "content-type", "application/json-patch+json", "content-length", "99"},
	{":method", "POST", ":path", "//a//b", "authorization", "Basic dXNlcjpwYXNz", "cookie", "a=b; session=xyz", "x-api-key", "k"},
	{":path", "", "content-length", "-5", "x-envoy-external-address", "not an ip", "authorization", "Bearer a.b.c"},
}

// FuzzExtProcStream feeds arbitrary request-header messages, followed by a
// body and response headers, through the ext_proc handler: it must never
// panic, and outside observability mode it answers every message with the
// matching reply or an ImmediateResponse, or ends the stream with an error.
func FuzzExtProcStream(f *testing.F) {
	for _, h := range seedHeaders {
		b, _ := proto.Marshal(headers(h...))
		f.Add(b, []byte(`[{"op":"add"},{"op":"remove"}]`), false)
	}
	f.Add([]byte{0x12, 0x00}, []byte{}, true)
	inj, _ := proto.Marshal(headers(":method", "POST", ":path", "/shop/q?id=1%27%20OR%201=1--", "content-type", "application/json"))
	f.Add(inj, []byte(`{"a":{"$where":"sleep(1)"},"b":"<script>x</script>","c":[{"d":"../../etc/passwd"}]}`), false)
	for _, ct := range []string{"application/x-www-form-urlencoded", "application/json", "multipart/form-data; boundary=b"} {
		login, _ := proto.Marshal(headers(":method", "POST", ":path", "/shop/login", ":authority", "shop.example.com", "content-type", ct))
		f.Add(login, []byte("username=mallory&password=x"), false)
		f.Add(login, []byte(`{"user":{"email":"Mallory@x","password":"y"}}`), false)
		f.Add(login, []byte("--b\r\nContent-Disposition: form-data; name=\"login\"\r\n\r\nmallory\r\n--b--"), false)
	}
	cfg, block := newTestConfig(f, detect.ModeBlock)
	block.Put(detect.Entry{Kind: detect.KindIP, Value: "1.2.3.4"})
	block.Put(detect.Entry{Kind: detect.KindUsername, Value: "mallory"}) // a login body naming it is refused
	withInspection(&cfg)
	s := NewExtProc(cfg)
	f.Fuzz(func(t *testing.T, first, body []byte, observe bool) {
		var msg extprocv3.ProcessingRequest
		if proto.Unmarshal(first, &msg) != nil {
			return
		}
		in := []*extprocv3.ProcessingRequest{&msg,
			{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: body, EndOfStream: true}}},
			responseHeaders}
		for _, m := range in {
			m.ObservabilityMode = observe
		}
		m := &memStream{ctx: context.Background(), in: in}
		err := s.Process(m)
		if observe && m.sent != 0 {
			t.Fatalf("%d replies in observability mode", m.sent)
		}
		if err == nil && !observe && m.sent != len(in) && m.last.GetImmediateResponse() == nil {
			t.Fatalf("%d replies to %d messages, last %v", m.sent, len(in), m.last)
		}
	})
}

// FuzzCheck feeds arbitrary CheckRequests to ext_authz: never a panic, never
// an RPC error, always an allow or a deny with a response.
func FuzzCheck(f *testing.F) {
	for _, h := range seedHeaders {
		m := map[string]string{}
		for i := 0; i+1 < len(h); i += 2 {
			m[h[i]] = h[i+1]
		}
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "1.2.3.4"}}}},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: m[":method"], Path: m[":path"], Host: m[":authority"], Headers: m, RawBody: []byte(`[1,2,3]`)}}}}
		b, _ := proto.Marshal(req)
		f.Add(b)
	}
	login, _ := proto.Marshal(authzLogin("/shop/login", "application/json", `{"username":"mallory","password":"x"}`))
	f.Add(login)
	cfg, block := newTestConfig(f, detect.ModeBlock)
	block.Put(detect.Entry{Kind: detect.KindIP, Value: "1.2.3.4"})
	block.Put(detect.Entry{Kind: detect.KindUsername, Value: "mallory"})
	withInspection(&cfg)
	s := NewExtAuthz(cfg)
	f.Fuzz(func(t *testing.T, b []byte) {
		var req authv3.CheckRequest
		if proto.Unmarshal(b, &req) != nil {
			return
		}
		resp, err := s.Check(context.Background(), &req)
		if err != nil || resp == nil || resp.GetStatus() == nil {
			t.Fatalf("Check: %v, %v", resp, err)
		}
		if resp.GetStatus().GetCode() != 0 && resp.GetDeniedResponse() == nil {
			t.Fatalf("a denial without a response: %v", resp)
		}
	})
}

// withInspection turns content inspection on for the test catalog's APIs,
// every call sampled for the learner.
func withInspection(cfg *Config) {
	cat := cfg.Catalog.Load()
	for _, api := range cat.APIs() {
		api.Inspection = true
	}
	cat.Match("other.example.com", "/elsewhere").Inspection = true
	cfg.Content = detect.NewContentGuard(inspect.New(inspect.Config{}))
	cfg.Content.SetSampleEvery(1)
}
