package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/server/adminapi"
)

// compact is an answer without its indentation.
func compact(t *testing.T, body string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(body)); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, body)
	}
	return b.String()
}

// fakeCluster is a status source whose answer a test sets.
type fakeCluster struct {
	mu sync.Mutex
	s  *adminapi.ClusterStatus
}

func (f *fakeCluster) status() *adminapi.ClusterStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

func (f *fakeCluster) set(s *adminapi.ClusterStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.s = s
}

// TestStatusWithoutRedis: without a cluster source GET /v1/status answers
// readiness and no cluster object at all; a source answering nil (Redis
// configured but the cluster layer not started) is the same.
func TestStatusWithoutRedis(t *testing.T) {
	a, _, srv := newBareAdmin(t)
	code, body := get(t, srv.URL, "/v1/status")
	if code != http.StatusOK || compact(t, body) != `{"ready":true}` {
		t.Fatalf("GET /v1/status = %d %s", code, body)
	}
	a.Ready.Store(false)
	if code, body := get(t, srv.URL, "/v1/status"); code != http.StatusOK || compact(t, body) != `{"ready":false}` {
		t.Fatalf("GET /v1/status while not ready = %d %s", code, body)
	}
	a.ClusterStatus = func() *adminapi.ClusterStatus { return nil }
	srv2 := httptest.NewServer(a.recoverPanics(limitBody(a.mux())))
	t.Cleanup(srv2.Close)
	if code, body := get(t, srv2.URL, "/v1/status"); code != http.StatusOK || compact(t, body) != `{"ready":false}` {
		t.Fatalf("GET /v1/status with a nil cluster answer = %d %s", code, body)
	}
}

// TestStatusCluster: with a cluster source the answer carries its view,
// degraded_since in UTC while degraded and absent otherwise, last_flush
// and propagation_lag_seconds once known; a degraded cluster leaves /readyz
// ready; the source's value is not changed by the handler.
func TestStatusCluster(t *testing.T) {
	a, _, _ := newBareAdmin(t)
	fake := &fakeCluster{}
	a.ClusterStatus = fake.status
	srv := httptest.NewServer(a.recoverPanics(limitBody(a.mux())))
	t.Cleanup(srv.Close)

	fake.set(&adminapi.ClusterStatus{RedisUp: true, ReplicaID: "vigil-0", Replicas: 3, Trainer: true,
		Mode: adminapi.ClusterModeStandalone, DegradedSince: time.Unix(1, 0)}) // a stale time while not degraded is not shown
	code, body := get(t, srv.URL, "/v1/status")
	want := `{"cluster":{"degraded":false,"mode":"standalone","outbox":0,"redis_up":true,"replica_id":"vigil-0","replicas":3,"trainer":true},"ready":true}`
	if code != http.StatusOK || compact(t, body) != want {
		t.Fatalf("GET /v1/status = %d %s, want %s", code, body, want)
	}

	since := time.Date(2026, 12, 7, 9, 30, 0, 0, time.FixedZone("CET", 3600))
	flushed := since.Add(-time.Minute)
	src := &adminapi.ClusterStatus{Degraded: true, DegradedSince: since, Outbox: 42, ReplicaID: "vigil-1", Replicas: 1,
		Mode: adminapi.ClusterModeCluster, LastFlush: flushed, PropagationLagSeconds: 0.0042, SharingStopped: "fingerprint mismatch"}
	fake.set(src)
	_, body = get(t, srv.URL, "/v1/status")
	want = `{"cluster":{"degraded":true,"degraded_since":"2026-12-07T08:30:00Z","last_flush":"2026-12-07T08:29:00Z","mode":"cluster","outbox":42,"propagation_lag_seconds":0.0042,"redis_up":false,"replica_id":"vigil-1","replicas":1,"sharing_stopped":"fingerprint mismatch","trainer":false},"ready":true}`
	if compact(t, body) != want {
		t.Fatalf("degraded: %s, want %s", body, want)
	}
	var st adminapi.ServerStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Cluster == nil || !st.Cluster.DegradedSince.Equal(since) {
		t.Fatalf("the answer does not decode into adminapi.ServerStatus: %+v, %v", st, err)
	}
	if src.DegradedSince.Location() != since.Location() || src.LastFlush.Location() != since.Location() {
		t.Errorf("the handler changed the source's status: %+v", src)
	}
	if code, body := get(t, srv.URL, "/readyz"); code != http.StatusOK || !strings.Contains(body, `"ready"`) {
		t.Errorf("/readyz with Redis degraded = %d %s, want ready", code, body)
	}
}

// TestStatusNeedsToken: GET /v1/status is behind the admin API's tokens
// like every /v1 route; the read-only token opens it.
func TestStatusNeedsToken(t *testing.T) {
	a, _, _ := newBareAdmin(t)
	a.ClusterStatus = func() *adminapi.ClusterStatus { return &adminapi.ClusterStatus{ReplicaID: "secret-free"} }
	a.Token, a.ReadToken = []byte("admin-token-0123456789"), []byte("read-token-0123456789")
	srv := httptest.NewServer(a.recoverPanics(limitBody(a.mux())))
	t.Cleanup(srv.Close)
	if code, _ := get(t, srv.URL, "/v1/status"); code != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", code)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/v1/status", nil)
	req.Header.Set("Authorization", "Bearer read-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("with the read-only token: %d, want 200", resp.StatusCode)
	}
}
