package inspect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"
)

// The seeds run in every go test; go test -fuzz=FuzzX explores further.

func FuzzURLDecode(f *testing.F) {
	for _, s := range []string{"a%20b+c", "%", "%2", "%zz", "%u0041%U00e9", "%25252e", "%u12"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, plus bool) {
		out, changed := urlDecode(nil, []byte(s), plus)
		if len(out) > len(s) {
			t.Fatalf("decoded %q longer than %q", out, s)
		}
		if !changed && string(out) != s {
			t.Fatalf("unchanged %q became %q", s, out)
		}
		if !strings.ContainsAny(s, "%+") && changed {
			t.Fatalf("%q changed without escapes", s)
		}
	})
}

func FuzzUnescapeUnicode(f *testing.F) {
	for _, s := range []string{`\u003c`, `\x3c\X3E`, `\u{1F600}`, `\u{110000}`, `\u12`, `\`, `a\\b`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, changed := unescapeUnicode(nil, []byte(s))
		if len(out) > len(s) {
			t.Fatalf("decoded %q longer than %q", out, s)
		}
		if !changed && string(out) != s {
			t.Fatalf("unchanged %q became %q", s, out)
		}
	})
}

func FuzzHTMLDecode(f *testing.F) {
	for _, s := range []string{"&lt;script&gt;", "&#60&#x3C;&#0000060;", "&#1114112;", "&colon;&lpar;", "&", "&#", "&#x;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, changed := htmlDecode(nil, []byte(s))
		if len(out) > len(s) {
			t.Fatalf("decoded %q longer than %q", out, s)
		}
		if !changed && string(out) != s {
			t.Fatalf("unchanged %q became %q", s, out)
		}
	})
}

func FuzzBase64Text(f *testing.F) {
	for _, s := range []string{"PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "Li4vLi4vZXRjL3Bhc3N3ZA", "aaaaaaaaaaaaaaaa", "////////////////", "a-b_c-d_e-f_g-h_"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, ok := base64Text(make([]byte, 0, 4096), []byte(s))
		if !ok {
			return
		}
		if len(out) > len(s) {
			t.Fatalf("decoded %q longer than %q", out, s)
		}
		for _, c := range out {
			if (c < 0x20 || c >= 0x7f) && c != '\t' && c != '\n' && c != '\r' {
				t.Fatalf("%q decoded to non-text %q", s, out)
			}
		}
	})
}

// jsonLeaves lists a valid document's values in order, as encoding/json
// reads them, in the tokenizer's "path=value" form.
func jsonLeaves(b []byte, norm func(string) string) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type frame struct {
		object bool
		base   string
	}
	var stack []frame
	path := "body"
	expectKey := false
	var out []string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				stack = append(stack, frame{v == '{', path})
				if v == '[' {
					path += "[]"
				}
				expectKey = v == '{'
			default:
				path = stack[len(stack)-1].base
				stack = stack[:len(stack)-1]
				expectKey = len(stack) > 0 && stack[len(stack)-1].object && dec.More()
			}
			continue
		case string:
			if expectKey {
				path = stack[len(stack)-1].base + "." + v
				expectKey = false
				continue
			}
			out = append(out, path+"="+norm(v))
		case json.Number:
			out = append(out, path+"="+string(v))
		case bool:
			out = append(out, fmt.Sprintf("%s=%v", path, v))
		case nil:
			out = append(out, path+"=null")
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			expectKey = true
		}
	}
}

func FuzzJSONTokenizer(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":[true,null,"x\u00e9"],"c":{"d":"\ud83d\ude00"}}`, `[[[]]]`, `"top"`, `{"a":{"b":{"c":[1,{"d":2}]}}}`,
		`{"a":"\"\\\/\b\f\n\r\t"}`, `{"x":-1.5e+10}`, `{"a" "b"}`, `{"a":`, `]`, `"\ud800x"`,
	} {
		f.Add(s, uint8(3))
	}
	f.Fuzz(func(t *testing.T, doc string, split uint8) {
		in := New(Config{})
		whole, capped := walk(in, jsonReq(doc))
		// The same values whatever the chunking.
		st := newState(in)
		st.reset(nil)
		var chunked []string
		st.visit = func(_ Location, path, v []byte) { chunked = append(chunked, string(path)+"="+string(v)) }
		st.setPath(LocBody, "")
		st.json.reset()
		k := min(int(split), len(doc))
		st.json.write(st, []byte(doc[:k]))
		st.json.write(st, []byte(doc[k:]))
		st.json.finish(st)
		if fmt.Sprint(chunked) != fmt.Sprint(whole) {
			t.Fatalf("split at %d: %q, whole: %q", k, chunked, whole)
		}
		// On a valid document within the caps, the values encoding/json
		// reads, in order, with their key paths.
		if capped != 0 || !json.Valid([]byte(doc)) || !utf8.ValidString(doc) || len(doc) > 2000 {
			return
		}
		// Values are inspected decoded (a percent-encoded or entity-encoded
		// string value is seen as its decoding): encoding/json's, the same.
		ns := newState(in)
		ns.reset(nil)
		norm := func(v string) string {
			if v == "" {
				return v
			}
			d, _ := ns.normalize([]byte(v), decodeNone)
			return string(d)
		}
		want, err := jsonLeaves([]byte(doc), norm)
		if err != nil {
			return
		}
		if fmt.Sprint(whole) != fmt.Sprint(want) {
			t.Fatalf("tokenizer %q\nencoding/json %q", whole, want)
		}
	})
}

func FuzzRequest(f *testing.F) {
	f.Add("q=%27+or+1%3D1--&x[$ne]=1", "/a/../b", "application/json", `{"a":["${jndi:ldap://x}"]}`, "() { :; };")
	f.Add("", "/", "application/xml", `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///">]><x a='1'>&e;</x>`, "")
	f.Add("a=b&&&=&c", "//%2e%2e/", "application/x-www-form-urlencoded", "u=http%3A%2F%2F0x7f.1%2F", "Mozilla")
	in := New(Config{MaxValues: 64, MaxValueBytes: 256, MaxTotalBytes: 4096})
	f.Fuzz(func(t *testing.T, query, path, ct, body, ua string) {
		r := &RequestView{Method: "POST", Path: path, Query: query, ContentType: ct, Body: []byte(body), UserAgent: ua, Cookie: query}
		f := in.Request(r, nil)
		if f.Values > 64 {
			t.Fatalf("%d values past the cap", f.Values)
		}
		if len(f.KeyPath()) > maxKeyPath || len(f.Excerpt()) > maxExcerpt {
			t.Fatalf("key path %q or excerpt %q too long", f.KeyPath(), f.Excerpt())
		}
		if f.Kind != KindNone && f.KeyPath() == "" {
			t.Fatalf("finding %v without a key path", f.Kind)
		}
	})
}

func FuzzJNDI(f *testing.F) {
	for _, s := range []string{"${jndi:x}", "${${lower:j}ndi:x}", "${${::-j}${::-n}di:}", "${", "}${", "${a:-${b:-}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := detectJNDI(make([]byte, 0, 4096), []byte(s))
		if len(s) <= 4096 && strings.Contains(strings.ToLower(s), "${jndi:") && !got {
			t.Fatalf("%q holds ${jndi: but was not found", s)
		}
	})
}

func FuzzParseIPv4Loose(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "1.2.3.4.5", "256.1.1.1", "08.1.1.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ip, ok := parseIPv4Loose([]byte(s))
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			if !ok || netip.AddrFrom4(ip) != a {
				t.Fatalf("%q: %v %v, netip says %v", s, ip, ok, a)
			}
		}
	})
}
