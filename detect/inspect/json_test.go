package inspect

import (
	"fmt"
	"strings"
	"testing"
)

// walk collects every value the extraction emits, as "path=value".
func walk(in *Inspector, r *RequestView) (vals []string, capped Caps) {
	st := newState(in)
	st.reset(nil)
	st.visit = func(_ Location, path, v []byte) { vals = append(vals, string(path)+"="+string(v)) }
	st.request(r)
	return vals, st.capped
}

func jsonReq(body string) *RequestView {
	return &RequestView{Method: "POST", Path: "/orders", ContentType: "application/json; charset=utf-8", Body: []byte(body)}
}

func TestJSONKeyPathsAndUnescapedValues(t *testing.T) {
	in := New(Config{})
	got, capped := walk(in, jsonReq(`{"id": 42, "items": [{"sku":"a-1","note":"gift \u00e9\ud83d\ude00 \"x\""}, {"note": "b"}],
		"ok": true, "n": null, "tags": ["x", ["y"]], "addr": {"city": "Lyon", "geo": {"lat": -4.5e3}}}`))
	want := []string{
		"body.id=42", "body.items[].sku=a-1", "body.items[].note=gift é😀 \"x\"", "body.items[].note=b",
		"body.ok=true", "body.n=null", "body.tags[]=x", "body.tags[][]=y", "body.addr.city=Lyon",
		"body.addr.geo.lat=-4.5e3",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("values:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if capped != 0 {
		t.Errorf("capped %b on a small document", capped)
	}
}

// The tokenizer is streaming: the same values whatever the chunking.
func TestJSONTokenizerSameValuesInAnyChunks(t *testing.T) {
	in := New(Config{})
	doc := `{"a":"x\u0041y","b":[1,2.5,{"c":"\ud83d\ude00"}],"d":{"e":"q\\\"r"},"f":123}`
	whole, _ := walk(in, jsonReq(doc))
	for _, size := range []int{1, 2, 3, 7} {
		st := newState(in)
		st.reset(nil)
		var got []string
		st.visit = func(_ Location, path, v []byte) { got = append(got, string(path)+"="+string(v)) }
		st.setPath(LocBody, "")
		st.json.reset()
		for i := 0; i < len(doc); i += size {
			st.json.write(st, []byte(doc[i:min(i+size, len(doc))]))
		}
		st.json.finish(st)
		if fmt.Sprint(got) != fmt.Sprint(whole) {
			t.Errorf("chunks of %d: %v, want %v", size, got, whole)
		}
	}
}

func TestJSONCapsAreCounted(t *testing.T) {
	in := New(Config{MaxValues: 5, MaxValueBytes: 8})
	deep := strings.Repeat(`{"a":`, 40) + `"deep"` + strings.Repeat("}", 40)
	cases := []struct {
		name, body string
		want       Caps
	}{
		{"values", `[1,2,3,4,5,6,7]`, CapValues},
		{"value bytes", `{"a":"0123456789abcdef"}`, CapValueBytes},
		{"depth", deep, CapDepth},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := in.Request(jsonReq(c.body), nil)
			if f.Capped&c.want == 0 {
				t.Errorf("capped %b, want %b", f.Capped, c.want)
			}
		})
	}
	s := in.Stats()
	if s.CappedValues != 1 || s.CappedValueBytes != 1 || s.CappedDepth != 1 {
		t.Errorf("stats %+v, want one of each cap", s)
	}
	// A deep value is still inspected, under the deepest key path tracked.
	f := in.Request(jsonReq(strings.Repeat(`{"a":`, 40)+`"../../etc/passwd"`+strings.Repeat("}", 40)), nil)
	if f.Kind != PathTraversal {
		t.Errorf("deep traversal: %v", f.Kind)
	}
}

func TestJSONMalformedNeverPanics(t *testing.T) {
	in := New(Config{})
	for _, b := range []string{`{"a":`, `]]]}}}`, `"\u12`, `{"a" "b" : : ,,]`, `\`, `"\ud800"`, `{"a":tru`} {
		in.Request(jsonReq(b), nil)
	}
}

func TestXMLValuesWithTheirKeyPaths(t *testing.T) {
	in := New(Config{})
	got, _ := walk(in, &RequestView{Method: "POST", ContentType: "application/xml", Body: []byte(
		`<?xml version="1.0"?><!-- c --><ns:order id="7" kind='gift'><note>two &amp; three</note><![CDATA[<b>x</b>]]></ns:order>`)})
	want := "[body.order.id=7 body.order.kind=gift body.note=two & three body.note=<b>x</b>]"
	if fmt.Sprint(got) != want {
		t.Errorf("values %v, want %s", got, want)
	}
	f := in.Request(&RequestView{Method: "POST", ContentType: "text/xml", Body: []byte(`<a><q>' or 1=1--</q></a>`)}, nil)
	if f.Kind != SQLInjection || f.KeyPath() != "body.q" {
		t.Errorf("finding %v at %q, want sql_injection at body.q", f.Kind, f.KeyPath())
	}
}

// Extraction and inspection of benign requests allocate nothing in the
// steady state: the JSON tokenizer's string buffer and the decode buffers
// are pooled, and the pre-filter keeps benign values (a UA with parens, a
// search with spaces) out of libinjection-go, which allocates inside.
func TestInspectionDoesNotAllocate(t *testing.T) {
	if RaceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	in := New(Config{})
	reqs := []*RequestView{
		{Method: "GET", Path: "/shop/items/42", Query: "q=red+shoes&page=2&sort=price-asc&since=2024-01-02&email=a%40b.c", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)", Cookie: "sid=abc123; theme=dark"},
		jsonReq(`{"name":"Ann O'Neil","items":[{"sku":"A1","qty":2,"note":"gift \u00e9"}],"addr":{"city":"Lyon"},"total":12.5}`),
		{Method: "GET", Path: "/search", Query: "q=red+shoes+for+men%2C+size+42+(EU)&ref=http%3A%2F%2Fshop.example.com%2Fa%3Fb%3Dc"},
	}
	for _, r := range reqs {
		in.Request(r, nil)
		if n := testing.AllocsPerRun(100, func() { in.Request(r, nil) }); n != 0 {
			t.Errorf("%s %s%s: %v allocations per request", r.Method, r.Path, r.Query, n)
		}
	}
}

func TestSensitiveFilesAreLowerCase(t *testing.T) {
	for _, f := range sensitiveFiles {
		if strings.ToLower(f) != f || strings.Contains(f, "\\") {
			t.Errorf("sensitive file %q: detectTraversal matches lower-case patterns with '/'", f)
		}
	}
}
