package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/observe"
	"github.com/vigil-project/vigil/server"
	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// runCLI runs Main with the admin address of ts (when ts is not nil) and
// returns stdout, stderr and the error.
func runCLI(t *testing.T, ts *vigiltest.Server, args ...string) (string, string, error) {
	t.Helper()
	if ts != nil {
		args = append(args, "--admin-addr", ts.AdminAddr())
	}
	var out, errs bytes.Buffer
	err := Main(context.Background(), args, &out, &errs)
	return out.String(), errs.String(), err
}

// mustCLI runs Main and fails the test on an error.
func mustCLI(t *testing.T, ts *vigiltest.Server, args ...string) string {
	t.Helper()
	out, errs, err := runCLI(t, ts, args...)
	if err != nil {
		t.Fatalf("vigil %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errs)
	}
	return out
}

// tableRow returns the fields of the first line of a table that starts
// with the given first column.
func tableRow(table, first string) []string {
	for line := range strings.SplitSeq(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == first {
			return f
		}
	}
	return nil
}

func TestParseInterleaved(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		pos    []string
		reason string
		dry    bool
	}{
		{"flags after", []string{"add", "ip", "10.0.0.1", "--reason", "r"}, []string{"add", "ip", "10.0.0.1"}, "r", false},
		{"flags before", []string{"--reason", "r", "add", "ip", "10.0.0.1"}, []string{"add", "ip", "10.0.0.1"}, "r", false},
		{"flags between", []string{"add", "-reason=r", "ip", "--dry", "10.0.0.1"}, []string{"add", "ip", "10.0.0.1"}, "r", true},
		{"value that looks like a flag", []string{"add", "--reason", "-x", "ip"}, []string{"add", "ip"}, "-x", false},
		{"after --", []string{"add", "--dry", "--", "username", "-bob", "--reason"}, []string{"add", "username", "-bob", "--reason"}, "", true},
		{"a lone dash", []string{"-"}, []string{"-"}, "", false},
		{"nothing", nil, nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			reason := fs.String("reason", "", "")
			dry := fs.Bool("dry", false, "")
			pos, err := parseInterleaved(fs, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(pos, tc.pos) || *reason != tc.reason || *dry != tc.dry {
				t.Errorf("positional %q, reason %q, dry %v; want %q, %q, %v", pos, *reason, *dry, tc.pos, tc.reason, tc.dry)
			}
		})
	}
	for _, args := range [][]string{{"add", "--nope"}, {"add", "--reason"}, {"--dry=maybe"}} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(&bytes.Buffer{})
		fs.String("reason", "", "")
		fs.Bool("dry", false, "")
		if _, err := parseInterleaved(fs, args); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func TestCLILists(t *testing.T) {
	t.Setenv("VIGIL_ADMIN_TOKEN", "")
	const raw = "Bearer-raw-SECRET-77c1d0e9a4b2"
	clock := vigiltest.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	ts := vigiltest.StartWith(t, "", vigiltest.Options{Server: server.Options{Now: clock.Now}})

	for _, tc := range []struct{ verb, list, name string }{{"block", "blocklist", "block list"}, {"allow", "allowlist", "allow list"}} {
		t.Run(tc.verb, func(t *testing.T) {
			// Flags after, before and among the positional arguments.
			out := mustCLI(t, ts, tc.verb, "add", "ip", "100.100.1.10", "--ttl", "10m", "--reason", "scanner")
			if want := "added to the " + tc.name + `: ip 100.100.1.10, reason "scanner", expires 2030-01-02T03:14:05Z`; !strings.Contains(out, want) {
				t.Errorf("add ip: %q, want %q", out, want)
			}
			mustCLI(t, ts, tc.verb, "--reason", "credential stuffing", "add", "username", "alice")
			out = mustCLI(t, ts, tc.verb, "add", "-o", "json", "token", raw)
			var e adminapi.Entry
			if err := json.Unmarshal([]byte(out), &e); err != nil || e.Kind != "token" || !detect.IsFingerprint(e.Value) || e.Reason != "manual" || e.ExpiresAt != nil {
				t.Fatalf("add token -o json: %v %s", err, out)
			}
			if strings.Contains(out, raw) {
				t.Errorf("add token shows the raw value: %s", out)
			}

			out = mustCLI(t, ts, tc.verb, "ls")
			if !strings.HasPrefix(out, "KIND ") || !strings.Contains(out, "REASON") || !strings.Contains(out, "EXPIRES") {
				t.Errorf("ls has no header:\n%s", out)
			}
			for _, want := range [][]string{
				{"ip", "100.100.1.10", "scanner", "2030-01-02T03:14:05Z"},
				{"token", e.Value, "manual", "never"},
				{"username", "alice", "credential", "stuffing", "never"},
			} {
				if got := tableRow(out, want[0]); !reflect.DeepEqual(got, want) {
					t.Errorf("ls row %q, want %q in\n%s", got, want, out)
				}
			}
			if strings.Contains(out, raw) {
				t.Errorf("ls shows the raw value:\n%s", out)
			}
			var listed listBody
			if err := json.Unmarshal([]byte(mustCLI(t, ts, tc.verb, "ls", "-o", "json")), &listed); err != nil || len(listed.Entries) != 3 {
				t.Errorf("ls -o json: %v, %v", err, listed.Entries)
			}

			// Removing by the raw value never prints it, nor does the error
			// when nothing is left to remove.
			out = mustCLI(t, ts, tc.verb, "rm", "token", raw)
			if out != "removed the token entry from the "+tc.name+"\n" {
				t.Errorf("rm token: %q", out)
			}
			out, errs, err := runCLI(t, ts, tc.verb, "rm", "token", raw)
			if err == nil || !strings.Contains(err.Error(), "no "+tc.list+" entry for token fp:") {
				t.Errorf("rm of an absent token: %v, want the server's message", err)
			}
			if err != nil && strings.Contains(err.Error()+out+errs, raw) {
				t.Errorf("rm of an absent token shows the raw value: %v", err)
			}
			out = mustCLI(t, ts, tc.verb, "-o", "json", "rm", "username", "alice")
			var removed map[string]any
			if err := json.Unmarshal([]byte(out), &removed); err != nil || removed["removed"] != true || removed["value"] != "alice" {
				t.Errorf("rm -o json: %v %s", err, out)
			}
			if out := mustCLI(t, ts, tc.verb, "rm", "ip", "100.100.1.10"); out != "removed ip 100.100.1.10 from the "+tc.name+"\n" {
				t.Errorf("rm ip: %q", out)
			}
			if got := getList(t, ts.Client(""), tc.list); len(got.Entries) != 0 {
				t.Errorf("after rm: %v", got.Entries)
			}

			// The server's word on bad values.
			for _, bad := range []struct {
				args []string
				msg  string
			}{
				{[]string{"add", "email", "a@b.c"}, `unknown identity kind "email"`},
				{[]string{"rm", "email", "a@b.c"}, `unknown identity kind "email"`},
				{[]string{"add", "ip", "10.0.0.300"}, `invalid IP address "10.0.0.300"`},
				{[]string{"add", "ip", "10.0.0.1", "--ttl", "soon"}, `ttl: "soon" is not a positive duration`},
				{[]string{"rm", "ip", "10.9.9.9"}, "no " + tc.list + " entry for ip 10.9.9.9"},
			} {
				_, _, err := runCLI(t, ts, append([]string{tc.verb}, bad.args...)...)
				if err == nil || errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), bad.msg) {
					t.Errorf("%s %q: %v, want an error with %q", tc.verb, bad.args, err, bad.msg)
				}
			}
		})
	}
}

