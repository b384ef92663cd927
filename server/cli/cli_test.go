package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func runMain(args ...string) (string, string, error) {
	var out, errs bytes.Buffer
	err := Main(context.Background(), args, &out, &errs)
	return out.String(), errs.String(), err
}

// Global flags may come before the command: vigil --admin-addr X attacks
// once failed with unknown command "--admin-addr".
func TestCLIGlobalFlagsBeforeTheCommand(t *testing.T) {
	t.Setenv("VIGIL_ADMIN_TOKEN", "")
	t.Setenv("VIGIL_ADMIN_ADDR", "")
	ts := vigiltest.Start(t, "")
	addr, dead := ts.AdminAddr(), deadAddr(t)
	if code, b := vigiltest.Call(t, ts.Client(""), "POST", "/v1/blocklist", `{"kind":"ip","value":"10.0.0.1"}`); code != 201 {
		t.Fatalf("POST: %d %s", code, b)
	}
	for _, args := range [][]string{
		{"--admin-addr", addr, "attacks"},
		{"--admin-addr=" + addr, "status"},
		{"-admin-addr", addr, "block", "ls"},
		{"-o", "json", "--admin-addr", addr, "block", "ls"},
		{"--admin-addr", addr, "-o=json", "apis"},
		{"--admin-addr", dead, "block", "ls", "--admin-addr", addr}, // the later flag wins
		{"--admin-addr", addr, "block", "add", "--", "username", "-bob"},
		{"--admin-addr", "127.0.0.1:0", "serve", "--help"},
	} {
		out, errs, err := runMain(args...)
		if err != nil {
			t.Errorf("vigil %q: %v\n%s", args, err, errs)
			continue
		}
		if args[0] == "-o" && !json.Valid([]byte(out)) {
			t.Errorf("vigil %q: -o json before the command did not apply:\n%s", args, out)
		}
	}
	if _, _, err := runMain("--admin-addr", addr, "block", "ls", "--admin-addr", dead); err == nil || !strings.Contains(err.Error(), dead) {
		t.Errorf("the flag after the command did not win: %v", err)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--admin-addr", addr, "config", "default"}, "config takes no global flags"},
		{[]string{"-o", "json", "serve"}, "-o does not apply to serve"},
		{[]string{"--admin-addr"}, "flag needs an argument: --admin-addr"},
		{[]string{"--admin-addr", addr}, "global flags without a command"},
		{[]string{"--admin-addr", addr, "--nope", "status"}, `unknown global flag "--nope"`},
		{[]string{"--nope", "status"}, `unknown command "--nope"`},
	} {
		_, errs, err := runMain(tc.args...)
		if !errors.Is(err, ErrUsage) || !strings.Contains(errs, tc.msg) {
			t.Errorf("vigil %q: %v, stderr %q; want a usage error with %q", tc.args, err, errs, tc.msg)
		}
	}
}

