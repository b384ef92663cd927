package detect

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkSinks measures what each pipeline sink costs per transaction on
// the load of test/bench (10,000 clients, each an IP and a bearer token,
// reading orders), and all of them in a row as the pipeline calls them.
func BenchmarkSinks(b *testing.B) {
	fp, _ := NewFingerprinter(make([]byte, 32))
	api := &API{Name: "shop", Hosts: []string{"api.example.com"}, BasePath: "/shop", Mode: ModeBlock}
	txs := make([]*Transaction, 10000)
	for i := range txs {
		t := &Transaction{API: api, Host: "api.example.com", Method: "GET", Path: fmt.Sprintf("/shop/order/%d", 1000+i%500),
			Status: 200, ResponseBytes: 700, HasRequest: true, Complete: true, UserAgent: "bench/1.0"}
		t.Identities[KindIP] = fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		t.Identities[KindToken] = fp.Fingerprint(fmt.Sprintf("tok-%08d", i))
		txs[i] = t
	}
	now := time.Unix(1_800_000_000, 0)
	run := func(b *testing.B, sink Sink) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			t := txs[i%len(txs)]
			t.Start = now.Add(time.Duration(i) * 50 * time.Microsecond) // 20,000 calls a second
			t.Template = ""                                             // a new call: derived once more
			sink.Consume(t)
		}
	}
	engine := func() *Engine {
		return NewEngine(EngineConfig{Training: TrainingConfig{Duration: time.Minute, MinRequests: 1000, MinIdentities: 10},
			APIs: []*API{api}})
	}
	b.Run("inventory", func(b *testing.B) { run(b, NewInventory([]*API{api}, 1000, 1000)) })
	b.Run("forensics", func(b *testing.B) { run(b, NewForensics(100000)) })
	b.Run("engine", func(b *testing.B) { run(b, engine()) })
	b.Run("all", func(b *testing.B) {
		run(b, fanOut{NewInventory([]*API{api}, 1000, 1000), NewForensics(100000), engine()})
	})
}
