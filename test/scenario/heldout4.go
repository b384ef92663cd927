package scenario

import (
	"math"
	"strings"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server/demo/shop"
)

// A fourth held-out set of stealthy variants (names ending _h4), written
// from the threat model only and never tuned on: the held-out set in the
// suite's runs since session 17 (it waited behind Config.NextHeldOut
// before).
//
// Each differs from its type's tuning variants and from the _h2 and _h3
// sets in a dimension an attacker chooses: the identity it acts under (a
// /24 network, an API key, a user name over many credentials or
// addresses, one address over many accounts), the endpoint, or how it
// spreads its calls. Like every stealthy variant, each keeps its Under
// measure per window at or under stealthShare of the busiest benign
// identity of its kind, and draws only from its own random streams (x.r).

// heldOutVariants4 lists the fourth held-out set, in report order.
func heldOutVariants4() []StealthVariant {
	return []StealthVariant{
		{TypeProbing, "subnet_scan_h4", true, Claim{KindIP, tenMinutes, MeasureFailedTemplates, false}, Claim{KindIP, time.Hour, MeasureFailedTemplates, true}, subnetScan4},
		// No benign API key is one person's (PersonMax is 0): the key's
		// errors, a large share of its calls, are what set it apart.
		{TypeExcessiveErrors, "partner_key_errors_h4", true, Claim{KindAPIKey, tenMinutes, MeasureErrors, false}, Claim{KindAPIKey, time.Hour, MeasureErrors, false}, partnerKeyErrors4},
		{TypeCredentialStuffing, "combo_check_h4", true, Claim{KindIP, tenMinutes, MeasureLoginNames, false}, Claim{KindIP, time.Hour, MeasureLoginNames, false}, comboCheck4},
		{TypeStolenToken, "infostealer_tokens_h4", true, Claim{KindUsername, tenMinutes, MeasureAddresses, false}, Claim{KindUsername, time.Hour, MeasureAddresses, false}, infostealerTokens4},
		{TypeDataExfiltration, "pooled_export_h4", true, Claim{KindIP, tenMinutes, MeasureResponseBytes, false}, Claim{KindIP, time.Hour, MeasureResponseBytes, false}, pooledExport4},
		{TypeExtremeActivity, "relogin_flood_h4", true, Claim{KindUsername, time.Minute, MeasureCalls, false}, Claim{KindUsername, time.Hour, MeasureCalls, false}, reloginFlood4},
		// As for the errors: its reads of others' orders (403, 404), not a
		// total a person's key would reach, set it apart.
		{TypeBOLAEnumeration, "key_walk_h4", true, Claim{KindAPIKey, tenMinutes, MeasureOrderIDs, false}, Claim{KindAPIKey, time.Hour, MeasureOrderIDs, false}, keyWalk4},
		{TypeMassDeletion, "subnet_accounts_delete_h4", true, Claim{KindIP, tenMinutes, MeasureDeletes, false}, Claim{KindIP, time.Hour, MeasureDeletes, true}, subnetAccountsDelete4},
		// Login bodies of 1.2 to 2 times the largest benign one (checked
		// by TestHeldOut4Shapes: the shared test skips login calls).
		{TypeOversizedPayload, "login_overflow_h4", true, Claim{}, Claim{}, loginOverflow4},
	}
}

// scanWords4 are a distributed scanner's guesses under the shop's base:
// each its own endpoint template, none a route the shop has.
var scanWords4 = []string{
	"admin", "api-docs", "swagger.json", "openapi.yaml", "graphql", "debug", "metrics", "env", "config",
	"backup", "users", "accounts", "payments", "invoices", "refunds", "coupons", "giftcards", "wallet",
	"internal", "staging", "v1", "v2", "v3", "health", "status", "version", "logs", "trace", "webhooks",
	"uploads", "files", "reports", "stats", "keys", "tokens", "sessions", "oauth", "sellers", "vendors",
	"employees", "jobs", "queue", "tasks", "cron", "console", "private", "old", "test", "dev", "tmp",
}

