package detect

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{ModeBlock, ModeDetect, ModeLearn} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseMode("Block"); err == nil {
		t.Error(`ParseMode("Block") succeeded`)
	}
	if s := Mode(9).String(); s != "mode(9)" {
		t.Errorf("Mode(9) = %q", s)
	}
}

func testCatalog() *Catalog {
	return NewCatalog([]*API{
		{Name: "any-root", BasePath: "/"},
		{Name: "shop", BasePath: "/shop", Hosts: []string{"*"}},
		{Name: "shop-orders", BasePath: "/shop/orders"},
		{Name: "tenant-api", BasePath: "/api", Hosts: []string{"*.tenants.example.com"}},
		{Name: "any-api", BasePath: "/api", Hosts: []string{"*"}}, // listed before the exact one
		{Name: "exact-api", BasePath: "/api", Hosts: []string{"api.example.com", "API2.example.com"}},
		{Name: "billing", BasePath: "/billing", Hosts: []string{"billing.example.com"}},
	}, &API{Name: "fallback", BasePath: "/"})
}

// catalogTests feed TestCatalogMatch and BenchmarkCatalogMatch.
var catalogTests = []struct{ host, path, want string }{
	{"x.test", "/shop", "shop"},
	{"x.test", "/shop/", "shop"},
	{"x.test", "/shop/cart", "shop"},
	{"x.test", "/shopping", "any-root"}, // segment boundary
	{"x.test", "/shop/orders/7", "shop-orders"},
	{"x.test", "/shop/orders?x=1", "shop-orders"},
	{"x.test", "/shop/ordersx", "shop"},
	{"x.test", "//shop//cart", "shop"}, // runs of slashes are one
	{"x.test", "/shop//orders/7", "shop-orders"},
	{"x.test", "///shop/orders", "shop-orders"},
	{"x.test", "//shopping", "any-root"},
	{"x.test", "/;/shop/cart", "shop"}, // a segment of ";parameters" only is empty
	{"x.test", "/;a;b//;c/shop;d/orders/7", "shop-orders"},
	{"x.test", "/;shop/cart", "any-root"},
	{"api.example.com", "/api/v1", "exact-api"},
	{"API.Example.COM:8443", "/api/v1", "exact-api"}, // case and port ignored
	{"api2.example.com", "/api", "exact-api"},
	{"acme.tenants.example.com", "/api/x", "tenant-api"},
	{"ACME.Tenants.Example.com:443", "/api/x", "tenant-api"},
	{"tenants.example.com", "/api/x", "any-api"}, // "*.d" needs a sub-domain
	{"evil-tenants.example.com", "/api/x", "any-api"},
	{"other.test", "/api", "any-api"},
	{"billing.example.com", "/billing/x", "billing"},
	{"billing.example.com.evil.test", "/billing/x", "any-root"},
	{"billing.example.com.", "/billing/x", "billing"}, // fully qualified
	{"Billing.Example.com.:443", "/billing/x", "billing"},
	{"[2001:db8::1]:443", "/billing", "any-root"},
	{"", "/", "any-root"},
}

func TestCatalogMatch(t *testing.T) {
	c := testCatalog()
	for _, tc := range catalogTests {
		if got := c.Match(tc.host, tc.path); got.Name != tc.want {
			t.Errorf("Match(%q, %q) = %q, want %q", tc.host, tc.path, got.Name, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { c.Match("ACME.tenants.example.com:443", "/api/x?y=1") }); n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
}

func TestCatalogOrderDoesNotDecide(t *testing.T) {
	apis := []*API{
		{Name: "any", BasePath: "/v1"},
		{Name: "wild", BasePath: "/v1", Hosts: []string{"*.example.com"}},
		{Name: "exact", BasePath: "/v1", Hosts: []string{"a.example.com"}},
	}
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}, {0, 2, 1}} {
		list := []*API{apis[order[0]], apis[order[1]], apis[order[2]]}
		c := NewCatalog(list, &API{Name: "fallback", BasePath: "/"})
		for host, want := range map[string]string{"a.example.com": "exact", "b.example.com": "wild", "c.test": "any"} {
			if got := c.Match(host, "/v1/x").Name; got != want {
				t.Errorf("order %v: Match(%q) = %q, want %q", order, host, got, want)
			}
		}
	}
}

