package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/detect/inspect"
)

func load(t testing.TB, name string) *Spec {
	t.Helper()
	s, err := Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	return s
}

type headers map[string]string

func (h headers) Header(name string) (string, bool) {
	v, ok := h[name]
	return v, ok
}

const reqID = "5f2b8f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"

func TestLoadCompiles(t *testing.T) {
	s30 := load(t, "petstore30.yaml")
	if s30.Version != "3.0.3" || s30.Title != "Petstore" || len(s30.BasePaths) != 1 || s30.BasePaths[0] != "/api/v1" {
		t.Fatalf("3.0: version %q title %q bases %q", s30.Version, s30.Title, s30.BasePaths)
	}
	var keys []string
	for _, op := range s30.Operations() {
		keys = append(keys, op.Key())
	}
	want := "GET /orders,GET /pets,POST /pets,GET /pets/mine,DELETE /pets/{petId},GET /pets/{petId},PATCH /pets/{petId}"
	if got := strings.Join(keys, ","); got != want {
		t.Fatalf("operations\n got %s\nwant %s", got, want)
	}
	s31 := load(t, "petstore31.json")
	if s31.Version != "3.1.0" || len(s31.BasePaths) != 1 || s31.BasePaths[0] != "" {
		t.Fatalf("3.1: version %q bases %q", s31.Version, s31.BasePaths)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, doc, want string }{
		{"empty.yaml", "", "empty"},
		{"notyaml.yaml", "openapi: [3.0\n  : :", "unmarshal"},
		{"swagger.json", `{"swagger": "2.0", "info": {"title": "x", "version": "1"}, "paths": {}}`, "not an OpenAPI 3"},
		{"v4.yaml", "openapi: 4.0.0\ninfo: {title: x, version: '1'}\npaths: {/a: {get: {responses: {'200': {description: ok}}}}}\n", "only OpenAPI 3.0 and 3.1"},
		{"noinfo.yaml", "openapi: 3.0.3\npaths: {/a: {get: {responses: {'200': {description: ok}}}}}\n", "invalid document"},
		{"nopaths.yaml", "openapi: 3.1.0\ninfo: {title: x, version: '1'}\n", "no paths"},
		{"badref.yaml", "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths: {/a: {post: {requestBody: {content: {application/json: {schema: {$ref: '#/components/schemas/Nope'}}}}, responses: {'200': {description: ok}}}}}\n", "Nope"},
		{"remote.yaml", "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths: {/a: {post: {requestBody: {content: {application/json: {schema: {$ref: 'http://169.254.169.254/x.yaml#/S'}}}}, responses: {'200': {description: ok}}}}}\n", "only local files"},
		{"undeclaredparam.yaml", "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /a/{id}:\n    get:\n      responses: {'200': {description: ok}}\n", "invalid document"},
	}
	for _, c := range cases {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, []byte(c.doc), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s: error %v, want one naming the file and %q", c.name, err, c.want)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory: %v", err)
	}
}

