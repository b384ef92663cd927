package config

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/test/vigiltest/testfiles"
)

// hookFields are the fields of behaviour.EngineConfig the caller of NewEngine
// sets (how the engine runs, where its results go); every other field is
// derived from the configuration, the same for serve and replay.
var hookFields = map[string]bool{"Workers": true, "Block": true, "Blocked": true, "OnAttack": true, "Store": true, "IDs": true,
	"Trainer": true, "Replicas": true, "OnModelChange": true}

// TestServeAndReplayDeriveTheSameEngine: `vigil serve` (workers, blocking)
// and `vigil replay` (inline) get the same engine settings from one
// configuration, and every setting of behaviour.EngineConfig comes from it: a
// field added to EngineConfig and left out of Config.Runtime fails here,
// instead of making a replay silently differ from serve.
func TestServeAndReplayDeriveTheSameEngine(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "config", "full.good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	// Every knob away from zero, so that a field left underived shows.
	cfg.Detection.BlockAfter, cfg.BlockTTLByType = 2, map[string]time.Duration{"probing": time.Hour}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rt, err := cfg.Runtime()
	if err != nil {
		t.Fatal(err)
	}
	serve := rt.engineConfig(EngineHooks{Block: func(detect.Entry) {}, OnAttack: func(*detect.Attack) {}})
	replay := rt.engineConfig(EngineHooks{Inline: true, OnAttack: func(*detect.Attack) {}})
	if serve.Workers != cfg.Detection.Workers || replay.Workers != 0 {
		t.Errorf("workers: serve %d (want detection.workers %d), replay %d (want 0, inline)", serve.Workers, cfg.Detection.Workers, replay.Workers)
	}
	sv, rv := reflect.ValueOf(serve), reflect.ValueOf(replay)
	for i := range sv.NumField() {
		f := sv.Type().Field(i)
		if hookFields[f.Name] {
			continue
		}
		if sv.Field(i).IsZero() {
			t.Errorf("EngineConfig.%s is not derived from the configuration (Config.Runtime)", f.Name)
		}
		if !reflect.DeepEqual(sv.Field(i).Interface(), rv.Field(i).Interface()) {
			t.Errorf("EngineConfig.%s: serve %v, replay %v", f.Name, sv.Field(i).Interface(), rv.Field(i).Interface())
		}
	}
	if serve.Store == nil || replay.Store == nil || serve.Store == replay.Store {
		t.Error("each engine needs an attack store of its own")
	}
	if serve.ShareFraction != 0.25 {
		t.Errorf("ShareFraction = %g, want redis.share_fraction 0.25", serve.ShareFraction)
	}
}

