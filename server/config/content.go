package config

import (
	"fmt"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/inspect"
	"github.com/vigil-project/vigil/detect/spec"
)

// NewContent builds content inspection from the derived settings, as serve
// and replay both use it: the hot path's guard (the inspector, the learned
// profiles it reads, and the APIs' OpenAPI documents, apis[].openapi,
// loaded and compiled here) and the pipeline sink that records content
// attacks in store, blocks repeat offenders by the engine's rules
// (block_ttl, block_ttl_by_type, detection.block_after and block_window)
// through the hooks, and learns the profiles.
func (r *Runtime) NewContent(h EngineHooks, store *detect.AttackStore) (*detect.ContentGuard, *detect.ContentSink, error) {
	g := detect.NewContentGuard(inspect.New(inspect.Config{}))
	for _, api := range r.Catalog.APIs() {
		if api.OpenAPIPath == "" {
			continue
		}
		s, err := spec.Load(api.OpenAPIPath)
		if err != nil {
			return nil, nil, fmt.Errorf("API %s: openapi: %w", api.Name, err)
		}
		g.SetSpec(api.Name, specJudge(s))
		if r.specs == nil {
			r.specs = map[string]*spec.Spec{}
		}
		r.specs[api.Name] = s
	}
	sink := detect.NewContentSink(detect.ContentSinkConfig{
		Guard: g, Store: store, IDs: r.engine.IDs,
		Block: h.Block, Blocked: h.Blocked, OnAttack: h.OnAttack,
		BlockTTL: r.engine.BlockTTL, TypeTTL: r.engine.TypeTTL,
		BlockAfter: r.engine.BlockAfter, BlockWindow: r.engine.BlockWindow,
	})
	return g, sink, nil
}

// specJudge judges calls against a compiled OpenAPI document. Header
// parameters other than User-Agent and Referer are not checked.
func specJudge(s *spec.Spec) detect.SpecJudge {
	return func(rv *inspect.RequestView) detect.SpecVerdict {
		v := s.Judge(rv, nil)
		if v.Kind == inspect.KindNone {
			return detect.SpecVerdict{}
		}
		return detect.SpecVerdict{Kind: v.Kind, Rule: v.Rule, KeyPath: v.KeyPath, Excerpt: v.Excerpt}
	}
}

// OpenAPI returns an API's compiled OpenAPI document, loaded by
// NewContent; nil when it has none.
func (r *Runtime) OpenAPI(api string) *spec.Spec { return r.specs[api] }
