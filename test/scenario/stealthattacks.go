package scenario

import (
	"math"
	"slices"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server/demo/shop"
)

// Stealthy attackers: every attack type carried out the way an attacker
// who studied the benign population would, its rates and totals set from
// that population's own extremes (Scenario.Extremes, measured on the
// benign traffic before any attacker is generated). Each keeps one measure
// at or under the busiest benign identity of the same kind in every window
// (Under), and is set apart only by a total over its whole run (Over),
// above what any one person's identity of the kind does in an hour.

// Claim names a measure of an attacker's identities of Kind over aligned
// windows of Window: the largest value over its windows, compared with the
// busiest benign identity of the same kind over windows of the same length
// (Extremes.Max for Under, Extremes.PersonMax for Over). Whole sums every
// identity of Kind the attacker used into one (a distributed attacker's
// addresses).
type Claim struct {
	Kind    string
	Window  time.Duration
	Measure Measure
	Whole   bool
}

// StealthVariant is one stealthy way to carry out an attack type.
type StealthVariant struct {
	Type, Name string
	// HeldOut variants are kept out of tuning (Config.HeldOutVariants).
	HeldOut bool
	// Under is kept at or under the benign maximum on every identity of
	// its kind the attacker uses; Over is above one person's maximum (the
	// zero Claim: no claim; oversized bodies are 1.2 to 2 times the
	// largest benign body of their endpoint instead).
	Under, Over Claim
	run         func(x *attackRun)
}

const (
	tenMinutes = 10 * time.Minute
	// stealthShare is the share of the busiest benign identity's figure a
	// stealthy attacker allows itself per window.
	stealthShare = 0.7
)

// StealthVariants lists the stealthy variants, in report order.
func StealthVariants() []StealthVariant {
	return append([]StealthVariant{
		{TypeProbing, "small_scanner", false, Claim{KindIP, tenMinutes, MeasureFailedPaths, false}, Claim{KindIP, tenMinutes, MeasureFailedTemplates, false}, smallScanner},
		{TypeProbing, "slow_probe", false, Claim{KindIP, tenMinutes, MeasureFailedTemplates, false}, Claim{KindIP, time.Hour, MeasureFailedTemplates, false}, slowProbe},
		{TypeExcessiveErrors, "slow_errors_token", false, Claim{KindToken, tenMinutes, MeasureErrors, false}, Claim{KindToken, time.Hour, MeasureErrors, false}, slowErrorsToken},
		{TypeExcessiveErrors, "slow_errors_ip", false, Claim{KindIP, tenMinutes, MeasureErrors, false}, Claim{KindIP, time.Hour, MeasureErrors, false}, slowErrorsIP},
		{TypeCredentialStuffing, "distributed_stuffing", false, Claim{KindIP, tenMinutes, MeasureFailedLogins, false}, Claim{KindIP, time.Hour, MeasureFailedLogins, true}, distributedStuffing},
		{TypeCredentialStuffing, "distributed_brute_force", false, Claim{KindIP, tenMinutes, MeasureFailedLogins, false}, Claim{KindUsername, time.Hour, MeasureFailedLogins, false}, distributedBruteForce},
		{TypeCredentialStuffing, "password_spraying", false, Claim{KindIP, tenMinutes, MeasureFailedLogins, false}, Claim{KindIP, time.Hour, MeasureFailedLogins, false}, passwordSpraying},
		{TypeStolenToken, "token_hopping", false, Claim{KindToken, tenMinutes, MeasureAddresses, false}, Claim{KindToken, time.Hour, MeasureAddresses, false}, hopping(KindToken)},
		{TypeStolenToken, "cookie_hopping", false, Claim{KindCookie, tenMinutes, MeasureAddresses, false}, Claim{KindCookie, time.Hour, MeasureAddresses, false}, hopping(KindCookie)},
		{TypeDataExfiltration, "slow_export", false, Claim{KindToken, tenMinutes, MeasureResponseBytes, false}, Claim{KindToken, time.Hour, MeasureResponseBytes, false}, slowExport},
		{TypeExtremeActivity, "low_and_slow", false, Claim{KindToken, time.Minute, MeasureCalls, false}, Claim{KindToken, time.Hour, MeasureCalls, false}, lowAndSlow(KindToken)},
		{TypeExtremeActivity, "low_and_slow_cookie", false, Claim{KindCookie, time.Minute, MeasureCalls, false}, Claim{KindCookie, time.Hour, MeasureCalls, false}, lowAndSlow(KindCookie)},
		{TypeBOLAEnumeration, "slow_walk", false, Claim{KindToken, tenMinutes, MeasureOrderIDs, false}, Claim{KindToken, time.Hour, MeasureOrderIDs, false}, slowWalk(false)},
		{TypeBOLAEnumeration, "scattered_walk", false, Claim{KindToken, tenMinutes, MeasureOrderIDs, false}, Claim{KindToken, time.Hour, MeasureOrderIDs, false}, slowWalk(true)},
		{TypeMassDeletion, "slow_delete", false, Claim{KindToken, tenMinutes, MeasureDeletes, false}, Claim{KindToken, time.Hour, MeasureDeletes, false}, slowDelete},
		{TypeOversizedPayload, "just_above_bid", false, Claim{}, Claim{}, justAbove(shop.PutOrder)},
		{TypeOversizedPayload, "just_above_patch", false, Claim{}, Claim{}, justAbove(shop.PatchOrder)},
	}, slices.Concat(heldOutVariants(), heldOutVariants3(), heldOutVariants4())...)
}

