package behaviour

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// BenchmarkSharedHotPath is the cost per call of 1,000 probing IPs (every
// call a 404 on a new path), with sharing off and on: on, every state is
// shared and a flush round (collect, merge, apply; not timed) runs every
// 1,000 calls, so each decision sums the cluster's part too.
func BenchmarkSharedHotPath(b *testing.B) {
	for _, fraction := range []float64{0, 0.1} {
		b.Run(fmt.Sprintf("fraction=%v", fraction), func(b *testing.B) {
			api := &detect.API{Name: "shop", BasePath: "/shop", Mode: detect.ModeDetect}
			e := NewEngine(EngineConfig{ShareFraction: fraction, APIs: []*detect.API{api}, Training: TrainingConfig{RelearnInterval: 24 * time.Hour}})
			store := newMergeStore()
			txs := make([]*detect.Transaction, 1000)
			for i := range txs {
				t := &detect.Transaction{API: api, Host: "shop.example.com", Method: "GET", Status: 404, ResponseBytes: 100,
					HasRequest: true, Complete: true, UserAgent: "scanner"}
				t.Identities[detect.KindIP] = fmt.Sprintf("10.9.%d.%d", i>>8, i&255)
				txs[i] = t
			}
			paths := make([]string, 4096)
			for i := range paths {
				paths[i] = fmt.Sprintf("/shop/probe-%d", i)
			}
			now := time.Unix(1_800_000_000, 0)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				t := txs[i%len(txs)]
				t.Path = paths[i/len(txs)%len(paths)]
				t.Start = now.Add(time.Duration(i) * 100 * time.Microsecond)
				e.Consume(t)
				if fraction > 0 && i%1000 == 999 {
					b.StopTimer()
					store.flush(context.Background(), e)
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(sharedStates(e)), "shared")
		})
	}
}
