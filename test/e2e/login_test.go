package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/server/cli"
	"github.com/vigil-project/vigil/test/envoysim"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// loginPW is the password of every login in these tests: it must never be
// found in a log line, an answer of the admin API, an attack record or
// the data directory.
const loginPW = "Pw-0f-the-v1ctim!"

const loginConfig = `
trusted_hops: 1
training: {duration: 0s, min_requests: 100, min_identities: 10, relearn_interval: 1h}
apis:
  - {name: shop, hosts: [shop.example.com], base_path: /shop, mode: block, login_paths: [/shop/login]}
  - {name: watch, hosts: [shop.example.com], base_path: /watch, mode: detect, login_paths: [/watch/login]}
  - name: legacy
    hosts: [shop.example.com]
    base_path: /legacy
    mode: block
    login_paths: [/legacy/login]
    login_username_fields: [j_username]
`

// loginUpstream is the back end: every login fails (401), the rest is 200.
func loginUpstream(r envoysim.HTTPRequest) envoysim.HTTPResponse {
	if strings.HasSuffix(r.Path, "/login") {
		return envoysim.HTTPResponse{Status: 401, Body: []byte(`{"error":"bad credentials"}`)}
	}
	return envoysim.HTTPResponse{Status: 200, Body: []byte(`{"ok":true}`)}
}

// loginPost is a POST of body with its content type from ip.
func loginPost(path, ip, contentType, body string) envoysim.HTTPRequest {
	return envoysim.HTTPRequest{Method: "POST", Path: path, Authority: "shop.example.com", Body: []byte(body),
		Headers: envoysim.HeaderPairs("x-forwarded-for", ip, "content-type", contentType)}
}

func (v *vigil) login(req envoysim.HTTPRequest) *envoysim.Result {
	v.t.Helper()
	res, err := envoysim.Do(context.Background(), v.extproc, buffered, req, loginUpstream)
	if err != nil {
		v.t.Fatalf("%s %s: %v", req.Method, req.Path, err)
	}
	return res
}

// withBody is ext_authz's with_request_body as the examples set it.
var withBody = envoysim.CheckOptions{MaxRequestBytes: 65536, AllowPartialMessage: true, PackAsBytes: true}

// requestsOf is how many calls the forensics of a user name count, 0
// when it has none.
func (v *vigil) requestsOf(user string) int {
	code, out := v.Do("GET", "/v1/forensics/username/"+user, "")
	if code == 404 {
		return 0
	}
	var f forensicsJSON
	decodeJSON(v.t, out, &f)
	return f.Summary.TotalRequests
}

