package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-project/vigil/detect"

	"github.com/vigil-project/vigil/server/demo/shop"
)

// Attack is one scripted attack of the timeline. Each comes from client
// addresses of its own (45.128.N.0/24), so that a detection names it by
// the addresses in its record.
type Attack struct {
	Name   string
	Title  string
	Expect detect.AttackType // the type it is built to be caught as
	At     time.Duration     // start, from the beginning of the live part
	Net    string            // its addresses' prefix, e.g. "45.128.1."
	run    func(ctx context.Context, x *attackRun)

	mu        sync.Mutex
	started   time.Time
	done      bool
	requests  int
	refused   int // calls Vigil refused
	lastError error
}

// IsScriptIP says whether ip is one of the scripted attacks' addresses
// (45.128.0.0/16).
func IsScriptIP(ip string) bool { return strings.HasPrefix(ip, "45.128.") }

// IsScriptUser says whether user is an account the script uses: user197 …
// user200 (the attackers' own accounts and the stolen token's victim).
func IsScriptUser(user string) bool {
	n, err := strconv.Atoi(strings.TrimPrefix(user, "user"))
	return err == nil && strings.HasPrefix(user, "user") && n >= shop.NumUsers-3 && n <= shop.NumUsers
}

// Owns says whether ip is one of the attack's addresses.
func (a *Attack) Owns(ip string) bool { return strings.HasPrefix(ip, a.Net) }

// AttackStatus is what the script saw of one attack.
type AttackStatus struct {
	Started  time.Time
	Done     bool
	Requests int
	Refused  int
}

// Status returns what the script saw so far.
func (a *Attack) Status() AttackStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return AttackStatus{Started: a.started, Done: a.done, Requests: a.requests, Refused: a.refused}
}

// attackRun is one attack being played.
type attackRun struct {
	a    *Attack
	http *http.Client
	base string
	sh   *shop.Shop
}

func (x *attackRun) client(host int, agent string) *Client {
	return &Client{HTTP: x.http, Base: x.base, IP: x.a.Net + strconv.Itoa(host), Agent: agent}
}

// do sends one call and counts it; it reports whether the attack should go
// on (not refused lately and ctx alive).
func (x *attackRun) do(ctx context.Context, c *Client, method, path, contentType string, body []byte, hdr ...string) (Response, bool) {
	res, err := c.Do(ctx, method, path, contentType, body, hdr...)
	if ctx.Err() != nil {
		return res, false
	}
	x.a.mu.Lock()
	defer x.a.mu.Unlock()
	x.a.requests++
	if err != nil {
		x.a.lastError = err
		return res, true
	}
	if res.Refused && res.Status == http.StatusForbidden {
		x.a.refused++
	}
	// Once blocked, an attacker is shown a few refusals, then gives up.
	return res, x.a.refused < 3
}

// Script returns the attack timeline: each attack starts at its offset
// and runs until Vigil blocks it or its own plan ends.
func Script() []*Attack {
	return []*Attack{
		{Name: "probing", Title: "probing unknown endpoints (forced browsing)", Expect: detect.AttackProbing, At: 2 * time.Second, Net: "45.128.1.", run: probing},
		{Name: "id_walking", Title: "ID walking over other users' orders (BOLA)", Expect: detect.AttackBOLAEnumeration, At: 3 * time.Second, Net: "45.128.2.", run: idWalking},
		{Name: "credential_stuffing", Title: "credential stuffing against /login", Expect: detect.AttackCredentialStuffing, At: 6 * time.Second, Net: "45.128.3.", run: stuffing},
		{Name: "stolen_token", Title: "a stolen token used from many addresses", Expect: detect.AttackStolenToken, At: 9 * time.Second, Net: "45.128.4.", run: stolenToken},
		{Name: "exfiltration", Title: "exfiltration through /export", Expect: detect.AttackDataExfiltration, At: 13 * time.Second, Net: "45.128.5.", run: exfiltration},
		{Name: "json_patch_flood", Title: "a JSON Patch flood (huge PATCH bodies)", Expect: detect.AttackOversizedPayload, At: 17 * time.Second, Net: "45.128.6.", run: patchFlood},
		{Name: "decoy", Title: "a call to a decoy (/shopapi-bid/admin)", Expect: detect.AttackDecoy, At: 21 * time.Second, Net: "45.128.7.", run: decoyHit},
		{Name: "mass_assignment", Title: `a mass-assignment PATCH /profile with "role":"admin"`, Expect: detect.AttackMassAssignment, At: 7 * time.Second, Net: "45.128.9.", run: massAssignment},
		{Name: "injection_scanner", Title: "an injection scanner (SQL injection, path traversal, XSS, command injection)", Expect: detect.AttackSQLInjection, At: 5 * time.Second, Net: "45.128.8.", run: injectionScanner},
	}
}

