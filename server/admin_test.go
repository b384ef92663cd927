package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/observe"
	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/server/config"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func decodeEntry(t *testing.T, body string) adminapi.Entry {
	t.Helper()
	var e adminapi.Entry
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("entry %q: %v", body, err)
	}
	return e
}

// listBody is GET /v1/{list} decoded loosely, so that the field names are
// checked as sent.
type listBody struct {
	Entries []map[string]any `json:"entries"`
}

func getList(t *testing.T, base, list, token string) listBody {
	t.Helper()
	code, body := adminDo(t, base, http.MethodGet, "/v1/"+list, "", token)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/%s: %d %s", list, code, body)
	}
	var lb listBody
	if err := json.Unmarshal([]byte(body), &lb); err != nil {
		t.Fatalf("GET /v1/%s: %v in %s", list, err, body)
	}
	if lb.Entries == nil {
		t.Fatalf("GET /v1/%s: no entries array in %s", list, body)
	}
	return lb
}

func TestAdminLists(t *testing.T) {
	clock := newFakeClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	ts := startServerWith(t, testConfig(t), Options{Now: clock.Now})
	allow, block := ts.Enforcer().Lists()

	for _, tc := range []struct {
		name string
		list *detect.List
	}{{"blocklist", block}, {"allowlist", allow}} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/v1/" + tc.name
			start := clock.Now()
			if got := getList(t, ts.base, tc.name, ""); len(got.Entries) != 0 {
				t.Fatalf("a new list holds %v", got.Entries)
			}

			code, body := adminDo(t, ts.base, http.MethodPost, path, `{"kind":"ip","value":"100.100.1.10","ttl":"10m","reason":"manual"}`, "")
			if code != http.StatusCreated {
				t.Fatalf("POST ip: %d %s", code, body)
			}
			e := decodeEntry(t, body)
			if e.Kind != "ip" || e.Value != "100.100.1.10" || e.Reason != "manual" || e.ExpiresAt == nil || !e.ExpiresAt.Equal(start.Add(10*time.Minute)) || !e.CreatedAt.Equal(start) {
				t.Errorf("POST ip returned %+v", e)
			}
			if _, ok := tc.list.Lookup(detect.KindIP, "100.100.1.10", clock.Now()); !ok {
				t.Error("the entry is not on the enforcer's list")
			}

			// No ttl: never expires; no reason: "manual". Values are normalised.
			code, body = adminDo(t, ts.base, http.MethodPost, path, `{"kind":"ip","value":" ::ffff:10.0.0.1 "}`, "")
			if code != http.StatusCreated {
				t.Fatalf("POST mapped ip: %d %s", code, body)
			}
			if e := decodeEntry(t, body); e.Value != "10.0.0.1" || e.ExpiresAt != nil || e.Reason != "manual" {
				t.Errorf("POST without ttl returned %+v", e)
			}
			code, body = adminDo(t, ts.base, http.MethodPost, path, `{"kind":"username","value":"50%off/alice","reason":"credential stuffing"}`, "")
			if code != http.StatusCreated {
				t.Fatalf("POST username: %d %s", code, body)
			}

			got := getList(t, ts.base, tc.name, "")
			if len(got.Entries) != 3 {
				t.Fatalf("GET: %v, want 3 entries", got.Entries)
			}
			first := got.Entries[0]
			for _, key := range []string{"kind", "value", "reason", "expires_at"} {
				if _, ok := first[key]; !ok {
					t.Errorf("GET entry %v lacks %q", first, key)
				}
			}
			if first["value"] != "10.0.0.1" || first["expires_at"] != nil || got.Entries[1]["value"] != "100.100.1.10" ||
				got.Entries[1]["expires_at"] != start.Add(10*time.Minute).Format(time.RFC3339) || got.Entries[2]["reason"] != "credential stuffing" {
				t.Errorf("GET entries = %v", got.Entries)
			}

			// A value is deleted as given: the ServeMux unescapes the path once.
			if code, body := adminDo(t, ts.base, http.MethodDelete, path+"/username/"+url.PathEscape("50%off/alice"), "", ""); code != http.StatusNoContent {
				t.Errorf("DELETE username with %% and /: %d %s", code, body)
			}
			if code, body := adminDo(t, ts.base, http.MethodDelete, path+"/ip/::ffff:10.0.0.1", "", ""); code != http.StatusNoContent {
				t.Errorf("DELETE ip: %d %s", code, body)
			}
			if code, body := adminDo(t, ts.base, http.MethodDelete, path+"/ip/10.0.0.1", "", ""); code != http.StatusNotFound || !strings.Contains(body, "no "+tc.name+" entry for ip 10.0.0.1") {
				t.Errorf("DELETE of an absent ip: %d %s, want 404", code, body)
			}

			// The ttl runs out.
			clock.Advance(10 * time.Minute)
			if got := getList(t, ts.base, tc.name, ""); len(got.Entries) != 0 {
				t.Errorf("GET after the ttl: %v, want none", got.Entries)
			}
			if _, ok := tc.list.Lookup(detect.KindIP, "100.100.1.10", clock.Now()); ok {
				t.Error("the expired entry still applies")
			}
		})
	}
}

