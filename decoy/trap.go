package decoy

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// DefaultBuiltin are the enticing paths, relative to each API's base path,
// that decoy_builtin adds.
var DefaultBuiltin = []string{
	"/admin", "/internal", "/.env", "/.git/config", "/actuator/env", "/swagger.json",
	"/debug/pprof", "/backup.sql", "/v0",
}

// Config is what the trap needs from the configuration.
type Config struct {
	// Builtin adds DefaultBuiltin to every configured API.
	Builtin bool
	// TTL is how long every identity of a hit stays blocked.
	TTL time.Duration
	// APIs are the configured APIs and their own decoy paths (relative to
	// their base paths).
	APIs []APIDecoys
	// DecoyAPIs are whole fake APIs: every path under them is a decoy.
	DecoyAPIs []DecoyAPI
	// RealEndpoint reports whether traffic showed a path of an API to be a
	// real endpoint that answered with success (optional).
	RealEndpoint func(api *detect.API, path string) bool
}

// APIDecoys are one configured API's decoys.
type APIDecoys struct {
	API   *detect.API
	Paths []string
}

// DecoyAPI is an out-of-context decoy API.
type DecoyAPI struct {
	Name     string
	Hosts    []string
	BasePath string
	// Response, when set, is what every call gets; otherwise a plausible
	// answer for the path.
	Response *Answer
	Delay    time.Duration
}

// Actions are the trap's dependencies: the block list, attack records.
type Actions struct {
	Block    func(detect.Entry)
	Report   func(*detect.Attack)
	AttackID func() string
	Now      func() time.Time
}

// decoy is one decoy path, or a whole decoy API (prefix).
type decoy struct {
	api    string
	path   string // full path, or the base path of a decoy API
	whole  *DecoyAPI
	hits   atomic.Int64
	last   atomic.Int64 // unix nanoseconds
	inAPI  *detect.API
	status atomic.Bool // disabled: traffic showed it to be a real endpoint
}

// Honeytoken is a fake credential planted in a decoy answer.
type Honeytoken struct {
	Kind     string    `json:"kind"`
	API      string    `json:"api"`
	Path     string    `json:"path"`
	MintedAt time.Time `json:"minted_at"`
	// HitID is the attack that the hit which minted it was recorded as.
	HitID string `json:"hit_id"`
}

// Trap answers decoy calls, plants honeytokens, and turns every touch of
// either into blocked identities and a decoy attack record.
type Trap struct {
	act    Actions
	ttl    time.Duration
	byAPI  map[*detect.API]map[string]*decoy // lower-cased full path
	apis   []*decoy                          // decoy APIs
	all    []*decoy
	tokens sync.Map // fingerprint → *Honeytoken
	count  atomic.Int64
	fp     *detect.Fingerprinter
	// OnReal is told when traffic shows a decoy to be a real endpoint.
	OnReal func(api, path string, status int)
	// Journal keeps planted honeytokens across restarts (optional);
	// OnJournalError hears of its failures.
	Journal        HoneytokenJournal
	OnJournalError func(error)
}

// HoneytokenJournal keeps honeytokens durably: one planted before a restart
// must still give its user away after it.
type HoneytokenJournal interface {
	PutHoneytoken(fingerprint string, h *Honeytoken) error
}

// Restore installs a honeytoken read back from the journal.
func (t *Trap) Restore(fingerprint string, h *Honeytoken) {
	if _, loaded := t.tokens.LoadOrStore(fingerprint, h); !loaded {
		t.count.Add(1)
	}
}

// EachHoneytoken calls f for every planted honeytoken (the shared state of
// several replicas re-seeds and reconciles from it).
func (t *Trap) EachHoneytoken(f func(fingerprint string, h *Honeytoken)) {
	t.tokens.Range(func(k, v any) bool {
		f(k.(string), v.(*Honeytoken))
		return true
	})
}

// AddHits adds hits to a decoy's count and moves its last hit forward to
// last (hits seen by other replicas); it reports whether the decoy exists.
func (t *Trap) AddHits(api, path string, n int64, last time.Time) bool {
	for _, d := range t.all {
		if d.api == api && d.path == path {
			d.hits.Add(n)
			if ln := last.UnixNano(); !last.IsZero() {
				for {
					cur := d.last.Load()
					if cur >= ln || d.last.CompareAndSwap(cur, ln) {
						break
					}
				}
			}
			return true
		}
	}
	return false
}

