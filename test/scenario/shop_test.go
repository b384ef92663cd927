package scenario

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server/demo/shop"
)

// endpointOf finds the model's endpoint of a call, or nil.
func endpointOf(method, path string) *shop.Endpoint {
	p, _, _ := strings.Cut(strings.TrimPrefix(path, Base), "?")
	for _, e := range shop.Endpoints {
		if e.Method != method {
			continue
		}
		want, id, hasID := strings.Cut(e.Path, "{id}")
		if !hasID && p == e.Path {
			return e
		}
		if rest, ok := strings.CutPrefix(p, want); hasID && ok && id == "" {
			if _, err := strconv.Atoi(rest); err == nil {
				return e
			}
		}
	}
	return nil
}

// TestBenignTrafficIsTheDemoShop checks the scenario against the one model
// of the shop (server/demo/shop), the one the demo's handler serves: every
// benign call is an endpoint of it answered with one of its statuses (or
// the back end's occasional 5xx, or 404 on a mistyped path), and a good
// call's sizes lie in the model's ranges.
func TestBenignTrafficIsTheDemoShop(t *testing.T) {
	s := fastScenario()
	checkShop(t, s, func(r *detect.Record) bool {
		return r.Time.Before(s.TrainingEnd) // the training phase is benign only (TestLabels)
	})
}

// checkShop checks the records benign says are benign against the shop's
// model.
func checkShop(t *testing.T, s *Scenario, benign func(*detect.Record) bool) {
	t.Helper()
	seen := map[*shop.Endpoint]int{}
	for i := range s.Records {
		r := &s.Records[i]
		if !benign(r) {
			continue
		}
		e := endpointOf(r.Method, r.Path)
		switch {
		case r.Status >= 500:
			continue
		case e == nil:
			if r.Status != 404 || !strings.HasPrefix(r.Path, Base+"/") && !slices.Contains(crawlerRootPaths, r.Path) {
				t.Fatalf("record %d: %s %s → %d is no endpoint of the shop", i, r.Method, r.Path, r.Status)
			}
			continue
		case r.Status != e.Status:
			if !slices.Contains(e.Errors, r.Status) {
				t.Fatalf("record %d: %s %s → %d, the model answers %d or %v", i, r.Method, r.Path, r.Status, e.Status, e.Errors)
			}
			continue
		}
		seen[e]++
		lo, hi := e.RespBytes[0], e.RespBytes[1]
		if e == shop.Export {
			limit, _ := strconv.Atoi(strings.SplitN(strings.SplitN(r.Path, "limit=", 2)[1], "&", 2)[0])
			lo, hi = int64(limit)*lo+shop.ExportEnvelope, int64(limit)*hi+shop.ExportEnvelope
		}
		if r.ResponseBytes < lo || r.ResponseBytes > hi {
			t.Fatalf("record %d: %s %s answered %d bytes, the model says %d–%d", i, r.Method, r.Path, r.ResponseBytes, lo, hi)
		}
		if e.ReqBytes[1] > 0 && (r.RequestBytes < e.ReqBytes[0] || r.RequestBytes > e.ReqBytes[1]) {
			t.Fatalf("record %d: %s %s sent %d bytes, the model says %v", i, r.Method, r.Path, r.RequestBytes, e.ReqBytes)
		}
	}
	for _, e := range shop.Endpoints {
		if seen[e] == 0 {
			t.Errorf("no good call of %s among the benign ones", e.Pattern())
		}
	}
}