// NextHeldOutVariants is the next held-out set, the fifth (heldout5.go,
// _h5): kept out of tuning and out of the suite's runs (Config.NextHeldOut)
// until the current held-out set (heldout4.go, _h4) is tuned on, and
// measured apart.
func NextHeldOutVariants() []StealthVariant { return heldOutVariants5() }

// stealthTraffic generates the stealthy attackers: StealthAttackers of
// every variant of the configured types, the held-out ones only with
// HeldOutVariants, the next held-out set only with NextHeldOut too.
func (g *gen) stealthTraffic() []Attacker {
	if g.cfg.StealthAttackers <= 0 || g.ext == nil {
		return nil
	}
	variants := StealthVariants()
	if g.cfg.NextHeldOut {
		variants = append(variants, NextHeldOutVariants()...)
	}
	var out []Attacker
	for _, typ := range g.cfg.Types {
		for _, v := range variants {
			if v.Type != typ || (v.HeldOut && !g.cfg.HeldOutVariants) {
				continue
			}
			for i := range g.cfg.StealthAttackers {
				r := g.rngFor("stealth/"+typ+"/"+v.Name, i)
				a := Attacker{Type: typ, Speed: SpeedStealth, Variant: v.Name, HeldOut: v.HeldOut, AlsoRight: alsoRight(v.Name)}
				x := &attackRun{g: g, r: r, a: &a, uses: idSet{}, k: 1}
				first := g.records.len()
				v.run(x)
				if g.label(&a, first, x.uses) {
					out = append(out, a)
				}
			}
		}
	}
	return out
}

// window starts the attack 1 to 8 minutes after training and lets it last
// lo to hi (cut at the end of the scenario).
func (x *attackRun) window(lo, hi time.Duration) {
	x.start = x.g.trainEnd.Add(durBetween(x.r, time.Minute, 8*time.Minute)).Truncate(time.Millisecond)
	x.stop = minTime(x.start.Add(durBetween(x.r, lo, hi)), x.g.end)
}

// budget is how many of m a window of w of one identity of kind may hold:
// stealthShare of the busiest benign identity's, at least 1.
func (x *attackRun) budget(kind string, w time.Duration, m Measure) float64 {
	return max(1, math.Floor(stealthShare*x.g.ext.Max(kind, w, m)))
}

// paced calls fn from from until stop at gaps of w/n to 1.25 w/n (plus a
// little, for the millisecond truncation of recorded times): no window of
// length w holds more than n calls.
func (x *attackRun) paced(from time.Time, w time.Duration, n float64, fn func(t time.Time)) {
	gap := time.Duration(float64(w)/n) + 10*time.Millisecond
	for t := from; t.Before(x.stop); t = t.Add(gap + time.Duration(x.r.Int64N(int64(gap)/4+1))) {
		fn(t)
	}
}

// filler calls fn from from until stop at gaps of lo to hi: the ordinary
// calls an attacker mixes in.
func (x *attackRun) filler(from time.Time, lo, hi time.Duration, fn func(t time.Time)) {
	for t := from.Add(durBetween(x.r, lo, hi)); t.Before(x.stop); t = t.Add(durBetween(x.r, lo, hi)) {
		fn(t)
	}
}

