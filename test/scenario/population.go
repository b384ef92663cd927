package scenario

import (
	"math/rand/v2"
	"strings"
	"time"
)

// Benign populations. Every identity they use goes into g.benign.

var (
	browserAgents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
	}
	appAgents = []string{
		"ShopApp/5.2.1 (iPhone; iOS 18.1; Scale/3.00)",
		"ShopApp/5.2.0 (iPhone; iOS 17.6; Scale/3.00)",
		"ShopApp/5.1.9 (Android 15; Pixel 8)",
		"ShopApp/5.2.1 (Android 14; SM-S918B)",
		"okhttp/4.12.0",
	}
	corporateAgent = browserAgents[0]
)

// action is what a user does next.
type action uint8

const (
	actItems action = iota
	actItem
	actSearch
	actOrder
	actBid
	actPatch
	actDelete
	actProfile
	actCart
	actAddToCart
	actExport
	numActions
)

// mix is a cumulative distribution over actions.
type mix [numActions]float64

func newMix(w map[action]float64) mix {
	var m mix
	sum := 0.0
	for a := range numActions {
		sum += w[a]
		m[a] = sum
	}
	for a := range m {
		m[a] /= sum
	}
	return m
}

func (m *mix) draw(r *rand.Rand) action {
	x := r.Float64()
	for a, c := range m {
		if x < c {
			return action(a)
		}
	}
	return actItems
}

// User habits: browsers look around, bidders bid and watch their orders,
// checkers follow their orders and profile.
var userMixes = []mix{
	newMix(map[action]float64{actItems: 30, actItem: 25, actSearch: 20, actCart: 8, actAddToCart: 5, actOrder: 5, actBid: 3, actProfile: 3, actPatch: 0.5, actDelete: 0.5}),
	newMix(map[action]float64{actItems: 10, actItem: 15, actSearch: 10, actOrder: 20, actBid: 20, actPatch: 5, actDelete: 2, actCart: 5, actAddToCart: 5, actProfile: 3}),
	newMix(map[action]float64{actOrder: 35, actProfile: 15, actItems: 15, actItem: 10, actCart: 10, actSearch: 10, actPatch: 2, actDelete: 2, actExport: 1}),
}

// user is one person with an account.
type user struct {
	name      string
	password  string // with login names in bodies only
	agent     string
	web       bool // a session cookie instead of a bearer token
	power     bool
	perHour   float64 // sessions per hour at full load
	mix       *mix
	orders    []int
	addrs     []string // the first is home; mobile users have carrier addresses too
	switchIPs bool     // moves between addresses within a session
}

func (g *gen) newUser(r *rand.Rand, addrs []string, mobile bool) *user {
	u := &user{name: g.username(r), addrs: addrs, switchIPs: mobile, mix: &userMixes[r.IntN(len(userMixes))]}
	switch {
	case mobile:
		u.agent = pick(r, appAgents)
	case chance(r, 0.3):
		u.agent, u.web = pick(r, browserAgents), true
	default:
		u.agent = pick(r, appAgents)
	}
	u.power = chance(r, 0.03)
	if u.power {
		u.perHour = lognormal(r, 1.5, 0.4, 0.5, 4)
	} else {
		u.perHour = lognormal(r, 0.6, 0.6, 0.1, 4)
	}
	for range 1 + r.IntN(8) {
		u.orders = append(u.orders, orderIDMin+r.IntN(orderIDMax-orderIDMin))
	}
	if g.cfg.Stealth {
		if u.web {
			u.name = webName(r, u.name)
		} else { // apps log in with an e-mail address
			u.name = email(r, u.name)
		}
		u.password = g.password(r)
	}
	return u
}

// live generates every session of u from from to the end of the scenario.
func (g *gen) live(r *rand.Rand, u *user, from time.Time) {
	for _, t := range g.arrivals(r, u.perHour, from, g.end) {
		g.session(r, u, t)
	}
}

