package inspect_test

import (
	"strings"
	"testing"

	"github.com/vigil-project/vigil/detect/inspect"
)

// Each decoder sees through the obfuscations it claims to handle; the
// finding says which decodings applied.
func TestDecodersSeeThroughObfuscations(t *testing.T) {
	in := inspect.New(inspect.Config{})
	cases := []struct {
		name, query string
		kind        inspect.Kind
		dec         inspect.Decodings
	}{
		{"percent", "f=..%2F..%2Fetc%2Fpasswd", inspect.PathTraversal, inspect.DecodedURL},
		{"double percent", "f=..%252F..%252Fetc%252Fpasswd", inspect.PathTraversal, inspect.DecodedURL | inspect.DecodedURL2},
		{"percent u", "n=%u003Cscript%u003Ealert(1)%u003C/script%u003E", inspect.XSS, inspect.DecodedURL},
		{"backslash u", `n=\u003cscript\u003ealert(1)\u003c/script\u003e`, inspect.XSS, inspect.DecodedUnicode},
		{"backslash x", `n=\x3cscript\x3ealert(1)\x3c/script\x3e`, inspect.XSS, inspect.DecodedUnicode},
		{"html entities", "n=%26lt%3Bscript%26gt%3Balert(1)%26lt%3B%2Fscript%26gt%3B", inspect.XSS, inspect.DecodedHTML},
		{"html numeric no semicolon", "n=%26%2360script%26%2362alert(1)%26%2360/script%26%2362", inspect.XSS, inspect.DecodedHTML},
		{"html hex padded", "n=%26%23x0003C;script%26%23x3E;alert(1)%26%23x3C;/script%26%23x3E;", inspect.XSS, inspect.DecodedHTML},
		{"base64", "d=JyBVTklPTiBTRUxFQ1QgcGFzc3dvcmQgRlJPTSB1c2Vycy0t", inspect.SQLInjection, inspect.DecodedBase64},
		{"overlong utf-8 dot", "f=%C0%AE%C0%AE/%C0%AE%C0%AE/etc", inspect.PathTraversal, 0},
		{"0x2e text", "f=0x2e0x2e/0x2e0x2e/x", inspect.PathTraversal, 0},
		{"tomcat dot-dot-semicolon", "f=..;/..;/manager/html", inspect.PathTraversal, 0},
		{"backslashes", `f=..\..\windows\win.ini`, inspect.PathTraversal, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := in.Request(&inspect.RequestView{Method: "GET", Path: "/x", Query: c.query}, nil)
			if f.Kind != c.kind {
				t.Fatalf("%v (%s), want %v", f.Kind, f.Detector, c.kind)
			}
			if f.Decodings&c.dec != c.dec {
				t.Errorf("decodings %b, want %b among them", f.Decodings, c.dec)
			}
		})
	}
	// Clearly-base64 means it: words and IDs are not decoded.
	for _, q := range []string{"id=SKU1234567890ABCD", "t=abcdefghijklmnopqrstuvwx"} {
		if f := in.Request(&inspect.RequestView{Method: "GET", Path: "/x", Query: q}, nil); f.Kind != inspect.KindNone {
			t.Errorf("%s: %v", q, f.Kind)
		}
	}
}

// Every cap is counted when hit, in the finding and in Stats.
func TestEveryCapIsCounted(t *testing.T) {
	in := inspect.New(inspect.Config{MaxValues: 4, MaxValueBytes: 16, MaxTotalBytes: 40, MaxBodyBytes: 64})
	cases := []struct {
		name string
		r    inspect.RequestView
		want inspect.Caps
	}{
		{"values", inspect.RequestView{Query: "a=1&b=2&c=3&d=4&e=5"}, inspect.CapValues},
		{"value bytes", inspect.RequestView{Query: "a=" + strings.Repeat("x", 20)}, inspect.CapValueBytes},
		{"total bytes", inspect.RequestView{Query: "a=" + strings.Repeat("x", 15) + "&b=" + strings.Repeat("y", 15) + "&c=" + strings.Repeat("z", 15)}, inspect.CapTotalBytes},
		{"body bytes", inspect.RequestView{Method: "POST", ContentType: "text/plain", Body: []byte(strings.Repeat("b", 100))}, inspect.CapBodyBytes},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if f := in.Request(&c.r, nil); f.Capped&c.want == 0 {
				t.Errorf("capped %b, want %b", f.Capped, c.want)
			}
		})
	}
	s := in.Stats()
	if s.CappedValues != 1 || s.CappedValueBytes == 0 || s.CappedTotalBytes != 1 || s.CappedBodyBytes != 1 || s.Requests != 4 {
		t.Errorf("stats %+v", s)
	}
}
