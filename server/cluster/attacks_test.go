package cluster

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/test/redistest"
)

type attackJournal struct {
	mu sync.Mutex
	m  map[string]*detect.Attack
}

func (j *attackJournal) PutAttack(a *detect.Attack) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.m[a.ID] = a
	return nil
}

type attackReplica struct {
	*replica
	store *detect.AttackStore
	j     *attackJournal
}

func newAttackReplica(t *testing.T, o Options) *attackReplica {
	t.Helper()
	r := &attackReplica{replica: &replica{aj: newMemJournal(), bj: newMemJournal()},
		store: detect.NewAttackStore(100), j: &attackJournal{m: map[string]*detect.Attack{}}}
	r.allow, r.block = detect.NewLists()
	r.c = open(t, o, func(c *Cluster) {
		c.ShareList("allow", r.allow, r.aj)
		c.ShareList("block", r.block, r.bj)
		c.ShareAttacks(r.store, r.j, func(err error) { t.Error(err) }, r.allow, r.block)
	})
	return r
}

// detectAttack does what the engine does when an identity crosses a
// threshold: records the attack, then blocks the identity.
func (r *attackReplica) detectAttack(t *testing.T, id, who string) {
	t.Helper()
	now := time.Now().UTC()
	until := now.Add(time.Hour)
	r.store.Add(&detect.Attack{ID: id, Type: detect.AttackType("probing"), API: "shop",
		Identity: detect.AttackIdentity{Kind: "username", Value: who}, FirstSeen: now, DetectedAt: now,
		Action: detect.ActionBlocked, BlockedUntil: &until})
	if err := r.block.Store(detect.Entry{Kind: detect.KindUsername, Value: who, Reason: "probing " + id,
		AttackID: id, CreatedAt: now, ExpiresAt: until}); err != nil {
		t.Fatal(err)
	}
}

func (r *attackReplica) ids() []string {
	list, _ := r.store.List(detect.AttackFilter{})
	var out []string
	for _, a := range list {
		out = append(out, a.ID)
	}
	return out
}

// TestAttackClaimMakesOneRecord: three replicas crossing the same threshold
// at once make one attack record: every replica lists that one, and every
// block entry names it; a false positive marked on a replica that lost the
// claim reaches the others.
func TestAttackClaimMakesOneRecord(t *testing.T) {
	s := redistest.Start(t)
	var rs []*attackReplica
	for i := 0; i < 3; i++ {
		rs = append(rs, newAttackReplica(t, withID(testOptions(s.Addr()), fmt.Sprintf("r%d", i))))
	}
	eventually(t, 5*time.Second, "all up", func() bool { return rs[0].c.Up() && rs[1].c.Up() && rs[2].c.Up() })
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Add(1)
		go func() { defer wg.Done(); r.detectAttack(t, fmt.Sprintf("atk-%d", i), "mallory") }()
	}
	wg.Wait()
	var winner string
	defer func() {
		if t.Failed() {
			for _, r := range rs {
				e, _ := r.block.Lookup(detect.KindUsername, "mallory", time.Now())
				t.Logf("%s: ids %v entry %+v", r.c.ReplicaID(), r.ids(), e)
			}
			t.Log(s.Do("HGETALL", "t:{shared}:attacks"))
			t.Log(s.Do("KEYS", "*"))
		}
	}()
	eventually(t, 5*time.Second, "one record everywhere", func() bool {
		first := rs[0].ids()
		if len(first) != 1 {
			return false
		}
		winner = first[0]
		for _, r := range rs {
			if ids := r.ids(); len(ids) != 1 || ids[0] != winner {
				return false
			}
			e, ok := r.block.Lookup(detect.KindUsername, "mallory", time.Now())
			if !ok || e.AttackID != winner || e.Reason != "probing "+winner {
				return false
			}
		}
		return true
	})
	if n := s.Do("HLEN", "t:{shared}:attacks"); n != "1" {
		t.Fatalf("Redis holds %s attack records, want 1", n)
	}
	lost := 0.0
	for _, r := range rs {
		lost += testutilCounter(t, r.c, "vigil_redis_attack_claims_total", "lost")
	}
	if lost != 2 {
		t.Fatalf("%v claims lost, want 2", lost)
	}

	// A false positive marked on a replica that did not record it.
	var loser *attackReplica
	for _, r := range rs {
		if r.c.ReplicaID() != "r"+winner[len(winner)-1:] {
			loser = r
			break
		}
	}
	a, _ := loser.store.Get(winner)
	upd := *a
	upd.FalsePositive = &detect.FalsePositive{At: time.Now().UTC()}
	loser.store.Update(&upd)
	eventually(t, 5*time.Second, "the false positive on every replica", func() bool {
		for _, r := range rs {
			if a, ok := r.store.Get(winner); !ok || a.FalsePositive == nil {
				return false
			}
		}
		return true
	})
	if n := s.Do("HLEN", "t:{shared}:attacks"); n != "1" {
		t.Fatalf("Redis holds %s attack records after the update, want 1", n)
	}
}

