package decoy

// Plausible answers for decoy paths: a dotenv file, a git config, Spring Boot
// actuator endpoints, an OpenAPI document, Go's debug pages, a SQL dump, login
// pages, user lists and the other files scanners look for, each with the
// headers of the server that would really serve it. Secrets in them are
// honeytokens minted per hit by the caller; every other varying value (hashes,
// ids, dates, counters) is drawn from a generator seeded by the request and
// the minted tokens, so an answer is a pure function of its inputs and of what
// the minter returned, and two hits never share a planted value.
//
// Nothing in an answer may reveal what serves it: no product name, and no word
// that says the answer is not real. The API's name is used only after such
// words are dropped from it, and generated strings that happen to contain one
// are drawn again.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html"
	"math/rand/v2"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Honeytoken kinds an answer asks its Minter for. A Minter must answer any
// kind, these and later ones, with an opaque token for a kind it does not
// know.
const (
	KindAPIKey           = "api_key"
	KindToken            = "token"
	KindPassword         = "password"
	KindConnectionString = "connection_string"
	KindAWSKey           = "aws_key" // an access key id: what a signed request shows
	KindJWT              = "jwt"
	KindGitHubToken      = "github_token" // a personal access token, for github.com remotes
	KindSecret           = "secret"       // a signing secret (JWT_SECRET), not a token
)

// Minter mints a fresh honeytoken of a kind ("api_key", "token", "password",
// "connection_string", "aws_key", "jwt", "github_token", "secret"...) and
// returns its text; the caller
// registers it (each hit gets unique ones).
type Minter func(kind string) string

// Answer is a decoy answer: what is sent instead of the backend's response.
type Answer struct {
	Status  int
	Headers [][2]string // lower-case names, in sending order
	Body    []byte
}

// PlausibleAnswer returns the answer for a decoy path (the full request path,
// e.g. "/shopapi-bid/.env" or "/internal/admin/users"), given the API's name
// and base path, minting honeytokens as needed. It is AnswerAt at a fixed
// reference time, so it is deterministic given the minter's outputs.
func PlausibleAnswer(path, apiName, basePath string, mint Minter) Answer {
	return AnswerAt(path, apiName, basePath, time.Time{}, mint)
}

// referenceTime stands for a zero now: the dates of an answer built by
// PlausibleAnswer sit before it.
var referenceTime = time.Date(2025, time.March, 11, 9, 41, 27, 0, time.UTC)

// AnswerAt is PlausibleAnswer at a given time: the dates in the answer (file
// modification times, the dump date, account dates, the last GC) sit
// plausibly before now. A zero now stands for a fixed reference time. Callers
// that serve real traffic pass the wall clock, so that dates move; the answer
// is deterministic given now and the minter's outputs.
//
// The path is matched on its last segments, case-insensitively, after the
// query is cut and percent-escapes are decoded; the longest matching pattern
// wins, and a path that matches none gets an empty JSON page. A nil mint plants
// generated values that nobody registers.
func AnswerAt(path, apiName, basePath string, now time.Time, mint Minter) Answer {
	segs := splitPath(path)
	r, n := match(segs)
	return r.build(newHit(segs, n, apiName, basePath, now, mint))
}

// rule is one kind of answer and the path suffixes it answers.
type rule struct {
	name string
	// patterns are lower-case path suffixes, one path.Match pattern a
	// segment: ".git/config", "*.sql".
	patterns []string
	build    func(h *hit) Answer
}

var rules = []rule{
	{"dotenv", []string{".env", ".env.*", "config.env"}, dotenv},
	{"git-config", []string{".git/config"}, gitConfig},
	{"git-head", []string{".git/head"}, gitHead},
	{"git-credentials", []string{".git-credentials"}, gitCredentials},
	{"actuator", []string{"actuator"}, actuatorLinks},
	{"actuator-env", []string{"actuator/env"}, actuatorEnv},
	{"actuator-health", []string{"actuator/health"}, actuatorHealth},
	{"openapi", []string{"swagger.json", "openapi.json", "api-docs", "v2/api-docs", "v3/api-docs"}, openAPI},
	{"swagger-ui", []string{"swagger-ui.html", "swagger-ui", "swagger-ui/index.html"}, swaggerUI},
	{"pprof", []string{"debug/pprof"}, pprofIndex},
	{"expvar", []string{"debug/vars"}, expvarVars},
	{"sql", []string{"*.sql"}, sqlDump},
	{"admin", []string{"admin", "admin/login", "administrator", "internal", "console", "manage"}, adminLogin},
	{"users", []string{"users", "accounts"}, userList},
	{"wp-login", []string{"wp-login.php"}, wpLogin},
	{"phpmyadmin", []string{"phpmyadmin", "phpmyadmin/index.php", "pma"}, phpMyAdmin},
	{"aws-credentials", []string{".aws/credentials"}, awsCredentials},
	{"config-json", []string{"config.json"}, configJSON},
	{"credentials-json", []string{"credentials.json"}, credentialsJSON},
	{"ssh-key", []string{"id_rsa", "id_ecdsa", "id_ed25519"}, sshKey},
	{"server-status", []string{"server-status"}, serverStatus},
	{"web-config", []string{"web.config"}, webConfig},
	{"htpasswd", []string{".htpasswd"}, htpasswd},
}

// fallback answers a path that no rule matches.
var fallback = rule{name: "default", build: emptyPage}

// splitPath returns the non-empty segments of a request path, without its
// query or fragment, percent-escapes decoded where they are valid.
func splitPath(p string) []string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	var segs []string
	for s := range strings.SplitSeq(p, "/") {
		if u, err := url.PathUnescape(s); err == nil {
			s = u
		}
		if s != "" && s != "." {
			segs = append(segs, s)
		}
	}
	return segs
}

// match returns the rule whose longest pattern matches the end of segs, and
// how many segments it matched; earlier rules win ties.
func match(segs []string) (*rule, int) {
	best, bestN := &fallback, 0
	for i := range rules {
		for _, p := range rules[i].patterns {
			n := strings.Count(p, "/") + 1
			if n > bestN && n <= len(segs) && suffixMatches(segs[len(segs)-n:], p) {
				best, bestN = &rules[i], n
			}
		}
	}
	return best, bestN
}

// suffixMatches reports whether segs match pattern segment by segment,
// case-insensitively.
func suffixMatches(segs []string, pattern string) bool {
	for _, s := range segs {
		var p string
		p, pattern, _ = strings.Cut(pattern, "/")
		if ok, _ := path.Match(p, strings.ToLower(s)); !ok {
			return false
		}
	}
	return true
}

// tells are words that must not appear in an answer: they would say what
// serves it, or that it is not real.
var tells = []string{"vigil", "decoy", "honey", "fake", "trap", "test", "canary", "bait", "dummy", "mock"}

func hasTell(s string) bool {
	s = strings.ToLower(s)
	for _, t := range tells {
		if strings.Contains(s, t) {
			return true
		}
	}
	return false
}

// app is what an answer says about the application behind it, derived from
// the API's name.
type app struct {
	slug   string // shopapi-bid
	org    string // shopapi
	db     string // shopapi_bid
	title  string // Shopapi Bid
	domain string // shopapi.corp
}

func newApp(name string) app {
	var parts []string
	for _, p := range strings.FieldsFunc(strings.ToLower(name), func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9')
	}) {
		if !hasTell(p) {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		parts = []string{"backend"}
	}
	words := make([]string, len(parts))
	for i, p := range parts {
		words[i] = strings.ToUpper(p[:1]) + p[1:]
	}
	return app{
		slug:   strings.Join(parts, "-"),
		org:    parts[0],
		db:     strings.Join(parts, "_"),
		title:  strings.Join(words, " "),
		domain: parts[0] + ".corp",
	}
}

// hit is the state of building one answer.
type hit struct {
	path   string   // the request path, cleaned: "/shop/admin"
	prefix string   // the path before the matched segments: "/shop", or ""
	last   string   // the last segment, lower case
	pre    []string // the segments before the matched ones
	base   string   // the API's base path, cleaned
	app    app
	now    time.Time
	mint   Minter
	seed   [32]byte
	rng    *rand.Rand
}

