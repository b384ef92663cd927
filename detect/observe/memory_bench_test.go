package observe

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// BenchmarkForensicsBytesPerRecord floods the forensics with n calls, each
// from a fresh IP with a fresh token (2n identities), and reports the live
// heap they take per identity record, index included. Run with
// -benchtime=1x: each iteration builds the whole set.
func BenchmarkForensicsBytesPerRecord(b *testing.B) {
	at := time.Unix(1_800_000_000, 0)
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("calls=%d", n), func(b *testing.B) {
			var perRecord, estimate float64
			for range b.N {
				b.StopTimer()
				before := liveHeap()
				f := NewForensics(1<<30, 0)
				b.StartTimer()
				for i := range n {
					f.Consume(floodCall(i, at))
				}
				b.StopTimer()
				grown := liveHeap() - before
				perRecord = float64(grown) / float64(f.Len())
				estimate = float64(f.Stats().Bytes) / float64(f.Len())
				runtime.KeepAlive(f)
			}
			b.ReportMetric(perRecord, "B/record")
			b.ReportMetric(estimate, "est-B/record")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkForensicsConsume measures a call's cost once the forensics
// hold n identities (IP and token) seen twice before, revisited in turn.
func BenchmarkForensicsConsume(b *testing.B) {
	at := time.Unix(1_800_000_000, 0)
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("identities=%d", n), func(b *testing.B) {
			calls := make([]*detect.Transaction, n)
			for i := range calls {
				calls[i] = floodCall(i, at)
				calls[i].Prepare()
			}
			f := NewForensics(1<<30, 0)
			for range 2 { // seen twice: each identity has its counts
				for _, c := range calls {
					f.Consume(c)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				f.Consume(calls[i%n])
			}
		})
	}
}
