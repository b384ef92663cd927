package scenario

import (
	"math"
	"strings"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server/demo/shop"
)

// A second set of stealthy variants (suffix _h2), one per attack type,
// written from the threat model only (an attacker who studied the benign
// population keeps every per-window measure at or under stealthShare of
// the busiest benign identity of its kind, and stands out only by its
// total or its shape), never from the engine's code. It was held out of
// tuning until session 16 and is a tuning set since (HeldOut false). Each
// differs from every other variant of its type in an identity or
// credential kind, an endpoint or a pacing an attacker would choose. They
// draw only from their own random streams (stealthTraffic's
// "stealth/<type>/<name>").

// heldOutVariants lists the second set (tuned on since session 16), in
// report order.
func heldOutVariants() []StealthVariant {
	return []StealthVariant{
		{TypeProbing, "cookie_recon_h2", false, Claim{KindCookie, tenMinutes, MeasureFailedTemplates, false}, Claim{KindCookie, time.Hour, MeasureFailedTemplates, false}, cookieRecon},
		{TypeExcessiveErrors, "cron_errors_h2", false, Claim{KindUsername, tenMinutes, MeasureErrors, false}, Claim{KindUsername, time.Hour, MeasureErrors, false}, cronErrors},
		{TypeCredentialStuffing, "subnet_spraying_h2", false, Claim{KindIP, tenMinutes, MeasureFailedLogins, false}, Claim{KindIP, time.Hour, MeasureFailedLogins, true}, subnetSpraying},
		{TypeStolenToken, "partner_key_hopping_h2", false, Claim{KindAPIKey, tenMinutes, MeasureAddresses, false}, Claim{KindAPIKey, time.Hour, MeasureAddresses, false}, partnerKeyHopping},
		{TypeDataExfiltration, "web_export_h2", false, Claim{KindCookie, tenMinutes, MeasureResponseBytes, false}, Claim{KindCookie, time.Hour, MeasureResponseBytes, false}, webExport},
		{TypeExtremeActivity, "subnet_spread_h2", false, Claim{KindIP, time.Minute, MeasureCalls, false}, Claim{KindIP, time.Hour, MeasureCalls, true}, subnetSpread},
		{TypeBOLAEnumeration, "session_churn_walk_h2", false, Claim{KindUsername, tenMinutes, MeasureOrderIDs, false}, Claim{KindUsername, time.Hour, MeasureOrderIDs, false}, sessionChurnWalk},
		{TypeMassDeletion, "account_cycling_delete_h2", false, Claim{KindIP, tenMinutes, MeasureDeletes, false}, Claim{KindIP, time.Hour, MeasureDeletes, false}, accountCyclingDelete},
		{TypeOversizedPayload, "cart_overfill_h2", false, Claim{}, Claim{}, cartOverfill},
	}
}

// quietBrowse is an ordinary call of a logged-in web or app session that
// never fails and carries no body: the item list, a search, a featured
// item, the cart or the profile.
func (x *attackRun) quietBrowse(c *client) func(time.Time) {
	return func(t time.Time) {
		switch x.r.IntN(5) {
		case 0:
			c.send(t, listItems(x.r))
		case 1:
			c.send(t, search(x.r))
		case 2:
			c.send(t, popularItem(x.r))
		case 3:
			c.send(t, cart(x.r))
		default:
			c.send(t, profile(x.r))
		}
	}
}

// appLogin logs name in from c with the app's JSON body and returns the
// bearer token the login gave, now carried by c.
func (x *attackRun) appLogin(c *client, t time.Time, agent, name, password string) string {
	c.setHeaders(x.g.loginHeaders(agent, name, false))
	x.g.login(c, x.r, t, name, password, false, true)
	tok := x.g.secret(x.r, "", 32)
	c.setHeaders(map[string]string{"user-agent": agent, HeaderUsername: name, HeaderToken: "Bearer " + tok})
	return tok
}

// subnetMembers names a distributed attacker by its /24 network, and by
// every address of it it used.
func (x *attackRun) subnetMembers(network string) {
	x.attribute(KindIP, network)
	for id := range x.uses {
		if id.Kind == KindIP {
			x.a.Members = append(x.a.Members, id)
		}
	}
	sortIdentities(x.a.Members)
}