// session is one visit: a login (a mistyped password now and then) and a
// few to tens of calls with the token or cookie the login returned.
func (g *gen) session(r *rand.Rand, u *user, t time.Time) {
	ip := u.addrs[0]
	if u.switchIPs {
		ip = pick(r, u.addrs)
	}
	c := g.client(g.benign, ip, g.loginHeaders(u.agent, u.name, u.web))
	if g.cfg.Stealth && chance(r, 0.01) { // the name mistyped
		g.login(c, r, t, misspell(r, u.name), u.password, u.web, false)
		t = t.Add(durBetween(r, 3*time.Second, 20*time.Second))
	}
	if chance(r, 0.05) {
		g.login(c, r, t, u.name, mistype(u.password), u.web, false)
		t = t.Add(durBetween(r, 3*time.Second, 20*time.Second))
		if chance(r, 0.15) {
			g.login(c, r, t, u.name, mistype(u.password), u.web, false)
			t = t.Add(durBetween(r, 3*time.Second, 30*time.Second))
		}
	}
	g.login(c, r, t, u.name, u.password, u.web, true)
	auth := map[string]string{"user-agent": u.agent, HeaderUsername: u.name}
	if u.web {
		auth["cookie"] = SessionCookie + "=" + g.secret(r, "", 40)
	} else {
		auth[HeaderToken] = "Bearer " + g.secret(r, "", 32)
	}
	c.setHeaders(auth)

	n, think, thinkSigma := 3+int(r.ExpFloat64()*10), 12.0, 1.0
	if u.power {
		n, think, thinkSigma = 40+r.IntN(160), 4, 0.7
	}
	n = min(n, 200)
	switchAt := -1
	if u.switchIPs && len(u.addrs) > 1 && chance(r, 0.6) {
		switchAt = r.IntN(n)
	}
	for i := range n {
		t = t.Add(seconds(lognormal(r, think, thinkSigma, 0.5, 240)))
		if !t.Before(g.end) {
			return
		}
		if i == switchAt || (switchAt >= 0 && i == switchAt+n/2 && chance(r, 0.3)) {
			c.setIP(otherThan(r, u.addrs, c.ip))
		}
		c.send(t, g.userCall(r, u, t))
	}
}

func otherThan(r *rand.Rand, xs []string, x string) string {
	for {
		if y := pick(r, xs); y != x {
			return y
		}
	}
}

// userCall is the next call of u at t.
func (g *gen) userCall(r *rand.Rand, u *user, t time.Time) call {
	switch x := r.Float64(); {
	case x < 0.003:
		return typo(r)
	case x < 0.006:
		return serverError(r)
	case x < 0.016:
		return getMissingOrder(r)
	}
	a := u.mix.draw(r)
	if g.inPeak(t) && chance(r, 0.3) { // the flash sale: bids and searches
		a = pick(r, []action{actBid, actBid, actSearch, actItem})
	}
	switch a {
	case actItem:
		return getItem(r)
	case actSearch:
		return search(r)
	case actOrder:
		if len(u.orders) > 0 {
			return getOrder(r, pick(r, u.orders))
		}
	case actBid:
		k := putOrder(r, bytesBetween(r, 180, 900))
		if k.status == 201 {
			u.orders = append(u.orders, orderIDMin+r.IntN(orderIDMax-orderIDMin))
		}
		return k
	case actPatch:
		if len(u.orders) > 0 {
			return patchOrder(r, pick(r, u.orders))
		}
	case actDelete:
		if len(u.orders) > 0 {
			i := r.IntN(len(u.orders))
			id := u.orders[i]
			u.orders = append(u.orders[:i], u.orders[i+1:]...)
			return deleteOrder(r, id)
		}
	case actProfile:
		return profile(r)
	case actCart:
		return cart(r)
	case actAddToCart:
		return addToCart(r)
	case actExport: // a user's own order history
		return export(r, 20+r.IntN(81), 0)
	}
	return listItems(r)
}

