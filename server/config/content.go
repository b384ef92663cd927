package config

import (
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/inspect"
)

// NewContent builds content inspection from the derived settings, as serve
// and replay both use it: the hot path's guard (the inspector and the
// learned profiles it reads) and the pipeline sink that records content
// attacks in store, blocks repeat offenders by the engine's rules
// (block_ttl, block_ttl_by_type, detection.block_after and block_window)
// through the hooks, and learns the profiles.
func (r *Runtime) NewContent(h EngineHooks, store *detect.AttackStore) (*detect.ContentGuard, *detect.ContentSink) {
	g := detect.NewContentGuard(inspect.New(inspect.Config{}))
	sink := detect.NewContentSink(detect.ContentSinkConfig{
		Guard: g, Store: store, IDs: r.engine.IDs,
		Block: h.Block, Blocked: h.Blocked, OnAttack: h.OnAttack,
		BlockTTL: r.engine.BlockTTL, TypeTTL: r.engine.TypeTTL,
		BlockAfter: r.engine.BlockAfter, BlockWindow: r.engine.BlockWindow,
	})
	return g, sink
}
