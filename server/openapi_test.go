package server

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestOpenAPIDocumentsEveryRoute keeps /v1/openapi.json true to the routes
// the admin handler registers.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil || doc.OpenAPI == "" {
		t.Fatalf("openapi.json: %v", err)
	}
	src, err := os.ReadFile("admin.go")
	if err != nil {
		t.Fatal(err)
	}
	route := regexp.MustCompile(`mux\.Handle(?:Func)?\("([A-Z]+) (/[^"]*)"`)
	clean := strings.NewReplacer("{value...}", "{value}", "{$}", "", "/ui/", "/ui/{file}")
	for _, m := range route.FindAllStringSubmatch(string(src), -1) {
		method, path := strings.ToLower(m[1]), clean.Replace(m[2])
		if path == "/v1/" {
			continue // the list routes, registered in a loop; checked below
		}
		if _, ok := doc.Paths[path][method]; !ok {
			t.Errorf("%s %s is not in openapi.json", m[1], path)
		}
	}
	for _, l := range []string{"blocklist", "allowlist"} {
		for method, path := range map[string]string{"get": "/v1/" + l, "post": "/v1/" + l, "delete": "/v1/" + l + "/{kind}/{value}"} {
			if _, ok := doc.Paths[path][method]; !ok {
				t.Errorf("%s %s is not in openapi.json", method, path)
			}
		}
	}
}
