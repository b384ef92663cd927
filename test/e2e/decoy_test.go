package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-project/vigil/server"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/envoysim"
	"github.com/vigil-project/vigil/test/vigiltest"
)

const decoyConfig = `
trusted_hops: 1
decoy_builtin: true
decoy_ttl: 1h
decoy_apis:
  - name: legacy-partners
    hosts: [partners.example.com]
    base_path: /legacy
    response: {status: 200, headers: {content-type: application/json}, body: '{"partners":[],"next":null}'}
apis:
  - name: shop-bidding
    hosts: [shop.example.com]
    base_path: /shopapi-bid
    mode: block
    decoys: [/internal/export, /v0/orders]
    login_paths: [/shopapi-bid/login]
  - name: shop-watch
    hosts: [shop.example.com]
    base_path: /watch
    mode: detect
    decoys: [/internal]
`

var revealing = regexp.MustCompile(`(?i)vigil|decoy|honeypot|honeytoken|trap`)

// realUpstream is the back end: real endpoints answer, the rest is 404.
func realUpstream(r envoysim.HTTPRequest) envoysim.HTTPResponse {
	switch {
	case strings.HasPrefix(r.Path, "/shopapi-bid/order"), strings.HasPrefix(r.Path, "/shopapi-bid/items"), strings.HasPrefix(r.Path, "/watch/internal"):
		return envoysim.HTTPResponse{Status: 200, Body: []byte(`{"ok":true}`)}
	}
	return envoysim.HTTPResponse{Status: 404, Body: []byte("not found")}
}

func (v *vigil) call(req envoysim.HTTPRequest) *envoysim.Result {
	v.t.Helper()
	res, err := envoysim.Do(context.Background(), v.extproc, buffered, req, realUpstream)
	if err != nil {
		v.t.Fatalf("%s %s: %v", req.Method, req.Path, err)
	}
	return res
}

func from(ip, path string, headers ...string) envoysim.HTTPRequest {
	return get(path, append([]string{"x-forwarded-for", ip}, headers...)...)
}

type attackJSON struct {
	ID, Type, API, Action string
	Identity              struct{ Kind, Value string }
	Variables             []struct{ Name string }
	Honeytoken            *struct {
		Kind     string `json:"kind"`
		MintedBy string `json:"minted_by"`
	} `json:"honeytoken"`
	Request *struct{ Method, Path string } `json:"request"`
}

func (v *vigil) attacks(query string) []attackJSON {
	var out struct{ Attacks []attackJSON }
	decodeJSON(v.t, v.MustDo("GET", "/v1/attacks"+query, "", 200), &out)
	return out.Attacks
}

