package scenario

import (
	"strings"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server/demo/shop"
)

// A third set of stealthy variants (names ending _h3), one per attack
// type, written from the threat model only (never from the engine's code,
// nor from the second set's): held out until session 17, a tuning set
// since (HeldOut false). Each differs from
// its type's tuning variants in a dimension an attacker chooses: the
// identity it acts under, the endpoint, or its pacing. Like every stealthy
// variant, each keeps its measures per window at or under the busiest
// benign identity of its kind (budget), and draws only from its own random
// streams.

// heldOutVariants3 lists the third held-out set, in report order.
func heldOutVariants3() []StealthVariant {
	return []StealthVariant{
		{TypeProbing, "app_api_guess_h3", false, Claim{KindToken, tenMinutes, MeasureFailedTemplates, false}, Claim{KindToken, time.Hour, MeasureFailedTemplates, false}, appAPIGuess},
		{TypeExcessiveErrors, "cart_tamper_h3", false, Claim{KindCookie, tenMinutes, MeasureErrors, false}, Claim{KindCookie, time.Hour, MeasureErrors, false}, cartTamper},
		{TypeCredentialStuffing, "lockout_dodge_h3", false, Claim{KindUsername, tenMinutes, MeasureFailedLogins, false}, Claim{KindUsername, time.Hour, MeasureFailedLogins, false}, lockoutDodge},
		// Two addresses at once, each under the budget: set apart by its
		// shape (two clients interleaving one token), not by a total.
		{TypeStolenToken, "concurrent_session_h3", false, Claim{KindToken, tenMinutes, MeasureAddresses, false}, Claim{}, concurrentSession},
		{TypeDataExfiltration, "burst_export_h3", false, Claim{KindToken, tenMinutes, MeasureResponseBytes, false}, Claim{KindToken, time.Hour, MeasureResponseBytes, false}, burstExport},
		{TypeExtremeActivity, "agent_rotation_h3", false, Claim{KindIP, time.Minute, MeasureCalls, false}, Claim{KindIP, time.Hour, MeasureCalls, false}, agentRotation},
		{TypeBOLAEnumeration, "web_burst_walk_h3", false, Claim{KindCookie, tenMinutes, MeasureOrderIDs, false}, Claim{KindCookie, time.Hour, MeasureOrderIDs, false}, webBurstWalk},
		{TypeMassDeletion, "web_delete_bursts_h3", false, Claim{KindCookie, tenMinutes, MeasureDeletes, false}, Claim{KindCookie, time.Hour, MeasureDeletes, false}, webDeleteBursts},
		{TypeOversizedPayload, "key_overfill_h3", false, Claim{}, Claim{}, keyOverfill},
	}
}

// bursts calls fn in bursts of n calls, gap (lo to hi) apart, from from
// until stop; the next burst starts more than w after the last call of the
// one before (plus a pause of pause), so that no window of length w holds
// calls of two bursts: none holds more than n.
func (x *attackRun) bursts(from time.Time, w time.Duration, n int, lo, hi, pause time.Duration, fn func(t time.Time)) {
	n = max(1, n)
	for t := from; t.Before(x.stop); {
		last := t
		for i := 0; i < n && t.Before(x.stop); i++ {
			fn(t)
			last = t
			t = t.Add(durBetween(x.r, lo, hi))
		}
		t = last.Add(w + 10*time.Millisecond + durBetween(x.r, 0, pause))
	}
}

// spacing is the gap that keeps calls under the budget of kind's m per
// minute: a minute over that budget, and a little (the truncation of
// recorded times to the millisecond).
func (x *attackRun) spacing(kind string, m Measure) time.Duration {
	return time.Minute/time.Duration(x.budget(kind, time.Minute, m)) + 10*time.Millisecond
}

// apiGuess is a guess at a route the app's API might have: a sibling or a
// sub-resource of a real one, or a method a real route does not take.
type apiGuess struct {
	method, path string // path under Base; {id} is filled in
	status       int
}

