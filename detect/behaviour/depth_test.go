package behaviour

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// trainedFixture is an engine fixture in block mode after d of benign
// traffic (its random source seeded with seed1 and seed2), on which it
// raised nothing.
func trainedFixture(t *testing.T, seed1, seed2 uint64, d time.Duration) (*engineFixture, *rand.Rand) {
	t.Helper()
	f := newEngineFixture(t, detect.ModeBlock)
	rng := rand.New(rand.NewPCG(seed1, seed2))
	f.benign(d, rng)
	if len(f.attacks) != 0 {
		t.Fatalf("attacks on benign traffic: %+v", f.attacks[0])
	}
	return f, rng
}

// session is a read of an order with a token, from ip with user agent
// agent.
func (f *engineFixture) session(ip, token, agent string) {
	f.do(fixtureCall{ip: ip, token: token, agent: agent, method: "GET", path: "/shop/order/7", status: 200, respBytes: 800})
}

// routed is tx with the route the inventory would have judged.
func (f *engineFixture) routed(ip, method, path string, status int, route detect.Route) {
	t := &detect.Transaction{API: f.api, Host: "shop.example.com", Method: method, Path: path, Status: status,
		ResponseBytes: 300, Start: f.now, HasRequest: true, Complete: true, UserAgent: "scan/1.0", Route: route}
	t.Identities[detect.KindIP] = ip
	f.e.Consume(t)
}

// crawl runs crawlers for d: each asks the catalogue for an item every
// two seconds, half of them missing (404 on a known template).
func (f *engineFixture) crawl(d time.Duration, crawlers int, rng *rand.Rand) {
	end := f.now.Add(d)
	for f.now.Before(end) {
		f.now = f.now.Add(2 * time.Second)
		for c := range crawlers {
			status := 200
			if rng.IntN(2) == 0 {
				status = 404
			}
			f.routed(fmt.Sprintf("192.0.2.%d", c), "GET", fmt.Sprintf("/shop/items/%d", rng.IntN(1_000_000)), status, detect.RouteKnown)
		}
	}
}

func (f *engineFixture) attacksOn(id string) []*detect.Attack {
	var out []*detect.Attack
	for _, a := range f.attacks {
		if a.Identity.Value == id {
			out = append(out, a)
		}
	}
	return out
}

// A crawler's 404s on real endpoints raise not_found_10m's learned Tx far
// above a small scanner's count; the scanner is still caught early, by
// the routes the API does not have, and the crawlers never are.
func TestSmallScannerCaughtAmongCrawlers(t *testing.T) {
	f := newEngineFixture(t, detect.ModeBlock)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 9 { // 45 minutes of users and five crawlers
		f.benign(2*time.Minute, rng)
		f.crawl(3*time.Minute, 5, rng)
	}
	if len(f.attacks) != 0 {
		t.Fatalf("attacks on benign traffic: %+v", f.attacks[0])
	}
	doc, _ := f.e.Model("shop")
	for _, v := range doc.Variables {
		if v.Name == "not_found_10m" && v.Kind == "ip" && v.Tx < 100 {
			t.Fatalf("the crawlers should have raised not_found_10m's Tx: %v", v.Tx)
		}
	}
	// The scan: 62 calls 1 to 3 seconds apart, 29 distinct paths, 28 of
	// them misses on routes the API does not have (some scanner-shaped,
	// most API guesses), the rest of its calls ordinary catalogue reads.
	const scanner = "203.0.113.9"
	words := []string{"admin", "api/v2/users", "internal", "debug", "graphql", "swagger", "v1/admin", "backup",
		"config", "metrics", "status", "users", "accounts", "export", "import", "private", "test", "dev", "old",
		".env", ".git/config", "wp-login.php", "backup.sql", "phpinfo.php", "server-status", "actuator/env", ".DS_Store", "config.bak"}
	first := f.now
	var sent int
	for i := range 62 {
		f.now = f.now.Add(time.Duration(1+rng.IntN(3)) * time.Second)
		sent++
		if i%2 == 1 && i/2 < len(words) {
			f.routed(scanner, "GET", "/shop/"+words[i/2], 404, detect.RouteUnknown)
		} else {
			f.routed(scanner, "GET", fmt.Sprintf("/shop/items/%d", i), 200, detect.RouteKnown)
		}
		if len(f.attacksOn(scanner)) > 0 {
			break
		}
	}
	got := f.attacksOn(scanner)
	if len(got) == 0 || got[0].Type != detect.AttackProbing {
		t.Fatalf("the small scanner was not caught as probing: %+v", got)
	}
	if sent > 50 {
		t.Fatalf("caught at its request %d, want within 50", sent)
	}
	explained := false
	for _, v := range got[0].Variables {
		if (v.Name == "distinct_unknown_routes" || v.Name == "scanner_paths") && v.Observed > v.Tx && v.DeviationPct > 0 {
			explained = true
		}
	}
	if !explained {
		t.Fatalf("not explained by the unknown routes: %+v", got[0].Variables)
	}
	t.Logf("scanner caught at its request %d, %s in: %+v", sent, f.now.Sub(first), got[0].Variables)
	for c := range 5 {
		if a := f.attacksOn(fmt.Sprintf("192.0.2.%d", c)); len(a) != 0 {
			t.Fatalf("crawler flagged: %+v", a[0])
		}
	}
}

