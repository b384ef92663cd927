package flood_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/test/flood"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// metricsConfig is a configured API in block mode, and calls that reach
// detection without waiting for parts of them from other filters.
const metricsConfig = `
apis:
  - name: shop
    base_path: /shop
pipeline:
  join_window: 50ms
`

// TestTrackedStatesMetrics: after two calls from each of 300 clients, each
// with its own IP and token, /metrics shows 300 tracked states of each of the two kinds
// (and none of the others), their estimated bytes within the states' share
// of detection.max_memory, and that share.
func TestTrackedStatesMetrics(t *testing.T) {
	const clients = 300
	v := vigiltest.Start(t, metricsConfig)
	c := flood.NewClient(v.Dial(), "api.example.com", "/shop/item/")
	c.Repeat = 2
	if err := c.Drive(context.Background(), flood.ExtAuthz, 0, clients, 8); err != nil {
		t.Fatal(err)
	}
	vigiltest.Eventually(t, 10*time.Second, func() error {
		for _, k := range []detect.Kind{detect.KindIP, detect.KindToken} {
			if got := v.Metric("vigil_tracked_states", `kind="`+k.String()+`"`); got != clients {
				return fmt.Errorf("vigil_tracked_states{kind=%q} %.0f, want %d", k, got, clients)
			}
		}
		return nil
	})
	for _, k := range []detect.Kind{detect.KindAPIKey, detect.KindCookie, detect.KindUsername} {
		if got := v.Metric("vigil_tracked_states", `kind="`+k.String()+`"`); got != 0 {
			t.Errorf("vigil_tracked_states{kind=%q} %.0f, want 0", k, got)
		}
	}
	share := float64(v.Config.Budget().States)
	if share != v.Metric("vigil_memory_budget_bytes", `structure="states"`) || v.Metric("vigil_memory_budget_bytes") != float64(v.Config.Detection.MaxMemory) {
		t.Errorf("vigil_memory_budget_bytes: states %.0f (want %.0f), total %.0f (want max_memory %d)",
			v.Metric("vigil_memory_budget_bytes", `structure="states"`), share, v.Metric("vigil_memory_budget_bytes"), v.Config.Detection.MaxMemory)
	}
	est := v.Metric("vigil_memory_estimated_bytes", `structure="states"`)
	if est <= 0 || est > share {
		t.Errorf("vigil_memory_estimated_bytes{structure=\"states\"} %.0f, want above 0 and within the share %.0f", est, share)
	}
	for _, s := range []string{"forensics", "inventory"} { // attacks: none raised
		if v.Metric("vigil_memory_estimated_bytes", `structure="`+s+`"`) <= 0 {
			t.Errorf("vigil_memory_estimated_bytes{structure=%q} is not above 0 after traffic", s)
		}
	}
	if got := v.Metric("vigil_state_evictions_total"); got != 0 {
		t.Errorf("vigil_state_evictions_total %.0f with room for every state", got)
	}
}

// TestStateEvictionsMetric: past what the engine may hold, the least
// recently seen states are evicted and vigil_state_evictions_total counts
// them; the tracked states stay at the bound.
func TestStateEvictionsMetric(t *testing.T) {
	const clients = 1500 // 3,000 states past detection.max_states 1000
	v := vigiltest.Start(t, metricsConfig+"detection:\n  max_states: 1000\n  workers: 1\n")
	c := flood.NewClient(v.Dial(), "api.example.com", "/shop/item/")
	c.Repeat = 2
	if err := c.Drive(context.Background(), flood.ExtAuthz, 0, clients, 8); err != nil {
		t.Fatal(err)
	}
	vigiltest.Eventually(t, 10*time.Second, func() error {
		states, ev := v.Metric("vigil_tracked_states"), v.Metric("vigil_state_evictions_total")
		if states+ev != 2*clients || states > 1000 {
			return fmt.Errorf("tracked %.0f + evicted %.0f, want %d with at most 1000 tracked", states, ev, 2*clients)
		}
		return nil
	})
}
