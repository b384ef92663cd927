package scenario

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/vigil-project/vigil/server/demo/shop"
)

// Attackers. Each starts after training, at a recorded start time, and
// uses identities of its own only (attacker addresses come from a range no
// benign client uses; tokens, keys, cookies and user names are fresh).

// variant is one way to carry out an attack type.
type variant struct {
	name string
	run  func(x *attackRun)
}

// attackSpec lists a type's fast and slow variants; attacker i of a type is
// fast when i is even and takes the variants in turn.
type attackSpec struct{ fast, slow []variant }

var attackSpecs = map[string]attackSpec{
	TypeProbing: {
		fast: []variant{{"forced_browsing", forcedBrowsing}, {"fuzzing", fuzzing}},
		slow: []variant{{"forced_browsing", forcedBrowsing}},
	},
	TypeExcessiveErrors: {
		fast: []variant{{"malformed", malformed}, {"malformed_authenticated", malformedAuthenticated}},
		slow: []variant{{"malformed_authenticated", malformedAuthenticated}, {"malformed", malformed}},
	},
	TypeCredentialStuffing: {
		fast: []variant{{"stuffing", stuffing}, {"brute_force", bruteForce}},
		slow: []variant{{"spraying", stuffing}, {"brute_force", bruteForce}},
	},
	TypeStolenToken: {
		fast: []variant{{"token", stolen(KindToken)}, {"cookie", stolen(KindCookie)}},
		slow: []variant{{"token", stolen(KindToken)}, {"api_key", stolen(KindAPIKey)}},
	},
	TypeDataExfiltration: {
		fast: []variant{{"export", exfiltration}},
		slow: []variant{{"export", exfiltration}},
	},
	TypeExtremeActivity: {
		fast: []variant{{"ip", flood(false)}, {"token", flood(true)}},
		slow: []variant{{"ip", flood(false)}, {"token", flood(true)}},
	},
	TypeBOLAEnumeration: {
		fast: []variant{{"order_walk", orderWalk}},
		slow: []variant{{"order_walk", orderWalk}},
	},
	TypeMassDeletion: {
		fast: []variant{{"delete_flood", deleteFlood}},
		slow: []variant{{"delete_flood", deleteFlood}},
	},
	TypeOversizedPayload: {
		fast: []variant{{"huge_bid", oversized}},
		slow: []variant{{"huge_bid", oversized}},
	},
}

// attackRun is one attacker being generated.
type attackRun struct {
	g           *gen
	r           *rand.Rand
	a           *Attacker
	uses        idSet
	start, stop time.Time // first request, and no request at or after stop
	fast        bool
	k           float64 // intensity
}

// attackTraffic generates every attacker and returns their labels.
func (g *gen) attackTraffic() []Attacker {
	var out []Attacker
	for _, typ := range g.cfg.Types {
		spec, ok := attackSpecs[typ]
		if !ok {
			continue
		}
		for i := range g.cfg.AttackersPerType {
			r := g.rngFor("attack/"+typ, i)
			fast := i%2 == 0
			vs, speed := spec.fast, SpeedFast
			if !fast {
				vs, speed = spec.slow, SpeedSlow
			}
			v := vs[(i/2)%len(vs)]
			a := Attacker{Type: typ, Speed: speed, Variant: v.name}
			x := &attackRun{g: g, r: r, a: &a, uses: idSet{}, fast: fast, k: g.cfg.Intensity}
			x.plan()
			first := g.records.len()
			v.run(x)
			if g.label(&a, first, x.uses) {
				out = append(out, a)
			}
		}
	}
	return out
}

// label completes an attacker's label from its records, those stored from
// first on, and the identities they used; false when it made no request
// (the scenario ended before it could start).
func (g *gen) label(a *Attacker, first int, uses idSet) bool {
	if g.records.len() == first {
		return false
	}
	a.Requests = g.records.len() - first
	a.Times = make([]time.Time, 0, a.Requests)
	for j := first; j < g.records.len(); j++ {
		a.Times = append(a.Times, g.records.at(j).Time)
	}
	slices.SortFunc(a.Times, time.Time.Compare)
	a.Start, a.End = a.Times[0], a.Times[len(a.Times)-1]
	for id := range uses {
		a.Uses = append(a.Uses, id)
	}
	sortIdentities(a.Uses)
	return true
}

