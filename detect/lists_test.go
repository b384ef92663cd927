package detect

import (
	"fmt"
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