func TestCLIAttacks(t *testing.T) {
	t.Setenv("VIGIL_ADMIN_TOKEN", "")
	ts := vigiltest.Start(t, "")
	now := time.Now().UTC().Truncate(time.Second)
	const fp = "fp:0123456789abcdef0123456789abcdef"
	until := now.Add(time.Hour)
	store := ts.Engine().Store()
	store.Add(&detect.Attack{
		ID: "att-old", Type: detect.AttackProbing, API: "shop", Identity: detect.AttackIdentity{Kind: "ip", Value: "203.0.113.9"},
		FirstSeen: now.Add(-3 * time.Hour), DetectedAt: now.Add(-2 * time.Hour), Action: detect.ActionWouldBlock,
		Variables: []detect.VariableValue{{Name: "distinct_paths_per_min", Observed: 80, Tn: 5, Tx: 20, DeviationPct: 300}},
	})
	store.Add(&detect.Attack{
		ID: "att-stuff", Type: detect.AttackCredentialStuffing, API: "shop", Identity: detect.AttackIdentity{Kind: "token", Value: fp},
		FirstSeen: now.Add(-10 * time.Minute), DetectedAt: now.Add(-5 * time.Minute), Action: detect.ActionBlocked, BlockedUntil: &until,
		ClientIPs: []string{"198.51.100.7", "198.51.100.8"}, Repeat: 2,
		Variables: []detect.VariableValue{
			{Name: "logins_per_min", Observed: 30, Tn: 2, Tx: 10, DeviationPct: 200},
			{Name: "failed_logins_per_min", Observed: 28.5, Tn: 1, Tx: 5, DeviationPct: 470},
		},
	})
	store.Add(&detect.Attack{
		ID: "att-decoy", Type: detect.AttackDecoy, API: "orders", Identity: detect.AttackIdentity{Kind: "ip", Value: "192.0.2.1"},
		FirstSeen: now.Add(-time.Minute), DetectedAt: now.Add(-time.Minute), Action: detect.ActionBlocked,
		Request: &detect.AttackRequest{Method: "GET", Host: "orders.example.com", Path: "/orders/.env", UserAgent: "sqlmap"},
	})

	out := mustCLI(t, ts, "attacks")
	if !strings.HasPrefix(out, "ID ") || !strings.Contains(out, "TOP VARIABLE") {
		t.Errorf("no header:\n%s", out)
	}
	want := []string{"att-stuff", now.Add(-5 * time.Minute).Format(time.RFC3339), "credential_stuffing", "shop", "token:fp:01234567…", "blocked", "failed_logins_per_min", "28.5/5"}
	if got := tableRow(out, "att-stuff"); !reflect.DeepEqual(got, want) {
		t.Errorf("row %q, want %q in\n%s", got, want, out)
	}
	if strings.Contains(out, fp) {
		t.Errorf("the table shows the whole fingerprint:\n%s", out)
	}
	if got := tableRow(out, "att-decoy"); len(got) != 7 || got[4] != "ip:192.0.2.1" || got[6] != "-" {
		t.Errorf("decoy row %q in\n%s", got, out)
	}
	// Newest first.
	if i, j, k := strings.Index(out, "att-decoy"), strings.Index(out, "att-stuff"), strings.Index(out, "att-old"); i < 0 || i > j || j > k {
		t.Errorf("not newest first:\n%s", out)
	}

	// Filters, with the flags before or after the sub-command.
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"attacks", "--api", "shop"}, []string{"att-stuff", "att-old"}},
		{[]string{"attacks", "--type", "probing"}, []string{"att-old"}},
		{[]string{"attacks", "--since", "15m"}, []string{"att-decoy", "att-stuff"}},
		{[]string{"attacks", "--since", now.Add(-90 * time.Second).Format(time.RFC3339), "--api", "orders"}, []string{"att-decoy"}},
		{[]string{"attacks", "--limit", "1"}, []string{"att-decoy"}},
		{[]string{"attacks", "--limit", "1", "--offset", "2"}, []string{"att-old"}},
	} {
		out := mustCLI(t, ts, tc.args...)
		var got []string
		for _, id := range []string{"att-decoy", "att-stuff", "att-old"} {
			if tableRow(out, id) != nil {
				got = append(got, id)
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("vigil %q: %q, want %q", tc.args, got, tc.want)
		}
	}
	_, errs, _ := runCLI(t, ts, "attacks", "--limit", "1")
	if !strings.Contains(errs, "1 of 3 attacks shown") {
		t.Errorf("a partial page does not say so: %q", errs)
	}
	_, errs, _ = runCLI(t, ts, "attacks", "--api", "nope")
	if !strings.Contains(errs, "no attacks match") {
		t.Errorf("an empty answer does not say so: %q", errs)
	}

	var page struct {
		Attacks []detect.Attack `json:"attacks"`
		Total   int             `json:"total"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, ts, "attacks", "-o", "json", "--api", "shop")), &page); err != nil ||
		page.Total != 2 || len(page.Attacks) != 2 || page.Attacks[0].Identity.Value != fp {
		t.Errorf("-o json: %v %+v", err, page)
	}

	out = mustCLI(t, ts, "attacks", "show", "att-stuff")
	for _, want := range []string{
		"credential_stuffing", "token " + fp, "blocked until " + until.Format(time.RFC3339),
		"198.51.100.7, 198.51.100.8", "2 by this identity", "VARIABLE", "DEVIATION",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if got, want := tableRow(out, "failed_logins_per_min"), []string{"failed_logins_per_min", "28.5", "1", "5", "+470%"}; !reflect.DeepEqual(got, want) {
		t.Errorf("variable row %q, want %q in\n%s", got, want, out)
	}
	out = mustCLI(t, ts, "attacks", "-o", "json", "show", "att-decoy")
	var a detect.Attack
	if err := json.Unmarshal([]byte(out), &a); err != nil || a.Request == nil || a.Request.Path != "/orders/.env" {
		t.Errorf("show -o json: %v %s", err, out)
	}
	if out := mustCLI(t, ts, "attacks", "show", "att-decoy"); !strings.Contains(out, `GET orders.example.com/orders/.env (user agent "sqlmap")`) {
		t.Errorf("show of a decoy hit lacks the request:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"attacks", "show", "nope"}, `no attack "nope"`},
		{[]string{"attacks", "--type", "ddos"}, `unknown attack type "ddos"`},
		{[]string{"attacks", "--since", "yesterday"}, `since: "yesterday" is neither RFC 3339 nor a duration`},
		{[]string{"attacks", "--limit", "5000"}, `limit: "5000" must be an integer from 0 to 1000`},
	} {
		_, _, err := runCLI(t, ts, tc.args...)
		if err == nil || errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("vigil %q: %v, want an error with %q", tc.args, err, tc.msg)
		}
	}
}

func TestCLIStatusAndAPIs(t *testing.T) {
	t.Setenv("VIGIL_ADMIN_TOKEN", "")
	cfg := vigiltest.Config(t)
	learn := "learn"
	cfg.APIs = []config.APIConfig{
		{Name: "shop", Hosts: []string{"shop.example.com"}, BasePath: "/shop", Decoys: []string{"/admin"}},
		{Name: "users", BasePath: "/users", Mode: &learn},
	}
	ts := vigiltest.Run(t, cfg, vigiltest.Options{})

	out := mustCLI(t, ts, "status")
	for _, want := range []string{"ready", "APIs:", "2 (0 discovered)", "No models yet", "0 hits on 1 decoys, 0 honeytokens planted"} {
		if !strings.Contains(out, want) {
			t.Errorf("status of a new server lacks %q:\n%s", want, out)
		}
	}

	// Traffic makes a model; attack records feed the counts.
	now := time.Now()
	for range 3 {
		ts.Engine().Consume(&detect.Transaction{Host: "shop.example.com", Method: "GET", Path: "/shop/items", HasRequest: true, Start: now})
	}
	vigiltest.Until(t, 5*time.Second, "a model of shop", func() bool { return len(ts.Engine().Models()) == 1 })
	store := ts.Engine().Store()
	for i, typ := range []detect.AttackType{detect.AttackProbing, detect.AttackStolenToken, detect.AttackProbing, detect.AttackMassDeletion} {
		at := now.Add(-time.Duration(i) * time.Minute)
		if typ == detect.AttackMassDeletion {
			at = now.Add(-2 * time.Hour)
		}
		store.Add(&detect.Attack{ID: "a" + string(rune('0'+i)), Type: typ, API: "shop", DetectedAt: at, Action: detect.ActionBlocked,
			Identity: detect.AttackIdentity{Kind: "ip", Value: "203.0.113.1"}})
	}

	out = mustCLI(t, ts, "status")
	if got := tableRow(out, "shop"); len(got) < 4 || got[1] != "learning" || got[2] != "0%" || got[3] != "time" {
		t.Errorf("model row %q in\n%s", got, out)
	}
	if !strings.Contains(out, "requests 0%, identities 0%") {
		t.Errorf("status does not say what training waits on:\n%s", out)
	}
	for _, want := range [][]string{{"probing", "2"}, {"stolen_token", "1"}} {
		if got := tableRow(out, want[0]); !reflect.DeepEqual(got, want) {
			t.Errorf("attack count row %q, want %q in\n%s", got, want, out)
		}
	}
	if got := tableRow(out, "Attacks"); tableRow(out, "mass_deletion") != nil || len(got) == 0 || got[len(got)-1] != "3" {
		t.Errorf("status counts an attack older than an hour:\n%s", out)
	}

	var r statusReport
	if err := json.Unmarshal([]byte(mustCLI(t, ts, "status", "-o", "json")), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Ready || r.APIs != 2 || len(r.Models) != 1 || r.Models[0].API != "shop" || r.Models[0].Requests != 3 ||
		r.AttacksLastHour.Total != 3 || !reflect.DeepEqual(r.AttacksLastHour.ByType, map[string]int{"probing": 2, "stolen_token": 1}) ||
		r.Decoys.Decoys != 1 || r.Decoys.Hits != 0 {
		t.Errorf("status -o json: %+v", r)
	}

	out = mustCLI(t, ts, "apis")
	if !strings.HasPrefix(out, "NAME ") || !strings.Contains(out, "ENDPOINTS") {
		t.Errorf("apis has no header:\n%s", out)
	}
	if got, want := tableRow(out, "shop"), []string{"shop", "/shop", "block", "no", "0", "0", "0", "0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("apis row %q, want %q in\n%s", got, want, out)
	}
	if got := tableRow(out, "users"); len(got) < 3 || got[2] != "learn" {
		t.Errorf("apis row %q in\n%s", got, out)
	}
	var apis struct {
		APIs []observe.APIStats `json:"apis"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, ts, "apis", "-o", "json")), &apis); err != nil || len(apis.APIs) != 2 || apis.APIs[0].Name != "shop" {
		t.Errorf("apis -o json: %v %+v", err, apis)
	}
}

