package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// The CLI never writes a stored string's control characters to the
// terminal: user names come from traffic, and older records may hold
// anything.
func TestCLIEscapesControlCharacters(t *testing.T) {
	t.Setenv("VIGIL_ADMIN_TOKEN", "")
	ts := vigiltest.Start(t, "")
	const evil = "bob\x1b[2J\x1b]0;pwned\x07\u202e\ttab\nline"
	body, _ := json.Marshal(map[string]string{"kind": "username", "value": evil, "reason": "stuffing"})
	if code, b := vigiltest.Call(t, ts.Client(""), "POST", "/v1/blocklist", string(body)); code != http.StatusCreated {
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