// RestoreHits sets a decoy's hit count and last hit, read back from storage.
func (t *Trap) RestoreHits(s Stats) {
	for _, d := range t.all {
		if d.api == s.API && d.path == s.Path {
			d.hits.Store(s.Hits)
			if s.LastHit != nil {
				d.last.Store(s.LastHit.UnixNano())
			}
		}
	}
}

// New builds the trap. A decoy that would trap a real client — on a login
// path, at or above an API's base path, inside another configured API —
// is an error naming it; built-in decoys that collide are left out.
func New(cfg Config, fp *detect.Fingerprinter, act Actions) (*Trap, error) {
	t := &Trap{act: act, ttl: cfg.TTL, byAPI: map[*detect.API]map[string]*decoy{}, fp: fp}
	if t.ttl <= 0 {
		t.ttl = 24 * time.Hour
	}
	if t.act.Now == nil {
		t.act.Now = time.Now
	}
	var errs []string
	for _, ad := range cfg.APIs {
		add := func(rel string, builtin bool) {
			full := join(ad.API.BasePath, rel)
			why := conflict(full, ad.API, cfg.APIs)
			if why == "" && cfg.RealEndpoint != nil && cfg.RealEndpoint(ad.API, full) {
				why = "is a real endpoint: traffic before this start got successful answers from it"
			}
			if why != "" {
				if !builtin {
					errs = append(errs, fmt.Sprintf("apis %s: decoy %q %s", ad.API.Name, rel, why))
				}
				return
			}
			m := t.byAPI[ad.API]
			if m == nil {
				m = map[string]*decoy{}
				t.byAPI[ad.API] = m
			}
			key := strings.ToLower(full)
			if _, dup := m[key]; dup {
				return
			}
			d := &decoy{api: ad.API.Name, path: full, inAPI: ad.API}
			m[key] = d
			t.all = append(t.all, d)
		}
		for _, p := range ad.Paths {
			add(p, false)
		}
		if cfg.Builtin {
			for _, p := range DefaultBuiltin {
				add(p, true)
			}
		}
	}
	for i := range cfg.DecoyAPIs {
		da := &cfg.DecoyAPIs[i]
		for _, ad := range cfg.APIs {
			if hostsOverlap(da.Hosts, ad.API.Hosts) && under(ad.API.BasePath, da.BasePath) {
				errs = append(errs, fmt.Sprintf("decoy_apis %s: base path %q would cover API %s (%s)", da.Name, da.BasePath, ad.API.Name, ad.API.BasePath))
			}
		}
		d := &decoy{api: da.Name, path: da.BasePath, whole: da}
		t.apis = append(t.apis, d)
		t.all = append(t.all, d)
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, fmt.Errorf("decoys that would trap real clients:\n  - %s", strings.Join(errs, "\n  - "))
	}
	return t, nil
}

// FullPath is the path a decoy rel of an API with base path base stands on.
func FullPath(base, rel string) string { return join(base, rel) }

func join(base, rel string) string {
	if !strings.HasPrefix(rel, "/") {
		rel = "/" + rel
	}
	full := rel
	if base != "/" {
		full = base + rel
	}
	for len(full) > 1 && strings.HasSuffix(full, "/") {
		full = full[:len(full)-1]
	}
	return full
}

// under reports whether path is base or below it.
func under(path, base string) bool {
	if base == "/" {
		return true
	}
	return strings.EqualFold(path, base) || len(path) > len(base) && strings.EqualFold(path[:len(base)], base) && path[len(base)] == '/'
}

func hostsOverlap(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, x := range a {
		for _, y := range b {
			if x == "*" || y == "*" || strings.EqualFold(x, y) {
				return true
			}
		}
	}
	return false
}

// conflict says why a decoy path would trap real clients, or "".
func conflict(full string, own *detect.API, all []APIDecoys) string {
	if strings.EqualFold(full, own.BasePath) {
		return "is the API's base path"
	}
	if own.MayBeLoginPath(full) {
		return fmt.Sprintf("is a login path (%s): every user who logs in would be blocked", full)
	}
	for _, other := range all {
		if other.API == own || !hostsOverlap(own.Hosts, other.API.Hosts) {
			continue
		}
		if under(other.API.BasePath, full) || under(full, other.API.BasePath) && len(other.API.BasePath) > len(own.BasePath) {
			return fmt.Sprintf("lies in API %s (%s)", other.API.Name, other.API.BasePath)
		}
	}
	return ""
}