func TestDecoyInContextBlocksEveryIdentityEverywhere(t *testing.T) {
	v := start(t, decoyConfig)
	res := v.call(from("198.51.100.7", "/shopapi-bid/internal/export", "authorization", "Bearer stolen-but-valid"))
	if res.UpstreamCalled || res.Status != 200 || len(res.Body) == 0 {
		t.Fatalf("decoy answer: upstream %v, status %d, %d bytes", res.UpstreamCalled, res.Status, len(res.Body))
	}
	for _, h := range res.Headers {
		if revealing.MatchString(h[0] + h[1]) {
			t.Fatalf("header reveals Vigil: %v", h)
		}
	}
	if revealing.Match(res.Body) {
		t.Fatalf("body reveals Vigil: %s", res.Body)
	}
	// Every identity of the hit is blocked, on every API that blocks (a
	// discovered one here); an API in detect mode only records.
	for _, req := range []envoysim.HTTPRequest{
		from("198.51.100.7", "/shopapi-bid/items/1"),
		from("203.0.113.200", "/catalog/items", "authorization", "Bearer stolen-but-valid"),
	} {
		if r := v.call(req); r.Status != 403 {
			t.Fatalf("%s after the hit: %d", req.Path, r.Status)
		}
	}
	if r := v.call(from("10.0.0.8", "/shopapi-bid/items/1")); r.Status != 200 {
		t.Fatalf("a benign client: %d", r.Status)
	}
	if r := v.call(from("203.0.113.201", "/watch/internal/x", "authorization", "Bearer stolen-but-valid")); r.Status != 200 {
		t.Fatalf("a detect-mode API refused: %d", r.Status)
	}
	as := v.attacks("?type=decoy")
	if len(as) != 1 || as[0].API != "shop-bidding" || as[0].Action != "blocked" || as[0].Request == nil || as[0].Request.Path != "/shopapi-bid/internal/export" {
		t.Fatalf("decoy attacks: %+v", as)
	}
	if !strings.HasPrefix(as[0].Identity.Value, "fp:") {
		t.Fatalf("the attack names the token in clear: %+v", as[0].Identity)
	}
	var d struct {
		Decoys []struct {
			API, Path string
			Hits      int
			LastHit   *time.Time `json:"last_hit"`
		}
	}
	decodeJSON(t, v.MustDo("GET", "/v1/decoys", "", 200), &d)
	found := false
	for _, x := range d.Decoys {
		if x.API == "shop-bidding" && x.Path == "/shopapi-bid/internal/export" {
			found = x.Hits == 1 && x.LastHit != nil
		}
	}
	if !found || len(d.Decoys) < 10 {
		t.Fatalf("GET /v1/decoys: %+v", d.Decoys)
	}
}

func TestDecoyAPIThroughExtAuthz(t *testing.T) {
	v := start(t, decoyConfig)
	req := envoysim.HTTPRequest{Method: "GET", Path: "/legacy/partners?page=2", Authority: "partners.example.com",
		Headers: envoysim.HeaderPairs("x-forwarded-for", "192.0.2.99"), SourceAddr: "10.0.0.1:4000"}
	resp := v.check(req, envoysim.CheckOptions{})
	if envoysim.Allowed(resp) || envoysim.DeniedStatus(resp) != 200 || resp.GetDeniedResponse().GetBody() != `{"partners":[],"next":null}` {
		t.Fatalf("decoy API answer: %v", resp)
	}
	// The same host outside the decoy API is real, but the prober is blocked.
	other := envoysim.HTTPRequest{Method: "GET", Path: "/current/partners", Authority: "partners.example.com",
		Headers: envoysim.HeaderPairs("x-forwarded-for", "192.0.2.99")}
	assertDenied(t, v.check(other, envoysim.CheckOptions{}), 403, "blocklist")
	if as := v.attacks("?type=decoy"); len(as) != 1 || as[0].API != "legacy-partners" {
		t.Fatalf("attacks %+v", as)
	}
}

var liveKey = regexp.MustCompile(`sk_live_[A-Za-z0-9]{24}\b`)

func TestHoneytokenReuseFromAFreshIPIsADecoyHit(t *testing.T) {
	v := start(t, decoyConfig)
	res := v.call(from("198.51.100.20", "/shopapi-bid/.env"))
	key := liveKey.Find(res.Body)
	if res.Status != 200 || key == nil {
		t.Fatalf(".env answer %d without an API key:\n%s", res.Status, res.Body)
	}
	again := v.call(from("198.51.100.21", "/shopapi-bid/.env"))
	if k2 := liveKey.Find(again.Body); k2 != nil && string(k2) == string(key) {
		t.Fatal("two hits got the same honeytoken")
	}
	// Weeks later, from an address never seen, on a real endpoint.
	use := v.call(from("203.0.113.77", "/shopapi-bid/order/1", "x-api-key", string(key)))
	if use.UpstreamCalled || use.Status == 200 {
		t.Fatalf("honeytoken use went through: %d", use.Status)
	}
	if r := v.call(from("203.0.113.77", "/shopapi-bid/items/2")); r.Status != 403 {
		t.Fatalf("the fresh IP is not blocked after using a honeytoken: %d", r.Status)
	}
	var hit *attackJSON
	for _, a := range v.attacks("?type=decoy") {
		if a.Honeytoken != nil {
			hit = &a
		}
	}
	if hit == nil || len(hit.Variables) == 0 || hit.Variables[0].Name != "honeytoken" || hit.Honeytoken.MintedBy == "" {
		t.Fatalf("honeytoken use not recorded as a decoy attack: %+v", v.attacks("?type=decoy"))
	}
}

