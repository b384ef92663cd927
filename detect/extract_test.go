package detect

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// clientIPTests feed TestClientIP, BenchmarkClientIP and FuzzClientIP's seeds.
var clientIPTests = []struct {
	name   string
	hops   int
	xff    string
	ext    string // x-envoy-external-address
	source string
	want   string
}{
	{"source only", 0, "", "", "192.0.2.9:41000", "192.0.2.9"},
	{"source v6 with port", 0, "", "", "[2001:db8::9]:443", "2001:db8::9"},
	{"source mapped v6 with port", 0, "", "", "[::ffff:192.0.2.9]:80", "192.0.2.9"},
	{"source without port", 0, "", "", "192.0.2.9", "192.0.2.9"},
	{"source invalid", 0, "", "", "not-an-ip", ""},
	{"source empty", 0, "", "", "", ""},
	{"hops 0 ignores xff", 0, "203.0.113.7", "", "192.0.2.9:1", "192.0.2.9"},
	{"hops 0 uses external address", 0, "203.0.113.7", "198.51.100.4", "192.0.2.9:1", "198.51.100.4"},
	{"external address invalid", 0, "", "bogus", "192.0.2.9:1", "192.0.2.9"},
	{"external address mapped", 0, "", "::ffff:198.51.100.4", "192.0.2.9:1", "198.51.100.4"},
	{"hops 1 single", 1, "203.0.113.7", "198.51.100.4", "192.0.2.9:1", "203.0.113.7"},
	{"hops 1 rightmost", 1, "198.51.100.1, 203.0.113.7", "", "192.0.2.9:1", "203.0.113.7"},
	{"hops 2", 2, "198.51.100.1, 203.0.113.7", "", "192.0.2.9:1", "198.51.100.1"},
	{"hops 2 ignores spoofed left", 2, "6.6.6.6, 198.51.100.1,203.0.113.7", "", "192.0.2.9:1", "198.51.100.1"},
	{"hops 3 too few entries", 3, "198.51.100.1, 203.0.113.7", "198.51.100.4", "192.0.2.9:1", "198.51.100.4"},
	{"hops 3 too few entries no external", 3, "198.51.100.1, 203.0.113.7", "", "192.0.2.9:1", "192.0.2.9"},
	{"hops 1 no xff", 1, "", "", "192.0.2.9:1", "192.0.2.9"},
	{"hops 1 invalid entry", 1, "203.0.113.7, garbage", "198.51.100.4", "192.0.2.9:1", "198.51.100.4"},
	{"hops 2 invalid entry", 2, "garbage, 203.0.113.7", "", "192.0.2.9:1", "192.0.2.9"},
	{"hops 1 empty entry", 1, "203.0.113.7,", "", "192.0.2.9:1", "192.0.2.9"},
	{"hops 2 empty entry between", 2, "203.0.113.7,,198.51.100.1", "", "192.0.2.9:1", "192.0.2.9"},
	{"xff v6", 1, "2001:DB8::0:1", "", "", "2001:db8::1"},
	{"xff bracketed v6", 1, "[2001:db8::1]", "", "", "2001:db8::1"},
	{"xff bracketed v6 with port", 1, "[2001:db8::1]:8443", "", "", "2001:db8::1"},
	{"xff bracketed v4", 1, "[192.0.2.1]", "", "", "192.0.2.1"},
	{"xff bracketed v4 with port", 1, "[192.0.2.1]:80", "", "", ""},
	{"xff bracketed address and port", 1, "[192.0.2.1:80]", "", "", ""},
	{"xff brackets only", 1, "[]", "", "", ""},
	{"xff mapped v6 with port", 1, "[::ffff:192.0.2.1]:80", "", "", "192.0.2.1"},
	{"xff v4 with port", 1, "192.0.2.1:5555", "", "", "192.0.2.1"},
	{"xff mapped v4", 1, "::ffff:192.0.2.1", "", "", "192.0.2.1"},
	{"xff zone dropped", 1, "fe80::1%eth0", "", "", "fe80::1"},
	{"xff spaces", 1, "  192.0.2.1\t", "", "", "192.0.2.1"},
	{"xff entry too long", 1, strings.Repeat("1", 80), "", "192.0.2.9:1", "192.0.2.9"},
	{"xff CIDR is not an address", 1, "192.0.2.0/24", "", "192.0.2.9:1", "192.0.2.9"},
	{"xff obfuscated v4 rejected", 1, "0177.0.0.1", "", "192.0.2.9:1", "192.0.2.9"},
}

