package scenario

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/vigil-project/vigil/server/demo/shop"
)

// The stealth preset's benign side: login names in request bodies, crawlers
// and integrations behind shared egress addresses.

// Benign populations, as Scenario.Population names them.
const (
	PopUser        = "user"
	PopPowerUser   = "power_user"
	PopNewUser     = "new_user"
	PopNAT         = "nat"
	PopMobile      = "mobile"
	PopPartner     = "partner"
	PopBatch       = "batch"
	PopCrawler     = "crawler"
	PopIntegration = "integration"
)

// Login bodies' content types.
const (
	ContentTypeForm = "application/x-www-form-urlencoded"
	ContentTypeJSON = "application/json"
)

// loginHeaders are the headers of a login attempt of name: the user agent
// and the name in x-username; with login names in bodies (the stealth
// preset), the body's content type instead of the name.
func (g *gen) loginHeaders(agent, name string, form bool) map[string]string {
	if !g.cfg.Stealth {
		return map[string]string{"user-agent": agent, HeaderUsername: name}
	}
	ct := ContentTypeJSON
	if form {
		ct = ContentTypeForm
	}
	return map[string]string{"user-agent": agent, "content-type": ct}
}

// login sends a login attempt of name at t, good or not. With login names
// in bodies the body carries the name and password: a form when form, else
// JSON ({"email":…} when the name is an e-mail address, {"username":…}
// otherwise).
func (g *gen) login(c *client, r *rand.Rand, t time.Time, name, password string, form, good bool) {
	k := login(r, name, good)
	if !g.cfg.Stealth {
		c.send(t, k)
		return
	}
	body := LoginBody(name, password, form)
	k.req = int64(len(body))
	c.sendBody(t, k, body, name)
}

// LoginBody is the body of a login of name: a form, or a JSON object whose
// name field is "email" for an e-mail address and "username" otherwise.
func LoginBody(name, password string, form bool) string {
	if form {
		return "username=" + url.QueryEscape(name) + "&password=" + url.QueryEscape(password)
	}
	// The name first, as apps send it.
	var b []byte
	if isEmail(name) {
		b, _ = json.Marshal(struct {
			Email    string `json:"email"`
			Password string `json:"password"`
		}{name, password})
	} else {
		b, _ = json.Marshal(struct {
			Username string `json:"username"`
			Password string `json:"password"`
		}{name, password})
	}
	return string(b)
}

// LoginName reads the user name a login body carries: the username, email
// or login field of a form or a JSON object; "" when there is none.
func LoginName(body string) string {
	if body == "" {
		return ""
	}
	fields := []string{"username", "email", "login"}
	if body[0] == '{' {
		var m map[string]any
		if json.Unmarshal([]byte(body), &m) != nil {
			return ""
		}
		for _, f := range fields {
			if s, ok := m[f].(string); ok && s != "" {
				return s
			}
		}
		return ""
	}
	q, err := url.ParseQuery(body)
	if err != nil {
		return ""
	}
	for _, f := range fields {
		if v := q.Get(f); v != "" {
			return v
		}
	}
	return ""
}

// LoginPassword reads the password a login body carries, or "".
func LoginPassword(body string) string {
	if body == "" {
		return ""
	}
	if body[0] == '{' {
		var m map[string]any
		if json.Unmarshal([]byte(body), &m) != nil {
			return ""
		}
		s, _ := m["password"].(string)
		return s
	}
	q, _ := url.ParseQuery(body)
	return q.Get("password")
}

// userDomains are the mail domains of users' e-mail addresses, none of
// them a breach list's (leakedUser): with login names in bodies, apps log
// in with an e-mail address (a JSON body), web users with a plain name (a
// form).
var userDomains = []string{"shoppers.example", "webmail.example", "post-box.example", "fastmail.example"}

// nameSeparators join first and last names in user names and e-mail
// addresses.
var nameSeparators = []string{".", ".", "_", "-", ""}

// webName is a user name as a person picks it: "alice.smith12",
// "alice_smith12", "alicesmith12", …
func webName(r *rand.Rand, name string) string {
	return strings.Replace(name, ".", pick(r, nameSeparators), 1)
}

// email turns a user name into an e-mail address of the same person, with
// one of the usual separators and domains.
func email(r *rand.Rand, name string) string { return webName(r, name) + "@" + pick(r, userDomains) }