// subnetScan4 scans the API for hidden routes from the addresses of one
// /24 network, each address used once: two or three guesses (at most the
// budget of failed templates per address per ten minutes) a few seconds to
// a minute apart, with a catalogue call now and then, its own user agent;
// the next address 20 to 90 s after; for 40 to 50 minutes.
func subnetScan4(x *attackRun) {
	x.window(40*time.Minute, 50*time.Minute)
	p := x.g.network()
	addrs := hosts(x.r, p, 253)
	per := int(x.budget(KindIP, tenMinutes, MeasureFailedTemplates))
	words := x.r.Perm(len(scanWords4))
	next, w := 0, 0
	for t := x.start; t.Before(x.stop) && next < len(addrs) && w < len(words); next++ {
		agent := pick(x.r, scriptAgents)
		if chance(x.r, 0.4) {
			agent = uniqueAgent(x.r)
		}
		c := x.client(addrs[next], map[string]string{"user-agent": agent})
		if chance(x.r, 0.5) {
			c.send(t, listItems(x.r))
			t = t.Add(durBetween(x.r, 2*time.Second, 15*time.Second))
		}
		for range min(per, 2+x.r.IntN(2)) {
			if w == len(words) {
				break
			}
			c.send(t, call{pick(x.r, []string{"GET", "GET", "GET", "HEAD"}), Base + "/" + scanWords4[words[w]], 404, 0, errorBody(x.r), latency(x.r, 5)})
			w++
			t = t.Add(durBetween(x.r, 3*time.Second, 60*time.Second))
		}
		t = t.Add(durBetween(x.r, 20*time.Second, 90*time.Second))
	}
	x.subnetMembers(p.String())
}

// partnerAgent4 is an integration's user agent of a partner of its own.
func (x *attackRun) partnerAgent4() string {
	return "partner-connector/" + itoa(1+x.r.IntN(4)) + "." + itoa(x.r.IntN(10)) + " (+https://" + pick(x.r, lastNames) + "-trading.example)"
}

// partnerKeyErrors4 is a partner API key sending malformed requests (bulk
// bids and updates that fail validation, exports with broken parameters)
// at the budget of errors per key per ten minutes, between a partner's
// ordinary calls (item lists, its own orders, well-formed bulk bids) every
// 5 to 20 s; for 45 to 55 minutes.
func partnerKeyErrors4(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	key := x.g.secret(x.r, "pk_live_", 24)
	x.attribute(KindAPIKey, key)
	c := x.client(x.g.attackIPs.addr(), map[string]string{"user-agent": x.partnerAgent4(), HeaderAPIKey: key})
	orders := orderIDMin + x.r.IntN(orderIDMax-orderIDMin-5_000)
	x.paced(x.start.Add(durBetween(x.r, 10*time.Second, time.Minute)), tenMinutes, x.budget(KindAPIKey, tenMinutes, MeasureErrors), func(t time.Time) {
		status := pick(x.r, []int{400, 400, 422, 422, 500})
		var k call
		switch x.r.IntN(3) {
		case 0:
			k = call{shop.PutOrder.Method, Base + shop.PutOrder.Path, status, bytesBetween(x.r, 1_000, 6_000), errorBody(x.r), latency(x.r, 15)}
		case 1:
			k = call{shop.PatchOrder.Method, orderPath(orders + x.r.IntN(5_000)), status, size(x.r, shop.PatchOrder.ReqBytes), errorBody(x.r), latency(x.r, 15)}
		default:
			k = call{"GET", Base + shop.Export.Path + "?limit=" + pick(x.r, []string{"-100", "0", "all", "1e6", "500&offset=abc", "5000&offset=-1"}), 400, 0, errorBody(x.r), latency(x.r, 6)}
		}
		if status == 500 {
			k.ms = latency(x.r, 300)
		}
		c.send(t, k)
	})
	x.filler(x.start, 5*time.Second, 20*time.Second, func(t time.Time) {
		switch y := x.r.Float64(); {
		case y < 0.35:
			c.send(t, listItems(x.r))
		case y < 0.7:
			c.send(t, getOrder(x.r, orders+x.r.IntN(5_000)))
		case y < 0.85:
			c.send(t, ok(x.r, shop.PutOrder, shop.PutOrder.Path, bytesBetween(x.r, 1_000, 6_000)))
		default:
			c.send(t, search(x.r))
		}
	})
}

