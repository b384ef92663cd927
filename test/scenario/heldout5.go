package scenario

import (
	"strings"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server/demo/shop"
)

// A fifth held-out set of stealthy variants (names ending _h5), one per
// attack type, written from the threat model only (never from the engine's
// code): the next held-out set, generated only with Config.NextHeldOut
// until the _h4 set is tuned on.
//
// Each differs from its type's tuning variants and from the _h2, _h3 and
// _h4 sets in a dimension an attacker chooses: the identity it acts under
// (an API key, a user name over many sessions or devices, one address over
// many accounts or many people's tokens, a browser's cookie jar over many
// addresses), the endpoint, or how it spreads its calls over identities
// and time. Like every stealthy variant, each keeps its Under measure per
// window at or under stealthShare of the busiest benign identity of its
// kind, and draws only from its own random streams (x.r).

// heldOutVariants5 lists the fifth held-out set, in report order.
func heldOutVariants5() []StealthVariant {
	return []StealthVariant{
		{TypeProbing, "key_route_probe_h5", true, Claim{KindAPIKey, tenMinutes, MeasureFailedTemplates, false}, Claim{KindAPIKey, time.Hour, MeasureFailedTemplates, false}, keyRouteProbe5},
		{TypeExcessiveErrors, "shared_address_errors_h5", true, Claim{KindIP, tenMinutes, MeasureErrors, false}, Claim{KindIP, time.Hour, MeasureErrors, false}, sharedAddressErrors5},
		// No benign login carries a cookie (PersonMax is 0): the jar's
		// failed logins over the run, one per address, set it apart.
		{TypeCredentialStuffing, "cookie_jar_stuffing_h5", true, Claim{KindIP, tenMinutes, MeasureFailedLogins, false}, Claim{KindCookie, time.Hour, MeasureFailedLogins, false}, cookieJarStuffing5},
		// Every token is seen from two addresses at most, its owner's and
		// the replaying one: set apart by its shape (one address using
		// many people's tokens minutes after them), not by a total.
		{TypeStolenToken, "token_replay_farm_h5", true, Claim{KindToken, tenMinutes, MeasureAddresses, false}, Claim{}, tokenReplayFarm5},
		{TypeDataExfiltration, "session_churn_export_h5", true, Claim{KindUsername, tenMinutes, MeasureResponseBytes, false}, Claim{KindUsername, time.Hour, MeasureResponseBytes, false}, sessionChurnExport5},
		// As for any API key (PersonMax is 0): a key new after training
		// keeping a busy partner's pace is what sets it apart.
		{TypeExtremeActivity, "key_scrape_h5", true, Claim{KindAPIKey, time.Minute, MeasureCalls, false}, Claim{KindAPIKey, time.Hour, MeasureCalls, false}, keyScrape5},
		{TypeBOLAEnumeration, "account_pool_walk_h5", true, Claim{KindIP, tenMinutes, MeasureOrderIDs, false}, Claim{KindIP, time.Hour, MeasureOrderIDs, false}, accountPoolWalk5},
		{TypeMassDeletion, "multi_device_delete_h5", true, Claim{KindUsername, tenMinutes, MeasureDeletes, false}, Claim{KindUsername, time.Hour, MeasureDeletes, false}, multiDeviceDelete5},
		// Bodies of 1.2 to 2 times the largest benign one of their
		// endpoint, one per session (checked by TestHeldOut5Shapes).
		{TypeOversizedPayload, "session_spread_overfill_h5", true, Claim{}, Claim{}, sessionSpreadOverfill5},
	}
}

