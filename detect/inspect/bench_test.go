package inspect

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// Benchmarks (go test -run '^$' -bench . -benchmem ./detect/inspect/):
// the cost of inspection per request against plain extraction (the same
// walk and decoding, no detector), for a benign GET with 5 query
// parameters and browser headers, a benign POST with a 20-field JSON body,
// and an attack; p50-ns and p99-ns time each call on its own (the clock's
// own cost included).

var (
	benchGET = &RequestView{Method: "GET", Path: "/shop/items/42",
		Query:     "q=red+shoes+for+men&page=2&sort=price-asc&since=2024-01-02&email=ann%40example.com",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
		Referer:   "https://shop.example.com/search?q=shoes", Cookie: "sid=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5; theme=dark"}
	benchPOST = func() *RequestView {
		var b strings.Builder
		b.WriteString(`{"customer":{"name":"Ann O'Neil","email":"ann@example.com","phone":"+33 6 12 34 56 78"},"items":[`)
		for i := range 5 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"sku":"SKU-%04d","qty":%d,"price":%d.99}`, i, i+1, 10+i)
		}
		b.WriteString(`],"note":"leave at the door, thanks!","coupon":"WINTER24","gift":false,"currency":"EUR"}`)
		return &RequestView{Method: "POST", Path: "/orders", ContentType: "application/json", Body: []byte(b.String())}
	}()
	benchAttack = &RequestView{Method: "GET", Path: "/search", Query: "page=1&q=%27+UNION+SELECT+password+FROM+users--"}
)

func benchRequest(b *testing.B, r *RequestView, prof *Profiles, extractOnly bool) {
	in := New(Config{})
	call := func() { in.Request(r, prof) }
	if extractOnly {
		call = func() {
			st := in.pool.Get().(*state)
			st.reset(nil)
			st.visit = func(Location, []byte, []byte) {}
			st.request(r)
			st.visit = nil
			in.pool.Put(st)
		}
	}
	call()
	times := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t := time.Now()
		call()
		if len(times) < cap(times) {
			times = append(times, time.Since(t))
		}
	}
	b.StopTimer()
	slices.Sort(times)
	if len(times) > 0 {
		b.ReportMetric(float64(times[len(times)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(times[len(times)*99/100].Nanoseconds()), "p99-ns")
	}
}

func BenchmarkRequest(b *testing.B) {
	for _, c := range []struct {
		name string
		r    *RequestView
	}{{"GET5", benchGET}, {"POSTJSON20", benchPOST}, {"AttackSQLi", benchAttack}} {
		b.Run(c.name+"/extract", func(b *testing.B) { benchRequest(b, c.r, nil, true) })
		b.Run(c.name+"/inspect", func(b *testing.B) { benchRequest(b, c.r, nil, false) })
		b.Run(c.name+"/inspect+profile", func(b *testing.B) { benchRequest(b, c.r, benchProfiles(c.r), false) })
	}
}

// benchProfiles learns a trusted profile from r itself (20 identities over
// two hours), so every value is judged against its parameter's profile.
func benchProfiles(r *RequestView) *Profiles {
	l := NewLearner(New(Config{}), LearnConfig{})
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	for i := range 100 {
		l.Observe("/e", r, fmt.Sprintf("user-%d", i%20), t0.Add(time.Duration(i)*2*time.Minute))
	}
	p := l.Model().Profiles("/e", r.Method)
	if !p.Trusted {
		panic("benchmark profile not trusted")
	}
	return p
}