func TestCatalogFallback(t *testing.T) {
	fb := &API{Name: "fallback", BasePath: "/", Mode: ModeLearn}
	c := NewCatalog([]*API{{Name: "only", BasePath: "/only", Hosts: []string{"a.test"}}}, fb)
	got := c.Match("b.test", "/only")
	if got != fb || !got.Discovered || c.Fallback() != fb {
		t.Fatalf("Match = %+v, want the fallback marked Discovered", got)
	}
	if c.Match("a.test", "/only").Discovered {
		t.Fatal("a configured API is marked Discovered")
	}
	if a, ok := c.Lookup("only"); !ok || a.Name != "only" {
		t.Fatal("Lookup(only) failed")
	}
	if _, ok := c.Lookup("fallback"); ok {
		t.Fatal("Lookup finds the fallback")
	}
	if len(c.APIs()) != 1 {
		t.Fatalf("APIs() = %d", len(c.APIs()))
	}
}

func TestHostOnly(t *testing.T) {
	for in, want := range map[string]string{
		"example.com": "example.com", "example.com:80": "example.com", "[::1]:80": "::1", "[::1]": "::1",
		"::1": "::1", "[::1": "[::1", "": "", "1.2.3.4:5": "1.2.3.4",
		"example.com.": "example.com", "example.com.:443": "example.com",
	} {
		if got := HostOnly(in); got != want {
			t.Errorf("HostOnly(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPathUnder compares pathUnder with collapsing slashes first, over every
// short path on a small alphabet.
func TestPathUnder(t *testing.T) {
	collapse := func(s string) string {
		for strings.Contains(s, "//") {
			s = strings.ReplaceAll(s, "//", "/")
		}
		return s
	}
	var paths []string
	var gen func(prefix string)
	gen = func(prefix string) {
		paths = append(paths, prefix)
		if len(prefix) < 7 {
			for _, c := range "/sa" {
				gen(prefix + string(c))
			}
		}
	}
	gen("")
	for _, base := range []string{"/s", "/s/a", "/sa", "/s/s"} {
		for _, p := range paths {
			c := collapse(p)
			want := strings.HasPrefix(c, base) && (len(c) == len(base) || c[len(base)] == '/')
			if got := pathUnder(p, base); got != want {
				t.Errorf("pathUnder(%q, %q) = %v, want %v", p, base, got, want)
			}
		}
	}
}

func BenchmarkCatalogMatch(b *testing.B) {
	c := testCatalog()
	for _, tc := range catalogTests {
		b.Run(benchName(fmt.Sprintf("%s%s", tc.host, tc.path)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.Match(tc.host, tc.path)
			}
		})
	}
}

func TestIsLoginPath(t *testing.T) {
	for _, tc := range []struct {
		paths []string
		path  string
		want  bool
	}{
		{DefaultLoginPaths, "/login", true},
		{DefaultLoginPaths, "/shopapi-bid/login", true},
		{DefaultLoginPaths, "/api/v1/oauth/token", true},
		{DefaultLoginPaths, "/shopapi-bid/relogin", false},
		{DefaultLoginPaths, "/shopapi-bid/login/help", false},
		{DefaultLoginPaths, "/shopapi-bid/order/7", false},
		{[]string{"signin"}, "/app/signin", true},
		{[]string{"signin"}, "/app/xsignin", false},
		{[]string{"/shopapi-bid/login"}, "/shopapi-bid/login", true},
		{[]string{""}, "/anything", false},
	} {
		if got := isLoginPath(tc.paths, tc.path); got != tc.want {
			t.Errorf("isLoginPath(%v, %q) = %v, want %v", tc.paths, tc.path, got, tc.want)
		}
	}
}
