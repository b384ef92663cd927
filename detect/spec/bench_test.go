package spec

import (
	"testing"

	"github.com/vigil-project/vigil/detect/inspect"
)

var (
	benchGet = inspect.RequestView{Method: "GET", Path: "/api/v1/pets", Query: "limit=10&status=sold&tags=a,b,c&page=2&q=hello"}
	// A 20-field JSON body, every field declared.
	benchPost    = inspect.RequestView{Method: "POST", Path: "/api/v1/orders", ContentType: "application/json", Body: []byte(`{"id_0":1,"name_0":"alpha","flag_0":true,"price_0":1.5,"id_1":2,"name_1":"beta","flag_1":false,"price_1":2.25,"id_2":3,"name_2":"gamma","flag_2":true,"price_2":3,"id_3":4,"name_3":"delta","flag_3":false,"price_3":4.5,"id_4":5,"name_4":"epsilon","flag_4":true,"price_4":5.75}`)}
	benchForm    = inspect.RequestView{Method: "POST", Path: "/api/v1/login", ContentType: "application/x-www-form-urlencoded", Body: []byte("user=alice%40example.com&password=s3cr%21t&remember=true")}
	benchHeaders = headers{"x-request-id": reqID}
)

const benchDoc = `openapi: 3.1.0
info: {title: bench, version: '1'}
servers: [{url: /api/v1}]
paths:
  /pets:
    get:
      parameters:
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 100}}
        - {name: status, in: query, schema: {type: string, enum: [available, pending, sold]}}
        - {name: tags, in: query, explode: false, schema: {type: array, items: {type: string, pattern: '^[a-z]+$'}}}
        - {name: page, in: query, schema: {type: integer}}
        - {name: q, in: query, schema: {type: string, maxLength: 100}}
        - {name: x-request-id, in: header, required: true, schema: {type: string, format: uuid}}
      responses: {'200': {description: ok}}
  /orders:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [id_0, name_0]
              properties:
                id_0: {type: integer}
                name_0: {type: string}
                flag_0: {type: boolean}
                price_0: {type: number, minimum: 0}
                id_1: {type: integer}
                name_1: {type: string}
                flag_1: {type: boolean}
                price_1: {type: number, minimum: 0}
                id_2: {type: integer}
                name_2: {type: string}
                flag_2: {type: boolean}
                price_2: {type: number, minimum: 0}
                id_3: {type: integer}
                name_3: {type: string}
                flag_3: {type: boolean}
                price_3: {type: number, minimum: 0}
                id_4: {type: integer}
                name_4: {type: string}
                flag_4: {type: boolean}
                price_4: {type: number, minimum: 0}
      responses: {'201': {description: ok}}
  /login:
    post:
      requestBody:
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              required: [user, password]
              properties:
                user: {type: string, maxLength: 64}
                password: {type: string}
                remember: {type: boolean}
      responses: {'200': {description: ok}}
`

func benchSpec(tb testing.TB) *Spec {
	s, err := Parse([]byte(benchDoc), "bench")
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// A conforming request is judged without allocating.
func TestJudgeAllocations(t *testing.T) {
	if RaceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	s := benchSpec(t)
	for _, r := range []*inspect.RequestView{&benchGet, &benchPost, &benchForm} {
		if v := s.Judge(r, benchHeaders); v.Kind != inspect.KindNone {
			t.Fatalf("%s %s: %+v", r.Method, r.Path, v)
		}
		if n := testing.AllocsPerRun(200, func() { s.Judge(r, benchHeaders) }); n != 0 {
			t.Errorf("%s %s: %.1f allocations per call, want 0", r.Method, r.Path, n)
		}
	}
}

func BenchmarkJudgeGet(b *testing.B) {
	s := benchSpec(b)
	b.ReportAllocs()
	for b.Loop() {
		s.Judge(&benchGet, benchHeaders)
	}
}

func BenchmarkJudgePost20Fields(b *testing.B) {
	s := benchSpec(b)
	b.ReportAllocs()
	for b.Loop() {
		s.Judge(&benchPost, benchHeaders)
	}
}

// benchPostEscaped is benchPost with escapes in its string values and keys,
// which the walker decodes before judging.
var benchPostEscaped = inspect.RequestView{Method: "POST", Path: "/api/v1/orders", ContentType: "application/json", Body: []byte(`{"id_0":1,"name_0":"al\"pha \u00e9\ud83d\ude00","flag_0":true,"price_0":1.5,"id_1":2,"na\u006de_1":"be\\ta\n","flag_1":false,"price_1":2.25,"id_2":3,"name_2":"gam\tma \/ \u0041\u0042\u0043","flag_2":true,"price_2":3,"id_3":4,"name_3":"delta","flag_3":false,"price_3":4.5,"id_4":5,"name_4":"ep\u0073ilon","flag_4":true,"price_4":5.75}`)}

func BenchmarkJudgePostEscaped(b *testing.B) {
	s := benchSpec(b)
	if v := s.Judge(&benchPostEscaped, benchHeaders); v.Kind != inspect.KindNone {
		b.Fatalf("%+v", v)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Judge(&benchPostEscaped, benchHeaders)
	}
}