func newHit(segs []string, n int, apiName, basePath string, now time.Time, mint Minter) *hit {
	if now.IsZero() {
		now = referenceTime
	}
	h := &hit{
		path: "/" + strings.Join(segs, "/"),
		pre:  segs[:len(segs)-n],
		base: joinSegs(splitPath(basePath)),
		app:  newApp(apiName),
		now:  now.UTC().Truncate(time.Second),
		mint: mint,
	}
	h.prefix = joinSegs(h.pre)
	if len(segs) > 0 {
		h.last = strings.ToLower(segs[len(segs)-1])
	}
	h.mix(h.path, apiName, h.base, h.now.Format(time.RFC3339))
	return h
}

// joinSegs returns "/a/b" for [a b], and "" for none.
func joinSegs(segs []string) string {
	if len(segs) == 0 {
		return ""
	}
	return "/" + strings.Join(segs, "/")
}

// mix folds parts into the seed and restarts the generator from it.
func (h *hit) mix(parts ...string) {
	d := sha256.New()
	d.Write(h.seed[:])
	for _, p := range parts {
		d.Write([]byte(p))
		d.Write([]byte{0})
	}
	d.Sum(h.seed[:0])
	h.rng = rand.New(rand.NewChaCha8(h.seed))
}

// token mints a honeytoken of a kind; later generated values depend on it.
func (h *hit) token(kind string) string {
	var t string
	if h.mint != nil {
		t = h.mint(kind)
	}
	if t == "" {
		t = h.word(32, lowerHex)
	}
	h.mix(kind, t)
	return t
}

const (
	lowerHex = "0123456789abcdef"
	alnum    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b64      = alnum + "+/"
	crypt64  = "./" + alnum // bcrypt's and crypt's alphabet
	lowerNum = "abcdefghijklmnopqrstuvwxyz0123456789"
)

// word returns n characters drawn from alphabet, never containing a tell.
func (h *hit) word(n int, alphabet string) string {
	return h.clean(func() string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[h.rng.IntN(len(alphabet))]
		}
		return string(b)
	})
}

// clean draws gen until its value has no tell (in practice once).
func (h *hit) clean(gen func() string) string {
	s := gen()
	for try := 0; try < 32 && hasTell(s); try++ {
		s = gen()
	}
	return s
}

// num returns an integer in [lo, hi].
func (h *hit) num(lo, hi int) int { return lo + h.rng.IntN(hi-lo+1) }

const day = 24 * time.Hour

// ago returns a time between lo and hi before now, to the second.
func (h *hit) ago(lo, hi time.Duration) time.Time {
	return h.now.Add(-lo - time.Duration(h.rng.Int64N(int64(hi-lo)+1))).Truncate(time.Second)
}

// apiStyle reports whether the path before the match reads like a JSON API
// (/api/…, /v2/…, a base path named like an API), where an HTML page would be
// out of place.
func (h *hit) apiStyle() bool {
	for _, s := range h.pre {
		s = strings.ToLower(s)
		if strings.Contains(s, "api") || s == "rest" || s == "graphql" || isVersion(s) {
			return true
		}
	}
	return false
}

func isVersion(s string) bool {
	if len(s) < 2 || s[0] != 'v' {
		return false
	}
	_, err := strconv.Atoi(s[1:])
	return err == nil
}

// server is the software an answer pretends to come from.
type server uint8

const (
	nginx server = iota
	apache
	php // Apache with PHP
	iis
	spring // Spring Boot with Spring Security's default headers
	goHTTP // Go's net/http, which adds nothing
)

const (
	nginxVersion  = "nginx/1.22.1"
	apacheVersion = "Apache/2.4.57 (Debian)"
	httpTime      = "Mon, 02 Jan 2006 15:04:05 GMT"
)

func (s server) headers(hdr [][2]string) [][2]string {
	switch s {
	case nginx:
		hdr = append(hdr, [2]string{"server", nginxVersion})
	case apache:
		hdr = append(hdr, [2]string{"server", apacheVersion})
	case php:
		hdr = append(hdr, [2]string{"server", apacheVersion}, [2]string{"x-powered-by", "PHP/8.2.18"})
	case iis:
		hdr = append(hdr, [2]string{"server", "Microsoft-IIS/10.0"}, [2]string{"x-powered-by", "ASP.NET"})
	case spring:
		hdr = append(hdr,
			[2]string{"x-content-type-options", "nosniff"},
			[2]string{"x-xss-protection", "0"},
			[2]string{"cache-control", "no-cache, no-store, max-age=0, must-revalidate"},
			[2]string{"pragma", "no-cache"},
			[2]string{"expires", "0"},
			[2]string{"x-frame-options", "DENY"})
	}
	return hdr
}

// respond returns an answer with the content type, the server's headers and
// extra headers.
func respond(s server, status int, ctype string, body []byte, extra ...[2]string) Answer {
	hdr := s.headers([][2]string{{"content-type", ctype}})
	return Answer{Status: status, Headers: append(hdr, extra...), Body: body}
}

// file returns body as a static file served by s, modified some days ago.
func (h *hit) file(s server, ctype string, body []byte) Answer {
	return fileAt(s, ctype, body, h.ago(2*day, 40*day))
}

// fileAt returns body as a static file served by s, modified at mtime, with
// the server's ETag format.
func fileAt(s server, ctype string, body []byte, mtime time.Time) Answer {
	var etag string
	switch s {
	case apache:
		etag = fmt.Sprintf(`"%x-%x"`, len(body), mtime.UnixMicro())
	case iis:
		etag = fmt.Sprintf(`"%x:0"`, mtime.UnixNano()/100+116444736000000000) // FILETIME
	default:
		etag = fmt.Sprintf(`"%x-%x"`, mtime.Unix(), len(body))
	}
	return respond(s, 200, ctype, body,
		[2]string{"last-modified", mtime.Format(httpTime)},
		[2]string{"etag", etag},
		[2]string{"accept-ranges", "bytes"})
}

// obj is a JSON object that keeps its keys in order.
type obj []field

type field struct {
	k string
	v any
}

// appendJSON appends v as JSON. Strings are written as they are, without
// escaping HTML characters, so that tokens appear in the body as minted.
// Values of other types than those listed (arrays of numbers, structs of
// numbers) go through encoding/json.
func appendJSON(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendJSONString(b, v)
	case bool:
		return strconv.AppendBool(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case uint64:
		return strconv.AppendUint(b, v, 10)
	case float64:
		return strconv.AppendFloat(b, v, 'f', -1, 64)
	case obj:
		b = append(b, '{')
		for i, f := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(appendJSONString(b, f.k), ':')
			b = appendJSON(b, f.v)
		}
		return append(b, '}')
	case []obj:
		return appendJSONArray(b, v)
	case []string:
		return appendJSONArray(b, v)
	case []any:
		return appendJSONArray(b, v)
	}
	j, err := json.Marshal(v)
	if err != nil { // the types built here cannot fail
		return append(b, "null"...)
	}
	return append(b, j...)
}

func appendJSONArray[T any](b []byte, vs []T) []byte {
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSON(b, v)
	}
	return append(b, ']')
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20 || r == utf8.RuneError || r == '\u2028' || r == '\u2029':
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

// jsonBody returns v as a JSON body, indented by indent when it is not empty.
func jsonBody(v any, indent string) []byte {
	b := appendJSON(nil, v)
	if indent != "" {
		var out bytes.Buffer
		if json.Indent(&out, b, "", indent) == nil {
			b = out.Bytes()
		}
	}
	return append(b, '\n')
}

// envValue quotes a dotenv value when it needs it.
func envValue(v string) string {
	if !strings.ContainsAny(v, " \t\n\"'#$\\`") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "\n", `\n`)
	return `"` + r.Replace(v) + `"`
}

// sqlString returns s as a MySQL string literal.
func sqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}

