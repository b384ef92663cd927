// Package attacktools runs real attack tools from Debian packages against
// `vigil demo --no-traffic`, as an attacker would, through the demo's front
// door and from an address of their own (X-Forwarded-For, which the front
// door trusts for one hop): ffuf with dirb's common.txt (probing), hydra's
// http-post-form against the login (credential stuffing), hey (a request
// flood) and sqlmap (SQL injection into the search parameter, refused by
// content inspection on its first payload). Each must be detected as its type and blocked, the attacker's
// later requests refused with Vigil's 403, while a logged-in demo user keeps
// getting answers before, during and after the attack.
//
// .ci/run installs ffuf, hydra, hey, sqlmap and dirb; elsewhere a test whose tool is
// missing skips, unless CI is set.
package attacktools

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/test/vigilbin"
	"github.com/vigil-project/vigil/test/vigiltest"
)

func TestMain(m *testing.M) { vigilbin.Main(m) }

// demo is a running `vigil demo --no-traffic`.
type demo struct {
	*vigiltest.Process
	front, admin string
}

var readyRE = regexp.MustCompile(`ready front=(\S+) admin=(\S+) grpc=(\S+)`)

// startDemo runs the trained stack alone on free loopback ports and waits
// for its ready line; the test's cleanup stops it with SIGTERM.
func startDemo(t *testing.T) *demo {
	t.Helper()
	p := vigiltest.Binary{Args: []string{"demo", "--no-traffic",
		"--front-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"},
		Env: []string{"TMPDIR=" + t.TempDir()}, Ready: readyRE}.Start(t)
	return &demo{Process: p, front: p.Ready[1], admin: p.Ready[2]}
}

// The admin API's view.

type attack struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Identity struct {
		Kind  string `json:"kind"`
		Value string `json:"value"`
	} `json:"identity"`
	FirstSeen  time.Time `json:"first_seen"`
	DetectedAt time.Time `json:"detected_at"`
	Variables  []struct {
		Name     string  `json:"name"`
		Observed float64 `json:"observed"`
		Tn       float64 `json:"tn"`
		Tx       float64 `json:"tx"`
	} `json:"variables"`
	ClientIPs []string `json:"client_ips"`
	Action    string   `json:"action"`
}

func (a attack) why() string {
	var b strings.Builder
	for i, v := range a.Variables {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s = %g (normal ≤ %g, limit %g)", v.Name, v.Observed, v.Tn, v.Tx)
	}
	return b.String()
}