func TestDecoyInDetectModeOnlyRecords(t *testing.T) {
	v := start(t, decoyConfig)
	res := v.call(from("198.51.100.30", "/watch/internal"))
	if !res.UpstreamCalled {
		t.Fatal("a decoy in a detect-mode API answered instead of the back end")
	}
	if r := v.call(from("198.51.100.30", "/shopapi-bid/items/1")); r.Status != 200 {
		t.Fatalf("blocked by a detect-mode decoy: %d", r.Status)
	}
	if as := v.attacks("?type=decoy"); len(as) != 1 || as[0].Action != "would_block" {
		t.Fatalf("attacks %+v", as)
	}
}

func TestDecoyOnARealEndpointIsRefused(t *testing.T) {
	for _, bad := range []string{
		"apis:\n  - {name: shop, base_path: /shop, login_paths: [/shop/login], decoys: [/login]}\n",
		"apis:\n  - {name: shop, base_path: /shop, decoys: [/orders]}\n  - {name: orders, base_path: /shop/orders}\n",
		"decoy_apis: [{name: old, base_path: /shop}]\napis:\n  - {name: shop, base_path: /shop/v2}\n",
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "c.yaml")
		os.WriteFile(path, []byte("grpc_addr: 127.0.0.1:0\nadmin_addr: 127.0.0.1:0\ndata_dir: "+dir+"\n"+bad), 0o600)
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := server.New(cfg, zerolog.Nop(), server.Options{}); err == nil || !strings.Contains(err.Error(), "decoy") {
			t.Fatalf("config accepted, or refused without saying why (%v):\n%s", err, bad)
		}
	}
}

// TestScannerWordlistFindsADecoyAndIsBlocked replays dirb's common.txt as a
// scanner would, interleaved with a benign client: the scanner is blocked
// from the first decoy it finds on, the benign client never is.
func TestScannerWordlistFindsADecoyAndIsBlocked(t *testing.T) {
	const wordlist = "/usr/share/dirb/wordlists/common.txt"
	f, err := os.Open(wordlist)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s: %v (.ci/run installs Debian's dirb)", wordlist, err)
		}
		t.Skipf("%s not installed (apt-get install dirb)", wordlist)
	}
	defer f.Close()
	v := start(t, decoyConfig)
	sc := bufio.NewScanner(f)
	firstBlocked, words := -1, 0
	for sc.Scan() {
		w := strings.TrimSpace(sc.Text())
		if w == "" || strings.HasPrefix(w, "#") {
			continue
		}
		res := v.call(from("45.133.1.9", "/shopapi-bid/"+w, "user-agent", "DirBuster-1.0"))
		if res.Status == 403 && firstBlocked < 0 {
			firstBlocked = words
		}
		if firstBlocked >= 0 && res.Status != 403 {
			t.Fatalf("word %d %q after the block: %d", words, w, res.Status)
		}
		if words%50 == 0 {
			if r := v.call(from("10.1.1.1", fmt.Sprintf("/shopapi-bid/items/%d", words))); r.Status != 200 {
				t.Fatalf("benign client refused after %d words: %d", words, r.Status)
			}
		}
		words++
	}
	if firstBlocked < 0 {
		t.Fatalf("the scanner went through %d words without finding a decoy", words)
	}
	as := v.attacks("?type=decoy")
	if len(as) == 0 || as[0].Identity.Value != "45.133.1.9" {
		t.Fatalf("decoy attacks: %+v", as)
	}
	t.Logf("%d words; the scanner hit a decoy and was blocked from word %d on", words, firstBlocked)
	// The inventory holds what the back end answered, not the scanner's
	// guesses: its misses are counted, its blocked calls add nothing.
	vigiltest.Eventually(t, 5*time.Second, func() error {
		var inv struct {
			APIs []struct {
				Name      string
				Misses    int
				Endpoints []struct{ Method, Path string }
			}
		}
		decodeJSON(t, v.MustDo("GET", "/v1/apis", "", 200), &inv)
		for _, a := range inv.APIs {
			if a.Name != "shop-bidding" {
				continue
			}
			for _, e := range a.Endpoints {
				if !strings.HasPrefix(e.Path, "/shopapi-bid/order") && !strings.HasPrefix(e.Path, "/shopapi-bid/items") {
					return fmt.Errorf("a scanner's path is an endpoint: %s %s", e.Method, e.Path)
				}
			}
			if a.Misses < firstBlocked/2 {
				return fmt.Errorf("%d misses counted, the scanner missed on most of %d words", a.Misses, firstBlocked)
			}
			return nil
		}
		return fmt.Errorf("no shop-bidding API in the inventory")
	})
}

