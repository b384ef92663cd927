package spec

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-project/vigil/detect/inspect"
)

// The loader never panics on bad input: a document is an error or a Spec,
// and a Spec judges any request.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"petstore30.yaml", "petstore31.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(benchDoc))
	f.Add([]byte("openapi: 3.1.0\ninfo: {title: x, version: '1'}\npaths:\n  /a/{b}.json:\n    get:\n      parameters: [{name: b, in: path, required: true, schema: {type: integer}}]\n      responses: {'200': {description: ok}}\n"))
	f.Add([]byte(`{"openapi":"3.0.0","info":{"title":"x","version":"1"},"paths":{"/a":{"post":{"requestBody":{"content":{"application/json":{"schema":{"$ref":"#/components/schemas/A"}}}},"responses":{"200":{"description":"ok"}}}}},"components":{"schemas":{"A":{"type":"object","properties":{"a":{"$ref":"#/components/schemas/A"}},"allOf":[{"$ref":"#/components/schemas/A"}]}}}}`))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte{0xff, 0xfe, 0})
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, err := Parse(doc, "fuzz")
		if err != nil {
			if s != nil {
				t.Fatal("a Spec with an error")
			}
			return
		}
		for _, op := range s.Operations() {
			path := s.BasePaths[0] + op.Path
			s.Judge(&inspect.RequestView{Method: op.Method, Path: path, Query: "a=1&b", ContentType: "application/json", Body: []byte(`{"a":{"a":[1,"x",null]},"b":true}`)}, headers{})
			s.Judge(&inspect.RequestView{Method: op.Method, Path: path, ContentType: "application/x-www-form-urlencoded", Body: []byte(`a=1&b=%zz`)}, nil)
		}
	})
}

// Judge never panics on any request, and a verdict always names a rule.
func FuzzJudge(f *testing.F) {
	s30, err := Load(filepath.Join("testdata", "petstore30.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	s31, err := Load(filepath.Join("testdata", "petstore31.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("POST", "/api/v1/pets", "limit=1", "application/json", "a=b", []byte(`{"name":"x","owner":{"email":"a@b"},"photos":["\u0041"]}`))
	f.Add("PUT", "/users/0b6b4bd2-5a1e-4a8e-9d3e-2f7c1c9b8a11", "", "application/json", "session=x", []byte(`{"email":"a@b.co","addresses":[{"city":"x"}]`))
	f.Add("GET", "/api/v1/pets/%2e%2e/x", "tags=a,,b&limit=-0e1", "", "", []byte(nil))
	f.Add("PATCH", "/api/v1/pets/1", "", "application/json", "", []byte(`{"notes":{"a":"\ud800","b":[[[[{}]]]]}}`))
	f.Fuzz(func(t *testing.T, method, path, query, ct, cookie string, body []byte) {
		for _, s := range []*Spec{s30, s31} {
			r := inspect.RequestView{Method: method, Path: path, Query: query, ContentType: ct, Cookie: cookie, Body: body}
			v := s.Judge(&r, headers{"x-request-id": query})
			if (v.Kind == inspect.KindNone) != (v.Rule == "") {
				t.Fatalf("verdict %+v", v)
			}
			if len(v.Excerpt) > 64 {
				t.Fatalf("excerpt of %d bytes", len(v.Excerpt))
			}
		}
	})
}
