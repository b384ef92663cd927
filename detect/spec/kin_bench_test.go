package spec

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/vigil-project/vigil/detect/inspect"
)

// kinValidate validates a request with kin-openapi's generic validator
// (openapi3filter), routed by its legacy router: what Judge is compared
// with, in the same run.
func kinValidator(tb testing.TB) func(r *inspect.RequestView) error {
	// The router matches servers with their host.
	doc, err := openapi3.NewLoader().LoadFromData([]byte(strings.Replace(benchDoc, "url: /api/v1", "url: 'http://shop.example.com/api/v1'", 1)))
	if err != nil {
		tb.Fatal(err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		tb.Fatal(err)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	return func(r *inspect.RequestView) error {
		req := httptest.NewRequest(r.Method, "http://shop.example.com"+r.Path+"?"+r.Query, nil)
		if len(r.Body) > 0 {
			req.Body = io.NopCloser(bytes.NewReader(r.Body))
			req.Header.Set("Content-Type", r.ContentType)
		}
		req.Header.Set("X-Request-Id", reqID)
		route, params, err := router.FindRoute(req)
		if err != nil {
			return err
		}
		return openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route, Options: opts,
		})
	}
}

func TestKinAgrees(t *testing.T) {
	v := kinValidator(t)
	for _, r := range []*inspect.RequestView{&benchGet, &benchPost} {
		if err := v(r); err != nil {
			t.Fatalf("%s %s: %v", r.Method, r.Path, err)
		}
	}
	bad := inspect.RequestView{Method: "GET", Path: "/api/v1/pets", Query: "limit=x"}
	if v(&bad) == nil || benchSpec(t).Judge(&bad, benchHeaders).Rule != RuleType {
		t.Fatal("limit=x allowed")
	}
}

func BenchmarkKinFilterGet(b *testing.B) {
	v := kinValidator(b)
	b.ReportAllocs()
	for b.Loop() {
		v(&benchGet)
	}
}

func BenchmarkKinFilterPost20Fields(b *testing.B) {
	v := kinValidator(b)
	b.ReportAllocs()
	for b.Loop() {
		v(&benchPost)
	}
}