// The other two combinations: an in-context decoy through ext_authz (a deny
// carrying the decoy's answer) and a decoy API through ext_proc.
func TestDecoyFlowsThroughBothServices(t *testing.T) {
	v := start(t, decoyConfig)
	in := envoysim.HTTPRequest{Method: "GET", Path: "/shopapi-bid/v0/orders", Authority: "shop.example.com",
		Headers: envoysim.HeaderPairs("x-forwarded-for", "192.0.2.50")}
	resp := v.check(in, envoysim.CheckOptions{})
	if envoysim.Allowed(resp) || resp.GetDeniedResponse().GetBody() == "" || revealing.MatchString(resp.GetDeniedResponse().GetBody()) {
		t.Fatalf("in-context decoy through ext_authz: %v", resp)
	}
	assertDenied(t, v.check(envoysim.HTTPRequest{Method: "GET", Path: "/shopapi-bid/items/1", Authority: "shop.example.com",
		Headers: envoysim.HeaderPairs("x-forwarded-for", "192.0.2.50")}, envoysim.CheckOptions{}), 403, "blocklist")

	res := v.call(envoysim.HTTPRequest{Method: "GET", Path: "/legacy/partners", Authority: "partners.example.com",
		Headers: envoysim.HeaderPairs("x-forwarded-for", "192.0.2.51")})
	if res.UpstreamCalled || res.Status != 200 || string(res.Body) != `{"partners":[],"next":null}` || res.Header("content-type") != "application/json" {
		t.Fatalf("decoy API through ext_proc: %d %s", res.Status, res.Body)
	}
	if r := v.call(from("192.0.2.51", "/shopapi-bid/items/1")); r.Status != 403 {
		t.Fatalf("the prober of the decoy API is not blocked: %d", r.Status)
	}
}

// TestAttacksReachWebhooks: a decoy hit reaches a configured webhook as
// {"event":"attack","attack":…}.
func TestAttacksReachWebhooks(t *testing.T) {
	got := make(chan []byte, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
	}))
	defer hook.Close()
	v := start(t, decoyConfig+"notify:\n  webhooks:\n    - {url: "+hook.URL+"/vigil, headers: {X-Receiver-Token: s3cret}}\n")
	v.call(from("198.51.100.90", "/shopapi-bid/.env"))
	select {
	case b := <-got:
		var ev struct {
			Event  string
			Attack struct{ Type, API string }
		}
		if err := json.Unmarshal(b, &ev); err != nil || ev.Event != "attack" || ev.Attack.Type != "decoy" || ev.Attack.API != "shop-bidding" {
			t.Fatalf("webhook got %s (%v)", b, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook got nothing within 10s")
	}
	if strings.Contains(v.Logs.String(), "s3cret") {
		t.Fatal("the webhook's header value is in the log")
	}
}