// xmlAttr escapes s for an XML attribute value.
func xmlAttr(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}

// jsString returns s as a JavaScript string literal safe inside a script
// element.
func jsString(s string) string {
	b, err := json.Marshal(s) // escapes <, > and &
	if err != nil {
		return `""`
	}
	return string(b)
}

// namespace returns the Kubernetes namespace of an environment.
func namespace(env string) string {
	if env == "production" {
		return "prod"
	}
	return env
}

// awsSecret returns a secret access key to go with a minted access key id.
func (h *hit) awsSecret() string { return h.word(40, b64) }

func dotenv(h *hit) Answer {
	env := "production"
	switch strings.TrimPrefix(h.last, ".env.") {
	case "local", "dev", "development":
		env = "development"
	case "stage", "staging":
		env = "staging"
	}
	ns := namespace(env)
	var b strings.Builder
	kv := func(k, v string) {
		if k == "" {
			b.WriteByte('\n')
			return
		}
		fmt.Fprintf(&b, "%s=%s\n", k, envValue(v))
	}
	kv("APP_NAME", h.app.slug)
	kv("APP_ENV", env)
	kv("APP_DEBUG", strconv.FormatBool(env == "development"))
	kv("APP_PORT", "8080")
	kv("LOG_LEVEL", "info")
	kv("", "")
	kv("DATABASE_URL", h.token(KindConnectionString))
	kv("DATABASE_POOL_SIZE", "20")
	kv("REDIS_URL", "redis://redis-master."+ns+".svc.cluster.local:6379/0")
	kv("", "")
	kv("JWT_SECRET", h.token(KindSecret))
	kv("JWT_TTL", "3600")
	kv("SESSION_COOKIE_SECURE", "true")
	kv("", "")
	kv("AWS_ACCESS_KEY_ID", h.token(KindAWSKey))
	kv("AWS_SECRET_ACCESS_KEY", h.awsSecret())
	kv("AWS_REGION", "eu-west-1")
	kv("S3_BUCKET", h.app.slug+"-"+ns+"-uploads")
	kv("", "")
	kv("SMTP_HOST", "smtp.mailgun.org")
	kv("SMTP_PORT", "587")
	kv("SMTP_USERNAME", "postmaster@mg."+h.app.domain)
	kv("SMTP_PASSWORD", h.token(KindPassword))
	kv("MAIL_FROM", h.app.title+" <no-reply@"+h.app.domain+">")
	kv("", "")
	kv("PAYMENTS_API_KEY", h.token(KindAPIKey))
	kv("PARTNER_API_KEY", h.token(KindAPIKey))
	kv("SENTRY_DSN", fmt.Sprintf("https://%s@o%d.ingest.sentry.io/%d", h.word(32, lowerHex), h.num(100000, 999999), h.num(1000000, 9999999)))
	return h.file(nginx, "text/plain", []byte(b.String()))
}

func gitConfig(h *hit) Answer {
	remote := url.URL{
		Scheme: "https",
		User:   url.UserPassword("ci-deploy", h.token(KindGitHubToken)),
		Host:   "github.com",
		Path:   "/" + h.app.org + "/" + h.app.slug + ".git",
	}
	body := fmt.Sprintf(`[core]
	repositoryformatversion = 0
	filemode = true
	bare = false
	logallrefupdates = true
[remote "origin"]
	url = %s
	fetch = +refs/heads/*:refs/remotes/origin/*
[branch "main"]
	remote = origin
	merge = refs/heads/main
`, remote.String())
	return h.file(nginx, "text/plain", []byte(body))
}

// gitHead answers .git/HEAD as git writes it: a dumper reads it first, then
// fetches .git/config.
func gitHead(h *hit) Answer {
	return h.file(nginx, "text/plain", []byte("ref: refs/heads/main\n"))
}

func gitCredentials(h *hit) Answer {
	u := url.URL{Scheme: "https", User: url.UserPassword("ci-deploy", h.token(KindGitHubToken)), Host: "github.com"}
	return h.file(nginx, "text/plain", []byte(u.String()+"\n"))
}

const actuatorType = "application/vnd.spring-boot.actuator.v3+json"

func actuatorLinks(h *hit) Answer {
	base := "http://localhost:8080" + h.prefix + "/actuator"
	links := obj{}
	for _, l := range []struct {
		name, path string
	}{
		{"self", ""}, {"beans", "/beans"}, {"caches-cache", "/caches/{cache}"}, {"caches", "/caches"},
		{"health", "/health"}, {"health-path", "/health/{*path}"}, {"info", "/info"},
		{"conditions", "/conditions"}, {"configprops", "/configprops"}, {"configprops-prefix", "/configprops/{prefix}"},
		{"env", "/env"}, {"env-toMatch", "/env/{toMatch}"}, {"loggers", "/loggers"}, {"loggers-name", "/loggers/{name}"},
		{"heapdump", "/heapdump"}, {"threaddump", "/threaddump"},
		{"metrics-requiredMetricName", "/metrics/{requiredMetricName}"}, {"metrics", "/metrics"},
		{"scheduledtasks", "/scheduledtasks"}, {"mappings", "/mappings"},
	} {
		links = append(links, field{l.name, obj{{"href", base + l.path}, {"templated", strings.Contains(l.path, "{")}}})
	}
	return respond(spring, 200, actuatorType, jsonBody(obj{{"_links", links}}, ""))
}

func actuatorHealth(h *hit) Answer {
	total := int64(h.num(40, 120)) << 30
	free := total * int64(h.num(35, 80)) / 100
	body := obj{
		{"status", "UP"},
		{"components", obj{
			{"db", obj{{"status", "UP"}, {"details", obj{{"database", "PostgreSQL"}, {"validationQuery", "isValid()"}}}}},
			{"diskSpace", obj{{"status", "UP"}, {"details", obj{
				{"total", total}, {"free", free}, {"threshold", 10485760}, {"path", "/app/."}, {"exists", true},
			}}}},
			{"ping", obj{{"status", "UP"}}},
			{"redis", obj{{"status", "UP"}, {"details", obj{{"version", "7.0.15"}}}}},
		}},
	}
	return respond(spring, 200, actuatorType, jsonBody(body, ""))
}

