package detect

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// templateTests feed TestTemplatePath, BenchmarkTemplatePath and
// FuzzTemplatePath's seeds.
var templateTests = []struct{ path, want string }{
	{"", "/"},
	{"/", "/"},
	{"//", "/"},
	{"/?q=1", "/"},
	{"/users", "/users"},
	{"/users/", "/users"},
	{"/users/42", "/users/{id}"},
	{"/users/42/orders/1700000000", "/users/{id}/orders/{id}"},
	{"/api/v1/users/42?expand=true#frag", "/api/v1/users/{id}"},
	{"/api//v1///users//42", "/api/v1/users/{id}"},
	{"/search?q=42", "/search"},
	{"/login", "/login"},
	{"/orders/550e8400-e29b-41d4-a716-446655440000", "/orders/{id}"},
	{"/orders/550E8400-E29B-41D4-A716-446655440000/items", "/orders/{id}/items"},
	{"/commits/da39a3ee5e6b4b0d3255bfef95601890afd80709", "/commits/{id}"},
	{"/objects/507f1f77bcf86cd799439011", "/objects/{id}"},
	{"/blobs/0x1f2e3d", "/blobs/{id}"},
	{"/charges/ch_3MmlLrLkdIwHu7ix0snN0B15", "/charges/{id}"},
	{"/events/01ARZ3NDEKTSV4RRFFQ69G5FAV", "/events/{id}"},
	{"/users/alice@example.com/profile", "/users/{id}/profile"},
	{"/reports/2024-01-31", "/reports/{id}"},
	{"/reports/20240131T120000Z", "/reports/{id}"},
	{"/invoices/INV-2024-000123", "/invoices/{id}"},
	{"/v2/accounts/12345-67", "/v2/accounts/{id}"},
	{"/oauth2/token", "/oauth2/token"},
	{"/v1beta1/namespaces", "/v1beta1/namespaces"},
	{"/.well-known/openid-configuration", "/.well-known/openid-configuration"},
	{"/static/app.min.js", "/static/app.min.js"},
	{"/cafe/decade/facade", "/cafe/decade/facade"}, // words made of hex letters
	{"/users/{id}", "/users/{id}"},
	{"/a/" + strings.Repeat("b", 100), "/a/" + strings.Repeat("b", 64)},
	{"/" + strings.Repeat("1", 64) + strings.Repeat(".", 300), "/{id}"},                       // only the cut looks like an ID
	{"/a" + strings.Repeat("é", 40), "/a" + strings.Repeat("é", 31)},                          // cut on a character boundary
	{"/" + strings.Repeat("a/", 40), "/" + strings.Repeat("a/", 32) + "…"},                    // depth capped
	{"/" + strings.Repeat("x/", 32), "/" + strings.TrimSuffix(strings.Repeat("x/", 32), "/")}, // exactly 32 segments
}

func TestTemplatePath(t *testing.T) {
	for _, tc := range templateTests {
		t.Run(tc.path, func(t *testing.T) {
			if got := TemplatePath(tc.path); got != tc.want {
				t.Errorf("TemplatePath(%q) = %q, want %q", tc.path, got, tc.want)
			}
			checkTemplate(t, tc.path)
		})
	}
}

func TestIsIDSegment(t *testing.T) {
	for seg, want := range map[string]bool{
		"42": true, "0": true, "{id}": true, "1700000000": true,
		"550e8400-e29b-41d4-a716-446655440000": true,
		"deadbeefdeadbeef1":                    true,
		"deadbeefdeadbeef":                     false, // no digit: could be a word
		"ord_2xK9aBcDeFgHiJkLmNoP":             true,
		"a@b.co":                               true,
		"2024-01-31":                           true,
		"v1":                                   false, "users": false, "orders": false, "search": false, "login": false, "api": false,
		"oauth2": false, "me": false, "": false, "x509": false, "index.html": false,
	} {
		if got := IsIDSegment(seg); got != want {
			t.Errorf("IsIDSegment(%q) = %v, want %v", seg, got, want)
		}
	}
}