// TestLoginBodyNamesTheUserOverRealGRPC: the user name in a login's body,
// form or JSON, over ext_proc (BUFFERED) or ext_authz with the body, is
// the call's username identity (forensics count it under that name, an
// e-mail lower-cased); configured fields replace the defaults; a body to
// another path is not read; a block-listed name is refused at its body in
// block mode (403, reason blocklist, as in a header) and only recorded in
// detect mode; the password is never logged, answered or stored.
func TestLoginBodyNamesTheUserOverRealGRPC(t *testing.T) {
	dir := t.TempDir()
	v := startIn(t, dir, loginConfig)
	v.login(loginPost("/shop/login", "100.64.0.1", "application/x-www-form-urlencoded", "username=alice&password="+loginPW))
	v.check(loginPost("/shop/login", "100.64.0.2", "application/json", `{"email":"Bob@X.com","password":"`+loginPW+`"}`), withBody)
	v.login(loginPost("/legacy/login", "100.64.0.3", "application/x-www-form-urlencoded", "username=nobody&j_username=carol&j_password="+loginPW))
	v.login(loginPost("/shop/orders", "100.64.0.4", "application/x-www-form-urlencoded", "username=dave&password="+loginPW))
	vigiltest.Eventually(t, 5*time.Second, func() error {
		if a, b, c := v.requestsOf("alice"), v.requestsOf("bob@x.com"), v.requestsOf("carol"); a != 1 || b != 1 || c != 1 {
			return fmt.Errorf("calls of alice %d, bob@x.com %d, carol %d; want 1 each", a, b, c)
		}
		return nil
	})
	if n := v.requestsOf("dave") + v.requestsOf("nobody") + v.requestsOf("Bob@X.com"); n != 0 {
		t.Fatalf("%d calls under names that are no login's account", n)
	}

	v.MustDo("POST", "/v1/blocklist", `{"kind":"username","value":"mallory@x.com"}`, 201)
	mallory := `{"user":{"email":"Mallory@X.com","password":"` + loginPW + `"}}`
	assertBlocked(t, v.login(loginPost("/shop/login", "100.64.0.5", "application/json", mallory)), 403, "blocklist")
	assertDenied(t, v.check(loginPost("/shop/login", "100.64.0.6", "application/json", mallory), withBody), 403, "blocklist")
	if res := v.login(loginPost("/watch/login", "100.64.0.7", "application/json", mallory)); !res.UpstreamCalled || res.Status != 401 {
		t.Fatalf("detect mode: the login was refused: %d %s", res.Status, res.Body)
	}
	vigiltest.Eventually(t, 5*time.Second, func() error {
		if n := v.Metric("vigil_verdicts_total", `outcome="would_block"`, `reason="blocklist"`); n < 1 {
			return fmt.Errorf("would-be refusals %v", n)
		}
		return nil
	})

	seen := v.Logs.String() + v.MustDo("GET", "/v1/attacks", "", 200) + v.MustDo("GET", "/v1/forensics/username/alice", "", 200) +
		v.MustDo("GET", "/v1/forensics/username/bob@x.com", "", 200) + v.MustDo("GET", "/v1/blocklist", "", 200)
	v.Stop()
	assertNoPassword(t, "the log and the admin API", seen)
	assertNoPasswordIn(t, dir)
}

func assertNoPassword(t *testing.T, where, text string) {
	t.Helper()
	if strings.Contains(text, loginPW) {
		t.Fatalf("the password is in %s", where)
	}
}

// assertNoPasswordIn fails when any file under dir holds the password.
func assertNoPasswordIn(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		if bytes.Contains(b, []byte(loginPW)) {
			i := bytes.Index(b, []byte(loginPW))
			t.Errorf("the password is stored in %s: %s", path, b[max(0, i-600):min(len(b), i+200)])
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("data directory: %d files, %v", n, err)
	}
}

// TestCredentialStuffingOnOneAccountIsCaughtByItsBodyName: 120 failed
// logins for one account from 120 addresses, its name only in the login
// bodies, live: the account's username identity raises
// credential_stuffing, the name goes on the block list, and the next
// login for it, from yet another address, is refused at its body.
func TestCredentialStuffingOnOneAccountIsCaughtByItsBodyName(t *testing.T) {
	dir := t.TempDir()
	v := startIn(t, dir, loginConfig)
	for i := range 200 {
		v.login(get(fmt.Sprintf("/shop/items/%d", i%7), "x-forwarded-for", fmt.Sprintf("10.0.0.%d", i%20)))
	}
	vigiltest.Eventually(t, 10*time.Second, func() error {
		var m modelDoc
		decodeJSON(t, v.MustDo("GET", "/v1/models/shop", "", 200), &m)
		if m.Status.State != "ready" {
			return fmt.Errorf("model %s", m.Status.State)
		}
		return nil
	})
	body := func(i int) string {
		return fmt.Sprintf(`{"email":"Victim@Example.com","password":"%s-%d"}`, loginPW, i)
	}
	refused := false
	for i := range 120 {
		res := v.login(loginPost("/shop/login", fmt.Sprintf("198.18.%d.%d", i/100, i%100+1), "application/json", body(i)))
		if res.Status == 403 {
			refused = true // the block landed while the attack went on
		}
	}
	var stuffing attackJSON
	vigiltest.Eventually(t, 10*time.Second, func() error {
		for _, a := range v.attacks("?type=credential_stuffing") {
			if a.Identity.Kind == "username" && a.Identity.Value == "victim@example.com" {
				stuffing = a
				return nil
			}
		}
		return fmt.Errorf("no credential_stuffing on the username victim@example.com: %+v", v.attacks(""))
	})
	if stuffing.Action != "blocked" || stuffing.API != "shop" {
		t.Fatalf("attack %+v", stuffing)
	}
	// The attack record may be seen a moment before its block lands.
	var res *envoysim.Result
	vigiltest.Eventually(t, 5*time.Second, func() error {
		res = v.login(loginPost("/shop/login", "198.18.9.9", "application/x-www-form-urlencoded", "email=VICTIM%40example.com&password="+loginPW))
		if res.Status != 403 {
			return fmt.Errorf("a login for the attacked account answered %d", res.Status)
		}
		return nil
	})
	assertBlocked(t, res, 403, "blocklist")
	if !refused && !strings.Contains(string(res.Body), stuffing.ID) {
		t.Fatalf("the refusal does not name the attack %s: %s", stuffing.ID, res.Body)
	}
	seen := v.Logs.String() + v.MustDo("GET", "/v1/attacks", "", 200) + v.MustDo("GET", "/v1/forensics/username/victim@example.com", "", 200)
	v.Stop()
	assertNoPassword(t, "the log and the admin API", seen)
	assertNoPasswordIn(t, dir)
}

