package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vigil-project/vigil/server/config"
)

// adminFuzzRoutes are the admin API's routes that take untrusted input, in
// their body or in a path or query part; arg fills the "%s".
var adminFuzzRoutes = []struct {
	method, path string
	escape       bool // arg is one path segment (escaped), else a raw query
}{
	{"POST", "/v1/blocklist", false},
	{"POST", "/v1/allowlist", false},
	{"PUT", "/v1/models/shop", false},
	{"POST", "/v1/models/shop/import", false},
	{"PUT", "/v1/models/%s", true},
	{"POST", "/v1/models/%s/import", true},
	{"POST", "/v1/attacks/%s/false-positive", true},
	{"DELETE", "/v1/blocklist/ip/%s", true},
	{"DELETE", "/v1/allowlist/%s/x", true},
	{"GET", "/v1/forensics/token/%s", true},
	{"GET", "/v1/attacks?%s", false},
	{"GET", "/v1/attacks/%s", true},
	{"GET", "/v1/blocklist?%s", false},
	{"GET", "/v1/models/%s", true},
	{"GET", "/v1/apis/shop/activity?%s", false},
	{"GET", "/v1/apis/%s/activity?since=10m&step=5m", true},
}

// FuzzAdminAPI drives the real admin HTTP handler of a Vigil built by New
// with arbitrary bodies, path values and queries on every route that takes
// them (list entries, model updates and imports, false positives, filters):
// it never panics, never answers 5xx (the only documented 5xx are a store
// that cannot write and /readyz while not serving), and answers JSON.
func FuzzAdminAPI(f *testing.F) {
	bodies := []string{
		`{"kind":"ip","value":"10.0.0.1","ttl":"10m","reason":"manual"}`,
		`{"kind":"token","value":"eyJhbGciOiJIUzI1NiJ9.x.y"}`,
		`{"kind":"ip",`, `kind=ip`, ``, `{"kind":"ip","value":"10.0.0.1"} {}`, `{"kind":"ip","value":10}`,
		`{"kind":"ip","value":"10.0.0.1","ttl":"-5m"}`, `{"kind":"ip","value":"100.100.1.300"}`,
		`{"kind":"username","value":"` + strings.Repeat("u", 257) + `"}`,
		`{"types":{"probing":{"enabled":false}},"variables":[{"name":"requests_per_min","kind":"ip","mode":"user","tn":100,"tx":900}]}`,
		`{"variables":[{"name":"requests_per_min","kind":"ip","mode":"system"}]}`,
		`{"variables":[{"name":"deletes_10m","kind":"token","mode":"user","tn":5,"tx":1}]}`,
		`{"types":{"probing":{"sensitivity":-1}}}`, `{"types":{"bola_enumeration":{"sensitivity":1e308}}}`,
		`{"types":{"teleport":{"enabled":true}}}`, `{"variables":[{"name":"distinct_ips","kind":"ip","mode":"user","tn":1,"tx":2}]}`,
		`{"version":1,"api":"shop","status":{"state":"ready"},"variables":[{"name":"requests_per_min","kind":"ip","mode":"user","tn":0,"tx":0}]}`,
		`{"allow_for":"2h"}`, `{"allow_for":"soon"}`,
	}
	args := []string{"shop", "nosuch", "10.0.0.1", "type=probing&api=shop&since=15m", "since=2026-11-27T10:00:00Z&limit=-1", "%", "a/b", "",
		"since=10m&step=5m", "since=0001-01-01T00:00:00Z&step=1m", "since=-9999999h&step=1m"}
	for i := range adminFuzzRoutes {
		for _, b := range bodies {
			f.Add(uint8(i), args[i%len(args)], []byte(b))
		}
	}

	dir := f.TempDir()
	path := filepath.Join(dir, "vigil.yaml")
	yaml := "grpc_addr: 127.0.0.1:0\nadmin_addr: 127.0.0.1:0\ndata_dir: " + dir + "\nshutdown: {drain_delay: 0s, timeout: 2s}\n" +
		"apis:\n  - name: shop\n    base_path: /shop\n    detection:\n      types: {bola_enumeration: {sensitivity: 2}}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		f.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(cfg, zerolog.Nop(), Options{})
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	f.Cleanup(func() { cancel(); <-done })
	h := s.http.Handler

	f.Fuzz(func(t *testing.T, route uint8, arg string, body []byte) {
		rt := adminFuzzRoutes[int(route)%len(adminFuzzRoutes)]
		target := rt.path
		switch {
		case rt.escape:
			target = strings.Replace(target, "%s", url.PathEscape(arg), 1)
		case strings.Contains(target, "%s"):
			target = strings.Replace(target, "%s", arg, 1)
		}
		req, err := http.NewRequest(rt.method, "http://vigil"+target, strings.NewReader(string(body)))
		if err != nil {
			return // not a request a client can send
		}
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s with %q: %d %s", rt.method, target, body, w.Code, w.Body)
		}
		// The mux's redirects to the clean path (307) carry no body.
		if w.Code != http.StatusNoContent && w.Code/100 != 3 && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s with %q: %d, not JSON: %q", rt.method, target, body, w.Code, w.Body)
		}
	})
}
