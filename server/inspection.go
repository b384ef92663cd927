package server

import (
	"context"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server/config"
)

// newContent builds content inspection from the runtime settings, as
// replay does: the guard the gRPC services inspect with, and the pipeline
// sink recording its attacks in the engine's store through the same hooks
// as the engine's attacks.
func (s *Server) newContent(rt *config.Runtime, h config.EngineHooks) {
	s.content, s.contentSink = rt.NewContent(h, s.engine.Store())
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
