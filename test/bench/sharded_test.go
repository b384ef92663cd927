package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/server/cluster"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/redistest"
	"github.com/vigil-project/vigil/test/scenario"
)

// Sharded replay (issue 13): one recording of test/scenario's generator
// replayed through one engine, through three engines that each see a third
// of the calls (round robin, as Envoy spreads them) without Redis, and
// through three engines sharing one real redis-server through
// server/cluster's Flusher, flushed every flush interval of the records'
// time (the engines' shared windows, ShareFraction from redis.share_fraction).
// With Redis, engine 0 is the trainer and the others adopt its models at
// the next flush, as server/cluster's Models makes them; without, each
// trains on its own third.
//
//	go test ./test/bench -run '^$' -bench ShardedReplay -benchtime 1x
//
// VIGIL_BENCH_SEEDS (default 9; comma-separated) are the fast preset's
// seeds, held out of tuning (test/scenario's suite_test.go: seeds 1-8 tuned
// the engine, 9 and 10 and the full preset's 11 are held out);
// VIGIL_BENCH_FLUSH (default 250ms) is the flush interval,
// VIGIL_BENCH_SHARE_FRACTION sets redis.share_fraction (default 0.1). Reported per
// attack type: recall single / 3 without Redis / 3 with Redis, median time
// to detect single and with Redis, and per attacker detected by both the
// time to detect with Redis minus single (median, max, and how many are
// later by more than the flush interval). At the end, Redis' memory per
// shared identity (INFO used_memory over the behaviour keys, and MEMORY
// USAGE of a sample of them).