// apiGuesses are what someone reading the app's traffic guesses next: each
// a template of its own.
var apiGuesses = []apiGuess{
	{"GET", "/v2/items", 404}, {"GET", "/v1/order/{id}", 404}, {"GET", "/order/{id}/invoice", 404},
	{"GET", "/order/{id}/history", 404}, {"GET", "/order/{id}/payment", 404}, {"GET", "/users/me", 404},
	{"GET", "/profile/settings", 404}, {"GET", "/profile/addresses", 404}, {"POST", "/cart/checkout", 404},
	{"POST", "/cart/coupon", 404}, {"GET", "/items/{id}/bids", 404}, {"GET", "/items/{id}/seller", 404},
	{"GET", "/admin/orders", 404}, {"GET", "/export/all", 404}, {"GET", "/wallet", 404},
	{"GET", "/notifications", 404}, {"GET", "/search/suggest", 404}, {"DELETE", "/profile", 405},
	{"PUT", "/items/{id}", 405}, {"POST", "/export", 405}, {"DELETE", "/cart", 405}, {"POST", "/order/{id}", 405},
}

// appAPIGuess explores the API from inside a session of the app: a valid
// token and the app's own user agent, a new guessed route at the budget of
// distinct failed templates per ten minutes, between ordinary session
// calls every 20–90 s; for 45 to 55 minutes.
func appAPIGuess(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	c, t := x.loggedIn(pick(x.r, appAgents))
	order := orderIDMin + x.r.IntN(orderIDMax-orderIDMin)
	guesses := x.r.Perm(len(apiGuesses))
	i := 0
	x.paced(t.Add(durBetween(x.r, 20*time.Second, 2*time.Minute)), tenMinutes, x.budget(KindToken, tenMinutes, MeasureFailedTemplates), func(t time.Time) {
		if i == len(guesses) {
			return
		}
		g := apiGuesses[guesses[i]]
		i++
		id := order
		if strings.HasPrefix(g.path, "/items/") {
			id = 1 + x.r.IntN(itemIDMax)
		}
		c.send(t, call{g.method, Base + strings.Replace(g.path, "{id}", itoa(id), 1), g.status, 0, errorBody(x.r), latency(x.r, 5)})
	})
	x.filler(t, 20*time.Second, 90*time.Second, func(t time.Time) { x.sessionCall(c, t, []int{order}) })
}

// cartTamper sends tampered cart additions (a negative quantity, a price of
// its own, an item that is no item) from a web session, in bursts of the
// budget of errors per ten minutes, each burst more than ten minutes after
// the one before; 400, now and then 500. Ordinary browsing every 20–60 s;
// for 45 to 55 minutes.
func cartTamper(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	c, t := x.loggedInWeb(pick(x.r, browserAgents))
	gap := x.spacing(KindCookie, MeasureErrors)
	x.bursts(t.Add(durBetween(x.r, time.Minute, 4*time.Minute)), tenMinutes, int(x.budget(KindCookie, tenMinutes, MeasureErrors)), gap, gap+30*time.Second, 3*time.Minute, func(t time.Time) {
		k := call{shop.AddToCart.Method, Base + shop.AddToCart.Path, 400, size(x.r, shop.AddToCart.ReqBytes), errorBody(x.r), latency(x.r, 10)}
		if chance(x.r, 0.15) {
			k.status, k.ms = 500, latency(x.r, 300)
		}
		c.send(t, k)
	})
	x.filler(t, 20*time.Second, 60*time.Second, func(t time.Time) {
		switch x.r.IntN(4) {
		case 0:
			c.send(t, listItems(x.r))
		case 1:
			c.send(t, getItem(x.r))
		case 2:
			c.send(t, cart(x.r))
		default:
			c.send(t, search(x.r))
		}
	})
}

// targetedGuess is a password guessed for one person: a word of the
// person's own name or a common one, with a year or digits and a symbol.
func (x *attackRun) targetedGuess(name string) string {
	word := pick(x.r, passwordWords)
	if chance(x.r, 0.5) {
		for i := range len(name) {
			if name[i] == '.' || name[i] == '_' || name[i] == '-' || name[i] == '@' || (name[i] >= '0' && name[i] <= '9') {
				word = name[:i]
				break
			}
		}
	}
	return word + pick(x.r, []string{"2024", "2025", "2026", "123", "1", "01", "99"}) + pick(x.r, []string{"", "!", "?", "#", "."})
}

// lockoutDodge guesses one account's password (the name in the body only,
// the attributed identity) from one address, as slowly as keeps the name's
// failed logins per ten minutes at the budget (under an account lockout's
// threshold), for 45 to 55 minutes; none succeeds.
func lockoutDodge(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	form := chance(x.r, 0.5)
	name := x.g.account(x.r, form)
	x.attribute(KindUsername, name)
	agent := pick(x.r, appAgents)
	if form {
		agent = pick(x.r, browserAgents)
	}
	c := x.client(x.g.attackIPs.addr(), x.g.loginHeaders(agent, name, form))
	n := min(x.budget(KindUsername, tenMinutes, MeasureFailedLogins), x.budget(KindIP, tenMinutes, MeasureFailedLogins))
	x.paced(x.start, tenMinutes, n, func(t time.Time) {
		x.g.login(c, x.r, t, name, x.targetedGuess(name), form, false)
	})
}