func TestCLIAdminToken(t *testing.T) {
	const token = "cli-admin-token-0123456789abcdef"
	cfg := vigiltest.Config(t)
	cfg.AdminToken = token
	ts := vigiltest.Run(t, cfg, vigiltest.Options{})

	for _, bad := range []string{"", "wrong-token"} {
		t.Setenv("VIGIL_ADMIN_TOKEN", bad)
		for _, args := range [][]string{{"status"}, {"apis"}, {"attacks"}, {"block", "ls"}, {"allow", "add", "ip", "10.0.0.1"}} {
			_, _, err := runCLI(t, ts, args...)
			if err == nil || !strings.Contains(err.Error(), "missing or wrong admin bearer token (401)") {
				t.Errorf("vigil %q with token %q: %v, want the 401", args, bad, err)
			}
		}
	}
	t.Setenv("VIGIL_ADMIN_TOKEN", token)
	mustCLI(t, ts, "block", "add", "ip", "10.0.0.1")
	if out := mustCLI(t, ts, "block", "ls"); tableRow(out, "ip") == nil {
		t.Errorf("ls with the token:\n%s", out)
	}
	if out := mustCLI(t, ts, "status"); !strings.Contains(out, "ready") {
		t.Errorf("status with the token:\n%s", out)
	}
}

