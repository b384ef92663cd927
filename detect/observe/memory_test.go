package observe

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// liveHeap returns the live heap after a full collection.
func liveHeap() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// checkEstimate fails unless the estimate is within 25% of the heap grown.
func checkEstimate(t *testing.T, what string, grown, estimate int64) {
	t.Helper()
	t.Logf("%s: heap grew %d B, estimate %d B (%.2f)", what, grown, estimate, float64(estimate)/float64(grown))
	if estimate < grown*3/4 || estimate > grown*5/4 {
		t.Fatalf("%s: estimate %d B, heap grew %d B: off by more than 25%%", what, estimate, grown)
	}
}

// floodCall is a call from a fresh IP with a fresh token.
func floodCall(i int, at time.Time) *detect.Transaction {
	return forensicCall(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), fmt.Sprintf("fp:%016x", i),
		"GET", fmt.Sprintf("/shop/order/%d", i), at)
}

// TestForensicsBytesMatchHeap: the forensics' estimate of its bytes follows
// the live heap, for a flood of one-call identities and for identities that
// use many IPs, endpoints and hours.
func TestForensicsBytesMatchHeap(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	t.Run("one call each", func(t *testing.T) {
		const n = 20_000
		calls := make([]*detect.Transaction, n)
		for i := range calls {
			calls[i] = floodCall(i, at)
			calls[i].Prepare()
		}
		before := liveHeap()
		f := NewForensics(1<<30, 0)
		for _, c := range calls {
			f.Consume(c)
		}
		grown := liveHeap() - before
		checkEstimate(t, "one call each", grown, f.Stats().Bytes)
		runtime.KeepAlive(calls)
		runtime.KeepAlive(f)
	})
	t.Run("busy", func(t *testing.T) {
		const n, per = 300, 60
		var calls []*detect.Transaction
		for i := range n {
			for j := range per {
				c := forensicCall(fmt.Sprintf("10.2.%d.%d", i%200, j%40), fmt.Sprintf("fp:busy%05d", i),
					[]string{"GET", "POST", "PUT"}[j%3], fmt.Sprintf("/shop/p%d/x", j), at.Add(time.Duration(j)*time.Hour))
				c.Prepare()
				calls = append(calls, c)
			}
		}
		before := liveHeap()
		f := NewForensics(1<<30, 0)
		for _, c := range calls {
			f.Consume(c)
		}
		grown := liveHeap() - before
		checkEstimate(t, "busy", grown, f.Stats().Bytes)
		runtime.KeepAlive(calls)
		runtime.KeepAlive(f)
	})
}

// TestInventoryBytesMatchHeap: the inventory's estimate follows the live
// heap as APIs and endpoints are discovered.
func TestInventoryBytesMatchHeap(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	const apis, eps = 200, 100
	calls := make([]*detect.Transaction, 0, apis*eps)
	for i := range apis {
		for j := range eps {
			c := &detect.Transaction{Host: fmt.Sprintf("h%d.test", i), Method: "GET", Path: fmt.Sprintf("/api%d/items%d", i, j),
				HasRequest: true, Start: at, Status: 200}
			c.Prepare()
			calls = append(calls, c)
		}
	}
	before := liveHeap()
	inv := NewInventory(nil, apis, eps)
	for _, c := range calls {
		inv.Consume(c)
	}
	grown := liveHeap() - before
	checkEstimate(t, "inventory", grown, inv.Bytes())
	runtime.KeepAlive(calls)
	runtime.KeepAlive(inv)
}

