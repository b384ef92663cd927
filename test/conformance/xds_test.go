// Package conformance drives Vigil with grpc-go's own xDS ext_proc client
// filter (gRFC A93): an implementation of Envoy's ext_proc protocol written
// by a third party, configured by a go-control-plane xDS server. It checks
// stream order, one reply per message, ImmediateResponse, observability
// mode and the GRPC body mode against a client Vigil's authors did not
// write.
package conformance

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vigil-project/vigil/server"
	"github.com/vigil-project/vigil/test/xdsharness"
)

func TestMain(m *testing.M) { xdsharness.Main(m) }

// startVigil runs a real Vigil on loopback and returns its gRPC and admin
// addresses.
func startVigil(t *testing.T) (grpcAddr, adminAddr string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "vigil.yaml")
	cfg := "grpc_addr: 127.0.0.1:0\nadmin_addr: 127.0.0.1:0\ntrusted_hops: 1\ndata_dir: " + dir +
		"\nshutdown: {drain_delay: 0s, timeout: 2s}\n" +
		// The calls go to an API discovered from traffic, which detects by
		// default: block, so that a blocked client is refused.
		"defaults: {mode: block}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := server.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(c, zerolog.Nop(), server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s.GRPCAddr(), s.AdminAddr()
}

func post(t *testing.T, url, body string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
}

func call(ctx context.Context, h *xdsharness.Harness, ip string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return h.Call(ctx, metadata.Pairs("x-forwarded-for", ip, "authorization", "Bearer t-"+ip))
}

func TestGrpcGoExtProcClientAllowsAndBlocks(t *testing.T) {
	grpcAddr, admin := startVigil(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		mode *xdsharness.ProcessingMode
	}{
		{"headers only", nil},
		{"every phase, GRPC bodies", ptr(xdsharness.AllProcessingMode())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := xdsharness.Start(ctx, t, xdsharness.Options{ExtProcAddr: grpcAddr, ProcessingMode: tc.mode})
			if err := call(ctx, h, "198.51.100.1"); err != nil {
				t.Fatalf("allowed call failed: %v", err)
			}
			if n := len(h.BackendCalls()); n != 1 {
				t.Fatalf("backend saw %d calls, want 1", n)
			}
			if nacks := h.NACKs(); len(nacks) > 0 {
				t.Fatalf("xDS NACKs: %v", nacks)
			}
		})
	}
	post(t, "http://"+admin+"/v1/blocklist", `{"kind":"ip","value":"198.51.100.66","ttl":"10m","reason":"manual"}`)
	for _, tc := range []struct {
		name string
		mode *xdsharness.ProcessingMode
	}{
		{"headers only", nil},
		{"every phase, GRPC bodies", ptr(xdsharness.AllProcessingMode())},
	} {
		t.Run("blocked "+tc.name, func(t *testing.T) {
			h := xdsharness.Start(ctx, t, xdsharness.Options{ExtProcAddr: grpcAddr, ProcessingMode: tc.mode})
			err := call(ctx, h, "198.51.100.66")
			if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "vigil_blocklist") {
				t.Fatalf("want PermissionDenied from the ImmediateResponse, got %v", err)
			}
			if n := len(h.BackendCalls()); n != 0 {
				t.Fatalf("backend saw %d calls of a blocked client", n)
			}
			// The next client on the same channel is unaffected.
			if err := call(ctx, h, "198.51.100.2"); err != nil {
				t.Fatalf("other client: %v", err)
			}
		})
	}
}

func TestGrpcGoExtProcClientObservabilityMode(t *testing.T) {
	grpcAddr, admin := startVigil(t)
	post(t, "http://"+admin+"/v1/blocklist", `{"kind":"ip","value":"198.51.100.77"}`)
	h := xdsharness.Start(context.Background(), t, xdsharness.Options{
		ExtProcAddr: grpcAddr, ObservabilityMode: true, DeferredCloseTimeout: 100 * time.Millisecond,
	})
	// In observability mode Vigil never answers, so even a blocked client
	// passes: the filter only watches.
	if err := call(context.Background(), h, "198.51.100.77"); err != nil {
		t.Fatalf("observability mode call: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
