package cluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/test/redistest"
)

// redisCounters reads, from INFO, the script calls (EVALSHA and EVAL) and
// the bytes Redis received and sent.
func redisCounters(tb testing.TB, addr string) (cmds, bytes int64) {
	tb.Helper()
	info, err := redistest.Command(addr, "INFO", "all")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch name {
		case "cmdstat_evalsha", "cmdstat_eval":
			calls, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
			n, _ := strconv.ParseInt(calls, 10, 64)
			cmds += n
		case "total_net_input_bytes", "total_net_output_bytes":
			n, _ := strconv.ParseInt(v, 10, 64)
			bytes += n
		}
	}
	return cmds, bytes
}

// BenchmarkFlushRedisTraffic measures the Redis traffic of one replica's
// behaviour sharing (share_fraction 0.1, a flush every 250 ms of the
// calls' time) per 1,000 calls, at 1,000 calls a second: "benign" is
// 10,000 users browsing (a 404 in 50 calls); "attack" is the same with
// one call in ten from 10 probers (404s on new paths). Redis traffic must
// follow the suspicious identities, not the calls. Run with
//
//	go test ./server/cluster -run '^$' -bench FlushRedisTraffic -benchtime 20x
//
// (one op is 1,000 calls; the first 60 s of calls warm the states up and
// are not counted).
func BenchmarkFlushRedisTraffic(b *testing.B) {
	for _, attack := range []bool{false, true} {
		name := "benign"
		if attack {
			name = "attack"
		}
		b.Run(name, func(b *testing.B) {
			r := redistest.Start(b)
			rep := newEngineReplica(b, newTestCluster(b, r.Addr()), 0.1)
			ctx := context.Background()
			now := time.Unix(1_800_000_000, 0)
			next := now.Add(250 * time.Millisecond)
			n := 0
			tx := &detect.Transaction{API: shopAPI, Host: "shop.example.com", HasRequest: true, Complete: true}
			call := func() {
				now = now.Add(time.Millisecond)
				n++
				tx.Start, tx.Method, tx.UserAgent, tx.ResponseBytes = now, "GET", "app/1.0", 800
				tx.Identities = detect.Identities{}
				if attack && n%10 == 0 {
					tx.Identities[detect.KindIP] = "203.0.113." + strconv.Itoa(n/10%10)
					tx.Path, tx.Status, tx.UserAgent = "/shop/admin-"+strconv.Itoa(n), 404, "scanner"
				} else {
					x := uint64(n) * 0x9E3779B97F4A7C15 // the users in a scrambled order
					u := x >> 40 % 10000
					tx.Identities[detect.KindIP] = fmt.Sprintf("10.1.%d.%d", u>>8, u&255)
					tx.Path, tx.Status = "/shop/products/"+strconv.Itoa(int(x>>20%500)), 200
					if x>>8%50 == 0 {
						tx.Path, tx.Status = "/shop/favicon.png", 404
					}
				}
				rep.e.Consume(tx)
				if !now.Before(next) {
					next = next.Add(250 * time.Millisecond)
					if err := rep.f.FlushOnce(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			for range 60_000 {
				call()
			}
			cmds0, bytes0 := redisCounters(b, r.Addr())
			calls0 := n
			for b.Loop() {
				for range 1000 {
					call()
				}
			}
			cmds1, bytes1 := redisCounters(b, r.Addr())
			per := float64(n-calls0) / 1000
			b.ReportMetric(float64(cmds1-cmds0)/per, "cmds/1000calls")
			b.ReportMetric(float64(bytes1-bytes0)/per, "redisB/1000calls")
		})
	}
}

// BenchmarkFlushRoundTrip is one flush of 10,000 shared identities (each a
// short and a long bucket and one sketch epoch): collect, one pipelined
// EVALSHA per identity, parse, apply. Run with
//
//	go test ./server/cluster -run '^$' -bench FlushRoundTrip -benchtime 20x
func BenchmarkFlushRoundTrip(b *testing.B) {
	r := redistest.Start(b)
	e := &fakeShared{}
	f := NewFlusher(newTestCluster(b, r.Addr()), e, FlushOptions{Timeout: time.Minute, Log: zerolog.Nop()})
	const n = 10_000
	deltas := make([]behaviour.SharedDelta, n)
	for i := range deltas {
		deltas[i] = behaviour.SharedDelta{
			Key: behaviour.SharedKey{API: "shop", Kind: detect.KindIP, ID: fmt.Sprintf("10.2.%d.%d", i>>8, i&255)},
			Buckets: []behaviour.SharedBucket{
				{Short: true, Index: 100, Counts: [5]uint32{3}},
				{Index: 20, Counts: [5]uint32{3, 1, 1}, Bytes: 2400},
			},
			Sketches: []behaviour.SharedSketch{{Sketch: 0, Epoch: 3, Regs: regs(map[int]byte{i % 64: 2})}},
		}
	}
	ctx := context.Background()
	e.next = deltas
	if err := f.FlushOnce(ctx); err != nil { // the script loaded
		b.Fatal(err)
	}
	cmds0, bytes0 := redisCounters(b, r.Addr())
	for b.Loop() {
		e.next = deltas
		e.applied = e.applied[:0]
		if err := f.FlushOnce(ctx); err != nil {
			b.Fatal(err)
		}
	}
	cmds1, bytes1 := redisCounters(b, r.Addr())
	b.ReportMetric(float64(cmds1-cmds0)/float64(b.N), "cmds/flush")
	b.ReportMetric(float64(bytes1-bytes0)/float64(b.N), "redisB/flush")
	b.ReportMetric(redisUsecPerCall(b, r.Addr()), "redis-µs/identity")
}

// redisUsecPerCall is Redis's own time per EVALSHA, from INFO commandstats.
func redisUsecPerCall(tb testing.TB, addr string) float64 {
	info, err := redistest.Command(addr, "INFO", "commandstats")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:"); ok {
			for _, kv := range strings.Split(v, ",") {
				if u, ok := strings.CutPrefix(kv, "usec_per_call="); ok {
					f, _ := strconv.ParseFloat(u, 64)
					return f
				}
			}
		}
	}
	return 0
}