// concurrentSession is a stolen app token used while its owner goes on
// using it: the owner's app from one address and the attacker's browser
// from another, both making ordinary session calls (the owner every
// 15–75 s, the attacker, who joins 2 to 6 minutes in, every 10–60 s), for
// 30 to 45 minutes. Two addresses in every window.
func concurrentSession(x *attackRun) {
	x.window(30*time.Minute, 45*time.Minute)
	victim := x.g.account(x.r, false)
	tok := x.g.secret(x.r, "", 32)
	x.attribute(KindToken, tok)
	orders := []int{orderIDMin + x.r.IntN(orderIDMax-orderIDMin), orderIDMin + x.r.IntN(orderIDMax-orderIDMin), orderIDMin + x.r.IntN(orderIDMax-orderIDMin)}
	hdr := func(agent string) map[string]string {
		return map[string]string{"user-agent": agent, HeaderUsername: victim, HeaderToken: "Bearer " + tok}
	}
	owner := x.client(x.g.attackIPs.addr(), hdr(pick(x.r, appAgents)))
	thief := x.client(x.g.attackIPs.addr(), hdr(uniqueAgent(x.r)))
	x.sessionCall(owner, x.start, orders)
	x.filler(x.start, 15*time.Second, 75*time.Second, func(t time.Time) { x.sessionCall(owner, t, orders) })
	x.filler(x.start.Add(durBetween(x.r, 2*time.Minute, 6*time.Minute)), 10*time.Second, 60*time.Second, func(t time.Time) { x.sessionCall(thief, t, orders) })
}

// burstExport pulls exports with a valid token in bursts: each export as
// large as keeps a minute's responses at the budget of response bytes per
// minute, a minute apart, as many in a burst as keeps ten minutes at the
// budget per ten minutes; the next burst more than ten minutes after.
// Ordinary session calls every 45–120 s; for 45 to 55 minutes.
func burstExport(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	c, t := x.loggedIn(pick(x.r, scriptAgents))
	filler := float64(shop.ListItems.RespBytes[1]) // the largest ordinary answer
	login := float64(shop.Login.RespBytes[1])
	perMinute := x.budget(KindToken, time.Minute, MeasureResponseBytes) - 2*filler - login
	limit := max(1, int((perMinute-shop.ExportEnvelope)/float64(shop.Export.RespBytes[1])))
	each := float64(limit)*float64(shop.Export.RespBytes[1]) + shop.ExportEnvelope
	n := int((x.budget(KindToken, tenMinutes, MeasureResponseBytes) - 14*filler - login) / each)
	offset := 0
	x.bursts(t.Add(durBetween(x.r, 30*time.Second, 3*time.Minute)), tenMinutes, n, time.Minute+10*time.Millisecond, 75*time.Second, 3*time.Minute, func(t time.Time) {
		c.send(t, export(x.r, limit, offset))
		offset += limit
	})
	orders := []int{orderIDMin + x.r.IntN(orderIDMax-orderIDMin)}
	x.filler(t, 45*time.Second, 120*time.Second, func(t time.Time) { x.sessionCall(c, t, orders) })
}

// agentRotation is activity spread thin without credentials from one
// address, each call with another browser's user agent (as a shared
// address's many users would send): catalogue lists, items and searches at
// the budget of calls per minute (under one a second), for 20 to 25
// minutes.
func agentRotation(x *attackRun) {
	x.window(20*time.Minute, 25*time.Minute)
	c := x.anonymous(uniqueAgent(x.r))
	browse := x.browse(c)
	x.paced(x.start, time.Minute, min(55, x.budget(KindIP, time.Minute, MeasureCalls)), func(t time.Time) {
		c.setHeaders(map[string]string{"user-agent": uniqueAgent(x.r)})
		browse(t)
	})
}