// TestReplayCatchesCredentialStuffingByTheBodyName: the same attack in a
// recording replayed by vigil replay, after benign traffic the model
// trains on (users logging in, now and then mistyping): the account's
// username identity, read from the records' request_body as live,
// raises credential_stuffing; no benign user does; the attacks written
// hold no password.
func TestReplayCatchesCredentialStuffingByTheBodyName(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
data_dir: %s
training: {duration: 20m, min_requests: 500, min_identities: 10, relearn_interval: 10m}
apis:
  - {name: shop, hosts: [shop.example.com], base_path: /shop, mode: detect, login_paths: [/shop/login]}
`, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	rec := func(ts time.Time, ip, method, path string, status int, ct, body string) {
		b, _ := json.Marshal(map[string]any{
			"time": ts, "method": method, "authority": "shop.example.com", "path": path, "status": status, "client_ip": ip,
			"request_headers": map[string]string{"content-type": ct, "user-agent": "app"},
			"request_bytes":   len(body), "response_bytes": 300, "duration_ms": 9, "request_body": body,
		})
		in.Write(append(b, '\n'))
	}
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	now := t0
	for i := range 3000 { // 50 minutes of 30 users browsing, logging in, mistyping now and then
		now = now.Add(time.Second)
		user, ip := i%30, fmt.Sprintf("10.1.0.%d", i%30)
		switch {
		case i%10 == 0:
			status := 200
			if i%70 == 0 {
				status = 401
			}
			rec(now, ip, "POST", "/shop/login", status, "application/x-www-form-urlencoded", fmt.Sprintf("username=user%d&password=%s", user, loginPW))
		default:
			rec(now, ip, "GET", fmt.Sprintf("/shop/items/%d", i%40), 200, "", "")
		}
	}
	for i := range 120 { // two minutes later: one account, 120 addresses, two minutes
		now = now.Add(time.Second)
		rec(now, fmt.Sprintf("203.0.113.%d", i+1), "POST", "/shop/login", 401, "application/json",
			fmt.Sprintf(`{"user":{"email":"Victim@Example.com","password":"%s-%d"}}`, loginPW, i))
	}
	inPath, outPath := filepath.Join(dir, "traffic.jsonl"), filepath.Join(dir, "attacks.jsonl")
	if err := os.WriteFile(inPath, in.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := cli.Main(context.Background(), []string{"replay", "--config", cfgPath, "--input", inPath, "--out", outPath}, &stdout, &stderr); err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	out, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		var a attackJSON
		decodeJSON(t, line, &a)
		switch {
		case a.Type == "credential_stuffing" && a.Identity.Kind == "username" && a.Identity.Value == "victim@example.com":
			found = true
		case strings.HasPrefix(a.Identity.Value, "user") || strings.HasPrefix(a.Identity.Value, "10.1.0."):
			t.Errorf("a benign user flagged: %s", line)
		}
	}
	if !found {
		t.Fatalf("no credential_stuffing on the username victim@example.com:\n%s\n%s", out, stderr.String())
	}
	assertNoPassword(t, "the replay's output", string(out)+stdout.String()+stderr.String())
}