// TestAdminSecretsAreFingerprints checks that a raw credential given to the
// admin API is stored, shown and logged only as a fingerprint.
func TestAdminSecretsAreFingerprints(t *testing.T) {
	const raw = "Bearer-raw-SECRET-3f9a7c21d4e8"
	ts := startServer(t, testConfig(t))
	_, block := ts.Enforcer().Lists()

	for _, kind := range []string{"token", "api_key", "cookie"} {
		code, body := adminDo(t, ts.base, http.MethodPost, "/v1/blocklist", `{"kind":"`+kind+`","value":"`+raw+`","reason":"leaked"}`, "")
		if code != http.StatusCreated {
			t.Fatalf("POST %s: %d %s", kind, code, body)
		}
		e := decodeEntry(t, body)
		if !detect.IsFingerprint(e.Value) || !strings.HasPrefix(e.Value, "fp:") {
			t.Errorf("POST %s returned value %q, want a fingerprint", kind, e.Value)
		}
		if strings.Contains(body, raw) {
			t.Errorf("POST %s response holds the raw value: %s", kind, body)
		}
		k, _ := detect.ParseKind(kind)
		if _, ok := block.Lookup(k, e.Value, time.Now()); !ok {
			t.Errorf("%s fingerprint %s is not on the block list", kind, e.Value)
		}
	}
	code, body := adminDo(t, ts.base, http.MethodGet, "/v1/blocklist", "", "")
	if code != http.StatusOK || strings.Contains(body, raw) {
		t.Errorf("GET: %d, raw value shown: %v", code, strings.Contains(body, raw))
	}
	fp := getList(t, ts.base, "blocklist", "").Entries[0]["value"].(string)

	// Deleting by the raw value or by the fingerprint.
	if code, body := adminDo(t, ts.base, http.MethodDelete, "/v1/blocklist/token/"+url.PathEscape(raw), "", ""); code != http.StatusNoContent {
		t.Errorf("DELETE token by raw value: %d %s", code, body)
	}
	if code, body := adminDo(t, ts.base, http.MethodDelete, "/v1/blocklist/token/"+url.PathEscape(raw), "", ""); code != http.StatusNotFound || strings.Contains(body, raw) {
		t.Errorf("DELETE of an absent token: %d %s, want 404 without the raw value", code, body)
	}
	if code, body := adminDo(t, ts.base, http.MethodDelete, "/v1/blocklist/api_key/"+fp, "", ""); code != http.StatusNoContent {
		t.Errorf("DELETE api_key by fingerprint: %d %s", code, body)
	}
	// A bad request with a raw credential in it.
	if code, _ := adminDo(t, ts.base, http.MethodPost, "/v1/blocklist", `{"kind":"tokn","value":"`+raw+`"}`, ""); code != http.StatusBadRequest {
		t.Errorf("POST with an unknown kind: %d", code)
	}

	ts.stop(t)
	logs := ts.logs.String()
	if strings.Contains(logs, raw) {
		t.Errorf("the raw credential is in the logs:\n%s", logs)
	}
	if !strings.Contains(logs, fp) || !strings.Contains(logs, "list entry added") || !strings.Contains(logs, "list entry removed") {
		t.Errorf("list changes are not logged with the fingerprint:\n%s", logs)
	}
}