// comboCheck4 checks a validated combo list (breached e-mail addresses
// with their passwords, half of which still work) from one address with
// the app's JSON logins: a new name each try, as many names per ten
// minutes as keep the address's failed logins at their budget (one try in
// two fails) and its names at theirs; each account that works is looked
// at (profile, cart) with the token it gave. For 45 to 55 minutes.
func comboCheck4(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	agent := pick(x.r, appAgents)
	c := x.anonymous(agent)
	fails := x.budget(KindIP, tenMinutes, MeasureFailedLogins)
	// Tries go in pairs, one of each failing: any 2f-1 tries in a row
	// hold at most f failures.
	n := min(x.budget(KindIP, tenMinutes, MeasureLoginNames), 2*fails-1)
	i, failFirst := 0, false
	x.paced(x.start, tenMinutes, n, func(t time.Time) {
		if i%2 == 0 {
			failFirst = chance(x.r, 0.5)
		}
		good := (i%2 == 0) != failFirst
		i++
		name := x.g.leakedUser(x.r)
		c.setHeaders(x.g.loginHeaders(agent, name, false))
		x.g.login(c, x.r, t, name, x.g.guess(x.r), false, good)
		if !good {
			return
		}
		c.setHeaders(map[string]string{"user-agent": agent, HeaderUsername: name, HeaderToken: "Bearer " + x.g.secret(x.r, "", 32)})
		at := t.Add(durBetween(x.r, time.Second, 4*time.Second))
		c.send(at, profile(x.r))
		if chance(x.r, 0.5) {
			c.send(at.Add(durBetween(x.r, time.Second, 5*time.Second)), cart(x.r))
		}
	})
}

// infostealerTokens4 replays a victim's app sessions stolen one after the
// other (malware on the victim's device sends each new token out): each
// token from one new address of its own, 3 to 6 ordinary session calls
// 10 to 40 s apart, the next token 6 to 10 minutes later (over ten minutes
// when the budget of addresses per user name is one); for 45 to 55
// minutes. Each token looks like one device's; only the victim's name
// moves. Its tokens are also its Members.
func infostealerTokens4(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	victim := x.g.account(x.r, false)
	x.attribute(KindUsername, victim)
	lo, hi := 6*time.Minute, 10*time.Minute
	if x.budget(KindUsername, tenMinutes, MeasureAddresses) < 2 {
		lo, hi = 10*time.Minute+30*time.Second, 14*time.Minute
	}
	agent := pick(x.r, appAgents)
	orders := []int{orderIDMin + x.r.IntN(orderIDMax-orderIDMin), orderIDMin + x.r.IntN(orderIDMax-orderIDMin)}
	for at := x.start; at.Before(x.stop); at = at.Add(durBetween(x.r, lo, hi)) {
		tok := x.g.secret(x.r, "", 32)
		x.a.Members = append(x.a.Members, Identity{KindToken, tok})
		c := x.client(x.g.attackIPs.addr(), map[string]string{"user-agent": agent, HeaderUsername: victim, HeaderToken: "Bearer " + tok})
		t := at
		for range 3 + x.r.IntN(4) {
			x.sessionCall(c, t, orders)
			t = t.Add(durBetween(x.r, 10*time.Second, 40*time.Second))
		}
	}
	sortIdentities(x.a.Members)
}

// pooledExport4 pulls the export from one address with a pool of accounts
// (an insider's or taken-over ones): each logs in with the app's JSON,
// looks at its profile and pulls two export pages a minute or two apart,
// together 0.7 times what one person's token receives in an hour at most;
// the next account 30 s to 2 minutes after. For 45 to 55 minutes.
func pooledExport4(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	agent := pick(x.r, appAgents)
	ip := x.g.attackIPs.addr()
	x.attribute(KindIP, ip)
	c := x.client(ip, nil)
	perToken := stealthShare*x.g.ext.PersonMax(KindToken, time.Hour, MeasureResponseBytes) - float64(shop.Login.RespBytes[1]+shop.Profile.RespBytes[1])
	limit := max(1, int((perToken/2-shop.ExportEnvelope)/float64(shop.Export.RespBytes[1])))
	for t := x.start; t.Before(x.stop); {
		x.appLogin(c, t, agent, x.g.account(x.r, false), x.g.password(x.r))
		t = t.Add(durBetween(x.r, 2*time.Second, 8*time.Second))
		c.send(t, profile(x.r))
		offset := x.r.IntN(50) * 1_000
		for range 2 {
			t = t.Add(durBetween(x.r, 40*time.Second, 2*time.Minute))
			c.send(t, export(x.r, limit, offset))
			offset += limit
		}
		t = t.Add(durBetween(x.r, 30*time.Second, 2*time.Minute))
	}
}