// plan picks the attack window: a fast attacker starts within the first 60%
// of the attack phase and lasts 2–4 minutes; a slow one starts within the
// first quarter and lasts 55–70% of the phase.
func (x *attackRun) plan() {
	ad := x.g.cfg.AttackDuration
	lead := min(2*time.Minute, ad/10)
	var d time.Duration
	if x.fast {
		x.start = x.g.trainEnd.Add(durBetween(x.r, lead, max(lead, ad*6/10)))
		d = durBetween(x.r, 2*time.Minute, 4*time.Minute)
	} else {
		x.start = x.g.trainEnd.Add(durBetween(x.r, lead, max(lead, ad/4)))
		d = time.Duration(between(x.r, 0.55, 0.7) * float64(ad))
	}
	x.start = x.start.Truncate(time.Millisecond)
	x.stop = minTime(x.start.Add(d), x.g.end)
}

// shorten ends the attack after lo to hi, when its window is longer.
func (x *attackRun) shorten(lo, hi time.Duration) {
	x.stop = minTime(x.stop, x.start.Add(durBetween(x.r, lo, hi)))
}

// attribute labels the attacker with the identity it should be caught by.
func (x *attackRun) attribute(kind, raw string) { x.a.Identity = Identity{Kind: kind, Raw: raw} }

func (x *attackRun) client(ip string, hdr map[string]string) *client {
	return x.g.client(x.uses, ip, hdr)
}

// loggedIn returns a client from a fresh attacker address holding a valid
// bearer token of a fresh account, after its login at x.start; the token is
// the attacker's identity.
func (x *attackRun) loggedIn(agent string) (*client, time.Time) {
	name := x.g.account(x.r, false)
	c := x.client(x.g.attackIPs.addr(), x.g.loginHeaders(agent, name, false))
	x.g.login(c, x.r, x.start, name, x.g.password(x.r), false, true)
	tok := x.g.secret(x.r, "", 32)
	c.setHeaders(map[string]string{"user-agent": agent, HeaderUsername: name, HeaderToken: "Bearer " + tok})
	x.attribute(KindToken, tok)
	return c, x.start.Add(durBetween(x.r, time.Second, 5*time.Second))
}

// anonymous returns a client from a fresh attacker address with no
// credentials; the address is the attacker's identity.
func (x *attackRun) anonymous(agent string) *client {
	ip := x.g.attackIPs.addr()
	x.attribute(KindIP, ip)
	return x.client(ip, map[string]string{"user-agent": agent})
}

// rate is a fast and a slow rate in calls per second, scaled by intensity.
func (x *attackRun) rate(fast, slow float64) float64 {
	if x.fast {
		return fast * x.k
	}
	return slow * x.k
}

// each calls fn at from and then at exponential gaps averaging 1/rate
// seconds, until stop.
func (x *attackRun) each(from time.Time, rate float64, fn func(t time.Time)) {
	for t := from; t.Before(x.stop); t = t.Add(seconds(x.r.ExpFloat64() / rate)) {
		fn(t)
	}
}