func TestAdminBadRequests(t *testing.T) {
	ts := startServer(t, testConfig(t))
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
		msg                      string
	}{
		{"bad JSON", "POST", "/v1/blocklist", `{"kind":"ip",`, 400, "invalid JSON"},
		{"not JSON", "POST", "/v1/allowlist", `kind=ip`, 400, "invalid JSON at byte 1"},
		{"empty body", "POST", "/v1/blocklist", ``, 400, "empty body"},
		{"unknown field", "POST", "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1","expires":"1h"}`, 400, `unknown field "expires"`},
		{"wrong type", "POST", "/v1/blocklist", `{"kind":"ip","value":10}`, 400, `field "value": want string, got JSON number`},
		{"trailing object", "POST", "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1"} {}`, 400, "trailing data"},
		{"trailing bracket", "POST", "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1"}]`, 400, "trailing data"},
		{"unknown kind", "POST", "/v1/blocklist", `{"kind":"email","value":"a@b.c"}`, 400, `unknown identity kind "email"`},
		{"missing kind", "POST", "/v1/allowlist", `{"value":"10.0.0.1"}`, 400, `unknown identity kind ""`},
		{"bad ttl", "POST", "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1","ttl":"soon"}`, 400, `ttl: "soon" is not a positive duration`},
		{"negative ttl", "POST", "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1","ttl":"-5m"}`, 400, `ttl: "-5m"`},
		{"zero ttl", "POST", "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1","ttl":"0s"}`, 400, `ttl: "0s"`},
		{"bad IP", "POST", "/v1/blocklist", `{"kind":"ip","value":"100.100.1.300"}`, 400, `value: invalid IP address "100.100.1.300"`},
		{"bad CIDR", "POST", "/v1/allowlist", `{"kind":"ip","value":"10.0.0.0/33"}`, 400, `value: invalid CIDR range "10.0.0.0/33"`},
		{"empty value", "POST", "/v1/blocklist", `{"kind":"token","value":"  "}`, 400, "value: empty value"},
		{"long reason", "POST", "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1","reason":"` + strings.Repeat("x", 513) + `"}`, 400, "reason: longer than 512 bytes"},
		{"long username", "POST", "/v1/blocklist", `{"kind":"username","value":"` + strings.Repeat("u", 257) + `"}`, 400, "username longer than 256 bytes"},
		{"oversized body", "POST", "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1","reason":"` + strings.Repeat("x", 64<<10) + `"}`, 400, "body larger than 65536 bytes"},
		{"delete unknown kind", "DELETE", "/v1/blocklist/email/a@b.c", "", 400, `unknown identity kind "email"`},
		{"delete bad IP", "DELETE", "/v1/allowlist/ip/not-an-ip", "", 400, `invalid IP address "not-an-ip"`},
		{"unknown route", "GET", "/v1/denylist", "", 404, "no route GET /v1/denylist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := adminDo(t, ts.base, tc.method, tc.path, tc.body, "")
			if code != tc.want {
				t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.want)
			}
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, tc.msg) {
				t.Errorf("%s %s: body %s, want an error containing %q", tc.method, tc.path, body, tc.msg)
			}
		})
	}
	// Nothing was added, and the server is still up.
	for _, list := range []string{"blocklist", "allowlist"} {
		if got := getList(t, ts.base, list, ""); len(got.Entries) != 0 {
			t.Errorf("bad requests added %v to the %s", got.Entries, list)
		}
	}
	if code, _ := adminDo(t, ts.base, http.MethodGet, "/healthz", "", ""); code != http.StatusOK {
		t.Errorf("healthz after the bad requests: %d", code)
	}
}

