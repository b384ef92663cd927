package demo

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/inspect"

	"github.com/vigil-project/vigil/server/demo/shop"
)

func TestAttributeByClientAddresses(t *testing.T) {
	script := Script()
	names := map[string]bool{}
	for _, a := range script {
		if names[a.Net] {
			t.Fatalf("two attacks share %s", a.Net)
		}
		names[a.Net] = true
		if !IsScriptIP(a.Net + "1") {
			t.Errorf("%s: %s1 is not a script address", a.Name, a.Net)
		}
	}
	stolen := &detect.Attack{Type: detect.AttackStolenToken, ClientIPs: []string{BenignIP(200), "45.128.4.3"}}
	if d := Attribute(stolen, script); d.Script == nil || d.Script.Name != "stolen_token" || d.Benign {
		t.Errorf("stolen token record: %+v", d)
	}
	if d := Attribute(&detect.Attack{ClientIPs: []string{BenignIP(5), BenignIP(6)}}, script); d.Script != nil || !d.Benign {
		t.Errorf("a demo user's record: %+v", d)
	}
	if d := Attribute(&detect.Attack{ClientIPs: []string{"127.0.0.1"}}, script); d.Script != nil || d.Benign {
		t.Errorf("a record of someone else: %+v", d)
	}
	if IsScriptIP(BenignIP(1)) || !IsScriptUser("user197") || !IsScriptUser("user200") || IsScriptUser("user196") || IsScriptUser("user2000") || IsScriptUser("root") {
		t.Error("script identities")
	}
	for i := 1; i <= BackgroundUsers; i++ {
		if IsScriptUser(shop.UserName(i)) {
			t.Fatalf("background user %d is one of the script's accounts", i)
		}
	}
}

func TestExplainNamesTheVariablesPastTheirLimit(t *testing.T) {
	now := time.Now()
	until := now.Add(time.Hour)
	a := &detect.Attack{Type: detect.AttackCredentialStuffing, DetectedAt: now, BlockedUntil: &until, Action: detect.ActionBlocked,
		Identity:  detect.AttackIdentity{Kind: "token", Value: "fp:0123"},
		Variables: []detect.VariableValue{{Name: "login_failures_10m", Observed: 13, Tn: 1, Tx: 12}, {Name: "distinct_login_usernames", Observed: 0, Tn: 0, Tx: 6}}}
	if got := Explain(a); got != "login_failures_10m = 13 (normal ≤ 1, limit 12)" {
		t.Errorf("Explain: %q", got)
	}
	if got := Action(a); got != "blocked for 1h0m0s" {
		t.Errorf("Action: %q", got)
	}
	if got := Identity(a); got != "token fp:0123" {
		t.Errorf("Identity: %q", got)
	}
	sqli := &detect.Attack{Type: detect.AttackSQLInjection, Request: &detect.AttackRequest{Method: "GET", Path: "/shopapi-bid/search"},
		Variables: []detect.VariableValue{{Name: "query.q", Location: "query", Detector: "libinjection-sqli", Excerpt: "watch' OR '1'='1' -- "}}}
	if got := Explain(sqli); got != `GET /shopapi-bid/search: query.q "watch' OR '1'='1' -- " (libinjection-sqli)` {
		t.Errorf("Explain sql_injection: %q", got)
	}
	d := &detect.Attack{Type: detect.AttackDecoy, Request: &detect.AttackRequest{Method: "GET", Path: "/shopapi-bid/admin"}}
	if got := Explain(d); !strings.Contains(got, "GET /shopapi-bid/admin") {
		t.Errorf("Explain decoy: %q", got)
	}
}

// Every payload of the injection scanner is caught by content inspection
// on its own, without any learned profile, as the type it is meant as; the
// first three (what blocks the scanner's address) as sql_injection.
func TestInjectionScannerPayloadsAreFindings(t *testing.T) {
	in := inspect.New(inspect.Config{})
	for i, p := range scannerPayloads {
		path, query, _ := strings.Cut(shop.BasePath+p.path, "?")
		rv := inspect.RequestView{Method: p.method, Path: path, Query: query, UserAgent: "Mozilla/5.0 (scanner)"}
		if p.body != "" {
			rv.ContentType, rv.Body = "application/json", []byte(p.body)
		}
		f := in.Request(&rv, nil)
		t.Logf("%s %s: %s at %s (%s)", p.method, p.path, f.Kind, f.KeyPath(), f.Detector)
		switch {
		case f.Kind == inspect.KindNone:
			t.Errorf("payload %d %s %s: no finding", i, p.method, p.path)
		case i < 3 && f.Kind != inspect.SQLInjection:
			t.Errorf("payload %d %s %s: %s, want sql_injection", i, p.method, p.path, f.Kind)
		}
	}
}