// reconGuess is a guessed route near the shop's real ones: a sub-resource
// that does not exist (404), or a real route asked with a method it does
// not take (405). {id} takes one of the attacker's own order or item IDs.
type reconGuess struct {
	method, path string
	status       int
}

var reconGuesses = []reconGuess{
	{"GET", "/order/{id}/invoice", 404}, {"GET", "/order/{id}/refund", 404}, {"GET", "/order/{id}/history", 404},
	{"GET", "/order/{id}/owner", 404}, {"GET", "/order/{id}/payment", 404}, {"GET", "/items/{id}/reviews", 404},
	{"GET", "/items/{id}/bids", 404}, {"GET", "/items/{id}/seller", 404}, {"GET", "/profile/settings", 404},
	{"GET", "/profile/role", 404}, {"GET", "/profile/admin", 404}, {"GET", "/profile/orders", 404},
	{"GET", "/cart/checkout", 404}, {"GET", "/cart/coupon", 404}, {"GET", "/export/all", 404},
	{"GET", "/export/users", 404}, {"GET", "/users/me", 404}, {"GET", "/admin/orders", 404},
	{"GET", "/v2/items", 404}, {"GET", "/internal/orders", 404}, {"GET", "/bids", 404},
	{"GET", "/order", 405}, {"DELETE", "/profile", 405}, {"PUT", "/cart", 405},
	{"POST", "/export", 405}, {"POST", "/search", 405}, {"DELETE", "/items/{id}", 405},
	{"GET", "/login", 405}, {"PUT", "/items/{id}", 405}, {"DELETE", "/cart", 405},
}

// cookieRecon is a logged-in web session looking for hidden routes beside
// the real ones, in short bursts (as many guesses as the budget of failed
// templates per ten minutes, a few seconds apart) with pauses of over ten
// minutes, browsing between; for 45 to 55 minutes.
func cookieRecon(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	c, t := x.loggedInWeb(pick(x.r, browserAgents))
	n := int(x.budget(KindCookie, tenMinutes, MeasureFailedTemplates))
	order := orderIDMin + x.r.IntN(orderIDMax-orderIDMin)
	item := 1 + x.r.IntN(itemIDMax)
	guesses := x.r.Perm(len(reconGuesses))
	next := 0
	for at := t.Add(durBetween(x.r, 30*time.Second, 3*time.Minute)); at.Before(x.stop) && next < len(guesses); {
		for range n {
			if next == len(guesses) {
				break
			}
			g := reconGuesses[guesses[next]]
			next++
			id := order
			if strings.HasPrefix(g.path, "/items") {
				id = item
			}
			p := Base + replaceID(g.path, id)
			c.send(at, call{g.method, p, g.status, 0, errorBody(x.r), latency(x.r, 5)})
			at = at.Add(durBetween(x.r, 2*time.Second, 8*time.Second))
		}
		at = at.Add(durBetween(x.r, 10*time.Minute+30*time.Second, 14*time.Minute))
	}
	x.filler(t, 20*time.Second, 90*time.Second, x.quietBrowse(c))
}

// replaceID fills {id} of a path.
func replaceID(path string, id int) string { return strings.Replace(path, "{id}", itoa(id), 1) }