// browse is an ordinary catalogue call.
func (x *attackRun) browse(c *client) func(time.Time) {
	return func(t time.Time) {
		switch x.r.IntN(3) {
		case 0:
			c.send(t, listItems(x.r))
		case 1:
			c.send(t, getItem(x.r))
		default:
			c.send(t, search(x.r))
		}
	}
}

// smallScanPaths are a small scanner's guesses: well-known files at the
// host's root and API-shaped paths under the shop's base.
var smallScanPaths = []string{
	"/.env", "/.git/config", "/wp-login.php", "/phpinfo.php", "/server-status", "/actuator/health", "/swagger.json",
	"/openapi.json", "/v2/api-docs", "/graphql", "/config.json", "/backup.zip", "/.DS_Store", "/admin/",
	Base + "/admin", Base + "/v1/users", Base + "/users", Base + "/internal/config", Base + "/swagger.json",
	Base + "/api-docs", Base + "/debug/vars", Base + "/export.csv", Base + "/orders", Base + "/accounts",
	Base + "/.env", Base + "/health", Base + "/status", Base + "/v2/order", Base + "/graphql", Base + "/login.php",
	Base + "/console",
}

// smallScanner is a short scan without credentials: 55 to 65 requests 1 to
// 3 s apart, over 27 to 30 guessed paths (404, 403 for the admin ones) and
// the item list (200); each path asked once, some twice.
func smallScanner(x *attackRun) {
	x.window(5*time.Minute, 5*time.Minute)
	agent := pick(x.r, scannerAgents)
	if chance(x.r, 0.5) {
		agent = pick(x.r, scriptAgents)
	}
	c := x.anonymous(agent)
	paths := make([]string, 0, 30)
	for _, i := range x.r.Perm(len(smallScanPaths))[:27+x.r.IntN(4)] {
		paths = append(paths, smallScanPaths[i])
	}
	n := 55 + x.r.IntN(11)
	t := x.start
	for i := range n {
		if i%20 == 3 {
			c.send(t, listItems(x.r))
		} else {
			p := paths[i%len(paths)]
			if i >= len(paths) {
				p = pick(x.r, paths)
			}
			status := 404
			if p == "/admin/" || p == Base+"/admin" || p == Base+"/console" {
				status = 403
			}
			c.send(t, call{pick(x.r, []string{"GET", "GET", "GET", "HEAD"}), p, status, 0, errorBody(x.r), latency(x.r, 5)})
		}
		t = t.Add(durBetween(x.r, time.Second, 3*time.Second))
	}
}

// slowProbe walks a wordlist from a browser without credentials, each
// guess a new path, no faster than the budget of distinct failed templates
// per ten minutes, between ordinary catalogue calls every 20–60 s; for 40
// to 50 minutes.
func slowProbe(x *attackRun) {
	x.window(40*time.Minute, 50*time.Minute)
	c := x.anonymous(pick(x.r, browserAgents))
	i := x.r.IntN(len(probeWords))
	x.paced(x.start, tenMinutes, x.budget(KindIP, tenMinutes, MeasureFailedTemplates), func(t time.Time) {
		p, status := probePath(i)
		for status == 403 { // a 403 is no failed path
			i++
			p, status = probePath(i)
		}
		i++
		c.send(t, call{"GET", p, status, 0, errorBody(x.r), latency(x.r, 5)})
	})
	x.filler(x.start, 20*time.Second, 60*time.Second, x.browse(c))
}

// slowErrorsToken sends broken bids and order updates with a valid token
// at the budget of errors per ten minutes, between ordinary calls every
// 30–90 s, for 40 to 50 minutes; an update's body is the size of a good
// one (only its errors set it apart, not a body larger than updates take).
func slowErrorsToken(x *attackRun) {
	x.window(40*time.Minute, 50*time.Minute)
	c, t := x.loggedIn(pick(x.r, scriptAgents))
	x.paced(t, tenMinutes, x.budget(KindToken, tenMinutes, MeasureErrors), func(t time.Time) {
		k := call{shop.PutOrder.Method, Base + shop.PutOrder.Path, errorStatus(x.r), bytesBetween(x.r, 40, 900), errorBody(x.r), latency(x.r, 8)}
		if chance(x.r, 0.4) {
			k.method, k.path = shop.PatchOrder.Method, orderPath(orderIDMin+x.r.IntN(orderIDMax-orderIDMin))
			k.req = bytesBetween(x.r, shop.PatchOrder.ReqBytes[0], shop.PatchOrder.ReqBytes[1])
		}
		c.send(t, k)
	})
	x.filler(t, 30*time.Second, 90*time.Second, x.browse(c))
}

