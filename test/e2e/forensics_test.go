package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/server/cli"
	"github.com/vigil-project/vigil/test/vigiltest"
)

type forensicsJSON struct {
	Kind, Value, Status string
	FirstSeen           *time.Time `json:"first_seen"`
	LastSeen            *time.Time `json:"last_seen"`
	Summary             struct {
		TotalRequests int `json:"total_requests"`
		TotalAttacks  int `json:"total_attacks"`
	}
	Details struct {
		Metrics struct {
			IPList []struct {
				IP            string
				TotalRequests int            `json:"total_requests"`
				Methods       map[string]int `json:"methods"`
				URLs          map[string]int `json:"urls"`
				APIs          map[string]int `json:"apis"`
			} `json:"ip_list"`
			Methods map[string]int `json:"methods"`
			URLs    map[string]int `json:"urls"`
			APIs    map[string]int `json:"apis"`
		}
	}
	Attacks []struct{ ID, Type string }
}

// TestForensicsShowWhatATokenDidAndSurviveARestart follows one token used
// from two IPs: per IP, method, endpoint and API, in the shape of the talk's
// example, looked up by the raw token or its fingerprint, after a restart too.
func TestForensicsShowWhatATokenDidAndSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	cfg := "trusted_hops: 1\napis:\n  - {name: shop-bidding, hosts: [shop.example.com], base_path: /shopapi-bid}\n"
	v := startIn(t, dir, cfg)
	for i := range 27 {
		req := get("/shopapi-bid/order", "x-forwarded-for", "100.100.1.10", "authorization", "Bearer tok-forensic")
		req.Method = "PUT"
		v.send(buffered, req)
		if i < 5 {
			v.send(buffered, get(fmt.Sprintf("/shopapi-bid/order/%d", 100+i), "x-forwarded-for", "100.100.1.11", "authorization", "Bearer tok-forensic"))
		}
	}
	var f forensicsJSON
	vigiltest.Eventually(t, 5*time.Second, func() error {
		code, out := v.Do("GET", "/v1/forensics/token/tok-forensic", "")
		if code != 200 {
			return fmt.Errorf("%d %s", code, out)
		}
		decodeJSON(t, out, &f)
		if f.Summary.TotalRequests != 32 {
			return fmt.Errorf("total %d", f.Summary.TotalRequests)
		}
		return nil
	})
	if f.Kind != "token" || f.Value[:3] != "fp:" || f.Status != "active" || f.FirstSeen == nil || len(f.Details.Metrics.IPList) != 2 {
		t.Fatalf("forensics %+v", f)
	}
	top := f.Details.Metrics.IPList[0]
	if top.IP != "100.100.1.10" || top.TotalRequests != 27 || top.Methods["PUT"] != 27 || top.URLs["/shopapi-bid/order"] != 27 || top.APIs["shop-bidding"] != 27 {
		t.Fatalf("ip_list[0] = %+v", top)
	}
	if f.Details.Metrics.URLs["/shopapi-bid/order/{id}"] != 5 || f.Details.Metrics.Methods["GET"] != 5 {
		t.Fatalf("totals %+v", f.Details.Metrics)
	}
	v.MustDo("POST", "/v1/blocklist", `{"kind":"token","value":"tok-forensic"}`, 201)
	v.Stop()

	w := startIn(t, dir, cfg)
	var g forensicsJSON
	decodeJSON(t, w.MustDo("GET", "/v1/forensics/token/"+f.Value, "", 200), &g)
	if g.Summary.TotalRequests != 32 || g.Status != "blocked" || len(g.Details.Metrics.IPList) != 2 {
		t.Fatalf("after restart, by fingerprint: %+v", g)
	}
	w.MustDo("GET", "/v1/forensics/ip/203.0.113.250", "", 404)
	w.MustDo("GET", "/v1/forensics/email/x", "", 400)
}