func TestClientIP(t *testing.T) {
	for _, tc := range clientIPTests {
		t.Run(tc.name, func(t *testing.T) {
			x := newTestExtractor(t, tc.hops)
			h := headers{"x-forwarded-for": tc.xff, "x-envoy-external-address": tc.ext}
			if got := x.ClientIP(h, tc.source); got != tc.want {
				t.Errorf("ClientIP(xff=%q, ext=%q, source=%q, hops=%d) = %q, want %q", tc.xff, tc.ext, tc.source, tc.hops, got, tc.want)
			}
			if got := refClientIP(tc.hops, tc.xff, tc.ext, tc.source); got != tc.want {
				t.Errorf("reference disagrees with the table: %q, want %q", got, tc.want)
			}
		})
	}
}

// TestClientIPDoesNotAllocate: the usual shapes of addresses cost no
// allocation.
func TestClientIPDoesNotAllocate(t *testing.T) {
	x := newTestExtractor(t, 2)
	h := headers{"x-forwarded-for": "6.6.6.6, 198.51.100.1, 203.0.113.7"}
	if n := testing.AllocsPerRun(100, func() { x.ClientIP(h, "192.0.2.9:1") }); n != 0 {
		t.Errorf("ClientIP from X-Forwarded-For allocates %v times", n)
	}
	var noHeaders HeaderReader = headers{}
	for _, source := range []string{"192.0.2.9:41000", "[2001:db8::9]:443", "2001:db8::9", "[2001:db8::9]", "::ffff:192.0.2.9"} {
		if n := testing.AllocsPerRun(100, func() { x.ClientIP(noHeaders, source) }); n != 0 {
			t.Errorf("ClientIP(source %q) allocates %v times", source, n)
		}
	}
}

// refClientIP is a straightforward reading of the rule, independent of the
// extractor's allocation-free scan.
func refClientIP(hops int, xff, ext, source string) string {
	parse := func(s string) string {
		s = strings.TrimSpace(s)
		if len(s) > 64 {
			return ""
		}
		if len(s) >= 2 && strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
				return a.WithZone("").Unmap().String()
			}
			return ""
		}
		if a, err := netip.ParseAddr(s); err == nil {
			return a.WithZone("").Unmap().String()
		}
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return ap.Addr().WithZone("").Unmap().String()
		}
		return ""
	}
	if hops > 0 {
		parts := strings.Split(xff, ",")
		if xff != "" && len(parts) >= hops {
			if ip := parse(parts[len(parts)-hops]); ip != "" {
				return ip
			}
		}
	}
	if ip := parse(ext); ip != "" {
		return ip
	}
	return parse(source)
}

func FuzzClientIP(f *testing.F) {
	for _, tc := range clientIPTests {
		f.Add(uint8(tc.hops), tc.xff, tc.ext, tc.source)
	}
	xs := make([]*Extractor, 5)
	for i := range xs {
		xs[i] = newTestExtractor(f, i)
	}
	f.Fuzz(func(t *testing.T, hops uint8, xff, ext, source string) {
		n := int(hops) % len(xs)
		got := xs[n].ClientIP(headers{"x-forwarded-for": xff, "x-envoy-external-address": ext}, source)
		if got != "" {
			a, err := netip.ParseAddr(got)
			if err != nil {
				t.Fatalf("ClientIP returned %q, not an address", got)
			}
			if a.Zone() != "" || a.Is4In6() || a.String() != got {
				t.Fatalf("ClientIP returned %q, not canonical (%q)", got, a.Unmap().WithZone("").String())
			}
		}
		if want := refClientIP(n, xff, ext, source); got != want {
			t.Fatalf("ClientIP(hops=%d, xff=%q, ext=%q, source=%q) = %q, reference %q", n, xff, ext, source, got, want)
		}
	})
}

func BenchmarkClientIP(b *testing.B) {
	for _, tc := range clientIPTests {
		b.Run(benchName(tc.name), func(b *testing.B) {
			x := newTestExtractor(b, tc.hops)
			h := headers{"x-forwarded-for": tc.xff, "x-envoy-external-address": tc.ext}
			b.ReportAllocs()
			for b.Loop() {
				x.ClientIP(h, tc.source)
			}
		})
	}
}