// replayConfig is test/scenario's replay configuration.
func replayConfig(tb testing.TB, redisAddr, prefix string, flush time.Duration) *config.Config {
	tb.Helper()
	base, err := os.ReadFile("../scenario/testdata/replay.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	yml := string(base)
	if redisAddr != "" {
		yml += fmt.Sprintf("redis:\n  addrs: [%s]\n  key_prefix: %q\n  flush_interval: %s\n", redisAddr, prefix, flush)
		if v := os.Getenv("VIGIL_BENCH_SHARE_FRACTION"); v != "" {
			yml += "  share_fraction: " + v + "\n"
		}
	}
	dir := tb.TempDir()
	path := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		tb.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.DataDir = filepath.Join(dir, "data")
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// shardedRun is the outcome of one replay.
type shardedRun struct {
	attacks    []scenario.Attack
	raised     int // attack records raised, every engine's
	duplicates int // of those, raised again by another engine for the same type and identity
	flushes    int
	wall       time.Duration
	sent       float64 // identities sent to Redis, every flusher's
	commands   float64 // Redis commands of the flushes
}

// replayShards replays records through n engines, record k to engine k%n;
// with redisAddr, the engines share their windows through it under prefix
// and engine 0 trains for all.
func replayShards(tb testing.TB, records []detect.Record, n int, redisAddr, prefix string, flush time.Duration) shardedRun {
	tb.Helper()
	cfg := replayConfig(tb, redisAddr, prefix, flush)
	rt, err := cfg.Runtime()
	if err != nil {
		tb.Fatal(err)
	}
	x, err := rt.NewExtractor()
	if err != nil {
		tb.Fatal(err)
	}
	defer x.Close()
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	seen := map[string]int{}
	run := shardedRun{}
	shared := redisAddr != ""
	engines := make([]*behaviour.Engine, n)
	flushers := make([]*cluster.Flusher, n)
	regs := make([]*prometheus.Registry, n)
	modelChanged := false
	for i := range n {
		h := config.EngineHooks{Inline: true, OnAttack: func(a *detect.Attack) {
			run.raised++
			k := string(a.Type) + " " + string(a.Identity.Kind) + " " + a.Identity.Value
			if seen[k]++; seen[k] == 2 {
				run.duplicates++
			}
			if err := enc.Encode(a); err != nil {
				tb.Fatal(err)
			}
		}}
		if shared {
			h.Trainer = func() bool { return i == 0 }
			h.Replicas = func() int { return n }
			h.OnModelChange = func(string, *behaviour.ModelUpdate) { modelChanged = true }
		}
		e, err := rt.NewEngine(h)
		if err != nil {
			tb.Fatal(err)
		}
		engines[i] = e
		if shared {
			c, err := cluster.Open(context.Background(), cluster.Options{Addrs: []string{redisAddr}, KeyPrefix: prefix,
				ReplicaID: fmt.Sprintf("r%d", i), FingerprintCheck: rt.FingerprintCheck, Log: zerolog.Nop()})
			if err != nil {
				tb.Fatal(err)
			}
			if c.Client() == nil {
				tb.Fatal("no client to redis")
			}
			defer c.Close()
			flushers[i] = cluster.NewFlusher(c, e, cluster.FlushOptions{Interval: flush, Timeout: 10 * time.Second, Log: zerolog.Nop()})
			regs[i] = prometheus.NewRegistry()
			regs[i].MustRegister(flushers[i].Collectors()...)
		}
	}
	// tick flushes every engine's shared windows (each flusher a round trip
	// of its own, as each replica's) and hands the trainer's changed models
	// to the others.
	ctx := context.Background()
	tick := func() {
		for _, f := range flushers {
			if err := f.FlushOnce(ctx); err != nil {
				tb.Fatal(err)
			}
		}
		run.flushes++
		if !modelChanged {
			return
		}
		modelChanged = false
		for _, d := range engines[0].ModelDocs() {
			b, err := json.Marshal(d)
			if err != nil {
				tb.Fatal(err)
			}
			for _, e := range engines[1:] {
				var doc behaviour.ModelDoc
				if err := json.Unmarshal(b, &doc); err != nil {
					tb.Fatal(err)
				}
				if err := e.Adopt(&doc); err != nil {
					tb.Fatalf("adopt %s: %v", d.API, err)
				}
			}
		}
	}
	start := time.Now()
	var next time.Time
	for k := range records {
		t := records[k].Transaction(rt.Catalog, x)
		if shared {
			if next.IsZero() {
				next = t.Start.Truncate(flush).Add(flush)
			}
			if !t.Start.Before(next) {
				tick()
				// A gap in the traffic is one flush, not one per interval.
				next = t.Start.Truncate(flush).Add(flush)
			}
		}
		engines[k%n].Consume(t)
	}
	if shared {
		tick()
	}
	run.wall = time.Since(start)
	for _, reg := range regs {
		if reg == nil {
			continue
		}
		fams, err := reg.Gather()
		if err != nil {
			tb.Fatal(err)
		}
		m := map[string]*dto.MetricFamily{}
		for _, f := range fams {
			m[f.GetName()] = f
		}
		ids, _ := metricSum(m, "vigil_redis_flush_identities")
		cmds, _ := metricSum(m, "vigil_redis_flush_commands_total")
		run.sent += ids
		run.commands += cmds
	}
	attacks, err := scenario.ReadAttacks(&out)
	if err != nil {
		tb.Fatal(err)
	}
	run.attacks = attacks
	return run
}

// firstDetections is, per attacker (by index), the time from its start to
// the first attack naming its identity; absent when none did.
func firstDetections(s *scenario.Scenario, attacks []scenario.Attack, fingerprint func(string) string) map[int]time.Duration {
	key := func(id scenario.Identity) string {
		if id.Kind == scenario.KindToken || id.Kind == scenario.KindAPIKey || id.Kind == scenario.KindCookie {
			return id.Kind + " " + fingerprint(id.Raw)
		}
		return id.Kind + " " + id.Raw
	}
	by := map[string][]int{}
	for i, a := range s.Attackers {
		by[key(a.Identity)] = append(by[key(a.Identity)], i)
	}
	out := map[int]time.Duration{}
	for _, at := range attacks {
		for _, i := range by[at.Kind+" "+at.Value] {
			if at.DetectedAt.Before(s.Attackers[i].Start) {
				continue
			}
			d := at.DetectedAt.Sub(s.Attackers[i].Start)
			if old, ok := out[i]; !ok || d < old {
				out[i] = d
			}
		}
	}
	return out
}

func BenchmarkShardedReplay(b *testing.B) {
	seeds := []uint64{9}
	if v := os.Getenv("VIGIL_BENCH_SEEDS"); v != "" {
		seeds = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
			if err != nil {
				b.Fatalf("VIGIL_BENCH_SEEDS: %v", err)
			}
			seeds = append(seeds, n)
		}
	}
	flush := 250 * time.Millisecond
	if v := os.Getenv("VIGIL_BENCH_FLUSH"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("VIGIL_BENCH_FLUSH: %v", err)
		}
		flush = d
	}
	r := redistest.Start(b)
	for _, seed := range seeds {
		s := scenario.Generate(scenario.FastConfig(seed))
		records := s.Records
		cfg := replayConfig(b, "", "", flush)
		rt, err := cfg.Runtime()
		if err != nil {
			b.Fatal(err)
		}
		fp := rt.Fingerprinter.Fingerprint

		single := replayShards(b, records, 1, "", "", flush)
		apart := replayShards(b, records, 3, "", "", flush)
		prefix := fmt.Sprintf("s%d:", seed)
		mem0 := usedMemory(b, r.Addr())
		shared := replayShards(b, records, 3, r.Addr(), prefix, flush)
		mem1 := usedMemory(b, r.Addr())

		reps := []scenario.Report{
			scenario.Evaluate(s, single.attacks, fp), scenario.Evaluate(s, apart.attacks, fp), scenario.Evaluate(s, shared.attacks, fp),
		}
		traffic := s.End.Sub(records[0].Time).Seconds()
		b.Logf("seed %d: %d records over %.0fs of traffic time (%.0f calls/s); wall time single %s, 3 without Redis %s, 3 with Redis %s (%d flush rounds of 3 flushers, %.1f identities sent per flusher's flush, %.0f flush commands per second of traffic time)",
			seed, len(records), traffic, float64(len(records))/traffic, single.wall.Round(time.Millisecond), apart.wall.Round(time.Millisecond), shared.wall.Round(time.Millisecond), shared.flushes,
			shared.sent/float64(3*shared.flushes), shared.commands/traffic)
		var lines []string
		lines = append(lines, fmt.Sprintf("%-22s %-22s %-16s %-16s %s", "TYPE", "RECALL 1 / 3 / 3+REDIS", "MEDIAN TTD 1", "MEDIAN TTD 3+R", "TYPE CORRECT 1 / 3+R"))
		for i, t := range reps[0].Types {
			a, sh := reps[1].Types[i], reps[2].Types[i]
			lines = append(lines, fmt.Sprintf("%-22s %-22s %-16s %-16s %d/%d / %d/%d", t.Type,
				fmt.Sprintf("%d/%d / %d/%d / %d/%d", t.Detected, t.Attackers, a.Detected, a.Attackers, sh.Detected, sh.Attackers),
				t.MedianTTD.Round(100*time.Millisecond), sh.MedianTTD.Round(100*time.Millisecond),
				t.TypeCorrect, t.Detected, sh.TypeCorrect, sh.Detected))
		}
		o0, o1, o2 := reps[0].Overall, reps[1].Overall, reps[2].Overall
		lines = append(lines, fmt.Sprintf("%-22s %-22s %-16s %-16s", "overall",
			fmt.Sprintf("%d/%d / %d/%d / %d/%d", o0.Detected, o0.Attackers, o1.Detected, o1.Attackers, o2.Detected, o2.Attackers),
			o0.MedianTTD.Round(100*time.Millisecond), o2.MedianTTD.Round(100*time.Millisecond)))
		lines = append(lines, fmt.Sprintf("benign identities flagged: single %d, 3 without Redis %d, 3 with Redis %d (of %d)",
			reps[0].Benign.Flagged, reps[1].Benign.Flagged, reps[2].Benign.Flagged, reps[0].Benign.Identities))
		lines = append(lines, fmt.Sprintf("attack records raised: single %d, 3 with Redis %d (%d raised again by another engine: the server's claim in Redis makes them one)",
			single.raised, shared.raised, shared.duplicates))

		// Per attacker detected by both: time to detect with Redis minus single.
		t1, t3 := firstDetections(s, single.attacks, fp), firstDetections(s, shared.attacks, fp)
		var diffs []float64
		later, onlySingle, onlyShared := 0, 0, 0
		var worst []string
		for i, d1 := range t1 {
			d3, ok := t3[i]
			if !ok {
				onlySingle++
				continue
			}
			diff := d3 - d1
			diffs = append(diffs, diff.Seconds())
			if diff > flush {
				later++
				a := s.Attackers[i]
				worst = append(worst, fmt.Sprintf("%s %s %s %+.1fs", a.Type, a.Speed, a.Variant, diff.Seconds()))
			}
		}
		for i := range t3 {
			if _, ok := t1[i]; !ok {
				onlyShared++
			}
		}
		sort.Strings(worst)
		if len(worst) > 30 {
			worst = append(worst[:30], "…")
		}
		lines = append(lines, fmt.Sprintf("per attacker detected by both (%d): TTD with Redis − single median %+.2fs, min %+.2fs, max %+.2fs; later by more than the flush interval (%s): %d [%s]; detected by the single engine only %d, with Redis only %d",
			len(diffs), quantile(diffs, 0.5), quantile(diffs, 0), quantile(diffs, 1), flush, later, strings.Join(worst, "; "), onlySingle, onlyShared))

		// Redis memory per shared identity.
		keys := scanKeys(b, r.Addr(), prefix+"b:*")
		var sample float64
		ns := min(len(keys), 200)
		for _, k := range keys[:ns] {
			v, err := redistest.Command(r.Addr(), "MEMORY", "USAGE", k, "SAMPLES", "0")
			if err != nil {
				b.Fatal(err)
			}
			f, _ := strconv.ParseFloat(v, 64)
			sample += f
		}
		if len(keys) > 0 {
			lines = append(lines, fmt.Sprintf("redis: %d shared identities (behaviour keys) after the replay; used_memory %+d B in the replay, %.0f B per shared identity; MEMORY USAGE of %d keys mean %.0f B",
				len(keys), mem1-mem0, float64(mem1-mem0)/float64(len(keys)), ns, sample/math.Max(float64(ns), 1)))
		}
		// Printed, not logged: a benchmark's log is cut after 10 lines.
		fmt.Printf("sharded replay, seed %d, flush %s:\n%s\n", seed, flush, strings.Join(lines, "\n"))
		b.ReportMetric(o2.Recall/math.Max(o0.Recall, 1e-9), fmt.Sprintf("seed%d_recall_redis/single", seed))
		b.ReportMetric(quantile(diffs, 1), fmt.Sprintf("seed%d_max_ttd_diff_s", seed))
	}
}