// isEmail reports whether a user name is an e-mail address.
func isEmail(name string) bool { return strings.Contains(name, "@") }

// account returns a user name no one else has: an e-mail address with
// login names in bodies when the account is an app's (not web).
func (g *gen) account(r *rand.Rand, web bool) string {
	name := g.username(r)
	switch {
	case !g.cfg.Stealth:
	case web:
		name = webName(r, name)
	default:
		name = email(r, name)
	}
	return name
}

// passwordWords make up people's passwords.
var passwordWords = []string{"sunflower", "Dragon", "monkey", "Liverpool", "summer", "Winter", "princess", "shadow", "Football", "coffee", "Tigger", "banana", "Charlie", "hello", "Bella", "freedom", "Pepper", "sunshine", "Maverick", "cookie"}

// password returns a fresh password with login names in bodies, else ""
// (drawing nothing, so that the other presets' traffic stays as it was):
// shaped as people's are (a word with digits and a symbol, a random
// string, a passphrase, digits only), so that a breached one looks like
// them.
func (g *gen) password(r *rand.Rand) string {
	if !g.cfg.Stealth {
		return ""
	}
	switch x := r.Float64(); {
	case x < 0.45:
		return pick(r, passwordWords) + itoa(r.IntN(10_000)) + pick(r, []string{"", "!", "?", "#", "$", "*", ".", "@"})
	case x < 0.75:
		return g.secret(r, "", 10+r.IntN(7))
	case x < 0.95:
		return pick(r, passwordWords) + pick(r, []string{"-", "_", " "}) + pick(r, passwordWords) + pick(r, []string{"-", "_", " "}) + pick(r, passwordWords)
	}
	return itoa(100_000 + r.IntN(9_900_000))
}

// mistype is a password typed wrong: its last two characters swapped, or
// one added.
func mistype(password string) string {
	if n := len(password); n >= 2 && password[n-1] != password[n-2] {
		return password[:n-2] + password[n-1:] + password[n-2:n-1]
	}
	return password + "1"
}

// misspell is a user name typed wrong: one character of the name (not of
// an e-mail address's domain) left out.
func misspell(r *rand.Rand, name string) string {
	local, _, _ := strings.Cut(name, "@")
	i := 1 + r.IntN(max(1, len(local)-2))
	return name[:i] + name[i+1:]
}

// breachedPasswords are what credential stuffers and sprayers try.
var breachedPasswords = []string{"123456", "password", "qwerty123", "Summer2026!", "Welcome1", "letmein", "iloveyou", "Passw0rd!", "monkey123", "dragon", "football1", "Autumn2026", "shop1234", "abc123!", "P@ssword1"}

// guess is a breached password with login names in bodies, else "".
func (g *gen) guess(r *rand.Rand) string {
	if !g.cfg.Stealth {
		return ""
	}
	return pick(r, breachedPasswords)
}

var crawlerAgents = []string{
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
	"PriceCompareBot/3.2 (+https://prices.example/bot)",
	"Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
	"Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
}

// crawlerRootPaths are what a crawler asks of the host before the
// catalogue; the shop serves neither (404).
var crawlerRootPaths = []string{"/robots.txt", "/sitemap.xml"}

// crawler walks the catalogue from an address of its own at a steady
// 0.4–1.5 calls/s (no diurnal curve): item pages by ID from a stale
// sitemap that lists IDs up to 35% beyond the catalogue (about a third of
// its item reads are 404 on /items/{id}: hundreds an hour), list pages and
// searches, with robots.txt and sitemap.xml (404) every 20–40 minutes.
func (g *gen) crawler(r *rand.Rand, i int) {
	c := g.client(g.benign, g.serverIPs.addr(), map[string]string{"user-agent": crawlerAgents[i%len(crawlerAgents)]})
	rate := between(r, 0.4, 1.5)
	nextRoot := g.cfg.Start
	for t := g.cfg.Start.Add(durBetween(r, 0, time.Minute)); ; t = t.Add(seconds(between(r, 0.5, 1.5) / rate)) {
		if !t.Before(g.end) {
			return
		}
		if !t.Before(nextRoot) {
			for _, p := range crawlerRootPaths {
				c.send(t, call{"GET", p, 404, 0, errorBody(r), latency(r, 3)})
				t = t.Add(durBetween(r, 200*time.Millisecond, 2*time.Second))
			}
			nextRoot = t.Add(durBetween(r, 20*time.Minute, 40*time.Minute))
			continue
		}
		switch x := r.Float64(); {
		case x < 0.65:
			c.send(t, staleItem(r, itemIDMax*135/100))
		case x < 0.9:
			c.send(t, listItems(r))
		default:
			c.send(t, search(r))
		}
	}
}

