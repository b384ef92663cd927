package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vigil-project/vigil/server"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/testlog"
)

// vigil is a real Vigil server on loopback, with real gRPC clients and its
// log captured.
type vigil struct {
	t       *testing.T
	grpc    string
	admin   string
	token   string
	extproc extprocv3.ExternalProcessorClient
	authz   authv3.AuthorizationClient
	conn    *grpc.ClientConn
	logs    *testlog.Buffer
	stop    func()
}

// start runs Vigil with the embedded defaults plus extra YAML.
func start(t *testing.T, extra string) *vigil {
	t.Helper()
	return startIn(t, t.TempDir(), extra)
}

// startIn runs Vigil on the data directory dir.
func startIn(t *testing.T, dir, extra string) *vigil {
	t.Helper()
	return startWith(t, dir, extra, server.Options{})
}

// startWith runs Vigil on the data directory dir with opts (a test's clock).
func startWith(t *testing.T, dir, extra string, opts server.Options) *vigil {
	t.Helper()
	cfgText := "grpc_addr: 127.0.0.1:0\nadmin_addr: 127.0.0.1:0\nlog_level: debug\ndata_dir: " + dir + "\n" +
		"shutdown:\n  drain_delay: 0s\n  timeout: 2s\n" + extra
	// Most tests refuse calls to APIs discovered from traffic, which only
	// detect by default: they run with defaults.mode block.
	if !strings.Contains(extra, "defaults:") {
		cfgText += "defaults:\n  mode: block\n"
	}
	if !strings.Contains(extra, "pipeline:") {
		cfgText += "pipeline:\n  join_window: 100ms\n"
	}
	path := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// The process logger, as vigil serve builds it; every line it writes
	// is checked when the test ends.
	logs := testlog.New(t)
	s, err := server.New(cfg, server.NewLogger(logs, cfg), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	var stop func()
	v := &vigil{
		t: t, grpc: s.GRPCAddr(), admin: s.AdminAddr(), token: cfg.AdminToken, conn: conn, logs: logs,
		extproc: extprocv3.NewExternalProcessorClient(conn), authz: authv3.NewAuthorizationClient(conn),
	}
	var once sync.Once
	v.stop = func() { once.Do(stop) }
	stop = func() {
		conn.Close()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("vigil Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("vigil did not stop within 10s")
		}
	}
	t.Cleanup(v.stop)
	v.waitReady()
	return v
}

func (v *vigil) waitReady() {
	v.t.Helper()
	eventually(v.t, 5*time.Second, func() error {
		code, _ := v.do("GET", "/readyz", "")
		if code != 200 {
			return fmt.Errorf("readyz %d", code)
		}
		return nil
	})
}

// do calls the admin API and returns the status and body.
func (v *vigil) do(method, path, body string) (int, string) {
	v.t.Helper()
	req, err := http.NewRequest(method, "http://"+v.admin+path, strings.NewReader(body))
	if err != nil {
		v.t.Fatal(err)
	}
	if v.token != "" {
		req.Header.Set("Authorization", "Bearer "+v.token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// mustDo calls the admin API and fails unless it answers want.
func (v *vigil) mustDo(method, path, body string, want int) string {
	v.t.Helper()
	code, out := v.do(method, path, body)
	if code != want {
		v.t.Fatalf("%s %s: got %d %s, want %d", method, path, code, out, want)
	}
	return out
}

// metric returns the sum of the series of a metric whose labels contain all
// of the given name="value" pairs.
func (v *vigil) metric(name string, labels ...string) float64 {
	v.t.Helper()
	_, text := v.do("GET", "/metrics", "")
	sum := 0.0
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		if rest != "" && rest[0] != '{' && rest[0] != ' ' {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		var f float64
		fields := strings.Fields(line)
		fmt.Sscan(fields[len(fields)-1], &f)
		sum += f
	}
	return sum
}

// fakeClock is a settable clock for server.Options.Now.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// eventually polls f until it returns nil or the deadline passes.
func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true within %s: %v", d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func decodeJSON(t *testing.T, s string, into any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), into); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
}
