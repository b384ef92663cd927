package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/vigil-project/vigil/test/envoysim"
)

func (v *vigil) check(req envoysim.HTTPRequest, opts envoysim.CheckOptions) *authv3.CheckResponse {
	v.t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second // the machines are shared; latency is not what these tests check
	}
	resp, err := envoysim.Check(context.Background(), v.authz, req, opts)
	if err != nil {
		v.t.Fatalf("Check %s %s: a refusal must be a response, not an RPC error: %v", req.Method, req.Path, err)
	}
	return resp
}

func assertDenied(t *testing.T, resp *authv3.CheckResponse, status int, reason string) {
	t.Helper()
	if envoysim.Allowed(resp) {
		t.Fatalf("allowed, want denied")
	}
	if code := codes.Code(resp.GetStatus().GetCode()); code != codes.PermissionDenied {
		t.Fatalf("status code %v, want PERMISSION_DENIED", code)
	}
	d := resp.GetDeniedResponse()
	if got := envoysim.DeniedStatus(resp); got != status {
		t.Fatalf("HTTP status %d, want %d", got, status)
	}
	hs := map[string]string{}
	for _, h := range d.GetHeaders() {
		hs[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	if hs["content-type"] != "application/json" {
		t.Fatalf("content-type %q", hs["content-type"])
	}
	var b blockBody
	if err := json.Unmarshal([]byte(d.GetBody()), &b); err != nil {
		t.Fatalf("body %q: %v", d.GetBody(), err)
	}
	if b.DecisionID == "" || hs["x-vigil-decision-id"] != b.DecisionID || b.Reason != reason {
		t.Fatalf("denial header %q body %+v", hs["x-vigil-decision-id"], b)
	}
}

func TestExtAuthzAllowsWithADecisionHeaderAndDenies(t *testing.T) {
	v := start(t, "trusted_hops: 1\n"+limitsConfig)
	req := envoysim.HTTPRequest{Method: "GET", Path: "/shopapi-bid/order/5?x=1", Authority: "shop.example.com",
		Headers: envoysim.HeaderPairs("x-forwarded-for", "198.51.100.7", "x-api-key", "k-123"), SourceAddr: "10.0.0.2:5555"}
	resp := v.check(req, envoysim.CheckOptions{})
	if !envoysim.Allowed(resp) {
		t.Fatalf("denied: %v", resp.GetStatus())
	}
	var id string
	for _, h := range resp.GetOkResponse().GetHeaders() {
		if h.GetHeader().GetKey() == "x-vigil-decision-id" {
			id = h.GetHeader().GetValue()
		}
	}
	if len(id) != 24 {
		t.Fatalf("decision header %q", id)
	}
	v.MustDo("POST", "/v1/blocklist", `{"kind":"api_key","value":"k-123","ttl":"10m","reason":"manual"}`, 201)
	assertDenied(t, v.check(req, envoysim.CheckOptions{}), 403, "blocklist")
	// The same through header_map (encode_raw_headers).
	assertDenied(t, v.check(req, envoysim.CheckOptions{EncodeRawHeaders: true}), 403, "blocklist")
}

func TestExtAuthzRefusesOversizedAndFloodedBodies(t *testing.T) {
	v := start(t, limitsConfig)
	req := patch("/shopapi-bid/order/9", jsonPatch(1500))
	resp := v.check(req, envoysim.CheckOptions{MaxRequestBytes: 1 << 20, PackAsBytes: true})
	assertDenied(t, resp, 413, "too_many_json_elements")
	small := patch("/shopapi-bid/order/9", jsonPatch(3))
	if !envoysim.Allowed(v.check(small, envoysim.CheckOptions{MaxRequestBytes: 1 << 20})) {
		t.Fatal("a small patch was denied")
	}
	// A body only partly buffered still has its declared size checked.
	big := envoysim.HTTPRequest{Method: "POST", Path: "/shopapi-bid/upload", Authority: "shop.example.com",
		Body: []byte(strings.Repeat("a", 150000))}
	assertDenied(t, v.check(big, envoysim.CheckOptions{MaxRequestBytes: 1024, AllowPartialMessage: true}), 413, "body_too_large")
}

func TestExtAuthzSourceAddressIsTheClientWithoutTrustedHops(t *testing.T) {
	v := start(t, "")
	v.MustDo("POST", "/v1/blocklist", `{"kind":"ip","value":"192.0.2.44"}`, 201)
	// A spoofed X-Forwarded-For is ignored: no hop is trusted.
	req := envoysim.HTTPRequest{Method: "GET", Path: "/a", Authority: "h", SourceAddr: "192.0.2.44:40000",
		Headers: envoysim.HeaderPairs("x-forwarded-for", "8.8.8.8")}
	assertDenied(t, v.check(req, envoysim.CheckOptions{}), 403, "blocklist")
}
