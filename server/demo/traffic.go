package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-project/vigil/detect"

	"github.com/vigil-project/vigil/server/demo/shop"
)

// DecisionHeader is the header Vigil puts on its refusals.
const DecisionHeader = "x-vigil-decision-id"

// Benign users. Each demo user has habits of its own, a stable address and
// a browser or app; the same profile drives the pre-training traffic and
// the live background load, so that live users look like what the model
// learned.
type profile struct {
	index int
	name  string
	ip    string
	agent string
	habit int     // 0 browser, 1 bidder, 2 order checker
	rate  float64 // sessions per hour
}

// BenignIP returns the stable address of demo user i: 100.64.0.0/10, which
// no scripted attacker uses.
func BenignIP(i int) string { return fmt.Sprintf("100.64.%d.%d", 1+i/250, 1+i%250) }

// IsBenignIP says whether ip is a demo user's address.
func IsBenignIP(ip string) bool { return strings.HasPrefix(ip, "100.64.") }

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
	"ShopApp/4.12.0 (Android 14; Pixel 8)",
	"ShopApp/4.12.0 (iOS 18.1; iPhone15,2)",
}

func profiles(seed uint64) []profile {
	r := rand.New(rand.NewPCG(seed, 0xbe9))
	out := make([]profile, shop.NumUsers)
	for i := range out {
		n := i + 1
		out[i] = profile{index: n, name: shop.UserName(n), ip: BenignIP(n), agent: pick(r, userAgents), habit: r.IntN(3),
			rate: math.Min(10, math.Max(1, math.Exp(math.Log(4)+0.5*r.NormFloat64())))}
	}
	return out
}

// call is one request of a session.
type call struct {
	method, path string
	body         []byte
	contentType  string
	auth         bool
	think        time.Duration // wait before it
}

// session plans one visit of a user: a login (sometimes a mistyped
// password first), then a few to a few dozen calls on the user's own
// orders, searches, bids, small exports and order edits, with human think
// times.
func (p *profile) session(r *rand.Rand, sh *shop.Shop) []call {
	var out []call
	if r.Float64() < 0.05 {
		out = append(out, call{method: "POST", path: shop.BasePath + "/login", body: []byte(shop.LoginForm(p.name, "Password"+strconv.Itoa(p.index))), contentType: "application/x-www-form-urlencoded"})
	}
	out = append(out, call{method: "POST", path: shop.BasePath + "/login", body: []byte(shop.LoginForm(p.name, shop.UserPassword(p.index))), contentType: "application/x-www-form-urlencoded", think: thinkTime(r, 4)})
	orders := sh.OrdersOf(p.name)
	n := 3 + int(r.ExpFloat64()*8)
	n = min(n, 40)
	weights := [...][7]float64{ // own order, search, bid, export, patch, profile edit, typo
		{2, 6, 1, 0.3, 0.3, 0.5, 0.05},
		{2, 2, 4, 0.3, 1, 0.5, 0.05},
		{6, 1, 1, 1, 1, 0.5, 0.05},
	}[p.habit]
	terms := shop.SearchTerms()
	for range n {
		c := call{auth: true, think: thinkTime(r, 8), method: "GET"}
		switch weighted(r, weights[:]) {
		case 0:
			if len(orders) == 0 {
				c.path = shop.BasePath + "/search?q=" + pick(r, terms)
				break
			}
			c.path = shop.BasePath + "/order/" + strconv.Itoa(pick(r, orders))
		case 1:
			q := pick(r, terms)
			if r.IntN(3) == 0 {
				q = pick(r, freeSearches)
			}
			c.path = shop.BasePath + "/search?q=" + url.QueryEscape(q)
		case 2:
			c.method, c.path, c.contentType = "PUT", shop.BasePath+"/order", "application/json"
			bid := map[string]any{"item_id": 1 + r.IntN(sh.ItemCount()), "amount": float64(10+r.IntN(500)) + 0.5, "quantity": 1 + r.IntN(2)}
			if r.IntN(4) == 0 {
				bid["note"] = pick(r, bidNotes)
			}
			c.body, _ = json.Marshal(bid)
		case 3:
			c.path = shop.BasePath + "/export?limit=" + strconv.Itoa(pick(r, []int{10, 20, 25, 50}))
		case 4:
			if len(orders) == 0 {
				c.path = shop.BasePath + "/search?q=" + pick(r, terms)
				break
			}
			c.method, c.path, c.contentType = "PATCH", shop.BasePath+"/order/"+strconv.Itoa(pick(r, orders)), "application/json-patch+json"
			ops := []map[string]any{{"op": "replace", "path": "/amount", "value": float64(20+r.IntN(600)) + 0.99}}
			if r.IntN(3) == 0 {
				ops = append(ops, map[string]any{"op": "replace", "path": "/note", "value": "please ship before the weekend"})
			}
			c.body, _ = json.Marshal(ops)
		case 5:
			c.method, c.path, c.contentType = "PATCH", shop.BasePath+"/profile", "application/json"
			c.body = shop.ProfileEdit(p.index, r.IntN(64))
		default:
			c.path = shop.BasePath + pick(r, []string{"/orders", "/item/3", "/serach?q=lamp", "/order/"})
		}
		out = append(out, c)
	}
	return out
}