func TestLoadLocalRef(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "schemas.yaml"), []byte("Pet:\n  type: object\n  additionalProperties: false\n  properties:\n    name: {type: string}\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "api.yaml"), []byte("openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /pets:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema: {$ref: 'schemas.yaml#/Pet'}\n      responses: {'200': {description: ok}}\n"), 0o600)
	s, err := Load(filepath.Join(dir, "api.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	v := s.Judge(&inspect.RequestView{Method: "POST", Path: "/pets", ContentType: "application/json", Body: []byte(`{"name":"a","role":"admin"}`)}, nil)
	if v.Kind != inspect.MassAssignment || v.KeyPath != "body.role" {
		t.Fatalf("verdict %+v", v)
	}
}

func TestJudge(t *testing.T) {
	s30 := load(t, "petstore30.yaml")
	s31 := load(t, "petstore31.json")
	h := headers{"x-request-id": reqID}
	uid := "/users/0b6b4bd2-5a1e-4a8e-9d3e-2f7c1c9b8a11"
	cases := []struct {
		name string
		s    *Spec
		r    inspect.RequestView
		h    Headers
		kind inspect.Kind
		rule string
		path string
	}{
		// Conforming.
		{"list", s30, inspect.RequestView{Method: "GET", Path: "/api/v1/pets", Query: "limit=10&status=sold&tags=a,b&other=x"}, h, 0, "", ""},
		{"literal before param", s30, inspect.RequestView{Method: "GET", Path: "/api/v1/pets/mine"}, h, 0, "", ""},
		{"get pet", s30, inspect.RequestView{Method: "GET", Path: "/api/v1/pets/42/"}, h, 0, "", ""},
		{"head as get", s30, inspect.RequestView{Method: "HEAD", Path: "/api/v1/pets/42"}, h, 0, "", ""},
		{"options", s30, inspect.RequestView{Method: "OPTIONS", Path: "/api/v1/pets/42"}, h, 0, "", ""},
		{"outside base path", s30, inspect.RequestView{Method: "GET", Path: "/admin/x"}, h, 0, "", ""},
		{"create", s30, inspect.RequestView{Method: "POST", Path: "/api/v1/pets", ContentType: "application/json",
			Body: []byte(`{"name":"Rex","tag":null,"price":1.5,"owner":{"email":"a@b.co"},"photos":["x"]}`)}, h, 0, "", ""},
		{"cut body", s30, inspect.RequestView{Method: "POST", Path: "/api/v1/pets", ContentType: "application/json",
			Body: []byte(`{"name":"Rex","pri`)}, h, 0, "", ""},
		{"patch free map", s30, inspect.RequestView{Method: "PATCH", Path: "/api/v1/pets/1", ContentType: "application/json",
			Body: []byte(`{"notes":{"anything":"goes"}}`)}, h, 0, "", ""},
		{"3.1 put", s31, inspect.RequestView{Method: "PUT", Path: uid, ContentType: "application/json",
			Body: []byte(`{"email":"a@b.co","nickname":null,"age":3,"addresses":[{"city":"Paris","zip":"75001"}]}`)}, nil, 0, "", ""},
		{"3.1 cookie", s31, inspect.RequestView{Method: "GET", Path: uid, Cookie: "a=b; session=abcdefghij"}, nil, 0, "", ""},

		// schema_violation.
		{"unknown path", s30, inspect.RequestView{Method: "GET", Path: "/api/v1/admin"}, h, inspect.SchemaViolation, RuleUnknownPath, "path"},
		{"unknown path under param", s30, inspect.RequestView{Method: "GET", Path: "/api/v1/pets/1/x"}, h, inspect.SchemaViolation, RuleUnknownPath, "path"},
		{"unknown method", s30, inspect.RequestView{Method: "PUT", Path: "/api/v1/pets"}, h, inspect.SchemaViolation, RuleUnknownMethod, "path"},
		{"missing query", s30, inspect.RequestView{Method: "GET", Path: "/api/v1/orders"}, h, inspect.SchemaViolation, RuleMissingParameter, "query.since"},
		{"missing header", s30, inspect.RequestView{Method: "GET", Path: "/api/v1/pets"}, headers{}, inspect.SchemaViolation, RuleMissingParameter, "header.x-request-id"},
		{"header format", s30, inspect.RequestView{Method: "GET", Path: "/api/v1/pets"}, headers{"x-request-id": "nope"}, inspect.SchemaViolation, RuleFormat, "header.x-request-id"},
		{"query type", s30, inspect.RequestView{Method: "GET", Path: "/api/v1/pets", Query: "limit=1%27%20OR%201=1"}, h, inspect.SchemaViolation, RuleType, "query.limit"},
		{"query range", s30, inspect.RequestView{Method: "GET", Path: "/api/v1/pets", Query: "limit=1000"}, h, inspect.SchemaViolation, RuleRange, "query.limit"},
		{"query enum", s30, inspect.RequestView{Method: "GET", Path: "/api/v1/pets", Query: "status=deleted"}, h, inspect.SchemaViolation, RuleEnum, "query.status"},
		{"query pattern in array", s30, inspect.RequestView{Method: "GET", Path: "/api/v1/pets", Query: "tags=a,B1"}, h, inspect.SchemaViolation, RulePattern, "query.tags"},
		{"query date", s30, inspect.RequestView{Method: "GET", Path: "/api/v1/orders", Query: "since=2024-13-01"}, h, inspect.SchemaViolation, RuleFormat, "query.since"},
		{"path type", s30, inspect.RequestView{Method: "GET", Path: "/api/v1/pets/..%2f..%2fetc"}, h, inspect.SchemaViolation, RuleType, "path.petId"},
		{"missing body", s30, inspect.RequestView{Method: "POST", Path: "/api/v1/pets"}, h, inspect.SchemaViolation, RuleMissingBody, "body"},
		{"missing property", s30, inspect.RequestView{Method: "POST", Path: "/api/v1/pets", ContentType: "application/json", Body: []byte(`{"tag":"x"}`)}, h, inspect.SchemaViolation, RuleMissingProperty, "body.name"},
		{"body type", s30, inspect.RequestView{Method: "POST", Path: "/api/v1/pets", ContentType: "application/json", Body: []byte(`{"name":"a","price":"free"}`)}, h, inspect.SchemaViolation, RuleType, "body.price"},
		{"body length", s30, inspect.RequestView{Method: "POST", Path: "/api/v1/pets", ContentType: "application/json", Body: []byte(`{"name":""}`)}, h, inspect.SchemaViolation, RuleLength, "body.name"},
		{"body range", s30, inspect.RequestView{Method: "POST", Path: "/api/v1/pets", ContentType: "application/json", Body: []byte(`{"name":"a","price":-1}`)}, h, inspect.SchemaViolation, RuleRange, "body.price"},
		{"nested format", s30, inspect.RequestView{Method: "POST", Path: "/api/v1/pets", ContentType: "application/json", Body: []byte(`{"name":"a","owner":{"email":"nobody"}}`)}, h, inspect.SchemaViolation, RuleFormat, "body.owner.email"},
		{"array item type", s30, inspect.RequestView{Method: "POST", Path: "/api/v1/pets", ContentType: "application/json", Body: []byte(`{"name":"a","photos":[1]}`)}, h, inspect.SchemaViolation, RuleType, "body.photos[]"},
		{"free map value type", s30, inspect.RequestView{Method: "PATCH", Path: "/api/v1/pets/1", ContentType: "application/json", Body: []byte(`{"notes":{"a":1}}`)}, h, inspect.SchemaViolation, RuleType, "body.notes.a"},
		{"3.1 path uuid", s31, inspect.RequestView{Method: "GET", Path: "/users/42"}, nil, inspect.SchemaViolation, RuleFormat, "path.userId"},
		{"3.1 cookie length", s31, inspect.RequestView{Method: "GET", Path: uid, Cookie: "session=short"}, nil, inspect.SchemaViolation, RuleLength, "cookie.session"},
		{"3.1 exclusive minimum", s31, inspect.RequestView{Method: "PUT", Path: uid, ContentType: "application/json", Body: []byte(`{"email":"a@b.co","age":0}`)}, nil, inspect.SchemaViolation, RuleRange, "body.age"},
		{"3.1 type array", s31, inspect.RequestView{Method: "PUT", Path: uid, ContentType: "application/json", Body: []byte(`{"email":"a@b.co","nickname":5}`)}, nil, inspect.SchemaViolation, RuleType, "body.nickname"},
		{"3.1 ref item required", s31, inspect.RequestView{Method: "PUT", Path: uid, ContentType: "application/json", Body: []byte(`{"email":"a@b.co","addresses":[{"zip":"75001"}]}`)}, nil, inspect.SchemaViolation, RuleMissingProperty, "body.addresses[].city"},
		{"3.1 ref item pattern", s31, inspect.RequestView{Method: "PUT", Path: uid, ContentType: "application/json", Body: []byte(`{"email":"a@b.co","addresses":[{"city":"x","zip":"7500"}]}`)}, nil, inspect.SchemaViolation, RulePattern, "body.addresses[].zip"},

		{"media type", s30, inspect.RequestView{Method: "POST", Path: "/api/v1/pets", ContentType: "application/xml", Body: []byte(`<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>`)}, h, inspect.SchemaViolation, RuleMediaType, "header.content-type"},
		{"media type with parameters", s30, inspect.RequestView{Method: "POST", Path: "/api/v1/pets", ContentType: "Application/JSON; charset=utf-8", Body: []byte(`{"name":"a"}`)}, h, 0, "", ""},
		{"no content type", s30, inspect.RequestView{Method: "POST", Path: "/api/v1/pets", Body: []byte(`{"name":"a"}`)}, h, 0, "", ""},

		// mass_assignment.
		{"undeclared on write", s30, inspect.RequestView{Method: "POST", Path: "/api/v1/pets", ContentType: "application/json", Body: []byte(`{"name":"a","role":"admin"}`)}, h, inspect.MassAssignment, RuleUndeclaredProperty, "body.role"},
		{"escaped key", s30, inspect.RequestView{Method: "POST", Path: "/api/v1/pets", ContentType: "application/json", Body: []byte(`{"name":"a","is_\u0061dmin":true}`)}, h, inspect.MassAssignment, RuleUndeclaredProperty, "body.is_admin"},
		{"read-only on write", s30, inspect.RequestView{Method: "POST", Path: "/api/v1/pets", ContentType: "application/json", Body: []byte(`{"id":7,"name":"a"}`)}, h, inspect.MassAssignment, RuleReadOnlyProperty, "body.id"},
		{"closed nested", s30, inspect.RequestView{Method: "POST", Path: "/api/v1/pets", ContentType: "application/json", Body: []byte(`{"name":"a","owner":{"email":"a@b.co","admin":true}}`)}, h, inspect.MassAssignment, RuleUndeclaredProperty, "body.owner.admin"},
		{"patch undeclared", s30, inspect.RequestView{Method: "PATCH", Path: "/api/v1/pets/1", ContentType: "application/json; charset=utf-8", Body: []byte(`{"role":"admin"}`)}, h, inspect.MassAssignment, RuleUndeclaredProperty, "body.role"},
		{"3.1 put undeclared", s31, inspect.RequestView{Method: "PUT", Path: uid, ContentType: "application/json", Body: []byte(`{"email":"a@b.co","is_admin":true}`)}, nil, inspect.MassAssignment, RuleUndeclaredProperty, "body.is_admin"},
	}
	for _, c := range cases {
		v := c.s.Judge(&c.r, c.h)
		if v.Kind != c.kind || v.Rule != c.rule || v.KeyPath != c.path {
			t.Errorf("%s: got %v %q at %q (%q), want %v %q at %q", c.name, v.Kind, v.Rule, v.KeyPath, v.Excerpt, c.kind, c.rule, c.path)
		}
		if c.kind != inspect.KindNone && c.rule != RuleUnknownPath && c.rule != RuleUnknownMethod && v.Operation == nil {
			t.Errorf("%s: no operation in the verdict", c.name)
		}
	}
}

// A header parameter is not called missing when the caller gives no
// headers (it cannot know), and a request refused for its content keeps
// secrets out of the excerpt.
func TestJudgeHeadersUnknown(t *testing.T) {
	s := load(t, "petstore30.yaml")
	if v := s.Judge(&inspect.RequestView{Method: "GET", Path: "/api/v1/pets"}, nil); v.Kind != inspect.KindNone {
		t.Fatalf("without headers: %+v", v)
	}
	v := s.Judge(&inspect.RequestView{Method: "GET", Path: "/api/v1/pets"}, headers{"x-request-id": "secret-token"})
	if v.Rule != RuleFormat || v.Excerpt != "" {
		t.Fatalf("header excerpt: %+v", v)
	}
}

func TestMatch(t *testing.T) {
	s := load(t, "petstore30.yaml")
	for _, c := range []struct {
		method, path, want string
		known              bool
	}{
		{"GET", "/api/v1/pets/{id}", "GET /pets/{petId}", true},
		{"DELETE", "/api/v1/pets/12", "DELETE /pets/{petId}", true},
		{"GET", "/api/v1/pets/mine", "GET /pets/mine", true},
		{"POST", "/api/v1/pets/mine", "", true},
		{"GET", "/api/v1/nope", "", true},
		{"GET", "/other", "", false},
	} {
		op, known := s.Match(c.method, c.path)
		got := ""
		if op != nil {
			got = op.Key()
		}
		if got != c.want || known != c.known {
			t.Errorf("Match(%s %s) = %q, %v; want %q, %v", c.method, c.path, got, known, c.want, c.known)
		}
	}
}

func TestAcceptsMedia(t *testing.T) {
	op := &Operation{media: []string{"application/json", "image/*"}}
	for ct, want := range map[string]bool{
		"application/json": true, "APPLICATION/JSON ; charset=utf-8": true, "image/png": true, "image/": false,
		"text/xml": false, "application/jsonx": false, "": true, "imagex/png": false,
	} {
		if got := op.acceptsMedia(ct); got != want {
			t.Errorf("acceptsMedia(%q) = %v, want %v", ct, got, want)
		}
	}
	any := &Operation{media: []string{"*/*"}}
	if !any.acceptsMedia("text/plain") {
		t.Error("*/* refuses text/plain")
	}
	h := HeaderFunc(func(name string) (string, bool) { return reqID, name == "x-request-id" })
	if v := load(t, "petstore30.yaml").Judge(&inspect.RequestView{Method: "GET", Path: "/api/v1/pets"}, h); v.Kind != inspect.KindNone {
		t.Errorf("with a HeaderFunc: %+v", v)
	}
}

func TestExcerptMasksSecrets(t *testing.T) {
	for in, want := range map[string]string{
		"' OR 1=1--": "' OR 1=1--",
		"Bearer eyJhbGciOiJIUzI1NiJ9abcdefghijkl": "Bearer eyJh***",
		"a\x00b\xffc":                              "a?b?c",
		strings.Repeat("x ", 40):                   strings.Repeat("x ", 32),
		"key=sk_live_0123456789abcdefghijklmn&x=1": "key=***&x=1",
	} {
		if got := excerpt([]byte(in)); got != want {
			t.Errorf("excerpt(%q) = %q, want %q", in, got, want)
		}
	}
}

// A date-time whose '+' came unescaped in a query string (decoded as a
// space) is still a date-time; Accept, Content-Type and Authorization
// header parameters are ignored, as OpenAPI says.
func TestJudgeLenience(t *testing.T) {
	s, err := Parse([]byte(`openapi: 3.0.3
info: {title: x, version: '1'}
paths:
  /events:
    get:
      parameters:
        - {name: since, in: query, required: true, schema: {type: string, format: date-time}}
        - {name: Authorization, in: header, required: true, schema: {type: string, pattern: '^Basic '}}
        - {name: Accept, in: header, required: true, schema: {type: string, enum: [application/json]}}
      responses: {'200': {description: ok}}
`), "lenience")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"since=2026-12-07T10:00:00+01:00", "since=2026-12-07T10:00:00%2B01:00", "since=2026-12-07T10:00:00Z"} {
		if v := s.Judge(&inspect.RequestView{Method: "GET", Path: "/events", Query: q}, headers{"authorization": "Bearer x"}); v.Kind != inspect.KindNone {
			t.Errorf("%s: %+v", q, v)
		}
	}
	if v := s.Judge(&inspect.RequestView{Method: "GET", Path: "/events", Query: "since=yesterday"}, headers{}); v.Rule != RuleFormat {
		t.Errorf("since=yesterday: %+v", v)
	}
}

func TestJudgeForm(t *testing.T) {
	s := benchSpec(t)
	for _, c := range []struct {
		body, rule, path string
		kind             inspect.Kind
	}{
		{"user=a&password=b", "", "", inspect.KindNone},
		{"user=a", RuleMissingProperty, "body.password", inspect.SchemaViolation},
		{"user=a&password=b&remember=yes", RuleType, "body.remember", inspect.SchemaViolation},
		{"user=a&password=b&is_admin=1", RuleUndeclaredProperty, "body.is_admin", inspect.MassAssignment},
	} {
		v := s.Judge(&inspect.RequestView{Method: "POST", Path: "/api/v1/login", ContentType: "application/x-www-form-urlencoded", Body: []byte(c.body)}, nil)
		if v.Kind != c.kind || v.Rule != c.rule || v.KeyPath != c.path {
			t.Errorf("%s: %+v", c.body, v)
		}
	}
}

// A JSON string is judged decoded as JSON decodes it: an escaped surrogate
// pair is one character (for maxLength and patterns), an escaped key the
// property it names.
func TestJudgeEscapedStrings(t *testing.T) {
	s := load(t, "petstore30.yaml")
	h := headers{"x-request-id": reqID}
	for _, tc := range []struct {
		body string
		rule string
	}{
		{`{"name":"` + strings.Repeat(`\ud83d\ude00`, 40) + `"}`, ""},
		{`{"name":"` + strings.Repeat(`\ud83d\ude00`, 41) + `"}`, RuleLength},
		{`{"n\u0061me":"\u0052ex"}`, ""},
		{`{"name":"\ud83d"}`, ""}, // a lone surrogate: U+FFFD, one character
	} {
		r := inspect.RequestView{Method: "POST", Path: "/api/v1/pets", ContentType: "application/json", Body: []byte(tc.body)}
		if v := s.Judge(&r, h); v.Rule != tc.rule {
			t.Errorf("%.60s: %+v, want rule %q", tc.body, v, tc.rule)
		}
	}
}