func TestForensicsCLI(t *testing.T) {
	v := start(t, "trusted_hops: 1\n")
	for range 3 {
		v.send(buffered, get("/shopapi-bid/order/7", "x-forwarded-for", "100.100.1.10", "authorization", "Bearer tok-cli"))
	}
	var out, errs bytes.Buffer
	vigiltest.Eventually(t, 5*time.Second, func() error {
		out.Reset()
		if err := cli.Main(context.Background(), []string{"forensics", "token", "tok-cli", "--admin-addr", v.AdminAddr()}, &out, &errs); err != nil {
			return err
		}
		if !strings.Contains(out.String(), "3 requests") {
			return fmt.Errorf("the pipeline has not recorded all three calls yet:\n%s", out.String())
		}
		return nil
	})
	for _, want := range []string{"3 requests", "100.100.1.10", "/shopapi-bid/order/{id}"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("vigil forensics output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String()+errs.String(), "tok-cli") {
		t.Fatal("the raw token is printed")
	}
	err := cli.Main(context.Background(), []string{"forensics", "token", "never-seen", "--admin-addr", v.AdminAddr()}, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "no activity") || strings.Contains(err.Error(), "never-seen") {
		t.Fatalf("unknown identity: %v", err)
	}
}

func TestAPIActivityOverTime(t *testing.T) {
	v := start(t, "trusted_hops: 1\napis:\n  - {name: shop-bidding, hosts: [shop.example.com], base_path: /shopapi-bid}\n")
	// Before its first call, a configured API has a time line of zeros.
	var empty struct{ Points []struct{ Requests int } }
	decodeJSON(t, v.MustDo("GET", "/v1/apis/shop-bidding/activity?since=10m", "", 200), &empty)
	if len(empty.Points) == 0 || empty.Points[0].Requests != 0 {
		t.Fatalf("activity before the first call: %+v", empty)
	}
	v.MustDo("POST", "/v1/blocklist", `{"kind":"ip","value":"203.0.113.5"}`, 201)
	for i := range 12 {
		v.send(buffered, get(fmt.Sprintf("/shopapi-bid/order/%d", i), "x-forwarded-for", "100.100.1.10"))
	}
	v.send(buffered, get("/shopapi-bid/order/1", "x-forwarded-for", "203.0.113.5"))
	var act struct {
		API    string
		Step   string
		Points []struct {
			Time              time.Time
			Requests, Blocked int
			Errors4xx         int `json:"errors_4xx"`
		}
		TopIdentities []struct {
			Kind, Value string
			Requests    int
		} `json:"top_identities"`
	}
	vigiltest.Eventually(t, 5*time.Second, func() error {
		decodeJSON(t, v.MustDo("GET", "/v1/apis/shop-bidding/activity?since=10m&step=5m", "", 200), &act)
		total, blocked := 0, 0
		for _, p := range act.Points {
			total += p.Requests
			blocked += p.Blocked
		}
		if total != 13 || blocked != 1 {
			return fmt.Errorf("requests %d, blocked %d in %+v", total, blocked, act.Points)
		}
		return nil
	})
	if act.Step != "5m0s" || len(act.TopIdentities) == 0 || act.TopIdentities[0].Value != "100.100.1.10" || act.TopIdentities[0].Requests != 12 {
		t.Fatalf("activity %+v", act)
	}
	v.MustDo("GET", "/v1/apis/nosuch/activity", "", 404)
	v.MustDo("GET", "/v1/apis/shop-bidding/activity?step=1s", "", 400)
}

func TestReadOnlyTokenReadsButCannotChange(t *testing.T) {
	v := start(t, "admin_token: admin-token-0123456789\nadmin_read_token: reader-token-0123456789\n")
	call := func(method, path, token, body string) int {
		code, _ := vigiltest.Call(t, v.Client(token), method, path, body)
		return code
	}
	entry := `{"kind":"ip","value":"192.0.2.1"}`
	for _, c := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"GET", "/v1/blocklist", "reader-token-0123456789", "", 200},
		{"GET", "/v1/attacks", "reader-token-0123456789", "", 200},
		{"POST", "/v1/blocklist", "reader-token-0123456789", entry, 403},
		{"POST", "/v1/blocklist", "admin-token-0123456789", entry, 201},
		{"DELETE", "/v1/blocklist/ip/192.0.2.1", "reader-token-0123456789", "", 403},
		{"GET", "/v1/blocklist", "", "", 401},
		{"GET", "/v1/blocklist", "wrong-token-0123456789", "", 401},
	} {
		if got := call(c.method, c.path, c.token, c.body); got != c.want {
			t.Errorf("%s %s with %q: %d, want %d", c.method, c.path, c.token, got, c.want)
		}
	}
}