// A token that stays far under requests_per_min's Tx but keeps going for
// twenty-five minutes adds up, over the hour, to several times what any
// benign user does: extreme_activity, explained by requests_1h.
func TestLowAndSlowActivityCaughtOverTheHour(t *testing.T) {
	f, rng := trainedFixture(t, 5, 6, 65*time.Minute) // an hour of history arms the hour variables
	const ip = "203.0.113.20"
	start := f.now
	for f.now.Sub(start) < 25*time.Minute && len(f.attacksOn(ip)) == 0 {
		f.now = f.now.Add(1250 * time.Millisecond) // 0.8 calls a second
		f.tx(ip, "thief", "GET", fmt.Sprintf("/shop/items/%d", rng.IntN(50)), 200, 900)
	}
	got := f.attacksOn(ip)
	if len(got) == 0 {
		got = f.attacksOn(f.fp.Fingerprint("thief"))
	}
	if len(got) == 0 || got[0].Type != detect.AttackExtremeActivity {
		t.Fatalf("not caught as extreme_activity: %+v", got)
	}
	var perMin, hour detect.VariableValue
	for _, v := range got[0].Variables {
		switch v.Name {
		case "requests_per_min":
			perMin = v
		case "requests_1h":
			hour = v
		}
	}
	if perMin.Observed > perMin.Tx/2 || hour.Observed <= hour.Tx || hour.DeviationPct <= 0 {
		t.Fatalf("want requests_1h past Tx with requests_per_min far under it: %+v", got[0].Variables)
	}
	// The address showed it first: the attack is the token's that carried
	// the call, and relaxing it relaxes the address's thresholds.
	if got[0].Identity.Kind != "token" || got[0].ClientIPs[0] != ip {
		t.Fatalf("recorded under %+v (addresses %v), want the token that carried it", got[0].Identity, got[0].ClientIPs)
	}
	rel, err := f.e.Relax(got[0])
	if err != nil || len(rel) == 0 || rel[0].Kind != "ip" {
		t.Fatalf("relax: %+v %v, want the ip population's thresholds", rel, err)
	}
	t.Logf("caught after %s: %+v", got[0].DetectedAt.Sub(start), got[0].Variables)
}

// The day variables wait for a day of traffic: their thresholds come from
// shorter histories until then. A person's Tx arms them at once.
func TestDayVariablesWaitForADayOfTraffic(t *testing.T) {
	fixture := func(userTx bool) *boundaryFixture {
		f := newBoundaryFixture(t, EngineConfig{})
		f.only(detect.AttackDataExfiltration)
		for _, name := range []string{"response_bytes_10m", "response_bytes_1h"} {
			f.userTx(detect.KindIP, name, 0, 1e12)
		}
		if userTx {
			f.userTx(detect.KindIP, "response_bytes_24h", 1e6, 32<<20)
		} else {
			f.learn(detect.KindIP, "response_bytes_24h", 1e6, 1e6) // learned Tx: its floor, 32 MiB
		}
		f.ready()
		return f
	}
	download := func(f *boundaryFixture, ip string) {
		for range 60 { // 60 MiB over 6 minutes: slow variables are judged once a minute
			f.now = f.now.Add(6 * time.Second)
			f.call(ip, func(t *detect.Transaction) { t.ResponseBytes = 1 << 20 })
		}
	}
	f := fixture(false)
	download(f, "203.0.113.30")
	if len(f.attacks) != 0 {
		t.Fatalf("a learned day variable raised %+v before the model saw a day", f.attacks[0])
	}
	// The same a day after the model started (a model of its own: the
	// first download, raising nothing, trained this one).
	f = fixture(false)
	f.now = f.now.Add(24 * time.Hour)
	download(f, "203.0.113.31")
	if len(f.attacks) != 1 || f.attacks[0].Identity.Value != "203.0.113.31" {
		t.Fatalf("after a day: %+v, want one data_exfiltration on 203.0.113.31", f.attacks)
	}
	for _, v := range f.attacks[0].Variables {
		if v.Name == "response_bytes_24h" && (v.Observed <= v.Tx || v.Tx != 32<<20) {
			t.Fatalf("explained as %+v", v)
		}
	}
	// A person's Tx arms it at once.
	f = fixture(true)
	download(f, "203.0.113.32")
	if len(f.attacks) != 1 {
		t.Fatalf("a user-set day Tx raised %d attacks, want 1", len(f.attacks))
	}
	// A model restored after a restart (or adopted from the trainer) that
	// started a day before keeps its day variables armed.
	old := fixture(false)
	old.now = old.now.Add(25 * time.Hour)
	old.call("203.0.113.9", nil)
	doc, _ := old.e.Model("shop")
	if doc.Status == nil || !doc.Status.Start.Equal(t0) {
		t.Fatalf("saved status %+v, want the model's start %v", doc.Status, t0)
	}
	for _, restore := range []func(*Engine, *ModelDoc) error{(*Engine).Restore, (*Engine).Adopt} {
		f = newBoundaryFixture(t, EngineConfig{})
		f.now = t0.Add(25 * time.Hour)
		if err := restore(f.e, doc); err != nil {
			t.Fatal(err)
		}
		download(f, "203.0.113.33")
		if len(f.attacks) != 1 || f.attacks[0].Identity.Value != "203.0.113.33" {
			t.Fatalf("restored model started a day before: %+v, want one data_exfiltration", f.attacks)
		}
	}
}

