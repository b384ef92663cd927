package detect

import (
	"strings"
	"testing"
)

// asciiUpper upper-cases ASCII letters only, leaving other bytes alone.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// FuzzCatalogMatch routes arbitrary Host headers and paths, both untrusted,
// through the catalog: an API always comes back, and the ways of spelling
// one path that back ends read alike (letter case of host and path, runs
// of slashes, a query, ";parameters") do not change the API, so that no
// spelling escapes an API's settings.
func FuzzCatalogMatch(f *testing.F) {
	for _, tc := range catalogTests {
		f.Add(tc.host, tc.path)
	}
	f.Add("shop.example.com", "/shop;jsessionid=1/orders;x=2/7")
	f.Add("a.tenants.example.com.:8443", "/API//V1;a/x?q=1#f")
	c := testCatalog()
	f.Fuzz(func(t *testing.T, host, path string) {
		a := c.Match(host, path)
		if a == nil {
			t.Fatalf("Match(%q, %q) = nil", host, path)
		}
		same := func(how, h, p string) {
			if b := c.Match(h, p); b != a {
				t.Fatalf("Match(%q, %q) = %s, but %s Match(%q, %q) = %s", host, path, a.Name, how, h, p, b.Name)
			}
		}
		same("in upper case", asciiUpper(host), asciiUpper(path))
		// Spellings of a path from the root (origin form, what Envoy
		// passes on); ";/shop" is no path, and StripParams makes one of it.
		if strings.HasPrefix(path, "/") && !strings.ContainsAny(path, "?#") {
			same("with a query", host, path+"?a=1/b")
			same("with doubled slashes", host, strings.ReplaceAll(path, "/", "//"))
			same("without ;parameters", host, StripParams(path))
		}
	})
}

// FuzzStripParams: what StripParams returns has no ";parameters", the same
// segments (as many slashes), and stays as it is when stripped again.
func FuzzStripParams(f *testing.F) {
	for _, tc := range catalogTests {
		f.Add(tc.path)
	}
	for _, p := range []string{"/a;b/c", "/;/;;/", "/users;jsessionid=ABC/7;v=1", ";x", "/plain/path/1"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, path string) {
		got := StripParams(path)
		switch {
		case strings.Contains(got, ";"):
			t.Fatalf("StripParams(%q) = %q keeps a ';'", path, got)
		case strings.Count(got, "/") != strings.Count(path, "/"):
			t.Fatalf("StripParams(%q) = %q changes the segments", path, got)
		case StripParams(got) != got:
			t.Fatalf("StripParams(%q) = %q, stripped again %q", path, got, StripParams(got))
		case !strings.Contains(path, ";") && got != path:
			t.Fatalf("StripParams(%q) = %q without a ';' to strip", path, got)
		}
	})
}
