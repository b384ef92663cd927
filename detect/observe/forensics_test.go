package observe

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/vigil-project/vigil/detect"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"
)

func forensicCall(ip, token, method, path string, at time.Time) *detect.Transaction {
	t := &detect.Transaction{API: &detect.API{Name: "shop"}, Host: "shop.test", Method: method, Path: path, HasRequest: true, Start: at}
	t.Identities[detect.KindIP] = ip
	t.Identities[detect.KindToken] = token
	return t
}

// TestForensicsCountsPerIdentityAndIP follows a token used from two IPs:
// totals, methods, endpoint templates and APIs, overall and per IP; the
// IP identity's record is its own only IP.
func TestForensicsCountsPerIdentityAndIP(t *testing.T) {
	f := NewForensics(10, 0)
	at := time.Unix(1_800_000_000, 0)
	for i := range 3 {
		f.Consume(forensicCall("10.0.0.1", "fp:a", "GET", fmt.Sprintf("/shop/order/%d", 100+i), at.Add(time.Duration(i)*time.Second)))
	}
	f.Consume(forensicCall("10.0.0.2", "fp:a", "PUT", "/shop/order", at.Add(time.Hour)))
	r, ok := f.Get(detect.KindToken, "fp:a")
	if !ok {
		t.Fatal("token not tracked")
	}
	want := &ForensicRecord{Kind: "token", Value: "fp:a", FirstSeen: at, LastSeen: at.Add(time.Hour), Total: 4,
		Methods: map[string]int64{"GET": 3, "PUT": 1},
		URLs:    map[string]int64{"/shop/order/{id}": 3, "/shop/order": 1},
		APIs:    map[string]int64{"shop": 4},
		Hours:   map[int64]int64{at.Unix() / 3600: 3, at.Unix()/3600 + 1: 1},
		IPs: map[string]*ForensicsIP{
			"10.0.0.1": {Total: 3, Methods: map[string]int64{"GET": 3}, URLs: map[string]int64{"/shop/order/{id}": 3}, APIs: map[string]int64{"shop": 3}},
			"10.0.0.2": {Total: 1, Methods: map[string]int64{"PUT": 1}, URLs: map[string]int64{"/shop/order": 1}, APIs: map[string]int64{"shop": 1}},
		}}
	if !reflect.DeepEqual(r, want) {
		g, _ := json.Marshal(r)
		w, _ := json.Marshal(want)
		t.Fatalf("record\n got %s\nwant %s", g, w)
	}
	ip, _ := f.Get(detect.KindIP, "10.0.0.1")
	if ip.Total != 3 || len(ip.IPs) != 1 || ip.IPs["10.0.0.1"].Total != 3 || ip.IPs["10.0.0.1"].URLs["/shop/order/{id}"] != 3 {
		t.Fatalf("IP record %+v", ip)
	}
	if f.Len() != 3 {
		t.Fatalf("%d identities, want 3", f.Len())
	}
}