// An ID walk whose reads are mostly refused passes the error ratio (or the
// multivariate model's limit) before distinct_object_ids: its errors are
// the walk's, and it is named bola_enumeration, never excessive_errors.
func TestSlowIDWalkIsNamedBOLA(t *testing.T) {
	f, rng := trainedFixture(t, 9, 10, 45*time.Minute)
	const ip = "203.0.113.40"
	walker := f.fp.Fingerprint("walker")
	start := f.now
	for i := 0; f.now.Sub(start) < 30*time.Minute && len(f.attacksOn(walker)) == 0; i++ {
		f.now = f.now.Add(4 * time.Second)
		status := 403 // 70 % refused, 20 % missing, 10 % read
		switch r := rng.IntN(10); {
		case r == 0:
			status = 200
		case r < 3:
			status = 404
		}
		f.tx(ip, "walker", "GET", fmt.Sprintf("/shop/order/%d", 50000+i), status, 300)
	}
	got := f.attacksOn(walker)
	if len(got) == 0 {
		t.Fatal("the walk was not caught")
	}
	if got[0].Type != detect.AttackBOLAEnumeration {
		t.Fatalf("named %s, want bola_enumeration: %+v", got[0].Type, got[0].Variables)
	}
	objects := false
	for _, v := range got[0].Variables {
		objects = objects || v.Name == "distinct_object_ids" && v.Observed > v.Tn
	}
	if !objects {
		t.Fatalf("want the objects walked in the explanation: %+v", got[0].Variables)
	}
	for _, a := range f.attacks {
		if a.Type == detect.AttackExcessiveErrors {
			t.Fatalf("also raised %s on %s", a.Type, a.Identity.Value)
		}
	}
	t.Logf("named bola_enumeration after %s: %+v", got[0].DetectedAt.Sub(start), got[0].Variables)
}

// office runs, for d, an office of n users behind one address: each logs
// in (one in ten mistypes first: a 401 for their own name) and then calls
// every 20 to 60 seconds with their token.
func (f *engineFixture) office(ip string, n int, d time.Duration, rng *rand.Rand) {
	next := make([]time.Time, n)
	for i := range next {
		next[i] = f.now.Add(time.Duration(rng.IntN(60)) * time.Second)
	}
	end := f.now.Add(d)
	for f.now.Before(end) {
		f.now = f.now.Add(time.Second)
		for i := range next {
			if next[i].After(f.now) {
				continue
			}
			user, token := fmt.Sprintf("clerk%d", i), fmt.Sprintf("office-%s-%d", ip, i)
			switch r := rng.IntN(40); {
			case r == 0:
				f.login(ip, user, 401)
			case r < 3:
				f.login(ip, user, 200)
			default:
				f.tx(ip, token, "GET", fmt.Sprintf("/shop/order/%d", 5000+i*7+rng.IntN(7)), 200, 900)
			}
			next[i] = f.now.Add(time.Duration(20+rng.IntN(40)) * time.Second)
		}
	}
}

func (f *engineFixture) login(ip, user string, status int) {
	f.do(fixtureCall{ip: ip, user: user, agent: "browser/1.0", method: "POST", path: "/shop/login", status: status, respBytes: 200})
}

// An office of sixty behind one address is judged against what shared
// addresses do (the ip_shared population), not against one client's
// address: its failed logins across many user names and its volume raise
// nothing, while a single address doing a fraction of it is a credential
// stuffer, and a stuffer inside the office, far beyond what offices do,
// is caught with the office's user count in the explanation.
func TestSharedAddressesAreJudgedAsTheirPopulation(t *testing.T) {
	f := newEngineFixture(t, detect.ModeDetect)
	rng := rand.New(rand.NewPCG(11, 12))
	offices := []string{"198.18.0.1", "198.18.0.2", "198.18.0.3"}
	for range 9 { // 45 minutes of users and three offices
		f.benign(2*time.Minute, rng)
		for _, o := range offices {
			f.office(o, 60, time.Minute, rng)
		}
	}
	doc, _ := f.e.Model("shop")
	var ip, shared VariableDoc
	for _, v := range doc.Variables {
		if v.Name == "distinct_login_usernames" && v.Kind == "ip" {
			ip = v
		}
		if v.Name == "distinct_login_usernames" && v.Kind == "ip_shared" {
			shared = v
		}
	}
	if shared.Samples == 0 || ip.Samples == 0 || shared.Tn <= ip.Tn {
		t.Fatalf("want ip_shared learned apart from ip: ip %+v, ip_shared %+v", ip, shared)
	}
	// After training: the offices go on, busier than in training.
	for range 4 {
		for _, o := range offices {
			f.office(o, 90, time.Minute, rng)
		}
		f.benign(time.Minute, rng)
	}
	for _, o := range offices {
		if a := f.attacksOn(o); len(a) != 0 {
			t.Fatalf("office %s flagged: %+v", o, a[0])
		}
	}
	// A lone address failing logins for user names at an office's pace.
	const lone = "203.0.113.50"
	for i := range 30 {
		f.now = f.now.Add(15 * time.Second)
		f.login(lone, fmt.Sprintf("victim%d", i), 401)
	}
	if a := f.attacksOn(lone); len(a) == 0 || a[0].Type != detect.AttackCredentialStuffing {
		t.Fatalf("a lone address spraying 30 accounts: %+v", a)
	}
	// A stuffer inside an office: ten failed logins a minute for other names.
	for i := range 100 {
		f.now = f.now.Add(6 * time.Second)
		f.login(offices[0], fmt.Sprintf("breached%d@mail.example", i), 401)
		if i%10 == 0 {
			f.office(offices[0], 90, 5*time.Second, rng)
		}
	}
	got := f.attacksOn(offices[0])
	if len(got) == 0 || got[0].Type != detect.AttackCredentialStuffing {
		t.Fatalf("a stuffer inside the office was not caught: %+v", got)
	}
	users := false
	for _, v := range got[0].Variables {
		users = users || v.Name == "users_behind_address" && v.Observed >= sharedUsers
	}
	if !users {
		t.Fatalf("the explanation does not say the address is shared: %+v", got[0].Variables)
	}
	// Relaxing it relaxes the shared population, not the ip one.
	rel, err := f.e.Relax(got[0])
	if err != nil || len(rel) == 0 || rel[0].Kind != "ip_shared" {
		t.Fatalf("relax: %+v %v", rel, err)
	}
}

