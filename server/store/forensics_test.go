package store

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/observe"
)

func forensicTx(ip, token, path string, at time.Time) *detect.Transaction {
	t := &detect.Transaction{HasRequest: true, Method: "GET", Host: "shop.example", Path: path, Template: path, Start: at}
	t.Identities[detect.KindIP] = ip
	t.Identities[detect.KindToken] = token
	return t
}

// storedForensics returns the keys of the records in the forensics
// bucket, and the number of index entries.
func storedForensics(t *testing.T, s *Store) (map[string]bool, int) {
	t.Helper()
	keys, indexed := map[string]bool{}, 0
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketForensics); b != nil {
			b.ForEach(func(k, _ []byte) error { keys[string(k)] = true; return nil })
		}
		if b := tx.Bucket(bucketForensicsSeen); b != nil {
			indexed = b.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys, indexed
}

// heldKeys returns the store keys of the identities f holds.
func heldKeys(f *observe.Forensics, ids []string) map[string]bool {
	out := map[string]bool{}
	for _, v := range ids {
		if _, ok := f.Get(detect.KindIP, v); ok {
			out["ip\x00"+v] = true
		}
	}
	return out
}

// TestForensicsStoreHoldsWhatMemoryHolds: a flood of fresh identities past
// the in-memory bound, saved every so often as the server does, leaves the
// store holding exactly the identities memory holds (evicted ones deleted
// at the next save), and no more than the bound; an evicted identity that
// returns is stored anew, its history starting again.
func TestForensicsStoreHoldsWhatMemoryHolds(t *testing.T) {
	s := open(t, t.TempDir())
	s.db.NoSync = true
	const limit = 100
	f := observe.NewForensics(limit, 0)
	var ids []string
	for i := range 1000 {
		ip := fmt.Sprintf("10.0.%d.%d", i/256, i%256)
		ids = append(ids, ip)
		f.Consume(forensicTx(ip, "", "/shop/x", t0.Add(time.Duration(i)*time.Second)))
		if i%150 == 149 {
			if err := f.Save(50, s); err != nil {
				t.Fatal(err)
			}
		}
	}
	// An identity evicted long ago comes back.
	f.Consume(forensicTx(ids[0], "", "/shop/back", t0.Add(time.Hour)))
	if err := f.Save(50, s); err != nil {
		t.Fatal(err)
	}
	keys, indexed := storedForensics(t, s)
	held := heldKeys(f, ids)
	if len(keys) > limit || len(keys) != len(held) || indexed != len(keys) {
		t.Fatalf("the store holds %d records (%d indexed), memory %d, limit %d", len(keys), indexed, len(held), limit)
	}
	for k := range held {
		if !keys[k] {
			t.Fatalf("%q is held in memory but not stored", k)
		}
	}
	g := observe.NewForensics(limit, 0)
	if err := s.LoadForensics(g.PutOlder); err != nil {
		t.Fatal(err)
	}
	r, ok := g.Get(detect.KindIP, ids[0])
	if !ok || r.Total != 1 || r.URLs["/shop/back"] != 1 || !r.FirstSeen.Equal(t0.Add(time.Hour)) {
		t.Fatalf("the returning identity restored as %+v", r)
	}
	if st := f.Stats(); st.Evictions < 900 {
		t.Fatalf("evictions not counted: %+v", st)
	}
}

// TestForensicsStorePrunedByAge: past the evictions Forensics remembers
// between two saves (a flood), Save prunes the store to the number of
// records memory holds, the least recently seen first; a store written
// without the index (an older version) is indexed first.
func TestForensicsStorePrunedByAge(t *testing.T) {
	s := open(t, t.TempDir())
	s.db.NoSync = true
	putOldForensics(t, s, 3000)
	n, err := s.PruneForensics(1000)
	if err != nil || n != 2000 {
		t.Fatalf("pruned %d: %v", n, err)
	}
	keys, indexed := storedForensics(t, s)
	if len(keys) != 1000 || indexed != 1000 {
		t.Fatalf("the store holds %d records (%d indexed)", len(keys), indexed)
	}
	for i := 2000; i < 3000; i++ {
		if ip := fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255); !keys["ip\x00"+ip] {
			t.Fatalf("%s, among the newest, was pruned", ip)
		}
	}
	if n, err := s.PruneForensics(1000); err != nil || n != 0 {
		t.Fatalf("pruned %d more: %v", n, err)
	}
}

