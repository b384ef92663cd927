package detect

import (
	"encoding/base64"
	"encoding/json"
	"hash/maphash"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/dgraph-io/ristretto/v2"
)

// HeaderReader reads a request header by its lower-case name. The envoy
// package implements it over Envoy's header list without building a map.
type HeaderReader interface {
	Header(name string) string
}

// IdentitySources says where an API's clients carry their identities.
type IdentitySources struct {
	// TokenHeader carries the bearer token ("authorization" by default; the
	// "Bearer " scheme is stripped).
	TokenHeader string `yaml:"token_header" json:"token_header"`
	// APIKeyHeader carries the API key ("x-api-key" by default).
	APIKeyHeader string `yaml:"api_key_header" json:"api_key_header"`
	// APIKeyQuery names a query parameter carrying the API key (off when empty).
	APIKeyQuery string `yaml:"api_key_query" json:"api_key_query,omitempty"`
	// Cookie names the session cookie. When empty, the first of the common
	// session cookie names (session, sessionid, JSESSIONID, PHPSESSID,
	// connect.sid, sid) is used.
	Cookie string `yaml:"cookie" json:"cookie,omitempty"`
	// UsernameHeader carries the user name as set by a gateway (off when empty).
	UsernameHeader string `yaml:"username_header" json:"username_header,omitempty"`
	// UsernameClaim is the JWT claim naming the user ("sub" by default). The
	// token is read without verifying its signature: the gateway verifies it.
	UsernameClaim string `yaml:"username_claim" json:"username_claim"`
}

// WithDefaults fills the empty fields that have defaults.
func (s IdentitySources) WithDefaults() IdentitySources {
	if s.TokenHeader == "" {
		s.TokenHeader = "authorization"
	}
	if s.APIKeyHeader == "" {
		s.APIKeyHeader = "x-api-key"
	}
	if s.UsernameClaim == "" {
		s.UsernameClaim = "sub"
	}
	s.TokenHeader = strings.ToLower(s.TokenHeader)
	s.APIKeyHeader = strings.ToLower(s.APIKeyHeader)
	s.UsernameHeader = strings.ToLower(s.UsernameHeader)
	return s
}

var defaultSessionCookies = []string{"session", "sessionid", "JSESSIONID", "PHPSESSID", "connect.sid", "sid"}

// Extractor finds a request's identities. It is safe for concurrent use.
type Extractor struct {
	fp          *Fingerprinter
	trustedHops int
	seed        maphash.Seed
	check       maphash.Seed
	claims      *ristretto.Cache[uint64, claimEntry]
}

type claimEntry struct {
	check    uint64
	username string
}