// TestForensicsByteBudget floods the forensics with fresh identities past a
// small byte budget: the estimate stays under it, and so does the live
// heap, give or take the estimate's error; the least recently seen go, an
// identity that keeps coming back stays with all its counts, and the
// evictions are counted, those with calls not yet saved apart.
func TestForensicsByteBudget(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	const budget, n = 1 << 20, 40_000
	calls := make([]*detect.Transaction, n)
	for i := range calls {
		calls[i] = floodCall(i, at.Add(time.Duration(i)*time.Millisecond))
		calls[i].Prepare()
	}
	before := liveHeap()
	f := NewForensics(1<<30, budget)
	regular := 0
	for i, c := range calls {
		f.Consume(c)
		if i%100 == 0 {
			f.Consume(forensicCall("192.0.2.1", "fp:regular", "POST", "/shop/cart", c.Start))
			regular++
		}
		if s := f.Stats(); s.Bytes > budget {
			t.Fatalf("after %d calls: %d B estimated, budget %d B", i+1, s.Bytes, budget)
		}
		if i == n/2 {
			f.Dirty() // saved: evicting these loses nothing
		}
	}
	grown := liveHeap() - before
	s := f.Stats()
	t.Logf("%d records, %d B estimated, heap grew %d B, %d evictions, %d unsaved", s.Records, s.Bytes, grown, s.Evictions, s.Unsaved)
	if grown > budget*5/4 {
		t.Fatalf("heap grew %d B, budget %d B", grown, budget)
	}
	if s.Records < 1000 || s.Records+int(s.Evictions) != 2*n+2 {
		t.Fatalf("%d records and %d evictions for %d identities", s.Records, s.Evictions, 2*n+2)
	}
	// The saved half was evicted without loss; the unsaved part was not.
	if s.Unsaved == 0 || s.Unsaved >= s.Evictions {
		t.Fatalf("%d of %d evictions unsaved", s.Unsaved, s.Evictions)
	}
	for _, c := range calls[n-100:] {
		for _, k := range []detect.Kind{detect.KindIP, detect.KindToken} {
			if r, ok := f.Get(k, c.Identities[k]); !ok || r.Total != 1 || r.URLs["/shop/order/{id}"] != 1 {
				t.Fatalf("recent %s %s: %+v", k, c.Identities[k], r)
			}
		}
	}
	if _, ok := f.Get(detect.KindToken, calls[0].Identities[detect.KindToken]); ok {
		t.Fatal("the first identity of the flood is still kept")
	}
	if r, ok := f.Get(detect.KindToken, "fp:regular"); !ok || r.Total != int64(regular) || r.IPs["192.0.2.1"].Total != int64(regular) {
		t.Fatalf("the regular client: %+v", r)
	}
	if d := f.Dirty(); len(d) != s.Records {
		t.Fatalf("%d dirty records of %d kept, all changed since the last save", len(d), s.Records)
	}
	runtime.KeepAlive(calls)
}

// TestInventoryByteBudget: past its byte budget the inventory takes no new
// discovered API and no new endpoint (counted as overflow, as past the
// count limits), and keeps counting the APIs and endpoints it has.
func TestInventoryByteBudget(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	const budget = 256 << 10
	inv := NewInventory([]*detect.API{ordersAPI}, 1000, 1000)
	inv.SetMaxBytes(budget)
	call := func(host, path string) {
		inv.Consume(&detect.Transaction{Host: host, Method: "GET", Path: path, HasRequest: true, Start: at, Status: 200})
	}
	for i := range 20_000 {
		call(fmt.Sprintf("h%d.test", i%500), fmt.Sprintf("/api%d/items%d", i%7, i))
		// Bounded, give or take the last record added (an API and its activity).
		if b := inv.Bytes(); b > budget+16<<10 {
			t.Fatalf("after %d calls: %d B, budget %d B", i+1, b, budget)
		}
	}
	if inv.OverflowAPIs() == 0 || inv.OverflowEndpoints() == 0 {
		t.Fatalf("overflow: %d APIs, %d endpoints", inv.OverflowAPIs(), inv.OverflowEndpoints())
	}
	requests := func() uint64 {
		for _, a := range inv.APIs(nil) {
			if a.Name == "h0.test/api0" {
				return a.Requests
			}
		}
		t.Fatal("h0.test/api0 not in the inventory")
		return 0
	}
	n := requests()
	call("h0.test", "/api0/items0")
	if requests() != n+1 {
		t.Fatal("a known API stopped counting past the budget")
	}
}

// TestForensicsSaveDirtyMemory: saving the records of a flood takes the
// memory of a batch, where Dirty builds them all at once.
func TestForensicsSaveDirtyMemory(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	const n, batch = 20_000, 500
	flood := func() *Forensics {
		f := NewForensics(1<<30, 0)
		for i := range n {
			f.Consume(floodCall(i, at))
		}
		return f
	}
	f := flood()
	before := liveHeap()
	all := f.Dirty()
	whole := liveHeap() - before
	runtime.KeepAlive(all)
	all = nil

	g := flood()
	before = liveHeap()
	var peak int64
	saved, calls := 0, 0
	if err := g.SaveDirty(batch, func(recs []*ForensicRecord) error {
		if calls++; calls%10 == 1 {
			peak = max(peak, liveHeap()-before)
		}
		saved += len(recs)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("Dirty: %d B for %d records; SaveDirty: %d B at most", whole, len(f.recs)+len(f.clash), peak)
	if saved != 2*n || peak > whole/10 {
		t.Fatalf("%d records saved, SaveDirty took %d B, Dirty %d B", saved, peak, whole)
	}
	runtime.KeepAlive(f)
	runtime.KeepAlive(g)
}