// cronErrors is a script run from cron on a server of the attacker's: every
// 10.75 to 12 minutes it logs its account in (a fresh token each run) and
// sends as many broken requests as the budget of errors per ten minutes
// (bids, updates, exports with bad parameters), with a call or two of its
// own; for 45 to 55 minutes.
func cronErrors(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	agent := pick(x.r, scriptAgents)
	name, password := x.g.account(x.r, false), x.g.password(x.r)
	x.attribute(KindUsername, name)
	c := x.client(x.g.attackIPs.addr(), nil)
	n := int(min(x.budget(KindUsername, tenMinutes, MeasureErrors), x.budget(KindToken, tenMinutes, MeasureErrors)))
	period := durBetween(x.r, 10*time.Minute+45*time.Second, 12*time.Minute)
	for run := x.start; run.Before(x.stop); run = run.Add(period + durBetween(x.r, 0, 20*time.Second)) {
		x.appLogin(c, run, agent, name, password)
		t := run.Add(durBetween(x.r, 300*time.Millisecond, time.Second))
		c.send(t, profile(x.r))
		for range n {
			t = t.Add(durBetween(x.r, time.Second, 3*time.Second))
			var k call
			switch x.r.IntN(3) {
			case 0:
				k = call{shop.PutOrder.Method, Base + shop.PutOrder.Path, errorStatus(x.r), bytesBetween(x.r, 40, 900), errorBody(x.r), latency(x.r, 8)}
			case 1:
				k = call{shop.PatchOrder.Method, orderPath(orderIDMin + x.r.IntN(orderIDMax-orderIDMin)), pick(x.r, []int{400, 422, 422}), bytesBetween(x.r, 20, 400), errorBody(x.r), latency(x.r, 8)}
			default:
				k = call{"GET", Base + shop.Export.Path + "?limit=" + pick(x.r, []string{"-1", "0", "abc", "1e9", "10&offset=-5"}), 400, 0, errorBody(x.r), latency(x.r, 6)}
			}
			c.send(t, k)
		}
		if chance(x.r, 0.5) {
			c.send(t.Add(durBetween(x.r, time.Second, 3*time.Second)), listItems(x.r))
		}
	}
}

// subnetSpraying is password spraying from the addresses of one /24
// network, each address used once: rounds of one common password over the
// same 30 to 45 web accounts (forms), a try every 5 to 12 s, with a pause
// of 12 to 20 minutes between rounds (under an account lockout's window);
// for 45 to 55 minutes. One try in 300 succeeds.
func subnetSpraying(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	p := x.g.network()
	addrs := hosts(x.r, p, 253)
	names := make([]string, 30+x.r.IntN(16))
	for i := range names {
		names[i] = x.g.account(x.r, true)
	}
	passwords := x.r.Perm(len(breachedPasswords))
	agent := pick(x.r, browserAgents)
	c := x.client(addrs[0], x.g.loginHeaders(agent, "", true))
	next := 0
	t := x.start
	for round := 0; t.Before(x.stop) && round < len(passwords); round++ {
		pw := breachedPasswords[passwords[round]]
		for _, i := range x.r.Perm(len(names)) {
			if !t.Before(x.stop) || next == len(addrs) {
				break
			}
			c.setIP(addrs[next])
			next++
			x.g.login(c, x.r, t, names[i], pw, true, chance(x.r, 1.0/300))
			t = t.Add(durBetween(x.r, 5*time.Second, 12*time.Second))
		}
		t = t.Add(durBetween(x.r, 12*time.Minute, 20*time.Minute))
	}
	x.subnetMembers(p.String())
}

// partnerKeyHopping uses a stolen partner API key the way the partner
// does (item lists, its orders, bulk bids and updates, at 0.1 to 0.3
// calls/s, with the partner's kind of user agent), from a new data-centre
// address every 10.5 to 14 minutes, so that no ten minutes see more
// addresses than the budget; for 45 to 55 minutes.
func partnerKeyHopping(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	key := x.g.secret(x.r, "pk_live_", 24)
	x.attribute(KindAPIKey, key)
	agent := "partner-sync/2." + itoa(x.r.IntN(5)) + " (+https://partner" + itoa(20+x.r.IntN(80)) + ".example)"
	c := x.client(x.g.attackIPs.addr(), map[string]string{"user-agent": agent, HeaderAPIKey: key})
	rate := between(x.r, 0.1, 0.3)
	orders := orderIDMin + x.r.IntN(orderIDMax-orderIDMin-5_000)
	// A hop at least as long as the window: b addresses in any window of
	// ten minutes holds b-1 hops, at least ten minutes apart.
	b := x.budget(KindAPIKey, tenMinutes, MeasureAddresses)
	lo := time.Duration(float64(tenMinutes)/math.Max(1, b-1)) + 30*time.Second
	hop := x.start.Add(durBetween(x.r, lo, lo+3*time.Minute+30*time.Second))
	for t := x.start; t.Before(x.stop); t = t.Add(seconds(x.r.ExpFloat64() / rate)) {
		if !t.Before(hop) {
			c.setIP(x.g.attackIPs.addr())
			hop = t.Add(durBetween(x.r, lo, lo+3*time.Minute+30*time.Second))
		}
		id := orders + x.r.IntN(5_000)
		var k call
		switch y := x.r.Float64(); {
		case y < 0.3:
			k = listItems(x.r)
		case y < 0.45:
			k = getItem(x.r)
		case y < 0.75:
			k = getOrder(x.r, id)
		case y < 0.9:
			k = putOrder(x.r, bytesBetween(x.r, 1_000, 6_000))
		case y < 0.97:
			k = patchOrder(x.r, id)
		default:
			k = search(x.r)
		}
		c.send(t, k)
	}
}