// NewExtractor returns an Extractor. trustedHops is the number of trusted
// proxies, Envoy included, that appended to X-Forwarded-For. The claim cache
// remembers the user name read from each JWT so that a token is decoded once.
func NewExtractor(fp *Fingerprinter, trustedHops int) (*Extractor, error) {
	c, err := ristretto.NewCache(&ristretto.Config[uint64, claimEntry]{
		NumCounters:        1 << 17,
		MaxCost:            1 << 14,
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, err
	}
	return &Extractor{fp: fp, trustedHops: trustedHops, seed: maphash.MakeSeed(), check: maphash.MakeSeed(), claims: c}, nil
}

// Close releases the claim cache.
func (x *Extractor) Close() { x.claims.Close() }

// Fingerprinter returns the extractor's fingerprinter.
func (x *Extractor) Fingerprinter() *Fingerprinter { return x.fp }

// ClientIP picks the client address: with trusted hops N ≥ 1, the N-th
// address from the right of X-Forwarded-For; otherwise, or when the header
// has fewer than N valid entries, x-envoy-external-address; else the
// connection's source address. Invalid addresses are skipped.
func (x *Extractor) ClientIP(h HeaderReader, source string) string {
	if x.trustedHops > 0 {
		if ip := nthFromRight(h.Header("x-forwarded-for"), x.trustedHops); ip != "" {
			return ip
		}
	}
	if ip := canonicalIP(h.Header("x-envoy-external-address")); ip != "" {
		return ip
	}
	return canonicalIP(source)
}

// nthFromRight returns the n-th comma-separated address from the right, or ""
// when there are fewer than n entries or that entry is not an address.
func nthFromRight(xff string, n int) string {
	end := len(xff)
	for i := 1; end >= 0; i++ {
		start := strings.LastIndexByte(xff[:end], ',')
		if i == n {
			return canonicalIP(xff[start+1 : end])
		}
		if start < 0 {
			return ""
		}
		end = start
	}
	return ""
}

// canonicalIP parses an address, with or without port or brackets
// ("1.2.3.4", "1.2.3.4:80", "::1", "[::1]", "[::1]:80"), and returns its
// canonical text, or "" when s is not an address. When the canonical text is
// part of s, as it usually is ("1.2.3.4:80"), that part is returned, so the
// common cases do not allocate.
func canonicalIP(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return ""
	}
	// Pick the parser by shape: a failed parse allocates its error.
	var a netip.Addr
	var err error
	switch {
	case s[0] == '[' && s[len(s)-1] == ']':
		a, err = netip.ParseAddr(s[1 : len(s)-1])
	case s[0] == '[' || strings.Count(s, ":") == 1: // [v6]:port, v4:port
		var ap netip.AddrPort
		ap, err = netip.ParseAddrPort(s)
		a = ap.Addr()
	default:
		a, err = netip.ParseAddr(s)
	}
	if err != nil {
		return ""
	}
	var buf [64]byte
	b := a.WithZone("").Unmap().AppendTo(buf[:0])
	n := len(b)
	switch {
	case n <= len(s) && string(b) == s[:n]: // v4, v4:port, v6
		return s[:n]
	case n < len(s) && s[0] == '[' && string(b) == s[1:n+1]: // [v6]:port
		return s[1 : n+1]
	case n <= len(s) && string(b) == s[len(s)-n:]: // ::ffff:v4
		return s[len(s)-n:]
	}
	return string(b)
}

// Extract fills ids from the request headers and query string, for an API
// whose clients carry identities as src says. The client IP must already be
// in ids[KindIP]; every other kind is overwritten, with "" when absent.
func (x *Extractor) Extract(src *IdentitySources, h HeaderReader, query string, ids *Identities) {
	ids[KindToken], ids[KindAPIKey], ids[KindCookie], ids[KindUsername] = "", "", "", ""
	token := h.Header(src.TokenHeader)
	basicUser := ""
	if token != "" {
		scheme, rest, _ := strings.Cut(token, " ")
		switch {
		case strings.EqualFold(scheme, "bearer"):
			// A bare "Bearer" carries no credential: it must not make all
			// such clients one token identity.
			token = strings.TrimSpace(rest)
		case strings.EqualFold(scheme, "basic"):
			if rest = strings.TrimSpace(rest); rest == "" {
				token = ""
			} else {
				basicUser = basicUsername(rest)
			}
		}
		if token != "" {
			ids[KindToken] = x.fp.Fingerprint(token)
		}
	}
	key := ""
	if src.APIKeyHeader != "" {
		key = h.Header(src.APIKeyHeader)
	}
	if key == "" && src.APIKeyQuery != "" && query != "" {
		key = queryParam(query, src.APIKeyQuery)
	}
	if key != "" {
		ids[KindAPIKey] = x.fp.Fingerprint(key)
	}
	if c := h.Header("cookie"); c != "" {
		if v := sessionCookie(c, src.Cookie); v != "" {
			ids[KindCookie] = x.fp.Fingerprint(v)
		}
	}
	user := ""
	if src.UsernameHeader != "" {
		user = strings.TrimSpace(h.Header(src.UsernameHeader))
	}
	if user == "" && basicUser != "" {
		user = basicUser
	}
	if user == "" && token != "" && strings.Count(token, ".") == 2 {
		user = x.jwtClaim(token, src.UsernameClaim)
	}
	ids[KindUsername] = headerUsername(user)
}