// putOldForensics writes n records as a version without the index did.
func putOldForensics(t *testing.T, s *Store, n int) {
	t.Helper()
	for from := 0; from < n; from += 5000 {
		err := s.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucketForensics)
			if err != nil {
				return err
			}
			for i := from; i < min(from+5000, n); i++ {
				ip := fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255)
				r := &observe.ForensicRecord{Kind: "ip", Value: ip, FirstSeen: t0, LastSeen: t0.Add(time.Duration(i) * time.Second),
					Total: 12, Methods: map[string]int64{"GET": 10, "POST": 2}, APIs: map[string]int64{"shop": 12},
					URLs: map[string]int64{}, Hours: map[int64]int64{}, IPs: map[string]*observe.ForensicsIP{}}
				for u := range 12 {
					r.URLs[fmt.Sprintf("/shop/products/{id}/reviews/%d", u)] = 1
					r.Hours[t0.Unix()/3600+int64(u)] = 1
				}
				r.IPs[ip] = &observe.ForensicsIP{Total: 12, Methods: r.Methods, URLs: r.URLs, APIs: r.APIs}
				data, err := json.Marshal(r)
				if err != nil {
					return err
				}
				if err := b.Put(forensicKey(r.Kind, r.Value), data); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// restorePeak restores a store holding n records (written by an older
// version) into forensics that keep limit, and returns them with the
// largest heap growth seen while restoring.
func restorePeak(t *testing.T, n, limit int) (*observe.Forensics, uint64) {
	s := open(t, t.TempDir())
	s.db.NoSync = true
	putOldForensics(t, s, n)
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > base.HeapAlloc && m.HeapAlloc-base.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc - base.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	f := observe.NewForensics(limit, 0)
	err := s.LoadForensics(f.PutOlder)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return f, peak.Load()
}

// TestForensicsRestoreIsBounded: a store holding many more records than
// memory keeps (written by a version that did not prune) restores the
// newest, reading no more records than are kept: the heap it takes does
// not grow with the records on disk. FORENSICS_RESTORE_RECORDS sets the
// larger store (default 20,000).
func TestForensicsRestoreIsBounded(t *testing.T) {
	big := 20000
	if v := getenvInt("FORENSICS_RESTORE_RECORDS"); v > 0 {
		big = v
	}
	const limit = 1000
	_, small := restorePeak(t, 2*limit, limit)
	f, large := restorePeak(t, big, limit)
	t.Logf("heap growth while restoring %d of %d records: %d KB; of %d records: %d KB", limit, 2*limit, small>>10, big, large>>10)
	if f.Len() != limit {
		t.Fatalf("%d records restored, want %d", f.Len(), limit)
	}
	for i := big - limit; i < big; i++ {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255)
		if r, ok := f.Get(detect.KindIP, ip); !ok || !r.LastSeen.Equal(t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("%s, among the newest, not restored: %+v", ip, r)
		}
	}
	// Decoding every record takes about 3.5 KB each: 20,000 would be 70 MB.
	if bound := max(2*small, 8<<20); large > bound {
		t.Fatalf("restoring %d of %d records grew the heap by %d KB, of %d records by %d KB", limit, big, large>>10, 2*limit, small>>10)
	}
}

func getenvInt(name string) int {
	var n int
	fmt.Sscan(os.Getenv(name), &n)
	return n
}

// TestForensicsIndexOfOddKeys: an index entry that is not one of the
// store's (edited by hand, a newer version) is dropped, not a crash.
func TestForensicsIndexOfOddKeys(t *testing.T) {
	s := open(t, t.TempDir())
	r := &observe.ForensicRecord{Kind: "ip", Value: "192.0.2.1", LastSeen: t0}
	if err := s.PutForensics([]*observe.ForensicRecord{r}); err != nil {
		t.Fatal(err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		tx.DeleteBucket(bucketForensicsSeen)
		b, err := tx.CreateBucket(bucketForensicsSeen)
		if err != nil {
			return err
		}
		return b.Put([]byte("odd"), nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PruneForensics(0); err != nil {
		t.Fatal(err)
	}
	if err := s.LoadForensics(func(*observe.ForensicRecord) bool { return true }); err != nil {
		t.Fatal(err)
	}
}
