package server

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/inspect"
	"github.com/vigil-project/vigil/server/config"
)

// newContent builds content inspection from the runtime settings, as
// replay does: the guard the gRPC services inspect with, and the pipeline
// sink recording its attacks in the engine's store through the same hooks
// as the engine's attacks.
func (s *Server) newContent(rt *config.Runtime, h config.EngineHooks) error {
	var err error
	if s.content, s.contentSink, err = rt.NewContent(h, s.engine.Store()); err != nil {
		return err
	}
	s.metrics.reg.MustRegister(inspectionCollectors(s.content)...)
	s.loadProfiles()
	return nil
}

// inspectionCollectors are content inspection's counters, read at scrape
// time: calls inspected, findings, signature hits tolerated by a learned
// profile, and the caps hit (values, value bytes, total bytes, body
// bytes, depth), which leave part of a call uninspected.
func inspectionCollectors(g *detect.ContentGuard) []prometheus.Collector {
	stat := func(f func(st inspect.Stats) uint64) func() float64 {
		return func() float64 { return float64(f(g.Inspector().Stats())) }
	}
	out := []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_inspection_requests_total",
			Help: "Calls (and request bodies) content inspection looked at."}, stat(func(st inspect.Stats) uint64 { return st.Requests })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_inspection_findings_total",
			Help: "Content inspection findings (an attack in a call); refusals and would-be refusals by type are in vigil_verdicts_total."},
			stat(func(st inspect.Stats) uint64 { return st.Findings })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_inspection_tolerated_total",
			Help: "Signature hits on parameters whose learned profile normally carries such text: counted, not refused."},
			func() float64 { return float64(g.Tolerated()) }),
	}
	for _, c := range []struct {
		name string
		f    func(st inspect.Stats) uint64
	}{
		{"values", func(st inspect.Stats) uint64 { return st.CappedValues }},
		{"value_bytes", func(st inspect.Stats) uint64 { return st.CappedValueBytes }},
		{"total_bytes", func(st inspect.Stats) uint64 { return st.CappedTotalBytes }},
		{"body_bytes", func(st inspect.Stats) uint64 { return st.CappedBodyBytes }},
		{"depth", func(st inspect.Stats) uint64 { return st.CappedDepth }},
	} {
		out = append(out, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_inspection_capped_total",
			Help:        "Calls whose content inspection hit a cap (the rest of the call was not looked at), by cap.",
			ConstLabels: prometheus.Labels{"cap": c.name}}, stat(c.f)))
	}
	return out
}

// flagAttacker keeps every attacker, whatever the attack, out of the
// profiles content inspection learns.
func (s *Server) flagAttacker(a *detect.Attack) {
	if s.contentSink != nil {
		s.contentSink.Flag(a)
	}
}

// publishProfiles publishes, every few seconds, the profiles learned from
// the last calls of an API that has gone quiet (the sink publishes as
// calls come, on their clock).
func (s *Server) publishProfiles(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.contentSink.Publish(s.now())
		}
	}
}

// profilesFile holds, in the data directory, content inspection's learned
// profiles and knobs per API, written with the model snapshots (every
// minute and at shutdown) and read at start.
const profilesFile = "inspection-profiles.json"

// saveProfiles writes the learned profiles, whole or not at all (a
// temporary file renamed over the old one).
func (s *Server) saveProfiles() {
	if s.contentSink == nil {
		return
	}
	b, err := json.Marshal(s.contentSink.ContentModels())
	if err == nil {
		path := filepath.Join(s.cfg.DataDir, profilesFile)
		if err = os.WriteFile(path+".tmp", b, 0o600); err == nil {
			err = os.Rename(path+".tmp", path)
		}
	}
	if err != nil {
		s.log.Error().Err(err).Msg("content inspection's profiles not saved")
	}
}

// loadProfiles restores the profiles saved by an earlier run; a missing
// file is a first start, a bad one is logged and skipped (learning starts
// again).
func (s *Server) loadProfiles() {
	b, err := os.ReadFile(filepath.Join(s.cfg.DataDir, profilesFile))
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var docs map[string]*detect.ContentModelDoc
	if err == nil {
		err = json.Unmarshal(b, &docs)
	}
	if err != nil {
		s.log.Warn().Err(err).Msg("content inspection's saved profiles not restored")
		return
	}
	for api, d := range docs {
		if d == nil {
			continue
		}
		if err := s.contentSink.ImportContent(api, d); err != nil {
			s.log.Warn().Err(err).Str("api", api).Msg("content inspection's saved profiles not restored")
		}
	}
}
