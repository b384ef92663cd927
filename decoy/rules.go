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
	"net/url"
	"path"
	"strings"
	"time"
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

// maxPath is the longest path a decoy answers; a longer one gets nginx's
// 414, as from a front server with 2 KiB header buffers.
const maxPath = 2048

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
	if len(path) > maxPath {
		// Pages reflect the path (the actuator's links twenty times): a
		// long one would make a large answer. nginx refuses it first.
		return respond(nginx, 414, "text/html", render("uri-too-large.html.tmpl", nil))
	}
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
