package detect

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestListPutLookupDelete(t *testing.T) {
	allow, block := NewLists()
	gen := block.Generation()
	changed := func(what string) {
		t.Helper()
		if g := block.Generation(); g == gen {
			t.Fatalf("%s did not bump the generation", what)
		} else if g != allow.Generation() {
			t.Fatalf("allow and block generations differ: %d, %d", allow.Generation(), g)
		} else {
			gen = g
		}
	}

	e := Entry{Kind: KindIP, Value: "192.0.2.1", Reason: "scanner", CreatedAt: t0}
	block.Put(e)
	changed("Put")
	got, ok := block.Lookup(KindIP, "192.0.2.1", t0)
	if !ok || got != e {
		t.Fatalf("Lookup = %+v, %v; want %+v", got, ok, e)
	}
	if _, ok := block.Lookup(KindUsername, "192.0.2.1", t0); ok {
		t.Fatal("an IP entry matched a username of the same text")
	}
	if _, ok := allow.Lookup(KindIP, "192.0.2.1", t0); ok {
		t.Fatal("the allow list sees the block list's entry")
	}
	if _, ok := block.Lookup(KindIP, "", t0); ok {
		t.Fatal("the empty identity matched")
	}

	e.Reason = "replaced"
	block.Put(e)
	changed("replacing Put")
	if got, _ := block.Lookup(KindIP, "192.0.2.1", t0); got.Reason != "replaced" || block.Len() != 1 {
		t.Fatalf("after replace: %+v, Len %d", got, block.Len())
	}

	allow.Put(Entry{Kind: KindUsername, Value: "ops"})
	changed("Put on the allow list")

	if !block.Delete(KindIP, "192.0.2.1") {
		t.Fatal("Delete of a present entry returned false")
	}
	changed("Delete")
	if block.Delete(KindIP, "192.0.2.1") {
		t.Fatal("second Delete returned true")
	}
	if block.Generation() != gen {
		t.Fatal("a Delete that removed nothing bumped the generation")
	}
	if _, ok := block.Lookup(KindIP, "192.0.2.1", t0); ok || block.Len() != 0 {
		t.Fatal("entry still there after Delete")
	}
}

func TestListExpiry(t *testing.T) {
	_, block := NewLists()
	block.Put(Entry{Kind: KindToken, Value: "fp:0123456789abcdef0123456789abcdef", ExpiresAt: t0.Add(time.Minute)})
	block.Put(Entry{Kind: KindIP, Value: "192.0.2.1"}) // never expires
	if _, ok := block.Lookup(KindToken, "fp:0123456789abcdef0123456789abcdef", t0.Add(time.Minute-time.Nanosecond)); !ok {
		t.Fatal("entry expired early")
	}
	// Ignored at its expiry, before any Sweep.
	if _, ok := block.Lookup(KindToken, "fp:0123456789abcdef0123456789abcdef", t0.Add(time.Minute)); ok {
		t.Fatal("expired entry matched")
	}
	ids := Identities{KindIP: "198.51.100.1", KindToken: "fp:0123456789abcdef0123456789abcdef"}
	if _, ok := block.Match(&ids, t0.Add(time.Hour)); ok {
		t.Fatal("Match returned an expired entry")
	}
	if n := len(block.Entries(t0.Add(time.Hour))); n != 1 {
		t.Fatalf("Entries lists %d live entries, want 1", n)
	}
	if block.Len() != 2 {
		t.Fatalf("Len before Sweep = %d, want 2", block.Len())
	}
	if n := block.Sweep(t0); n != 0 {
		t.Fatalf("Sweep before expiry removed %d", n)
	}
	if n := block.Sweep(t0.Add(time.Hour)); n != 1 || block.Len() != 1 {
		t.Fatalf("Sweep removed %d, Len %d", n, block.Len())
	}
	if _, ok := block.Lookup(KindIP, "192.0.2.1", t0.Add(1000*time.Hour)); !ok {
		t.Fatal("entry without expiry expired")
	}
}