func TestAdminToken(t *testing.T) {
	const token = "s3cret-admin-token-0123456789"
	cfg := testConfig(t)
	cfg.AdminToken = token
	ts := startServer(t, cfg)

	for _, route := range []struct{ method, path, body string }{
		{"GET", "/v1/blocklist", ""},
		{"GET", "/v1/allowlist", ""},
		{"POST", "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1"}`},
		{"POST", "/v1/allowlist", `{"kind":"ip","value":"10.0.0.1"}`},
		{"DELETE", "/v1/blocklist/ip/10.0.0.1", ""},
		{"GET", "/v1/apis", ""},
	} {
		for name, header := range map[string]string{
			"none":          "",
			"wrong":         "Bearer " + token + "x",
			"prefix":        "Bearer " + token[:len(token)-1],
			"other scheme":  "Basic " + token,
			"no scheme":     token,
			"empty bearer":  "Bearer ",
			"double spaced": "Bearer  " + token,
		} {
			req, _ := http.NewRequest(route.method, ts.base+route.path, strings.NewReader(route.body))
			if header != "" {
				req.Header.Set("Authorization", header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s with %s authorization: %d, want 401 with WWW-Authenticate", route.method, route.path, name, resp.StatusCode)
			}
		}
	}
	if got := ts.Server.enforcer; got != nil {
		allow, block := got.Lists()
		if allow.Len()+block.Len() != 0 {
			t.Error("an unauthorised POST changed a list")
		}
	}

	if code, body := adminDo(t, ts.base, http.MethodPost, "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1"}`, token); code != http.StatusCreated {
		t.Errorf("POST with the token: %d %s", code, body)
	}
	if got := getList(t, ts.base, "blocklist", token); len(got.Entries) != 1 {
		t.Errorf("GET with the token: %v", got.Entries)
	}
	// The scheme is case-insensitive (RFC 9110).
	req, _ := http.NewRequest(http.MethodGet, ts.base+"/v1/apis", nil)
	req.Header.Set("Authorization", "bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("lower-case bearer scheme: %d", resp.StatusCode)
	}
	// Probes and metrics stay open.
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _ := adminDo(t, ts.base, http.MethodGet, path, "", ""); code != http.StatusOK {
			t.Errorf("GET %s without the token: %d", path, code)
		}
	}
	ts.stop(t)
	if strings.Contains(ts.logs.String(), token) {
		t.Error("the admin token is in the logs")
	}
}

func TestAdminAPIs(t *testing.T) {
	cfg := testConfig(t)
	learn := "learn"
	cfg.APIs = []config.APIConfig{
		{Name: "orders", Hosts: []string{"API.example.com"}, BasePath: "/orders/"},
		{Name: "users", BasePath: "/users", Mode: &learn},
	}
	ts := startServer(t, cfg)
	code, body := adminDo(t, ts.base, http.MethodGet, "/v1/apis", "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/apis: %d %s", code, body)
	}
	var got struct {
		APIs []observe.APIStats `json:"apis"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.APIs) != 2 {
		t.Fatalf("GET /v1/apis: %s, want the 2 configured APIs", body)
	}
	o, u := got.APIs[0], got.APIs[1]
	if o.Name != "orders" || o.BasePath != "/orders" || o.Mode != "block" || o.Discovered || len(o.Hosts) != 1 || o.Hosts[0] != "api.example.com" || o.Requests != 0 {
		t.Errorf("orders = %+v", o)
	}
	if u.Name != "users" || u.Mode != "learn" || u.Discovered {
		t.Errorf("users = %+v", u)
	}
}

func TestAdminProbesAndMetrics(t *testing.T) {
	ts := startServer(t, testConfig(t))
	for path, want := range map[string]string{"/healthz": `"status": "ok"`, "/readyz": `"status": "ready"`} {
		code, body := adminDo(t, ts.base, http.MethodGet, path, "", "")
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	code, body := adminDo(t, ts.base, http.MethodGet, "/metrics", "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	for _, name := range []string{
		`vigil_calls_total{service="ext_proc"} 0`,
		`vigil_calls_total{service="ext_authz"} 0`,
		`vigil_verdicts_total{outcome="deny",reason="blocklist",service="ext_proc"} 0`,
		`vigil_decision_seconds_bucket{service="ext_authz",le="1e-06"} 0`,
		"vigil_queue_depth 0",
		"vigil_queue_capacity 65536",
		"vigil_queue_dropped_total 0",
		"vigil_panics_total 0",
		"vigil_protocol_errors_total",
		"vigil_blocklist_entries 0",
		"go_goroutines",
	} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	adminDo(t, ts.base, http.MethodPost, "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1"}`, "")
	if _, body := adminDo(t, ts.base, http.MethodGet, "/metrics", "", ""); !strings.Contains(body, "vigil_blocklist_entries 1") {
		t.Error("vigil_blocklist_entries does not follow the list")
	}
}
