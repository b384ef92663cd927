package server

import (
	"time"

	"github.com/vigil-project/vigil/detect"
)

// warnEvery bounds how often each warning below is logged.
const warnEvery = 10 * time.Second

// warnings are the counters of lost work that the pipeline goroutine logs
// as they grow, with the count since the last line: the request path only
// counts, and a flood gives one line per warnEvery, not one per call.
func (s *Server) warnings() []detect.Watch {
	return []detect.Watch{
		{Count: s.queue.Dropped, Every: warnEvery, Warn: func(n, total uint64) {
			s.log.Warn().Uint64("dropped", n).Uint64("dropped_total", total).Int("queue_size", s.queue.Cap()).
				Msg("transaction queue full: records dropped, detection did not see these calls (pipeline.queue_size)")
		}},
		{Count: s.inventory.OverflowEndpoints, Every: warnEvery, Warn: func(n, total uint64) {
			s.log.Warn().Uint64("calls", n).Uint64("calls_total", total).Str("api", s.inventory.LastOverflowAPI()).
				Int("max_endpoints_per_api", s.cfg.Discovery.MaxEndpointsPerAPI).
				Msg("API inventory full: new endpoints not recorded (discovery.max_endpoints_per_api)")
		}},
		{Count: s.inventory.OverflowAPIs, Every: warnEvery, Warn: func(n, total uint64) {
			s.log.Warn().Uint64("calls", n).Uint64("calls_total", total).Int("max_apis", s.cfg.Discovery.MaxAPIs).
				Msg("API inventory full: calls to new discovered APIs not recorded (discovery.max_apis)")
		}},
	}
}