func TestListMatchOrderAndEntries(t *testing.T) {
	_, block := NewLists()
	block.Put(Entry{Kind: KindUsername, Value: "mallory"})
	block.Put(Entry{Kind: KindIP, Value: "192.0.2.1"})
	block.Put(Entry{Kind: KindIP, Value: "10.0.0.1"})
	ids := Identities{KindIP: "192.0.2.1", KindUsername: "mallory"}
	if e, ok := block.Match(&ids, t0); !ok || e.Kind != KindIP {
		t.Fatalf("Match = %+v; want the IP entry first", e)
	}
	var got []string
	for _, e := range block.Entries(t0) {
		got = append(got, e.Kind.String()+"="+e.Value)
	}
	if want := "[ip=10.0.0.1 ip=192.0.2.1 username=mallory]"; fmt.Sprint(got) != want {
		t.Fatalf("Entries = %v, want %s", got, want)
	}
}

// TestListConcurrent runs readers against writers; run with -race.
func TestListConcurrent(t *testing.T) {
	allow, block := NewLists()
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				v := fmt.Sprintf("10.%d.0.%d", w, i%50)
				block.Put(Entry{Kind: KindIP, Value: v, ExpiresAt: t0.Add(time.Duration(i%3) * time.Second)})
				if i%3 == 0 {
					block.Delete(KindIP, v)
				}
				if i%100 == 0 {
					block.Sweep(t0.Add(time.Second))
					allow.Entries(t0)
				}
			}
		}()
	}
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				ids := Identities{KindIP: fmt.Sprintf("10.%d.0.%d", i%2, i%50)}
				block.Match(&ids, t0)
				_ = block.Len() + int(block.Generation())
			}
		}()
	}
	wg.Wait()
	// Counts stay consistent with the maps.
	if n := len(block.Entries(time.Time{})); n != block.Len() {
		t.Fatalf("Len %d, but %d entries", block.Len(), n)
	}
}

// normalizeIPTests feed TestNormalizeIP and the seeds of FuzzNormalizeIP.
var normalizeIPTests = []struct{ in, out, err string }{
	{in: "10.0.0.1", out: "10.0.0.1"},
	{in: "::ffff:10.0.0.1", out: "10.0.0.1"},
	{in: "10.0.0.0/8", out: "10.0.0.0/8"},
	{in: "10.1.2.3/8", out: "10.0.0.0/8"},
	{in: "203.0.113.0/24", out: "203.0.113.0/24"},
	{in: "203.0.113.77/32", out: "203.0.113.77"}, // one address: an exact entry
	{in: "0.0.0.0/0", out: "0.0.0.0/0"},
	{in: "2001:DB8:0:0:1::/32", out: "2001:db8::/32"},
	{in: "2001:db8::5/128", out: "2001:db8::5"},
	{in: "::ffff:10.1.2.3/104", out: "10.0.0.0/8"},
	{in: "::ffff:10.1.2.3/128", out: "10.1.2.3"},
	{in: "::ffff:0:0/96", out: "0.0.0.0/0"},
	{in: "::/0", out: "::/0"},
	{in: "10.0.0.0/33", err: "invalid CIDR range"},
	{in: "10.0.0.0/", err: "invalid CIDR range"},
	{in: "10.0.0.0/-1", err: "invalid CIDR range"},
	{in: "/8", err: "invalid CIDR range"},
	{in: "fe80::1%eth0/64", err: "invalid CIDR range"},
	{in: "10.0.0.0/8/8", err: "invalid CIDR range"},
	{in: "2001:db8::/129", err: "invalid CIDR range"},
	{in: "10.0.0.300", err: "invalid IP address"},
}