func actuatorEnv(h *hit) Answer {
	const cfg = "class path resource [application-prod.yml]"
	prop := func(v any, origin string) obj { return obj{{"value", v}, {"origin", origin}} }
	sysEnv := func(name string, v any) field {
		return field{name, prop(v, `System Environment Property "`+name+`"`)}
	}
	pod := h.app.slug + "-" + h.word(10, lowerNum) + "-" + h.word(5, lowerNum)
	body := obj{
		{"activeProfiles", []string{"prod"}},
		{"propertySources", []obj{
			{{"name", "server.ports"}, {"properties", obj{{"local.server.port", obj{{"value", 8080}}}}}},
			{{"name", "servletContextInitParams"}, {"properties", obj{}}},
			{{"name", "systemProperties"}, {"properties", obj{
				{"java.runtime.version", obj{{"value", "17.0.10+7"}}},
				{"java.vendor", obj{{"value", "Eclipse Adoptium"}}},
				{"user.dir", obj{{"value", "/app"}}},
				{"file.encoding", obj{{"value", "UTF-8"}}},
				{"user.timezone", obj{{"value", "UTC"}}},
			}}},
			{{"name", "systemEnvironment"}, {"properties", obj{
				sysEnv("PATH", "/opt/java/openjdk/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
				sysEnv("HOSTNAME", pod),
				sysEnv("JAVA_HOME", "/opt/java/openjdk"),
				sysEnv("JAVA_OPTS", "-XX:MaxRAMPercentage=75.0"),
				sysEnv("SPRING_PROFILES_ACTIVE", "prod"),
				sysEnv("DATABASE_URL", h.token(KindConnectionString)),
				sysEnv("DATABASE_PASSWORD", "******"),
			}}},
			{{"name", "Config resource '" + cfg + "' via location 'optional:classpath:/'"}, {"properties", obj{
				{"spring.datasource.url", prop("${DATABASE_URL}", cfg+" - 3:10")},
				{"spring.datasource.password", prop("******", cfg+" - 5:15")},
				{"spring.jpa.hibernate.ddl-auto", prop("validate", cfg+" - 9:19")},
				{"app.jwt.secret", prop("******", cfg+" - 14:13")},
				{"app.partner.base-url", prop("https://partner-gateway."+h.app.domain+"/v2", cfg+" - 17:15")},
				{"app.partner.api-auth", prop(h.token(KindAPIKey), cfg+" - 18:15")},
				{"management.endpoints.web.exposure.include", prop("*", cfg+" - 23:18")},
			}}},
		}},
	}
	return respond(spring, 200, actuatorType, jsonBody(body, ""))
}

// openAPI returns an OpenAPI 3 document of internal and legacy endpoints
// under the API's base path, with an example API key and an example token.
func openAPI(h *hit) Answer {
	base := h.base
	key := h.token(KindAPIKey)
	jwt := h.token(KindJWT)
	ref := func(kind, name string) obj { return obj{{"$ref", "#/components/" + kind + "/" + name}} }
	jsonContent := func(schema any, extra ...field) obj {
		return obj{{"application/json", append(obj{{"schema", schema}}, extra...)}}
	}
	reply := func(code, desc string, schema any, extra ...field) obj {
		return obj{{code, obj{{"description", desc}, {"content", jsonContent(schema, extra...)}}}, {"401", ref("responses", "Unauthorized")}}
	}
	apiKeyAuth := []obj{{{"ApiKeyAuth", []string{}}}}
	bearerAuth := []obj{{{"bearerAuth", []string{}}}}
	list := func(name string) obj { return obj{{"type", "array"}, {"items", ref("schemas", name)}} }
	op := func(tag, summary, id string, params []obj, responses obj, security []obj, extra ...field) obj {
		o := obj{{"tags", []string{tag}}, {"summary", summary}, {"operationId", id}}
		if len(params) > 0 {
			o = append(o, field{"parameters", params})
		}
		o = append(o, extra...)
		return append(o, field{"responses", responses}, field{"security", security})
	}
	keyParam, idParam, pageParam := ref("parameters", "ApiKey"), ref("parameters", "Id"), ref("parameters", "Page")
	str := obj{{"type", "string"}}
	integer := obj{{"type", "integer"}, {"format", "int64"}}
	dateTime := obj{{"type", "string"}, {"format", "date-time"}}

	paths := obj{
		{base + "/internal/users", obj{{"get", op("internal", "List users", "listUsers",
			[]obj{keyParam, pageParam}, reply("200", "OK", list("User")), apiKeyAuth)}}},
		{base + "/internal/users/{id}", obj{{"get", op("internal", "Get a user", "getUser",
			[]obj{keyParam, idParam}, reply("200", "OK", ref("schemas", "User")), apiKeyAuth)}}},
		{base + "/admin/export", obj{{"post", op("admin", "Export customer data", "exportData", nil,
			reply("202", "Accepted", obj{{"type", "object"}, {"properties", obj{{"job_id", str}, {"status", str}}}}), bearerAuth,
			field{"requestBody", obj{{"required", true}, {"content", jsonContent(ref("schemas", "ExportRequest"))}}})}}},
		{base + "/v0/orders", obj{{"get", op("orders-v0", "List orders (legacy)", "listOrdersV0",
			[]obj{keyParam, pageParam}, reply("200", "OK", list("Order")), apiKeyAuth, field{"deprecated", true})}}},
		{base + "/v0/orders/{id}", obj{{"get", op("orders-v0", "Get an order (legacy)", "getOrderV0",
			[]obj{keyParam, idParam}, reply("200", "OK", ref("schemas", "Order")), apiKeyAuth, field{"deprecated", true})}}},
		{base + "/v0/auth/token", obj{{"post", op("auth", "Issue an access token", "issueToken", nil,
			reply("200", "OK", ref("schemas", "Token"), field{"example", obj{{"access_token", jwt}, {"token_type", "Bearer"}, {"expires_in", 3600}}}),
			apiKeyAuth, field{"requestBody", obj{{"required", true}, {"content", jsonContent(obj{{"type", "object"}, {"properties", obj{{"client_id", str}, {"client_secret", str}}}})}}})}}},
	}
	object := func(props obj) obj { return obj{{"type", "object"}, {"properties", props}} }
	doc := obj{
		{"openapi", "3.0.1"},
		{"info", obj{{"title", h.app.title + " API"}, {"description", "Internal and legacy endpoints of " + h.app.title + "."}, {"version", "v0"}}},
		{"servers", []obj{{{"url", "/"}, {"description", "Generated server url"}}}},
		{"paths", paths},
		{"components", obj{
			{"schemas", obj{
				{"User", object(obj{{"id", integer}, {"email", str}, {"name", str}, {"role", str}, {"created_at", dateTime}})},
				{"Order", object(obj{{"id", str}, {"user_id", integer}, {"total", obj{{"type", "number"}}}, {"currency", str}, {"status", str}, {"created_at", dateTime}})},
				{"ExportRequest", object(obj{{"format", obj{{"type", "string"}, {"enum", []string{"csv", "json"}}}}, {"tables", obj{{"type", "array"}, {"items", str}}}})},
				{"Token", object(obj{{"access_token", str}, {"token_type", str}, {"expires_in", obj{{"type", "integer"}}}})},
				{"Error", object(obj{{"error", str}, {"message", str}})},
			}},
			{"responses", obj{{"Unauthorized", obj{{"description", "Unauthorized"}, {"content", jsonContent(ref("schemas", "Error"))}}}}},
			{"parameters", obj{
				{"ApiKey", obj{{"name", "X-API-Key"}, {"in", "header"}, {"description", "Service key of the calling service"}, {"required", true}, {"schema", str}, {"example", key}}},
				{"Id", obj{{"name", "id"}, {"in", "path"}, {"required", true}, {"schema", str}}},
				{"Page", obj{{"name", "page"}, {"in", "query"}, {"required", false}, {"schema", obj{{"type", "integer"}, {"default", 1}}}}},
			}},
			{"securitySchemes", obj{
				{"ApiKeyAuth", obj{{"type", "apiKey"}, {"name", "X-API-Key"}, {"in", "header"}}},
				{"bearerAuth", obj{{"type", "http"}, {"scheme", "bearer"}, {"bearerFormat", "JWT"}}},
			}},
		}},
	}
	body := jsonBody(doc, "")
	if h.last == "api-docs" {
		return respond(spring, 200, "application/json", body)
	}
	return h.file(nginx, "application/json", body)
}

// swaggerUIPage is Swagger UI's index page; %s is the document's URL.
const swaggerUIPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<title>Swagger UI</title>
<link rel="stylesheet" type="text/css" href="./swagger-ui.css" />
<link rel="icon" type="image/png" href="./favicon-32x32.png" sizes="32x32" />
<link rel="icon" type="image/png" href="./favicon-16x16.png" sizes="16x16" />
</head>
<body>
<div id="swagger-ui"></div>
<script src="./swagger-ui-bundle.js" charset="UTF-8"> </script>
<script src="./swagger-ui-standalone-preset.js" charset="UTF-8"> </script>
<script>
window.onload = function() {
  window.ui = SwaggerUIBundle({
    url: %s,
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout"
  });
};
</script>
</body>
</html>
`

// swaggerUI links to swagger.json next to it, itself a decoy path.
func swaggerUI(h *hit) Answer {
	body := fmt.Sprintf(swaggerUIPage, jsString(h.prefix+"/swagger.json"))
	return respond(spring, 200, "text/html;charset=UTF-8", []byte(body))
}

// pprofProfiles are net/http/pprof's profiles in its order, with their
// descriptions.
var pprofProfiles = [...][2]string{
	{"allocs", "A sampling of all past memory allocations"},
	{"block", "Stack traces that led to blocking on synchronization primitives"},
	{"cmdline", "The command line invocation of the current program"},
	{"goroutine", "Stack traces of all current goroutines. Use debug=2 as a query parameter to export in the same format as an unrecovered panic."},
	{"heap", "A sampling of memory allocations of live objects. You can specify the gc GET parameter to run GC before taking the heap sample."},
	{"mutex", "Stack traces of holders of contended mutexes"},
	{"profile", "CPU profile. You can specify the duration in the seconds GET parameter. After you get the profile file, use the go tool pprof command to investigate the profile."},
	{"symbol", "Maps given program counters to function names. Counters can be specified in a GET raw query or POST body, multiple counters are separated by '+'."},
	{"threadcreate", "Stack traces that led to the creation of new OS threads"},
	{"trace", "A trace of execution of the current program. You can specify the duration in the seconds GET parameter. After you get the trace file, use the go tool trace command to investigate the trace."},
}

// pprofIndex is net/http/pprof's index page in its exact layout, with plausible
// profile counts.
func pprofIndex(h *hit) Answer {
	heap := h.num(12, 90)
	counts := map[string]int{"allocs": heap, "heap": heap, "goroutine": h.num(40, 400), "threadcreate": h.num(11, 24)}
	var b strings.Builder
	b.WriteString(`<html>
<head>
<title>/debug/pprof/</title>
<style>
.profile-name{
	display:inline-block;
	width:6rem;
}
</style>
</head>
<body>
/debug/pprof/
<br>
<p>Set debug=1 as a query parameter to export in legacy text format</p>
<br>
Types of profiles available:
<table>
<thead><td>Count</td><td>Profile</td></thead>
`)
	for _, p := range pprofProfiles {
		fmt.Fprintf(&b, "<tr><td>%d</td><td><a href='%s?debug=1'>%s</a></td></tr>\n", counts[p[0]], p[0], p[0])
	}
	b.WriteString(`</table>
<a href="goroutine?debug=2">full goroutine stack dump</a>
<br>
<p>
Profile Descriptions:
<ul>
`)
	for _, p := range pprofProfiles {
		fmt.Fprintf(&b, "<li><div class=profile-name>%s: </div> %s</li>\n", p[0], html.EscapeString(p[1]))
	}
	b.WriteString(`</ul>
</p>
</body>
</html>`)
	return respond(goHTTP, 200, "text/html; charset=utf-8", []byte(b.String()), [2]string{"x-content-type-options", "nosniff"})
}

// sizeClasses are the Go runtime's allocation size classes, as
// runtime.MemStats.BySize lists them.
var sizeClasses = [...]uint32{0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048,
	2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880,
	12288, 13568, 14336, 16384, 18432}

// expvarVars is expvar's /debug/vars: the command line (with a database DSN
// flag) and the memory statistics, in expvar's layout.
func expvarVars(h *hit) Answer {
	cmdline := []string{"/usr/local/bin/" + h.app.slug, "-config", "/etc/" + h.app.slug + "/config.yaml", "-db", h.token(KindConnectionString)}
	alloc := uint64(h.num(18, 64)) << 20
	sys := alloc*3 + uint64(h.num(8, 40))<<20
	heapSys := sys * 3 / 4
	heapInuse := alloc + alloc/8
	numGC := h.num(800, 40000)
	lastGC := h.now.Add(-time.Duration(h.num(1, 90)) * time.Second)
	type sizeClass struct {
		Size    uint32
		Mallocs uint64
		Frees   uint64
	}
	var pauseNs, pauseEnd [256]uint64
	var pauseTotal uint64
	end := lastGC
	for i := range pauseNs {
		j := (numGC - 1 - i) % 256 // the newest pause sits at (NumGC+255)%256; numGC > 256
		pauseNs[j] = uint64(h.num(25000, 400000))
		pauseEnd[j] = uint64(end.UnixNano())
		pauseTotal += pauseNs[j]
		end = end.Add(-time.Duration(h.num(60, 240)) * time.Second)
	}
	pauseTotal = pauseTotal / 256 * uint64(numGC)
	bySize := make([]sizeClass, len(sizeClasses))
	var mallocs, frees uint64
	for i, s := range sizeClasses {
		if s == 0 {
			continue
		}
		m := uint64(h.num(1000, 9000000)) / uint64(1+i/4)
		f := m - m/uint64(h.num(40, 400))
		bySize[i] = sizeClass{Size: s, Mallocs: m, Frees: f}
		mallocs, frees = mallocs+m, frees+f
	}
	memstats := obj{
		{"Alloc", alloc}, {"TotalAlloc", alloc * uint64(h.num(200, 3000))}, {"Sys", sys}, {"Lookups", 0},
		{"Mallocs", mallocs}, {"Frees", frees},
		{"HeapAlloc", alloc}, {"HeapSys", heapSys}, {"HeapIdle", heapSys - heapInuse}, {"HeapInuse", heapInuse},
		{"HeapReleased", (heapSys - heapInuse) / 2}, {"HeapObjects", mallocs - frees},
		{"StackInuse", uint64(h.num(48, 128)) << 15}, {"StackSys", uint64(h.num(48, 128)) << 15},
		{"MSpanInuse", h.num(300, 900) * 160}, {"MSpanSys", h.num(600, 1200) * 160},
		{"MCacheInuse", 14400}, {"MCacheSys", 15600}, {"BuckHashSys", h.num(1500000, 1700000)},
		{"GCSys", uint64(h.num(4, 9)) << 20}, {"OtherSys", h.num(900000, 2500000)},
		{"NextGC", alloc + alloc*uint64(h.num(50, 100))/100}, {"LastGC", uint64(lastGC.UnixNano())},
		{"PauseTotalNs", pauseTotal}, {"PauseNs", pauseNs}, {"PauseEnd", pauseEnd},
		{"NumGC", numGC}, {"NumForcedGC", 0}, {"GCCPUFraction", float64(h.num(30, 4000)) / 1e6},
		{"EnableGC", true}, {"DebugGC", false}, {"BySize", bySize},
	}
	var b []byte
	b = append(b, "{\n\"cmdline\": "...)
	b = appendJSON(b, cmdline)
	b = append(b, ",\n\"memstats\": "...)
	b = append(b, jsonBody(memstats, "")...)
	b = append(b, "}\n"...)
	return respond(goHTTP, 200, "application/json; charset=utf-8", b)
}

// firstNames and lastNames make the staff of user lists; people walks them
// with odd steps, so names do not repeat within a list.
var (
	firstNames = [16]string{"Maria", "James", "Priya", "Tomasz", "Aisha", "Lukas", "Sofia", "Daniel",
		"Mei", "Oliver", "Fatima", "Jonas", "Elena", "Marcus", "Hannah", "Rahul"}
	lastNames = [16]string{"Lopez", "Chen", "Raman", "Nowak", "Okafor", "Becker", "Rossi", "Kim",
		"Larsen", "Haddad", "Moreau", "Silva", "Novak", "Schmidt", "Tanaka", "Walsh"}
)

type person struct {
	id                  int
	name, email, role   string
	created, lastActive time.Time
}

// people returns one staff member a role, with ids after firstID and
// creation dates ascending from 500 to 900 days ago; with up to four roles
// the last one joined at least 140 days ago.
func (h *hit) people(firstID int, roles ...string) []person {
	f, l := h.rng.IntN(16), h.rng.IntN(16)
	fs, ls := 1+2*h.rng.IntN(8), 1+2*h.rng.IntN(8)
	id, created := firstID, h.ago(500*day, 900*day)
	out := make([]person, len(roles))
	for i, role := range roles {
		first, last := firstNames[(f+i*fs)%16], lastNames[(l+i*ls)%16]
		id += h.num(1, 90)
		out[i] = person{
			id:         id,
			name:       first + " " + last,
			email:      strings.ToLower(first+"."+last) + "@" + h.app.domain,
			role:       role,
			created:    created,
			lastActive: h.ago(time.Hour, 20*day),
		}
		created = created.Add(time.Duration(h.num(10, 120))*day + time.Duration(h.num(0, 86399))*time.Second)
	}
	return out
}

func (h *hit) bcrypt() string { return "$2b$12$" + h.word(53, crypt64) }

const sqlTime = "2006-01-02 15:04:05"

// sqlDump is a mysqldump of a users table, one legacy row of which holds a
// plaintext password, and of an api_tokens table.
func sqlDump(h *hit) Answer {
	legacy := person{id: h.num(1, 9), name: "Ops Team", email: "ops@" + h.app.domain,
		role: "admin", created: h.ago(1000*day, 1400*day)}
	staff := h.people(legacy.id, "admin", "support", "analyst")
	password := h.token(KindPassword)
	deploy, reporting := h.token(KindToken), h.token(KindToken)
	dumped := time.Date(h.now.Year(), h.now.Month(), h.now.Day(), 3, h.num(0, 40), h.num(0, 59), 0, time.UTC)
	if !dumped.Before(h.now) {
		dumped = dumped.Add(-day)
	}

	users := []string{fmt.Sprintf("(%d,%s,%s,%s,%s,%s)", legacy.id, sqlString(legacy.email), sqlString(legacy.name),
		sqlString(password), sqlString(legacy.role), sqlString(legacy.created.Format(sqlTime)))}
	for _, p := range staff {
		users = append(users, fmt.Sprintf("(%d,%s,%s,%s,%s,%s)", p.id, sqlString(p.email), sqlString(p.name),
			sqlString(h.bcrypt()), sqlString(p.role), sqlString(p.created.Format(sqlTime))))
	}
	tokens := []string{
		fmt.Sprintf("(1,%d,'reporting',%s,'read',NULL,%s)", legacy.id, sqlString(reporting),
			sqlString(h.ago(900*day, 1000*day).Format(sqlTime))),
		fmt.Sprintf("(2,%d,'ci-deploy',%s,'read,write,admin',%s,%s)", staff[0].id, sqlString(deploy),
			sqlString(h.ago(time.Hour, 3*day).Format(sqlTime)), sqlString(h.ago(60*day, 400*day).Format(sqlTime))),
	}

	var b strings.Builder
	fmt.Fprintf(&b, `-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)
