package server

import (
	"fmt"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/observe"
)

// TestSaveForensicsInBatches: the minute's save of 40,000 changed forensic
// records (a flood changes up to retention.forensics_identities a minute)
// builds and writes them a batch at a time: the live heap grows by a
// batch's worth during the save (about 11 MB), not by the records' whole
// size at once (about 2 KB of maps each: 61 MB here, 215 MB for 100,000,
// which took a 1M-identity flood's RSS past 512 MiB), and every record is
// stored.
func TestSaveForensicsInBatches(t *testing.T) {
	const n = 40000
	ts := startServer(t, testConfig(t))
	now := time.Now()
	for i := range n {
		tr := &detect.Transaction{Host: "api.example.com", Method: "GET", Path: "/shop/item/1", HasRequest: true, Complete: true, Status: 200, Start: now}
		tr.Identities[detect.KindToken] = fmt.Sprintf("fp:%032x", i)
		ts.forensics.Consume(tr)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(10)) // frequent collections: the live heap is sampled often
	runtime.GC()
	sample := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(sample)
	base := sample[0].Value.Uint64()
	var peak uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
		for {
			rtmetrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	ts.saveSnapshots()
	close(stop)
	<-done
	t.Logf("live heap grew %d KB", (int64(peak)-int64(base))>>10)
	if grew := int64(peak) - int64(base); grew > 32<<20 {
		t.Errorf("the heap grew by %d MB while saving %d forensic records, want a batch's worth (under 32 MB)", grew>>20, n)
	}
	stored := 0
	err := ts.store.LoadForensics(func(*observe.ForensicRecord) bool { stored++; return true })
	if err != nil || stored != n {
		t.Errorf("stored %d forensic records (%v), want %d", stored, err, n)
	}
}