func TestCLIUnreachable(t *testing.T) {
	t.Setenv("VIGIL_ADMIN_TOKEN", "")
	// A port that was just free: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	const raw = "raw-secret-token-5d41402abc4b2a76"
	for _, args := range [][]string{{"status"}, {"apis"}, {"attacks"}, {"attacks", "show", "x"}, {"block", "ls"}, {"allow", "rm", "token", raw}} {
		out, errs, err := runCLI(t, nil, append(args, "--admin-addr", addr)...)
		if err == nil || errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "cannot reach Vigil's admin API at "+addr+" (set --admin-addr)") {
			t.Errorf("vigil %q: %v, want a clear error", args, err)
			continue
		}
		if strings.Contains(err.Error()+out+errs, raw) {
			t.Errorf("vigil %q shows the raw value: %v", args, err)
		}
	}
}

func TestCLIUsage(t *testing.T) {
	t.Setenv("VIGIL_ADMIN_TOKEN", "")
	// Usage errors are found before any call: no server is needed.
	for _, args := range [][]string{
		{"block"},
		{"allow", "add", "ip"},
		{"block", "rm", "ip"},
		{"block", "add", "ip", "10.0.0.1", "extra"},
		{"block", "ls", "extra"},
		{"block", "purge"},
		{"block", "rm", "ip", "10.0.0.1", "--ttl", "1h"},
		{"allow", "ls", "--reason", "x"},
		{"block", "add", "ip", "10.0.0.1", "--ttl"},
		{"attacks", "show"},
		{"attacks", "show", "a", "b"},
		{"attacks", "show", "a", "--api", "shop"},
		{"attacks", "list"},
		{"attacks", "--limit", "many"},
		{"attacks", "--nope"},
		{"status", "now"},
		{"apis", "-o", "yaml"},
		{"status", "-o", "xml"},
	} {
		_, errs, err := runCLI(t, nil, args...)
		if !errors.Is(err, ErrUsage) {
			t.Errorf("vigil %q: %v, want a usage error", args, err)
		}
		if !strings.Contains(errs, "Usage") && !strings.Contains(errs, "flag") {
			t.Errorf("vigil %q: stderr %q says nothing useful", args, errs)
		}
	}
	for _, args := range [][]string{{"attacks", "-h"}, {"block", "--help"}, {"status", "-h"}, {"apis", "-h"}} {
		_, errs, err := runCLI(t, nil, args...)
		if err != nil || !strings.Contains(errs, "Usage:") {
			t.Errorf("vigil %q: %v, stderr %q; want the usage", args, err, errs)
		}
	}
	out, _, err := runCLI(t, nil, "help")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"vigil status", "vigil apis", "vigil attacks", "vigil block add|rm|ls", "vigil allow add|rm|ls"} {
		if !strings.Contains(out, cmd) {
			t.Errorf("the usage lacks %s", cmd)
		}
	}
}