--
-- Host: db-primary.%s.internal    Database: %s
-- ------------------------------------------------------
-- Server version	8.0.36

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;
/*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;
/*!50503 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;
`, h.app.org, h.app.db)
	table := func(name, create string, next int, rows string) {
		fmt.Fprintf(&b, `
--
-- Table structure for table `+"`%[1]s`"+`
--

DROP TABLE IF EXISTS `+"`%[1]s`"+`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
/*!50503 SET character_set_client = utf8mb4 */;
CREATE TABLE `+"`%[1]s`"+` (
%[2]s
) ENGINE=InnoDB AUTO_INCREMENT=%[4]d DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;
/*!40101 SET character_set_client = @saved_cs_client */;

--
-- Dumping data for table `+"`%[1]s`"+`
--

LOCK TABLES `+"`%[1]s`"+` WRITE;
/*!40000 ALTER TABLE `+"`%[1]s`"+` DISABLE KEYS */;
INSERT INTO `+"`%[1]s`"+` VALUES %[3]s;
/*!40000 ALTER TABLE `+"`%[1]s`"+` ENABLE KEYS */;
UNLOCK TABLES;
`, name, create, rows, next)
	}
	table("users", "  `id` bigint unsigned NOT NULL AUTO_INCREMENT,\n"+
		"  `email` varchar(255) NOT NULL,\n"+
		"  `name` varchar(255) NOT NULL,\n"+
		"  `password_hash` varchar(255) NOT NULL,\n"+
		"  `role` varchar(32) NOT NULL DEFAULT 'customer',\n"+
		"  `created_at` datetime NOT NULL,\n"+
		"  PRIMARY KEY (`id`),\n"+
		"  UNIQUE KEY `users_email_unique` (`email`)", staff[len(staff)-1].id+1, strings.Join(users, ","))
	table("api_tokens", "  `id` bigint unsigned NOT NULL AUTO_INCREMENT,\n"+
		"  `user_id` bigint unsigned NOT NULL,\n"+
		"  `name` varchar(64) NOT NULL,\n"+
		"  `token` varchar(255) NOT NULL,\n"+
		"  `scopes` varchar(255) NOT NULL,\n"+
		"  `last_used_at` datetime DEFAULT NULL,\n"+
		"  `created_at` datetime NOT NULL,\n"+
		"  PRIMARY KEY (`id`),\n"+
		"  UNIQUE KEY `api_tokens_token_unique` (`token`),\n"+
		"  KEY `api_tokens_user_id_foreign` (`user_id`)", len(tokens)+1, strings.Join(tokens, ","))
	fmt.Fprintf(&b, `/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;