// freeSearches are what users type into the search box besides an item's
// name: model numbers, sizes, quotes, brackets, price filters. Content
// inspection learns from them that the search parameter is free text.
var freeSearches = []string{"levi's 501", `"vintage watch"`, "iphone 12 (64gb)", "canon eos 5d, boxed", "rock'n'roll vinyl", "t-shirt size m",
	"laptop <500", "monitor >24 inch", "watch -smart", "1:18 model car", "lamp & shade", "40% off", "sony a7 iii", "dr. martens",
	"o'neill jacket", "bose qc35 (used)", `monitor 27" 4k`, `kids' bike 20"`, `macbook pro 13.3"`, "ps5 + 2 controllers",
	"lego 75192 - millennium falcon", "1/2 inch drill", "guitar strings #10", "camera bag [small]",
	// Each punctuation a few times, so that each replica of a demo with
	// --replicas sees every character class from enough users to trust it.
	"used, like new", "red, size 42", "tv <300", "ssd >1tb", "ram >16gb", "tv >50 inch", "headphones <100", "shoes <80", "16:9 monitor", "1:43 diecast", "salt & pepper mill",
	"b&o speaker", "100% cotton shirt", "50% wool coat", "camera + lens", "c++ book", "3/4 sleeve dress", "usb-c/hdmi adapter",
	"size #2 brush", "#1 bestseller", "headphones [refurbished]", "[new] keyboard", "tent [2 person]",
	"2.5 inch ssd", "no. 5 perfume", "firmware v1.2", `12" vinyl`, `55" tv`, `15.6" laptop sleeve`,
	// Five times at least each: '+' (and the other rare characters), '(',
	// '%', ':', '#', '&', ',', '/', '['.
	"usb-c + hdmi cable", "drill + bits set", "phone case + screen protector", "tent + sleeping bag",
	"jeans (32/34)", "lamp (vintage)", "kettle (1.7l)", "20% discount", "90% battery", "4:3 tablet", "3:2 photo frame",
	"#2 pencils", "size #8 hook", "black & white print", "r&b vinyl", "boots, leather", "desk, oak", "24/7 camera",
	"[sale] shoes"}

// bidNotes are what users write on a bid.
var bidNotes = []string{"please ship before the weekend", "can I pick it up in Berlin", "gift, please wrap it", "is the original box included",
	"combined shipping with my other bid please", "second bid, thanks"}

func weighted(r *rand.Rand, w []float64) int {
	sum := 0.0
	for _, x := range w {
		sum += x
	}
	x := r.Float64() * sum
	for i, v := range w {
		if x < v {
			return i
		}
		x -= v
	}
	return len(w) - 1
}

