package observe

import (
	"encoding/json"
	"fmt"
	"github.com/vigil-project/vigil/detect"
	"reflect"
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
	if st := f.recs[detect.KindToken]["fp:a"]; st.body == nil || len(st.body.index) != len(st.body.ents) {
		t.Fatalf("record not indexed: %+v", st.body)
	}
}
