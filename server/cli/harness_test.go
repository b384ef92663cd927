package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-project/vigil/server"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/testlog"
)

// The commands are tested against a real server, run in the test. (The
// server package's tests keep a harness of their own, since they reach
// into the Server; test/e2e has the end-to-end one.)

// testConfig is the embedded defaults on ephemeral loopback ports, a
// temporary data directory and no drain delay.
func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.GRPCAddr, cfg.AdminAddr, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	cfg.Shutdown.DrainDelay, cfg.Shutdown.Timeout = 0, 5*time.Second
	return cfg
}

// testServer is a Server running in the background.
type testServer struct {
	*server.Server
	base string // admin base URL
}

// startServer runs New and Run and waits until /readyz answers 200; the
// server is stopped, and Run's error checked, when the test ends.
func startServer(t *testing.T, cfg *config.Config) *testServer {
	t.Helper()
	return startServerWith(t, cfg, server.Options{})
}

func startServerWith(t *testing.T, cfg *config.Config, opts server.Options) *testServer {
	t.Helper()
	logs := testlog.New(t) // every line checked when the test ends
	s, err := server.New(cfg, server.NewLogger(logs, cfg).Level(zerolog.DebugLevel), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	ts := &testServer{Server: s, base: "http://" + s.AdminAddr()}
	waitFor(t, 5*time.Second, "readyz 200", func() bool {
		resp, err := http.Get(ts.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return ts
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		<-tick.C
	}
}

// adminDo sends one admin request and returns the status and body.
func adminDo(t *testing.T, base, method, path, body, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(data)
}

// listBody is GET /v1/{list} decoded loosely, so that the field names are
// checked as sent.
type listBody struct {
	Entries []map[string]any `json:"entries"`
}

func getList(t *testing.T, base, list, token string) listBody {
	t.Helper()
	code, body := adminDo(t, base, http.MethodGet, "/v1/"+list, "", token)
	var lb listBody
	if code != http.StatusOK || json.Unmarshal([]byte(body), &lb) != nil || lb.Entries == nil {
		t.Fatalf("GET /v1/%s: %d %s", list, code, body)
	}
	return lb
}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }
