package decoy

// The seeded generator: every value of an answer that is not a minted token
// (hashes, ids, names, dates, counters) is drawn from a ChaCha8 stream seeded
// by the request and the tokens minted so far, so an answer is a pure
// function of its inputs and two hits never share a planted value.

import (
	"crypto/sha256"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

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
	Slug   string // shopapi-bid
	Org    string // shopapi
	DB     string // shopapi_bid
	Title  string // Shopapi Bid
	Domain string // shopapi.corp
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
		Slug:   strings.Join(parts, "-"),
		Org:    parts[0],
		DB:     strings.Join(parts, "_"),
		Title:  strings.Join(words, " "),
		Domain: parts[0] + ".corp",
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

// awsSecret returns a secret access key to go with a minted access key id.
func (h *hit) awsSecret() string { return h.word(40, b64) }

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
			email:      strings.ToLower(first+"."+last) + "@" + h.app.Domain,
			role:       role,
			created:    created,
			lastActive: h.ago(time.Hour, 20*day),
		}
		created = created.Add(time.Duration(h.num(10, 120))*day + time.Duration(h.num(0, 86399))*time.Second)
	}
	return out
}

func (h *hit) bcrypt() string { return "$2b$12$" + h.word(53, crypt64) }