// jwt builds an unsigned-looking JWT with the given JSON payload.
func jwt(payload string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(payload)) + ".c2lnbmF0dXJl"
}

func basic(userpass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(userpass))
}

// extractTests feed TestExtract, BenchmarkExtract and FuzzExtract's seeds.
// want* hold raw credentials; the test compares their fingerprints.
var extractTests = []struct {
	name    string
	src     IdentitySources
	h       headers
	query   string
	token   string
	apiKey  string
	cookie  string
	user    string
	skipRaw bool // a raw value legitimately reappears (e.g. as the user name)
}{
	{name: "nothing", h: headers{}},
	{name: "bearer", h: headers{"authorization": "Bearer tok-opaque-0001"}, token: "tok-opaque-0001"},
	{name: "bearer scheme case", h: headers{"authorization": "bEaReR   tok-opaque-0002  "}, token: "tok-opaque-0002"},
	{name: "bare bearer", h: headers{"authorization": "Bearer"}},
	{name: "bearer blank", h: headers{"authorization": "Bearer   "}},
	{name: "raw token without scheme", h: headers{"authorization": "tok-raw-0003"}, token: "tok-raw-0003"},
	{name: "other scheme kept whole", h: headers{"authorization": "Token tok-0004"}, token: "Token tok-0004"},
	{name: "jwt sub", h: headers{"authorization": "Bearer " + jwt(`{"sub":"alice","iat":1}`)}, token: jwt(`{"sub":"alice","iat":1}`), user: "alice"},
	{name: "jwt custom claim", src: IdentitySources{UsernameClaim: "email"}, h: headers{"authorization": "Bearer " + jwt(`{"sub":"42","email":"bob@example.com"}`)}, token: jwt(`{"sub":"42","email":"bob@example.com"}`), user: "bob@example.com"},
	{name: "jwt numeric claim", h: headers{"authorization": "Bearer " + jwt(`{"sub":42}`)}, token: jwt(`{"sub":42}`)},
	{name: "jwt missing claim", h: headers{"authorization": "Bearer " + jwt(`{"iss":"x"}`)}, token: jwt(`{"iss":"x"}`)},
	{name: "jwt not json", h: headers{"authorization": "Bearer aaa.bm90IGpzb24.ccc"}, token: "aaa.bm90IGpzb24.ccc"},
	{name: "jwt bad base64", h: headers{"authorization": "Bearer aaa.!!!.ccc"}, token: "aaa.!!!.ccc"},
	{name: "jwt escaped claim", h: headers{"authorization": "Bearer " + jwt(`{"sub":"caf\u00e9 \"x\""}`)}, token: jwt(`{"sub":"caf\u00e9 \"x\""}`), user: `café "x"`},
	{name: "basic", h: headers{"authorization": basic("carol:hunter2-password")}, token: basic("carol:hunter2-password"), user: "carol"},
	{name: "basic scheme case", h: headers{"authorization": "BASIC " + basic("dave:pw-000000000")[6:]}, token: "BASIC " + basic("dave:pw-000000000")[6:], user: "dave"},
	{name: "basic without colon", h: headers{"authorization": basic("nocolon-credential")}, token: basic("nocolon-credential")},
	{name: "basic not base64", h: headers{"authorization": "Basic ***"}, token: "Basic ***"},
	{name: "bare basic", h: headers{"authorization": "Basic"}},
	{name: "username header wins", src: IdentitySources{UsernameHeader: "X-User"}, h: headers{"authorization": basic("carol:pw-1234567890"), "x-user": " erin "}, token: basic("carol:pw-1234567890"), user: "erin"},
	{name: "username header empty falls back to jwt", src: IdentitySources{UsernameHeader: "x-user"}, h: headers{"authorization": "Bearer " + jwt(`{"sub":"frank"}`), "x-user": "  "}, token: jwt(`{"sub":"frank"}`), user: "frank"},
	{name: "username truncated", src: IdentitySources{UsernameHeader: "x-user"}, h: headers{"x-user": strings.Repeat("u", 300)}, user: strings.Repeat("u", 256)},
	{name: "username truncated at a character", src: IdentitySources{UsernameHeader: "x-user"}, h: headers{"x-user": strings.Repeat("u", 255) + "é"}, user: strings.Repeat("u", 255)},
	{name: "e-mail user name lower-cased as in login bodies", src: IdentitySources{UsernameHeader: "x-user"}, h: headers{"x-user": "Ivan.Petrov@Example.COM"}, user: "ivan.petrov@example.com"},
	{name: "user name without @ keeps its case", src: IdentitySources{UsernameHeader: "x-user"}, h: headers{"x-user": "JudyK"}, user: "JudyK"},
	{name: "jwt e-mail claim lower-cased", src: IdentitySources{UsernameClaim: "email"}, h: headers{"authorization": "Bearer " + jwt(`{"email":"Bob@Example.com"}`)}, token: jwt(`{"email":"Bob@Example.com"}`), user: "bob@example.com"},
	{name: "custom token header", src: IdentitySources{TokenHeader: "X-Auth-Token"}, h: headers{"x-auth-token": "tok-custom-0005", "authorization": "Bearer other-000000"}, token: "tok-custom-0005"},
	{name: "api key header", h: headers{"x-api-key": "key-header-0006"}, apiKey: "key-header-0006"},
	{name: "api key custom header", src: IdentitySources{APIKeyHeader: "Api-Key"}, h: headers{"api-key": "key-custom-0007", "x-api-key": "ignored-0000"}, apiKey: "key-custom-0007"},
	{name: "api key query", src: IdentitySources{APIKeyQuery: "api_key"}, h: headers{}, query: "a=1&xapi_key=no&api_key=key-query-0008&api_key=second", apiKey: "key-query-0008"},
	{name: "api key query decoded", src: IdentitySources{APIKeyQuery: "key"}, h: headers{}, query: "key=k%2By+z%3D%3D-0009", apiKey: "k+y z==-0009"},
	{name: "api key query bad escape kept raw", src: IdentitySources{APIKeyQuery: "key"}, h: headers{}, query: "key=k%zz-0010", apiKey: "k%zz-0010"},
	{name: "api key query off by default", h: headers{}, query: "api_key=key-0011"},
	{name: "api key header beats query", src: IdentitySources{APIKeyQuery: "api_key"}, h: headers{"x-api-key": "key-header-0012"}, query: "api_key=key-query-0012", apiKey: "key-header-0012"},
	{name: "default cookie", h: headers{"cookie": "theme=dark; session=cookie-val-0013; other=1"}, cookie: "cookie-val-0013"},
	{name: "default cookie order of names", h: headers{"cookie": "sid=cookie-sid-0014; JSESSIONID=cookie-jsess-0014"}, cookie: "cookie-jsess-0014"},
	{name: "default cookie empty skipped", h: headers{"cookie": "session=; sid=cookie-sid-0015"}, cookie: "cookie-sid-0015"},
	{name: "default cookie quoted", h: headers{"cookie": `PHPSESSID="cookie-quoted-0016"`}, cookie: "cookie-quoted-0016"},
	{name: "configured cookie", src: IdentitySources{Cookie: "app_sess"}, h: headers{"cookie": "session=not-this-0017;app_sess=cookie-app-0017"}, cookie: "cookie-app-0017"},
	{name: "configured cookie absent", src: IdentitySources{Cookie: "app_sess"}, h: headers{"cookie": "session=not-this-0018"}},
	{name: "cookie names are case-sensitive", h: headers{"cookie": "SESSION=upper-0019"}},
	{name: "cookie prefix is not a match", h: headers{"cookie": "xsession=no-0020; sessions=no-0020"}},
	{
		name:  "everything",
		src:   IdentitySources{APIKeyQuery: "api_key", UsernameHeader: "x-user"},
		h:     headers{"authorization": "Bearer tok-all-0021", "cookie": "sid=cookie-all-0021", "x-user": "grace"},
		query: "api_key=key-all-0021", token: "tok-all-0021", apiKey: "key-all-0021", cookie: "cookie-all-0021", user: "grace",
	},
	{
		name: "username header equal to a secret", src: IdentitySources{UsernameHeader: "x-user"},
		h: headers{"x-api-key": "same-as-user-0022", "x-user": "same-as-user-0022"}, apiKey: "same-as-user-0022", user: "same-as-user-0022", skipRaw: true,
	},
}

