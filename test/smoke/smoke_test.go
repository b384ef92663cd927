// Package smoke runs the built vigil binary the way an operator does and
// talks to it with generic gRPC tools: grpcurl (through server reflection)
// and grpc-health-probe. .ci/run installs both; elsewhere the tests that
// need them skip unless CI is set.
package smoke

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-project/vigil/test/vigilbin"
	"github.com/vigil-project/vigil/test/vigiltest"
)

func TestMain(m *testing.M) { vigilbin.Main(m) }

// servingRE is `vigil serve`'s "vigil serving" log line, with its addresses.
var servingRE = regexp.MustCompile(`"grpc_addr":"([^"]+)","admin_addr":"([^"]+)".*"message":"vigil serving"`)

// process is a running `vigil serve`.
type process struct {
	*vigiltest.Process
	grpc, admin string
}

// serve starts the binary with args and waits for its "vigil serving" line.
func serve(t *testing.T, args ...string) *process {
	t.Helper()
	p := vigiltest.Binary{Args: append([]string{"serve"}, args...), Ready: servingRE, ReadyWithin: 30 * time.Second}.Start(t)
	return &process{Process: p, grpc: p.Ready[1], admin: p.Ready[2]}
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

func TestBinaryStartsOnEmbeddedDefaultsAndStopsGracefully(t *testing.T) {
	p := serve(t, "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--drain-delay", "300ms")
	probe := vigilbin.Tool(t, "grpc-health-probe", "go install github.com/grpc-ecosystem/grpc-health-probe@v0.4.62")
	if out, err := run(t, probe, "-addr", p.grpc); err != nil || !strings.Contains(out, "SERVING") {
		t.Fatalf("grpc-health-probe: %v %s", err, out)
	}
	for _, svc := range []string{"envoy.service.ext_proc.v3.ExternalProcessor", "envoy.service.auth.v3.Authorization"} {
		if out, err := run(t, probe, "-addr", p.grpc, "-service", svc); err != nil {
			t.Fatalf("grpc-health-probe -service %s: %v %s", svc, err, out)
		}
	}
	// SIGTERM: NOT_SERVING during the drain delay, then a clean exit.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	sawNotServing := false
	for time.Now().Before(deadline) && !sawNotServing {
		out, _ := run(t, probe, "-addr", p.grpc, "-connect-timeout", "200ms", "-rpc-timeout", "200ms")
		sawNotServing = strings.Contains(out, "NOT_SERVING")
	}
	if !sawNotServing {
		t.Errorf("health never reported NOT_SERVING while draining")
	}
	if err := p.Wait(20 * time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.Stderr())
	}
	if logs := p.Stderr(); !strings.Contains(logs, "draining") || !strings.Contains(logs, "vigil stopped") {
		t.Fatalf("shutdown log:\n%s", logs)
	}
}

func TestGrpcurlDrivesBothServices(t *testing.T) {
	grpcurl := vigilbin.Tool(t, "grpcurl", "go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4")
	// shop.example.com is discovered from traffic; discovered APIs detect
	// by default, so the blocked client is refused only with block as the
	// defaults' mode.
	cfg := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(cfg, []byte("defaults: {mode: block}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := serve(t, "--config", cfg, "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--drain-delay", "0s")
	out, err := run(t, grpcurl, "-plaintext", p.grpc, "list")
	if err != nil {
		t.Fatalf("grpcurl list: %v %s", err, out)
	}
	for _, svc := range []string{"envoy.service.ext_proc.v3.ExternalProcessor", "envoy.service.auth.v3.Authorization", "grpc.health.v1.Health"} {
		if !strings.Contains(out, svc) {
			t.Fatalf("grpcurl list lacks %s:\n%s", svc, out)
		}
	}
	check := `{"attributes":{"source":{"address":{"socketAddress":{"address":"203.0.113.50","portValue":5555}}},` +
		`"request":{"http":{"method":"GET","path":"/shop/items/1","host":"shop.example.com","headers":{"user-agent":"grpcurl"}}}}}`
	out, err = run(t, grpcurl, "-plaintext", "-d", check, p.grpc, "envoy.service.auth.v3.Authorization/Check")
	if err != nil || !strings.Contains(out, "okResponse") || !strings.Contains(out, "x-vigil-decision-id") {
		t.Fatalf("allowed Check: %v\n%s", err, out)
	}
	resp, err := http.Post("http://"+p.admin+"/v1/blocklist", "application/json", strings.NewReader(`{"kind":"ip","value":"203.0.113.50","ttl":"10m","reason":"manual"}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("blocklist: %v %v", err, resp)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	out, err = run(t, grpcurl, "-plaintext", "-d", check, p.grpc, "envoy.service.auth.v3.Authorization/Check")
	if err != nil || !strings.Contains(out, "PERMISSION_DENIED") && !strings.Contains(out, `"code": 7`) || !strings.Contains(out, "deniedResponse") {
		t.Fatalf("denied Check: %v\n%s", err, out)
	}
	// A bidirectional ext_proc stream: headers then a body; the blocked
	// source gets an ImmediateResponse.
	b64 := func(s string) string {
		return strings.TrimSpace(string(mustB64(s)))
	}
	headers := fmt.Sprintf(`{"requestHeaders":{"headers":{"headers":[{"key":":method","rawValue":"%s"},{"key":":path","rawValue":"%s"},{"key":":authority","rawValue":"%s"}]}},`+
		`"attributes":{"envoy.filters.http.ext_proc":{"source.address":"203.0.113.50:5555"}}}`, b64("GET"), b64("/shop/items/1"), b64("shop.example.com"))
	out, err = run(t, grpcurl, "-plaintext", "-d", headers, p.grpc, "envoy.service.ext_proc.v3.ExternalProcessor/Process")
	if err != nil || !strings.Contains(out, "immediateResponse") || !strings.Contains(out, "Forbidden") {
		t.Fatalf("ext_proc Process: %v\n%s", err, out)
	}
	allowed := strings.ReplaceAll(headers, "203.0.113.50", "203.0.113.51")
	out, err = run(t, grpcurl, "-plaintext", "-d", allowed, p.grpc, "envoy.service.ext_proc.v3.ExternalProcessor/Process")
	if err != nil || !strings.Contains(out, "requestHeaders") || strings.Contains(out, "immediateResponse") {
		t.Fatalf("ext_proc Process (allowed): %v\n%s", err, out)
	}
}

func TestBinaryRejectsABadConfigWithEveryProblem(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("grpc_addr: nonsense\napis:\n  - name: a\n    base_path: nope\n    mode: blok\n    colour: red\n"), 0o600)
	out, err := run(t, vigilbin.Path(t), "serve", "--config", bad)
	if err == nil {
		t.Fatalf("a bad config was accepted:\n%s", out)
	}
	if !strings.Contains(out, "colour") || !strings.Contains(out, "line 6") {
		t.Fatalf("the unknown key and its line are not named:\n%s", out)
	}
	os.WriteFile(bad, []byte("grpc_addr: nonsense\napis:\n  - name: a\n    base_path: nope\n    mode: blok\n"), 0o600)
	out, _ = run(t, vigilbin.Path(t), "serve", "--config", bad)
	for _, want := range []string{"grpc_addr", "base_path", "mode"} {
		if !strings.Contains(out, want) {
			t.Fatalf("problem %q not reported:\n%s", want, out)
		}
	}
}