/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;
/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;
/*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */;
/*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */;
/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;

-- Dump completed on %s %2d:%02d:%02d
`, dumped.Format("2006-01-02"), dumped.Hour(), dumped.Minute(), dumped.Second())
	return fileAt(nginx, "application/sql", []byte(b.String()), dumped.Add(time.Duration(h.num(1, 50))*time.Second))
}

// adminLoginPage is an admin sign-in form; its format verbs are the title (twice),
// the form's action and a CSRF token.
const adminLoginPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>Sign in · %s Admin</title>
<style>
body{margin:0;font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,sans-serif;background:#f4f5f7;color:#1f2933}
.login{max-width:360px;margin:12vh auto;padding:32px;background:#fff;border-radius:8px;box-shadow:0 2px 12px rgba(0,0,0,.08)}
h1{font-size:20px;margin:0 0 24px}
label{display:block;font-size:13px;margin:16px 0 6px}
input[type=text],input[type=password]{width:100%%;box-sizing:border-box;padding:10px;border:1px solid #cbd2d9;border-radius:4px}
button{margin-top:24px;width:100%%;padding:10px;border:0;border-radius:4px;background:#2f6fde;color:#fff;font-size:15px;cursor:pointer}
.foot{margin-top:20px;font-size:12px;color:#7b8794;text-align:center}
</style>
</head>
<body>
<main class="login">
<h1>%s Admin</h1>
<form method="post" action="%s" autocomplete="off">
<input type="hidden" name="_csrf" value="%s">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocapitalize="off" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" required>
<button type="submit">Sign in</button>
</form>
<p class="foot">Single sign-on unavailable? Contact IT support.</p>
</main>
</body>
</html>
`

// adminLogin is a sign-in page that posts to itself, or a JSON 401 under a
// path that reads like an API.
func adminLogin(h *hit) Answer {
	if h.apiStyle() {
		body := jsonBody(obj{{"error", "unauthorized"}, {"message", "admin session required"}}, "")
		return respond(nginx, 401, "application/json", body,
			[2]string{"www-authenticate", `Bearer realm="admin"`},
			[2]string{"cache-control", "no-store"})
	}
	title := html.EscapeString(h.app.title)
	body := fmt.Sprintf(adminLoginPage, title, title, html.EscapeString(h.path), h.word(43, alnum+"-_"))
	return respond(nginx, 200, "text/html; charset=utf-8", []byte(body),
		[2]string{"cache-control", "no-store"},
		[2]string{"x-frame-options", "DENY"})
}

// userList is a page of staff accounts and one service account with its API
// key.
func userList(h *hit) Answer {
	const rfc3339 = "2006-01-02T15:04:05Z"
	staff := h.people(0, "admin", "support", "analyst", "developer")
	last := staff[len(staff)-1]
	var data []obj
	for _, p := range staff {
		data = append(data, obj{
			{"id", p.id}, {"name", p.name}, {"email", p.email}, {"role", p.role}, {"status", "active"},
			{"mfa_enabled", p.role == "admin"}, {"created_at", p.created.Format(rfc3339)},
			{"last_login_at", p.lastActive.Format(rfc3339)},
		})
	}
	data = append(data, obj{
		{"id", last.id + h.num(1, 90)}, {"name", "svc-" + h.app.org + "-sync"},
		{"email", "svc-sync@" + h.app.domain}, {"role", "service"}, {"status", "active"}, {"mfa_enabled", false},
		{"created_at", last.created.Add(time.Duration(h.num(1, 15)) * day).Format(rfc3339)}, {"last_login_at", nil},
		{"api_key", h.token(KindAPIKey)},
	})
	body := jsonBody(obj{{"data", data}, {"page", 1}, {"per_page", 25}, {"total", len(data)}}, "")
	return respond(nginx, 200, "application/json; charset=utf-8", body, [2]string{"cache-control", "no-cache, private"})
}

