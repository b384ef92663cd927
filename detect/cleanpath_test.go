package detect

import "testing"

var cleanPathCases = []struct{ in, want string }{
	// Already clean: returned as is.
	{"/", "/"},
	{"/shop/order/42", "/shop/order/42"},
	{"/shop/order/42/", "/shop/order/42/"},
	{"/shop/.env", "/shop/.env"},
	{"/shop/...", "/shop/..."},
	{"/shop/a.b/..c", "/shop/a.b/..c"},
	// Slashes, dot segments, escapes, backslashes.
	{"/shop//.env", "/shop/.env"},
	{"//shop///order//42", "/shop/order/42"},
	{"/shop/./.env", "/shop/.env"},
	{"/shop/x/../.env", "/shop/.env"},
	{"/shop/x/y/../../.env", "/shop/.env"},
	{"/../../shop/.env", "/shop/.env"},
	{"/shop/%2eenv", "/shop/.env"},
	{"/shop/%2E%65nv", "/shop/.env"},
	{"/shop%2F.env", "/shop/.env"},
	{"/shop/a%2f..%2F.env", "/shop/.env"},
	{"/shop/%2e%2e/admin", "/admin"},
	{"/shop\\.env", "/shop/.env"},
	{"/shop/x/..", "/shop/"},
	{"/shop/order/42/.", "/shop/order/42/"},
	// Escapes of other characters stay; a bad escape stays.
	{"/shop/a%20b", "/shop/a%20b"},
	{"/shop/a%3Fb", "/shop/a%3Fb"},
	{"/shop/%zz", "/shop/%zz"},
	{"/shop/100%", "/shop/100%"},
}

func TestCleanPath(t *testing.T) {
	for _, c := range cleanPathCases {
		if got := CleanPath(c.in); got != c.want {
			t.Errorf("CleanPath(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := CleanPath(c.want); got != c.want {
			t.Errorf("CleanPath(%q) = %q: a clean path must stay as it is", c.want, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { CleanPath("/shop/order/42") }); n != 0 {
		t.Errorf("a clean path costs %v allocations, want 0", n)
	}
}

func FuzzCleanPath(f *testing.F) {
	for _, c := range cleanPathCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c := CleanPath(p)
		if p != "" && p != "*" && (c == "" || c[0] != '/') {
			t.Fatalf("CleanPath(%q) = %q: not absolute", p, c)
		}
		if c2 := CleanPath(c); c2 != c && p != "" && p != "*" {
			t.Fatalf("CleanPath(CleanPath(%q)) = %q, want %q (idempotent)", p, c2, c)
		}
	})
}