// TestForensicsBounds: past the caps, new URLs and IPs are counted under
// "(other)", hours older than a week are forgotten, and the least recently
// seen identity is the one forgotten.
func TestForensicsBounds(t *testing.T) {
	f := NewForensics(3, 0)
	at := time.Unix(1_800_000_000, 0)
	for i := range forensicMaxURLs + 30 {
		f.Consume(forensicCall(fmt.Sprintf("10.1.%d.%d", i/256, i%256), "fp:busy", "GET", fmt.Sprintf("/shop/p%d", i), at.Add(time.Duration(i)*time.Hour)))
	}
	r, _ := f.Get(detect.KindToken, "fp:busy")
	if len(r.URLs) != forensicMaxURLs+1 || r.URLs[forensicOther] != 30 {
		t.Fatalf("%d URLs, %d under (other)", len(r.URLs), r.URLs[forensicOther])
	}
	if len(r.IPs) != forensicMaxIPs+1 || r.IPs[forensicOther].Total != int64(forensicMaxURLs+30-forensicMaxIPs) {
		t.Fatalf("%d IPs, (other) %+v", len(r.IPs), r.IPs[forensicOther])
	}
	if len(r.Hours) != 24*7+1 {
		t.Fatalf("%d hours kept, want a week's", len(r.Hours))
	}
	last := at.Add(time.Duration(forensicMaxURLs+29)*time.Hour).Unix() / 3600
	for h := range r.Hours {
		if h < last-24*7 {
			t.Fatalf("hour %d older than a week before %d kept", h, last)
		}
	}
	// Three identities fit: the token and the last two IPs seen. New ones
	// evict the least recently seen first, whatever their traffic.
	if f.Len() != 3 {
		t.Fatalf("%d identities, cap 3", f.Len())
	}
	lastIP := func(back int) string {
		i := forensicMaxURLs + 30 - back
		return fmt.Sprintf("10.1.%d.%d", i/256, i%256)
	}
	f.Consume(forensicCall("10.9.9.1", "", "GET", "/shop/x", at.Add(1000*time.Hour)))
	_, older := f.Get(detect.KindIP, lastIP(2))
	_, newer := f.Get(detect.KindIP, lastIP(1))
	_, busy := f.Get(detect.KindToken, "fp:busy")
	if older || !newer || !busy {
		t.Fatalf("after one new identity: older IP kept %v, newer IP kept %v, token kept %v", older, newer, busy)
	}
	f.Consume(forensicCall("10.9.9.2", "", "GET", "/shop/x", at.Add(1001*time.Hour)))
	f.Consume(forensicCall("10.9.9.3", "", "GET", "/shop/x", at.Add(1002*time.Hour)))
	if _, ok := f.Get(detect.KindToken, "fp:busy"); ok {
		t.Fatal("the least recently seen identity was kept")
	}
	for _, ip := range []string{"10.9.9.1", "10.9.9.2", "10.9.9.3"} {
		if _, ok := f.Get(detect.KindIP, ip); !ok {
			t.Fatalf("%s not tracked", ip)
		}
	}
}

// TestForensicsDirtyAndRestore: Dirty hands over what changed once, and a
// record put back from storage continues where it stopped.
func TestForensicsDirtyAndRestore(t *testing.T) {
	f := NewForensics(10, 0)
	at := time.Unix(1_800_000_000, 0)
	f.Consume(forensicCall("10.0.0.1", "fp:a", "GET", "/shop/order/1", at))
	d := f.Dirty()
	if len(d) != 2 || d[0].Value != "10.0.0.1" || d[1].Value != "fp:a" {
		t.Fatalf("dirty %+v", d)
	}
	if d := f.Dirty(); len(d) != 0 {
		t.Fatalf("dirty twice: %+v", d)
	}
	g := NewForensics(10, 0)
	for _, r := range d {
		g.Put(r)
	}
	g.Consume(forensicCall("10.0.0.2", "fp:a", "GET", "/shop/order/2", at.Add(time.Minute)))
	r, _ := g.Get(detect.KindToken, "fp:a")
	if r.Total != 2 || r.URLs["/shop/order/{id}"] != 2 || len(r.IPs) != 2 || !r.FirstSeen.Equal(at) {
		t.Fatalf("restored record %+v", r)
	}
	if top := g.Top("shop", 1); len(top) != 1 || top[0].Value != "fp:a" || top[0].Requests != 2 {
		t.Fatalf("top %+v", top)
	}
	// Evicted identities are not handed over.
	h := NewForensics(1, 0)
	h.Consume(forensicCall("10.0.0.1", "", "GET", "/", at))
	h.Consume(forensicCall("10.0.0.2", "", "GET", "/", at))
	if d := h.Dirty(); len(d) != 1 || d[0].Value != "10.0.0.2" {
		t.Fatalf("dirty after eviction %+v", d)
	}
}

