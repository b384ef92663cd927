package cluster

import (
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/test/envoysim"
	"github.com/vigil-project/vigil/test/redistest"
	"github.com/vigil-project/vigil/test/vigiltest"
)

func login(ip, user string) envoysim.HTTPRequest {
	body := url.Values{"username": {user}, "password": {"wrong"}}.Encode()
	return envoysim.HTTPRequest{Method: "POST", Path: "/shop/login", Authority: "shop.example.com", Body: []byte(body),
		Headers: envoysim.HeaderPairs("x-forwarded-for", ip, "content-type", "application/x-www-form-urlencoded")}
}

// refusedEverywhere reports whether every replica refuses a call from ip.
func (g *group) refusedEverywhere(ip string) bool {
	for _, r := range g.replicas {
		if r.send(g.t, get(ip, "/shop/items/1")).Status != 403 {
			return false
		}
	}
	return true
}

// detected returns the types of the attacks any replica reports on ip.
func (g *group) detected(ip string) []string {
	var types []string
	for _, r := range g.replicas {
		for _, a := range r.attacks(g.t) {
			if a.Identity.Kind == "ip" && a.Identity.Value == ip {
				types = append(types, a.Type)
			}
		}
	}
	return types
}

// TestAttacksSpreadOverReplicasAreDetectedOnlyWithRedis is the proof that
// sharing matters: a prober and a credential stuffer whose calls are spread
// round robin over three replicas are detected and then refused by all
// three when they share Redis, while three replicas without Redis, given
// the same calls (and more: the calls made until the shared group's block
// landed), each see a third of each attack and detect nothing.
func TestAttacksSpreadOverReplicasAreDetectedOnlyWithRedis(t *testing.T) {
	srv := redistest.Start(t)
	shared, alone := startGroup(t, 3, []string{srv.Addr()}, ""), startGroup(t, 3, nil, "")
	var wg sync.WaitGroup
	for _, g := range []*group{shared, alone} {
		wg.Go(g.train)
	}
	wg.Wait()

	for _, attack := range []struct {
		name, ip, want string
		call           func(ip string, i int) envoysim.HTTPRequest
	}{
		{"prober", "198.51.100.7", "probing", func(ip string, i int) envoysim.HTTPRequest { return get(ip, fmt.Sprintf("/shop/nope-%d", i)) }},
		{"credential stuffer", "198.51.100.8", "credential_stuffing", func(ip string, i int) envoysim.HTTPRequest { return login(ip, fmt.Sprintf("victim%d", i)) }},
	} {
		// Until the shared group refuses the attacker; every call also to
		// the group without Redis. 40 calls a second: a brisk client, whose
		// calls the block (after a flush and a join window) does not
		// overtake by more than a few.
		calls, refused := 0, false
		share := map[*replica]int64{} // the attacker's calls each replica without Redis had
		pace := time.NewTicker(25 * time.Millisecond)
		defer pace.Stop()
		deadline := time.Now().Add(30 * time.Second)
		for ; time.Now().Before(deadline) && !refused; calls++ {
			<-pace.C
			refused = shared.send(attack.call(attack.ip, calls)).Status == 403
			r := alone.pick()
			r.send(t, attack.call(attack.ip, calls))
			share[r]++
		}
		if !refused {
			t.Fatalf("%s: never refused by the replicas sharing Redis after %d calls", attack.name, calls)
		}
		vigiltest.Eventually(t, 2*time.Second, func() error {
			if !shared.refusedEverywhere(attack.ip) {
				return fmt.Errorf("%s: not refused by every replica", attack.name)
			}
			return nil
		})
		if types := shared.detected(attack.ip); !contains(types, attack.want) {
			t.Errorf("%s: the shared replicas report %v, want %s", attack.name, types, attack.want)
		}
		t.Logf("%s: refused by all three replicas sharing Redis after %d calls (%d per replica)", attack.name, calls, calls/3)
		// The group without Redis had the same calls: each replica a third.
		// Once each has judged all of its share:
		for _, r := range alone.replicas {
			want := share[r]
			vigiltest.Eventually(t, 5*time.Second, func() error {
				if n := r.requests(t, attack.ip); n < want {
					return fmt.Errorf("%s: %d of the attacker's %d calls handled", r.name, n, want)
				}
				return nil
			})
		}
		if types := alone.detected(attack.ip); len(types) > 0 {
			t.Errorf("%s: three replicas without Redis detected %v from a third of %d calls each: the test proves nothing", attack.name, types, calls)
		}
		for _, r := range alone.replicas {
			if res := r.send(t, get(attack.ip, "/shop/items/1")); res.Status == 403 {
				t.Errorf("%s: %s without Redis refuses the attacker", attack.name, r.name)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestBlockOnOneReplicaIsEnforcedByAllWithinASecond: a block list entry
// added through one replica's admin API refuses the client on the other
// two within a second; its removal lets it through again as fast.
func TestBlockOnOneReplicaIsEnforcedByAllWithinASecond(t *testing.T) {
	srv := redistest.Start(t)
	g := startGroup(t, 3, []string{srv.Addr()}, "")
	const ip = "203.0.113.50"
	for _, r := range g.replicas {
		if res := r.send(t, get(ip, "/shop/items/1")); res.Status != 200 {
			t.Fatalf("%s before the block: %d", r.name, res.Status)
		}
	}
	g.replicas[0].block(t, ip)
	added := time.Now()
	refusedWithin(t, time.Second, ip, g.replicas[1:]...)
	t.Logf("block enforced on every replica %s after it was added", time.Since(added).Round(time.Millisecond))
	if code, body := vigiltest.Call(t, g.replicas[2].api, "DELETE", "/v1/blocklist/ip/"+ip, ""); code != 204 && code != 200 {
		t.Fatalf("DELETE /v1/blocklist: %d %s", code, body)
	}
	removed := time.Now()
	for _, r := range g.replicas[:2] {
		vigiltest.Eventually(t, time.Second-time.Since(removed), func() error {
			if res := r.send(t, get(ip, "/shop/items/1")); res.Status != 200 {
				return fmt.Errorf("%s answers %d", r.name, res.Status)
			}
			return nil
		})
	}
}