// headerUsername is a user name read from a header, Basic credentials or a
// JWT claim, made the same as a login body's (NormalizeUsername): cut to
// MaxUsername bytes at a character boundary, and lower-cased when it looks
// like an e-mail address, so that the account Admin@X.com signs in as and
// the one its token names are one identity. Most names pass unchanged,
// without a copy.
func headerUsername(user string) string {
	if len(user) > MaxUsername {
		user = string(cutRunes([]byte(user), MaxUsername))
	}
	if strings.IndexByte(user, '@') < 0 {
		return user
	}
	for i := range len(user) {
		if c := user[i]; c >= 'A' && c <= 'Z' || c >= utf8.RuneSelf {
			return string(cutRunes([]byte(strings.ToLower(user)), MaxUsername))
		}
	}
	return user
}

// jwtClaim returns a string claim of a JWT, read without verification and
// remembered per token.
func (x *Extractor) jwtClaim(token, claim string) string {
	k := maphash.String(x.seed, claim) ^ maphash.String(x.seed, token)
	chk := maphash.String(x.check, token)
	if e, ok := x.claims.Get(k); ok && e.check == chk {
		return e.username
	}
	user := decodeClaim(token, claim)
	x.claims.Set(k, claimEntry{check: chk, username: user}, 1)
	return user
}

// decodeClaim returns a string claim of the JWT's payload, or "".
func decodeClaim(token, claim string) string {
	_, rest, _ := strings.Cut(token, ".")
	payload, _, _ := strings.Cut(rest, ".")
	if len(payload) == 0 || len(payload) > 8192 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(payload, "="))
	if err != nil {
		return ""
	}
	var claims map[string]json.RawMessage
	if json.Unmarshal(raw, &claims) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(claims[claim], &s) != nil {
		return ""
	}
	return strings.Clone(s)
}

func basicUsername(b64 string) string {
	if len(b64) > 1024 {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return ""
	}
	user, _, ok := strings.Cut(string(raw), ":")
	if !ok {
		return ""
	}
	return user
}

// queryParam returns the raw value of the first query parameter named name.
// Values are compared undecoded except for '+' and '%XX', which are decoded
// only when present.
func queryParam(query, name string) string {
	for query != "" {
		var kv string
		kv, query, _ = strings.Cut(query, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k == name {
			if strings.ContainsAny(v, "%+") {
				if u, err := unescapeQuery(v); err == nil {
					return u
				}
			}
			return v
		}
	}
	return ""
}

func unescapeQuery(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			b.WriteByte(' ')
		case '%':
			if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
				return "", errBadEscape
			}
			b.WriteByte(byte(unhex(s[i+1])<<4 | unhex(s[i+2])))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

type constErr string

func (e constErr) Error() string { return string(e) }

const errBadEscape = constErr("bad percent escape")

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// sessionCookie returns the value of the named cookie, or of the first common
// session cookie when name is empty.
func sessionCookie(header, name string) string {
	if name != "" {
		return cookieValue(header, name)
	}
	for _, n := range defaultSessionCookies {
		if v := cookieValue(header, n); v != "" {
			return v
		}
	}
	return ""
}

func cookieValue(header, name string) string {
	for header != "" {
		var part string
		part, header, _ = strings.Cut(header, ";")
		part = strings.TrimSpace(part)
		k, v, ok := strings.Cut(part, "=")
		if ok && k == name {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// PasswordFingerprint returns the fingerprint of the password of a Basic
// authorization in the token header, or "". It is compared with
// honeytokens only: a password is no identity.
func (x *Extractor) PasswordFingerprint(src *IdentitySources, h HeaderReader) string {
	v := h.Header(src.TokenHeader)
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "basic") {
		return ""
	}
	rest = strings.TrimSpace(rest)
	if rest == "" || len(rest) > 1024 {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return ""
	}
	_, pass, ok := strings.Cut(string(raw), ":")
	if !ok || pass == "" {
		return ""
	}
	return x.fp.Fingerprint(pass)
}