// reloginFlood4 is activity spread thin over an account's sessions: two
// app sessions of one account (a phone and a tablet) share its catalogue
// calls in turn, at the budget of calls per minute of a user name (each
// session under the budget of a token's), each logging in again for a
// fresh token after 0.7 times as many calls as one person's token makes in
// an hour, from a new address when the last change is over ten minutes
// old; for 38 to 45 minutes.
func reloginFlood4(x *attackRun) {
	x.window(38*time.Minute, 45*time.Minute)
	name, password := x.g.account(x.r, false), x.g.password(x.r)
	x.attribute(KindUsername, name)
	type session struct {
		c     *client
		agent string
		calls int
	}
	ip := x.g.attackIPs.addr()
	ss := []*session{{c: x.client(ip, nil), agent: pick(x.r, appAgents)}, {c: x.client(ip, nil), agent: pick(x.r, appAgents)}}
	x.appLogin(ss[0].c, x.start, ss[0].agent, name, password)
	x.appLogin(ss[1].c, x.start.Add(durBetween(x.r, 5*time.Second, 30*time.Second)), ss[1].agent, name, password)
	perToken := max(20, int(stealthShare*x.g.ext.PersonMax(KindToken, time.Hour, MeasureCalls)))
	n := min(x.budget(KindUsername, time.Minute, MeasureCalls), 2*x.budget(KindToken, time.Minute, MeasureCalls))
	moved, turn := x.start, 0
	x.paced(x.start.Add(durBetween(x.r, 35*time.Second, 50*time.Second)), time.Minute, n, func(t time.Time) {
		s := ss[turn%2]
		turn++
		if s.calls == perToken {
			if t.Sub(moved) > tenMinutes+time.Minute {
				ip = x.g.attackIPs.addr()
				moved = t
			}
			for _, o := range ss {
				o.c.setIP(ip)
			}
			// The login stands in for the call the pace had for t.
			x.appLogin(s.c, t, s.agent, name, password)
			s.calls = 0
			return
		}
		s.calls++
		switch x.r.IntN(4) {
		case 0:
			s.c.send(t, listItems(x.r))
		case 1:
			s.c.send(t, popularItem(x.r))
		case 2: // the featured items again: a flood, not a walk over IDs
			s.c.send(t, popularItem(x.r))
		default:
			s.c.send(t, search(x.r))
		}
	})
}

// keyWalk4 is a partner's API key reading other partners' orders: it
// reads its own orders now and then (200) and walks the IDs beyond its own
// range one or two at a time (mostly 403 or 404), together at the budget
// of distinct orders per key per ten minutes, between a partner's item
// lists and bulk bids every 15 to 45 s; for 45 to 55 minutes.
func keyWalk4(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	key := x.g.secret(x.r, "pk_live_", 24)
	x.attribute(KindAPIKey, key)
	c := x.client(x.g.attackIPs.addr(), map[string]string{"user-agent": x.partnerAgent4(), HeaderAPIKey: key})
	own := orderIDMin + x.r.IntN(orderIDMax-orderIDMin-200_000)
	n := x.budget(KindAPIKey, tenMinutes, MeasureOrderIDs)
	mine := math.Max(1, math.Floor(n/5))
	id := own + 5_000
	x.paced(x.start.Add(durBetween(x.r, 5*time.Second, 30*time.Second)), tenMinutes, n-mine, func(t time.Time) {
		id += 1 + x.r.IntN(2)
		c.send(t, x.walkRead(id))
	})
	x.paced(x.start, tenMinutes, mine, func(t time.Time) { c.send(t, getOrder(x.r, own+x.r.IntN(5_000))) })
	x.filler(x.start, 15*time.Second, 45*time.Second, func(t time.Time) {
		if chance(x.r, 0.6) {
			c.send(t, listItems(x.r))
		} else {
			c.send(t, ok(x.r, shop.PutOrder, shop.PutOrder.Path, bytesBetween(x.r, 1_000, 6_000)))
		}
	})
}

