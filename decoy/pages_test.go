package decoy

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	apiName  = "shopapi-bid"
	basePath = "/shopapi-bid"
)

// minter mints recognisable tokens ("HT-a-3-api_key") and records the kinds
// asked for; its tag tells hits apart.
type minter struct {
	tag    string
	kinds  []string
	tokens []string
}

func (m *minter) mint(kind string) string {
	t := fmt.Sprintf("HT-%s-%d-%s", m.tag, len(m.tokens)+1, kind)
	m.kinds = append(m.kinds, kind)
	m.tokens = append(m.tokens, t)
	return t
}

// answerCase is one decoy path: the rule it must match, the answer's status
// and content type, the honeytoken kinds it must ask for, in order, and a
// header it must carry ("name: value prefix").
type answerCase struct {
	path   string
	rule   string
	status int
	ctype  string
	kinds  []string
	header string
}

var (
	dotenvKinds = []string{KindConnectionString, KindSecret, KindAWSKey, KindPassword, KindAPIKey, KindAPIKey}
	openAPIKind = []string{KindAPIKey, KindJWT}
	sqlKinds    = []string{KindPassword, KindToken, KindToken}
)

// answerCases feeds the answer tests, the benchmark and the fuzz seeds.
var answerCases = []answerCase{
	{"/shopapi-bid/.env", "dotenv", 200, "text/plain", dotenvKinds, "server: nginx"},
	{"/.env.production", "dotenv", 200, "text/plain", dotenvKinds, "etag: \""},
	{"/shopapi-bid/.ENV.local", "dotenv", 200, "text/plain", dotenvKinds, "last-modified: "},
	{"/app/config.env", "dotenv", 200, "text/plain", dotenvKinds, "server: nginx"},
	{"/shopapi-bid/.git/config", "git-config", 200, "text/plain", []string{KindGitHubToken}, "server: nginx"},
	{"/.git/HEAD", "git-head", 200, "text/plain", nil, "server: nginx"},
	{"/.git-credentials", "git-credentials", 200, "text/plain", []string{KindGitHubToken}, "server: nginx"},
	{"/shopapi-bid/actuator", "actuator", 200, "application/vnd.spring-boot.actuator.v3+json", nil, "x-frame-options: DENY"},
	{"/shopapi-bid/actuator/env", "actuator-env", 200, "application/vnd.spring-boot.actuator.v3+json",
		[]string{KindConnectionString, KindAPIKey}, "cache-control: no-cache"},
	{"/actuator/health", "actuator-health", 200, "application/vnd.spring-boot.actuator.v3+json", nil, "x-content-type-options: nosniff"},
	{"/shopapi-bid/swagger.json", "openapi", 200, "application/json", openAPIKind, "server: nginx"},
	{"/openapi.json", "openapi", 200, "application/json", openAPIKind, "server: nginx"},
	{"/shopapi-bid/api-docs", "openapi", 200, "application/json", openAPIKind, "x-frame-options: DENY"},
	{"/v2/api-docs", "openapi", 200, "application/json", openAPIKind, "x-frame-options: DENY"},
	{"/shopapi-bid/v3/api-docs", "openapi", 200, "application/json", openAPIKind, "x-frame-options: DENY"},
	{"/shopapi-bid/swagger-ui.html", "swagger-ui", 200, "text/html", nil, "x-frame-options: DENY"},
	{"/swagger-ui/index.html", "swagger-ui", 200, "text/html", nil, "x-frame-options: DENY"},
	{"/debug/pprof", "pprof", 200, "text/html; charset=utf-8", nil, "x-content-type-options: nosniff"},
	{"/shopapi-bid/debug/pprof/", "pprof", 200, "text/html; charset=utf-8", nil, "x-content-type-options: nosniff"},
	{"/debug/vars", "expvar", 200, "application/json; charset=utf-8", []string{KindConnectionString}, ""},
	{"/backup.sql", "sql", 200, "application/sql", sqlKinds, "server: nginx"},
	{"/shopapi-bid/dump.sql", "sql", 200, "application/sql", sqlKinds, "server: nginx"},
	{"/db.sql", "sql", 200, "application/sql", sqlKinds, "server: nginx"},
	{"/backups/prod-2025-03-01.SQL", "sql", 200, "application/sql", sqlKinds, "server: nginx"},
	{"/admin", "admin", 200, "text/html", nil, "cache-control: no-store"},
	{"/admin/", "admin", 200, "text/html", nil, "server: nginx"},
	{"/internal", "admin", 200, "text/html", nil, "server: nginx"},
	{"/console", "admin", 200, "text/html", nil, "server: nginx"},
	{"/manage", "admin", 200, "text/html", nil, "server: nginx"},
	{"/shopapi-bid/admin", "admin", 401, "application/json", nil, "www-authenticate: Bearer"},
	{"/api/v1/internal", "admin", 401, "application/json", nil, "www-authenticate: Bearer"},
	{"/shopapi-bid/users", "users", 200, "application/json", []string{KindAPIKey}, "server: nginx"},
	{"/internal/users", "users", 200, "application/json", []string{KindAPIKey}, "server: nginx"},
	{"/shopapi-bid/admin/users", "users", 200, "application/json", []string{KindAPIKey}, "server: nginx"},
	{"/accounts", "users", 200, "application/json", []string{KindAPIKey}, "server: nginx"},
	{"/wp-login.php", "wp-login", 200, "text/html", nil, "x-powered-by: PHP/"},
	{"/blog/wp-login.php", "wp-login", 200, "text/html", nil, "server: Apache/"},
	{"/phpmyadmin", "phpmyadmin", 200, "text/html", nil, "x-powered-by: PHP/"},
	{"/phpMyAdmin/", "phpmyadmin", 200, "text/html", nil, "x-powered-by: PHP/"},
	{"/pma", "phpmyadmin", 200, "text/html", nil, "server: Apache/"},
	{"/.aws/credentials", "aws-credentials", 200, "text/plain", []string{KindAWSKey, KindAWSKey}, "server: nginx"},
	{"/shopapi-bid/config.json", "config-json", 200, "application/json",
		[]string{KindConnectionString, KindSecret, KindAPIKey}, "server: nginx"},
	{"/credentials.json", "credentials-json", 200, "application/json", []string{KindPassword, KindAPIKey}, "server: nginx"},
	{"/id_rsa", "ssh-key", 200, "application/octet-stream", nil, "server: nginx"},
	{"/root/.ssh/id_rsa", "ssh-key", 200, "application/octet-stream", nil, "server: nginx"},
	{"/server-status", "server-status", 200, "text/html", []string{KindToken}, "server: Apache/"},
	{"/web.config", "web-config", 200, "text/xml", []string{KindConnectionString, KindAPIKey}, "x-powered-by: ASP.NET"},
	{"/.htpasswd", "htpasswd", 200, "text/plain", []string{KindPassword}, "server: Apache/"},
	{"/shopapi-bid/v0/orders", "default", 200, "application/json", nil, "server: nginx"},
	{"/shopapi-bid/internal/reports/2025", "default", 200, "application/json", nil, "cache-control: "},
	{"/", "default", 200, "application/json", nil, "server: nginx"},
}