func TestNormalizeIP(t *testing.T) {
	for _, tc := range normalizeIPTests {
		got, err := NormalizeIP(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("NormalizeIP(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.out {
			t.Errorf("NormalizeIP(%q) = %q, %v; want %q", tc.in, got, err, tc.out)
		}
	}
}

// FuzzNormalizeIP: a normalised value normalises to itself, and a range
// entry made from it matches the address it was written with.
func FuzzNormalizeIP(f *testing.F) {
	for _, tc := range normalizeIPTests {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizeIP(in)
		if err != nil {
			return
		}
		if again, err := NormalizeIP(out); err != nil || again != out {
			t.Fatalf("NormalizeIP(%q) = %q, but that normalises to %q, %v", in, out, again, err)
		}
		addr, _, _ := strings.Cut(in, "/")
		a, err := netip.ParseAddr(addr)
		if err != nil {
			t.Fatalf("NormalizeIP accepted %q whose address does not parse", in)
		}
		a = a.WithZone("").Unmap()
		if a.Is4() && strings.Contains(out, ":") {
			return // an IPv6 range wider than ::ffff:0:0/96 holds no IPv4 client (TestListRanges)
		}
		_, block := NewLists()
		block.Put(Entry{Kind: KindIP, Value: out})
		if e, ok := block.Lookup(KindIP, a.String(), t0); !ok || e.Value != out {
			t.Fatalf("entry %q (from %q) does not match its own address %s", out, in, a)
		}
	})
}

// rangeEntries and rangeMatchTests: the entries of a block list, and which entry (if any) an
// address matches. The most specific entry wins.
var rangeEntries = []string{
	"10.0.0.0/8", "10.1.0.0/16", "10.1.2.3", "192.0.2.128/25", "0.0.0.0/1",
	"2001:db8::/32", "2001:db8:1::/48", "2001:db8:1::7", "::/0",
}

var rangeMatchTests = []struct{ addr, want string }{
	{"10.200.0.1", "10.0.0.0/8"},
	{"10.1.9.9", "10.1.0.0/16"},
	{"10.1.2.3", "10.1.2.3"},
	{"10.1.2.4", "10.1.0.0/16"},
	{"11.0.0.1", "0.0.0.0/1"},
	{"127.0.0.1", "0.0.0.0/1"},
	{"128.0.0.1", ""},
	{"192.0.2.127", ""},
	{"192.0.2.128", "192.0.2.128/25"},
	{"192.0.2.255", "192.0.2.128/25"},
	{"2001:db8:2::1", "2001:db8::/32"},
	{"2001:db8:1::1", "2001:db8:1::/48"},
	{"2001:db8:1::7", "2001:db8:1::7"},
	{"2001:db9::1", "::/0"},
	{"::ffff:10.200.0.1", "10.0.0.0/8"}, // mapped: as the IPv4 address
	{"::ffff:128.0.0.1", ""},            // "::/0" is every IPv6 client, not every client
	{"fe80::1", "::/0"},
	{"not-an-ip", ""},
	{"10.0.0.0/8", "10.0.0.0/8"},         // a range looks up its own entry
	{"10.0.0.0/9", ""},                   // not an entry, though inside one
	{"192.0.2.200/25", "192.0.2.128/25"}, // masked as Put masks it
}

