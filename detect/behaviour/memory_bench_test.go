package behaviour

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// memoryLoad feeds n clients through the engine's normal path: each makes
// three calls reading objects (one in ten also asks for a path that does
// not exist), from an IP alone or, with tokens, from an IP and a bearer
// token (two states per client).
func memoryLoad(e *Engine, n int, tokens bool) {
	api := &detect.API{Name: "shop", BasePath: "/shop", Mode: detect.ModeBlock}
	now := time.Unix(1_800_000_000, 0)
	for i := range n {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		tok := ""
		if tokens {
			tok = "fp:" + strconv.FormatUint(uint64(i)*0x9E3779B97F4A7C15, 36) + "0123456789abcdef"
		}
		for j := range 3 {
			path, status := "/shop/order/"+strconv.Itoa(i+j), 200
			if j == 2 && i%10 == 0 {
				path, status = "/shop/nope-"+strconv.Itoa(i), 404
			}
			t := &detect.Transaction{API: api, Host: "shop.example.com", Method: "GET", Path: path, Status: status, ResponseBytes: 500,
				HasRequest: true, Complete: true, UserAgent: "app/1.0", Start: now.Add(time.Duration(i)*time.Millisecond + time.Duration(j)*time.Second)}
			t.Identities[detect.KindIP] = ip
			t.Identities[detect.KindToken] = tok
			e.Consume(t)
		}
	}
}

// BenchmarkBytesPerState reports the live heap after GC per tracked
// (API, identity) state, at 10k, 100k and 1M clients, for IP-only clients
// and for clients sending an IP and a token, MaxStates twice the clients
// (its share of the sightings table, allocated up front, included and
// also reported apart). Run with -benchtime=1x.
func BenchmarkBytesPerState(b *testing.B) {
	for _, load := range []struct {
		name   string
		tokens bool
	}{{"ip", false}, {"ip+token", true}} {
		for _, n := range []int{10_000, 100_000, 1_000_000} {
			b.Run(fmt.Sprintf("%s/%d", load.name, n), func(b *testing.B) {
				for range b.N {
					var before, after runtime.MemStats
					runtime.GC()
					runtime.ReadMemStats(&before)
					e := NewEngine(EngineConfig{MaxStates: 2 * n})
					memoryLoad(e, n, load.tokens)
					runtime.GC()
					runtime.ReadMemStats(&after)
					states := 0
					for _, s := range e.shards {
						states += s.numStates()
					}
					b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(states), "bytes/state")
					b.ReportMetric(float64(states), "states")
					b.ReportMetric(float64(e.shards[0].door.bytes())/float64(states), "sighting-table-bytes/state")
					runtime.KeepAlive(e)
				}
			})
		}
	}
}
