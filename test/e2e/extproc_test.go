package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-project/vigil/server"
	"github.com/vigil-project/vigil/test/envoysim"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// Envoy's usual set-up in front of Vigil: request headers and a BUFFERED
// request body, response headers.
var buffered = envoysim.Config{
	RequestHeaderMode:  envoysim.Send,
	RequestBodyMode:    envoysim.Buffered,
	ResponseHeaderMode: envoysim.Send,
	MessageTimeout:     5 * time.Second,
}

func ok(envoysim.HTTPRequest) envoysim.HTTPResponse {
	return envoysim.HTTPResponse{Status: 200, Headers: [][2]string{{"content-type", "application/json"}}, Body: []byte(`{"ok":true}`)}
}

func get(path string, headers ...string) envoysim.HTTPRequest {
	return envoysim.HTTPRequest{Method: "GET", Path: path, Authority: "shop.example.com", Headers: envoysim.HeaderPairs(headers...)}
}

// blockBody is the JSON body of a refusal.
type blockBody struct {
	Error      string `json:"error"`
	DecisionID string `json:"decision_id"`
	Reason     string `json:"reason"`
}

func (v *vigil) send(cfg envoysim.Config, req envoysim.HTTPRequest) *envoysim.Result {
	v.t.Helper()
	res, err := envoysim.Do(context.Background(), v.extproc, cfg, req, ok)
	if err != nil {
		v.t.Fatalf("%s %s: %v", req.Method, req.Path, err)
	}
	return res
}

// assertBlocked checks the refusal a client sees: status, JSON body with
// the decision ID that the header carries, and the reason.
func assertBlocked(t *testing.T, res *envoysim.Result, status int, reason string) blockBody {
	t.Helper()
	if res.UpstreamCalled {
		t.Fatalf("the upstream was called for a refused request")
	}
	if res.Status != status {
		t.Fatalf("status %d, want %d (body %s)", res.Status, status, res.Body)
	}
	if ct := res.Header("content-type"); ct != "application/json" {
		t.Fatalf("content-type %q", ct)
	}
	var b blockBody
	if err := json.Unmarshal(res.Body, &b); err != nil {
		t.Fatalf("body %q: %v", res.Body, err)
	}
	if b.DecisionID == "" || res.Header("x-vigil-decision-id") != b.DecisionID {
		t.Fatalf("decision id: header %q, body %q", res.Header("x-vigil-decision-id"), b.DecisionID)
	}
	if b.Reason != reason {
		t.Fatalf("reason %q, want %q", b.Reason, reason)
	}
	return b
}

func TestExtProcAllowsThenBlocksAnIPAndUnblocks(t *testing.T) {
	v := start(t, "trusted_hops: 1\n")
	req := get("/shopapi-bid/order/17", "x-forwarded-for", "100.100.1.10")
	if res := v.send(buffered, req); !res.UpstreamCalled || res.Status != 200 {
		t.Fatalf("before blocking: upstream %v status %d", res.UpstreamCalled, res.Status)
	}
	out := v.MustDo("POST", "/v1/blocklist", `{"kind":"ip","value":"100.100.1.10","ttl":"10m","reason":"manual"}`, 201)
	var entry struct{ Kind, Value, Reason, ExpiresAt string }
	decodeJSON(t, out, &entry)
	if entry.Kind != "ip" || entry.Value != "100.100.1.10" || entry.Reason != "manual" {
		t.Fatalf("stored entry %s", out)
	}
	// The very next request is refused, and only that client's.
	b := assertBlocked(t, v.send(buffered, req), 403, "blocklist")
	if b.Error != "forbidden" {
		t.Fatalf("error %q", b.Error)
	}
	if res := v.send(buffered, get("/shopapi-bid/order/17", "x-forwarded-for", "100.100.1.11")); res.Status != 200 {
		t.Fatalf("another client got %d", res.Status)
	}
	if !strings.Contains(v.Logs.String(), b.DecisionID) {
		t.Fatalf("the decision %s is not in the log", b.DecisionID)
	}
	v.MustDo("DELETE", "/v1/blocklist/ip/100.100.1.10", "", 204)
	if res := v.send(buffered, req); res.Status != 200 {
		t.Fatalf("after unblocking: %d", res.Status)
	}
	v.MustDo("DELETE", "/v1/blocklist/ip/100.100.1.10", "", 404)
}

