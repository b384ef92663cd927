package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/server/config"
)

func hasEntry(l *detect.List, k detect.Kind, v string) bool {
	_, ok := l.Lookup(k, v, time.Now())
	return ok
}

// Admin input that would do something else than what was meant is refused
// with a 400 that says why, and stores nothing.
func TestAdminRefusesMisleadingInput(t *testing.T) {
	cfg := testConfig(t)
	cfg.APIs = []config.APIConfig{{Name: "shop", BasePath: "/shop"}}
	ts := startServer(t, cfg)
	const fp = "fp:0123456789abcdef0123456789abcdef"
	ts.engine.Store().Add(&detect.Attack{ID: "att-1", Type: detect.AttackProbing, API: "shop",
		Identity: detect.AttackIdentity{Kind: "ip", Value: "10.0.0.9"}, Action: detect.ActionBlocked, DetectedAt: time.Now()})
	for _, tc := range []struct {
		name, method, path, body string
		msg                      string
	}{
		// encoding/json alone would let the last "kind" win and store an ip entry.
		{"duplicate key", "POST", "/v1/blocklist", `{"kind":"username","kind":"ip","value":"10.0.0.1"}`, `duplicate key "kind"`},
		{"duplicate key, escaped", "POST", "/v1/blocklist", `{"kind":"ip","\u006bind":"username","value":"10.0.0.1"}`, `duplicate key "kind"`},
		{"key in another case", "POST", "/v1/blocklist", `{"Kind":"ip","value":"10.0.0.1"}`, `unknown field "Kind": keys are case-sensitive, did you mean "kind"?`},
		{"key in capitals", "POST", "/v1/allowlist", `{"kind":"ip","VALUE":"10.0.0.1"}`, `unknown field "VALUE"`},
		{"nested key in another case", "PUT", "/v1/models/shop", `{"types":{"probing":{"Enabled":false}}}`, `unknown field "types.probing.Enabled"`},
		{"nested duplicate", "PUT", "/v1/models/shop", `{"variables":[{"name":"errors_10m","name":"deletes_10m","kind":"ip","mode":"system"}]}`, `duplicate key "variables[0].name"`},
		{"duplicate map key", "PUT", "/v1/models/shop", `{"types":{"probing":{"enabled":true},"probing":{"enabled":false}}}`, `duplicate key "types.probing"`},
		{"import key in another case", "POST", "/v1/models/shop/import", `{"Version":1,"types":{"probing":{"enabled":false,"sensitivity":1}},"variables":[]}`, `unknown field "Version"`},
		{"ttl of a nanosecond", "POST", "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1","ttl":"1ns"}`, `ttl: "1ns" is shorter than the minimum of 1s`},
		{"ttl under a second", "POST", "/v1/allowlist", `{"kind":"ip","value":"10.0.0.1","ttl":"999ms"}`, `minimum of 1s`},
		{"reason with NUL", "POST", "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1","reason":"a\u0000b"}`, "reason: control character U+0000 at byte 1"},
		{"reason with ESC", "POST", "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1","reason":"\u001b[2J\u001b[31mowned"}`, "reason: control character U+001B at byte 0"},
		{"reason with a newline", "POST", "/v1/allowlist", `{"kind":"ip","value":"10.0.0.1","reason":"ok\nfake log line"}`, "reason: control character U+000A"},
		{"reason with a C1 control", "POST", "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1","reason":"\u009b31m"}`, "reason: control character U+009B"},
		{"reason with a bidi override", "POST", "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1","reason":"abc\u202edcba"}`, "reason: control character U+202E"},
		{"allow_for of a nanosecond", "POST", "/v1/attacks/att-1/false-positive", `{"allow_for":"1ns"}`, `allow_for: "1ns" is shorter than the minimum of 1s`},
		{"false positive key in another case", "POST", "/v1/attacks/att-1/false-positive", `{"Allow_For":"1h"}`, `unknown field "Allow_For"`},
		{"shortened fingerprint", "POST", "/v1/blocklist", `{"kind":"token","value":"fp:01234567…"}`, "not a whole fingerprint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := adminDo(t, ts.base, tc.method, tc.path, tc.body, "")
			var e struct {
				Error string `json:"error"`
			}
			if code != http.StatusBadRequest || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, tc.msg) {
				t.Errorf("%s %s %s: %d %s, want 400 with %q", tc.method, tc.path, tc.body, code, body, tc.msg)
			}
		})
	}
	for _, list := range []string{"blocklist", "allowlist"} {
		if got := getList(t, ts.base, list, ""); len(got.Entries) != 0 {
			t.Errorf("refused requests stored %v on the %s", got.Entries, list)
		}
	}
	if doc, _ := ts.engine.Model("shop"); doc != nil && !doc.Types["probing"].Enabled {
		t.Error("a refused model update changed the model")
	}

	// What is accepted: a ttl of 1s, a reason with tabs-free Unicode, and a
	// fingerprint in capitals, kept (and removable) in lower case.
	if code, body := adminDo(t, ts.base, "POST", "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1","ttl":"1s","reason":"scan from Zürich — ticket #4"}`, ""); code != http.StatusCreated {
		t.Fatalf("ttl 1s: %d %s", code, body)
	}
	upper := "FP:" + strings.ToUpper(fp[3:])
	code, body := adminDo(t, ts.base, "POST", "/v1/blocklist", `{"kind":"token","value":"`+upper+`"}`, "")
	if code != http.StatusCreated || decodeEntry(t, body).Value != fp {
		t.Fatalf("POST upper-case fingerprint: %d %s, want the value %s", code, body, fp)
	}
	if _, block := ts.Enforcer().Lists(); block.Len() != 2 || !hasEntry(block, detect.KindToken, fp) {
		t.Errorf("the upper-case fingerprint was not stored as %s", fp)
	}
	if code, body := adminDo(t, ts.base, "DELETE", "/v1/blocklist/token/"+url.PathEscape(upper), "", ""); code != http.StatusNoContent {
		t.Errorf("DELETE upper-case fingerprint: %d %s", code, body)
	}
}