// PlayScript runs the attacks, each at its offset from now, through the
// front door at base; it returns when all are done or ctx ends.
func PlayScript(ctx context.Context, attacks []*Attack, hc *http.Client, base string, sh *shop.Shop) {
	var wg sync.WaitGroup
	start := time.Now()
	for _, a := range attacks {
		wg.Go(func() {
			if !sleep(ctx, time.Until(start.Add(a.At))) {
				return
			}
			a.mu.Lock()
			a.started = time.Now()
			a.mu.Unlock()
			a.run(ctx, &attackRun{a: a, http: hc, base: base, sh: sh})
			a.mu.Lock()
			a.done = true
			a.mu.Unlock()
		})
	}
	wg.Wait()
}

// every runs fn every d until it returns false, n times at most.
func every(ctx context.Context, d time.Duration, n int, fn func(i int) bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for i := range n {
		if !fn(i) {
			return
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

var probeWords = []string{"backup", "config", "users", "api-docs", "swagger.json", "graphql", "v1", "v2", "debug", "console",
	"actuator", "metrics", "env", "accounts", "payments", "invoices", "refunds", "coupons", "giftcards", "upload", "files",
	"download", "import", "reports", "stats", "wallet", "balance", "transfer", "keys", "secrets", "test", "dev", "staging",
	"old", "tmp", "private", "system", "status", "version", "logs", "trace", "jobs", "webhooks", "members", "customers"}

// probing walks a wordlist without credentials, ten calls a second, with a
// scanner's user agent: 404s on endpoints that do not exist.
func probing(ctx context.Context, x *attackRun) {
	c := x.client(10, "gobuster/3.6")
	every(ctx, 100*time.Millisecond, 3*len(probeWords), func(i int) bool {
		p := shop.BasePath + "/" + probeWords[i%len(probeWords)] + []string{"", ".json", ".bak"}[i/len(probeWords)]
		_, ok := x.do(ctx, c, "GET", p, "", nil)
		return ok
	})
}

// idWalking logs in with an account of its own, then reads order after
// order by sequential ID, eight a second: the shop answers them all (its
// BOLA weakness). Every call reads a new object, so the distinct objects
// (limit 80) pass their limit before the calls per minute (limit 100) do.
func idWalking(ctx context.Context, x *attackRun) {
	c := x.client(20, "python-requests/2.32.3")
	if _, err := c.Login(ctx, shop.UserName(199), shop.UserPassword(199)); err != nil || c.Token == "" {
		return
	}
	every(ctx, 125*time.Millisecond, 300, func(i int) bool {
		_, ok := x.do(ctx, c, "GET", shop.BasePath+"/order/"+strconv.Itoa(shop.FirstOrderID+i), "", nil)
		return ok
	})
}

var breachedNames = []string{"anna.schmidt", "j.mueller", "peter_k", "lena.w", "max.mustermann", "tom.becker", "sarah88", "nico.f",
	"julia.h", "m.wagner", "k.fischer", "emma.s", "david.k", "lisa_m", "paul.r", "mia.b", "felix.z", "sophie.l", "lukas.n", "hannah.g"}

// stuffing tries one password per user name from a breach list, five
// logins a second, from one address: almost every one fails with 401.
func stuffing(ctx context.Context, x *attackRun) {
	c := x.client(30, "python-requests/2.31.0")
	every(ctx, 200*time.Millisecond, 200, func(i int) bool {
		name := breachedNames[i%len(breachedNames)] + "@mail.example"
		if i%4 == 3 {
			name = shop.UserName(1 + (i*37)%shop.NumUsers) // a real account, a leaked password of another site
		}
		_, ok := x.do(ctx, c, "POST", shop.BasePath+"/login", "application/x-www-form-urlencoded", []byte(shop.LoginForm(name, "Summer2024!")))
		return ok
	})
}

// stolenToken: the victim (user200) logs in from home; the token then
// turns up from one new address after another, each with a browser of its
// own, reading the victim's orders.
func stolenToken(ctx context.Context, x *attackRun) {
	victim := &Client{HTTP: x.http, Base: x.base, IP: BenignIP(200), Agent: userAgents[0]}
	if _, err := victim.Login(ctx, shop.UserName(200), shop.UserPassword(200)); err != nil || victim.Token == "" {
		return
	}
	orders := x.sh.OrdersOf(shop.UserName(200))
	every(ctx, 250*time.Millisecond, 60, func(i int) bool {
		c := x.client(1+i/2, fmt.Sprintf("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.%d.%d Safari/537.36", 110+i/2, 4000+i*37, i))
		c.Token = victim.Token
		p := shop.BasePath + "/search?q=camera"
		if len(orders) > 0 && i%2 == 0 {
			p = shop.BasePath + "/order/" + strconv.Itoa(orders[i/2%len(orders)])
		}
		_, ok := x.do(ctx, c, "GET", p, "", nil)
		return ok
	})
}

// exfiltration logs in and pulls exports of 5,000 orders (about 2 MB
// each), one a second.
func exfiltration(ctx context.Context, x *attackRun) {
	c := x.client(50, "curl/8.11.0")
	if _, err := c.Login(ctx, shop.UserName(198), shop.UserPassword(198)); err != nil || c.Token == "" {
		return
	}
	every(ctx, time.Second, 30, func(i int) bool {
		_, ok := x.do(ctx, c, "GET", shop.BasePath+"/export?limit=5000&offset="+strconv.Itoa(i*5000), "", nil)
		return ok
	})
}

// patchFlood logs in and sends JSON Patch documents of thousands of
// operations to one of its orders: first 4,000 operations (under the body
// size limit, over the element limit), then 2 MB bodies.
func patchFlood(ctx context.Context, x *attackRun) {
	c := x.client(60, "Go-http-client/1.1")
	if _, err := c.Login(ctx, shop.UserName(197), shop.UserPassword(197)); err != nil || c.Token == "" {
		return
	}
	orders := x.sh.OrdersOf(shop.UserName(197))
	if len(orders) == 0 {
		return
	}
	path := shop.BasePath + "/order/" + strconv.Itoa(orders[0])
	every(ctx, 500*time.Millisecond, 20, func(i int) bool {
		ops := 4000
		if i > 0 {
			ops = 50000
		}
		_, ok := x.do(ctx, c, "PATCH", path, "application/json-patch+json", jsonPatch(ops), "Expect", "100-continue")
		return ok
	})
}

func jsonPatch(n int) []byte {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"op":"replace","path":"/amount","value":%d}`, 1+i%1000)
	}
	b.WriteByte(']')
	return []byte(b.String())
}

// decoyHit calls a path no real client calls, then tries the real API.
func decoyHit(ctx context.Context, x *attackRun) {
	c := x.client(70, "curl/8.11.0")
	x.do(ctx, c, "GET", shop.BasePath+"/admin", "", nil)
	every(ctx, 500*time.Millisecond, 6, func(i int) bool {
		_, ok := x.do(ctx, c, "GET", shop.BasePath+"/search?q=watch", "", nil)
		return ok
	})
}

// scannerPayloads are what the injection scanner sends, in order: SQL
// injection and path traversal into the search and order endpoints, then
// XSS and command injection, as a scanner (sqlmap, wapiti, Acunetix) goes
// through its checks parameter by parameter.
var scannerPayloads = []struct{ method, path, body string }{
	{"GET", "/search?q=" + url.QueryEscape("watch' OR '1'='1' -- "), ""},
	{"GET", "/search?q=" + url.QueryEscape("camera' UNION SELECT username,password,email FROM users--"), ""},
	{"GET", "/order/" + url.PathEscape("100001 OR 1=1"), ""},
	{"GET", "/search?q=" + url.QueryEscape("../../../../etc/passwd"), ""},
	{"GET", "/order/" + url.PathEscape("100001' AND SLEEP(5)-- "), ""},
	{"GET", "/search?q=" + url.QueryEscape("..%2f..%2f..%2f..%2fetc%2fshadow"), ""},
	{"PUT", "/order", `{"item_id":1,"amount":10.5,"quantity":1,"note":"1' AND (SELECT 1 FROM (SELECT SLEEP(5))x)-- "}`},
	{"GET", "/search?q=" + url.QueryEscape(`"><script>alert(document.cookie)</script>`), ""},
	{"GET", "/search?q=" + url.QueryEscape("lamp; cat /etc/passwd"), ""},
	{"GET", "/search?q=" + url.QueryEscape("lamp' AND 1=CONVERT(int,(SELECT @@version))--"), ""},
}

// injectionScanner plays a web scanner without credentials: one payload
// after another into the search and order endpoints, four a second,
// round the list again, until its address is on the block list (it sees
// three refusals whose reason is no attack type any more) or its plan
// ends. Content inspection refuses each payload on the request itself.
func injectionScanner(ctx context.Context, x *attackRun) {
	c := x.client(80, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 (scanner)")
	blocked := 0
	every(ctx, 250*time.Millisecond, 4*len(scannerPayloads), func(i int) bool {
		p := scannerPayloads[i%len(scannerPayloads)]
		ct := ""
		if p.body != "" {
			ct = "application/json"
		}
		res, _ := x.do(ctx, c, p.method, shop.BasePath+p.path, ct, []byte(p.body))
		if res.Refused && res.Reason == "blocklist" {
			blocked++
		}
		return ctx.Err() == nil && blocked < 3
	})
}

// escalations are the account writes the mass-assignment attacker tries:
// its profile edit with a key no user sends on it, one after another.
var escalations = []string{
	`{"display_name":"Tom Weber","role":"admin"}`,
	`{"email":"tom.197@mail.example","is_admin":true}`,
	`{"role":"admin"}`,
	`{"display_name":"Tom Weber","roles":["admin","staff"]}`,
	`{"account_type":"staff","role":"superuser"}`,
}

// massAssignment logs in with an account of its own, reads its profile as
// the app does, then sends the app's own profile edit with "role":"admin"
// added (the shop binds the body onto the account as a whole), and other
// privilege keys after it, two a second, until its token is blocked.
func massAssignment(ctx context.Context, x *attackRun) {
	c := x.client(90, "ShopApp/4.12.0 (Android 14; Pixel 8)")
	if _, err := c.Login(ctx, shop.UserName(197), shop.UserPassword(197)); err != nil || c.Token == "" {
		return
	}
	x.do(ctx, c, "GET", shop.BasePath+"/profile", "", nil)
	blocked := 0
	every(ctx, 500*time.Millisecond, 4*len(escalations), func(i int) bool {
		res, _ := x.do(ctx, c, "PATCH", shop.BasePath+"/profile", "application/json", []byte(escalations[i%len(escalations)]))
		if res.Refused && res.Reason == "blocklist" {
			blocked++
		}
		return ctx.Err() == nil && blocked < 3
	})
}

// Detection is one attack record as the demo shows it.
type Detection struct {
	Attack *detect.Attack
	Script *Attack // the scripted attack it names, or nil
	Benign bool    // it names only demo users' addresses
}

// Attribute finds the scripted attack an attack record names, by the
// client addresses in it.
func Attribute(a *detect.Attack, script []*Attack) Detection {
	d := Detection{Attack: a}
	for _, s := range script {
		for _, ip := range a.ClientIPs {
			if s.Owns(ip) {
				d.Script = s
				return d
			}
		}
	}
	if len(a.ClientIPs) > 0 && !slices.ContainsFunc(a.ClientIPs, func(ip string) bool { return !IsBenignIP(ip) }) {
		d.Benign = true
	}
	return d
}

// Explain says why an attack was raised, in one line: the variables past
// their limit (Tx) with what is normal (Tn), or the decoy call.
func Explain(a *detect.Attack) string {
	if slices.Contains(detect.ContentAttackTypes(), a.Type) {
		return explainContent(a)
	}
	if a.Request != nil {
		s := fmt.Sprintf("called the decoy %s %s", a.Request.Method, a.Request.Path)
		if a.Honeytoken != nil {
			s = fmt.Sprintf("used a honeytoken (%s) planted by %s", a.Honeytoken.Kind, a.Honeytoken.MintedBy)
		}
		return s
	}
	var parts []string
	for _, v := range a.Variables {
		if a.Type != detect.AttackAnomalous && v.Observed <= v.Tx {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s = %s (normal ≤ %s, limit %s)", v.Name, num(v.Observed), num(v.Tn), num(v.Tx)))
	}
	if len(parts) == 0 {
		for _, v := range a.Variables {
			parts = append(parts, fmt.Sprintf("%s = %s (limit %s)", v.Name, num(v.Observed), num(v.Tx)))
		}
	}
	return strings.Join(parts, "; ")
}

// explainContent names what content inspection found in the call: the
// request, the parameter, the detector or profile rule and the value's
// excerpt (secrets masked by Vigil).
func explainContent(a *detect.Attack) string {
	s := ""
	if r := a.Request; r != nil {
		s = r.Method + " " + r.Path + ": "
	}
	for i, v := range a.Variables {
		if i > 0 {
			s += "; "
		}
		s += fmt.Sprintf("%s %q (%s)", v.Name, v.Excerpt, v.Detector)
	}
	return s
}

func num(x float64) string {
	switch {
	case x >= 1<<20:
		return fmt.Sprintf("%.1f MB", x/1e6)
	case x == float64(int64(x)):
		return strconv.FormatInt(int64(x), 10)
	}
	return strconv.FormatFloat(x, 'f', 2, 64)
}

// Action describes what Vigil did.
func Action(a *detect.Attack) string {
	switch {
	case a.Action == detect.ActionBlocked && a.BlockedUntil != nil:
		return "blocked for " + a.BlockedUntil.Sub(a.DetectedAt).Round(time.Minute).String()
	case a.Action == detect.ActionBlocked:
		return "blocked"
	}
	return a.Action
}

// Identity names the attacker as the record does: an address or user name
// in clear, a credential as its fingerprint.
func Identity(a *detect.Attack) string {
	return a.Identity.Kind + " " + a.Identity.Value
}

// AttackList decodes GET /v1/attacks.
func AttackList(body []byte) ([]*detect.Attack, error) {
	var out struct {
		Attacks []*detect.Attack `json:"attacks"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, err
	}
	return out.Attacks, nil
}