// TestForensicsIndex: counts stay right when a record grows past the size
// where it keeps an index of its entries, its IPs' counts included.
func TestForensicsIndex(t *testing.T) {
	f := NewForensics(10, 0)
	at := time.Unix(1_800_000_000, 0)
	for round := range 3 {
		for i := range forensicMaxURLs + 10 {
			f.Consume(forensicCall(fmt.Sprintf("10.0.0.%d", i%2), "fp:a", "GET", fmt.Sprintf("/p/x%d", i), at))
		}
		r, _ := f.Get(detect.KindToken, "fp:a")
		if got := r.URLs["/p/x7"]; got != int64(round+1) {
			t.Fatalf("round %d: /p/x7 counted %d", round, got)
		}
		if got := r.URLs[forensicOther]; got != int64(10*(round+1)) {
			t.Fatalf("round %d: (other) %d", round, got)
		}
		if got := r.IPs["10.0.0.1"].URLs["/p/x7"]; got != int64(round+1) {
			t.Fatalf("round %d: /p/x7 from 10.0.0.1 counted %d", round, got)
		}
		if r.Total != int64((round+1)*(forensicMaxURLs+10)) || r.IPs["10.0.0.0"].Total+r.IPs["10.0.0.1"].Total != r.Total {
			t.Fatalf("round %d: total %d, per IP %d + %d", round, r.Total, r.IPs["10.0.0.0"].Total, r.IPs["10.0.0.1"].Total)
		}
	}
	if st := f.lookup(detect.KindToken, "fp:a"); st.body == nil || len(st.body.index) != len(st.body.ents) {
		t.Fatalf("record not indexed: %+v", st.body)
	}
}

// TestForensicsHashClash: identities whose hashes clash are kept apart,
// found, counted, listed and evicted like the others.
func TestForensicsHashClash(t *testing.T) {
	f := NewForensics(4, 0)
	f.mask = 0 // every identity has the same hash
	at := time.Unix(1_800_000_000, 0)
	f.Consume(forensicCall("10.0.0.1", "fp:a", "GET", "/shop/order/1", at))
	f.Consume(forensicCall("10.0.0.1", "fp:a", "GET", "/shop/order/2", at))
	f.Consume(forensicCall("10.0.0.2", "fp:b", "PUT", "/shop/order/3", at.Add(time.Second)))
	if len(f.clash) != 3 || f.Len() != 4 {
		t.Fatalf("%d clashing of %d", len(f.clash), f.Len())
	}
	for _, c := range []struct {
		kind  detect.Kind
		value string
		total int64
	}{{detect.KindIP, "10.0.0.1", 2}, {detect.KindToken, "fp:a", 2}, {detect.KindIP, "10.0.0.2", 1}, {detect.KindToken, "fp:b", 1}} {
		if r, ok := f.Get(c.kind, c.value); !ok || r.Total != c.total {
			t.Fatalf("%s %s: %+v", c.kind, c.value, r)
		}
	}
	if top := f.Top("shop", 10); len(top) != 4 || top[0].Requests != 2 {
		t.Fatalf("top %+v", top)
	}
	// The least recently seen go first, from either index.
	f.Consume(forensicCall("10.0.0.3", "", "GET", "/", at.Add(2*time.Second)))
	if _, ok := f.Get(detect.KindIP, "10.0.0.1"); ok || f.Len() != 4 {
		t.Fatalf("10.0.0.1 kept, %d identities", f.Len())
	}
	if d := f.Dirty(); len(d) != 4 {
		t.Fatalf("%d dirty", len(d))
	}
}