var (
	scannerAgents = []string{"gobuster/3.6", "Fuzz Faster U Fool v2.1.0", "feroxbuster/2.10.4", "Mozilla/5.0 (compatible; Nuclei - Open-source project (github.com/projectdiscovery/nuclei))"}
	scriptAgents  = []string{"python-requests/2.32.3", "Go-http-client/1.1", "curl/8.11.0", "axios/1.7.9", "okhttp/4.12.0"}
	probeWords    = []string{"admin", "api", "v1", "v2", "internal", "debug", "config", "backup", "users", "user", "accounts", "account", "orders", "payments", "payment", "invoice", "invoices", "refund", "refunds", "coupon", "coupons", "giftcard", "swagger", "swagger.json", "openapi.json", "api-docs", "graphql", "actuator", "health", "metrics", "env", ".env", ".git/config", "console", "login", "logout", "register", "reset", "password", "token", "oauth", "auth", "session", "sessions", "upload", "uploads", "files", "download", "export", "import", "report", "reports", "stats", "search", "items", "item", "products", "product", "catalog", "cart", "checkout", "bid", "bids", "auction", "auctions", "order", "wallet", "balance", "transfer", "keys", "apikeys", "secrets", "test", "dev", "staging", "old", "tmp", "private", "hidden", "system", "status", "version", "server-status", "phpinfo.php", "wp-login.php", "wp-admin", "cgi-bin", "shell", "cmd", "exec", "backup.zip", "db.sql", "dump.sql", "config.json", "settings", "profile", "profiles", "members", "customers", "employees", "staff", "partners", "vendors", "sellers", "notifications", "messages", "inbox", "webhook", "webhooks", "callback", "jobs", "queue", "tasks", "cron", "logs", "trace"}
	probeExts     = []string{"", ".json", ".bak", ".php", "/", ".old", "~"}
)

// probePath is the i-th path of a forced-browsing wordlist run, under the
// API or at the host's root, and the status it gets.
func probePath(i int) (string, int) {
	w := len(probeWords)
	word, ext := probeWords[i%w], probeExts[(i/w)%len(probeExts)]
	p := Base + "/" + word + ext
	if (i/(w*len(probeExts)))%2 == 1 {
		p = "/" + word + ext
	}
	if n := i / (2 * w * len(probeExts)); n > 0 {
		p += "/" + itoa(n)
	}
	switch {
	case ext == "" && (word == "login" || word == "order"):
		return p, 405 // exists, but not for GET
	case ext == "" && (word == "admin" || word == "internal" || word == "actuator" || word == "console"):
		return p, 403
	}
	return p, 404
}

// forcedBrowsing walks a wordlist without credentials: fast at 8 calls/s
// with a scanner's user agent, slow at one call every 20 s on average with a
// browser's, a fifth of them ordinary catalogue calls.
func forcedBrowsing(x *attackRun) {
	agent := pick(x.r, scannerAgents)
	if !x.fast {
		agent = pick(x.r, browserAgents)
	}
	c := x.anonymous(agent)
	i := x.r.IntN(len(probeWords))
	x.each(x.start, x.rate(8, 0.05), func(t time.Time) {
		if !x.fast && chance(x.r, 0.2) {
			c.send(t, listItems(x.r))
			return
		}
		p, status := probePath(i)
		i++
		c.send(t, call{"GET", p, status, 0, errorBody(x.r), latency(x.r, 5)})
	})
}

// fuzzing probes with a valid token: hidden sub-resources of orders and
// unexpected methods, 6 calls/s; 404 and 405 answers.
func fuzzing(x *attackRun) {
	c, t := x.loggedIn(pick(x.r, scriptAgents))
	id := orderIDMin + x.r.IntN(orderIDMax-orderIDMin)
	i := 0
	x.each(t, x.rate(6, 0.05), func(t time.Time) {
		word := probeWords[i%len(probeWords)]
		i++
		switch x.r.IntN(4) {
		case 0:
			c.send(t, call{pick(x.r, []string{"POST", "DELETE", "PATCH", "OPTIONS"}), Base + "/" + pick(x.r, []string{"items", "search", "profile", "export"}), 405, 0, errorBody(x.r), latency(x.r, 4)})
		default:
			c.send(t, call{"GET", orderPath(id) + "/" + word, 404, 0, errorBody(x.r), latency(x.r, 5)})
		}
	})
}