// benignTraffic generates every benign population.
func (g *gen) benignTraffic() {
	cfg := g.cfg
	for i := range cfg.Users + cfg.NewUsers {
		r := g.rngFor("user", i)
		from := cfg.Start
		if i >= cfg.Users {
			from = g.trainEnd
		}
		u := g.newUser(r, []string{g.benignIPs.addr()}, false)
		switch g.curPop = PopUser; {
		case i >= cfg.Users:
			g.curPop = PopNewUser
		case u.power:
			g.curPop = PopPowerUser
		}
		g.live(r, u, from)
	}
	g.curPop = PopNAT
	for s := range cfg.NATSites {
		ip := g.serverIPs.addr()
		for i := range cfg.NATUsers {
			r := g.rngFor("nat", s<<20|i)
			u := g.newUser(r, []string{ip}, false)
			if chance(r, 0.8) {
				u.agent, u.web = corporateAgent, chance(r, 0.7)
				if g.cfg.Stealth && u.web == isEmail(u.name) { // an app user logs in with an e-mail address
					if u.web {
						u.name, _, _ = strings.Cut(u.name, "@")
					} else {
						u.name = email(r, u.name)
					}
				}
			}
			g.live(r, u, cfg.Start)
		}
	}
	g.curPop = PopMobile
	carriers := make([]string, max(4, cfg.MobileUsers/8))
	for i := range carriers {
		carriers[i] = g.benignIPs.addr()
	}
	for i := range cfg.MobileUsers {
		r := g.rngFor("mobile", i)
		addrs := []string{g.benignIPs.addr(), pick(r, carriers)}
		if chance(r, 0.5) {
			addrs = append(addrs, otherThan(r, carriers, addrs[1]))
		}
		g.live(r, g.newUser(r, addrs, true), cfg.Start)
	}
	g.curPop = PopPartner
	for i := range cfg.Partners + cfg.NewPartners {
		r := g.rngFor("partner", i)
		from := cfg.Start
		if i >= cfg.Partners {
			from = g.trainEnd.Add(durBetween(r, 0, cfg.AttackDuration/3))
		}
		g.partner(r, i, from)
	}
	g.curPop = PopBatch
	for i := range cfg.BatchJobs {
		g.batchJob(g.rngFor("batch", i), i)
	}
	g.curPop = PopCrawler
	for i := range cfg.Crawlers {
		g.crawler(g.rngFor("crawler", i), i)
	}
	g.curPop = PopIntegration
	for s := range cfg.IntegrationSites {
		g.integrationSite(s)
	}
	g.curPop = ""
}

// partner is an integration calling with an API key from one to three
// data-centre addresses at a steady 0.3–1.5 calls/s, with an export of
// 1,000–5,000 records every 10–20 minutes. It works on its own range of
// 5,000 orders.
func (g *gen) partner(r *rand.Rand, i int, from time.Time) {
	ips := make([]string, 1+r.IntN(3))
	for j := range ips {
		ips[j] = g.serverIPs.addr()
	}
	agent := "partner-sync/2." + itoa(r.IntN(5)) + " (+https://partner" + itoa(i) + ".example)"
	c := g.client(g.benign, ips[0], map[string]string{"user-agent": agent, HeaderAPIKey: g.secret(r, "pk_live_", 24)})
	rate := between(r, 0.3, 1.5)
	orders := orderIDMin + r.IntN(orderIDMax-orderIDMin-5_000)
	nextExport := from.Add(durBetween(r, 0, 20*time.Minute))
	for t := from; ; {
		t = t.Add(seconds(r.ExpFloat64() / rate))
		if !t.Before(g.end) {
			return
		}
		c.setIP(pick(r, ips))
		if !t.Before(nextExport) {
			c.send(t, export(r, pick(r, []int{1000, 2000, 5000}), 0))
			nextExport = t.Add(durBetween(r, 10*time.Minute, 20*time.Minute))
			continue
		}
		id := orders + r.IntN(5_000)
		var k call
		switch x := r.Float64(); {
		case x < 0.003:
			k = serverError(r)
		case x < 0.008:
			k = getMissingOrder(r)
		case x < 0.25:
			k = listItems(r)
		case x < 0.45:
			k = getItem(r)
		case x < 0.70:
			k = getOrder(r, id)
		case x < 0.85:
			k = putOrder(r, bytesBetween(r, 1_000, 8_000)) // bulk bids
		case x < 0.93:
			k = patchOrder(r, id)
		case x < 0.94:
			k = deleteOrder(r, id)
		default:
			k = search(r)
		}
		c.send(t, k)
	}
}

// batchJob is a scheduled export: at a fixed minute of every BatchPeriod it
// pages through 40–120 exports of 1,000 records, 0.3–0.8 s apart, from one
// data-centre address with its API key.
func (g *gen) batchJob(r *rand.Rand, i int) {
	c := g.client(g.benign, g.serverIPs.addr(), map[string]string{
		"user-agent": "nightly-export/1." + itoa(i) + " (cron)", HeaderAPIKey: g.secret(r, "bk_", 32),
	})
	pages := 40 + r.IntN(81)
	for run := g.cfg.Start.Add(durBetween(r, 0, g.cfg.BatchPeriod)); run.Before(g.end); run = run.Add(g.cfg.BatchPeriod) {
		t := run
		c.send(t, listItems(r))
		n := pages * (80 + r.IntN(41)) / 100
		for p := range n {
			t = t.Add(seconds(between(r, 0.3, 0.8)))
			if !t.Before(g.end) {
				return
			}
			c.send(t, export(r, 1000, p*1000))
		}
	}
}
