package admin

import (
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-project/vigil/server/adminapi"
)

// TestOpenAPIDocumentsEveryRoute keeps adminapi's OpenAPI document (served
// at /v1/openapi.json) and the route table true to each other: every route
// the mux serves is documented, and every documented operation reaches its
// own route on the real mux, not the catch-all 404.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(adminapi.OpenAPI(), &doc); err != nil || doc.OpenAPI == "" {
		t.Fatalf("openapi.json: %v", err)
	}
	a := &admin{Deps{Metrics: prometheus.NewRegistry()}}
	// The ServeMux's wildcards as the document writes them.
	clean := strings.NewReplacer("{value...}", "{value}", "{$}", "", "/ui/", "/ui/{file}")
	served := map[string]bool{}
	for _, r := range a.routes() {
		method, path, ok := strings.Cut(r.pattern, " ")
		if !ok {
			continue // the catch-all, answering 404 to any method
		}
		op := strings.ToLower(method) + " " + clean.Replace(path)
		served[op] = true
		if _, ok := doc.Paths[clean.Replace(path)][strings.ToLower(method)]; !ok {
			t.Errorf("%s is served but not in openapi.json", r.pattern)
		}
	}
	mux := a.mux()
	param := regexp.MustCompile(`\{[a-z]+\}`)
	for path, ops := range doc.Paths {
		for method := range ops {
			op := method + " " + path
			if !served[op] {
				t.Errorf("%s is in openapi.json but not in the route table", op)
				continue
			}
			req := httptest.NewRequest(strings.ToUpper(method), "http://vigil"+param.ReplaceAllString(path, "x"), nil)
			if _, pattern := mux.Handler(req); pattern == "/" || clean.Replace(strings.TrimPrefix(pattern, strings.ToUpper(method)+" ")) != path {
				t.Errorf("%s reaches the route %q on the mux", op, pattern)
			}
		}
	}
}
