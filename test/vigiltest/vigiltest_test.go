package vigiltest_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/test/vigiltest"
)

// TestLoadSnippetWins: the harness's loopback ports, data directory, log
// level and shutdown apply only to the keys the snippet leaves out.
func TestLoadSnippetWins(t *testing.T) {
	dir := t.TempDir()
	cfg := vigiltest.Load(t, dir, "trusted_hops: 2\n")
	if cfg.GRPCAddr != "127.0.0.1:0" || cfg.AdminAddr != "127.0.0.1:0" || cfg.DataDir != dir || cfg.LogLevel != "debug" ||
		cfg.Shutdown.DrainDelay != 0 || cfg.Shutdown.Timeout != 5*time.Second || cfg.TrustedHops != 2 {
		t.Errorf("harness defaults not applied: %+v", cfg)
	}
	cfg = vigiltest.Load(t, t.TempDir(), "log_level: warn\nadmin_addr: 127.0.0.1:9\nshutdown: {drain_delay: 1s, timeout: 3s}\n")
	if cfg.LogLevel != "warn" || cfg.AdminAddr != "127.0.0.1:9" || cfg.Shutdown.DrainDelay != time.Second || cfg.Shutdown.Timeout != 3*time.Second {
		t.Errorf("the snippet's keys were overridden: %+v", cfg)
	}
}

// TestStartAnswersAndLogs: a started server is ready, answers the admin
// API with the status and body as sent (an error answer's too), and logs
// into Logs.
func TestStartAnswersAndLogs(t *testing.T) {
	v := vigiltest.Start(t, "admin_token: harness-token-0123456789abcdef\n")
	v.MustDo("POST", "/v1/blocklist", `{"kind":"ip","value":"192.0.2.7"}`, http.StatusCreated)
	if code, body := v.Do("POST", "/v1/blocklist", `{"kind":"nope"}`); code != http.StatusBadRequest || !strings.Contains(body, `"error"`) {
		t.Errorf("bad entry: %d %s", code, body)
	}
	if code, _ := vigiltest.Call(t, v.Client("wrong"), "GET", "/v1/blocklist", ""); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", code)
	}
	if v.Metric("vigil_blocklist_entries") < 1 {
		t.Errorf("no vigil_blocklist_entries in /metrics")
	}
	vigiltest.Until(t, 5*time.Second, "the serving log line", func() bool {
		return strings.Contains(v.Logs.String(), `"message":"vigil serving"`)
	})
	v.Stop()
	v.Stop() // a second Stop, and the one at cleanup, do nothing
}
