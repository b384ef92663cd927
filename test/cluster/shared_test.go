package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/test/envoysim"
	"github.com/vigil-project/vigil/test/redistest"
	"github.com/vigil-project/vigil/test/vigiltest"
)

var liveKey = regexp.MustCompile(`sk_live_[A-Za-z0-9]{24}\b`)

// TestHoneytokenPlantedOnOneReplicaIsCaughtOnAnother: the API key a
// replica's decoy hands a prober is a honeytoken on every replica: used
// later on another one, from a fresh address, it is refused and blocks
// that address everywhere.
func TestHoneytokenPlantedOnOneReplicaIsCaughtOnAnother(t *testing.T) {
	srv := redistest.Start(t)
	g := startGroup(t, 3, []string{srv.Addr()}, "decoy_builtin: true\n")
	res := g.replicas[0].send(t, get("198.51.100.20", "/shop/.env"))
	key := liveKey.Find(res.Body)
	if res.Status != 200 || key == nil {
		t.Fatalf(".env answer %d without an API key:\n%s", res.Status, res.Body)
	}
	const user = "203.0.113.77"
	use := envoysim.HTTPRequest{Method: "GET", Path: "/shop/items/1", Authority: "shop.example.com",
		Headers: envoysim.HeaderPairs("x-forwarded-for", user, "x-api-key", string(key))}
	planted := time.Now()
	vigiltest.Eventually(t, time.Second, func() error {
		if r := g.replicas[1].send(t, use); r.UpstreamCalled || r.Status == 200 {
			return fmt.Errorf("the honeytoken went through on r2: %d", r.Status)
		}
		return nil
	})
	t.Logf("honeytoken known on another replica %s after it was planted", time.Since(planted).Round(time.Millisecond))
	refusedWithin(t, time.Second, user, g.replicas...)
}

// TestModelChangesReachEveryReplica: knobs set through one replica's
// PUT /v1/models/{api} are every replica's within seconds, and one
// replica trains while the others adopt its thresholds.
func TestModelChangesReachEveryReplica(t *testing.T) {
	srv := redistest.Start(t)
	g := startGroup(t, 3, []string{srv.Addr()}, "")
	g.train()
	trainers := 0
	for _, r := range g.replicas {
		if r.status(t).Trainer {
			trainers++
		}
	}
	if trainers != 1 {
		t.Fatalf("%d replicas train, want 1", trainers)
	}
	if code, body := vigiltest.Call(t, g.replicas[2].api, "PUT", "/v1/models/shop", `{"types":{"probing":{"sensitivity":1.7}}}`); code != 200 {
		t.Fatalf("PUT /v1/models/shop: %d %s", code, body)
	}
	for _, r := range g.replicas[:2] {
		vigiltest.Eventually(t, 10*time.Second, func() error {
			if s := sensitivity(t, r, "probing"); s != 1.7 {
				return fmt.Errorf("%s: probing sensitivity %v", r.name, s)
			}
			return nil
		})
	}
}

func sensitivity(t *testing.T, r *replica, typ string) float64 {
	t.Helper()
	code, body, err := r.api.Raw(context.Background(), "GET", adminapi.Path("/v1/models/shop"), nil)
	if err != nil || code != 200 {
		t.Fatalf("%s: GET /v1/models/shop: %d %v", r.name, code, err)
	}
	var m struct {
		Types map[string]struct{ Sensitivity float64 } `json:"types"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m.Types[typ].Sensitivity
}

// TestOnRedisCluster: on a 3-master Redis Cluster the replicas share as
// on one server: a prober spread round robin is refused by all three, and
// a block made on one reaches the others within a second.
func TestOnRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	g := startGroup(t, 3, c.Addrs(), "")
	g.train()
	const prober = "198.51.100.40"
	pace := time.NewTicker(25 * time.Millisecond)
	defer pace.Stop()
	refused := false
	for i := 0; i < 300 && !refused; i++ {
		<-pace.C
		refused = g.send(get(prober, fmt.Sprintf("/shop/nope-%d", i))).Status == 403
	}
	if !refused {
		t.Fatal("the prober was never refused")
	}
	refusedWithin(t, 2*time.Second, prober, g.replicas...)
	g.replicas[0].block(t, "203.0.113.60")
	refusedWithin(t, time.Second, "203.0.113.60", g.replicas[1:]...)
	if st := g.replicas[0].status(t); st.Mode != adminapi.ClusterModeCluster {
		t.Errorf("status mode %q, want %q", st.Mode, adminapi.ClusterModeCluster)
	}
}