func TestExtract(t *testing.T) {
	x := newTestExtractor(t, 1)
	fp := x.Fingerprinter()
	fpOf := func(raw string) string {
		if raw == "" {
			return ""
		}
		return fp.Fingerprint(raw)
	}
	for _, tc := range extractTests {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src.WithDefaults()
			var ids Identities
			ids[KindIP] = "192.0.2.1"
			x.Extract(&src, tc.h, tc.query, &ids)
			want := Identities{KindIP: "192.0.2.1", KindToken: fpOf(tc.token), KindAPIKey: fpOf(tc.apiKey), KindCookie: fpOf(tc.cookie), KindUsername: tc.user}
			for _, k := range Kinds() {
				if ids.Get(k) != want.Get(k) {
					t.Errorf("%v = %q, want %q", k, ids.Get(k), want.Get(k))
				}
			}
			// Reusing the Identities of another request leaves nothing behind.
			stale := Identities{"192.0.2.1", "fp:stale", "fp:stale", "fp:stale", "stale-user"}
			x.Extract(&src, tc.h, tc.query, &stale)
			if stale != want {
				t.Errorf("on reused Identities: %q, want %q", stale, want)
			}
			if !tc.skipRaw {
				assertNoRawSecrets(t, &ids, tc.token, tc.apiKey, tc.cookie)
			}
		})
	}
}