// TestAttacksOfEveryReplicaListed: attacks of different identities made on
// different replicas are all listed on each, journaled there; decoy records
// are never merged.
func TestAttacksOfEveryReplicaListed(t *testing.T) {
	s := redistest.Start(t)
	a := newAttackReplica(t, withID(testOptions(s.Addr()), "a"))
	b := newAttackReplica(t, withID(testOptions(s.Addr()), "b"))
	a.detectAttack(t, "atk-a", "alice")
	b.detectAttack(t, "atk-b", "bob")
	now := time.Now().UTC()
	for i := 0; i < 2; i++ {
		a.store.Add(&detect.Attack{ID: fmt.Sprintf("decoy-%d", i), Type: detect.AttackDecoy, API: "shop",
			Identity: detect.AttackIdentity{Kind: "ip", Value: "198.51.100.1"}, DetectedAt: now})
	}
	eventually(t, 5*time.Second, "four records on both", func() bool { return len(a.ids()) == 4 && len(b.ids()) == 4 })
	eventually(t, time.Second, "a's attack journaled on b", func() bool {
		b.j.mu.Lock()
		defer b.j.mu.Unlock()
		_, ok := b.j.m["atk-a"]
		return ok
	})
}

// TestAttacksLoadedAtStart: a replica starting later loads the cluster's
// attacks.
func TestAttacksLoadedAtStart(t *testing.T) {
	s := redistest.Start(t)
	a := newAttackReplica(t, withID(testOptions(s.Addr()), "a"))
	a.detectAttack(t, "atk-1", "carol")
	eventually(t, 5*time.Second, "stored in Redis", func() bool {
		n, _ := redistest.Command(s.Addr(), "HLEN", "t:{shared}:attacks")
		return n == "1"
	})
	b := newAttackReplica(t, withID(testOptions(s.Addr()), "b"))
	eventually(t, 5*time.Second, "loaded by b", func() bool { _, ok := b.store.Get("atk-1"); return ok })
}

// TestBlockNeverMergesIntoADetection: an identity first only detected
// (recorded, not acted on), then blocked: the block is its own record, and
// its list entry names it.
func TestBlockNeverMergesIntoADetection(t *testing.T) {
	s := redistest.Start(t)
	a := newAttackReplica(t, withID(testOptions(s.Addr()), "a"))
	eventually(t, 5*time.Second, "up", a.c.Up)
	now := time.Now().UTC()
	a.store.Add(&detect.Attack{ID: "det-1", Type: detect.AttackType("probing"), API: "shop",
		Identity: detect.AttackIdentity{Kind: "username", Value: "eve"}, DetectedAt: now, Action: detect.ActionDetected})
	a.detectAttack(t, "blk-1", "eve")
	eventually(t, 5*time.Second, "both records in Redis", func() bool {
		n, _ := redistest.Command(s.Addr(), "HLEN", "t:{shared}:attacks")
		return n == "2"
	})
	if e, ok := a.block.Lookup(detect.KindUsername, "eve", time.Now()); !ok || e.AttackID != "blk-1" {
		t.Fatalf("block entry %+v, want attack blk-1", e)
	}
}

// TestClaimLostDuringAStore: the claim is lost while the block entry that
// names the loser's record is being stored (after the rewrite check, before
// the entry is on the list): Redis still gets the winner's id, and so does
// the local list, shortly.
func TestClaimLostDuringAStore(t *testing.T) {
	s := redistest.Start(t)
	r := newAttackReplica(t, withID(testOptions(s.Addr()), "r"))
	eventually(t, 5*time.Second, "up", r.c.Up)
	key := r.c.claimKey(&detect.Attack{Type: "probing", API: "shop", Identity: detect.AttackIdentity{Kind: "username", Value: "eve"}, Action: detect.ActionBlocked})
	s.Do("SET", key, "atk-w", "PX", "60000") // another replica won
	r.block.SetRewrite(func(e *detect.Entry) {
		r.c.attacks.rewrite(e)
		eventually(t, 5*time.Second, "the claim lost", func() bool {
			return testutilCounter(t, r.c, "vigil_redis_attack_claims_total", "lost") == 1
		})
	})
	r.detectAttack(t, "atk-r", "eve")
	eventually(t, 5*time.Second, "Redis' entry names the winner", func() bool {
		v, _ := redistest.Command(s.Addr(), "HGET", "t:{shared}:list:block", "username:eve")
		return strings.Contains(v, `"attack_id":"atk-w"`)
	})
	eventually(t, 5*time.Second, "the local entry names the winner", func() bool {
		e, ok := r.block.Lookup(detect.KindUsername, "eve", time.Now())
		return ok && e.AttackID == "atk-w" && e.Reason == "probing atk-w"
	})
	if _, ok := r.store.Get("atk-r"); ok {
		t.Fatal("the loser's record is still listed")
	}
}