// badQueries are malformed calls on real catalogue endpoints.
var badQueries = []string{"/search?q=%ZZ", "/search?q=" + "%27%20OR%201=1--", "/items?page=-1", "/items?page=abc", "/items/" + "%00", "/items/99999999999999999999", "/search?q=&page=NaN", "/export?limit=-5"}

// malformed hammers catalogue endpoints with malformed queries, without
// credentials: 4 calls/s fast, one every 5 s slow; 400s with some 500/503.
func malformed(x *attackRun) {
	c := x.anonymous(pick(x.r, scriptAgents))
	x.each(x.start, x.rate(4, 0.2), func(t time.Time) {
		c.send(t, call{"GET", Base + pick(x.r, badQueries), errorStatus(x.r), 0, errorBody(x.r), latency(x.r, 6)})
	})
}

// malformedAuthenticated sends broken bids and updates with a valid token:
// 4 calls/s fast, one every 10 s slow; 85% of them fail (400, 422, 500).
func malformedAuthenticated(x *attackRun) {
	c, t := x.loggedIn(pick(x.r, scriptAgents))
	x.each(t, x.rate(4, 0.1), func(t time.Time) {
		if chance(x.r, 0.15) {
			c.send(t, listItems(x.r))
			return
		}
		k := call{shop.PutOrder.Method, Base + shop.PutOrder.Path, errorStatus(x.r), bytesBetween(x.r, 40, 900), errorBody(x.r), latency(x.r, 8)}
		if chance(x.r, 0.4) {
			k.method, k.path = shop.PatchOrder.Method, orderPath(orderIDMin+x.r.IntN(orderIDMax-orderIDMin))
		}
		c.send(t, k)
	})
}

func errorStatus(r *rand.Rand) int {
	switch x := r.Float64(); {
	case x < 0.75:
		return 400
	case x < 0.85:
		return 422
	case x < 0.95:
		return 500
	}
	return 503
}

// leakedUser is an address from a breach list, not an account of the shop,
// and never tried by another attacker.
func (g *gen) leakedUser(r *rand.Rand) string {
	g.leaked++
	return pick(r, firstNames) + pick(r, []string{".", "_", ""}) + pick(r, lastNames) + itoa(g.leaked) + "@" + pick(r, []string{"mail.example", "inbox.example", "post.example"})
}

// stuffing tries one password per leaked user name from one address:
// stuffing at 5 logins/s (2% succeed), spraying at one login every 20 s
// (none succeeds).
func stuffing(x *attackRun) {
	ip := x.g.attackIPs.addr()
	x.attribute(KindIP, ip)
	agent := pick(x.r, scriptAgents)
	c := x.client(ip, nil)
	x.each(x.start, x.rate(5, 1.0/20), func(t time.Time) {
		name := x.g.leakedUser(x.r)
		c.setHeaders(x.g.loginHeaders(agent, name, false))
		x.g.login(c, x.r, t, name, x.g.guess(x.r), false, x.fast && chance(x.r, 0.02))
	})
}

// bruteForce tries many passwords for one account, the attributed
// identity, rotating over attacker addresses (4 fast, 10 slow): 2 logins/s
// fast, one every 30 s slow; every one fails.
func bruteForce(x *attackRun) {
	name := x.g.account(x.r, false)
	x.attribute(KindUsername, name)
	ips := make([]string, 10)
	if x.fast {
		ips = ips[:4]
	}
	for i := range ips {
		ips[i] = x.g.attackIPs.addr()
	}
	c := x.client(ips[0], x.g.loginHeaders(pick(x.r, scriptAgents), name, false))
	i := 0
	x.each(x.start, x.rate(2, 1.0/30), func(t time.Time) {
		c.setIP(ips[i%len(ips)])
		i++
		x.g.login(c, x.r, t, name, x.g.guess(x.r), false, false)
	})
}

