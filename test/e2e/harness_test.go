package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/vigil-project/vigil/server"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// vigil is a real Vigil server on loopback (test/vigiltest), with real
// gRPC clients.
type vigil struct {
	*vigiltest.Server
	t       *testing.T
	extproc extprocv3.ExternalProcessorClient
	authz   authv3.AuthorizationClient
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
	cfgText := extra
	// Most tests refuse calls to APIs discovered from traffic, which only
	// detect by default: they run with defaults.mode block.
	if !strings.Contains(extra, "defaults:") {
		cfgText += "defaults:\n  mode: block\n"
	}
	if !strings.Contains(extra, "pipeline:") {
		cfgText += "pipeline:\n  join_window: 100ms\n"
	}
	s := vigiltest.StartWith(t, cfgText, vigiltest.Options{Dir: dir, Server: opts})
	conn := s.Dial()
	return &vigil{Server: s, t: t, extproc: extprocv3.NewExternalProcessorClient(conn), authz: authv3.NewAuthorizationClient(conn)}
}

func decodeJSON(t *testing.T, s string, into any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), into); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
}