// subnetAccountsDelete4 deletes orders with many taken-over accounts from
// the addresses of one /24 network, each address one account used once:
// it logs in (the app's JSON or the web form), reads one to three of the
// account's orders and deletes one to three of them, a few seconds after
// reading each; the next account 1 to 3 minutes after. 90% of the deletes
// succeed (204), the rest find the order gone (404). For 45 to 55 minutes.
func subnetAccountsDelete4(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	p := x.g.network()
	addrs := hosts(x.r, p, 253)
	per := min(3, int(x.budget(KindIP, tenMinutes, MeasureDeletes)))
	next := 0
	for t := x.start; t.Before(x.stop) && next < len(addrs); next++ {
		web := chance(x.r, 0.3)
		agent := pick(x.r, appAgents)
		if web {
			agent = pick(x.r, browserAgents)
		}
		name := x.g.account(x.r, web)
		c := x.client(addrs[next], x.g.loginHeaders(agent, name, web))
		x.g.login(c, x.r, t, name, x.g.password(x.r), web, true)
		hdr := map[string]string{"user-agent": agent, HeaderUsername: name}
		if web {
			hdr["cookie"] = SessionCookie + "=" + x.g.secret(x.r, "", 40)
		} else {
			hdr[HeaderToken] = "Bearer " + x.g.secret(x.r, "", 32)
		}
		c.setHeaders(hdr)
		for range 1 + x.r.IntN(per) {
			id := orderIDMin + x.r.IntN(orderIDMax-orderIDMin)
			t = t.Add(durBetween(x.r, 3*time.Second, 15*time.Second))
			c.send(t, getOrder(x.r, id))
			t = t.Add(durBetween(x.r, 2*time.Second, 8*time.Second))
			k := deleteOrder(x.r, id)
			if chance(x.r, 0.1) {
				k.status, k.resp = 404, errorBody(x.r)
			}
			c.send(t, k)
		}
		t = t.Add(durBetween(x.r, time.Minute, 3*time.Minute))
	}
	x.subnetMembers(p.String())
}

// loginOverflowBody4 is the app's JSON login of name whose password is
// padded (a long string testing how the shop truncates or stores it) to
// size bytes where the name leaves room.
func loginOverflowBody4(name, password string, size int) string {
	base := LoginBody(name, password, false)
	pad := max(0, size-len(base))
	return LoginBody(name, password+strings.Repeat("A", pad), false)
}

// loginOverflow4 tests the login's handling of long input without
// credentials of note: every 3 to 6 minutes an app login of an account of
// its own whose password is padded to make the body 1.2 to 2 times the
// largest benign login body; 60% are refused (400), the rest fail (401).
// Catalogue calls every 30 to 90 s between; for 30 to 45 minutes.
func loginOverflow4(x *attackRun) {
	x.window(30*time.Minute, 45*time.Minute)
	agent := pick(x.r, appAgents)
	c := x.anonymous(agent)
	name, password := x.g.account(x.r, false), x.g.secret(x.r, "", 10)
	biggest := x.g.ext.MaxBody(shop.Login.Method, detect.TemplatePath(LoginPath))
	for at := x.start; at.Before(x.stop); at = at.Add(durBetween(x.r, 3*time.Minute, 6*time.Minute)) {
		body := loginOverflowBody4(name, password, int(between(x.r, 1.2, 2)*float64(biggest)))
		k := login(x.r, name, false)
		k.req = int64(len(body))
		if chance(x.r, 0.6) {
			k.status = 400
		}
		c.setHeaders(x.g.loginHeaders(agent, name, false))
		c.sendBody(at, k, body, name)
	}
	c.setHeaders(map[string]string{"user-agent": agent})
	x.filler(x.start, 30*time.Second, 90*time.Second, x.browse(c))
}
