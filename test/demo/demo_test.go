// Package demo runs the built `vigil demo` end to end, as a user does: the
// scripted timeline must be detected attack by attack with no benign user
// blocked, and --no-traffic must give a trained stack that answers through
// its front door and stops cleanly on SIGTERM.
package demo

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-project/vigil/test/redistest"
	"github.com/vigil-project/vigil/test/vigilbin"
	"github.com/vigil-project/vigil/test/vigiltest"
)

func TestMain(m *testing.M) { vigilbin.Main(m) }

var readyRE = regexp.MustCompile(`ready front=(\S+) admin=(\S+) grpc=(\S+)`)

// startDemo runs `vigil demo` on ephemeral ports with TMPDIR set to tmp
// and waits for its ready line.
func startDemo(t *testing.T, tmp string, args ...string) *vigiltest.Process {
	t.Helper()
	args = append([]string{"demo", "--front-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"}, args...)
	return vigiltest.Binary{Args: args, Env: []string{"TMPDIR=" + tmp}, Ready: readyRE}.Start(t)
}

// TestDemoDetectsEveryScriptedAttack plays the whole timeline: each
// scripted attack is detected as the type it is built for and blocked, no
// benign user is blocked, and the demo exits 0.
func TestDemoDetectsEveryScriptedAttack(t *testing.T) {
	t.Parallel()
	started := time.Now()
	p := startDemo(t, t.TempDir(), "--duration", "35s")
	admin := p.Ready[2]
	if resp, err := http.Get("http://" + admin + "/"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("dashboard at http://%s/: %v %v", admin, resp, err)
	}
	if err := p.Wait(100 * time.Second); err != nil {
		t.Fatalf("vigil demo: %v\n%s", err, p.Output())
	}
	checkSummary(t, p.Output(), started)
}

// TestDemoOnThreeReplicasSharingRedis: with --replicas 3 --redis the front
// door spreads every client's calls over three Vigil servers, so each sees
// a third of each attack; every scripted attack is still detected as its
// type and blocked on all three.
func TestDemoOnThreeReplicasSharingRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	started := time.Now()
	p := startDemo(t, t.TempDir(), "--duration", "35s", "--replicas", "3", "--redis", srv.Addr())
	if err := p.Wait(150 * time.Second); err != nil {
		t.Fatalf("vigil demo --replicas 3: %v\n%s", err, p.Output())
	}
	out := checkSummary(t, p.Output(), started)
	if !strings.Contains(out, "3 replicas sharing Redis") || !regexp.MustCompile(`blocked on every replica: \d+ identities on all 3 block lists`).MatchString(out) {
		t.Errorf("the demo did not run or check three replicas:\n%s", out)
	}
}

// checkSummary checks the demo's summary: each scripted attack detected as
// the type it is built for and blocked, no benign user blocked or flagged,
// no bearer token printed.
func checkSummary(t *testing.T, out string, started time.Time) string {
	t.Helper()
	t.Logf("vigil demo ran %s:\n%s", time.Since(started).Round(100*time.Millisecond), out)
	for attack, typ := range map[string]string{
		"probing":             "probing",
		"id_walking":          "bola_enumeration",
		"credential_stuffing": "credential_stuffing",
		"stolen_token":        "stolen_token",
		"exfiltration":        "data_exfiltration",
		"json_patch_flood":    "oversized_payload",
		"decoy":               "decoy",
		"injection_scanner":   "sql_injection",
		"mass_assignment":     "mass_assignment",
	} {
		line := summaryLine(out, attack)
		if f := strings.Fields(line); len(f) < 3 || f[1] != "yes" || !strings.Contains(line, typ+" (") || !strings.Contains(line, "refused") {
			t.Errorf("%s: summary line %q, want detected as %s and blocked", attack, line, typ)
		}
	}
	// Content inspection refuses every payload on the request itself: all
	// the scanner's calls, all the mass-assignment attacker's but its
	// first, benign GET /profile.
	for attack, benign := range map[string]int{"injection_scanner": 0, "mass_assignment": 1} {
		m := regexp.MustCompile(`yes, (\d+) of (\d+) calls refused`).FindStringSubmatch(summaryLine(out, attack))
		if m == nil {
			continue // reported above
		}
		refused, calls := atoi(m[1]), atoi(m[2])
		if refused < 3 || refused != calls-benign {
			t.Errorf("%s: %d of %d calls refused, want every payload (all but %d)", attack, refused, calls, benign)
		}
	}
	if !strings.Contains(out, "benign users blocked: 0 of 150") || !strings.Contains(out, "benign identities flagged: 0") {
		t.Errorf("benign users were blocked or flagged:\n%s", out)
	}
	if strings.Contains(out, "eyJ") {
		t.Error("the demo printed a bearer token in clear")
	}
	return out
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func summaryLine(out, attack string) string {
	sum := out[strings.LastIndex(out, "Summary:")+1:]
	for _, l := range strings.Split(sum, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == attack {
			return l
		}
	}
	return ""
}

// TestDemoNoTraffic: the trained stack alone answers a login through the
// front door with a token, and SIGTERM stops it cleanly, its temporary
// data directory removed.
func TestDemoNoTraffic(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	p := startDemo(t, tmp, "--no-traffic")
	front, admin := p.Ready[1], p.Ready[2]

	resp, err := http.Post("http://"+front+"/shopapi-bid/login", "application/x-www-form-urlencoded",
		strings.NewReader(url.Values{"username": {"user1"}, "password": {"password1"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	var login struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Count(login.Token, ".") != 2 {
		t.Fatalf("login through the front door: %d, token %q", resp.StatusCode, login.Token)
	}
	req, _ := http.NewRequest("GET", "http://"+front+"/shopapi-bid/export?limit=10", nil)
	req.Header.Set("Authorization", "Bearer "+login.Token)
	req.Header.Set("X-Forwarded-For", "203.0.113.50")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("export with the token: %v %v", resp, err)
	}
	mresp, err := http.Get("http://" + admin + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var models struct{ Models []struct{ API, State string } }
	json.NewDecoder(mresp.Body).Decode(&models)
	mresp.Body.Close()
	if len(models.Models) == 0 || models.Models[0].API != "shop-bidding" || models.Models[0].State != "ready" {
		t.Fatalf("models after ready: %+v", models.Models)
	}

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(20 * time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.Output())
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the demo left %v in its temporary directory", left)
	}
}
