// Package conformance drives Vigil with grpc-go's own xDS ext_proc client
// filter (gRFC A93): an implementation of Envoy's ext_proc protocol written
// by a third party, configured by a go-control-plane xDS server. It checks
// stream order, one reply per message, ImmediateResponse, observability
// mode and the GRPC body mode against a client Vigil's authors did not
// write.
package conformance

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vigil-project/vigil/test/vigiltest"
	"github.com/vigil-project/vigil/test/xdsharness"
)

func TestMain(m *testing.M) { xdsharness.Main(m) }

// startVigil runs a real Vigil on loopback (test/vigiltest). The calls go
// to an API discovered from traffic, which detects by default: block, so
// that a blocked client is refused.
func startVigil(t *testing.T) *vigiltest.Server {
	t.Helper()
	return vigiltest.Start(t, "trusted_hops: 1\ndefaults: {mode: block}\n")
}

func call(ctx context.Context, h *xdsharness.Harness, ip string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return h.Call(ctx, metadata.Pairs("x-forwarded-for", ip, "authorization", "Bearer t-"+ip))
}

func TestGrpcGoExtProcClientAllowsAndBlocks(t *testing.T) {
	v := startVigil(t)
	grpcAddr := v.GRPCAddr()
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
	v.MustDo("POST", "/v1/blocklist", `{"kind":"ip","value":"198.51.100.66","ttl":"10m","reason":"manual"}`, http.StatusCreated)
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
	v := startVigil(t)
	v.MustDo("POST", "/v1/blocklist", `{"kind":"ip","value":"198.51.100.77"}`, http.StatusCreated)
	h := xdsharness.Start(context.Background(), t, xdsharness.Options{
		ExtProcAddr: v.GRPCAddr(), ObservabilityMode: true, DeferredCloseTimeout: 100 * time.Millisecond,
	})
	// In observability mode Vigil never answers, so even a blocked client
	// passes: the filter only watches.
	if err := call(context.Background(), h, "198.51.100.77"); err != nil {
		t.Fatalf("observability mode call: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