// A stuffer spreading failed logins over sixty addresses of one /24, two
// each (far under what any one address may do), is caught on the network,
// which is blocked as a range; the same over an IPv6 /48. Sixty neighbours
// in one range mistyping their name or password before logging in (ninety
// failed logins, sixty distinct names) raise nothing: their range logs in
// successfully more often than it fails.
func TestDistributedAttackJudgedPerNetwork(t *testing.T) {
	f := newEngineFixture(t, detect.ModeBlock)
	rng := rand.New(rand.NewPCG(13, 14))
	f.benign(45*time.Minute, rng)
	for i := range 60 { // neighbours mistyping their name or password, then logging in
		f.now = f.now.Add(5 * time.Second)
		ip := fmt.Sprintf("198.51.100.%d", 10+i)
		if i%2 == 0 {
			f.login(ip, fmt.Sprintf("neighbuor%d", i), 401)
		}
		f.login(ip, fmt.Sprintf("neighbour%d", i), 401)
		f.login(ip, fmt.Sprintf("neighbour%d", i), 200)
		f.login(ip, fmt.Sprintf("neighbour%d", i), 200)
	}
	if len(f.attacks) != 0 {
		t.Fatalf("attacks on benign traffic: %+v", f.attacks[0])
	}
	for _, tc := range []struct{ network, format string }{
		{"203.0.113.0/24", "203.0.113.%d"},
		{"2001:db8:7::/48", "2001:db8:7:%x::1"},
	} {
		for i := range 60 {
			f.now = f.now.Add(5 * time.Second)
			ip := fmt.Sprintf(tc.format, i+1)
			f.login(ip, fmt.Sprintf("breached%d@mail.example", 2*i), 401)
			f.login(ip, fmt.Sprintf("breached%d@mail.example", 2*i+1), 401)
		}
		for i := range 60 {
			if a := f.attacksOn(fmt.Sprintf(tc.format, i+1)); len(a) != 0 {
				t.Fatalf("one address of the spread attack flagged on its own: %+v", a[0])
			}
		}
		got := f.attacksOn(tc.network)
		if len(got) != 1 || got[0].Type != detect.AttackCredentialStuffing || got[0].Identity.Kind != "ip" {
			t.Fatalf("%s: %+v, want one credential_stuffing on the range", tc.network, got)
		}
		spread := false
		for _, v := range got[0].Variables {
			spread = spread || v.Name == "addresses_in_network" && v.Observed >= networkAddresses
		}
		blocked := false
		for _, b := range f.blocked {
			blocked = blocked || b.Kind == detect.KindIP && b.Value == tc.network
		}
		if !spread || !blocked {
			t.Fatalf("%s: explained %+v, blocked %v", tc.network, got[0].Variables, f.blocked)
		}
	}
	for _, a := range f.attacks {
		if a.Identity.Value == "198.51.100.0/24" {
			t.Fatalf("the neighbours' network flagged: %+v", a)
		}
	}
}

// A partner's API key with hours of steady history that suddenly reads
// fifteen times its own busiest 10 minutes, still under what the API key
// population may read, changed: data_exfiltration, explained by
// response_bytes_10m_vs_own. Its steady hours raise nothing.
func TestIdentityJudgedAgainstItsOwnHistory(t *testing.T) {
	f := newEngineFixture(t, detect.ModeDetect)
	rng := rand.New(rand.NewPCG(15, 16))
	key := f.fp.Fingerprint("pk_live_partner")
	partner := func(d time.Duration, resp int64) {
		end := f.now.Add(d)
		for f.now.Before(end) {
			f.benign(10*time.Second, rng)
			tx := &detect.Transaction{API: f.api, Host: "shop.example.com", Method: "GET", Path: fmt.Sprintf("/shop/order/%d", rng.IntN(5000)),
				Status: 200, ResponseBytes: resp, Start: f.now, HasRequest: true, Complete: true, UserAgent: "partner/2"}
			tx.Identities[detect.KindIP] = "198.18.5.5"
			tx.Identities[detect.KindAPIKey] = key
			f.e.Consume(tx)
		}
	}
	partner(150*time.Minute, 2000) // 60 calls and 120 kB per 10 minutes
	if len(f.attacks) != 0 {
		t.Fatalf("attacks on steady traffic: %+v", f.attacks[0])
	}
	partner(10*time.Minute, 30_000) // 1.8 MB in 10 minutes
	got := f.attacksOn(key)
	if len(got) == 0 || got[0].Type != detect.AttackDataExfiltration {
		t.Fatalf("the change was not caught: %+v", got)
	}
	var own, pop detect.VariableValue
	for _, v := range got[0].Variables {
		switch v.Name {
		case "response_bytes_10m_vs_own":
			own = v
		case "response_bytes_10m":
			pop = v
		}
	}
	if own.Observed <= own.Tx || pop.Observed > pop.Tx {
		t.Fatalf("want the self-baseline past Tx and the population's Tx not: %+v", got[0].Variables)
	}
	t.Logf("%+v", got[0].Variables)
}

