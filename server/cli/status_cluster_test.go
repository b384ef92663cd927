package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// clusterFront puts a proxy in front of a real server that answers
// GET /v1/status with the cluster view a test sets (the server/cluster
// layer's, faked), and passes every other call through.
func clusterFront(t *testing.T, ts *vigiltest.Server, status *atomic.Pointer[adminapi.ServerStatus]) string {
	t.Helper()
	target, err := url.Parse("http://" + ts.AdminAddr())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/status" {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(status.Load())
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestCLIStatusCluster: `vigil status` shows the cluster when the server
// has one (live replicas, which one, the trainer, Redis up or down, degraded
// since when, the outbox), in the table and in -o json, and nothing of it
// for a single node.
func TestCLIStatusCluster(t *testing.T) {
	t.Setenv("VIGIL_ADMIN_TOKEN", "")
	ts := vigiltest.Start(t, "")

	// A single node: the real server's /v1/status has no cluster.
	out := mustCLI(t, ts, "status")
	for _, absent := range []string{"Cluster:", "Redis:", "Outbox:", "Flush:", "Propagation:", "Sharing:"} {
		if strings.Contains(out, absent) {
			t.Errorf("status of a single node shows %q:\n%s", absent, out)
		}
	}
	if raw := mustCLI(t, ts, "status", "-o", "json"); strings.Contains(raw, `"cluster"`) {
		t.Errorf("status -o json of a single node has a cluster:\n%s", raw)
	}

	var status atomic.Pointer[adminapi.ServerStatus]
	status.Store(&adminapi.ServerStatus{Ready: true, Cluster: &adminapi.ClusterStatus{
		RedisUp: true, ReplicaID: "vigil-0", Replicas: 3, Trainer: true, Mode: adminapi.ClusterModeStandalone}})
	addr := clusterFront(t, ts, &status)
	cli := func(args ...string) string {
		t.Helper()
		out, errs, err := runMain(append(args, "--admin-addr", addr)...)
		if err != nil {
			t.Fatalf("vigil %q: %v\n%s%s", args, err, out, errs)
		}
		return out
	}
	out = cli("status")
	for _, want := range [][]string{
		{"Cluster:", "3", "live", "replicas;", "this", "one", "vigil-0", "(the", "trainer)"},
		{"Redis:", "up", "(standalone)"},
		{"Outbox:", "0", "list", "writes", "waiting", "for", "Redis"},
		{"Flush:", "none", "yet"},
		{"Propagation:", "no", "change", "of", "another", "replica", "yet"},
	} {
		if got := tableRow(out, want[0]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("row %q, want %q in\n%s", got, want, out)
		}
	}

	since := time.Now().Add(-90 * time.Second).UTC().Truncate(time.Second)
	status.Store(&adminapi.ServerStatus{Ready: true, Cluster: &adminapi.ClusterStatus{
		Degraded: true, DegradedSince: since, Outbox: 17, ReplicaID: "vigil-2", Replicas: 1,
		Mode: adminapi.ClusterModeCluster, LastFlush: since.Add(-time.Second), PropagationLagSeconds: 0.0031,
		SharingStopped: "redis holds another fingerprint key's check value"}})
	out = cli("status")
	if got := strings.Join(tableRow(out, "Redis:"), " "); !strings.HasPrefix(got, "Redis: DOWN (cluster), DEGRADED since "+since.Format(time.RFC3339)+" (1m3") ||
		!strings.HasSuffix(got, "ago): serving and detecting on local state") {
		t.Errorf("degraded Redis row %q in\n%s", got, out)
	}
	if got := strings.Join(tableRow(out, "Cluster:"), " "); got != "Cluster: 1 live replicas; this one vigil-2" {
		t.Errorf("cluster row %q", got)
	}
	if got := tableRow(out, "Outbox:"); len(got) < 2 || got[1] != "17" {
		t.Errorf("outbox row %q", got)
	}
	if got := strings.Join(tableRow(out, "Flush:"), " "); !strings.HasPrefix(got, "Flush: last at "+since.Add(-time.Second).Format(time.RFC3339)+" (1m3") {
		t.Errorf("flush row %q in\n%s", got, out)
	}
	if got := strings.Join(tableRow(out, "Propagation:"), " "); got != "Propagation: 3.1ms for the last change of another replica" {
		t.Errorf("propagation row %q in\n%s", got, out)
	}
	if got := strings.Join(tableRow(out, "Sharing:"), " "); got != "Sharing: STOPPED: redis holds another fingerprint key's check value" {
		t.Errorf("sharing row %q in\n%s", got, out)
	}
	if !strings.Contains(out, "ready") {
		t.Errorf("a degraded cluster is shown not ready:\n%s", out)
	}

	var r statusReport
	if err := json.Unmarshal([]byte(cli("status", "-o", "json")), &r); err != nil {
		t.Fatal(err)
	}
	if c := r.Cluster; !r.Ready || c == nil || !c.Degraded || c.RedisUp || !c.DegradedSince.Equal(since) || c.Outbox != 17 || c.ReplicaID != "vigil-2" || c.Replicas != 1 ||
		c.Mode != "cluster" || c.PropagationLagSeconds != 0.0031 || !c.LastFlush.Equal(since.Add(-time.Second)) {
		t.Errorf("status -o json: %+v %+v", r, r.Cluster)
	}
}