type listEntry struct {
	Kind      string     `json:"kind"`
	Value     string     `json:"value"`
	Reason    string     `json:"reason"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
}

func (d *demo) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get("http://" + d.admin + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

func (d *demo) attacks(t *testing.T) []attack {
	t.Helper()
	var out struct{ Attacks []attack }
	d.getJSON(t, "/v1/attacks?limit=1000", &out)
	return out.Attacks
}

// attacksOn returns the attacks whose identity is the address ip, the
// earliest first.
func (d *demo) attacksOn(t *testing.T, ip string) []attack {
	t.Helper()
	var out []attack
	for _, a := range d.attacks(t) {
		if a.Identity.Kind == "ip" && a.Identity.Value == ip {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b attack) int { return a.DetectedAt.Compare(b.DetectedAt) })
	return out
}

func (d *demo) blocklist(t *testing.T) []listEntry {
	t.Helper()
	var out struct{ Entries []listEntry }
	d.getJSON(t, "/v1/blocklist", &out)
	return out.Entries
}

// requestsFrom is how many calls of ip Vigil recorded (its forensics).
func (d *demo) requestsFrom(t *testing.T, ip string) int {
	t.Helper()
	var f struct {
		Summary struct {
			TotalRequests int `json:"total_requests"`
		} `json:"summary"`
	}
	d.getJSON(t, "/v1/forensics/ip/"+ip, &f)
	return f.Summary.TotalRequests
}

// poll calls cond every 50 ms until it is true or within has passed.
func poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

// detected waits for an attack of type typ on the address ip and checks
// that it is the first attack raised on that address and that it blocked
// it. It returns the attacks on ip so far.
func (d *demo) detected(t *testing.T, ip, typ string) []attack {
	t.Helper()
	var on []attack
	if !poll(30*time.Second, func() bool {
		on = d.attacksOn(t, ip)
		return slices.ContainsFunc(on, func(a attack) bool { return a.Type == typ })
	}) {
		t.Fatalf("no %s attack on %s within 30s; attacks on it: %+v\n%s", typ, ip, on, d.Output())
	}
	first := on[0]
	if first.Type != typ || first.Action != "blocked" {
		t.Fatalf("the first attack on %s is %s (%s), want %s, blocked; all: %+v", ip, first.Type, first.Action, typ, on)
	}
	return on
}

// refused sends req from the address ip and checks Vigil's refusal: 403, a
// JSON body naming the decision and one of the attacks on ip, and the
// decision in x-vigil-decision-id.
func (d *demo) refused(t *testing.T, req *http.Request, ip string, on []attack) {
	t.Helper()
	req.Header.Set("X-Forwarded-For", ip)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var deny struct {
		Error      string `json:"error"`
		DecisionID string `json:"decision_id"`
		Reason     string `json:"reason"`
		AttackID   string `json:"attack_id"`
		Status     int    `json:"status"`
	}
	if resp.StatusCode != 403 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal(body, &deny) != nil {
		t.Fatalf("%s %s from %s after the block: %d %s %s, want Vigil's 403", req.Method, req.URL.Path, ip, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if deny.Error != "forbidden" || deny.Status != 403 || deny.DecisionID == "" || resp.Header.Get("X-Vigil-Decision-Id") != deny.DecisionID ||
		!slices.ContainsFunc(on, func(a attack) bool { return a.ID == deny.AttackID }) {
		t.Fatalf("refusal of %s: body %s, x-vigil-decision-id %q; want the decision in both and one of the attacks on it", ip, body, resp.Header.Get("X-Vigil-Decision-Id"))
	}
	blocked := false
	for _, e := range d.blocklist(t) {
		if e.Kind == "ip" && e.Value == ip && (e.ExpiresAt == nil || e.ExpiresAt.After(time.Now())) {
			blocked = true
		}
	}
	if !blocked {
		t.Fatalf("%s is not on the block list: %+v", ip, d.blocklist(t))
	}
}

// The benign client: demo user 7, logged in, from its usual address and
// browser, calling the shop every 400 ms as the demo's users do (its own
// bid, searches), so that its windows stay within what the model learned.

const (
	benignUser     = "user7"
	benignPassword = "password7"
	benignIP       = "100.64.1.8" // demo.BenignIP(7)
	benignAgent    = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	benignEvery    = 400 * time.Millisecond
)

type benignCall struct {
	start, end   time.Time
	method, path string
	status       int
	err          error
}

func (c benignCall) ok() bool { return c.err == nil && c.status >= 200 && c.status < 300 }

type benign struct {
	front   string
	client  *http.Client
	token   string
	mu      sync.Mutex
	calls   []benignCall
	changed chan struct{} // closed and replaced on each call
	stop    context.CancelFunc
	done    chan struct{}
}

// startBenign logs user 7 in through the front door, places a bid, and
// keeps calling until the test ends (or stopped).
func startBenign(t *testing.T, front string) *benign {
	t.Helper()
	b := &benign{front: front, client: &http.Client{Timeout: 10 * time.Second}, changed: make(chan struct{}), done: make(chan struct{})}
	st, body := b.do("POST", "/shopapi-bid/login", "application/x-www-form-urlencoded",
		url.Values{"username": {benignUser}, "password": {benignPassword}}.Encode())
	var login struct{ Token string }
	if st != 200 || json.Unmarshal(body, &login) != nil || login.Token == "" {
		t.Fatalf("benign login: %d %s", st, body)
	}
	b.token = login.Token
	st, body = b.do("PUT", "/shopapi-bid/order", "application/json", `{"item_id":12,"amount":42.5,"quantity":1}`)
	var order struct{ ID int }
	if st != 201 || json.Unmarshal(body, &order) != nil || order.ID == 0 {
		t.Fatalf("benign bid: %d %s", st, body)
	}
	paths := []string{
		"/shopapi-bid/order/" + strconv.Itoa(order.ID),
		"/shopapi-bid/search?q=lamp",
		"/shopapi-bid/search?q=camera",
		"/shopapi-bid/order/" + strconv.Itoa(order.ID),
		"/shopapi-bid/search?q=watch",
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.stop = cancel
	go func() {
		defer close(b.done)
		tick := time.NewTicker(benignEvery)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			b.do("GET", paths[i%len(paths)], "", "")
		}
	}()
	t.Cleanup(b.end)
	return b
}

func (b *benign) end() {
	b.stop()
	<-b.done
}

// do makes one call as user 7 and records it.
func (b *benign) do(method, path, ctype, body string) (int, []byte) {
	c := benignCall{start: time.Now(), method: method, path: path}
	req, err := http.NewRequest(method, "http://"+b.front+path, strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("X-Forwarded-For", benignIP)
	req.Header.Set("User-Agent", benignAgent)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	var respBody []byte
	resp, err := b.client.Do(req)
	if err == nil {
		respBody, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		c.status = resp.StatusCode
	}
	c.err, c.end = err, time.Now()
	b.mu.Lock()
	b.calls = append(b.calls, c)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
	return c.status, respBody
}

// waitAnswered waits for n answered calls that started at or after since.
func (b *benign) waitAnswered(t *testing.T, n int, since time.Time) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		b.mu.Lock()
		got := 0
		for _, c := range b.calls {
			if c.ok() && !c.start.Before(since) {
				got++
			}
		}
		ch := b.changed
		b.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("the benign client got %d answers since %s within 20s, want %d", got, since.Format(time.StampMilli), n)
		}
	}
}

// check stops the client and asserts it was answered (2xx) every time,
// before the attack began, while it ran, and after the block; user 7 and
// its address were never flagged nor blocked.
func (b *benign) check(t *testing.T, d *demo, attackStart, attackEnd, blockSeen time.Time) {
	t.Helper()
	b.end()
	var before, during, after int
	b.mu.Lock()
	calls := slices.Clone(b.calls)
	b.mu.Unlock()
	for _, c := range calls {
		if !c.ok() {
			t.Errorf("benign %s %s at %s: %d %v", c.method, c.path, c.start.Format(time.StampMilli), c.status, c.err)
		}
		switch {
		case c.end.Before(attackStart):
			before++
		case !c.start.Before(attackStart) && !c.end.After(attackEnd):
			during++
		case !c.start.Before(blockSeen):
			after++
		}
	}
	t.Logf("benign %s from %s: %d calls, all answered 2xx: %d before the attack, %d during, %d after the block", benignUser, benignIP, len(calls), before, during, after)
	if before == 0 || during == 0 || after == 0 {
		t.Errorf("benign calls before/during/after the attack: %d/%d/%d, want some in each", before, during, after)
	}
	for _, a := range d.attacks(t) {
		if a.Identity.Value == benignUser || a.Identity.Value == benignIP || slices.Contains(a.ClientIPs, benignIP) {
			t.Errorf("the benign user was flagged: %s on %s %s (%s)", a.Type, a.Identity.Kind, a.Identity.Value, a.why())
		}
	}
	for _, e := range d.blocklist(t) {
		if e.Value == benignUser || e.Value == benignIP {
			t.Errorf("the benign user is on the block list: %+v", e)
		}
	}
}