// assertNoRawSecrets fails when a raw credential shows anywhere in ids, in
// any rendering.
func assertNoRawSecrets(t *testing.T, ids *Identities, raws ...string) {
	t.Helper()
	all := fmt.Sprintf("%v %+v %q %#v", *ids, *ids, *ids, *ids)
	for _, raw := range raws {
		if raw == "" {
			continue
		}
		if strings.Contains(all, raw) {
			t.Errorf("raw credential %q appears in identities %s", raw, all)
		}
		if b64 := base64.StdEncoding.EncodeToString([]byte(raw)); strings.Contains(all, b64) {
			t.Errorf("base64 of raw credential %q appears in identities", raw)
		}
	}
	for _, k := range []Kind{KindToken, KindAPIKey, KindCookie} {
		if v := ids.Get(k); v != "" && !IsFingerprint(v) {
			t.Errorf("%v = %q, not a fingerprint", k, v)
		}
	}
}

func TestExtractSameSecretSameFingerprintAcrossKinds(t *testing.T) {
	x := newTestExtractor(t, 0)
	src := IdentitySources{APIKeyQuery: "k"}.WithDefaults()
	const secret = "reused-credential-123"
	for _, tc := range []struct {
		h     headers
		query string
	}{
		{headers{"authorization": "Bearer " + secret}, ""},
		{headers{"x-api-key": secret}, ""},
		{headers{}, "k=" + secret},
		{headers{"cookie": "session=" + secret}, ""},
	} {
		var ids Identities
		x.Extract(&src, tc.h, tc.query, &ids)
		got := ids[KindToken] + ids[KindAPIKey] + ids[KindCookie]
		if got != x.Fingerprinter().Fingerprint(secret) {
			t.Errorf("%v %q: fingerprint %q, want %q", tc.h, tc.query, got, x.Fingerprinter().Fingerprint(secret))
		}
	}
	// Two deployments (two keys) never share fingerprints.
	other := append([]byte(nil), testKey...)
	other[31] ^= 0x80
	y, err := NewExtractor(newTestFingerprinter(t, other), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	var a, b Identities
	h := headers{"authorization": "Bearer " + secret, "x-api-key": secret, "cookie": "sid=" + secret}
	x.Extract(&src, h, "", &a)
	y.Extract(&src, h, "", &b)
	for _, k := range []Kind{KindToken, KindAPIKey, KindCookie} {
		if a[k] == "" || a[k] == b[k] {
			t.Errorf("%v: key A %q, key B %q; want two different fingerprints", k, a[k], b[k])
		}
	}
}

func TestExtractJWTClaimCache(t *testing.T) {
	x := newTestExtractor(t, 0)
	tok := jwt(`{"sub":"heidi","email":"heidi@example.com"}`)
	h := headers{"authorization": "Bearer " + tok}
	sub := IdentitySources{}.WithDefaults()
	email := IdentitySources{UsernameClaim: "email"}.WithDefaults()
	for round := 0; round < 3; round++ { // cold, then cached
		var a, b Identities
		x.Extract(&sub, h, "", &a)
		x.Extract(&email, h, "", &b)
		if a[KindUsername] != "heidi" || b[KindUsername] != "heidi@example.com" {
			t.Fatalf("round %d: sub %q, email %q", round, a[KindUsername], b[KindUsername])
		}
		x.claims.Wait()
	}
}

func TestExtractConcurrent(t *testing.T) {
	x := newTestExtractor(t, 0)
	src := IdentitySources{}.WithDefaults()
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 300; i++ {
				user := fmt.Sprintf("user-%d", i%37)
				var ids Identities
				x.Extract(&src, headers{"authorization": "Bearer " + jwt(`{"sub":"`+user+`"}`)}, "", &ids)
				if ids[KindUsername] != user {
					t.Errorf("username %q, want %q", ids[KindUsername], user)
					return
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}

func FuzzExtract(f *testing.F) {
	for _, tc := range extractTests {
		f.Add(tc.h["authorization"]+tc.h["x-auth-token"], tc.h["x-api-key"]+tc.h["api-key"], tc.h["cookie"], tc.h["x-user"], tc.query, tc.src.Cookie, tc.src.UsernameClaim)
	}
	for _, tc := range fingerprintTests {
		f.Add("Bearer "+tc.raw, tc.raw, "sid="+tc.raw, "", "api_key="+tc.raw, "", "")
	}
	x := newTestExtractor(f, 0)
	f.Fuzz(func(t *testing.T, auth, apiKey, cookie, user, query, cookieName, claim string) {
		src := IdentitySources{APIKeyQuery: "api_key", UsernameHeader: "x-user", Cookie: cookieName, UsernameClaim: claim}.WithDefaults()
		h := headers{"authorization": auth, "x-api-key": apiKey, "cookie": cookie, "x-user": user}
		var ids Identities
		ids[KindIP] = "192.0.2.1"
		x.Extract(&src, h, query, &ids)
		if ids[KindIP] != "192.0.2.1" {
			t.Fatalf("Extract changed the IP to %q", ids[KindIP])
		}
		for _, k := range []Kind{KindToken, KindAPIKey, KindCookie} {
			if v := ids[k]; v != "" && !IsFingerprint(v) {
				t.Fatalf("%v = %q, not a fingerprint", k, v)
			}
		}
		if len(ids[KindUsername]) > 256 {
			t.Fatalf("username of %d bytes", len(ids[KindUsername]))
		}
		var again Identities
		again[KindIP] = "192.0.2.1"
		x.Extract(&src, h, query, &again)
		if again != ids {
			t.Fatalf("not deterministic: %q then %q", ids, again)
		}

		// Every raw credential the request carried, as sent and decoded.
		var raws []string
		scheme, rest, _ := strings.Cut(auth, " ")
		raws = append(raws, auth, strings.TrimSpace(rest), scheme)
		raws = append(raws, apiKey)
		for _, kv := range strings.Split(query, "&") {
			_, v, _ := strings.Cut(kv, "=")
			raws = append(raws, v)
			if u, err := unescapeQuery(v); err == nil {
				raws = append(raws, u)
			}
		}
		for _, part := range strings.Split(cookie, ";") {
			_, v, _ := strings.Cut(strings.TrimSpace(part), "=")
			raws = append(raws, v, strings.Trim(v, `"`))
		}
		// Where a user name may legitimately come from.
		userSources := strings.Join([]string{user, basicUsername(strings.TrimSpace(rest)), decodeClaim(strings.TrimSpace(rest), src.UsernameClaim), decodeClaim(auth, src.UsernameClaim)}, "\x00")
		for _, raw := range raws {
			if len(raw) < 12 { // shorter ones may show in hex by chance
				continue
			}
			for _, k := range []Kind{KindToken, KindAPIKey, KindCookie} {
				if strings.Contains(ids[k], raw) {
					t.Fatalf("raw credential %q in %v = %q", raw, k, ids[k])
				}
			}
			if strings.Contains(ids[KindUsername], raw) && !strings.Contains(userSources, raw) {
				t.Fatalf("raw credential %q in username %q", raw, ids[KindUsername])
			}
		}
	})
}

func BenchmarkExtract(b *testing.B) {
	x := newTestExtractor(b, 1)
	for _, tc := range extractTests {
		b.Run(benchName(tc.name), func(b *testing.B) {
			src := tc.src.WithDefaults()
			var ids Identities
			x.Extract(&src, tc.h, tc.query, &ids) // warm the claim cache
			x.claims.Wait()
			b.ReportAllocs()
			for b.Loop() {
				x.Extract(&src, tc.h, tc.query, &ids)
			}
		})
	}
}