// egress runs, for one second at f.now, six service accounts behind one
// egress address: each calls every two seconds with a bearer token it
// renews every 20 minutes (a new token, a login first).
func (f *engineFixture) egress(ip string, rng *rand.Rand) {
	if f.now.Unix()%2 != 0 {
		return
	}
	epoch := f.now.Unix() / int64(20*60)
	for i := range 6 {
		user := fmt.Sprintf("svc-%d@partner.example", i)
		token := fmt.Sprintf("svc-%d-%d", i, epoch)
		f.do(fixtureCall{ip: ip, token: token, user: user, agent: "sync/2.0", method: "GET",
			path: fmt.Sprintf("/shop/order/%d", 7000+rng.IntN(300)), status: 200, respBytes: 900})
	}
}

// Service accounts behind an integration's egress address renew their
// tokens every 20 minutes and call all day: each token looks like a new
// session as busy as no person's. Judged in token_on_shared_ip, they do
// not set the bar for people's tokens on their own addresses, so that a
// stolen token spread thin (20 calls a minute, far under the minute's
// limit, and a third of what one service token does in its life) is
// caught by its hour, named extreme_activity; the service accounts and
// their address raise nothing.
func TestServiceTokensOnSharedAddressesSetNoBarForPeople(t *testing.T) {
	f := newEngineFixture(t, detect.ModeDetect)
	rng := rand.New(rand.NewPCG(21, 22))
	const egress = "198.18.9.9"
	for range 45 { // 90 minutes of users and the service accounts
		end := f.now.Add(2 * time.Minute)
		f.benign(2*time.Minute, rng)
		for f.now = end.Add(-2 * time.Minute); f.now.Before(end); f.now = f.now.Add(time.Second) {
			f.egress(egress, rng)
		}
	}
	if len(f.attacks) != 0 {
		t.Fatalf("attacks on benign traffic: %+v", f.attacks[0])
	}
	doc, _ := f.e.Model("shop")
	tn := map[string]float64{}
	for _, v := range doc.Variables {
		if v.Name == "requests_1h" {
			tn[v.Kind] = v.Tn
		}
	}
	if tn["token_on_shared_ip"] <= 2*tn["token"] || tn["username_on_shared_ip"] <= 2*tn["username"] {
		t.Fatalf("requests_1h Tn per population %v: the service accounts' should be far above people's", tn)
	}
	stolen := f.fp.Fingerprint("stolen-session")
	for range 20 * 60 / 3 { // 20 minutes, a call every 3 seconds
		start := f.now
		f.benign(3*time.Second, rng)
		for f.now = start; f.now.Before(start.Add(3 * time.Second)); f.now = f.now.Add(time.Second) {
			f.egress(egress, rng)
		}
		f.now = start.Add(3 * time.Second)
		f.tx("203.0.113.77", "stolen-session", "GET", fmt.Sprintf("/shop/items/%d", rng.IntN(20)), 200, 2000)
	}
	got := f.attacksOn(stolen)
	if len(got) == 0 || got[0].Type != detect.AttackExtremeActivity {
		t.Fatalf("stolen token spread thin: %+v, want extreme_activity", got)
	}
	hour := false
	for _, v := range got[0].Variables {
		hour = hour || v.Name == "requests_1h" && v.Observed > v.Tx
	}
	if !hour {
		t.Fatalf("explained by %+v, want requests_1h past its Tx", got[0].Variables)
	}
	// Relaxing a credential's attack relaxes the population it was judged
	// in: on a shared address, its kind's *_on_shared_ip; judged on its
	// own address (the address alone crossed the same limit at the same
	// call), the address's.
	var own *detect.Attack
	for _, a := range got {
		onAddress := slices.ContainsFunc(a.Variables, func(v detect.VariableValue) bool { return v.Name == addressVariable })
		if !onAddress {
			own = cmp.Or(own, a)
			continue
		}
		if rel, err := f.e.Relax(a); err != nil || len(rel) == 0 || rel[0].Kind != "ip" {
			t.Fatalf("relax (judged on its address): %+v %v, want ip", rel, err)
		}
	}
	if own == nil {
		t.Fatalf("no attack judged on the token itself: %+v", got)
	}
	for _, tc := range []struct {
		context bool
		want    string
	}{{false, "token"}, {true, "token_on_shared_ip"}} {
		a := *own
		a.Variables = append([]detect.VariableValue(nil), a.Variables...)
		if tc.context {
			a.Variables = append(a.Variables, sharedAddressVariable())
		}
		rel, err := f.e.Relax(&a)
		if err != nil || len(rel) == 0 || rel[0].Kind != tc.want {
			t.Fatalf("relax (on a shared address %v): %+v %v, want %s", tc.context, rel, err, tc.want)
		}
	}
	for _, a := range f.attacks {
		if a.Identity.Value != stolen && a.Identity.Value != "203.0.113.77" {
			t.Fatalf("benign identity flagged: %+v", a)
		}
	}
}