func TestListRanges(t *testing.T) {
	for _, cache := range []int64{0, 1000} {
		allow, block := NewLists()
		for _, v := range rangeEntries {
			block.Put(Entry{Kind: KindIP, Value: v, Reason: "r " + v})
		}
		enf := newTestEnforcer(t, allow, block, cache)
		for _, tc := range rangeMatchTests {
			e, ok := block.Lookup(KindIP, tc.addr, t0)
			if ok != (tc.want != "") || e.Value != tc.want {
				t.Errorf("Lookup(%s) = %q, %v; want %q", tc.addr, e.Value, ok, tc.want)
			}
			if strings.Contains(tc.addr, "/") || tc.addr == "not-an-ip" {
				continue
			}
			req := Request{API: &API{Mode: ModeBlock}, Path: "/x", ContentLength: -1, Identities: Identities{KindIP: tc.addr}}
			v := enf.Check(&req, t0)
			if v.Deny != (tc.want != "") || v.Deny && v.Match.Value != tc.want {
				t.Errorf("cache %d: Check(%s) = %+v; want a refusal by %q", cache, tc.addr, v, tc.want)
			}
		}
		if block.Len() != len(rangeEntries) {
			t.Errorf("Len = %d, want %d", block.Len(), len(rangeEntries))
		}
		var got []string
		for _, e := range block.Entries(t0) {
			got = append(got, e.Value)
		}
		if len(got) != len(rangeEntries) {
			t.Errorf("Entries = %v, want every one of %v", got, rangeEntries)
		}
	}
}

// TestListRangeChangesAreSeenAtOnce: adding, removing and the expiry of a
// range change the verdict of a cached address at once (the generation
// bump, the entry's expiry), and Sweep frees expired ranges.
func TestListRangeChangesAreSeenAtOnce(t *testing.T) {
	allow, block := NewLists()
	enf := newTestEnforcer(t, allow, block, 1000)
	req := Request{API: &API{Mode: ModeBlock}, Path: "/x", ContentLength: -1, Identities: Identities{KindIP: "203.0.113.9"}}
	check := func(when time.Time, want bool, what string) {
		t.Helper()
		for range 2 { // the second through the cache
			if v := enf.Check(&req, when); v.Deny != want {
				t.Fatalf("%s: Deny = %v, want %v (%+v)", what, v.Deny, want, v)
			}
			enf.WaitCache()
		}
	}
	block.Put(Entry{Kind: KindIP, Value: "198.51.100.1"}) // lists not empty
	check(t0, false, "no range")
	gen := block.Generation()
	block.Put(Entry{Kind: KindIP, Value: "203.0.113.0/24", ExpiresAt: t0.Add(time.Minute)})
	if block.Generation() == gen {
		t.Fatal("a range Put did not bump the generation")
	}
	check(t0, true, "inside a blocked /24")
	check(t0.Add(time.Minute), false, "after the range's expiry")
	block.Put(Entry{Kind: KindIP, Value: "203.0.0.0/16"})
	check(t0.Add(time.Minute), true, "inside a live /16")
	if n := block.Sweep(t0.Add(time.Minute)); n != 1 || block.Len() != 2 {
		t.Fatalf("Sweep removed %d, Len %d; want 1, 2", n, block.Len())
	}
	if !block.Delete(KindIP, "203.0.0.0/16") || block.Delete(KindIP, "203.0.0.0/16") {
		t.Fatal("Delete of the /16: want true once, then false")
	}
	check(t0.Add(time.Minute), false, "after the /16 was deleted")
	if block.Len() != 1 {
		t.Fatalf("Len = %d, want 1", block.Len())
	}
	// An allow-listed range beats the block list.
	block.Put(Entry{Kind: KindIP, Value: "203.0.113.9"})
	check(t0, true, "exact block")
	allow.Put(Entry{Kind: KindIP, Value: "203.0.113.0/24"})
	if v := enf.Check(&req, t0); v.Reason != ReasonAllowList || v.Match.Value != "203.0.113.0/24" {
		t.Fatalf("allow-listed range: %+v", v)
	}
}

// TestListRangesConcurrent runs readers against range writers; run with -race.
func TestListRangesConcurrent(t *testing.T) {
	_, block := NewLists()
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				v := fmt.Sprintf("10.%d.%d.0/%d", w, i%50, 16+i%9)
				v, _ = NormalizeIP(v)
				block.Put(Entry{Kind: KindIP, Value: v, ExpiresAt: t0.Add(time.Duration(i%3) * time.Second)})
				if i%3 == 0 {
					block.Delete(KindIP, v)
				}
				if i%100 == 0 {
					block.Sweep(t0.Add(time.Second))
				}
			}
		}()
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				ids := Identities{KindIP: fmt.Sprintf("10.%d.%d.1", i%2, i%50)}
				block.Match(&ids, t0)
			}
		}()
	}
	wg.Wait()
	if n := len(block.Entries(time.Time{})); n != block.Len() {
		t.Fatalf("Len %d, but %d entries", block.Len(), n)
	}
}