// header returns the value of the first header named name.
func header(a Answer, name string) (string, bool) {
	for _, h := range a.Headers {
		if h[0] == name {
			return h[1], true
		}
	}
	return "", false
}

func TestAnswers(t *testing.T) {
	for _, c := range answerCases {
		t.Run(c.path, func(t *testing.T) {
			if r, _ := match(splitPath(c.path)); r.name != c.rule {
				t.Errorf("matched %s, want %s", r.name, c.rule)
			}
			m := &minter{tag: "a"}
			a := PlausibleAnswer(c.path, apiName, basePath, m.mint)
			if a.Status != c.status {
				t.Errorf("status %d, want %d", a.Status, c.status)
			}
			if len(a.Headers) == 0 || a.Headers[0][0] != "content-type" || !strings.HasPrefix(a.Headers[0][1], c.ctype) {
				t.Errorf("headers %q: want content-type %q first", a.Headers, c.ctype)
			}
			seen := map[string]bool{}
			for _, h := range a.Headers {
				if h[0] != strings.ToLower(h[0]) || seen[h[0]] {
					t.Errorf("header name %q: not lower case, or repeated", h[0])
				}
				seen[h[0]] = true
			}
			if c.header != "" {
				name, prefix, _ := strings.Cut(c.header, ": ")
				if v, ok := header(a, name); !ok || !strings.HasPrefix(v, prefix) {
					t.Errorf("header %s = %q, want prefix %q", name, v, prefix)
				}
			}
			if !slices.Equal(m.kinds, c.kinds) {
				t.Errorf("minted kinds %q, want %q", m.kinds, c.kinds)
			}
			for _, tok := range m.tokens {
				if !bytes.Contains(a.Body, []byte(tok)) {
					t.Errorf("body lacks honeytoken %q", tok)
				}
			}
			if len(a.Body) == 0 || len(a.Body) >= 16<<10 {
				t.Errorf("body is %d bytes, want 1 to 16 KiB", len(a.Body))
			}
			checkSyntax(t, a)
		})
	}
}