// TestExtProcBlocksACIDRRange: a ranged ip entry, written as a person
// would (host bits set), refuses the addresses inside it and only those,
// is listed and removed by its normalised value, and also works on the
// allow list, for IPv4 and IPv6.
func TestExtProcBlocksACIDRRange(t *testing.T) {
	v := start(t, "trusted_hops: 1\n")
	from := func(ip string) envoysim.HTTPRequest {
		return get("/shopapi-bid/order/17", "x-forwarded-for", ip)
	}
	out := v.MustDo("POST", "/v1/blocklist", `{"kind":"ip","value":"203.0.113.77/24","ttl":"10m"}`, 201)
	var entry struct{ Kind, Value string }
	decodeJSON(t, out, &entry)
	if entry.Kind != "ip" || entry.Value != "203.0.113.0/24" {
		t.Fatalf("stored entry %s, want the range 203.0.113.0/24", out)
	}
	v.MustDo("POST", "/v1/blocklist", `{"kind":"ip","value":"2001:db8:77::/48"}`, 201)
	for _, ip := range []string{"203.0.113.1", "203.0.113.254", "2001:db8:77::5"} {
		assertBlocked(t, v.send(buffered, from(ip)), 403, "blocklist")
	}
	for _, ip := range []string{"203.0.114.1", "203.0.112.255", "2001:db8:78::5"} {
		if res := v.send(buffered, from(ip)); !res.UpstreamCalled || res.Status != 200 {
			t.Fatalf("%s, outside the ranges: upstream %v, status %d", ip, res.UpstreamCalled, res.Status)
		}
	}
	var listed struct {
		Entries []struct{ Kind, Value string }
	}
	decodeJSON(t, v.MustDo("GET", "/v1/blocklist", "", 200), &listed)
	if fmt.Sprint(listed.Entries) != "[{ip 2001:db8:77::/48} {ip 203.0.113.0/24}]" {
		t.Fatalf("listed %v, want both ranges", listed.Entries)
	}
	// An allow-listed address inside the blocked range goes through.
	v.MustDo("POST", "/v1/allowlist", `{"kind":"ip","value":"203.0.113.9"}`, 201)
	if res := v.send(buffered, from("203.0.113.9")); res.Status != 200 {
		t.Fatalf("an allow-listed address inside a blocked range got %d", res.Status)
	}
	v.MustDo("DELETE", "/v1/blocklist/ip/203.0.113.0%2F24", "", 204)
	if res := v.send(buffered, from("203.0.113.1")); res.Status != 200 {
		t.Fatalf("after removing the range: %d", res.Status)
	}
}

func TestExtProcBlocksATokenWithoutKeepingIt(t *testing.T) {
	v := start(t, "")
	const secret = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.c2ln"
	out := v.MustDo("POST", "/v1/blocklist", `{"kind":"token","value":"`+secret+`","ttl":"1h","reason":"stolen"}`, 201)
	var entry struct{ Value string }
	decodeJSON(t, out, &entry)
	if !strings.HasPrefix(entry.Value, "fp:") || strings.Contains(out, secret) {
		t.Fatalf("the stored entry shows the secret: %s", out)
	}
	assertBlocked(t, v.send(buffered, get("/api/v1/users/me", "authorization", "Bearer "+secret)), 403, "blocklist")
	if res := v.send(buffered, get("/api/v1/users/me", "authorization", "Bearer other")); res.Status != 200 {
		t.Fatalf("another token got %d", res.Status)
	}
	// The user name read from the JWT is an identity too.
	v.MustDo("DELETE", "/v1/blocklist/token/"+entry.Value, "", 204)
	v.MustDo("POST", "/v1/blocklist", `{"kind":"username","value":"alice"}`, 201)
	assertBlocked(t, v.send(buffered, get("/api/v1/users/me", "authorization", "Bearer "+secret)), 403, "blocklist")
	for _, where := range []string{v.Logs.String(), v.MustDo("GET", "/v1/blocklist", "", 200)} {
		if strings.Contains(where, secret) {
			t.Fatalf("the token appears in clear:\n%s", where)
		}
	}
}

