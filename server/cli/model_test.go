package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// vigil model export fails, and writes no file, when the server's answer
// is not a whole model document.
func TestCLIModelExportRefusesBadAnswers(t *testing.T) {
	t.Setenv("VIGIL_ADMIN_TOKEN", "")
	for _, tc := range []struct {
		name   string
		status int
		body   string
		msg    string
	}{
		{"empty 200", 200, "", "not a model document (0 bytes)"},
		{"truncated", 200, `{"version":1,"api":"shop","variables":[`, "not a model document"},
		{"not a model", 200, `{"models":[]}`, "not a valid model document"},
		{"infinite number written as text", 200, `{"version":1,"api":"shop","variables":[{"name":"errors_10m","kind":"ip","mode":"user","tn":1,"tx":"+Inf"}]}`, "not a model document"},
		{"out of range", 200, `{"version":1,"api":"shop","types":{},"variables":[{"name":"errors_10m","kind":"ip","mode":"user","tn":1,"tx":1e300}]}`, "variables[0].tx"},
		{"server error", 500, `{"error":"the answer could not be encoded"}`, "the answer could not be encoded (500)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			file := filepath.Join(t.TempDir(), "shop.json")
			for _, out := range [][]string{{"--out", file}, nil} {
				stdout, _, err := runCLI(t, nil, append([]string{"model", "export", "shop", "--admin-addr", srv.URL}, out...)...)
				if err == nil || !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("export %v: %v, want an error with %q", out, err, tc.msg)
				}
				if stdout != "" {
					t.Errorf("export to stdout wrote %q", stdout)
				}
			}
			if _, err := os.Stat(file); !os.IsNotExist(err) {
				t.Errorf("export wrote a file: %v", err)
			}
		})
	}
}

// PUT /v1/models/{api} with tx 1e308 once made the model hold +Inf: every
// GET /v1/models then answered 200 with an empty body and no model was
// saved. Such numbers are refused with the field named.
func TestAdminModelNumbers(t *testing.T) {
	t.Setenv("VIGIL_ADMIN_TOKEN", "")
	cfg := vigiltest.Config(t)
	cfg.APIs = []config.APIConfig{{Name: "shop", BasePath: "/shop"}}
	ts := vigiltest.Run(t, cfg, vigiltest.Options{})
	for _, tc := range []struct{ method, path, body, msg string }{
		{"PUT", "/v1/models/shop", `{"variables":[{"name":"errors_10m","kind":"ip","mode":"user","tn":1,"tx":1e308}]}`, "variables[0].tx: 1e+308 must be above 0 and at most 1e+12"},
		{"PUT", "/v1/models/shop", `{"types":{"probing":{"sensitivity":1e-300}}}`, "types.probing.sensitivity: 1e-300 must be from 0.01 to 100"},
		{"PUT", "/v1/models/shop", `{"variables":[{"name":"errors_10m","kind":"ip","mode":"user","tn":1,"tx":1e309}]}`, `field "variables.tx": want float64, got JSON number 1e309`},
		{"POST", "/v1/models/shop/import", `{"version":1,"types":{},"variables":[{"name":"errors_10m","kind":"ip","mode":"system","tn":1,"tx":1e308}]}`, "variables[0].tx: 1e+308"},
	} {
		code, body := vigiltest.Call(t, ts.Client(""), tc.method, tc.path, tc.body)
		var e struct {
			Error string `json:"error"`
		}
		if code != http.StatusBadRequest || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, tc.msg) {
			t.Errorf("%s %s %s: %d %s, want 400 with %q", tc.method, tc.path, tc.body, code, body, tc.msg)
		}
	}
	code, body := vigiltest.Call(t, ts.Client(""), "GET", "/v1/models/shop", "")
	var doc struct {
		API       string           `json:"api"`
		Variables []map[string]any `json:"variables"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &doc) != nil || doc.API != "shop" || len(doc.Variables) == 0 {
		t.Fatalf("GET /v1/models/shop: %d %q", code, body)
	}
	file := filepath.Join(t.TempDir(), "shop.json")
	mustCLI(t, ts, "model", "export", "shop", "--out", file)
	if data, err := os.ReadFile(file); err != nil || !json.Valid(data) || len(data) < 100 {
		t.Errorf("export wrote %q, %v", data, err)
	}
}