// thinkTime is a log-normal pause around median seconds, 0.5 s to 90 s.
func thinkTime(r *rand.Rand, median float64) time.Duration {
	s := math.Exp(math.Log(median) + 0.8*r.NormFloat64())
	return time.Duration(math.Min(90, math.Max(0.5, s)) * float64(time.Second))
}

// diurnal is the relative session arrival rate at t: quiet at night,
// busiest in the afternoon.
func diurnal(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	return 0.8 + 0.2*math.Sin((h-9)/24*2*math.Pi)
}

// Pretraining generates benign traffic stamped over a past window.
type Pretraining struct {
	Shop   *shop.Shop
	Seed   uint64
	End    time.Time     // the last record's time (now)
	Window time.Duration // how far back it starts
}

// Records generates the window's traffic in time order: every user's
// sessions (a Poisson process following the diurnal curve), each call
// answered by the shop itself, so statuses and sizes are real. The first
// record is at End − Window.
func (p Pretraining) Records() []detect.Record {
	r := rand.New(rand.NewPCG(p.Seed, 0x9e7))
	start := p.End.Add(-p.Window)
	h := p.Shop.Handler()
	var recs []detect.Record
	for _, u := range profiles(p.Seed) {
		t := start.Add(time.Duration(r.ExpFloat64() / u.rate * float64(time.Hour)))
		if u.index == 1 {
			t = start // the window begins with a call
		}
		for t.Before(p.End) {
			if r.Float64() < diurnal(t) {
				recs = p.session(recs, h, r, &u, t)
			}
			t = t.Add(time.Duration(r.ExpFloat64() / u.rate * float64(time.Hour)))
		}
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Time.Before(recs[j].Time) })
	return recs
}

func (p Pretraining) session(recs []detect.Record, h http.Handler, r *rand.Rand, u *profile, t time.Time) []detect.Record {
	token := ""
	for i, c := range u.session(r, p.Shop) {
		if i > 0 {
			t = t.Add(c.think)
		}
		if !t.Before(p.End) {
			break
		}
		req := httptest.NewRequest(c.method, c.path, bytes.NewReader(c.body))
		req.RemoteAddr = u.ip + ":40000"
		hdr := map[string]string{"user-agent": u.agent}
		req.Header.Set("User-Agent", u.agent)
		if c.contentType != "" {
			req.Header.Set("Content-Type", c.contentType)
			hdr["content-type"] = c.contentType
		}
		if c.auth && token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
			hdr["authorization"] = "Bearer " + token
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if tok := loginToken(c, w.Code, w.Body.Bytes()); tok != "" {
			token = tok
		}
		rec := detect.Record{
			Time: t, Method: c.method, Authority: "127.0.0.1", Path: c.path, Status: w.Code, ClientIP: u.ip,
			RequestHeaders: hdr, RequestBytes: int64(len(c.body)), ResponseBytes: int64(w.Body.Len()),
			DurationMS: 5 + 40*r.ExpFloat64(),
		}
		if strings.Contains(c.contentType, "json") {
			// JSON writes keep their body, so that content inspection learns
			// their keys and values; login forms carry passwords and are
			// not recorded.
			rec.RequestBody = string(c.body)
		}
		recs = append(recs, rec)
	}
	return recs
}

func loginToken(c call, status int, body []byte) string {
	if status != http.StatusOK || !strings.HasSuffix(c.path, "/login") {
		return ""
	}
	var out struct{ Token string }
	if json.Unmarshal(body, &out) != nil {
		return ""
	}
	return out.Token
}

// Client sends requests through the front door as one client address.
type Client struct {
	HTTP  *http.Client
	Base  string // http://front-door
	IP    string // sent as X-Forwarded-For
	Agent string
	Token string // bearer token, once logged in
}

// Response is what a client got.
type Response struct {
	Status  int
	Refused bool   // answered by Vigil with a decision ID
	Reason  string // the reason of Vigil's refusal ("blocklist", "sql_injection" …)
	Body    []byte
}