// Once a model is ready, identities that keep just under a limit do not
// raise it: twenty tokens at 80 calls a minute (under requests_per_min's
// Tx, its floor of 100) for half an hour of relearning leave it where it
// was; trained on, they would have lifted it to 1.5 times their pace,
// and the next twenty could go faster.
func TestReadyModelLimitsDoNotRatchet(t *testing.T) {
	f := newEngineFixture(t, detect.ModeDetect)
	rng := rand.New(rand.NewPCG(23, 24))
	f.benign(45*time.Minute, rng)
	txOf := func() float64 {
		doc, _ := f.e.Model("shop")
		for _, v := range doc.Variables {
			if v.Name == "requests_per_min" && v.Kind == "token" {
				return v.Tx
			}
		}
		t.Fatal("no requests_per_min for tokens")
		return 0
	}
	before := txOf()
	for range 30 * 80 { // 80 calls a minute each, for 30 minutes
		f.now = f.now.Add(750 * time.Millisecond)
		for i := range 20 {
			f.tx(fmt.Sprintf("10.9.0.%d", i), fmt.Sprintf("busy-%d", i), "GET", "/shop/items", 200, 500)
		}
	}
	f.benign(11*time.Minute, rng) // a relearn after them
	if after := txOf(); after != before {
		t.Fatalf("requests_per_min Tx for tokens moved from %v to %v on values just under it", before, after)
	}
}

// The model's registry of shared addresses says shared for an hour after
// an address was last found so, and forgets the addresses no longer
// shared as it goes: it holds only what is live.
func TestSharedAddressRegistryForgets(t *testing.T) {
	m := newAPIModel("shop", nil, TrainingConfig{})
	const start = int32(1_000_000)
	m.noteSharedIP("198.18.0.1", start)
	if !m.sharedIP("198.18.0.1", start+sharedIPFor) || m.sharedIP("198.18.0.1", start+sharedIPFor+1) {
		t.Fatal("an address found shared counts as shared for sharedIPFor minutes, no longer")
	}
	if m.sharedIP("198.18.0.2", start) {
		t.Fatal("an address never found shared is shared")
	}
	later := start + 2*sharedIPFor
	for i := range 2048 { // other offices, found shared later
		m.noteSharedIP(fmt.Sprintf("10.%d.%d.1", i/256, i%256), later)
	}
	n := 0
	m.sharedIPs.Range(func(k, _ any) bool {
		if k == "198.18.0.1" {
			t.Error("a stale address is still held")
		}
		n++
		return true
	})
	if n != 2048 {
		t.Fatalf("%d addresses held, want the 2048 live ones", n)
	}
}

// A password sprayer on one address tries one account every six minutes:
// two failed logins in any ten minutes and fewer in the hour than
// login_failures_1h's floor, but more accounts in the hour than one
// client's address ever names (distinct_login_usernames_1h). A household
// whose two people mistype their passwords raises nothing.
func TestPasswordSprayingCaughtOverTheHour(t *testing.T) {
	f := newEngineFixture(t, detect.ModeBlock)
	rng := rand.New(rand.NewPCG(21, 22))
	f.benign(65*time.Minute, rng) // an hour of history arms the hour variables
	const home, sprayer = "198.51.100.7", "203.0.113.66"
	start, tries := f.now, 0
	for i := 0; f.now.Sub(start) < time.Hour && len(f.attacksOn(sprayer)) == 0; i++ {
		f.now = f.now.Add(6 * time.Minute)
		if i < 6 {
			f.login(home, []string{"ana@home.example", "ben@home.example"}[i%2], 401)
			f.login(home, []string{"ana@home.example", "ben@home.example"}[i%2], 200)
		}
		f.login(sprayer, fmt.Sprintf("employee%d@corp.example", i), 401)
		tries++
	}
	if a := f.attacksOn(home); len(a) != 0 {
		t.Fatalf("the household flagged: %+v", a[0])
	}
	got := f.attacksOn(sprayer)
	if len(got) == 0 || got[0].Type != detect.AttackCredentialStuffing {
		t.Fatalf("sprayer not caught as credential_stuffing within the hour: %+v", got)
	}
	var fired []string
	for _, v := range got[0].Variables {
		if v.Observed > v.Tx {
			fired = append(fired, v.Name)
		}
		// The hour counts every try, the first ones made before the
		// address had an hour window too.
		if v.Name == "login_failures_1h" && v.Observed != float64(tries) {
			t.Errorf("login_failures_1h %v after %d failed tries", v.Observed, tries)
		}
	}
	if len(fired) != 1 || fired[0] != "distinct_login_usernames_1h" {
		t.Fatalf("fired %v, want distinct_login_usernames_1h alone: %+v", fired, got[0].Variables)
	}
	t.Logf("caught after %s: %+v", got[0].DetectedAt.Sub(start), got[0].Variables)
}