// Hook is the enforcement hot path's decoy check: a call to a decoy, or
// a call carrying a honeytoken, is a hit. It does nothing (and allocates
// nothing) for any other call.
func (t *Trap) Hook(req *detect.Request) *detect.DecoyResponse {
	if d := t.match(req); d != nil {
		return t.hit(req, d, nil)
	}
	if t.count.Load() > 0 {
		if h := t.honeytoken(req); h != nil {
			return t.hit(req, nil, h)
		}
	}
	return nil
}

func (t *Trap) match(req *detect.Request) *decoy {
	for _, d := range t.apis {
		if under(req.Path, d.path) && hostMatch(d.whole.Hosts, req.Host) {
			return d
		}
	}
	if m := t.byAPI[req.API]; m != nil {
		if d := lookup(m, req.Path); d != nil && !d.status.Load() {
			return d
		}
	}
	return nil
}

// lookup finds path in m, case-insensitively, allocating only when the path
// has upper-case letters or a trailing slash.
func lookup(m map[string]*decoy, path string) *decoy {
	if d := m[path]; d != nil {
		return d
	}
	p := strings.TrimSuffix(strings.ToLower(path), "/")
	return m[p]
}

func hostMatch(hosts []string, host string) bool {
	if len(hosts) == 0 {
		return true
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	for _, h := range hosts {
		if h == "*" || strings.EqualFold(h, host) || strings.HasPrefix(h, "*.") && strings.HasSuffix(strings.ToLower(host), strings.ToLower(h[1:])) {
			return true
		}
	}
	return false
}

func (t *Trap) honeytoken(req *detect.Request) *Honeytoken {
	for _, v := range []string{req.Identities[detect.KindToken], req.Identities[detect.KindAPIKey], req.Identities[detect.KindCookie], req.PasswordFP} {
		if v == "" {
			continue
		}
		if h, ok := t.tokens.Load(v); ok {
			return h.(*Honeytoken)
		}
	}
	return nil
}

// hit acts on a decoy touch or a honeytoken use: every identity of the
// request goes on the block list (unless the API only detects), an attack
// of type decoy is recorded, and the caller gets the decoy's answer.
func (t *Trap) hit(req *detect.Request, d *decoy, h *Honeytoken) *detect.DecoyResponse {
	now := t.act.Now()
	apiName, path := "", req.Path
	if req.API != nil && !req.API.Discovered {
		apiName = req.API.Name
	}
	if d != nil {
		d.hits.Add(1)
		d.last.Store(now.UnixNano())
		apiName = d.api
	}
	// The enforcer's rule: a decoy hit blocks unless the API only detects.
	block := detect.Blocks(req.API, detect.ReasonDecoy)
	a := &detect.Attack{
		ID: t.act.AttackID(), Type: detect.AttackDecoy, API: apiName,
		FirstSeen: now.UTC(), DetectedAt: now.UTC(),
		Request: &detect.AttackRequest{Method: req.Method, Host: req.Host, Path: path, UserAgent: req.UserAgent},
	}
	kind, id := primary(&req.Identities)
	a.Identity = detect.AttackIdentity{Kind: kind.String(), Value: id}
	if ip := req.Identities[detect.KindIP]; ip != "" {
		a.ClientIPs = []string{ip}
	}
	if h != nil {
		a.Variables = []detect.VariableValue{{Name: "honeytoken", Observed: 1, Tn: 0, Tx: 0}}
		a.Honeytoken = &detect.HoneytokenUse{Kind: h.Kind, MintedOn: h.API + " " + h.Path, MintedAt: h.MintedAt, MintedBy: h.HitID}
	} else {
		a.Variables = []detect.VariableValue{{Name: "decoy_hits", Observed: 1, Tn: 0, Tx: 0}}
	}
	until := now.Add(t.ttl).UTC()
	if block {
		a.Action = detect.ActionBlocked
		a.BlockedUntil = &until
	} else {
		a.Action = detect.ActionWouldBlock
	}
	// The record exists before the blocks it explains take effect.
	if t.act.Report != nil {
		t.act.Report(a)
	}
	if block && t.act.Block != nil {
		for k, v := range req.Identities {
			if v != "" {
				t.act.Block(detect.Entry{Kind: detect.Kind(k), Value: strings.Clone(v), Reason: "decoy " + a.ID, AttackID: a.ID, CreatedAt: now, ExpiresAt: until})
			}
		}
	}
	return t.answer(req, d, h, a.ID, now)
}

func primary(ids *detect.Identities) (detect.Kind, string) {
	for _, k := range []detect.Kind{detect.KindToken, detect.KindAPIKey, detect.KindCookie, detect.KindUsername, detect.KindIP} {
		if ids[k] != "" {
			return k, ids[k]
		}
	}
	return detect.KindIP, ""
}

// answer builds the decoy's answer, planting fresh honeytokens.
func (t *Trap) answer(req *detect.Request, d *decoy, h *Honeytoken, hitID string, now time.Time) *detect.DecoyResponse {
	if h != nil {
		// A honeytoken used on a real endpoint: the answer a real API gives
		// a revoked credential.
		return &detect.DecoyResponse{Status: 401, Headers: [][2]string{{"content-type", "application/json"}, {"www-authenticate", `Bearer error="invalid_token"`}},
			Body: []byte(`{"error":"invalid_token","error_description":"The access token expired"}`)}
	}
	apiName, base := d.api, "/"
	if d.inAPI != nil {
		base = d.inAPI.BasePath
	}
	if d.whole != nil {
		base = d.whole.BasePath
		if r := d.whole.Response; r != nil {
			return &detect.DecoyResponse{Status: r.Status, Headers: r.Headers, Body: r.Body, Delay: d.whole.Delay}
		}
	}
	mint := func(kind string) string {
		v := mintValue(kind, req.Host, now)
		fp := t.fp.Fingerprint(honeytokenSecret(kind, v))
		h := &Honeytoken{Kind: kind, API: apiName, Path: strings.Clone(req.Path), MintedAt: now, HitID: hitID}
		if t.Journal != nil {
			if err := t.Journal.PutHoneytoken(fp, h); err != nil && t.OnJournalError != nil {
				t.OnJournalError(err)
			}
		}
		t.tokens.Store(fp, h)
		t.count.Add(1)
		return v
	}
	ans := AnswerAt(req.Path, apiName, base, now, mint)
	var delay time.Duration
	if d.whole != nil {
		delay = d.whole.Delay
	}
	return &detect.DecoyResponse{Status: ans.Status, Headers: ans.Headers, Body: ans.Body, Delay: delay}
}

// honeytokenSecret is the part of a minted value a client would present:
// the password inside a connection string, the whole value otherwise.
func honeytokenSecret(kind, v string) string {
	if kind == "connection_string" {
		if at := strings.LastIndexByte(v, '@'); at > 0 {
			if c := strings.LastIndexByte(v[:at], ':'); c > 0 {
				return v[c+1 : at]
			}
		}
	}
	return v
}

const (
	keyAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	base62      = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	awsAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
)

func randomString(n int, alphabet string) string {
	for {
		b := make([]byte, n)
		for i := range b {
			k, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
			b[i] = alphabet[k.Int64()]
		}
		if s := string(b); !hasTell(s) {
			return s
		}
	}
}

// mintValue makes a fresh credential that passes the checks an attacker
// makes on one of its kind before trying it: the prefix, length, alphabet
// and checksum of the key it imitates; for a JWT, a header and claims that
// decode to JSON and a signature as long as its algorithm's. host is the
// host the decoy was called on (the issuer of a JWT), now the time of the
// hit.
func mintValue(kind, host string, now time.Time) string {
	switch kind {
	case KindAPIKey: // a Stripe secret key
		return "sk_live_" + randomString(24, keyAlphabet)
	case KindToken, KindJWT:
		return mintJWT(host, now)
	case KindGitHubToken:
		return githubToken(randomString(30, base62))
	case KindSecret: // a signing secret, as openssl rand -hex 32 makes one
		return randomString(64, "0123456789abcdef")
	case KindPassword:
		return randomString(6, keyAlphabet) + "!" + randomString(6, keyAlphabet)
	case KindAWSKey:
		return "AKIA" + randomString(16, awsAlphabet)
	case KindConnectionString:
		return "postgres://app_rw:" + randomString(20, keyAlphabet) + "@db-primary.internal:5432/shop"
	}
	return randomString(32, keyAlphabet)
}

// githubToken makes a GitHub personal access token from its 30 random
// characters: ghp_, them, and the CRC-32 of them in 6 base62 digits, which
// is what GitHub's own secret scanning checks.
func githubToken(random string) string {
	sum := crc32.ChecksumIEEE([]byte(random))
	var check [6]byte
	for i := len(check) - 1; i >= 0; i-- {
		check[i] = base62[sum%62]
		sum /= 62
	}
	return "ghp_" + random + string(check[:])
}

// jwtHeader is {"alg":"HS256","typ":"JWT"}, base64url-encoded.
const jwtHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

// mintJWT makes an HS256 access token issued a few minutes before now for
// an hour, with the claims an identity provider puts in one. Its subject is
// a fresh UUID, never a user's name: a client presenting the token claims
// that subject, and the block that follows must not fall on a real user.
func mintJWT(host string, now time.Time) string {
	for {
		ago, _ := rand.Int(rand.Reader, big.NewInt(25*60))
		iat := now.Unix() - 60 - ago.Int64()
		var claims []byte
		claims = append(claims, `{"sub":"`...)
		claims = append(claims, uuid()...)
		if iss := issuer(host); iss != "" {
			claims = append(claims, `","iss":"`...)
			claims = append(claims, iss...)
		}
		claims = append(claims, `","iat":`...)
		claims = strconv.AppendInt(claims, iat, 10)
		claims = append(claims, `,"exp":`...)
		claims = strconv.AppendInt(claims, iat+3600, 10)
		claims = append(claims, `,"jti":"`...)
		claims = append(claims, uuid()...)
		claims = append(claims, `","scope":"read write"}`...)
		var sig [sha256.Size]byte // HS256 signs with HMAC-SHA-256
		_, _ = rand.Read(sig[:])
		t := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(claims) + "." + base64.RawURLEncoding.EncodeToString(sig[:])
		if !hasTell(t) {
			return t
		}
	}
}

// issuer returns the issuer claim for a decoy called on host: its
// https URL, or "" when host is no plain host name (or would reveal the
// trap).
func issuer(host string) string {
	h := strings.ToLower(host)
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	if h == "" || len(h) > 253 || hasTell(h) {
		return ""
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '.' && c != '-' {
			return ""
		}
	}
	return "https://" + h
}

// uuid returns a random (version 4) UUID.
func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// Stats is one decoy's hits.
type Stats struct {
	API     string     `json:"api"`
	Path    string     `json:"path"`
	Hits    int64      `json:"hits"`
	LastHit *time.Time `json:"last_hit"`
}

// Stats lists every decoy with its hits, by API then path.
func (t *Trap) Stats() []Stats {
	out := make([]Stats, 0, len(t.all))
	for _, d := range t.all {
		s := Stats{API: d.api, Path: d.path, Hits: d.hits.Load()}
		if n := d.last.Load(); n != 0 {
			lt := time.Unix(0, n).UTC()
			s.LastHit = &lt
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].API != out[j].API {
			return out[i].API < out[j].API
		}
		return out[i].Path < out[j].Path
	})
	return out
}

// Honeytokens returns how many honeytokens were planted.
func (t *Trap) Honeytokens() int64 { return t.count.Load() }

// Consume watches the pipeline for a decoy that traffic shows to be real:
// a would-be decoy hit (the API only detects) that the back end answered
// with success. Such a decoy is disabled and reported, so that it never
// traps a real client.
func (t *Trap) Consume(tx *detect.Transaction) {
	if tx.Reason != detect.ReasonDecoy || !tx.WouldBlock || tx.Status < 200 || tx.Status >= 300 {
		return
	}
	if m := t.byAPI[tx.API]; m != nil {
		if d := lookup(m, tx.Path); d != nil && d.status.CompareAndSwap(false, true) && t.OnReal != nil {
			t.OnReal(d.api, d.path, tx.Status)
		}
	}
}
