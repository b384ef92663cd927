package export

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/vigil-project/vigil/detect/inspect"
	"github.com/vigil-project/vigil/detect/observe"
	"github.com/vigil-project/vigil/detect/spec"
)

func load(t testing.TB, name string) *spec.Spec {
	t.Helper()
	s, err := spec.Load(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	return s
}

func shopStats() observe.APIStats {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	ep := func(method, path string, n uint64, status map[string]uint64) observe.EndpointStats {
		return observe.EndpointStats{Method: method, Path: path, Requests: n, Status: status, FirstSeen: at, LastSeen: at.Add(time.Hour)}
	}
	return observe.APIStats{Name: "shop", BasePath: "/api/v1", Endpoints: []observe.EndpointStats{
		ep("GET", "/api/v1/debug/{id}/{id}", 3, map[string]uint64{"2xx": 3}),
		ep("GET", "/api/v1/pets", 60, map[string]uint64{"2xx": 58, "4xx": 2}),
		ep("HEAD", "/api/v1/pets", 1, map[string]uint64{"2xx": 1}),
		ep("OPTIONS", "/api/v1/pets", 1, map[string]uint64{"2xx": 1}),
		ep("OPTIONS", "/api/v1/nope", 1, map[string]uint64{"2xx": 1}),
		ep("POST", "/api/v1/pets", 60, map[string]uint64{"2xx": 60}),
		ep("GET", "/api/v1/pets/{id}", 5, map[string]uint64{}),
		ep("GET", "/api/v1/pets/mine", 5, map[string]uint64{"2xx": 5}),
	}}
}

// shopModel learns GET and POST /api/v1/pets from 60 calls of 6 identities
// over two hours, with thresholds low enough to trust them.
func shopModel(t *testing.T) *inspect.Model {
	in := inspect.New(inspect.Config{})
	l := inspect.NewLearner(in, inspect.LearnConfig{MinIdentities: 3, MinSamples: 10, MinSpan: inspect.Duration(time.Minute)})
	at := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	statuses := []string{"available", "pending", "sold"}
	for i := range 60 {
		id := fmt.Sprintf("user-%d", i%6)
		when := at.Add(time.Duration(i) * 2 * time.Minute)
		l.Observe("/api/v1/pets", &inspect.RequestView{Method: "GET", Path: "/api/v1/pets",
			Query: fmt.Sprintf("limit=%d&status=%s", 10+i%5, statuses[i%3])}, id, when)
		l.Observe("/api/v1/pets", &inspect.RequestView{Method: "POST", Path: "/api/v1/pets", ContentType: "application/json",
			Body: []byte(fmt.Sprintf(`{"name":"pet %d","price":%d.5,"tags":["t%d"],"owner":{"email":"u%d@example.com"},"meta":null}`, i, i, i%3, i%6))}, id, when)
	}
	return l.Model()
}

func TestMark(t *testing.T) {
	s := load(t, "petstore30.yaml")
	a := shopStats()
	Mark(&a, s)
	if !a.OpenAPI {
		t.Fatal("OpenAPI not set")
	}
	shadow := map[string]bool{}
	for _, e := range a.Endpoints {
		shadow[e.Method+" "+e.Path] = e.Shadow
	}
	want := map[string]bool{
		"GET /api/v1/debug/{id}/{id}": true, "GET /api/v1/pets": false, "HEAD /api/v1/pets": false,
		"OPTIONS /api/v1/pets": false, "OPTIONS /api/v1/nope": true, "POST /api/v1/pets": false,
		"GET /api/v1/pets/{id}": false, "GET /api/v1/pets/mine": false,
	}
	for k, v := range want {
		if shadow[k] != v {
			t.Errorf("%s: shadow %v, want %v", k, shadow[k], v)
		}
	}
	var zombies []string
	for _, z := range a.Zombies {
		zombies = append(zombies, z.Method+" "+z.Path)
	}
	if got, want := strings.Join(zombies, ","), "GET /api/v1/orders,DELETE /api/v1/pets/{petId},PATCH /api/v1/pets/{petId}"; got != want {
		t.Errorf("zombies\n got %s\nwant %s", got, want)
	}
	// The JSON of GET /v1/apis: additive fields only.
	b, _ := json.Marshal(a)
	for _, frag := range []string{`"openapi":true`, `"zombies":[{"method":"GET","path":"/api/v1/orders"}`, `"shadow":true`} {
		if !strings.Contains(string(b), frag) {
			t.Errorf("inventory JSON lacks %s: %s", frag, b)
		}
	}
	plain, _ := json.Marshal(shopStats())
	if strings.Contains(string(plain), "shadow") || strings.Contains(string(plain), "zombies") || strings.Contains(string(plain), "openapi") {
		t.Errorf("an API without a document changed shape: %s", plain)
	}
}

// The export is a valid OpenAPI 3.1 document kin-openapi loads back, with
// the learned parameters, the shadow marks and the zombies, and Vigil
// compiles it as a specification that allows the traffic it came from.
func TestExportRoundTrip(t *testing.T) {
	s := load(t, "petstore30.yaml")
	m := shopModel(t)
	b, err := JSON(shopStats(), m.Endpoints, s)
	if err != nil {
		t.Fatal(err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(b)
	if err != nil {
		t.Fatalf("load back: %v\n%s", err, b)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("invalid: %v\n%s", err, b)
	}
	if doc.OpenAPI != "3.1.0" || doc.Servers[0].URL != "/api/v1" || doc.Info.Title != "shop" {
		t.Fatalf("openapi %q servers %v title %q", doc.OpenAPI, doc.Servers, doc.Info.Title)
	}
	get := doc.Paths.Value("/pets").Get
	limit, status := get.Parameters.GetByInAndName("query", "limit"), get.Parameters.GetByInAndName("query", "status")
	if limit == nil || !limit.Schema.Value.Type.Is("integer") || !limit.Required {
		t.Fatalf("limit: %+v\n%s", limit, b)
	}
	if status == nil || !status.Schema.Value.Type.Is("string") || fmt.Sprint(status.Schema.Value.Enum) != "[available pending sold]" {
		t.Fatalf("status: %+v", status)
	}
	body := doc.Paths.Value("/pets").Post.RequestBody.Value.Content.Get("application/json").Schema.Value
	props := body.Properties
	if !props["name"].Value.Type.Is("string") || !props["price"].Value.Type.Is("number") ||
		!props["tags"].Value.Type.Is("array") || !props["tags"].Value.Items.Value.Type.Is("string") ||
		props["owner"].Value.Properties["email"].Value.Format != "email" || props["meta"] == nil {
		t.Fatalf("body: %s", b)
	}
	if strings.Join(body.Required, ",") != "meta,name,price,tags" {
		t.Errorf("required %v", body.Required)
	}
	debug := doc.Paths.Value("/debug/{id}/{id2}")
	if debug == nil || debug.Get.Extensions["x-vigil-shadow"] != true || len(debug.Get.Parameters) != 2 {
		t.Fatalf("debug: %+v", debug)
	}
	if doc.Paths.Value("/pets").Get.Extensions["x-vigil-shadow"] != nil {
		t.Error("GET /pets marked shadow")
	}
	if z, ok := doc.Extensions["x-vigil-zombies"].([]any); !ok || len(z) != 3 {
		t.Errorf("zombies: %v", doc.Extensions["x-vigil-zombies"])
	}
	if r := doc.Paths.Value("/pets/{id}").Get.Responses; r.Value("default") == nil {
		t.Errorf("no status seen: responses %v", r.Map())
	}

	// Vigil reads its own export as a specification, and the traffic it
	// learned conforms to it.
	again, err := spec.Parse(b, "export")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []inspect.RequestView{
		{Method: "GET", Path: "/api/v1/pets", Query: "limit=12&status=sold"},
		{Method: "POST", Path: "/api/v1/pets", ContentType: "application/json", Body: []byte(`{"name":"a","price":1.5,"tags":["t1"],"owner":{"email":"a@b.co"},"meta":null}`)},
	} {
		if v := again.Judge(&r, nil); v.Kind != inspect.KindNone {
			t.Errorf("%s %s?%s against the export: %+v", r.Method, r.Path, r.Query, v)
		}
	}
	if v := again.Judge(&inspect.RequestView{Method: "GET", Path: "/api/v1/pets", Query: "limit=ten&status=sold"}, nil); v.Rule != spec.RuleType {
		t.Errorf("a wrong type against the export: %+v", v)
	}
}

// Without a model or a document, the export is the bare inventory.
func TestExportBare(t *testing.T) {
	a := observe.APIStats{Name: "api.example.com/", BasePath: "", Discovered: true, Endpoints: []observe.EndpointStats{
		{Method: "GET", Path: "/", Requests: 1}, {Method: "GET", Path: "/a{b}/{id}", Requests: 1},
	}}
	b, err := JSON(a, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("invalid: %v\n%s", err, b)
	}
	if doc.Paths.Value("/") == nil || doc.Paths.Value("/a%7Bb%7D/{id}") == nil || doc.Servers[0].URL != "/" {
		t.Fatalf("%s", b)
	}
}

// Whatever traffic taught the learner (odd paths, methods, parameter and
// JSON key names), the export stays a valid OpenAPI 3.1 document, and one
// Vigil reads back.
func TestExportOddNames(t *testing.T) {
	in := inspect.New(inspect.Config{})
	l := inspect.NewLearner(in, inspect.LearnConfig{MinIdentities: 1, MinSamples: 1, MinSpan: inspect.Duration(time.Nanosecond)})
	at := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	paths := []string{"/a b/{id}", "/x/%zz", "/é/\x01", "/a/{id}/{id}", "/a:b/c*d", "/q?x", "/{x}"}
	var eps []observe.EndpointStats
	for i, p := range paths {
		l.Observe(p, &inspect.RequestView{Method: "GET", Path: p, Query: "a%20b=1&%7Bx%7D=2&=3&a.b=4&a[]=5&x[y]=6&%00=7&é=8",
			Cookie: "s id=1; ;=2", UserAgent: "x", ContentType: "application/json",
			Body: []byte(`{"":1,"a.b":{"[]":2},"x":[[1]],"y":[{"z":null}]}`)}, fmt.Sprint(i), at.Add(time.Duration(i)*time.Second))
		eps = append(eps, observe.EndpointStats{Method: "GET", Path: p}, observe.EndpointStats{Method: "PROPFIND", Path: p})
	}
	b, err := JSON(observe.APIStats{Name: "odd", Endpoints: eps}, l.Model().Endpoints, nil)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if _, err := spec.Parse(b, "odd"); err != nil {
		t.Fatal(err)
	}
	if other := doc.Paths.Value("/a b/{id}").Extensions["x-vigil-other-methods"]; other == nil {
		t.Errorf("PROPFIND not listed: %s", b)
	}
}
