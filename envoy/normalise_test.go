package envoy

import (
	"context"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/vigil-project/vigil/decoy"
	"github.com/vigil-project/vigil/detect"
)

// TestNormalisedPathsReachDecoysAndTemplates: the examples' Envoy configs
// normalise paths (normalize_path, merge_slashes, escaped slashes refused), so
// what Envoy hands Vigil for //.env or x/../.env is /shop/.env, which must hit
// the decoy, and /shop/order/42 in any spelling must template as
// /shop/order/{id}. A deployment that leaves normalisation off hands Vigil the
// raw spellings: Vigil cleans them itself, so they hit and template the same.
func TestNormalisedPathsReachDecoysAndTemplates(t *testing.T) {
	for _, tc := range []struct {
		raw   string // what the client sent (normalisation off: what Vigil gets)
		envoy string // what Envoy hands Vigil with the examples' settings ("": refused with 400)
		want  string // the endpoint template Vigil records
		decoy bool
	}{
		{"/shop/.env", "/shop/.env", "/shop/.env", true},
		{"/shop//.env", "/shop/.env", "/shop/.env", true},
		{"/shop/x/../.env", "/shop/.env", "/shop/.env", true},
		{"/shop/./.env", "/shop/.env", "/shop/.env", true},
		{"/shop/%2eenv", "/shop/.env", "/shop/.env", true},
		{"/shop/%2E%2E/shop/.env", "/shop/.env", "/shop/.env", true},
		{"/shop%2F.env", "", "/shop/.env", true},
		{"/shop\\.env", "", "/shop/.env", true},
		{"/shop/order/42", "/shop/order/42", "/shop/order/{id}", false},
		{"/shop//order//42", "/shop/order/42", "/shop/order/{id}", false},
		{"/shop/order/./42", "/shop/order/42", "/shop/order/{id}", false},
		{"/shop/cart/../order/42", "/shop/order/42", "/shop/order/{id}", false},
		{"/shop/order%2F42", "", "/shop/order/{id}", false},
	} {
		for _, path := range []string{tc.envoy, tc.raw} {
			if path == "" {
				continue
			}
			cfg, _ := newTestConfig(t, detect.ModeBlock)
			api, _ := cfg.Catalog.Load().Lookup("shop")
			fp, _ := detect.NewFingerprinter(make([]byte, 32))
			trap, err := decoy.New(decoy.Config{TTL: time.Hour, APIs: []decoy.APIDecoys{{API: api, Paths: []string{"/.env"}}}}, fp, decoy.Actions{
				Block: func(detect.Entry) {}, Report: func(*detect.Attack) {}, AttackID: func() string { return "a" }, Now: time.Now,
			})
			if err != nil {
				t.Fatal(err)
			}
			var seen string
			cfg.Enforcer.SetDecoy(func(req *detect.Request) *detect.DecoyResponse {
				seen = req.Path
				return trap.Hook(req)
			})
			m := &memStream{ctx: context.Background(), in: []*extprocv3.ProcessingRequest{headers(":method", "GET", ":path", path, ":authority", "shop.example.com", "x-forwarded-for", "203.0.113.9")}}
			if err := NewExtProc(cfg).Process(m); err != nil {
				t.Fatal(err)
			}
			if got := detect.TemplatePath(seen); got != tc.want {
				t.Errorf("%q: Vigil saw %q, templated %q, want %q", path, seen, got, tc.want)
			}
			hit := m.last.GetImmediateResponse() != nil
			if hit != tc.decoy {
				t.Errorf("%q: decoy hit %v, want %v (Vigil saw %q)", path, hit, tc.decoy, seen)
			}
			if hit && !strings.Contains(string(m.last.GetImmediateResponse().GetBody()), "=") {
				t.Errorf("%q: the decoy answer is not the .env file: %q", path, m.last.GetImmediateResponse().GetBody())
			}
		}
	}
}