// phpHeaders are the caching headers WordPress and phpMyAdmin send on their
// login pages.
var phpHeaders = [][2]string{
	{"expires", "Wed, 11 Jan 1984 05:00:00 GMT"},
	{"cache-control", "no-cache, must-revalidate, max-age=0, no-store, private"},
	{"x-frame-options", "SAMEORIGIN"},
}

// wpLoginPage is WordPress's login page; its format verbs are the site title and the
// site root (several times).
const wpLoginPage = `<!DOCTYPE html>
<html lang="en-US">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
<title>Log In &lsaquo; %[1]s &#8212; WordPress</title>
<meta name='robots' content='max-image-preview:large, noindex, noarchive' />
<link rel='stylesheet' id='dashicons-css' href='%[2]s/wp-includes/css/dashicons.min.css?ver=6.4.3' media='all' />
<link rel='stylesheet' id='buttons-css' href='%[2]s/wp-includes/css/buttons.min.css?ver=6.4.3' media='all' />
<link rel='stylesheet' id='forms-css' href='%[2]s/wp-admin/css/forms.min.css?ver=6.4.3' media='all' />
<link rel='stylesheet' id='login-css' href='%[2]s/wp-admin/css/login.min.css?ver=6.4.3' media='all' />
<meta name='referrer' content='strict-origin-when-cross-origin' />
<meta name="viewport" content="width=device-width" />
</head>
<body class="login no-js login-action-login wp-core-ui  locale-en-us">
<script type="text/javascript">
document.body.className = document.body.className.replace('no-js','js');
</script>
<div id="login">
<h1><a href="https://wordpress.org/">Powered by WordPress</a></h1>
<form name="loginform" id="loginform" action="%[2]s/wp-login.php" method="post">
<p>
<label for="user_login">Username or Email Address</label>
<input type="text" name="log" id="user_login" class="input" value="" size="20" autocapitalize="off" autocomplete="username" required="required" />
</p>
<div class="user-pass-wrap">
<label for="user_pass">Password</label>
<div class="wp-pwd">
<input type="password" name="pwd" id="user_pass" class="input password-input" value="" size="20" autocomplete="current-password" spellcheck="false" required="required" />
<button type="button" class="button button-secondary wp-hide-pw hide-if-no-js" data-toggle="0" aria-label="Show password">
<span class="dashicons dashicons-visibility" aria-hidden="true"></span>
</button>
</div>
</div>
<p class="forgetmenot"><input name="rememberme" type="checkbox" id="rememberme" value="forever"  /> <label for="rememberme">Remember Me</label></p>
<p class="submit">
<input type="submit" name="wp-submit" id="wp-submit" class="button button-primary button-large" value="Log In" />
<input type="hidden" name="redirect_to" value="%[2]s/wp-admin/" />
</p>
</form>
<p id="nav">
<a href="%[2]s/wp-login.php?action=lostpassword">Lost your password?</a>
</p>
<p id="backtoblog">
<a href="%[2]s/">&larr; Go to %[1]s</a>
</p>
</div>
</body>
</html>
`

func wpLogin(h *hit) Answer {
	body := fmt.Sprintf(wpLoginPage, html.EscapeString(h.app.title), html.EscapeString(h.prefix))
	return respond(php, 200, "text/html; charset=UTF-8", []byte(body), phpHeaders...)
}

// phpMyAdminPage is phpMyAdmin 5.2's login page; its format verbs are the form's
// action and its token.
const phpMyAdminPage = `<!DOCTYPE HTML>
<html lang="en" dir="ltr">
<head>
  <meta charset="utf-8">
  <meta name="referrer" content="no-referrer">
  <meta name="robots" content="noindex,nofollow">
  <meta http-equiv="X-UA-Compatible" content="IE=Edge">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="icon" href="favicon.ico" type="image/x-icon">
  <link rel="shortcut icon" href="favicon.ico" type="image/x-icon">
  <link rel="stylesheet" type="text/css" href="./themes/pmahomme/jquery/jquery-ui.css">
  <link rel="stylesheet" type="text/css" href="./themes/pmahomme/css/theme.css?v=5.2.1">
  <title>phpMyAdmin</title>
</head>
<body id="loginform">
<div class="container">
<div class="row">
<div class="col-12">
<a href="./url.php?url=https%%3A%%2F%%2Fwww.phpmyadmin.net%%2F" target="_blank" rel="noopener noreferrer" class="logo">
<img src="./themes/pmahomme/img/logo_right.png" id="imLogo" name="imLogo" alt="phpMyAdmin" border="0">
</a>
<h1>Welcome to <bdo dir="ltr" lang="en">phpMyAdmin</bdo></h1>
<div class="card mb-4">
<div class="card-header">Log in</div>
<div class="card-body">
<form method="post" id="login_form" action="%s" name="login_form" class="disableAjax hide js-show">
<fieldset class="pma-fieldset">
<div class="item"><label for="input_username">Username:</label> <input type="text" name="pma_username" id="input_username" value="" size="24" class="textfield" autocomplete="username"></div>
<div class="item"><label for="input_password">Password:</label> <input type="password" name="pma_password" id="input_password" value="" size="24" class="textfield" autocomplete="current-password"></div>
<input type="hidden" name="server" value="1">
</fieldset>
<fieldset class="pma-fieldset tblFooters">
<input class="btn btn-primary" value="Log in" type="submit" id="input_go">
<input type="hidden" name="route" value="/">
<input type="hidden" name="token" value="%s">
</fieldset>
</form>
</div>
</div>
</div>
</div>
</div>
</body>
</html>
`

// phpMyAdmin is phpMyAdmin's login page; it posts to itself.
func phpMyAdmin(h *hit) Answer {
	body := fmt.Sprintf(phpMyAdminPage, html.EscapeString(h.path), h.word(32, lowerHex))
	return respond(php, 200, "text/html; charset=utf-8", []byte(body), phpHeaders...)
}

func awsCredentials(h *hit) Answer {
	body := fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\nregion = eu-west-1\n\n"+
		"[%s-prod-deploy]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
		h.token(KindAWSKey), h.awsSecret(), h.app.org, h.token(KindAWSKey), h.awsSecret())
	return h.file(nginx, "text/plain", []byte(body))
}

func configJSON(h *hit) Answer {
	body := obj{
		{"env", "production"},
		{"port", 8080},
		{"log_level", "info"},
		{"database", obj{{"url", h.token(KindConnectionString)}, {"pool_size", 20}, {"ssl", true}}},
		{"redis", obj{{"url", "redis://redis-master.prod.svc.cluster.local:6379/0"}}},
		{"auth", obj{{"jwt_secret", h.token(KindSecret)}, {"token_ttl", "1h"}, {"issuer", "https://auth." + h.app.domain}}},
		{"payments", obj{{"provider", "stripe"}, {"api_key", h.token(KindAPIKey)}}},
		{"features", obj{{"legacy_v0", true}, {"bulk_export", true}}},
	}
	return h.file(nginx, "application/json", jsonBody(body, "  "))
}

func credentialsJSON(h *hit) Answer {
	body := obj{
		{"service", h.app.slug},
		{"username", "svc-" + h.app.org},
		{"password", h.token(KindPassword)},
		{"api_key", h.token(KindAPIKey)},
		{"token_url", "https://auth." + h.app.domain + "/oauth/token"},
	}
	return h.file(nginx, "application/json", jsonBody(body, "  "))
}