// plainBadQueries are malformed catalogue queries that carry no injection:
// the errors alone give the attacker away.
var plainBadQueries = []string{"/items?page=-1", "/items?page=abc", "/items?page=0", "/items/99999999999999999999", "/search?q=&page=NaN", "/items?page=1e9"}

// alsoRight lists the types besides its own that name a variant's
// attacker rightly (Attacker.AlsoRight).
func alsoRight(variant string) []string {
	if variant == "slow_errors_ip" {
		// Its queries break the shop's declared parameter types: the
		// specification check names it, and blocks it, minutes before its
		// errors add up over the hour.
		return []string{string(detect.AttackSchemaViolation)}
	}
	return nil
}

// slowErrorsIP sends malformed catalogue queries without credentials at
// the budget of errors per ten minutes, between ordinary calls every
// 20–60 s, for 40 to 50 minutes.
func slowErrorsIP(x *attackRun) {
	x.window(40*time.Minute, 50*time.Minute)
	c := x.anonymous(pick(x.r, scriptAgents))
	x.paced(x.start, tenMinutes, x.budget(KindIP, tenMinutes, MeasureErrors), func(t time.Time) {
		status := errorStatus(x.r)
		if status == 404 {
			status = 400
		}
		c.send(t, call{"GET", Base + pick(x.r, plainBadQueries), status, 0, errorBody(x.r), latency(x.r, 6)})
	})
	x.filler(x.start, 20*time.Second, 60*time.Second, x.browse(c))
}

// distributedStuffing tries breached e-mail addresses (one password each,
// the name in the body only) from 3 or 4 /24 networks, an attempt every 4
// to 12 s for 30 to 40 minutes, each address trying at most as many as the
// budget of failed logins per address (and at most twice); 1% succeed. It
// is named by its first network, and by any other of its networks or
// addresses (Attacker.Members).
func distributedStuffing(x *attackRun) {
	x.window(30*time.Minute, 40*time.Minute)
	perAddr := int(min(2, x.budget(KindIP, tenMinutes, MeasureFailedLogins)))
	attempts := int(x.stop.Sub(x.start)/(8*time.Second)) + 1
	nets := make([]string, 3+x.r.IntN(2))
	var pool []string
	for j := range nets {
		p := x.g.network()
		nets[j] = p.String()
		for _, a := range hosts(x.r, p, (attempts+perAddr*len(nets)-1)/(perAddr*len(nets))+1) {
			for range perAddr {
				pool = append(pool, a)
			}
		}
	}
	x.r.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	x.attribute(KindIP, nets[0])
	for _, n := range nets[1:] {
		x.a.Members = append(x.a.Members, Identity{KindIP, n})
	}
	// The app's format: a breach list's e-mail addresses in JSON.
	agent, form := pick(x.r, scriptAgents), false
	c := x.client(pool[0], x.g.loginHeaders(agent, "", form))
	for t, i := x.start, 0; t.Before(x.stop) && i < len(pool); t, i = t.Add(durBetween(x.r, 4*time.Second, 12*time.Second)), i+1 {
		c.setIP(pool[i])
		x.g.login(c, x.r, t, x.g.leakedUser(x.r), x.g.guess(x.r), form, chance(x.r, 0.01))
	}
	for id := range x.uses {
		if id.Kind == KindIP {
			x.a.Members = append(x.a.Members, id)
		}
	}
	sortIdentities(x.a.Members)
}

// distributedBruteForce tries 120 passwords for one account (the name in
// the body only, the attributed identity) from 120 addresses, one attempt
// each, spread evenly over 15 to 25 minutes.
func distributedBruteForce(x *attackRun) {
	x.window(15*time.Minute, 25*time.Minute)
	form := chance(x.r, 0.5)
	name := x.g.account(x.r, form)
	x.attribute(KindUsername, name)
	const n = 120
	gap := x.stop.Sub(x.start) / n
	for i := range n {
		c := x.client(x.g.attackIPs.addr(), x.g.loginHeaders(uniqueAgent(x.r), name, form))
		x.g.login(c, x.r, x.start.Add(gap*time.Duration(i)), name, x.g.guess(x.r), form, false)
	}
}