// checkTemplate asserts what must hold for any path's template.
func checkTemplate(t *testing.T, path string) {
	t.Helper()
	got := TemplatePath(path)
	if !strings.HasPrefix(got, "/") {
		t.Fatalf("TemplatePath(%q) = %q, does not start with /", path, got)
	}
	if got != "/" && (strings.Contains(got, "//") || strings.HasSuffix(got, "/")) {
		t.Fatalf("TemplatePath(%q) = %q has an empty segment", path, got)
	}
	if strings.ContainsAny(got, "?#") {
		t.Fatalf("TemplatePath(%q) = %q keeps a query or fragment", path, got)
	}
	segs := strings.Split(got[1:], "/")
	if len(segs) > maxTemplateSegments+1 {
		t.Fatalf("TemplatePath(%q) has %d segments", path, len(segs))
	}
	for i, seg := range segs {
		if seg != "" && strings.Trim(seg, "0123456789") == "" {
			t.Fatalf("TemplatePath(%q) = %q keeps the number %q", path, got, seg)
		}
		if len(seg) > maxSegmentBytes {
			t.Fatalf("TemplatePath(%q) = %q has a %d-byte segment", path, got, len(seg))
		}
		if seg == "…" && i != maxTemplateSegments {
			t.Fatalf("TemplatePath(%q) = %q: cut marker at segment %d", path, got, i)
		}
	}
	if utf8.ValidString(path) && !utf8.ValidString(got) {
		t.Fatalf("TemplatePath(%q) = %q is not valid UTF-8", path, got)
	}
	if again := TemplatePath(got); again != got {
		t.Fatalf("not idempotent: TemplatePath(%q) = %q, then %q", path, got, again)
	}
}

func FuzzTemplatePath(f *testing.F) {
	for _, tc := range templateTests {
		f.Add(tc.path)
	}
	f.Fuzz(checkTemplate)
}

func BenchmarkTemplatePath(b *testing.B) {
	for _, tc := range templateTests {
		if len(tc.path) > 80 {
			continue
		}
		b.Run(benchName(tc.path), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				TemplatePath(tc.path)
			}
		})
	}
}

func TestDiscoveredBase(t *testing.T) {
	for path, want := range map[string]string{
		"":                                   "/",
		"/":                                  "/",
		"/42":                                "/",
		"/users":                             "/users",
		"/users/42/orders":                   "/users",
		"/api/v2/orders/7":                   "/api/v2/orders",
		"/api/v2/orders/7?x=1":               "/api/v2/orders",
		"/API/orders":                        "/API/orders",
		"/v1/users/42":                       "/v1/users",
		"/api/42":                            "/api",
		"/api":                               "/api",
		"/api/v1/v2/x":                       "/api/v1/v2",
		"/rest/services/public/x/y":          "/rest/services/public",
		"/" + strings.Repeat("a", 65) + "/x": "/",
		"/v3.1/users/7":                      "/v3.1/users",
	} {
		if got := DiscoveredBase(path); got != want {
			t.Errorf("DiscoveredBase(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestDiscoveredName(t *testing.T) {
	for _, tc := range []struct{ host, base, want string }{
		{"Shop.Example.com:8443", "/api/v2/orders", "shop.example.com/api/v2/orders"},
		{"shop.example.com", "/", "shop.example.com"},
		{"shop.example.com.", "/", "shop.example.com"},
		{"", "/users", "unknown-host/users"},
		{"[2001:db8::1]:443", "/x", "2001:db8::1/x"},
		{strings.Repeat("h", 300), "/", strings.Repeat("h", 253)},
	} {
		if got := DiscoveredName(tc.host, tc.base); got != tc.want {
			t.Errorf("DiscoveredName(%q, %q) = %q, want %q", tc.host, tc.base, got, tc.want)
		}
	}
}