func TestExtProcAllowListWinsOverBlockList(t *testing.T) {
	v := start(t, "trusted_hops: 1\n")
	v.MustDo("POST", "/v1/blocklist", `{"kind":"ip","value":"10.1.1.1"}`, 201)
	v.MustDo("POST", "/v1/allowlist", `{"kind":"api_key","value":"partner-key","reason":"partner"}`, 201)
	req := get("/v2/orders", "x-forwarded-for", "10.1.1.1", "x-api-key", "partner-key")
	if res := v.send(buffered, req); res.Status != 200 {
		t.Fatalf("allow-listed key from a blocked IP got %d", res.Status)
	}
	v.MustDo("DELETE", "/v1/allowlist/api_key/partner-key", "", 204)
	assertBlocked(t, v.send(buffered, req), 403, "blocklist")
}

func TestExtProcListEntryExpires(t *testing.T) {
	// The server's clock, not the wall clock: a slow machine can neither
	// outlive the entry before the first call nor hold it past its TTL.
	clock := vigiltest.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	v := startWith(t, t.TempDir(), "trusted_hops: 1\n", server.Options{Now: clock.Now})
	v.MustDo("POST", "/v1/blocklist", `{"kind":"ip","value":"10.9.9.9","ttl":"10m"}`, 201)
	req := get("/v1/things", "x-forwarded-for", "10.9.9.9")
	assertBlocked(t, v.send(buffered, req), 403, "blocklist")
	clock.Advance(10*time.Minute - time.Second)
	assertBlocked(t, v.send(buffered, req), 403, "blocklist")
	clock.Advance(time.Second)
	if res := v.send(buffered, req); res.Status != 200 {
		t.Fatalf("the entry's TTL of 10m has passed on the server's clock, the call got %d", res.Status)
	}
}

const limitsConfig = `
apis:
  - name: shop-bidding
    hosts: [shop.example.com]
    base_path: /shopapi-bid
    mode: block
    max_body_bytes: 100000
    max_json_elements: 1000
  - name: shop-dry-run
    hosts: [shop.example.com]
    base_path: /dry
    mode: detect
    max_body_bytes: 1000
`

// jsonPatch returns a json-patch document of n operations.
func jsonPatch(n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"op":"add","path":"/metadata/labels/l%d","value":"v"}`, i)
	}
	b.WriteByte(']')
	return b.Bytes()
}

func patch(path string, body []byte) envoysim.HTTPRequest {
	return envoysim.HTTPRequest{Method: "PATCH", Path: path, Authority: "shop.example.com",
		Headers: [][2]string{{"content-type", "application/json-patch+json"}}, Body: body}
}

func TestExtProcRefusesAJSONPatchFloodWhileStreaming(t *testing.T) {
	v := start(t, limitsConfig)
	big := jsonPatch(10000) // about 550 KB, 10,000 operations
	streamed := buffered
	streamed.RequestBodyMode = envoysim.Streamed
	streamed.ChunkSize = 4096
	// With no content-length the server learns the size only as chunks come.
	req := patch("/shopapi-bid/order/7", big)
	req.Headers = append(req.Headers, [2]string{"transfer-encoding", "chunked"})
	res := v.send(streamed, req)
	assertBlocked(t, res, 413, "too_many_json_elements")
	var chunks int
	for _, m := range res.Requests {
		if m.GetRequestBody() != nil {
			chunks++
		}
	}
	// 1,000 operations are about 55 KB: the refusal comes at the chunk that
	// crosses the limit, long before the 550 KB body is through.
	if chunks > 20 {
		t.Fatalf("refused after %d chunks of 4 KiB; the body was held too long", chunks)
	}
	// A small patch goes through.
	if res := v.send(streamed, patch("/shopapi-bid/order/7", jsonPatch(10))); res.Status != 200 {
		t.Fatalf("small patch: %d", res.Status)
	}
}

func TestExtProcRefusesOversizedBodies(t *testing.T) {
	v := start(t, limitsConfig)
	// BUFFERED: the whole body in one message.
	body := bytes.Repeat([]byte("a"), 200000)
	req := envoysim.HTTPRequest{Method: "POST", Path: "/shopapi-bid/upload", Authority: "shop.example.com", Body: body}
	res := v.send(buffered, req)
	assertBlocked(t, res, 413, "body_too_large")
	// The declared content-length alone is enough: refused on the headers.
	for _, m := range res.Requests {
		if m.GetRequestBody() != nil {
			t.Fatalf("the body was sent although content-length already exceeded the limit")
		}
	}
	// In detect mode the request flows and the would-be refusal is counted.
	before := v.Metric("vigil_verdicts_total", `outcome="would_block"`, `reason="body_too_large"`)
	res = v.send(buffered, envoysim.HTTPRequest{Method: "POST", Path: "/dry/upload", Authority: "shop.example.com", Body: bytes.Repeat([]byte("a"), 5000)})
	if res.Status != 200 || !res.UpstreamCalled {
		t.Fatalf("detect mode refused: %d", res.Status)
	}
	if after := v.Metric("vigil_verdicts_total", `outcome="would_block"`, `reason="body_too_large"`); after != before+1 {
		t.Fatalf("would_block body_too_large went from %v to %v", before, after)
	}
}

func TestExtProcModesNeverBlockInLearnAndDetect(t *testing.T) {
	v := start(t, `
