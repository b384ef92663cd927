package behaviour

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// BenchmarkEngineScale measures the engine's cost per call (inline, as
// replay runs it) with 1k, 100k and 1M distinct clients, each an IP and a
// token reading orders, the calls cycling over the clients (each calls
// every 10 seconds of traffic time) after every client has been seen
// twice. The goal is a cost flat in the number of identities. Run with a
// fixed -benchtime (e.g. 1000000x) so every size does the same calls.
func BenchmarkEngineScale(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			api := &detect.API{Name: "shop", BasePath: "/shop", Mode: detect.ModeBlock}
			e := NewEngine(EngineConfig{MaxStates: 4 << 20, Training: TrainingConfig{Duration: 24 * time.Hour}})
			ips, toks := make([]string, n), make([]string, n)
			for i := range n {
				ips[i] = fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
				toks[i] = "fp:" + strconv.FormatUint(uint64(i)*0x9E3779B97F4A7C15, 36) + "0123456789abcdef"
			}
			paths := make([]string, 5000)
			for i := range paths {
				paths[i] = "/shop/order/" + strconv.Itoa(i)
			}
			now := time.Unix(1_800_000_000, 0)
			// Each client calls every 10 seconds of traffic time, however
			// many they are, so that only their number differs; the model
			// learns throughout (relearning would cost by traffic time).
			step := 10 * time.Second / time.Duration(n)
			t := &detect.Transaction{API: api, Host: "shop.example.com", Method: "GET", Status: 200, ResponseBytes: 700,
				HasRequest: true, Complete: true, UserAgent: "app/1.0"}
			call := func(i, c int) {
				t.Start = now.Add(time.Duration(i) * step)
				t.Path, t.Template = paths[(c+i/n)%len(paths)], ""
				t.Identities[detect.KindIP], t.Identities[detect.KindToken] = ips[c], toks[c]
				e.Consume(t)
			}
			// Warm-up: two calls each, so that every client is a state.
			i := 0
			for c := range n {
				call(i, c)
				call(i, c)
				i++
			}
			b.ReportAllocs()
			for b.Loop() {
				call(i, i%n)
				i++
			}
		})
	}
}