// usedMemory is INFO memory's used_memory.
func usedMemory(tb testing.TB, addr string) int64 {
	tb.Helper()
	info, err := redistest.Command(addr, "INFO", "memory")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	tb.Fatal("no used_memory in INFO memory")
	return 0
}

// scanKeys is every key matching pattern (SCAN).
func scanKeys(tb testing.TB, addr, pattern string) []string {
	tb.Helper()
	var keys []string
	cursor := "0"
	for {
		r, err := redistest.Command(addr, "SCAN", cursor, "MATCH", pattern, "COUNT", "10000")
		if err != nil {
			tb.Fatal(err)
		}
		parts := strings.Split(r, "\n")
		cursor = parts[0]
		for _, k := range parts[1:] {
			if k != "" {
				keys = append(keys, k)
			}
		}
		if cursor == "0" {
			return keys
		}
	}
}

// BenchmarkRedisMemory measures Redis' memory per shared identity for the
// README's sizing: VIGIL_BENCH_IDENTITIES (default 10,000) addresses each
// make 6 calls to paths that do not exist over 5 s of traffic time (past
// share_fraction 0.1 of the probing limits, so shared), through one
// engine (on the default thresholds, ready) flushing to a real Redis every
// 250 ms of traffic time. Reported: INFO used_memory's growth per
// identity, and the mean MEMORY USAGE of 200 identities' keys. An
// identity active for longer holds more buckets and sketch epochs: the
// sharded replay's figure (BenchmarkShardedReplay) is the realistic mix.
//
//	go test ./test/bench -run '^$' -bench RedisMemory -benchtime 1x
func BenchmarkRedisMemory(b *testing.B) {
	n := envInt("VIGIL_BENCH_IDENTITIES", 10000)
	r := redistest.Start(b)
	api := &detect.API{Name: "shop", BasePath: "/shop", Mode: detect.ModeBlock}
	e := behaviour.NewEngine(behaviour.EngineConfig{ShareFraction: 0.1, APIs: []*detect.API{api},
		Training: behaviour.TrainingConfig{RelearnInterval: 24 * time.Hour}})
	now := time.Unix(1_800_000_000, 0)
	e.Consume(&detect.Transaction{API: api, Host: "api.example.com", Method: "GET", Path: "/shop/", Status: 200,
		Start: now, HasRequest: true, Complete: true})
	doc, ok := e.Model("shop")
	if !ok {
		b.Fatal("no model")
	}
	doc.Status = nil // ready, on the default thresholds
	if err := e.Adopt(doc); err != nil {
		b.Fatal(err)
	}
	c, err := cluster.Open(context.Background(), cluster.Options{Addrs: []string{r.Addr()}, KeyPrefix: "m:", Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	f := cluster.NewFlusher(c, e, cluster.FlushOptions{Timeout: time.Minute, Log: zerolog.Nop()})
	ctx := context.Background()
	mem0 := usedMemory(b, r.Addr())
	const calls = 6
	step := 5 * time.Second / time.Duration(n*calls)
	next := now.Add(250 * time.Millisecond)
	for k := range n * calls {
		i, j := k%n, k/n
		now = now.Add(step)
		tx := &detect.Transaction{API: api, Host: "api.example.com", Method: "GET", Path: fmt.Sprintf("/shop/admin-%d", j),
			Status: 404, Start: now, HasRequest: true, Complete: true, UserAgent: "scanner"}
		tx.Identities[detect.KindIP] = fmt.Sprintf("10.3.%d.%d", i>>8&255, i&255)
		e.Consume(tx)
		if !now.Before(next) {
			next = next.Add(250 * time.Millisecond)
			if err := f.FlushOnce(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := f.FlushOnce(ctx); err != nil {
		b.Fatal(err)
	}
	mem1 := usedMemory(b, r.Addr())
	keys := scanKeys(b, r.Addr(), "m:b:*")
	if len(keys) == 0 {
		b.Fatal("no identity shared")
	}
	var sample float64
	ns := min(len(keys), 200)
	for _, k := range keys[:ns] {
		v, err := redistest.Command(r.Addr(), "MEMORY", "USAGE", k, "SAMPLES", "0")
		if err != nil {
			b.Fatal(err)
		}
		x, _ := strconv.ParseFloat(v, 64)
		sample += x
	}
	fields, _ := redistest.Command(r.Addr(), "HLEN", keys[0])
	b.Logf("%d identities, %d shared (keys): used_memory %+d B, %.0f B per shared identity; MEMORY USAGE mean %.0f B over %d keys (%s fields in %s)",
		n, len(keys), mem1-mem0, float64(mem1-mem0)/float64(len(keys)), sample/float64(ns), ns, fields, keys[0])
	b.ReportMetric(float64(mem1-mem0)/float64(len(keys)), "B/identity")
	b.ReportMetric(sample/float64(ns), "memory_usage_B/key")
}