// staleItem reads an item by an ID in [1, upTo]: IDs past the catalogue,
// and 2% of the others, are 404.
func staleItem(r *rand.Rand, upTo int) call {
	id := 1 + r.IntN(upTo)
	if id > itemIDMax {
		return failed(r, shop.GetItem, withID(shop.GetItem, id), 404, 0, 8)
	}
	k := getItem(r)
	k.path = Base + withID(shop.GetItem, id)
	return k
}

// integrationSite is one shared egress address carrying several
// integrations: API keys like partners' at 0.1–0.6 calls/s each, and
// service accounts that log in (JSON body) for a bearer token renewed
// every 30–60 minutes. One client of each site is a price feed reading
// items by IDs from a stale list (many 404s).
func (g *gen) integrationSite(s int) {
	ip := g.serverIPs.addr()
	for j := range g.cfg.IntegrationClients {
		r := g.rngFor("integration", s<<20|j)
		agent := "integration-" + itoa(s) + "-" + itoa(j) + "/1." + itoa(r.IntN(9)) + " (+https://site" + itoa(s) + ".example)"
		feed, service := j == 0, j%2 == 1
		rate := between(r, 0.1, 0.6)
		orders := orderIDMin + r.IntN(orderIDMax-orderIDMin-2_000)
		c := g.client(g.benign, ip, nil)
		var name, pw string
		if service {
			name, pw = "svc-"+itoa(j)+"@site"+itoa(s)+".example", g.secret(r, "", 24)
		} else {
			c.setHeaders(map[string]string{"user-agent": agent, HeaderAPIKey: g.secret(r, "ik_", 28)})
		}
		var renew time.Time
		for t := g.cfg.Start.Add(durBetween(r, 0, time.Minute)); ; t = t.Add(seconds(r.ExpFloat64() / rate)) {
			if !t.Before(g.end) {
				break
			}
			if service && !t.Before(renew) {
				c.setHeaders(g.loginHeaders(agent, name, false))
				g.login(c, r, t, name, pw, false, true)
				c.setHeaders(map[string]string{"user-agent": agent, HeaderUsername: name, HeaderToken: "Bearer " + g.secret(r, "", 32)})
				renew = t.Add(durBetween(r, 30*time.Minute, 60*time.Minute))
				t = t.Add(durBetween(r, 500*time.Millisecond, 2*time.Second))
			}
			var k call
			switch x := r.Float64(); {
			case feed && x < 0.8:
				k = staleItem(r, itemIDMax*13/10)
			case x < 0.3:
				k = listItems(r)
			case x < 0.5:
				k = getItem(r)
			case x < 0.75:
				k = getOrder(r, orders+r.IntN(2_000))
			case x < 0.85:
				k = putOrder(r, bytesBetween(r, 400, 4_000))
			case x < 0.95:
				k = search(r)
			case x < 0.995:
				k = patchOrder(r, orders+r.IntN(2_000))
			default:
				k = serverError(r)
			}
			c.send(t, k)
		}
	}
}

// network returns a fresh /24 network of the distributed attackers' range
// (91.240.0.0/14, which no one else uses).
func (g *gen) network() netip.Prefix {
	a := netip.MustParseAddr(g.attackNets.addr()).As4() // 0.91.240.N: a network number
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{a[1], a[2], a[3], 0}), 24)
}

// hosts returns n distinct addresses of the /24 network p, in a scattered
// order.
func hosts(r *rand.Rand, p netip.Prefix, n int) []string {
	b := p.Addr().As4()
	out := make([]string, 0, n)
	for _, h := range r.Perm(253)[:min(n, 253)] {
		b[3] = byte(2 + h)
		out = append(out, netip.AddrFrom4(b).String())
	}
	return out
}