// TestForensicsSaveDirty: the changed records are handed over a batch at a
// time, each once; a batch that failed to save is handed over again next
// time; records evicted meanwhile are not.
func TestForensicsSaveDirty(t *testing.T) {
	f := NewForensics(100, 0)
	at := time.Unix(1_800_000_000, 0)
	for i := range 25 {
		f.Consume(forensicCall(fmt.Sprintf("10.0.0.%d", i), "", "GET", "/shop/order/1", at))
	}
	var sizes []int
	saved := map[string]int{}
	fail := errors.New("disk full")
	err := f.SaveDirty(10, func(recs []*ForensicRecord) error {
		sizes = append(sizes, len(recs))
		if len(sizes) == 2 {
			return fail
		}
		for _, r := range recs {
			saved[r.Value]++
		}
		return nil
	})
	if !errors.Is(err, fail) || !slices.Equal(sizes, []int{10, 10, 5}) || len(saved) != 15 {
		t.Fatalf("error %v, batches %v, %d saved", err, sizes, len(saved))
	}
	// The failed batch is saved next time, with what changed since.
	f.Consume(forensicCall("10.0.0.24", "", "GET", "/shop/order/1", at))
	sizes = nil
	if err := f.SaveDirty(10, func(recs []*ForensicRecord) error {
		sizes = append(sizes, len(recs))
		for _, r := range recs {
			saved[r.Value]++
		}
		return nil
	}); err != nil || len(saved) != 25 || saved["10.0.0.24"] != 2 || slices.Max(sizes) > 10 {
		t.Fatalf("error %v, batches %v, saved %v", err, sizes, saved)
	}
	if d := f.Dirty(); len(d) != 0 {
		t.Fatalf("%d dirty after saving", len(d))
	}
	// A record evicted before its batch is not handed over.
	g := NewForensics(2, 0)
	g.Consume(forensicCall("10.0.1.1", "", "GET", "/", at))
	g.Consume(forensicCall("10.0.1.2", "", "GET", "/", at))
	n := 0
	if err := g.SaveDirty(1, func(recs []*ForensicRecord) error {
		if n++; n == 1 {
			g.Consume(forensicCall("10.0.1.3", "", "GET", "/", at)) // evicts the other
		}
		return nil
	}); err != nil || n != 1 {
		t.Fatalf("error %v, %d batches", err, n)
	}
}

// fakeForensicsStore is a map standing for the store.
type fakeForensicsStore struct {
	recs    map[ForensicKey]*ForensicRecord
	failDel error
	deleted []ForensicKey
}

func (s *fakeForensicsStore) PutForensics(recs []*ForensicRecord) error {
	for _, r := range recs {
		s.recs[ForensicKey{r.Kind, r.Value}] = r
	}
	return nil
}

func (s *fakeForensicsStore) DeleteForensics(keys []ForensicKey) error {
	if s.failDel != nil {
		return s.failDel
	}
	for _, k := range keys {
		delete(s.recs, k)
	}
	s.deleted = append(s.deleted, keys...)
	return nil
}

func (s *fakeForensicsStore) PruneForensics(keep int) (int, error) { return 0, nil }