// partnerGuesses5 are routes someone holding a partner's key guesses a
// partner API might have: each its own template, none a route the shop
// has (404), or a real route asked with a method it does not take (405).
var partnerGuesses5 = []apiGuess{
	{"GET", "/partner/orders", 404}, {"GET", "/partners/me", 404}, {"GET", "/v2/order/{id}", 404},
	{"GET", "/order/{id}/audit", 404}, {"GET", "/order/{id}/buyer", 404}, {"GET", "/export/full", 404},
	{"GET", "/export/customers", 404}, {"GET", "/webhooks", 404}, {"GET", "/settlements", 404},
	{"GET", "/payouts", 404}, {"GET", "/items/{id}/stock", 404}, {"GET", "/items/{id}/cost", 404},
	{"GET", "/reports/sales", 404}, {"GET", "/keys", 404}, {"GET", "/bulk/orders", 404},
	{"DELETE", "/items/{id}", 405}, {"PATCH", "/items/{id}", 405}, {"PUT", "/export", 405},
	{"POST", "/items", 405}, {"DELETE", "/export", 405},
}

// keyRouteProbe5 looks for partner-only routes with a partner's API key:
// in short bursts, each of as many guessed routes as the budget of failed
// templates per key per ten minutes, each route tried on a few of the
// key's own order or item IDs (or query strings), a few seconds apart,
// within the budget of failed paths; the next burst more than ten minutes
// after. A partner's ordinary calls (item lists, its own orders, bulk
// bids, searches) every 5 to 20 s; for 45 to 55 minutes.
func keyRouteProbe5(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	key := x.g.secret(x.r, "pk_live_", 24)
	x.attribute(KindAPIKey, key)
	c := x.client(x.g.attackIPs.addr(), map[string]string{"user-agent": x.partnerAgent4(), HeaderAPIKey: key})
	orders := orderIDMin + x.r.IntN(orderIDMax-orderIDMin-5_000)
	per := int(x.budget(KindAPIKey, tenMinutes, MeasureFailedTemplates))
	tries := max(1, min(2+x.r.IntN(4), int(x.budget(KindAPIKey, tenMinutes, MeasureFailedPaths))/per))
	guesses := x.r.Perm(len(partnerGuesses5))
	j := 0
	x.bursts(x.start.Add(durBetween(x.r, time.Minute, 4*time.Minute)), tenMinutes, per*tries, 4*time.Second, 30*time.Second, 3*time.Minute, func(t time.Time) {
		if j/tries >= len(guesses) {
			return
		}
		g := partnerGuesses5[guesses[j/tries]]
		j++
		id := orders + x.r.IntN(5_000)
		if strings.HasPrefix(g.path, "/items/") {
			id = 1 + x.r.IntN(itemIDMax)
		}
		p := Base + replaceID(g.path, id)
		if !strings.Contains(g.path, "{id}") && g.method == "GET" && chance(x.r, 0.5) {
			p += pick(x.r, []string{"?page=", "?limit=", "?since="}) + itoa(1+x.r.IntN(100))
		}
		c.send(t, call{g.method, p, g.status, 0, errorBody(x.r), latency(x.r, 5)})
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

// webLogin5 logs name in from c with the web form and returns the session
// cookie the login gave, now carried by c.
func (x *attackRun) webLogin5(c *client, t time.Time, agent, name, password string) string {
	c.setHeaders(x.g.loginHeaders(agent, name, true))
	x.g.login(c, x.r, t, name, password, true, true)
	cookie := x.g.secret(x.r, "", 40)
	c.setHeaders(map[string]string{"user-agent": agent, HeaderUsername: name, "cookie": SessionCookie + "=" + cookie})
	return cookie
}

// sharedAddressErrors5 sends broken writes (bids and order updates that
// fail validation, tampered cart additions, now and then a 500) from one
// address with many accounts, as a corporate proxy's users would: each
// account logs in (the site's browser and a form, or the app's JSON),
// browses and sends one or two broken requests, an ordinary call before
// each; the address's errors at the budget per ten minutes, for 45 to 55
// minutes.
func sharedAddressErrors5(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	ip := x.g.attackIPs.addr()
	x.attribute(KindIP, ip)
	c := x.client(ip, nil)
	browser := pick(x.r, browserAgents) // the site's managed browser
	per := int(min(2, x.budget(KindToken, tenMinutes, MeasureErrors), x.budget(KindCookie, tenMinutes, MeasureErrors)))
	left, own := 0, 0
	browse := x.quietBrowse(c)
	x.paced(x.start.Add(durBetween(x.r, 20*time.Second, time.Minute)), tenMinutes, x.budget(KindIP, tenMinutes, MeasureErrors), func(t time.Time) {
		if left == 0 { // the next account
			at := t.Add(-durBetween(x.r, 20*time.Second, 40*time.Second))
			if chance(x.r, 0.6) {
				x.webLogin5(c, at, browser, x.g.account(x.r, true), x.g.password(x.r))
			} else {
				x.appLogin(c, at, pick(x.r, appAgents), x.g.account(x.r, false), x.g.password(x.r))
			}
			own = orderIDMin + x.r.IntN(orderIDMax-orderIDMin)
			left = 1 + x.r.IntN(per)
			browse(at.Add(durBetween(x.r, 2*time.Second, 8*time.Second)))
		}
		left--
		browse(t.Add(-durBetween(x.r, 4*time.Second, 12*time.Second)))
		var k call
		switch x.r.IntN(3) {
		case 0:
			k = call{shop.PutOrder.Method, Base + shop.PutOrder.Path, pick(x.r, []int{400, 400, 422}), bytesBetween(x.r, 180, 900), errorBody(x.r), latency(x.r, 12)}
		case 1:
			k = call{shop.PatchOrder.Method, orderPath(own), pick(x.r, []int{400, 422, 422}), size(x.r, shop.PatchOrder.ReqBytes), errorBody(x.r), latency(x.r, 10)}
		default:
			k = call{shop.AddToCart.Method, Base + shop.AddToCart.Path, 400, size(x.r, shop.AddToCart.ReqBytes), errorBody(x.r), latency(x.r, 8)}
		}
		if chance(x.r, 0.15) {
			k.status, k.ms = 500, latency(x.r, 300)
		}
		c.send(t, k)
	})
}

// cookieJarStuffing5 tries breached e-mail addresses with the web form from
// a headless browser that keeps one cookie jar (a session cookie the shop
// set before any login) while it moves through residential proxies: each
// attempt from a new address, a new name each, one every 6 to 15 s for 40
// to 50 minutes; 1% succeed. The cookie names it.
func cookieJarStuffing5(x *attackRun) {
	x.window(40*time.Minute, 50*time.Minute)
	jar := x.g.secret(x.r, "", 40)
	x.attribute(KindCookie, jar)
	hdr := x.g.loginHeaders(pick(x.r, browserAgents), "", true)
	hdr["cookie"] = SessionCookie + "=" + jar
	c := x.client(x.g.attackIPs.addr(), hdr)
	for t := x.start; t.Before(x.stop); t = t.Add(durBetween(x.r, 6*time.Second, 15*time.Second)) {
		c.setIP(x.g.attackIPs.addr())
		x.g.login(c, x.r, t, x.g.leakedUser(x.r), x.g.guess(x.r), true, chance(x.r, 0.01))
	}
}

// tokenReplayFarm5 replays people's app tokens (stolen with their user
// agents by malware on their phones) from one address of its own: every 4
// to 8 minutes a new victim, whose app makes 2 to 4 ordinary calls from the
// victim's address, and whose token the farm uses 1 to 4 minutes after
// the victim's last call for 3 to 6 ordinary calls 5 to 30 s apart, with
// the victim's user agent. Where no benign token is seen from two
// addresses in ten minutes, the farm waits over ten minutes instead. For
// 45 to 55 minutes. The address names it; its tokens are its Members.
func tokenReplayFarm5(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	farm := x.g.attackIPs.addr()
	x.attribute(KindIP, farm)
	lo, hi := time.Minute, 4*time.Minute
	if x.budget(KindToken, tenMinutes, MeasureAddresses) < 2 {
		lo, hi = 10*time.Minute+30*time.Second, 13*time.Minute
	}
	for at := x.start; at.Before(x.stop); at = at.Add(durBetween(x.r, 4*time.Minute, 8*time.Minute)) {
		// The victim's calls, then the farm's first: a victim whose token
		// the farm has no time left to use is none.
		own := make([]time.Time, 2+x.r.IntN(3))
		for j, t := 0, at; j < len(own); j, t = j+1, t.Add(durBetween(x.r, 10*time.Second, 40*time.Second)) {
			own[j] = t
		}
		t := own[len(own)-1].Add(durBetween(x.r, lo, hi))
		if !t.Before(x.stop) {
			break
		}
		victim, tok := x.g.account(x.r, false), x.g.secret(x.r, "", 32)
		x.a.Members = append(x.a.Members, Identity{KindToken, tok})
		hdr := map[string]string{"user-agent": pick(x.r, appAgents), HeaderUsername: victim, HeaderToken: "Bearer " + tok}
		orders := []int{orderIDMin + x.r.IntN(orderIDMax-orderIDMin), orderIDMin + x.r.IntN(orderIDMax-orderIDMin)}
		owner := x.client(x.g.attackIPs.addr(), hdr)
		for _, t := range own {
			x.sessionCall(owner, t, orders)
		}
		thief := x.client(farm, hdr)
		for range 3 + x.r.IntN(4) {
			if !t.Before(x.stop) {
				break
			}
			x.sessionCall(thief, t, orders)
			t = t.Add(durBetween(x.r, 5*time.Second, 30*time.Second))
		}
	}
	sortIdentities(x.a.Members)
}

// sessionChurnExport5 pulls the export from one account's app sessions,
// logging in again for a fresh token (and looking at its profile) after as
// many pages as keep a token's hour under 0.7 times one person's token's:
// each page as large as keeps a minute's responses at the budget of a
// token's and a user name's per minute, at most one a minute, as many per
// ten minutes as keep the user name's at its budget. For 45 to 55 minutes.
func sessionChurnExport5(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	agent := pick(x.r, appAgents)
	name, password := x.g.account(x.r, false), x.g.password(x.r)
	x.attribute(KindUsername, name)
	c := x.client(x.g.attackIPs.addr(), nil)
	login := float64(shop.Login.RespBytes[1] + shop.Profile.RespBytes[1]) // a login and a look at the profile
	rec := float64(shop.Export.RespBytes[1])
	perMinute := min(x.budget(KindToken, time.Minute, MeasureResponseBytes), x.budget(KindUsername, time.Minute, MeasureResponseBytes)) - login
	limit := max(1, int((perMinute-shop.ExportEnvelope)/rec))
	each := float64(limit)*rec + shop.ExportEnvelope
	perToken := max(1, int((stealthShare*x.g.ext.PersonMax(KindToken, time.Hour, MeasureResponseBytes)-login)/each))
	b10 := x.budget(KindUsername, tenMinutes, MeasureResponseBytes)
	n := min(9, max(1, int(b10/each))) // nine per ten minutes: more than a minute apart
	for n > 1 && float64(n)*each+float64((n+perToken-1)/perToken+1)*login > b10 {
		n--
	}
	pages := perToken // a login before the first page
	offset := x.r.IntN(20) * 1_000
	x.paced(x.start.Add(durBetween(x.r, 20*time.Second, time.Minute)), tenMinutes, float64(n), func(t time.Time) {
		if pages == perToken {
			at := t.Add(-durBetween(x.r, 10*time.Second, 25*time.Second))
			x.appLogin(c, at, agent, name, password)
			c.send(at.Add(durBetween(x.r, time.Second, 5*time.Second)), profile(x.r))
			pages = 0
		}
		pages++
		c.send(t, export(x.r, limit, offset))
		offset += limit
	})
}

// keyScrape5 scrapes the catalogue with a partner's API key from one to
// three data-centre addresses: list pages in order, items by ID in order
// and searches, at the budget of calls per key per ten minutes (under the
// budget per minute), for 38 to 45 minutes.
func keyScrape5(x *attackRun) {
	x.window(38*time.Minute, 45*time.Minute)
	key := x.g.secret(x.r, "pk_live_", 24)
	x.attribute(KindAPIKey, key)
	addrs := make([]string, 1+x.r.IntN(3))
	for i := range addrs {
		addrs[i] = x.g.attackIPs.addr()
	}
	c := x.client(addrs[0], map[string]string{"user-agent": x.partnerAgent4(), HeaderAPIKey: key})
	n := min(x.budget(KindAPIKey, tenMinutes, MeasureCalls), 10*(x.budget(KindAPIKey, time.Minute, MeasureCalls)-1))
	item, page := 1+x.r.IntN(itemIDMax), 1+x.r.IntN(50)
	x.paced(x.start, tenMinutes, n, func(t time.Time) {
		c.setIP(pick(x.r, addrs))
		switch y := x.r.Float64(); {
		case y < 0.45:
			k := getItem(x.r)
			k.path = Base + withID(shop.GetItem, item)
			item = item%itemIDMax + 1
			c.send(t, k)
		case y < 0.8:
			k := listItems(x.r)
			k.path = Base + shop.ListItems.Path + "?page=" + itoa(page)
			page++
			c.send(t, k)
		default:
			c.send(t, search(x.r))
		}
	})
}

// accountPoolWalk5 reads other people's orders from one address with a
// pool of accounts: each logs in (the app's JSON), reads an order of its
// own, then goes on with the walk up the order IDs where the account
// before left it (one or two at a time, mostly 403 or 404), as many
// orders as a token's budget per ten minutes and 0.7 times one person's
// token's per hour allow, before the next account logs in. The address's
// reads at its budget of distinct orders per ten minutes (under its budget
// per minute), for 45 to 55 minutes.
func accountPoolWalk5(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	ip := x.g.attackIPs.addr()
	x.attribute(KindIP, ip)
	c := x.client(ip, nil)
	agent := pick(x.r, appAgents)
	perToken := max(5, int(min(x.budget(KindToken, tenMinutes, MeasureOrderIDs), stealthShare*x.g.ext.PersonMax(KindToken, time.Hour, MeasureOrderIDs))))
	n := min(x.budget(KindIP, tenMinutes, MeasureOrderIDs), 10*(x.budget(KindIP, time.Minute, MeasureOrderIDs)-1))
	id := orderIDMin + x.r.IntN(orderIDMax-orderIDMin-200_000)
	read := perToken
	x.paced(x.start.Add(durBetween(x.r, 5*time.Second, 30*time.Second)), tenMinutes, n, func(t time.Time) {
		if read == perToken { // the next account: a login, and an order of its own
			x.appLogin(c, t.Add(-durBetween(x.r, time.Second, 2*time.Second)), agent, x.g.account(x.r, false), x.g.password(x.r))
			c.send(t, getOrder(x.r, orderIDMin+x.r.IntN(orderIDMax-orderIDMin)))
			read = 1
			return
		}
		read++
		id += 1 + x.r.IntN(2)
		c.send(t, x.walkRead(id))
	})
}

// multiDeviceDelete5 deletes a taken-over account's orders (its bids) from
// two app sessions at once, a phone's and a tablet's, behind one home
// address: they take turns, each delete a few seconds after reading the
// order, at the budget of deletes per user name per ten minutes (each
// session at most a token's budget), and each session logs in again for a
// fresh token after 0.7 times as many deletes as one person's token makes
// in an hour; 95% succeed (204), the rest find the order gone (404). For
// 45 to 55 minutes.
func multiDeviceDelete5(x *attackRun) {
	x.window(45*time.Minute, 55*time.Minute)
	name, password := x.g.account(x.r, false), x.g.password(x.r)
	x.attribute(KindUsername, name)
	ip := x.g.attackIPs.addr()
	type device struct {
		c       *client
		agent   string
		deletes int
	}
	agents := x.r.Perm(len(appAgents))
	ds := []*device{{c: x.client(ip, nil), agent: appAgents[agents[0]]}, {c: x.client(ip, nil), agent: appAgents[agents[1]]}}
	perToken := max(1, int(min(x.budget(KindToken, tenMinutes, MeasureDeletes), stealthShare*x.g.ext.PersonMax(KindToken, time.Hour, MeasureDeletes))))
	n := min(x.budget(KindUsername, tenMinutes, MeasureDeletes), 2*x.budget(KindToken, tenMinutes, MeasureDeletes))
	orders := make([]int, 60) // the victim's bids
	for i := range orders {
		orders[i] = orderIDMin + x.r.IntN(orderIDMax-orderIDMin)
	}
	x.appLogin(ds[0].c, x.start, ds[0].agent, name, password)
	x.appLogin(ds[1].c, x.start.Add(durBetween(x.r, 10*time.Second, 50*time.Second)), ds[1].agent, name, password)
	turn := 0
	x.paced(x.start.Add(durBetween(x.r, 70*time.Second, 2*time.Minute)), tenMinutes, n, func(t time.Time) {
		d := ds[turn%2]
		id := orders[turn%len(orders)]
		turn++
		if d.deletes == perToken {
			x.appLogin(d.c, t.Add(-durBetween(x.r, 15*time.Second, 30*time.Second)), d.agent, name, password)
			d.deletes = 0
		}
		d.deletes++
		d.c.send(t.Add(-durBetween(x.r, 3*time.Second, 10*time.Second)), getOrder(x.r, id))
		k := deleteOrder(x.r, id)
		if chance(x.r, 0.05) {
			k.status, k.resp = 404, errorBody(x.r)
		}
		d.c.send(t, k)
	})
}

// sessionSpreadOverfill5 sends one oversized body per app session of one
// account: every 4 to 8 minutes a new login (a fresh token), one to three
// ordinary calls, then a bid, an order update or a cart addition (in
// turn) whose body is 1.2 to 2 times the largest benign body of its
// endpoint; 60% are accepted, the rest 400 or 413. For 35 to 50 minutes.
func sessionSpreadOverfill5(x *attackRun) {
	x.window(35*time.Minute, 50*time.Minute)
	agent := pick(x.r, appAgents)
	name, password := x.g.account(x.r, false), x.g.password(x.r)
	x.attribute(KindUsername, name)
	c := x.client(x.g.attackIPs.addr(), nil)
	orders := []int{orderIDMin + x.r.IntN(orderIDMax-orderIDMin), orderIDMin + x.r.IntN(orderIDMax-orderIDMin), orderIDMin + x.r.IntN(orderIDMax-orderIDMin)}
	endpoints := []*shop.Endpoint{shop.PutOrder, shop.PatchOrder, shop.AddToCart}
	next := x.r.IntN(len(endpoints))
	for at := x.start; at.Before(x.stop); at = at.Add(durBetween(x.r, 4*time.Minute, 8*time.Minute)) {
		x.appLogin(c, at, agent, name, password)
		t := at
		for range 1 + x.r.IntN(3) {
			t = t.Add(durBetween(x.r, 4*time.Second, 30*time.Second))
			x.sessionCall(c, t, orders)
		}
		e := endpoints[next%len(endpoints)]
		next++
		path := Base + e.Path
		if e == shop.PatchOrder {
			path = orderPath(pick(x.r, orders))
		}
		biggest := x.g.ext.MaxBody(e.Method, detect.TemplatePath(path))
		k := call{e.Method, path, e.Status, int64(between(x.r, 1.2, 2) * float64(biggest)), size(x.r, e.RespBytes), latency(x.r, e.LatencyMS)}
		if chance(x.r, 0.4) {
			k.status, k.resp = pick(x.r, []int{400, 400, 413}), errorBody(x.r)
		}
		c.send(t.Add(durBetween(x.r, 4*time.Second, 30*time.Second)), k)
	}
}
