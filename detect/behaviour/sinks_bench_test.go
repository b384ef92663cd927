package behaviour_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/detect/observe"
)

// BenchmarkSinks measures what each pipeline sink costs per transaction on
// the load of test/bench (10,000 clients, each an IP and a bearer token,
// reading orders), and all of them in a row as the pipeline calls them.
func BenchmarkSinks(b *testing.B) {
	fp, _ := detect.NewFingerprinter(make([]byte, 32))
	api := &detect.API{Name: "shop", Hosts: []string{"api.example.com"}, BasePath: "/shop", Mode: detect.ModeBlock}
	txs := make([]*detect.Transaction, 10000)
	for i := range txs {
		t := &detect.Transaction{API: api, Host: "api.example.com", Method: "GET", Path: fmt.Sprintf("/shop/order/%d", 1000+i%500),
			Status: 200, ResponseBytes: 700, HasRequest: true, Complete: true, UserAgent: "bench/1.0"}
		t.Identities[detect.KindIP] = fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		t.Identities[detect.KindToken] = fp.Fingerprint(fmt.Sprintf("tok-%08d", i))
		txs[i] = t
	}
	now := time.Unix(1_800_000_000, 0)
	run := func(b *testing.B, sink detect.Sink) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			t := txs[i%len(txs)]
			t.Start = now.Add(time.Duration(i) * 50 * time.Microsecond) // 20,000 calls a second
			t.Template = ""                                             // a new call: derived once more
			sink.Consume(t)
		}
	}
	engine := func() *behaviour.Engine {
		return behaviour.NewEngine(behaviour.EngineConfig{Training: behaviour.TrainingConfig{Duration: time.Minute, MinRequests: 1000, MinIdentities: 10},
			APIs: []*detect.API{api}})
	}
	b.Run("inventory", func(b *testing.B) { run(b, observe.NewInventory([]*detect.API{api}, 1000, 1000)) })
	b.Run("forensics", func(b *testing.B) { run(b, observe.NewForensics(100000, 0)) })
	b.Run("engine", func(b *testing.B) { run(b, engine()) })
	b.Run("all", func(b *testing.B) {
		run(b, fanOut{observe.NewInventory([]*detect.API{api}, 1000, 1000), observe.NewForensics(100000, 0), engine()})
	})
}

// fanOut calls the sinks in a row as the pipeline does (detect's fanOut):
// the call prepared once, then each sink.
type fanOut []detect.Sink

func (f fanOut) Consume(t *detect.Transaction) {
	t.Prepare()
	for _, s := range f {
		s.Consume(t)
	}
}