// webExport pulls the export page by page from a web session: five pages
// per ten minutes at least two minutes apart, each as large as keeps both
// the minute's and the ten minutes' responses within the budgets of
// response bytes, between small calls (the cart, the profile, an order)
// every 1.5 to 3 minutes; for 45 to 55 minutes.
func webExport(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	c, t := x.loggedInWeb(pick(x.r, browserAgents))
	b10 := x.budget(KindCookie, tenMinutes, MeasureResponseBytes)
	b1 := x.budget(KindCookie, time.Minute, MeasureResponseBytes)
	small := float64(max(shop.Cart.RespBytes[1], shop.Profile.RespBytes[1], shop.GetOrder.RespBytes[1]))
	perPage := math.Min((b10-8*small-float64(shop.Login.RespBytes[1]))/5, b1-small)
	limit := max(1, int((perPage-shop.ExportEnvelope)/float64(shop.Export.RespBytes[1])))
	offset := 0
	x.paced(t.Add(durBetween(x.r, 10*time.Second, time.Minute)), tenMinutes, 5, func(t time.Time) {
		c.send(t, export(x.r, limit, offset))
		offset += limit
	})
	order := orderIDMin + x.r.IntN(orderIDMax-orderIDMin)
	x.filler(t, 90*time.Second, 3*time.Minute, func(t time.Time) {
		switch x.r.IntN(3) {
		case 0:
			c.send(t, cart(x.r))
		case 1:
			c.send(t, profile(x.r))
		default:
			c.send(t, getOrder(x.r, order))
		}
	})
}

// subnetSpread is catalogue traffic without credentials spread over the
// addresses of one /24 network, each with its own browser user agent for 1
// to 3 minutes, together 52 to 55 calls a minute at most (under one a
// second), for 22 to 25 minutes.
func subnetSpread(x *attackRun) {
	x.window(22*time.Minute, 25*time.Minute)
	p := x.g.network()
	addrs := hosts(x.r, p, 253)
	c := x.client(addrs[0], map[string]string{"user-agent": uniqueAgent(x.r)})
	next := 1
	rotate := x.start.Add(durBetween(x.r, time.Minute, 3*time.Minute))
	n := min(52+float64(x.r.IntN(4)), x.budget(KindIP, time.Minute, MeasureCalls))
	x.paced(x.start, time.Minute, n, func(t time.Time) {
		if !t.Before(rotate) && next < len(addrs) {
			c = x.client(addrs[next], map[string]string{"user-agent": uniqueAgent(x.r)})
			next++
			rotate = t.Add(durBetween(x.r, time.Minute, 3*time.Minute))
		}
		switch x.r.IntN(3) {
		case 0:
			c.send(t, listItems(x.r))
		case 1:
			c.send(t, getItem(x.r))
		default:
			c.send(t, search(x.r))
		}
	})
	x.subnetMembers(p.String())
}

