package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/inspect"
	"github.com/vigil-project/vigil/detect/observe"
	"github.com/vigil-project/vigil/detect/spec"
)

const shopDoc = `openapi: 3.1.0
info: {title: Shop, version: '3'}
servers: [{url: /api}]
paths:
  /orders:
    get:
      parameters: [{name: page, in: query, schema: {type: integer}}]
      responses: {'200': {description: ok}}
  /orders/{orderId}:
    get:
      parameters: [{name: orderId, in: path, required: true, schema: {type: integer}}]
      responses: {'200': {description: ok}}
    delete:
      parameters: [{name: orderId, in: path, required: true, schema: {type: integer}}]
      responses: {'204': {description: ok}}
`

// newInventoryAdmin serves the admin API over an inventory holding the
// configured API "shop" (GET /api/orders, GET /api/orders/{id}, and the
// undocumented GET /api/internal/export) and a discovered one.
func newInventoryAdmin(t *testing.T, d func(*Deps)) *httptest.Server {
	t.Helper()
	shop := &detect.API{Name: "shop", BasePath: "/api", Mode: detect.ModeBlock}
	fallback := &detect.API{Name: "discovered", Discovered: true}
	cat := &atomic.Pointer[detect.Catalog]{}
	cat.Store(detect.NewCatalog([]*detect.API{shop}, fallback))
	inv := observe.NewInventory([]*detect.API{shop}, 10, 100)
	at := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	ep := func(method, path string) observe.EndpointStats {
		return observe.EndpointStats{Method: method, Path: path, Requests: 4, Status: map[string]uint64{"2xx": 4}, FirstSeen: at, LastSeen: at}
	}
	inv.Restore([]observe.APIStats{
		{Name: "shop", BasePath: "/api", Endpoints: []observe.EndpointStats{
			ep("GET", "/api/orders"), ep("GET", "/api/orders/{id}"), ep("GET", "/api/internal/export"),
		}},
		{Name: "other.example.com/", BasePath: "/", Discovered: true, Endpoints: []observe.EndpointStats{ep("GET", "/x")}},
	})
	deps := Deps{Inventory: inv, Catalog: cat, Now: time.Now}
	if d != nil {
		d(&deps)
	}
	a := &admin{deps}
	srv := httptest.NewServer(a.recoverPanics(limitBody(a.mux())))
	t.Cleanup(srv.Close)
	return srv
}

func shopDeps(t *testing.T) func(*Deps) {
	sp, err := spec.Parse([]byte(shopDoc), "shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := inspect.New(inspect.Config{})
	l := inspect.NewLearner(in, inspect.LearnConfig{MinIdentities: 2, MinSamples: 5, MinSpan: inspect.Duration(time.Minute)})
	at := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	for i := range 20 {
		l.Observe("/api/orders", &inspect.RequestView{Method: "GET", Path: "/api/orders", Query: fmt.Sprintf("page=%d", i)},
			fmt.Sprint("user", i%4), at.Add(time.Duration(i)*time.Minute))
	}
	m := l.Model()
	return func(d *Deps) {
		d.OpenAPI = func(api string) *spec.Spec {
			if api == "shop" {
				return sp
			}
			return nil
		}
		d.Content = profilesOnly{"shop": m.Endpoints}
	}
}

// profilesOnly is a content model source with learned profiles by API.
type profilesOnly map[string][]*inspect.Profiles

func (p profilesOnly) ContentModel(api string) *detect.ContentModelDoc {
	return &detect.ContentModelDoc{Endpoints: p[api]}
}

func (profilesOnly) ApplyContent(string, *detect.ContentKnobsUpdate) error { return nil }

func (profilesOnly) ImportContent(string, *detect.ContentModelDoc) error { return nil }

// GET /v1/apis marks an API with a document: shadow endpoints, zombie
// operations; other APIs keep their shape.
func TestAPIsShadowAndZombies(t *testing.T) {
	srv := newInventoryAdmin(t, shopDeps(t))
	code, body := get(t, srv.URL, "/v1/apis")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/apis = %d %s", code, body)
	}
	var out struct {
		APIs []map[string]json.RawMessage `json:"apis"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	byName := map[string]map[string]json.RawMessage{}
	for _, a := range out.APIs {
		var name string
		json.Unmarshal(a["name"], &name)
		byName[name] = a
	}
	shop := byName["shop"]
	if string(shop["openapi"]) != "true" || compact(t, string(shop["zombies"])) != `[{"method":"DELETE","path":"/api/orders/{orderId}"}]` {
		t.Fatalf("shop: openapi %s zombies %s", shop["openapi"], shop["zombies"])
	}
	var eps []observe.EndpointStats
	json.Unmarshal(shop["endpoints"], &eps)
	for _, e := range eps {
		if want := e.Path == "/api/internal/export"; e.Shadow != want {
			t.Errorf("%s %s: shadow %v, want %v", e.Method, e.Path, e.Shadow, want)
		}
	}
	other := byName["other.example.com/"]
	for _, k := range []string{"openapi", "zombies"} {
		if _, ok := other[k]; ok {
			t.Errorf("an API without a document has %q", k)
		}
	}
	if strings.Contains(string(other["endpoints"]), "shadow") {
		t.Errorf("an API without a document has shadow marks: %s", other["endpoints"])
	}
}

// GET /v1/apis/{api}/openapi.json is a valid OpenAPI 3.1 document of the
// discovered inventory with the learned parameters; 404 for an unknown
// API; without a document or model, the bare inventory.
func TestAPIOpenAPIExport(t *testing.T) {
	srv := newInventoryAdmin(t, shopDeps(t))
	resp, err := http.Get(srv.URL + "/v1/apis/shop/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	doc, err := openapi3.NewLoader().LoadFromIoReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("invalid document: %v", err)
	}
	if doc.OpenAPI != "3.1.0" || doc.Servers[0].URL != "/api" {
		t.Fatalf("openapi %s servers %v", doc.OpenAPI, doc.Servers)
	}
	page := doc.Paths.Value("/orders").Get.Parameters.GetByInAndName("query", "page")
	if page == nil || !page.Schema.Value.Type.Is("integer") {
		t.Fatalf("page: %+v", page)
	}
	if doc.Paths.Value("/internal/export").Get.Extensions["x-vigil-shadow"] != true {
		t.Error("GET /internal/export not marked shadow")
	}
	if doc.Paths.Value("/orders/{id}").Get.Parameters.GetByInAndName("path", "id") == nil {
		t.Error("no path parameter id")
	}

	if code, body := get(t, srv.URL, "/v1/apis/nope/openapi.json"); code != http.StatusNotFound || !strings.Contains(body, `no API \"nope\"`) {
		t.Errorf("unknown API: %d %s", code, body)
	}
	bare := newInventoryAdmin(t, nil)
	code, body := get(t, bare.URL, "/v1/apis/other.example.com%2F/openapi.json")
	if code != http.StatusOK {
		t.Fatalf("bare export: %d %s", code, body)
	}
	doc, err = openapi3.NewLoader().LoadFromData([]byte(body))
	if err != nil || doc.Validate(context.Background()) != nil || doc.Paths.Value("/x") == nil {
		t.Fatalf("bare export: %v\n%s", err, body)
	}
	if code, body := get(t, bare.URL, "/v1/apis"); code != http.StatusOK || strings.Contains(body, "shadow") || strings.Contains(body, "zombies") {
		t.Errorf("GET /v1/apis without documents: %d %s", code, body)
	}
}