// TestShareFractionNeedsRedis: windows are shared only with Redis
// configured; without redis.addrs the engine is a single node's
// (ShareFraction 0), whatever redis.share_fraction says.
func TestShareFractionNeedsRedis(t *testing.T) {
	cfg, err := Load(testfiles.Write(t, "vigil.yaml", "redis:\n  share_fraction: 0.5\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rt, err := cfg.Runtime()
	if err != nil {
		t.Fatal(err)
	}
	if ec := rt.engineConfig(EngineHooks{}); ec.ShareFraction != 0 {
		t.Errorf("ShareFraction without redis.addrs = %g, want 0", ec.ShareFraction)
	}
}

// TestEngineHooksReachTheEngine: the cluster's hooks (training lease, live
// replicas, model changes) are passed to the engine as given.
func TestEngineHooksReachTheEngine(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "config", "full.good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rt, err := cfg.Runtime()
	if err != nil {
		t.Fatal(err)
	}
	var changed string
	ec := rt.engineConfig(EngineHooks{
		Trainer:       func() bool { return false },
		Replicas:      func() int { return 3 },
		OnModelChange: func(api string, _ *behaviour.ModelUpdate) { changed = api },
	})
	if ec.Trainer == nil || ec.Trainer() || ec.Replicas == nil || ec.Replicas() != 3 || ec.OnModelChange == nil {
		t.Fatalf("hooks not passed: %+v", ec)
	}
	ec.OnModelChange("orders", nil)
	if changed != "orders" {
		t.Errorf("OnModelChange reached %q", changed)
	}
	if ec := rt.engineConfig(EngineHooks{}); ec.Trainer != nil || ec.Replicas != nil || ec.OnModelChange != nil {
		t.Error("hooks set without being given")
	}
}

// TestNewEngineAppliesAPIDetection: apis[].detection is applied by
// NewEngine, so replay (which used to build its engine without it) judges
// with the settings serve uses; and on top of a stored model snapshot,
// since the file wins over what was stored.
func TestNewEngineAppliesAPIDetection(t *testing.T) {
	cfg, err := Load(testfiles.Write(t, "vigil.yaml", "apis:\n  - name: shop\n    base_path: /shop\n    detection:\n      types: {probing: {enabled: false}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rt, err := cfg.Runtime()
	if err != nil {
		t.Fatal(err)
	}
	probingEnabled := func(e *behaviour.Engine) bool {
		for _, d := range e.ModelDocs() {
			if d.API == "shop" {
				return d.Types[detect.AttackProbing].Enabled
			}
		}
		t.Fatal("no model for shop")
		return false
	}
	fresh, err := rt.NewEngine(EngineHooks{Inline: true})
	if err != nil {
		t.Fatal(err)
	}
	if probingEnabled(fresh) {
		t.Error("replay's engine: apis[].detection (probing disabled) not applied")
	}
	// A snapshot stored while probing was enabled.
	snaps := fresh.ModelDocs()
	knobs := snaps[0].Types[detect.AttackProbing]
	knobs.Enabled = true
	snaps[0].Types[detect.AttackProbing] = knobs
	restored, err := rt.NewEngine(EngineHooks{Inline: true, Snapshots: snaps})
	if err != nil {
		t.Fatal(err)
	}
	if probingEnabled(restored) {
		t.Error("serve's engine: the stored snapshot won over apis[].detection")
	}
}

// TestMemoryBudget: detection.max_memory is split in Config.Runtime, the
// one place serve and replay take it from: the shares add up to the budget
// (nothing outside it), the default deployment's soft limit and overhead fit
// in 512 MiB, and a smaller budget scales every share down.
func TestMemoryBudget(t *testing.T) {
	def := Default()
	def.DataDir = t.TempDir()
	rt, err := def.Runtime()
	if err != nil {
		t.Fatal(err)
	}
	b := rt.Budget
	if b.Total != 256<<20 || b != def.Budget() {
		t.Fatalf("default budget %+v, want 256MiB derived once", b)
	}
	if b.States+b.Forensics+b.Rest != b.Total || b.States <= b.Forensics || b.Rest <= 0 {
		t.Errorf("shares %+v do not split the budget", b)
	}
	if got := def.MemoryLimit() + NonHeapOverhead; got > 512<<20 {
		t.Errorf("default soft limit %d + overhead %d = %d: over 512 MiB", def.MemoryLimit(), NonHeapOverhead, got)
	}
	small, err := Load(testfiles.Write(t, "vigil.yaml", "detection:\n  max_memory: 32MiB\n"))
	if err != nil {
		t.Fatal(err)
	}
	sb := small.Budget()
	if sb.Total != 32<<20 || sb.States != 32<<20*60/100 || sb.Forensics != 32<<20*15/100 {
		t.Errorf("32MiB budget %+v, want 60%% states, 15%% forensics", sb)
	}
	if small.MemoryLimit() != 40<<20 {
		t.Errorf("32MiB: soft limit %d, want 40MiB", small.MemoryLimit())
	}
	// Calls waiting for their other parts: a quarter of the rest at 1 KiB
	// each, at least 1,024.
	if got := b.PendingJoins(); got != 16384 {
		t.Errorf("default budget: %d pending joins, want 16384", got)
	}
	if got := sb.PendingJoins(); got != 2048 {
		t.Errorf("32MiB budget: %d pending joins, want 2048", got)
	}
	if got := (Budget{Rest: 1 << 20}).PendingJoins(); got != 1024 {
		t.Errorf("tiny budget: %d pending joins, want the floor 1024", got)
	}
}