// A stolen session token used from a new address with a new client
// every twelve minutes (one address in any ten minutes) is caught at its
// third user agent, where the population's sessions each show one: a
// client's own session does not change agent. The session's owner moving
// between networks with the same app is not.
func TestSessionWithAThirdUserAgentIsStolen(t *testing.T) {
	f := newEngineFixture(t, detect.ModeBlock)
	rng := rand.New(rand.NewPCG(23, 24))
	f.benign(45*time.Minute, rng)
	start := f.now
	for i := 0; i < 5 && len(f.attacksOn(f.fp.Fingerprint("stolen"))) == 0; i++ {
		for range 4 {
			f.now = f.now.Add(15 * time.Second)
			f.session(fmt.Sprintf("203.0.113.%d", 80+i), "stolen", fmt.Sprintf("shop-app/3.%d", i))
			f.session(fmt.Sprintf("198.51.100.%d", 80+i%2), "owner", "shop-app/2.9")
		}
		f.now = f.now.Add(11 * time.Minute)
	}
	if a := f.attacksOn(f.fp.Fingerprint("owner")); len(a) != 0 {
		t.Fatalf("the owner moving between two networks flagged: %+v", a[0])
	}
	got := f.attacksOn(f.fp.Fingerprint("stolen"))
	if len(got) == 0 || got[0].Type != detect.AttackStolenToken {
		t.Fatalf("not caught as stolen_token: %+v", got)
	}
	for _, v := range got[0].Variables {
		if v.Name == "distinct_user_agents" && (v.Observed < 3 || v.Observed >= 4 || v.Observed <= v.Tx) {
			t.Fatalf("distinct_user_agents %+v, want the third agent past Tx", v)
		}
	}
	t.Logf("caught after %s: %+v", got[0].DetectedAt.Sub(start), got[0].Variables)
}

// An identity that does little but delete is a mass deleter from its
// tenth delete in the hour on (delete_ratio_1h), under every count: an
// address behind which taken-over accounts each log in, look once and
// delete one or two orders, a few minutes apart.
func TestDeleteShareOfAnHour(t *testing.T) {
	f, _ := trainedFixture(t, 27, 28, 65*time.Minute)
	const addr = "203.0.113.60"
	var tenth time.Time
	for i := range 10 {
		f.now = f.now.Add(4 * time.Minute) // two or three deletes every ten minutes: under deletes_10m and deletes_1h
		f.login(addr, fmt.Sprintf("victim%d", i), 200)
		f.now = f.now.Add(5 * time.Second)
		f.tx(addr, fmt.Sprintf("victim%d-token", i), "GET", "/shop/profile", 200, 400)
		f.now = f.now.Add(5 * time.Second)
		f.tx(addr, fmt.Sprintf("victim%d-token", i), "DELETE", fmt.Sprintf("/shop/order/%d", 7000+i), 204, 0)
		tenth = f.now
	}
	got := f.attacksOn(addr)
	if len(got) == 0 || got[0].Type != detect.AttackMassDeletion || !got[0].DetectedAt.Equal(tenth) {
		t.Fatalf("attacks on the address %+v, want mass_deletion at its tenth delete (%s)", got, tenth)
	}
	v, ok := variable(got[0], "delete_ratio_1h")
	if !ok || v.Observed <= v.Tx || v.Observed < 0.3 || v.Tx < 0.25 {
		t.Fatalf("delete_ratio_1h %+v, want a third of its calls past Tx", v)
	}
	if d, _ := variable(got[0], "deletes_1h"); d.Observed > d.Tx {
		t.Fatalf("deletes_1h %+v: want it under its Tx (the share alone names it)", d)
	}
}

// A slow deleter's hour is judged at each delete: the delete that takes
// deletes_1h past its limit raises the attack at once, though it is not
// the identity's first call of its minute and the deleter never calls
// again (the slow variables are otherwise judged once a minute).
func TestSlowVariablesJudgedAtANotableCall(t *testing.T) {
	f, _ := trainedFixture(t, 25, 26, 65*time.Minute)
	var last time.Time
	for i := range 11 { // deletes_1h's floor is 10: the 11th passes it
		if i%3 == 0 {
			f.now = f.now.Add(5 * time.Minute) // three deletes every 5 minutes: under deletes_10m
		} else {
			f.now = f.now.Add(10 * time.Second)
		}
		for range 4 { // reads between: deletes a fifth of its calls, under delete_ratio_1h
			f.tx("203.0.113.50", "cleaner", "GET", "/shop/items/7", 200, 900)
		}
		f.tx("203.0.113.50", "cleaner", "DELETE", fmt.Sprintf("/shop/order/%d", 5000+i), 204, 0)
		last = f.now
	}
	// The token's own, and its address's recorded under it: both at once.
	got := f.attacksOn(f.fp.Fingerprint("cleaner"))
	for _, a := range got {
		if a.Type != detect.AttackMassDeletion || !a.DetectedAt.Equal(last) {
			t.Errorf("%s at %s, want mass_deletion at the 11th delete (%s): %+v", a.Type, a.DetectedAt, last, a.Variables)
		}
	}
	if len(got) == 0 {
		t.Fatal("the slow deleter was not caught")
	}
	if v, _ := variable(got[0], "deletes_1h"); v.Observed != 11 || v.Observed <= v.Tx {
		t.Fatalf("deletes_1h %+v, want 11 past Tx", v)
	}
}