// sessionChurnWalk reads other people's orders downwards from an ID of its
// own account at the budget of distinct orders per ten minutes (of a user
// name's and of a token's), logging in again for a fresh token after every
// 0.7 times as many orders as one person's token reads in an hour, so that
// every token stays small and only the account adds up; an item list every
// 1 to 3 minutes; for 45 to 55 minutes.
func sessionChurnWalk(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	agent := pick(x.r, appAgents)
	name, password := x.g.account(x.r, false), x.g.password(x.r)
	x.attribute(KindUsername, name)
	c := x.client(x.g.attackIPs.addr(), nil)
	x.appLogin(c, x.start, agent, name, password)
	perToken := max(5, int(stealthShare*x.g.ext.PersonMax(KindToken, time.Hour, MeasureOrderIDs)))
	n := min(x.budget(KindUsername, tenMinutes, MeasureOrderIDs), x.budget(KindToken, tenMinutes, MeasureOrderIDs))
	id := orderIDMin + 100_000 + x.r.IntN(orderIDMax-orderIDMin-100_000)
	read := 0
	start := x.start.Add(durBetween(x.r, 2*time.Second, 10*time.Second))
	nextList := start.Add(durBetween(x.r, time.Minute, 3*time.Minute))
	x.paced(start, tenMinutes, n, func(t time.Time) {
		if read == perToken { // a fresh token just before the read
			x.appLogin(c, t.Add(-durBetween(x.r, time.Second, 3*time.Second)), agent, name, password)
			read = 0
		}
		read++
		id -= 1 + x.r.IntN(3)
		c.send(t, x.walkRead(id))
		if !t.Before(nextList) {
			c.send(t.Add(durBetween(x.r, time.Second, 4*time.Second)), listItems(x.r))
			nextList = t.Add(durBetween(x.r, time.Minute, 3*time.Minute))
		}
	})
}

// accountCyclingDelete deletes orders with many taken-over accounts from
// one address: each account logs in (the app's JSON), looks at its profile
// or an order, and deletes one or two of its own orders; deletes at the
// budget of deletes per address per ten minutes, for 45 to 55 minutes;
// 90% succeed (204), the rest are already gone (404).
func accountCyclingDelete(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	agent := pick(x.r, appAgents)
	ip := x.g.attackIPs.addr()
	x.attribute(KindIP, ip)
	c := x.client(ip, nil)
	var orders []int
	left := 0
	// The first account logs in at the start, its first delete follows.
	x.paced(x.start.Add(20*time.Second), tenMinutes, x.budget(KindIP, tenMinutes, MeasureDeletes), func(t time.Time) {
		if left == 0 { // the next account: a login and a look, before the delete
			at := t.Add(-durBetween(x.r, 8*time.Second, 18*time.Second))
			x.appLogin(c, at, agent, x.g.account(x.r, false), x.g.password(x.r))
			orders = orders[:0]
			for range 2 + x.r.IntN(4) {
				orders = append(orders, orderIDMin+x.r.IntN(orderIDMax-orderIDMin))
			}
			at = at.Add(durBetween(x.r, time.Second, 4*time.Second))
			if chance(x.r, 0.5) {
				c.send(at, profile(x.r))
			} else {
				c.send(at, getOrder(x.r, orders[0]))
			}
			left = 1 + x.r.IntN(2)
		}
		left--
		k := deleteOrder(x.r, orders[left])
		if chance(x.r, 0.1) {
			k.status, k.resp = 404, errorBody(x.r)
		}
		c.send(t, k)
	})
}

// cartOverfill adds to the cart from a web session with bodies of 1.2 to 2
// times the largest benign one, two or three a few seconds apart every 6
// to 12 minutes, for 30 to 45 minutes, browsing between; 70% are
// accepted, the rest 400.
func cartOverfill(x *attackRun) {
	x.window(30*time.Minute, 45*time.Minute)
	c, t := x.loggedInWeb(pick(x.r, browserAgents))
	e := shop.AddToCart
	biggest := x.g.ext.MaxBody(e.Method, detect.TemplatePath(Base+e.Path))
	for at := t.Add(durBetween(x.r, 20*time.Second, 2*time.Minute)); at.Before(x.stop); at = at.Add(durBetween(x.r, 6*time.Minute, 12*time.Minute)) {
		for range 2 + x.r.IntN(2) {
			body := int64(between(x.r, 1.2, 2) * float64(biggest))
			k := call{e.Method, Base + e.Path, e.Status, body, size(x.r, e.RespBytes), latency(x.r, e.LatencyMS)}
			if chance(x.r, 0.3) {
				k.status, k.resp = 400, errorBody(x.r)
			}
			c.send(at, k)
			at = at.Add(durBetween(x.r, 2*time.Second, 9*time.Second))
		}
	}
	x.filler(t, 30*time.Second, 90*time.Second, x.quietBrowse(c))
}