// stolen uses one stolen credential of the given kind from many attacker
// addresses, each with its own user agent, each making 3–8 calls 2–10 s
// apart: fast, 30 addresses starting within 90 s; slow, 10 spread over the
// attack. The account behind a token or cookie is the victim's, a user name
// no benign call carries.
func stolen(kind string) func(x *attackRun) {
	return func(x *attackRun) {
		n, spread := 30, 90*time.Second
		if !x.fast {
			n, spread = 10, x.stop.Sub(x.start)*8/10
		}
		n = max(3, int(math.Round(float64(n)*x.k)))
		victim := x.g.account(x.r, kind == KindCookie)
		var cred string
		switch kind {
		case KindToken:
			cred = x.g.secret(x.r, "", 32)
		case KindCookie:
			cred = x.g.secret(x.r, "", 40)
		case KindAPIKey:
			cred = x.g.secret(x.r, "pk_live_", 24)
		}
		x.attribute(kind, cred)
		orders := []int{orderIDMin + x.r.IntN(orderIDMax-orderIDMin), orderIDMin + x.r.IntN(orderIDMax-orderIDMin)}
		for j := range n {
			hdr := map[string]string{"user-agent": uniqueAgent(x.r)}
			switch kind {
			case KindToken:
				hdr[HeaderToken], hdr[HeaderUsername] = "Bearer "+cred, victim
			case KindCookie:
				hdr["cookie"], hdr[HeaderUsername] = SessionCookie+"="+cred, victim
			case KindAPIKey:
				hdr[HeaderAPIKey] = cred
			}
			c := x.client(x.g.attackIPs.addr(), hdr)
			t := x.start.Add(spread * time.Duration(j) / time.Duration(n))
			for range 3 + x.r.IntN(6) {
				if !t.Before(x.g.end) {
					break
				}
				x.sessionCall(c, t, orders)
				t = t.Add(durBetween(x.r, 2*time.Second, 10*time.Second))
			}
		}
	}
}

// uniqueAgent is a plausible browser user agent with a random build.
func uniqueAgent(r *rand.Rand) string {
	return "Mozilla/5.0 (" + pick(r, []string{"Windows NT 10.0; Win64; x64", "X11; Linux x86_64", "Macintosh; Intel Mac OS X 10_15_7", "Linux; Android 14; K"}) +
		") AppleWebKit/537.36 (KHTML, like Gecko) Chrome/" + itoa(110+r.IntN(22)) + ".0." + itoa(r.IntN(7000)) + "." + itoa(r.IntN(200)) + " Safari/537.36"
}

// exfiltration pulls exports and orders with a valid token. Fast: a call
// every 4 s, 60% of them exports of 5,000 records (about 2 MB each), the
// rest orders. Slow: a call every 10 s, one in eight an export of 1,000
// records (about 400 kB).
func exfiltration(x *attackRun) {
	c, t := x.loggedIn(pick(x.r, scriptAgents))
	limit, pExport := 5000, 0.6
	if !x.fast {
		limit, pExport = 1000, 0.125
	}
	limit = max(1, int(float64(limit)*x.k))
	id := orderIDMin + x.r.IntN(orderIDMax-orderIDMin)
	offset := 0
	x.each(t, x.rate(0.25, 0.1), func(t time.Time) {
		if chance(x.r, pExport) {
			c.send(t, export(x.r, limit, offset))
			offset += limit
			return
		}
		c.send(t, getOrder(x.r, id+x.r.IntN(1000)))
	})
}

// flood is a single client's request flood on the catalogue (item lists,
// searches and the 20 featured items): without
// credentials 60 calls/s for 2–3 minutes fast and 15 calls/s for 10–15
// minutes slow; with a token 30 and 3 calls/s.
func flood(withToken bool) func(x *attackRun) {
	return func(x *attackRun) {
		if x.fast {
			x.shorten(2*time.Minute, 3*time.Minute)
		} else {
			x.shorten(10*time.Minute, 15*time.Minute)
		}
		var c *client
		t, rate := x.start, x.rate(60, 15)
		if withToken {
			c, t = x.loggedIn(pick(x.r, scriptAgents))
			rate = x.rate(30, 3)
		} else {
			c = x.anonymous(pick(x.r, scriptAgents))
		}
		x.each(t, rate, func(t time.Time) {
			switch x.r.IntN(3) {
			case 0:
				c.send(t, listItems(x.r))
			case 1: // the front page's items: a flood, not a walk over IDs
				c.send(t, popularItem(x.r))
			default:
				c.send(t, search(x.r))
			}
		})
	}
}