// passwordSpraying tries one or two common passwords on each of many
// accounts (names in the body only) from one address, at the budget of
// failed logins per address per ten minutes, for 45 to 55 minutes.
func passwordSpraying(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	c := x.anonymous(pick(x.r, browserAgents))
	c.setHeaders(x.g.loginHeaders(c.hdr["user-agent"], "", true))
	name, left := "", 0
	x.paced(x.start, tenMinutes, x.budget(KindIP, tenMinutes, MeasureFailedLogins), func(t time.Time) {
		if left == 0 {
			name, left = x.g.username(x.r), 1+x.r.IntN(2)
		}
		left--
		x.g.login(c, x.r, t, name, x.g.guess(x.r), true, false)
	})
}

// hopping uses one stolen token or session cookie from a new address every
// 6 to 10 minutes for 45 to 55 minutes, 3 to 5 ordinary calls 10–20 s
// apart from each, with its own browser: never more than two addresses in
// ten minutes. Where no benign credential of the kind is seen from two
// addresses in ten minutes (web sessions), every 11.5 to 15 minutes: one.
func hopping(kind string) func(x *attackRun) {
	return func(x *attackRun) {
		x.window(45*time.Minute, 55*time.Minute)
		lo, hi := 6*time.Minute, 10*time.Minute
		if x.g.ext.Max(kind, tenMinutes, MeasureAddresses) < 2 {
			lo, hi = 11*time.Minute+30*time.Second, 15*time.Minute
		}
		victim := x.g.account(x.r, kind == KindCookie)
		var cred string
		if kind == KindCookie {
			cred = x.g.secret(x.r, "", 40)
		} else {
			cred = x.g.secret(x.r, "", 32)
		}
		x.attribute(kind, cred)
		orders := []int{orderIDMin + x.r.IntN(orderIDMax-orderIDMin), orderIDMin + x.r.IntN(orderIDMax-orderIDMin)}
		for at := x.start; at.Before(x.stop); at = at.Add(durBetween(x.r, lo, hi)) {
			hdr := map[string]string{"user-agent": uniqueAgent(x.r), HeaderUsername: victim}
			if kind == KindCookie {
				hdr["cookie"] = SessionCookie + "=" + cred
			} else {
				hdr[HeaderToken] = "Bearer " + cred
			}
			c := x.client(x.g.attackIPs.addr(), hdr)
			t := at
			for range 3 + x.r.IntN(3) {
				x.sessionCall(c, t, orders)
				t = t.Add(durBetween(x.r, 10*time.Second, 20*time.Second))
			}
		}
	}
}

// slowExport pulls exports with a valid token, at most five in ten minutes
// (at least 2 minutes apart), each of as many records as keeps the ten
// minutes' responses at the budget of response bytes, and an order read
// a minute; for 45 to 55 minutes.
func slowExport(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	c, t := x.loggedIn(pick(x.r, scriptAgents))
	budget := x.budget(KindToken, tenMinutes, MeasureResponseBytes)
	reads := 10.0 * float64(shop.GetOrder.RespBytes[1]) // an order read a minute
	perExport := (budget - reads - float64(shop.Login.RespBytes[1])) / 5
	limit := max(1, int((perExport-shop.ExportEnvelope)/float64(shop.Export.RespBytes[1])))
	offset := 0
	x.paced(t, tenMinutes, 5, func(t time.Time) {
		c.send(t, export(x.r, limit, offset))
		offset += limit
	})
	id := orderIDMin + x.r.IntN(orderIDMax-orderIDMin)
	x.paced(t.Add(17*time.Second), tenMinutes, 10, func(t time.Time) { c.send(t, getOrder(x.r, id+x.r.IntN(1000))) })
}

// lowAndSlow is activity spread thin with a token or a web session: catalogue
// calls at the budget of calls per minute (under one a second), for 18 to
// 25 minutes.
func lowAndSlow(kind string) func(x *attackRun) {
	return func(x *attackRun) {
		x.window(18*time.Minute, 25*time.Minute)
		var c *client
		var t time.Time
		if kind == KindCookie {
			c, t = x.loggedInWeb(pick(x.r, browserAgents))
		} else {
			c, t = x.loggedIn(pick(x.r, scriptAgents))
		}
		x.paced(t, time.Minute, min(55, x.budget(kind, time.Minute, MeasureCalls)), func(t time.Time) {
			switch x.r.IntN(3) {
			case 0:
				c.send(t, listItems(x.r))
			case 1:
				c.send(t, popularItem(x.r))
			default:
				c.send(t, search(x.r))
			}
		})
	}
}

