package flood_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/flood"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// TestFloodStaysInBudget: with detection.max_memory 32MiB, a flood of
// 30,000 calls, each from a fresh IP and a fresh token (60,000 identities,
// more than the states' share holds), keeps the process's peak RSS under
// Go's soft limit (max_memory + 25% = 40MiB) plus config.NonHeapOverhead
// (32MiB: the idle binary's RSS is about 22 MB, 17 MB of it its own text
// and data, which the Go runtime does not count), evicts the least
// recently seen states and counts it in /metrics, and keeps answering: a
// blocked attacker is still refused after the flood, a new client allowed.
func TestFloodStaysInBudget(t *testing.T) {
	const calls = 30000
	if testing.Short() {
		t.Skip("floods the built binary for several seconds")
	}
	if raceDetector {
		t.Skip("the client instrumented takes 30 s; the server is the built binary, not instrumented: runs without -race")
	}
	// A budget this small sizes the count-bounded structures with it (the
	// README's sizing section): the queue, the verdict cache, the records.
	v := start(t, `
detection:
  max_memory: 32MiB
  max_attacks: 1000
pipeline:
  queue_size: 4096
  join_window: 100ms
verdict_cache_size: 10000
retention:
  forensics_identities: 10000
`)
	if !strings.Contains(v.p.Stderr(), `"memory_limit":41943040,"source":"detection.max_memory"`) {
		t.Errorf("the soft memory limit from max_memory 32MiB (40MiB) is not logged:\n%s", v.p.Stderr())
	}
	m, err := flood.Metrics(v.admin)
	if err != nil {
		t.Fatal(err)
	}
	if got := m["go_gc_gomemlimit_bytes"]; got != 40<<20 {
		t.Errorf("go_gc_gomemlimit_bytes %.0f, want 40MiB", got)
	}
	ctx := context.Background()
	const attacker = "192.0.2.66"
	if code, body, err := v.adminClient.Raw(ctx, "POST", adminapi.Path("/v1/blocklist"),
		[]byte(`{"kind":"ip","value":"`+attacker+`","reason":"known attacker"}`)); err != nil || code != 201 {
		t.Fatalf("block %s: %d %s %v", attacker, code, body, err)
	}
	idle := v.sample(0)
	t.Logf("idle: %v", idle)
	limit := int64(40<<20) + config.NonHeapOverhead
	v.client.Repeat = 2 // identities that return are states; one-call ones only sightings
	for from := 0; from < calls; from += calls / 5 {
		if err := v.client.Drive(ctx, flood.ExtAuthz, from, from+calls/5, 32); err != nil {
			t.Fatal(err)
		}
		s := v.sample(from + calls/5)
		t.Logf("%v", s)
		if s.HWM > limit {
			t.Fatalf("peak RSS %d bytes past max_memory's soft limit + overhead (%d)", s.HWM, limit)
		}
	}
	// The pipeline catches up; then the states' estimate is within its share
	// and the ones that did not fit were evicted and counted.
	vigiltest.Eventually(t, 20*time.Second, func() error {
		m, err := flood.Metrics(v.admin)
		if err != nil {
			return err
		}
		if m["vigil_queue_depth"] > 0 {
			return fmt.Errorf("queue depth %.0f", m["vigil_queue_depth"])
		}
		if m["vigil_state_evictions_total"] == 0 {
			return fmt.Errorf("no eviction counted after %d fresh identities (tracked %.0f, sightings %.0f, estimated %.0f, pushed %.0f, dropped %.0f)", 2*calls,
				m["vigil_tracked_states"], m["vigil_state_sightings"], m["vigil_memory_estimated_bytes"], m["vigil_queue_pushed_total"], m["vigil_queue_dropped_total"])
		}
		return nil
	})
	states, share := metric(t, v.admin, "vigil_memory_estimated_bytes", "states"), metric(t, v.admin, "vigil_memory_budget_bytes", "states")
	if states <= 0 || states > share {
		t.Errorf("estimated bytes of the states %.0f, want within their share %.0f", states, share)
	}
	s := v.sample(calls)
	t.Logf("after: %v", s)
	if s.HWM > limit {
		t.Errorf("peak RSS %d bytes past max_memory's soft limit + overhead (%d)", s.HWM, limit)
	}
	if allowed, err := v.client.Call(ctx, flood.ExtAuthz, 1<<23, attacker, "attacker-token"); err != nil || allowed {
		t.Errorf("the blocked attacker after the flood: allowed %v, err %v", allowed, err)
	}
	if allowed, err := v.client.Call(ctx, flood.ExtProc, 1<<23+1, "198.51.100.7", "benign-token"); err != nil || !allowed {
		t.Errorf("a new client after the flood: allowed %v, err %v", allowed, err)
	}
}

// metric is the series of name with structure="structure" in /metrics.
func metric(t *testing.T, admin, name, structure string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, body, err := adminapi.NewClient(admin, "").Raw(ctx, "GET", adminapi.Path("/metrics"), nil)
	if err != nil || code != 200 {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	prefix := name + `{structure="` + structure + `"} `
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s{structure=%q} in /metrics", name, structure)
	return 0
}