// checkSyntax checks that a JSON or XML body parses.
func checkSyntax(t *testing.T, a Answer) {
	t.Helper()
	ctype, _ := header(a, "content-type")
	switch {
	case strings.Contains(ctype, "json"):
		if !json.Valid(a.Body) {
			t.Errorf("invalid JSON body:\n%s", a.Body)
		}
	case strings.Contains(ctype, "xml"):
		d := xml.NewDecoder(bytes.NewReader(a.Body))
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Errorf("invalid XML body: %v\n%s", err, a.Body)
				break
			}
		}
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct{ path, rule string }{
		{"/.env", "dotenv"},
		{"/.env?debug=1#top", "dotenv"},
		{"/%2eenv", "dotenv"},
		{"/.env.bak", "dotenv"},
		{"/.env.", "dotenv"},
		{"/my.env", "default"},
		{"/environment", "default"},
		{"//.GIT//Config", "git-config"},
		{"/.git/config/", "git-config"},
		{"/.git/index", "default"},
		{"/config", "default"},
		{"/actuator/", "actuator"},
		{"/ACTUATOR/ENV", "actuator-env"},
		{"/actuator/env/DATABASE_URL", "default"},
		{"/api/actuator/health", "actuator-health"},
		{"/v3/api-docs/", "openapi"},
		{"/api-docs/swagger-config", "default"},
		{"/Swagger.JSON", "openapi"},
		{"/swagger-ui", "swagger-ui"},
		{"/debug/pprof/heap", "default"},
		{"/pprof", "default"},
		{"/vars", "default"},
		{"/.sql", "sql"},
		{"/backup.sql.gz", "default"},
		{"/admin/users", "users"},
		{"/admin/login", "admin"},
		{"/Administrator", "admin"},
		{"/users/42", "default"},
		{"/shopapi-bid/ACCOUNTS", "users"},
		{"/a/b/c/wp-login.php", "wp-login"},
		{"/phpmyadmin/index.php", "phpmyadmin"},
		{"/.aws/credentials", "aws-credentials"},
		{"/credentials", "default"},
		{"/home/deploy/.ssh/id_ed25519", "ssh-key"},
		{"/id_rsa.pub", "default"},
		{"/WEB.CONFIG", "web-config"},
		{"", "default"},
		{"/./admin", "admin"},
	} {
		r, _ := match(splitPath(tc.path))
		if r.name != tc.rule {
			t.Errorf("match(%q) = %s, want %s", tc.path, r.name, tc.rule)
		}
	}
}

func TestRulesWellFormed(t *testing.T) {
	names := map[string]bool{fallback.name: true}
	for _, r := range rules {
		if names[r.name] {
			t.Errorf("rule %s named twice", r.name)
		}
		names[r.name] = true
		for _, p := range r.patterns {
			if p != strings.ToLower(p) || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
				t.Errorf("rule %s: pattern %q must be lower case without outer slashes", r.name, p)
			}
			for s := range strings.SplitSeq(p, "/") {
				if _, err := path.Match(s, ""); err != nil {
					t.Errorf("rule %s: pattern %q: %v", r.name, p, err)
				}
			}
		}
	}
	covered := map[string]bool{}
	for _, c := range answerCases {
		if !names[c.rule] {
			t.Errorf("case %s names unknown rule %s", c.path, c.rule)
		}
		covered[c.rule] = true
	}
	for n := range names {
		if !covered[n] {
			t.Errorf("rule %s has no answer case", n)
		}
	}
}

// forbidden are the words no answer may carry, whatever the API is named.
var forbidden = []string{"vigil", "decoy", "honeypot", "fake", "trap", "test"}

func TestNoTells(t *testing.T) {
	neutral := func(kind string) string { return "Xq7" + strings.ReplaceAll(kind, "_", "") + "9Lm" }
	for _, name := range []string{apiName, "Vigil Decoy Shop", "test-fake-trap", ""} {
		for _, mint := range []Minter{neutral, nil} {
			for _, c := range answerCases {
				a := PlausibleAnswer(c.path, name, basePath, mint)
				texts := []string{string(a.Body)}
				for _, h := range a.Headers {
					texts = append(texts, h[0], h[1])
				}
				for _, s := range texts {
					low := strings.ToLower(s)
					for _, w := range forbidden {
						if i := strings.Index(low, w); i >= 0 {
							t.Errorf("%s (api %q, minter %t): %q at %q", c.path, name, mint != nil, w, s[max(0, i-30):min(len(s), i+30)])
						}
					}
				}
			}
		}
	}
}