// VIGIL_ADMIN_ADDR is the admin API the commands call when --admin-addr is
// not given: flag > environment > 127.0.0.1:9001.
func TestCLIAdminAddrEnv(t *testing.T) {
	t.Setenv("VIGIL_ADMIN_TOKEN", "")
	ts := vigiltest.Start(t, "")
	addr, dead := ts.AdminAddr(), deadAddr(t)

	t.Setenv("VIGIL_ADMIN_ADDR", addr)
	for _, args := range [][]string{{"status"}, {"attacks"}, {"block", "ls"}, {"apis"}, {"model", "get", "nope"}} {
		_, _, err := runMain(args...)
		if args[0] == "model" {
			if err == nil || !strings.Contains(err.Error(), `no model for API "nope"`) {
				t.Errorf("vigil %q with VIGIL_ADMIN_ADDR: %v, want the server's 404", args, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("vigil %q with VIGIL_ADMIN_ADDR=%s: %v", args, addr, err)
		}
	}
	if _, _, err := runMain("status", "--admin-addr", dead); err == nil || !strings.Contains(err.Error(), dead) {
		t.Errorf("--admin-addr did not win over VIGIL_ADMIN_ADDR: %v", err)
	}
	t.Setenv("VIGIL_ADMIN_ADDR", dead)
	if _, _, err := runMain("status"); err == nil || !strings.Contains(err.Error(), "cannot reach Vigil's admin API at "+dead) {
		t.Errorf("VIGIL_ADMIN_ADDR=%s: %v", dead, err)
	}
	if _, _, err := runMain("--admin-addr", addr, "status"); err != nil {
		t.Errorf("--admin-addr before the command did not win over VIGIL_ADMIN_ADDR: %v", err)
	}
	t.Setenv("VIGIL_ADMIN_ADDR", "")
	if _, _, err := runMain("block", "ls"); err == nil || !strings.Contains(err.Error(), "127.0.0.1:9001") {
		t.Errorf("without flag or environment: %v, want the default 127.0.0.1:9001", err)
	}
}

// The attack list shows the variable that fired, not one far from its
// normal but under its limit; counts are whole numbers.
func TestCLITopVariable(t *testing.T) {
	for _, tc := range []struct {
		name string
		vars []detect.VariableValue
		want string
	}{
		{"the fired one, not the largest deviation", []detect.VariableValue{
			{Name: "not_found_10m", Observed: 19, Tn: 2, Tx: 25, DeviationPct: 850},
			{Name: "distinct_failed_paths", Observed: 15.8, Tn: 4, Tx: 15, DeviationPct: 295},
		}, "distinct_failed_paths 16/15"},
		{"of the fired ones, the largest deviation", []detect.VariableValue{
			{Name: "login_failures_10m", Observed: 30, Tn: 3, Tx: 12, DeviationPct: 900},
			{Name: "distinct_login_usernames", Observed: 40.2, Tn: 2, Tx: 6.5, DeviationPct: 1910},
		}, "distinct_login_usernames 40/6"},
		{"a distinct count as a whole number", []detect.VariableValue{{Name: "distinct_ips", Observed: 6.3, Tn: 1.4, Tx: 6, DeviationPct: 350}}, "distinct_ips 6/6"},
		{"a ratio keeps its decimals", []detect.VariableValue{{Name: "error_ratio_10m", Observed: 0.87, Tn: 0.1, Tx: 0.8, DeviationPct: 770}}, "error_ratio_10m 0.87/0.8"},
		{"none fired: the largest deviation", []detect.VariableValue{
			{Name: "errors_10m", Observed: 20, Tn: 5, Tx: 60, DeviationPct: 300},
			{Name: "requests_per_min", Observed: 90.4, Tn: 10, Tx: 100, DeviationPct: 804},
		}, "requests_per_min 90/100"},
		{"the anomaly score fired", []detect.VariableValue{
			{Name: "errors_10m", Observed: 20, Tn: 5, Tx: 60, DeviationPct: 300},
			{Name: "isolation_score", Observed: 0.71, Tn: 0.5, Tx: 0.7, DeviationPct: 1.4},
			{Name: "requests_per_min", Observed: 90, Tn: 10, Tx: 100, DeviationPct: 800},
		}, "isolation_score 0.71/0.7"},
		{"a shared address's users are context, not the reason", []detect.VariableValue{
			{Name: "login_failures_10m", Observed: 40, Tn: 8, Tx: 24, DeviationPct: 400},
			{Name: "users_behind_address", Observed: 61.2, Tn: 4, Tx: 4, DeviationPct: 1430},
		}, "login_failures_10m 40/24"},
		{"a new variable: the hour's requests", []detect.VariableValue{
			{Name: "requests_per_min", Observed: 30, Tn: 12, Tx: 100, DeviationPct: 150},
			{Name: "requests_1h", Observed: 912, Tn: 200, Tx: 900, DeviationPct: 356},
		}, "requests_1h 912/900"},
		{"nothing", nil, "-"},
	} {
		if got := topVariable(tc.vars); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}

	t.Setenv("VIGIL_ADMIN_TOKEN", "")
	ts := vigiltest.Start(t, "")
	now := time.Now().UTC()
	ts.Engine().Store().Add(&detect.Attack{
		ID: "att-probe", Type: detect.AttackProbing, API: "shop", Identity: detect.AttackIdentity{Kind: "ip", Value: "203.0.113.9"},
		FirstSeen: now, DetectedAt: now, Action: detect.ActionBlocked,
		Variables: []detect.VariableValue{
			{Name: "not_found_10m", Observed: 19, Tn: 2, Tx: 25, DeviationPct: 850},
			{Name: "distinct_failed_paths", Observed: 15.8, Tn: 4.2, Tx: 15, DeviationPct: 276.2},
		},
	})
	if row := tableRow(mustCLI(t, ts, "attacks"), "att-probe"); len(row) != 8 || row[6] != "distinct_failed_paths" || row[7] != "16/15" {
		t.Errorf("attack row %q, want TOP VARIABLE distinct_failed_paths 16/15", row)
	}
	show := mustCLI(t, ts, "attacks", "show", "att-probe")
	if row := tableRow(show, "distinct_failed_paths"); strings.Join(row, " ") != "distinct_failed_paths 16 4 15 +276%" {
		t.Errorf("attacks show row %q, want whole numbers:\n%s", row, show)
	}
}

// serve --help once printed "(default -1ns)" for the drain delay.
func TestServeHelpDefaults(t *testing.T) {
	_, errs, err := runMain("serve", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(errs, "-1") || !strings.Contains(errs, "default: the config's, 5s in the embedded defaults") {
		t.Errorf("serve --help:\n%s", errs)
	}
	if !strings.Contains(string(config.DefaultYAML()), "drain_delay: 5s") {
		t.Error("the help text's 5s is no longer the embedded default drain_delay")
	}
}