// TestListRangesAgreeWithAScan: over random overlapping ranges of every
// length, added and removed, the trie finds what a scan over all ranges
// finds (the longest holding the address), and Len counts them.
func TestListRangesAgreeWithAScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	randAddr := func(v6 bool) netip.Addr {
		if v6 {
			var b [16]byte
			b[0], b[1], b[2] = 0x20, 0x01, byte(r.IntN(4)) // clustered, so ranges overlap
			for i := 3; i < 16; i++ {
				b[i] = byte(r.Uint32())
			}
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.Uint32()), byte(r.Uint32())})
	}
	_, block := NewLists()
	live := map[netip.Prefix]bool{}
	check := func(round int) {
		t.Helper()
		if block.Len() != len(live) {
			t.Fatalf("round %d: Len %d, want %d", round, block.Len(), len(live))
		}
		for i := range 3000 {
			a := randAddr(i%2 == 1)
			want, best := "", -1
			for p := range live {
				if p.Contains(a) && p.Bits() > best {
					best = p.Bits()
					want, _ = NormalizeIP(p.String())
				}
			}
			if e, _ := block.Lookup(KindIP, a.String(), t0); e.Value != want {
				t.Fatalf("round %d: Lookup(%s) = %q; a scan finds %q", round, a, e.Value, want)
			}
		}
	}
	for round := range 4 {
		for i := range 300 {
			v6 := i%2 == 1
			bitsMax := 31
			if v6 {
				bitsMax = 127
			}
			p := netip.PrefixFrom(randAddr(v6), r.IntN(bitsMax+1)).Masked()
			if p.Bits() < 6 {
				continue // keep most addresses outside every range
			}
			v, err := NormalizeIP(p.String())
			if err != nil {
				t.Fatal(err)
			}
			block.Put(Entry{Kind: KindIP, Value: v})
			live[p] = true
		}
		check(round)
		for p := range live {
			if r.IntN(2) == 0 {
				v, _ := NormalizeIP(p.String())
				if !block.Delete(KindIP, v) {
					t.Fatalf("Delete(%s) found nothing", v)
				}
				delete(live, p)
			}
		}
		check(round)
	}
}

// BenchmarkListMatch matches 10,000 clients (IPv4 and IPv6, none listed)
// against a block list of 200 addresses, without ranges and with 1,000
// ranges of 17 prefix lengths: the cost ranges add to a cache miss.
func BenchmarkListMatch(b *testing.B) {
	ids := make([]Identities, 10000)
	for i := range ids {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
		if i%4 == 3 {
			ip = fmt.Sprintf("2001:db8:ffff:%x::1", i)
		}
		ids[i] = Identities{KindIP: ip}
	}
	for _, ranges := range []int{0, 1000} {
		_, block := NewLists()
		for i := range 200 {
			block.Put(Entry{Kind: KindIP, Value: fmt.Sprintf("192.0.2.%d", i)})
		}
		for i := range ranges {
			v := fmt.Sprintf("%d.%d.%d.0/%d", 11+i%200, i%256, i/256, 12+i%9)
			if i%2 == 1 {
				v = fmt.Sprintf("2001:db8:%x::/%d", i, 40+i%8)
			}
			v, _ = NormalizeIP(v)
			block.Put(Entry{Kind: KindIP, Value: v})
		}
		b.Run(fmt.Sprintf("ranges=%d", ranges), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := block.Match(&ids[i%len(ids)], t0); ok {
					b.Fatal("matched")
				}
				i++
			}
		})
	}
}