// orderWalk reads orders by sequential ID with a valid token: 5 calls/s
// fast, one every 5 s slow. Most are someone else's (403) or missing (404).
func orderWalk(x *attackRun) {
	c, t := x.loggedIn(pick(x.r, scriptAgents))
	id := orderIDMin + x.r.IntN(orderIDMax-orderIDMin-100_000)
	x.each(t, x.rate(5, 1.0/5), func(t time.Time) {
		id += 1 + x.r.IntN(2)
		c.send(t, x.walkRead(id))
	})
}

// deleteFlood deletes orders with a valid token: 3 calls/s fast, one every
// 20 s slow; 75% succeed (204), the rest 404 or 403.
func deleteFlood(x *attackRun) {
	c, t := x.loggedIn(pick(x.r, scriptAgents))
	x.each(t, x.rate(3, 0.05), func(t time.Time) {
		k := deleteOrder(x.r, orderIDMin+x.r.IntN(orderIDMax-orderIDMin))
		switch y := x.r.Float64(); {
		case y < 0.15:
			k.status, k.resp = 404, errorBody(x.r)
		case y < 0.25:
			k.status, k.resp = 403, errorBody(x.r)
		}
		c.send(t, k)
	})
}

// oversized sends bids and updates of 1–4 MB (times intensity) with a valid
// token, between ordinary catalogue calls: fast, a call every 2 s of which
// 60% oversized; slow, a call every 30 s of which 1 in 10 oversized. The
// oversized ones are refused (413, 400) or crash the back end (500).
func oversized(x *attackRun) {
	c, t := x.loggedIn(pick(x.r, scriptAgents))
	pBig := 0.6
	if !x.fast {
		pBig = 0.1
	}
	rate, first := 0.5, true // intensity scales the size, not the rate
	if !x.fast {
		rate = 1.0 / 30
	}
	x.each(t, rate, func(t time.Time) {
		if !first && !chance(x.r, pBig) {
			c.send(t, listItems(x.r))
			return
		}
		first = false
		size := int64(float64(bytesBetween(x.r, 1<<20, 4<<20)) * x.k)
		k := call{shop.PutOrder.Method, Base + shop.PutOrder.Path, 413, size, errorBody(x.r), latency(x.r, 200)}
		if chance(x.r, 0.3) {
			k.method, k.path = shop.PatchOrder.Method, orderPath(orderIDMin+x.r.IntN(orderIDMax-orderIDMin))
		}
		switch y := x.r.Float64(); {
		case y < 0.3:
			k.status = 400
		case y < 0.5:
			k.status, k.ms = 500, latency(x.r, 2000)
		}
		c.send(t, k)
	})
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// sessionCall is one call of a victim's session in an attacker's hands:
// its profile, one of its orders, its cart or the item list.
func (x *attackRun) sessionCall(c *client, t time.Time, orders []int) {
	switch x.r.IntN(4) {
	case 0:
		c.send(t, profile(x.r))
	case 1:
		c.send(t, getOrder(x.r, pick(x.r, orders)))
	case 2:
		c.send(t, cart(x.r))
	default:
		c.send(t, listItems(x.r))
	}
}

// walkRead is an ID walk's read of order id: someone else's (403) 55 % of
// the time, missing (404) 25 %, an order it may read otherwise.
func (x *attackRun) walkRead(id int) call {
	k := getOrder(x.r, id)
	switch y := x.r.Float64(); {
	case y < 0.55:
		k.status, k.resp = 403, errorBody(x.r)
	case y < 0.8:
		k.status, k.resp = 404, errorBody(x.r)
	}
	return k
}