// The CLI never writes a stored string's control characters to the
// terminal: user names come from traffic, and older records may hold
// anything.
func TestCLIEscapesControlCharacters(t *testing.T) {
	t.Setenv("VIGIL_ADMIN_TOKEN", "")
	ts := startServer(t, testConfig(t))
	const evil = "bob\x1b[2J\x1b]0;pwned\x07\u202e\ttab\nline"
	body, _ := json.Marshal(map[string]string{"kind": "username", "value": evil, "reason": "stuffing"})
	if code, b := adminDo(t, ts.base, "POST", "/v1/blocklist", string(body), ""); code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, b)
	}
	out := mustCLI(t, ts, "block", "ls")
	assertPrintable(t, "block ls", out)
	if want := `bob\x1b[2J\x1b]0;pwned\x07\u202e\ttab\nline`; !strings.Contains(out, want) {
		t.Errorf("block ls does not show the escaped value %s:\n%s", want, out)
	}

	// Attacks and forensics, from a server answering such strings.
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := map[string]any{
			"id": "att-1\x1b[31m", "type": "probing\n", "api": "shop\x1b]2;x\x07", "action": "blocked",
			"identity":   map[string]string{"kind": "username", "value": evil},
			"client_ips": []string{"10.0.0.1\r"},
			"request":    map[string]string{"method": "GET\x1b", "host": "h\x00", "path": "/p\x9b", "user_agent": "ua\x1b"},
			"variables":  []map[string]any{{"name": "errors_10m\x1b", "observed": 9, "tn": 1, "tx": 5}},
		}
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/attacks/"):
			json.NewEncoder(w).Encode(a)
		case r.URL.Path == "/v1/attacks":
			json.NewEncoder(w).Encode(map[string]any{"attacks": []any{a}, "total": 1})
		case strings.HasPrefix(r.URL.Path, "/v1/forensics/"):
			json.NewEncoder(w).Encode(map[string]any{
				"kind": "username", "value": evil, "status": "active\x1b",
				"details": map[string]any{"metrics": map[string]any{
					"ip_list": []map[string]any{{"ip": "10.0.0.1\x1b", "total_requests": 1, "methods": map[string]int{"GET\x1b": 1},
						"urls": map[string]int{"/a\x1b[2J": 1}, "apis": map[string]int{"shop\n": 1}}},
					"urls": map[string]int{"/a\x1b[2J": 1},
				}},
				"attacks": []any{a},
			})
		default:
			http.NotFound(w, r)
		}
	}))
	defer fake.Close()
	for _, args := range [][]string{{"attacks"}, {"attacks", "show", "att-1"}, {"forensics", "username", "bob"}} {
		var out, errs strings.Builder
		if err := Main(t.Context(), append(args, "--admin-addr", fake.URL), &out, &errs); err != nil {
			t.Fatalf("vigil %q: %v\n%s", args, err, errs.String())
		}
		assertPrintable(t, strings.Join(args, " "), out.String())
	}
}

// assertPrintable fails when out holds a control character other than the
// newlines that end lines, or a bidirectional override.
func assertPrintable(t *testing.T, what, out string) {
	t.Helper()
	for i, r := range out {
		if r != '\n' && adminapi.CheckPrintable(string(r)) != nil {
			t.Errorf("%s writes %U at byte %d:\n%q", what, r, i, out)
			return
		}
	}
}
