package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
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