// A script that logs its one account in for a fresh token on every run is
// one user, not an office: its address is judged as one client's, and its
// errors over the hour are caught as such.
func TestOneAccountWithManyTokensIsNotAnOffice(t *testing.T) {
	f := newEngineFixture(t, detect.ModeDetect)
	rng := rand.New(rand.NewPCG(29, 30))
	f.benign(65*time.Minute, rng)
	if len(f.attacks) != 0 {
		t.Fatalf("attacks on benign traffic: %+v", f.attacks[0])
	}
	const addr, account = "203.0.113.70", "cron-bot"
	call := func(token, method, path string, status int) {
		f.do(fixtureCall{ip: addr, token: token, user: account, agent: "curl/8.5", method: method, path: path, status: status, respBytes: 200})
	}
	for run := range 6 { // a run every 11 minutes: two logins, 4 errors, under errors_10m
		f.now = f.now.Add(11 * time.Minute)
		for part := range 2 {
			f.now = f.now.Add(2 * time.Second)
			call("", "POST", "/shop/login", 200)
			token := fmt.Sprintf("run-%d-%d", run, part)
			for range 2 {
				f.now = f.now.Add(2 * time.Second)
				call(token, "PUT", "/shop/order", 400)
			}
			f.now = f.now.Add(2 * time.Second)
			call(token, "GET", "/shop/profile", 200)
		}
	}
	// Judged as one client: the address's errors_1h, recorded under the
	// token that carried the call (judged_on_address), never as an
	// office's (users_behind_address) or an office user's
	// (on_shared_address).
	var got []*detect.Attack
	for _, a := range f.attacks {
		if a.Type == detect.AttackExcessiveErrors {
			got = append(got, a)
		}
		for _, v := range a.Variables {
			if v.Name == sharedAddressVariableName || v.Name == usersVariableName {
				t.Fatalf("judged as a shared address: %+v", a)
			}
		}
	}
	if len(got) == 0 {
		t.Fatalf("attacks %+v, want excessive_errors", f.attacks)
	}
	if v, ok := variable(got[0], "errors_1h"); !ok || v.Observed <= v.Tx {
		t.Fatalf("errors_1h %+v, want past its Tx", v)
	}
	if _, ok := variable(got[0], addressVariable); !ok {
		t.Fatalf("explained by %+v, want the address judged as one client", got[0].Variables)
	}
}

// A stolen session used while its owner goes on using it: two addresses
// and two user agents, each under every count (distinct_ips,
// distinct_user_agents), but the calls alternate between the addresses
// (address_switches_10m). The owner alone, moving between two networks
// now and then, is not flagged.
func TestSessionUsedFromTwoAddressesAtOnceIsStolen(t *testing.T) {
	f, rng := trainedFixture(t, 29, 30, 45*time.Minute)
	shared, mover := f.fp.Fingerprint("shared"), f.fp.Fingerprint("mover")
	start := f.now
	for i := 0; f.now.Sub(start) < 20*time.Minute && len(f.attacksOn(shared)) == 0; i++ {
		f.now = f.now.Add(time.Duration(10+rng.IntN(30)) * time.Second)
		if rng.IntN(2) == 0 {
			f.session("198.51.100.7", "shared", "shop-app/2.9")
		} else {
			f.session("203.0.113.90", "shared", "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0")
		}
		f.session(fmt.Sprintf("192.0.2.%d", 20+i/20), "mover", "shop-app/2.9") // another network every 20 calls
	}
	if a := f.attacksOn(mover); len(a) != 0 {
		t.Fatalf("a session moving between networks flagged: %+v", a[0])
	}
	got := f.attacksOn(shared)
	if len(got) == 0 || got[0].Type != detect.AttackStolenToken {
		t.Fatalf("not caught as stolen_token in 20 minutes: %+v", got)
	}
	if v, ok := variable(got[0], "address_switches_10m"); !ok || v.Observed <= v.Tx || v.Observed < 8 {
		t.Fatalf("address_switches_10m %+v, want it past Tx", v)
	}
	for _, name := range []string{"distinct_ips", "distinct_user_agents"} {
		if v, _ := variable(got[0], name); v.Observed > v.Tx {
			t.Fatalf("%s %+v past Tx: want the switches alone to name it", name, v)
		}
	}
	t.Logf("caught after %s: %+v", got[0].DetectedAt.Sub(start), got[0].Variables)
}

// An ID walk in bursts, each under the 10-minute counts and more than ten
// minutes after the one before, between ordinary reads: its refused reads
// take errors_1h past its limit in a later burst, when the 10 minutes hold
// few of them. The errors are the walk's: it is named bola_enumeration.
func TestWalkInBurstsIsNamedBOLA(t *testing.T) {
	f, rng := trainedFixture(t, 31, 32, 65*time.Minute)
	const ip = "203.0.113.41"
	walker := f.fp.Fingerprint("burst-walker")
	id, start := 90000, f.now
	for burst := 0; burst < 4 && len(f.attacksOn(walker)) == 0; burst++ {
		for range 8 {
			f.now = f.now.Add(50 * time.Second)
			id--
			status := 403
			if rng.IntN(4) == 0 {
				status = 404
			}
			f.tx(ip, "burst-walker", "GET", fmt.Sprintf("/shop/order/%d", id), status, 200)
			f.tx(ip, "burst-walker", "GET", fmt.Sprintf("/shop/items/%d", rng.IntN(5000)), 200, 900)
		}
		for range 11 { // a pause of 11 minutes, reading items
			f.now = f.now.Add(time.Minute)
			f.tx(ip, "burst-walker", "GET", fmt.Sprintf("/shop/items/%d", rng.IntN(5000)), 200, 900)
		}
	}
	got := f.attacksOn(walker)
	if len(got) == 0 {
		t.Fatal("the walk in bursts was not caught")
	}
	if got[0].Type != detect.AttackBOLAEnumeration {
		t.Fatalf("named %s, want bola_enumeration: %+v", got[0].Type, got[0].Variables)
	}
	t.Logf("named bola_enumeration after %s: %+v", got[0].DetectedAt.Sub(start), got[0].Variables)
}
