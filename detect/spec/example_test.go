package spec_test

import (
	"fmt"

	"github.com/vigil-project/vigil/detect/inspect"
	"github.com/vigil-project/vigil/detect/spec"
)

// The hot path's use: the document loaded once at start (spec.Load(path)
// for apis[].openapi), then each request judged; a verdict becomes an
// attack of type v.Kind.String() with the variable v.KeyPath, the rule
// v.Rule and the excerpt v.Excerpt.
func ExampleSpec_Judge() {
	s, err := spec.Load("testdata/petstore30.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	headers := spec.HeaderFunc(func(name string) (string, bool) {
		return "5f2b8f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", name == "x-request-id"
	})
	for _, r := range []inspect.RequestView{
		{Method: "GET", Path: "/api/v1/pets", Query: "limit=10"},
		{Method: "GET", Path: "/api/v1/pets", Query: "limit=1%20UNION%20SELECT"},
		{Method: "DELETE", Path: "/api/v1/pets"},
		{Method: "PATCH", Path: "/api/v1/pets/7", ContentType: "application/json", Body: []byte(`{"name":"Rex","role":"admin"}`)},
	} {
		v := s.Judge(&r, headers)
		if v.Kind == inspect.KindNone {
			fmt.Println(r.Method, r.Path, "allowed")
			continue
		}
		fmt.Println(r.Method, r.Path, v.Kind, v.Rule, v.KeyPath, v.Excerpt)
	}
	// Output:
	// GET /api/v1/pets allowed
	// GET /api/v1/pets schema_violation spec-type query.limit 1 UNION SELECT
	// DELETE /api/v1/pets schema_violation spec-unknown-method path DELETE
	// PATCH /api/v1/pets/7 mass_assignment spec-undeclared-property body.role role
}