// TestForensicsSaveDeletesTheEvicted: Save deletes the stored records of
// the identities evicted since the last save (those never stored are not
// asked for), and an identity that came back since is stored anew, its
// history starting again; a delete that failed is retried.
func TestForensicsSaveDeletesTheEvicted(t *testing.T) {
	f := NewForensics(3, 0)
	st := &fakeForensicsStore{recs: map[ForensicKey]*ForensicRecord{}}
	at := time.Unix(1_800_000_000, 0)
	call := func(ip, path string) { f.Consume(forensicCall(ip, "", "GET", path, at)); at = at.Add(time.Second) }
	for _, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		call(ip, "/shop/a")
	}
	if err := f.Save(10, st); err != nil || len(st.recs) != 3 {
		t.Fatalf("%v, %d stored", err, len(st.recs))
	}
	call("10.0.0.4", "/shop/a") // evicts .1 (stored)
	call("10.0.0.5", "/shop/a") // evicts .2 (stored)
	call("10.0.0.6", "/shop/a") // evicts .3 (stored)
	call("10.0.0.7", "/shop/a") // evicts .4 (never stored)
	call("10.0.0.1", "/shop/b") // back: evicts .5
	if err := f.Save(10, st); err != nil {
		t.Fatal(err)
	}
	want := []ForensicKey{{"ip", "10.0.0.2"}, {"ip", "10.0.0.3"}}
	if !slices.Equal(st.deleted, want) {
		t.Fatalf("deleted %v, want %v", st.deleted, want)
	}
	if got := slices.Collect(maps.Keys(st.recs)); len(got) != 3 || st.recs[ForensicKey{"ip", "10.0.0.1"}].URLs["/shop/a"] != 0 {
		t.Fatalf("stored %v; 10.0.0.1 %+v", got, st.recs[ForensicKey{"ip", "10.0.0.1"}])
	}
	// A failed delete is retried at the next save.
	call("10.0.0.8", "/shop/a") // evicts .6 (stored)
	st.failDel = errors.New("disk full")
	if err := f.Save(10, st); !errors.Is(err, st.failDel) {
		t.Fatalf("save: %v", err)
	}
	st.failDel = nil
	if err := f.Save(10, st); err != nil || st.recs[ForensicKey{"ip", "10.0.0.6"}] != nil || len(st.recs) != 3 {
		t.Fatalf("%v, stored %v", err, slices.Collect(maps.Keys(st.recs)))
	}
	if s := f.Stats(); s.Evictions != 6 || s.Unsaved != 2 { // .4 and .5 were never saved
		t.Fatalf("stats %+v", s)
	}
}

// TestForensicsPutOlder: records put newest first fill the forensics up to
// their bounds (count, then bytes) and no further, and the newest is the
// most recently seen (the first evicted is the oldest).
func TestForensicsPutOlder(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	rec := func(i int) *ForensicRecord {
		ip := fmt.Sprintf("10.0.0.%d", i)
		return &ForensicRecord{Kind: "ip", Value: ip, FirstSeen: at, LastSeen: at.Add(time.Duration(i) * time.Minute), Total: 1,
			Methods: map[string]int64{"GET": 1}, URLs: map[string]int64{fmt.Sprintf("/shop/%d", i): 1}, APIs: map[string]int64{"shop": 1},
			Hours: map[int64]int64{at.Unix() / 3600: 1}}
	}
	f := NewForensics(3, 0)
	took := 0
	for i := 9; i >= 0 && f.PutOlder(rec(i)); i-- {
		took++
	}
	if took != 3 || f.Len() != 3 {
		t.Fatalf("took %d, holds %d", took, f.Len())
	}
	f.Consume(forensicCall("10.0.0.99", "", "GET", "/shop/x", at.Add(time.Hour))) // evicts the oldest kept: .7
	for i, held := range map[int]bool{9: true, 8: true, 7: false} {
		if _, ok := f.Get(detect.KindIP, fmt.Sprintf("10.0.0.%d", i)); ok != held {
			t.Fatalf("10.0.0.%d held: %v", i, ok)
		}
	}
	// By bytes: what one record takes, times 3.5.
	one := NewForensics(10, 0)
	one.PutOlder(rec(0))
	g := NewForensics(100, one.Stats().Bytes*7/2)
	took = 0
	for i := 99; i >= 0 && g.PutOlder(rec(i)); i-- {
		took++
	}
	if took < 3 || took >= 100 || g.Len() != took || g.Stats().Bytes > one.Stats().Bytes*7/2 || g.Stats().Evictions != 0 {
		t.Fatalf("took %d, holds %d, %+v", took, g.Len(), g.Stats())
	}
	if _, ok := g.Get(detect.KindIP, fmt.Sprintf("10.0.0.%d", 100-took)); !ok {
		t.Fatalf("the oldest of the newest %d not held", took)
	}
}