func TestUniquePerHit(t *testing.T) {
	for _, c := range answerCases {
		a1 := PlausibleAnswer(c.path, apiName, basePath, (&minter{tag: "a"}).mint)
		a2 := PlausibleAnswer(c.path, apiName, basePath, (&minter{tag: "a"}).mint)
		if !equalAnswers(a1, a2) {
			t.Errorf("%s: the same tokens give different answers", c.path)
		}
		if len(c.kinds) == 0 {
			continue
		}
		b := PlausibleAnswer(c.path, apiName, basePath, (&minter{tag: "b"}).mint)
		if bytes.Equal(a1.Body, b.Body) {
			t.Errorf("%s: different tokens give the same body", c.path)
		}
	}
}

func equalAnswers(a, b Answer) bool {
	return a.Status == b.Status && slices.Equal(a.Headers, b.Headers) && bytes.Equal(a.Body, b.Body)
}

// TestGeneratedValuesFollowTokens checks that values generated around the
// tokens (hashes, secrets, ids) change with them, so two hits share nothing.
func TestGeneratedValuesFollowTokens(t *testing.T) {
	a := string(PlausibleAnswer("/backup.sql", apiName, basePath, (&minter{tag: "a"}).mint).Body)
	b := string(PlausibleAnswer("/backup.sql", apiName, basePath, (&minter{tag: "b"}).mint).Body)
	hashes := func(s string) []string {
		var out []string
		for _, f := range strings.Split(s, "'") {
			if strings.HasPrefix(f, "$2b$12$") {
				out = append(out, f)
			}
		}
		return out
	}
	ha, hb := hashes(a), hashes(b)
	if len(ha) != 3 {
		t.Fatalf("want 3 bcrypt hashes, got %q", ha)
	}
	for _, h := range ha {
		if slices.Contains(hb, h) {
			t.Errorf("hash %s planted in two hits", h)
		}
	}
}

