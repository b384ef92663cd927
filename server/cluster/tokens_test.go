package cluster

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/decoy"
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/test/redistest"
)

var shop = &detect.API{Name: "shop", Hosts: []string{"shop.example.com"}, BasePath: "/shop", Mode: detect.ModeBlock}

// tokenJournal records honeytokens like the bbolt store would.
type tokenJournal struct {
	mu sync.Mutex
	m  map[string]*decoy.Honeytoken
}

func (j *tokenJournal) PutHoneytoken(fp string, h *decoy.Honeytoken) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.m[fp] = h
	return nil
}

func (j *tokenJournal) len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.m)
}

type trapReplica struct {
	c    *Cluster
	trap *decoy.Trap
	j    *tokenJournal
	mu   sync.Mutex
	n    int
}

func newTrapReplica(t *testing.T, o Options) *trapReplica {
	t.Helper()
	fp, err := detect.NewFingerprinter([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	r := &trapReplica{j: &tokenJournal{m: map[string]*decoy.Honeytoken{}}}
	r.trap, err = decoy.New(decoy.Config{Builtin: true, TTL: time.Hour, APIs: []decoy.APIDecoys{{API: shop}}}, fp, decoy.Actions{
		AttackID: func() string {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.n++
			return strings.Repeat("b", 23) + string(rune('0'+r.n%10))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.c = open(t, o, func(c *Cluster) { c.ShareDecoys(r.trap, r.j) })
	return r
}

func (r *trapReplica) hits(path string) int64 {
	for _, s := range r.trap.Stats() {
		if s.Path == path {
			return s.Hits
		}
	}
	return -1
}

// TestHoneytokenPlantedOnOneIsKnownOnAnother: a honeytoken planted by one
// replica's decoy answer gives its user away on another replica, which
// journals it; Redis holds its fingerprint only. Decoy hits are summed
// over the replicas.
func TestHoneytokenPlantedOnOneIsKnownOnAnother(t *testing.T) {
	s := redistest.Start(t)
	a := newTrapReplica(t, withID(testOptions(s.Addr()), "a"))
	b := newTrapReplica(t, withID(testOptions(s.Addr()), "b"))
	eventually(t, 5*time.Second, "both up", func() bool { return a.c.Up() && b.c.Up() })

	ans := a.trap.Hook(&detect.Request{API: shop, Host: "shop.example.com", Method: "GET", Path: "/shop/.env",
		Identities: detect.Identities{detect.KindIP: "198.51.100.9"}})
	if ans == nil || a.trap.Honeytokens() == 0 {
		t.Fatal("the decoy planted no honeytoken")
	}
	eventually(t, time.Second, "b knows a's honeytokens", func() bool { return b.trap.Honeytokens() == a.trap.Honeytokens() })
	eventually(t, time.Second, "b journals a's honeytokens", func() bool { return b.j.len() == int(a.trap.Honeytokens()) })
	var fp string
	a.trap.EachHoneytoken(func(f string, _ *decoy.Honeytoken) { fp = f })
	used := b.trap.Hook(&detect.Request{API: shop, Host: "shop.example.com", Method: "GET", Path: "/shop/orders",
		Identities: detect.Identities{detect.KindIP: "203.0.113.50", detect.KindToken: fp}})
	if used == nil || used.Status != 401 {
		t.Fatalf("a's honeytoken used on b: %+v, want the honeytoken answer", used)
	}
	if got := s.Do("HGETALL", "t:{shared}:honeytokens"); strings.Contains(got, string(ans.Body[:min(len(ans.Body), 40)])) {
		t.Fatal("Redis holds the decoy answer's secrets")
	}

	// Hits: one on a, two on b; both show three.
	b.trap.Hook(&detect.Request{API: shop, Host: "shop.example.com", Method: "GET", Path: "/shop/.env", Identities: detect.Identities{detect.KindIP: "198.51.100.10"}})
	b.trap.Hook(&detect.Request{API: shop, Host: "shop.example.com", Method: "GET", Path: "/shop/.env", Identities: detect.Identities{detect.KindIP: "198.51.100.11"}})
	eventually(t, 5*time.Second, "hits summed on both", func() bool { return a.hits("/shop/.env") == 3 && b.hits("/shop/.env") == 3 })
	// Stable: no double counting in later rounds (several health intervals).
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if a.hits("/shop/.env") != 3 || b.hits("/shop/.env") != 3 {
			t.Fatalf("hits drifted: a %d, b %d", a.hits("/shop/.env"), b.hits("/shop/.env"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDecoyStateReseeded: after Redis restarted empty, the honeytokens and
// the hit counts are written back, without counting hits twice.
func TestDecoyStateReseeded(t *testing.T) {
	s := redistest.Start(t)
	a := newTrapReplica(t, withID(testOptions(s.Addr()), "a"))
	b := newTrapReplica(t, withID(testOptions(s.Addr()), "b"))
	a.trap.Hook(&detect.Request{API: shop, Host: "shop.example.com", Method: "GET", Path: "/shop/.env", Identities: detect.Identities{detect.KindIP: "198.51.100.9"}})
	eventually(t, 5*time.Second, "b has the hit and the tokens", func() bool {
		return b.hits("/shop/.env") == 1 && b.trap.Honeytokens() == a.trap.Honeytokens()
	})
	s.Restart()
	eventually(t, 10*time.Second, "honeytokens and hits re-seeded", func() bool {
		n, _ := redistest.Command(s.Addr(), "HLEN", "t:{shared}:honeytokens")
		h, _ := redistest.Command(s.Addr(), "HGET", "t:{shared}:decoy:hits", "shop /shop/.env")
		return n != "0" && n != "" && h == "1"
	})
	if a.hits("/shop/.env") != 1 || b.hits("/shop/.env") != 1 {
		t.Fatalf("hits after the re-seed: a %d, b %d, want 1", a.hits("/shop/.env"), b.hits("/shop/.env"))
	}
}