// Do sends one request. A transport error is returned as is.
func (c *Client) Do(ctx context.Context, method, path, contentType string, body []byte, hdr ...string) (Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, bytes.NewReader(body))
	if err != nil {
		return Response{}, err
	}
	if len(body) == 0 {
		req.Body = http.NoBody
	}
	if c.IP != "" {
		req.Header.Set("X-Forwarded-For", c.IP)
	}
	if c.Agent != "" {
		req.Header.Set("User-Agent", c.Agent)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	io.Copy(io.Discard, resp.Body)
	res := Response{Status: resp.StatusCode, Refused: resp.Header.Get(DecisionHeader) != "", Body: b}
	if res.Refused {
		var why struct{ Reason string }
		if json.Unmarshal(b, &why) == nil {
			res.Reason = why.Reason
		}
	}
	return res, nil
}

// Login logs in and keeps the token.
func (c *Client) Login(ctx context.Context, user, password string) (Response, error) {
	res, err := c.Do(ctx, "POST", shop.BasePath+"/login", "application/x-www-form-urlencoded", []byte(shop.LoginForm(user, password)))
	if err == nil && res.Status == http.StatusOK {
		var out struct{ Token string }
		if json.Unmarshal(res.Body, &out) == nil {
			c.Token = out.Token
		}
	}
	return res, err
}

// BackgroundUsers is how many demo users (user1 …) keep visiting in the
// live part; the script's accounts are the last four.
const BackgroundUsers = 150

// Load is the benign background load: demo users visiting the shop through
// the front door, session after session, with the habits of pre-training.
type Load struct {
	Shop  *shop.Shop
	HTTP  *http.Client
	Base  string
	Users int // users 1 … Users take part
	Seed  uint64

	requests atomic.Int64
	errors   atomic.Int64
	mu       sync.Mutex
	refused  map[string]int // user → calls Vigil refused
}

// LoadStats is what the benign users saw.
type LoadStats struct {
	Users    int
	Requests int64
	Errors   int64          // transport errors and 5xx from the front door
	Refused  map[string]int // users Vigil refused, with their refused calls
}

// Run runs until ctx ends.
func (l *Load) Run(ctx context.Context) {
	l.mu.Lock()
	l.refused = map[string]int{}
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, u := range profiles(l.Seed)[:l.Users] {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(l.Seed, uint64(u.index)))
			if !sleep(ctx, time.Duration(r.Float64()*float64(10*time.Second))) {
				return
			}
			for ctx.Err() == nil {
				l.visit(ctx, r, &u)
				if !sleep(ctx, time.Duration(r.ExpFloat64()*float64(15*time.Second))) {
					return
				}
			}
		})
	}
	wg.Wait()
}

func (l *Load) visit(ctx context.Context, r *rand.Rand, u *profile) {
	c := &Client{HTTP: l.HTTP, Base: l.Base, IP: u.ip, Agent: u.agent}
	for i, k := range u.session(r, l.Shop) {
		if i > 0 && !sleep(ctx, k.think) {
			return
		}
		tok := c.Token
		if !k.auth {
			c.Token = ""
		}
		res, err := c.Do(ctx, k.method, k.path, k.contentType, k.body)
		c.Token = tok
		if ctx.Err() != nil {
			return
		}
		l.requests.Add(1)
		switch {
		case err != nil || res.Status >= 500:
			l.errors.Add(1)
		case res.Refused:
			l.mu.Lock()
			l.refused[u.name]++
			l.mu.Unlock()
		}
		if t := loginToken(k, res.Status, res.Body); t != "" {
			c.Token = t
		}
	}
}

// Stats returns what the benign users saw so far.
func (l *Load) Stats() LoadStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := LoadStats{Users: l.Users, Requests: l.requests.Load(), Errors: l.errors.Load(), Refused: map[string]int{}}
	for u, n := range l.refused {
		s.Refused[u] = n
	}
	return s
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }
