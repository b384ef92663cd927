package cli

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/test/testlog"
	"github.com/vigil-project/vigil/test/testpki"
	"github.com/vigil-project/vigil/test/vigiltest"
	"github.com/vigil-project/vigil/test/vigiltest/testfiles"
)

// TestServeCommand runs `vigil serve` through Main: every flag overrides the
// file, and the logs go to stderr.
func TestServeCommand(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	// Alone, the file cannot serve: its gRPC port is taken, its admin
	// address is off loopback without a token, its drain delay is an hour.
	path := testfiles.Write(t, "vigil.yaml", "grpc_addr: "+busy.Addr().String()+"\nadmin_addr: 0.0.0.0:9001\nlog_level: error\n"+
		"data_dir: "+filepath.Join(t.TempDir(), "file-data")+"\nshutdown:\n  drain_delay: 1h\n")
	dataDir := filepath.Join(t.TempDir(), "flag-data")
	v := serve(t, "--config", path, "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--data-dir", dataDir, "--log-level", "info", "--drain-delay", "0s")
	line := v.line
	if addr, _ := line["grpc_addr"].(string); addr == busy.Addr().String() || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("grpc_addr = %q, want the flag's", addr)
	}
	addr, _ := line["admin_addr"].(string)
	if code, body := vigiltest.Call(t, adminapi.NewClient(addr, ""), http.MethodGet, "/readyz", ""); code != http.StatusOK {
		t.Errorf("readyz: %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "fingerprint.key")); err != nil {
		t.Errorf("no key in the --data-dir: %v", err)
	}
	v.stop() // within 10 s: the flag's drain delay, not the file's hour
}

// serving is `vigil serve` run through Main in the test.
type serving struct {
	line map[string]any // the "vigil serving" log line
	logs *testlog.Buffer
	stop func() // cancels it and waits until Main returns, without error
}

// serve runs `vigil serve args...` through Main and waits until it serves.
func serve(t *testing.T, args ...string) *serving {
	t.Helper()
	logs := testlog.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- Main(ctx, append([]string{"serve"}, args...), io.Discard, logs) }()
	return &serving{line: waitForLogLine(t, logs, "vigil serving", done), logs: logs, stop: func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("serve: %v\n%s", err, logs.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("serve did not return within 10s after cancel")
		}
	}}
}

// waitForLogLine waits for a JSON log line holding msg and decodes it.
func waitForLogLine(t *testing.T, logs *testlog.Buffer, msg string, done <-chan error) map[string]any {
	t.Helper()
	var line map[string]any
	vigiltest.Until(t, 5*time.Second, "the log line "+msg, func() bool {
		select {
		case err := <-done:
			t.Fatalf("serve returned early: %v\n%s", err, logs.String())
		default:
		}
		for l := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(l, msg) {
				return json.Unmarshal([]byte(l), &line) == nil
			}
		}
		return false
	})
	return line
}

// TestServeOnEmbeddedDefaults runs `vigil serve` with no config file.
func TestServeOnEmbeddedDefaults(t *testing.T) {
	v := serve(t, "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--drain-delay", "0s")
	line := v.line
	// Embedded defaults: JSON logs at info, tagged with the service.
	if line["level"] != "info" || line["service"] != "vigil" || line["apis"] != float64(0) {
		t.Errorf("serving line = %v", line)
	}
	addr, _ := line["admin_addr"].(string)
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz = %d", resp.StatusCode)
	}
	v.stop()
}

// TestServeRefusesOpenGRPC runs `vigil serve` and `vigil config check` through
// Main: off loopback without a client CA both fail naming
// grpc_tls.client_ca_file; with grpc_insecure: true serve starts and warns;
// with mTLS it starts without the warning.
func TestServeRefusesOpenGRPC(t *testing.T) {
	common := []string{"--admin-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--drain-delay", "0s"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Main(ctx, append([]string{"serve", "--grpc-addr", "0.0.0.0:0"}, common...), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "grpc_tls.client_ca_file") {
		t.Fatalf("serve on 0.0.0.0 without a client CA: %v, want an error naming grpc_tls.client_ca_file", err)
	}
	open := testfiles.Write(t, "open.yaml", "grpc_addr: 0.0.0.0:9000\n")
	if err := Main(ctx, []string{"config", "check", open}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "grpc_tls.client_ca_file") {
		t.Fatalf("config check: %v, want an error naming grpc_tls.client_ca_file", err)
	}

	insecure := testfiles.Write(t, "insecure.yaml", "grpc_insecure: true\n")
	v := serve(t, append([]string{"--config", insecure, "--grpc-addr", "0.0.0.0:0"}, common...)...)
	warn := waitForLogLine(t, v.logs, "without a client certificate", nil)
	if warn["level"] != "warn" || !strings.Contains(warn["message"].(string), "grpc_tls.client_ca_file") {
		t.Errorf("warning line = %v", warn)
	}
	v.stop()

	pki := testpki.New(t)
	mtls := testfiles.Write(t, "mtls.yaml", "grpc_tls:\n  cert_file: "+pki.ServerCert+"\n  key_file: "+pki.ServerKey+"\n  client_ca_file: "+pki.CAFile+"\n")
	v = serve(t, "--config", mtls, "--grpc-addr", "0.0.0.0:0", "--admin-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--drain-delay", "0s")
	if strings.Contains(v.logs.String(), "without a client certificate") {
		t.Errorf("warned with mTLS on:\n%s", v.logs.String())
	}
	v.stop()
}