func TestOpenAPI(t *testing.T) {
	for _, tc := range []struct{ base, want string }{
		{basePath, "/shopapi-bid/"},
		{"shop/v2/", "/shop/v2/"},
		{"/", "/"},
		{"", "/"},
	} {
		m := &minter{tag: "a"}
		a := PlausibleAnswer("/x/openapi.json", apiName, tc.base, m.mint)
		var doc struct {
			OpenAPI    string                     `json:"openapi"`
			Paths      map[string]json.RawMessage `json:"paths"`
			Components struct {
				Parameters      map[string]struct{ Example string }
				SecuritySchemes map[string]struct{ Type string }
			}
		}
		if err := json.Unmarshal(a.Body, &doc); err != nil {
			t.Fatalf("base %q: %v", tc.base, err)
		}
		if !strings.HasPrefix(doc.OpenAPI, "3.") {
			t.Errorf("base %q: openapi %q", tc.base, doc.OpenAPI)
		}
		for _, want := range []string{"internal/users", "admin/export", "v0/orders/{id}"} {
			if _, ok := doc.Paths[tc.want+want]; !ok {
				t.Errorf("base %q: no path %s%s in %v", tc.base, tc.want, want, slices.Collect(mapKeys(doc.Paths)))
			}
		}
		for p := range doc.Paths {
			if !strings.HasPrefix(p, tc.want) || strings.Contains(p, "//") {
				t.Errorf("base %q: path %q outside the base", tc.base, p)
			}
		}
		if doc.Components.Parameters["ApiKey"].Example != m.tokens[0] {
			t.Errorf("base %q: example API key %q, want %q", tc.base, doc.Components.Parameters["ApiKey"].Example, m.tokens[0])
		}
		if doc.Components.SecuritySchemes["ApiKeyAuth"].Type != "apiKey" || doc.Components.SecuritySchemes["bearerAuth"].Type != "http" {
			t.Errorf("base %q: security schemes %+v", tc.base, doc.Components.SecuritySchemes)
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestAnswerAtDates(t *testing.T) {
	for _, c := range answerCases {
		m := &minter{tag: "a"}
		if !equalAnswers(AnswerAt(c.path, apiName, basePath, time.Time{}, m.mint), PlausibleAnswer(c.path, apiName, basePath, (&minter{tag: "a"}).mint)) {
			t.Errorf("%s: AnswerAt with a zero now differs from PlausibleAnswer", c.path)
		}
	}
	now := time.Date(2027, time.July, 4, 1, 30, 0, 0, time.UTC)
	for _, p := range []string{"/.env", "/backup.sql", "/web.config", "/.htpasswd"} {
		a := AnswerAt(p, apiName, basePath, now, (&minter{tag: "a"}).mint)
		v, _ := header(a, "last-modified")
		mod, err := time.Parse(httpTime, v)
		if err != nil || !mod.Before(now) || now.Sub(mod) > 41*day {
			t.Errorf("%s: last-modified %q (%v), want shortly before %v", p, v, err, now)
		}
	}
	dump := string(AnswerAt("/backup.sql", apiName, basePath, now, (&minter{tag: "a"}).mint).Body)
	if !strings.Contains(dump, "-- Dump completed on 2027-07-03  3:") {
		t.Errorf("a dump at 01:30 should be the previous night's:\n%s", dump[len(dump)-60:])
	}
}

// TestAwkwardTokens checks that tokens with quotes and markup keep JSON and
// XML bodies well formed.
func TestAwkwardTokens(t *testing.T) {
	awkward := func(kind string) string { return `a"b'c<d>&e\f g` + kind + "\x01\n\xff" }
	for _, c := range answerCases {
		checkSyntax(t, PlausibleAnswer(c.path, apiName, basePath, awkward))
	}
	env := string(PlausibleAnswer("/.env", apiName, basePath, awkward).Body)
	if !strings.Contains(env, `JWT_SECRET="a\"b'c<d>&e\\f gsecret`+"\x01\\n\xff\"") {
		t.Errorf("dotenv value not quoted:\n%s", env)
	}
}

func TestJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s/`, "<a>&amp;", "tab\tnl\n\x01\x1f", "\u2028\u2029", "é日本", "bad\xffutf8"} {
		var got string
		b := []byte(jsonString(s))
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("%q: %s: %v", s, b, err)
			continue
		}
		if want := strings.ToValidUTF8(s, "\uFFFD"); got != want {
			t.Errorf("%q: round trip gives %q", s, got)
		}
	}
	if got := jsonString("<&>"); got != `"<&>"` {
		t.Errorf("HTML characters escaped: %s", got)
	}
}

func BenchmarkPlausibleAnswer(b *testing.B) {
	mint := func(kind string) string { return "tok_" + kind }
	for _, c := range answerCases {
		b.Run(strings.ReplaceAll(c.path, "/", "_"), func(b *testing.B) {
			for b.Loop() {
				PlausibleAnswer(c.path, apiName, basePath, mint)
			}
		})
	}
}

func FuzzPlausibleAnswer(f *testing.F) {
	for _, c := range answerCases {
		f.Add(c.path, apiName, basePath)
	}
	f.Fuzz(func(t *testing.T, p, name, base string) {
		m := &minter{tag: "f"}
		a := PlausibleAnswer(p, name, base, m.mint)
		if a.Status == 0 || len(a.Headers) == 0 || a.Headers[0][0] != "content-type" {
			t.Fatalf("%q: answer %d %q", p, a.Status, a.Headers)
		}
		// A page may reflect the path twenty times (the actuator's
		// links), and JSON writes an invalid byte as \ufffd: six bytes a
		// byte. Paths past maxPath get a fixed 414 page, so an answer
		// stays bounded whatever is sent.
		if limit := 16<<10 + 128*(min(len(p), maxPath)+len(base)); len(a.Body) > limit {
			t.Errorf("%q: body %d bytes", p, len(a.Body))
		}
		checkSyntax(t, a)
	})
}

// TestLongPathGets414: a path longer than maxPath is answered as nginx
// answers one past its header buffers, whatever decoy it names, so that no
// page reflects it.
func TestLongPathGets414(t *testing.T) {
	long := "/" + strings.Repeat("\xda", maxPath) + "/actuator"
	a := PlausibleAnswer(long, apiName, basePath, (&minter{tag: "l"}).mint)
	if a.Status != 414 || !strings.Contains(string(a.Body), "414 Request-URI Too Large") || len(a.Body) > 512 {
		t.Fatalf("answer %d, %d bytes: %.200s", a.Status, len(a.Body), a.Body)
	}
	if got, _ := header(a, "server"); !strings.HasPrefix(got, "nginx") {
		t.Fatalf("server %q, want nginx's", got)
	}
	if a := PlausibleAnswer("/shop/actuator", apiName, basePath, nil); a.Status != 200 {
		t.Fatalf("a short path got %d", a.Status)
	}
}