// webBurstWalk places a bid from a web session, reads its order, then walks
// down the order IDs below its own in bursts: as many as the budget of
// distinct orders per ten minutes (its own included) at the budget per
// minute, the next burst more than ten minutes after; most are 403 or 404.
// Ordinary browsing every 40–120 s; for 45 to 55 minutes.
func webBurstWalk(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	c, t := x.loggedInWeb(pick(x.r, browserAgents))
	id := orderIDMin + 100_000 + x.r.IntN(orderIDMax-orderIDMin-100_000)
	c.send(t, putOrder(x.r, bytesBetween(x.r, 180, 900)))
	c.send(t.Add(durBetween(x.r, 2*time.Second, 10*time.Second)), getOrder(x.r, id))
	gap := x.spacing(KindCookie, MeasureOrderIDs)
	x.bursts(t.Add(durBetween(x.r, time.Minute, 3*time.Minute)), tenMinutes, int(x.budget(KindCookie, tenMinutes, MeasureOrderIDs))-1, gap, gap+5*time.Second, 3*time.Minute, func(t time.Time) {
		id -= 1 + x.r.IntN(2)
		c.send(t, x.walkRead(id))
	})
	x.filler(t.Add(20*time.Second), 40*time.Second, 120*time.Second, func(t time.Time) {
		switch x.r.IntN(3) {
		case 0:
			c.send(t, listItems(x.r))
		case 1:
			c.send(t, getItem(x.r))
		default:
			c.send(t, search(x.r))
		}
	})
}

// webDeleteBursts deletes orders from a web session in bursts of the budget
// of deletes per ten minutes, each delete a minute or more after the last
// (the budget per minute) and a few seconds after reading the order; the
// next burst more than ten minutes after. 85% succeed (204), the rest 403.
// Ordinary browsing every 30–90 s; for 45 to 55 minutes.
func webDeleteBursts(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	c, t := x.loggedInWeb(pick(x.r, browserAgents))
	gap := x.spacing(KindCookie, MeasureDeletes)
	x.bursts(t.Add(durBetween(x.r, time.Minute, 3*time.Minute)), tenMinutes, int(x.budget(KindCookie, tenMinutes, MeasureDeletes)), gap, gap+30*time.Second, 2*time.Minute, func(t time.Time) {
		id := orderIDMin + x.r.IntN(orderIDMax-orderIDMin)
		c.send(t.Add(-durBetween(x.r, 3*time.Second, 8*time.Second)), getOrder(x.r, id))
		k := deleteOrder(x.r, id)
		if chance(x.r, 0.15) {
			k.status, k.resp = 403, errorBody(x.r)
		}
		c.send(t, k)
	})
	x.filler(t, 30*time.Second, 90*time.Second, x.browse(c))
}

// keyOverfill sends, with an integration's API key, bids and order updates
// in turn whose bodies are 1.2 to 2 times the largest benign body of their
// endpoint, every 3 to 6 minutes for 30 to 45 minutes, between an
// integration's ordinary reads every 10–40 s; 60% are accepted, the rest
// 400.
func keyOverfill(x *attackRun) {
	x.window(30*time.Minute, 45*time.Minute)
	key := x.g.secret(x.r, "ik_", 28)
	x.attribute(KindAPIKey, key)
	agent := "integration-" + itoa(x.r.IntN(100)) + "/2." + itoa(x.r.IntN(9)) + " (+https://" + pick(x.r, lastNames) + ".example)"
	c := x.client(x.g.attackIPs.addr(), map[string]string{"user-agent": agent, HeaderAPIKey: key})
	orders := orderIDMin + x.r.IntN(orderIDMax-orderIDMin-2_000)
	put := x.r.IntN(2) == 0
	for at := x.start; at.Before(x.stop); at = at.Add(durBetween(x.r, 3*time.Minute, 6*time.Minute)) {
		e, path := shop.PatchOrder, orderPath(orders+x.r.IntN(2_000))
		if put {
			e, path = shop.PutOrder, Base+shop.PutOrder.Path
		}
		put = !put
		biggest := x.g.ext.MaxBody(e.Method, detect.TemplatePath(path))
		k := call{e.Method, path, e.Status, int64(between(x.r, 1.2, 2) * float64(biggest)), size(x.r, e.RespBytes), latency(x.r, e.LatencyMS)}
		if chance(x.r, 0.4) {
			k.status, k.resp = 400, errorBody(x.r)
		}
		c.send(at, k)
	}
	x.filler(x.start, 10*time.Second, 40*time.Second, func(t time.Time) {
		switch x.r.IntN(4) {
		case 0:
			c.send(t, listItems(x.r))
		case 1:
			c.send(t, getItem(x.r))
		case 2:
			c.send(t, getOrder(x.r, orders+x.r.IntN(2_000)))
		default:
			c.send(t, search(x.r))
		}
	})
}
