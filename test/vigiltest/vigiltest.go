// Package vigiltest runs a real Vigil in a test: server.New and Run in the
// test's process, on loopback ports, with a YAML snippet on top of the
// embedded defaults, a temporary data directory and the process logger
// writing into a checked test/testlog buffer. It gives the server's
// addresses, an admin client (server/adminapi's), its log, and polling
// with a deadline. StartBinary runs the built binary (test/vigilbin's
// Path) as a process instead; the third-party tools a test drives are
// vigilbin.Tool's.
//
// The server package's own (white-box) tests cannot import it, since it
// imports server; they keep a small harness of their own.
package vigiltest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/server"
	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/testlog"
)

// ReadyWithin bounds the wait for /readyz after Run starts, and StopWithin
// the wait for Run to return after the test ends.
const (
	ReadyWithin = 10 * time.Second
	StopWithin  = 30 * time.Second
)

// Load is the configuration a test runs: the embedded defaults, then yaml
// (written to dir/vigil.yaml and read with config.Load, so problems name
// their lines), then, for each top-level key yaml does not set: grpc_addr
// and admin_addr 127.0.0.1:0, data_dir dir, log_level debug and shutdown
// with no drain delay and a 5 s timeout.
func Load(tb testing.TB, dir, yml string) *config.Config {
	tb.Helper()
	var keys map[string]any
	if err := yaml.Unmarshal([]byte(yml), &keys); err != nil {
		tb.Fatalf("test config: %v\n%s", err, yml)
	}
	path := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		tb.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		tb.Fatal(err)
	}
	set := func(key string, f func()) {
		if _, ok := keys[key]; !ok {
			f()
		}
	}
	set("grpc_addr", func() { cfg.GRPCAddr = "127.0.0.1:0" })
	set("admin_addr", func() { cfg.AdminAddr = "127.0.0.1:0" })
	set("data_dir", func() { cfg.DataDir = dir })
	set("log_level", func() { cfg.LogLevel = "debug" })
	set("shutdown", func() { cfg.Shutdown.DrainDelay, cfg.Shutdown.Timeout = 0, 5*time.Second })
	return cfg
}

// Config is Load of no YAML in a new temporary directory: the embedded
// defaults for a test that sets fields in Go.
func Config(tb testing.TB) *config.Config {
	tb.Helper()
	return Load(tb, tb.TempDir(), "")
}

// Options are what a test may change of how the server runs.
type Options struct {
	Dir    string          // the data directory (and vigil.yaml's); "" a new temporary one
	Server server.Options  // a test's clock or shutdown timers
	Logger *zerolog.Logger // the process logger; nil: server.NewLogger writing to Logs
}

// Server is a Vigil running in the background until the test ends.
type Server struct {
	*server.Server
	Config *config.Config
	Logs   *testlog.Buffer  // what it logged; every line is checked when the test ends
	Admin  *adminapi.Client // with the configured admin token

	tb     testing.TB
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// Start runs Vigil with yml on top of the embedded defaults (see Load).
func Start(tb testing.TB, yml string) *Server {
	tb.Helper()
	return StartWith(tb, yml, Options{})
}

// StartWith is Start with opts.
func StartWith(tb testing.TB, yml string, opts Options) *Server {
	tb.Helper()
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	return Run(tb, Load(tb, opts.Dir, yml), opts)
}

// Run runs New and Run on cfg and waits until /readyz answers 200. The
// server is stopped when the test ends (Stop); opts.Dir is not used.
func Run(tb testing.TB, cfg *config.Config, opts Options) *Server {
	tb.Helper()
	logs := testlog.New(tb) // its check runs after the server has stopped
	log := server.NewLogger(logs, cfg)
	if opts.Logger != nil {
		log = *opts.Logger
	}
	s, err := server.New(cfg, log, opts.Server)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	v := &Server{Server: s, Config: cfg, Logs: logs, Admin: adminapi.NewClient(s.AdminAddr(), cfg.AdminToken),
		tb: tb, cancel: cancel, done: make(chan error, 1)}
	go func() { v.done <- s.Run(ctx) }()
	tb.Cleanup(v.Stop)
	Eventually(tb, ReadyWithin, func() error {
		if err := v.Admin.Ready(context.Background()); err != nil {
			return fmt.Errorf("readyz: %w", err)
		}
		return nil
	})
	return v
}

// Stop cancels Run and waits for it to return; Run's error fails the test.
// It may be called more than once.
func (v *Server) Stop() {
	v.once.Do(func() {
		v.cancel()
		select {
		case err := <-v.done:
			if err != nil {
				v.tb.Errorf("vigil Run: %v", err)
			}
		case <-time.After(StopWithin):
			v.tb.Errorf("vigil did not stop within %s", StopWithin)
		}
	})
}

// URL is the admin listener's base URL.
func (v *Server) URL() string { return "http://" + v.AdminAddr() }

// Client is an admin client sending token ("" none).
func (v *Server) Client(token string) *adminapi.Client {
	return adminapi.NewClient(v.AdminAddr(), token)
}

// Dial is a gRPC client connection to the gRPC listener, closed when the
// test ends (before the server stops).
func (v *Server) Dial() *grpc.ClientConn {
	v.tb.Helper()
	conn, err := grpc.NewClient(v.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		v.tb.Fatal(err)
	}
	v.tb.Cleanup(func() { conn.Close() })
	return conn
}

// Do calls the admin API with the admin token and returns the status and
// the body as sent.
func (v *Server) Do(method, path, body string) (int, string) {
	v.tb.Helper()
	return Call(v.tb, v.Admin, method, path, body)
}

// MustDo is Do that fails the test unless the status is want.
func (v *Server) MustDo(method, path, body string, want int) string {
	v.tb.Helper()
	code, out := v.Do(method, path, body)
	if code != want {
		v.tb.Fatalf("%s %s: got %d %s, want %d", method, path, code, out, want)
	}
	return out
}

// Call sends one request through c (a body, when not empty, as JSON) and
// returns the status and the body as sent, an error answer's too. A
// request that gets no answer fails the test.
func Call(tb testing.TB, c *adminapi.Client, method, path, body string) (int, string) {
	tb.Helper()
	var send any
	if body != "" {
		send = []byte(body)
	}
	code, out, err := c.Raw(context.Background(), method, adminapi.Path(path), send)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	return code, string(out)
}

// Metric is the sum of the series of a metric in /metrics whose labels
// contain all of the given name="value" pairs.
func (v *Server) Metric(name string, labels ...string) float64 {
	v.tb.Helper()
	_, text := v.Do("GET", "/metrics", "")
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

// Eventually calls f every 10 ms until it returns nil, and fails the test
// with f's last error when within has passed.
func Eventually(tb testing.TB, within time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not true within %s: %v", within, err)
		}
		<-tick.C
	}
}

// Until is Eventually for a condition: what names it in the failure.
func Until(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	Eventually(tb, within, func() error {
		if !cond() {
			return errors.New(what)
		}
		return nil
	})
}

// Clock is a settable clock for server.Options.Now.
type Clock struct{ ns atomic.Int64 }

// NewClock is a Clock at t.
func NewClock(t time.Time) *Clock {
	c := &Clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *Clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