trusted_hops: 1
apis:
  - {name: learning, base_path: /learn, mode: learn}
  - {name: watching, base_path: /watch, mode: detect}
  - {name: guarding, base_path: /guard, mode: block}
`)
	v.MustDo("POST", "/v1/blocklist", `{"kind":"ip","value":"203.0.113.9"}`, 201)
	for _, p := range []string{"/learn/a", "/watch/a"} {
		if res := v.send(buffered, get(p, "x-forwarded-for", "203.0.113.9")); res.Status != 200 {
			t.Fatalf("%s: %d", p, res.Status)
		}
	}
	assertBlocked(t, v.send(buffered, get("/guard/a", "x-forwarded-for", "203.0.113.9")), 403, "blocklist")
	if n := v.Metric("vigil_verdicts_total", `service="ext_proc"`, `outcome="would_block"`, `reason="blocklist"`); n != 2 {
		t.Fatalf("would_block blocklist = %v, want 2", n)
	}
}

func TestExtProcObservabilityModeNeverAnswers(t *testing.T) {
	v := start(t, "")
	observe := envoysim.Config{
		ObservabilityMode: true, RequestHeaderMode: envoysim.Skip, ResponseHeaderMode: envoysim.Send,
		ResponseBodyMode: envoysim.Streamed, ChunkSize: 100,
		ResponseAttributes: map[string]string{"request.id": "obs-1"},
	}
	res, err := envoysim.Do(context.Background(), v.extproc, observe, get("/catalog/items/42"), func(envoysim.HTTPRequest) envoysim.HTTPResponse {
		return envoysim.HTTPResponse{Status: 404, Body: bytes.Repeat([]byte("x"), 1000)}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Responses) != 0 || len(res.Violations) != 0 {
		t.Fatalf("Vigil answered in observability mode: %v", res.Violations)
	}
	if res.Status != 404 {
		t.Fatalf("status %d", res.Status)
	}
	// An observer that sees request headers cannot refuse: a blocked client
	// is recorded as a would-be refusal, never as a block.
	v.MustDo("POST", "/v1/blocklist", `{"kind":"ip","value":"127.0.0.1"}`, 201)
	watch := observe
	watch.RequestHeaderMode = envoysim.Send
	watch.RequestAttributes = map[string]string{"source.address": "127.0.0.1:40000"}
	res, err = envoysim.Do(context.Background(), v.extproc, watch, get("/catalog/items/43"), ok)
	if err != nil || len(res.Responses) != 0 || res.Status != 200 {
		t.Fatalf("observer with request headers: %v, %d replies, status %d", err, len(res.Responses), res.Status)
	}
	vigiltest.Eventually(t, 5*time.Second, func() error {
		deny := v.Metric("vigil_verdicts_total", `service="ext_proc"`, `outcome="deny"`)
		would := v.Metric("vigil_verdicts_total", `service="ext_proc"`, `outcome="would_block"`, `reason="blocklist"`)
		if deny != 0 || would != 1 {
			return fmt.Errorf("deny %v, would_block %v; want 0 and 1", deny, would)
		}
		return nil
	})
}

func TestExtProcBuildsTheAPIInventory(t *testing.T) {
	v := start(t, limitsConfig)
	for _, p := range []string{"/shopapi-bid/order/1", "/shopapi-bid/order/2", "/shopapi-bid/order/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "/shopapi-bid/search?q=bike"} {
		v.send(buffered, get(p))
	}
	other := get("/api/v2/users/8812/orders")
	other.Authority = "partners.example.com:8443"
	v.send(buffered, other)
	type endpoint struct {
		Method, Path string
		Requests     int
		Status       map[string]int
	}
	type api struct {
		Name, BasePath string
		Discovered     bool
		Requests       int
		Endpoints      []endpoint
	}
	vigiltest.Eventually(t, 5*time.Second, func() error {
		var out struct{ APIs []api }
		decodeJSON(t, v.MustDo("GET", "/v1/apis", "", 200), &out)
		byName := map[string]api{}
		for _, a := range out.APIs {
			byName[a.Name] = a
		}
		shop := byName["shop-bidding"]
		if shop.Discovered || shop.Requests != 4 {
			return fmt.Errorf("shop-bidding: %+v", shop)
		}
		var ids *endpoint
		for i, e := range shop.Endpoints {
			if e.Path == "/shopapi-bid/order/{id}" && e.Method == "GET" {
				ids = &shop.Endpoints[i]
			}
		}
		if ids == nil || ids.Requests != 3 || ids.Status["2xx"] != 3 {
			return fmt.Errorf("no GET /shopapi-bid/order/{id} with 3 requests: %+v", shop.Endpoints)
		}
		d, ok := byName["partners.example.com/api/v2/users"]
		if !ok || !d.Discovered || len(d.Endpoints) != 1 || d.Endpoints[0].Path != "/api/v2/users/{id}/orders" {
			return fmt.Errorf("discovered API missing: %+v", out.APIs)
		}
		return nil
	})
}

func TestExtProcOutOfOrderAndMalformedMessages(t *testing.T) {
	v := start(t, "")
	ctx := context.Background()
	t.Run("response headers without request headers (envoy#38022)", func(t *testing.T) {
		s, err := envoysim.Stream(ctx, v.extproc)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.Send(envoysim.ResponseHeadersMsg(envoysim.HeaderPairs(":status", "400"), true))
		r, err := s.Recv(5 * time.Second)
		if err != nil || r.GetResponseHeaders() == nil {
			t.Fatalf("reply %v, %v", r, err)
		}
	})
	t.Run("body before headers", func(t *testing.T) {
		s, _ := envoysim.Stream(ctx, v.extproc)
		defer s.Close()
		s.Send(envoysim.BodyMsg([]byte(`{"a":1}`), true))
		r, err := s.Recv(5 * time.Second)
		if err != nil || r.GetRequestBody() == nil {
			t.Fatalf("reply %v, %v", r, err)
		}
	})
	t.Run("request headers twice", func(t *testing.T) {
		s, _ := envoysim.Stream(ctx, v.extproc)
		defer s.Close()
		h := envoysim.HeadersMsg(":method", "GET", ":path", "/x", ":authority", "a")
		s.Send(h)
		if r, err := s.Recv(5 * time.Second); err != nil || r.GetRequestHeaders() == nil {
			t.Fatalf("first reply %v, %v", r, err)
		}
		s.Send(h)
		_, err := s.Recv(5 * time.Second)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "twice") {
			t.Fatalf("want InvalidArgument saying twice, got %v", err)
		}
	})
	t.Run("empty message", func(t *testing.T) {
		s, _ := envoysim.Stream(ctx, v.extproc)
		defer s.Close()
		s.Send(&extprocv3.ProcessingRequest{})
		_, err := s.Recv(5 * time.Second)
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("want InvalidArgument, got %v", err)
		}
	})
	t.Run("huge header value", func(t *testing.T) {
		res := v.send(buffered, get("/x", "x-forwarded-for", strings.Repeat("1.2.3.4,", 50000), "cookie", strings.Repeat("a=b; ", 20000)))
		if res.Status != 200 {
			t.Fatalf("status %d", res.Status)
		}
	})
	t.Run("client cancels mid-stream", func(t *testing.T) {
		s, _ := envoysim.Stream(ctx, v.extproc)
		s.Send(envoysim.HeadersMsg(":method", "POST", ":path", "/upload", ":authority", "a", "content-type", "application/json"))
		if _, err := s.Recv(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		s.Send(envoysim.BodyMsg([]byte(`[1,2,`), false))
		s.Cancel()
		s.Close()
	})
	if n := v.Metric("vigil_protocol_errors_total", `service="ext_proc"`); n != 2 {
		t.Fatalf("protocol errors %v, want 2", n)
	}
	// The server is still healthy.
	if res := v.send(buffered, get("/after")); res.Status != 200 {
		t.Fatalf("after the bad streams: %d", res.Status)
	}
}

func TestExtProcEveryPhaseWithTrailersAndPartialBodies(t *testing.T) {
	v := start(t, limitsConfig)
	all := envoysim.Config{
		RequestHeaderMode: envoysim.Send, ResponseHeaderMode: envoysim.Send,
		RequestBodyMode: envoysim.BufferedPartial, ResponseBodyMode: envoysim.Streamed,
		RequestTrailerMode: envoysim.Send, ResponseTrailerMode: envoysim.Send,
		BufferLimit: 1024, ChunkSize: 300, MessageTimeout: 5 * time.Second,
	}
	req := envoysim.HTTPRequest{Method: "POST", Path: "/shopapi-bid/order", Authority: "shop.example.com",
		Body: bytes.Repeat([]byte("b"), 5000), Trailers: [][2]string{{"x-checksum", "abc"}}}
	res, err := envoysim.Do(context.Background(), v.extproc, all, req, func(envoysim.HTTPRequest) envoysim.HTTPResponse {
		return envoysim.HTTPResponse{Status: 201, Body: bytes.Repeat([]byte("r"), 2000), Trailers: [][2]string{{"grpc-status", "0"}}}
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 201 || !res.UpstreamCalled {
		t.Fatalf("status %d", res.Status)
	}
	kinds := map[string]int{}
	for _, r := range res.Responses {
		kinds[envoysim.ReplyKind(r)]++
	}
	for _, k := range []string{"request_headers", "request_body", "request_trailers", "response_headers", "response_body", "response_trailers"} {
		if kinds[k] == 0 {
			t.Fatalf("no %s reply: %v", k, kinds)
		}
	}
}

func TestExtProcFullQueueNeverDelaysOrRefuses(t *testing.T) {
	v := start(t, "pipeline:\n  queue_size: 1\n  join_window: 1h\n")
	for i := range 200 {
		if res := v.send(buffered, get(fmt.Sprintf("/q/%d", i))); res.Status != 200 {
			t.Fatalf("request %d: %d", i, res.Status)
		}
	}
	// Every record was either queued or dropped and counted, never waited for.
	vigiltest.Eventually(t, 5*time.Second, func() error {
		if n := v.Metric("vigil_queue_pushed_total") + v.Metric("vigil_queue_dropped_total"); n != 200 {
			return fmt.Errorf("pushed + dropped = %v, want 200", n)
		}
		return nil
	})
	// The drops are logged as they happen (at most one line per 10s, the
	// rest when Vigil stops), each line with the count since the last.
	dropped := v.Metric("vigil_queue_dropped_total")
	if dropped == 0 {
		t.Skip("no record dropped on this run") // the pipeline kept up with a queue of one
	}
	vigiltest.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(v.Logs.String(), "transaction queue full") {
			return fmt.Errorf("no warning of dropped records in the log")
		}
		return nil
	})
	v.Stop()
	logged := 0.0
	for _, line := range strings.Split(v.Logs.String(), "\n") {
		var l struct {
			Level, Message string
			Dropped        float64
		}
		if json.Unmarshal([]byte(line), &l) == nil && strings.Contains(l.Message, "transaction queue full") {
			if l.Level != "warn" {
				t.Fatalf("level %q: %s", l.Level, line)
			}
			logged += l.Dropped
		}
	}
	if logged != dropped {
		t.Fatalf("the log reports %v dropped records, the metric %v", logged, dropped)
	}
}

// TestInventoryOverflowIsCountedAndLogged: a call to a new endpoint past
// discovery.max_endpoints_per_api is counted in a metric and logged.
func TestInventoryOverflowIsCountedAndLogged(t *testing.T) {
	v := start(t, "discovery:\n  max_endpoints_per_api: 2\napis:\n  - {name: shop, hosts: [shop.example.com], base_path: /shop}\n")
	for _, p := range []string{"/shop/items", "/shop/cart", "/shop/orders", "/shop/users"} {
		v.send(buffered, get(p))
	}
	vigiltest.Eventually(t, 5*time.Second, func() error {
		if n := v.Metric("vigil_inventory_overflow_total", `new="endpoint"`); n != 2 {
			return fmt.Errorf("endpoint overflow %v, want 2", n)
		}
		if logs := v.Logs.String(); !strings.Contains(logs, "API inventory full") || !strings.Contains(logs, `"api":"shop"`) {
			return fmt.Errorf("no warning of the inventory overflow in the log")
		}
		return nil
	})
}