// sshKey is an OpenSSH private key: the real header and key type, then
// material that does not decode to a usable key.
func sshKey(h *hit) Answer {
	const head = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAABlwAAAAdzc2gtcn" +
		"NhAAAAAwEAAQAAAYEA"
	blob := head + h.word(2499, b64) + "=" // 2588 characters, as base64 wants
	var b strings.Builder
	b.WriteString("-----BEGIN OPENSSH PRIVATE KEY-----\n")
	for len(blob) > 70 {
		b.WriteString(blob[:70] + "\n")
		blob = blob[70:]
	}
	b.WriteString(blob + "\n-----END OPENSSH PRIVATE KEY-----\n")
	return h.file(nginx, "application/octet-stream", []byte(b.String()))
}

// serverStatus is Apache's mod_status page; one request in flight carries an
// access token in its query.
func serverStatus(h *hit) Answer {
	restart := h.ago(2*day, 30*day)
	up := h.now.Sub(restart)
	accesses := int(up.Seconds()) * h.num(2, 9)
	const long = "Monday, 02-Jan-2006 15:04:05 MST"
	var b strings.Builder
	fmt.Fprintf(&b, `<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
<html><head>
<title>Apache Status</title>
</head><body>
<h1>Apache Server Status for localhost (via 127.0.0.1)</h1>

<dl><dt>Server Version: Apache/2.4.57 (Debian) OpenSSL/3.0.11</dt>
<dt>Server MPM: event</dt>
<dt>Server Built: 2023-04-13T13:21:38
</dt></dl><hr /><dl>
<dt>Current Time: %s</dt>
<dt>Restart Time: %s</dt>
<dt>Parent Server Config. Generation: %d</dt>
<dt>Parent Server MPM Generation: %d</dt>
<dt>Server uptime:  %d days %d hours %d minutes %d seconds</dt>
<dt>Server load: %.2f %.2f %.2f</dt>
<dt>Total accesses: %d - Total Traffic: %.1f GB - Total Duration: %d</dt>
<dt>3 requests currently being processed, %d idle workers</dt>
</dl><pre>___W_____K________W______K__W_____.............................</pre>
<p>Scoreboard Key:<br />
"<b><code>_</code></b>" Waiting for Connection,
"<b><code>S</code></b>" Starting up,
"<b><code>R</code></b>" Reading Request,<br />
"<b><code>W</code></b>" Sending Reply,
"<b><code>K</code></b>" Keepalive (read),
"<b><code>.</code></b>" Open slot with no current process<br />
</p>

<table border="0"><tr><th>Srv</th><th>PID</th><th>Acc</th><th>M</th><th>CPU
</th><th>SS</th><th>Req</th><th>Dur</th><th>Conn</th><th>Child</th><th>Slot</th><th>Client</th><th>Protocol</th><th>VHost</th><th>Request</th></tr>

`, h.now.Format(long), restart.Format(long), h.num(2, 12), h.num(1, 11),
		int(up.Hours())/24, int(up.Hours())%24, int(up.Minutes())%60, int(up.Seconds())%60,
		float64(h.num(5, 90))/100, float64(h.num(5, 90))/100, float64(h.num(5, 90))/100,
		accesses, float64(accesses)*7/1e6, accesses*h.num(20, 60), h.num(60, 90))
	requests := []string{
		"GET " + h.base + "/v0/orders/" + strconv.Itoa(h.num(10000, 99999)) + " HTTP/1.1",
		"GET " + h.base + "/admin/export?format=csv&access_token=" + h.token(KindToken) + " HTTP/1.1",
		"GET " + h.path + " HTTP/1.1",
		"POST " + h.base + "/internal/users/sync HTTP/1.1",
	}
	pid := h.num(1200, 30000)
	for i, req := range requests {
		mode := "W"
		if i == 3 {
			mode = "K"
		}
		fmt.Fprintf(&b, "<tr><td><b>%d-%d</b></td><td>%d</td><td>%d/%d/%d</td><td><b>%s</b>\n</td><td>%.2f</td><td>%d</td><td>%d</td><td>%d</td><td>%.1f</td><td>%.2f</td><td>%.2f</td><td>10.0.%d.%d</td><td>http/1.1</td><td nowrap>localhost:80</td><td nowrap>%s</td></tr>\n\n",
			i, h.num(1, 9), pid+i*h.num(1, 40), h.num(0, 4), h.num(10, 900), h.num(1000, 90000), mode,
			float64(h.num(1, 900))/100, h.num(0, 3), h.num(0, 900), h.num(100, 9000000), float64(h.num(0, 90))/10,
			float64(h.num(1, 9000))/100, float64(h.num(1000, 90000))/100, h.num(0, 9), h.num(2, 250), html.EscapeString(req))
	}
	b.WriteString(`</table>
<hr /> <table>
 <tr><th>Srv</th><td>Child Server number - generation</td></tr>
 <tr><th>PID</th><td>OS process ID</td></tr>
 <tr><th>Acc</th><td>Number of accesses this connection / this child / this slot</td></tr>
 <tr><th>M</th><td>Mode of operation</td></tr>
 <tr><th>CPU</th><td>CPU usage, number of seconds</td></tr>
 <tr><th>SS</th><td>Seconds since beginning of most recent request</td></tr>
 <tr><th>Req</th><td>Milliseconds required to process most recent request</td></tr>
 <tr><th>Dur</th><td>Sum of milliseconds required to process all requests</td></tr>
 <tr><th>Conn</th><td>Kilobytes transferred this connection</td></tr>
 <tr><th>Child</th><td>Megabytes transferred this child</td></tr>
 <tr><th>Slot</th><td>Total megabytes transferred this slot</td></tr>
 </table>
<hr />
<address>Apache/2.4.57 (Debian) Server at localhost Port 80</address>
</body></html>
`)
	return respond(apache, 200, "text/html; charset=ISO-8859-1", []byte(b.String()))
}

// webConfig is an ASP.NET web.config with a connection string and an API key.
func webConfig(h *hit) Answer {
	conn := h.token(KindConnectionString)
	provider := "System.Data.SqlClient"
	switch {
	case strings.HasPrefix(conn, "postgres"):
		provider = "Npgsql"
	case strings.HasPrefix(conn, "mysql"):
		provider = "MySql.Data.MySqlClient"
	}
	body := fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <connectionStrings>
    <add name="DefaultConnection" connectionString="%s" providerName="%s" />
  </connectionStrings>
  <appSettings>
    <add key="Environment" value="Production" />
    <add key="PaymentsApiKey" value="%s" />
    <add key="SmtpHost" value="smtp.office365.com" />
    <add key="EnableLegacyV0" value="true" />
  </appSettings>
  <system.web>
    <compilation debug="false" targetFramework="4.8" />
    <httpRuntime targetFramework="4.8" maxRequestLength="51200" />
    <customErrors mode="RemoteOnly" />
  </system.web>
  <system.webServer>
    <httpErrors errorMode="DetailedLocalOnly" />
    <modules runAllManagedModulesForAllRequests="true" />
  </system.webServer>
</configuration>
`, xmlAttr(conn), provider, xmlAttr(h.token(KindAPIKey)))
	return h.file(iis, "text/xml", []byte(body))
}

// htpasswd has hashed entries and one written with htpasswd -p, in plain
// text.
func htpasswd(h *hit) Answer {
	body := fmt.Sprintf("admin:$apr1$%s$%s\ndeploy:%s\n%s:%s\n",
		h.word(8, crypt64), h.word(22, crypt64), h.token(KindPassword), h.app.org, "$2y$05$"+h.word(53, crypt64))
	return h.file(apache, "text/plain", []byte(body))
}

// emptyPage is an empty page of a cursor-paginated JSON API with a cursor to
// the next one.
func emptyPage(h *hit) Answer {
	cursor := h.clean(func() string {
		return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"id":%d}`, h.num(10000, 9999999)))
	})
	body := jsonBody(obj{{"data", []any{}}, {"next_cursor", cursor}}, "")
	return respond(nginx, 200, "application/json; charset=utf-8", body, [2]string{"cache-control", "no-cache, private"})
}