// loggedInWeb is loggedIn for a browser: a form login, then a session
// cookie, the attacker's identity.
func (x *attackRun) loggedInWeb(agent string) (*client, time.Time) {
	name := x.g.account(x.r, true)
	c := x.client(x.g.attackIPs.addr(), x.g.loginHeaders(agent, name, true))
	x.g.login(c, x.r, x.start, name, x.g.password(x.r), true, true)
	cookie := x.g.secret(x.r, "", 40)
	c.setHeaders(map[string]string{"user-agent": agent, HeaderUsername: name, "cookie": SessionCookie + "=" + cookie})
	x.attribute(KindCookie, cookie)
	return c, x.start.Add(durBetween(x.r, time.Second, 5*time.Second))
}

// slowWalk reads other people's orders with a valid token at the budget of
// distinct orders per ten minutes, for 45 to 55 minutes: by sequential IDs,
// or scattered over a range of 3,000; most are 403 or 404. An item list
// every 1–3 minutes.
func slowWalk(scattered bool) func(x *attackRun) {
	return func(x *attackRun) {
		x.window(45*time.Minute, 55*time.Minute)
		c, t := x.loggedIn(pick(x.r, scriptAgents))
		base := orderIDMin + x.r.IntN(orderIDMax-orderIDMin-100_000)
		id, seen := base, map[int]bool{}
		x.paced(t, tenMinutes, x.budget(KindToken, tenMinutes, MeasureOrderIDs), func(t time.Time) {
			if scattered {
				for id = base + x.r.IntN(3000); seen[id]; id = base + x.r.IntN(3000) {
				}
				seen[id] = true
			} else {
				id += 1 + x.r.IntN(2)
			}
			c.send(t, x.walkRead(id))
		})
		x.filler(t, time.Minute, 3*time.Minute, func(t time.Time) { c.send(t, listItems(x.r)) })
	}
}

// slowDelete deletes orders with a valid token at the budget of deletes per
// ten minutes, for 45 to 55 minutes, between order reads and item lists
// every 30–90 s; 75% succeed (204).
func slowDelete(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	c, t := x.loggedIn(pick(x.r, scriptAgents))
	x.paced(t, tenMinutes, x.budget(KindToken, tenMinutes, MeasureDeletes), func(t time.Time) {
		k := deleteOrder(x.r, orderIDMin+x.r.IntN(orderIDMax-orderIDMin))
		switch y := x.r.Float64(); {
		case y < 0.15:
			k.status, k.resp = 404, errorBody(x.r)
		case y < 0.25:
			k.status, k.resp = 403, errorBody(x.r)
		}
		c.send(t, k)
	})
	x.filler(t, 30*time.Second, 90*time.Second, func(t time.Time) {
		if chance(x.r, 0.5) {
			c.send(t, getOrder(x.r, orderIDMin+x.r.IntN(orderIDMax-orderIDMin)))
		} else {
			c.send(t, listItems(x.r))
		}
	})
}

// justAbove sends bodies to e (PUT /order or PATCH /order/{id}) of 1.2 to 2
// times the largest benign body the endpoint ever got, with a valid token,
// every 3 to 6 minutes for 30 to 45 minutes, between ordinary calls every
// 30–90 s; 60% are accepted, the rest 400.
func justAbove(e *shop.Endpoint) func(x *attackRun) {
	return func(x *attackRun) {
		x.window(30*time.Minute, 45*time.Minute)
		c, t := x.loggedIn(pick(x.r, scriptAgents))
		path := func() string { return Base + e.Path }
		if e == shop.PatchOrder {
			path = func() string { return orderPath(orderIDMin + x.r.IntN(orderIDMax-orderIDMin)) }
		}
		biggest := x.g.ext.MaxBody(e.Method, detect.TemplatePath(path()))
		for at := t; at.Before(x.stop); at = at.Add(durBetween(x.r, 3*time.Minute, 6*time.Minute)) {
			body := int64(between(x.r, 1.2, 2) * float64(biggest))
			k := call{e.Method, path(), e.Status, body, size(x.r, e.RespBytes), latency(x.r, e.LatencyMS)}
			if chance(x.r, 0.4) {
				k.status, k.resp = 400, errorBody(x.r)
			}
			c.send(at, k)
		}
		x.filler(t, 30*time.Second, 90*time.Second, x.browse(c))
	}
}
