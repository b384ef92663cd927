// Package cluster runs several `vigil serve` binaries sharing one real
// redis-server (test/redistest starts it on a free loopback port), with
// their calls spread round robin over them as Envoy spreads them over a
// cluster's endpoints, and checks that they detect and enforce as one node.
package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/test/envoysim"
	"github.com/vigil-project/vigil/test/vigilbin"
	"github.com/vigil-project/vigil/test/vigiltest"
)

func TestMain(m *testing.M) { vigilbin.Main(m) }

// writeConfig writes the replica's vigil.yaml in dir and returns its path.
func writeConfig(t *testing.T, dir, name string, redisAddrs []string, extra, key string) string {
	t.Helper()
	redis := ""
	if len(redisAddrs) > 0 {
		redis = fmt.Sprintf("redis:\n  addrs: [%s]\n  replica_id: %s\n  flush_interval: 100ms\n", strings.Join(redisAddrs, ", "), name)
	}
	cfg := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(shopConfig, key, redis)+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// servingRE is `vigil serve`'s "vigil serving" log line, with its addresses.
var servingRE = regexp.MustCompile(`"grpc_addr":"([^"]+)","admin_addr":"([^"]+)".*"message":"vigil serving"`)

// fingerprintKey is every replica's fingerprint key (a cluster refuses a
// replica whose key differs).
const fingerprintKey = "8f3c1e2a9b7d4c6e5f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a"

// shopConfig is an API whose model is ready after 100 requests from 10
// identities, in block mode; %s is the redis section (or nothing).
const shopConfig = `
trusted_hops: 1
fingerprint_key: %s
training: {duration: 0s, min_requests: 100, min_identities: 10, relearn_interval: 1h}
pipeline: {join_window: 100ms}
shutdown: {drain_delay: 0s}
apis:
  - {name: shop, hosts: [shop.example.com], base_path: /shop, mode: block}
%s`

// replica is one running `vigil serve`.
type replica struct {
	*vigiltest.Process
	name        string
	grpc, admin string
	api         *adminapi.Client
	extproc     extprocv3.ExternalProcessorClient
}

// group is replicas behind a round-robin balancer.
type group struct {
	t        *testing.T
	replicas []*replica
	next     atomic.Uint64
}

// startGroup runs n replicas, on Redis at redisAddrs when there are any,
// each with its own data directory.
func startGroup(t *testing.T, n int, redisAddrs []string, extra string) *group {
	t.Helper()
	g := &group{t: t}
	for i := range n {
		g.replicas = append(g.replicas, startReplica(t, fmt.Sprintf("r%d", i+1), t.TempDir(), redisAddrs, extra))
	}
	return g
}

// startReplica runs one `vigil serve` on data directory dir.
func startReplica(t *testing.T, name, dir string, redisAddrs []string, extra string) *replica {
	t.Helper()
	cfg := writeConfig(t, dir, name, redisAddrs, extra, fingerprintKey)
	p := vigiltest.Binary{
		Args:  []string{"serve", "--config", cfg, "--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--log-level", "info"},
		Ready: servingRE, ReadyWithin: 30 * time.Second,
	}.Start(t)
	conn, err := grpc.NewClient(p.Ready[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &replica{Process: p, name: name, grpc: p.Ready[1], admin: p.Ready[2],
		api: adminapi.NewClient(p.Ready[2], ""), extproc: extprocv3.NewExternalProcessorClient(conn)}
}

var buffered = envoysim.Config{
	RequestHeaderMode:  envoysim.Send,
	RequestBodyMode:    envoysim.Buffered,
	ResponseHeaderMode: envoysim.Send,
	MessageTimeout:     5 * time.Second,
}

// shopUpstream is the shop's back end: paths with /nope do not exist, a
// login with password "right" succeeds.
func shopUpstream(r envoysim.HTTPRequest) envoysim.HTTPResponse {
	switch {
	case strings.Contains(r.Path, "/nope"):
		return envoysim.HTTPResponse{Status: 404}
	case strings.HasSuffix(r.Path, "/login") && !strings.Contains(string(r.Body), `"right"`):
		return envoysim.HTTPResponse{Status: 401}
	}
	return envoysim.HTTPResponse{Status: 200, Body: []byte(`{"ok":true}`)}
}

// send sends req through ext_proc to the next replica in turn.
func (g *group) send(req envoysim.HTTPRequest) *envoysim.Result {
	return g.pick().send(g.t, req)
}

// pick returns the next replica in turn.
func (g *group) pick() *replica {
	return g.replicas[(g.next.Add(1)-1)%uint64(len(g.replicas))]
}

func (r *replica) send(t *testing.T, req envoysim.HTTPRequest) *envoysim.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := envoysim.Do(ctx, r.extproc, buffered, req, shopUpstream)
	if err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
	return res
}

func get(ip, path string) envoysim.HTTPRequest {
	return envoysim.HTTPRequest{Method: "GET", Path: path, Authority: "shop.example.com", Headers: envoysim.HeaderPairs("x-forwarded-for", ip)}
}

// train sends 300 benign calls from 20 clients round robin and waits until
// every replica's shop model is ready.
func (g *group) train() {
	g.t.Helper()
	for i := range 300 {
		g.send(get(fmt.Sprintf("10.0.0.%d", i%20), fmt.Sprintf("/shop/items/%d", i%7)))
	}
	for _, r := range g.replicas {
		vigiltest.Eventually(g.t, 20*time.Second, func() error {
			var m struct {
				Status struct{ State string } `json:"status"`
			}
			code, body, err := r.api.Raw(context.Background(), "GET", adminapi.Path("/v1/models/shop"), nil)
			if err != nil || code != 200 {
				return fmt.Errorf("%s: GET /v1/models/shop: %d %v", r.name, code, err)
			}
			if err := json.Unmarshal(body, &m); err != nil {
				return err
			}
			if m.Status.State != "ready" {
				return fmt.Errorf("%s: model %s", r.name, m.Status.State)
			}
			return nil
		})
	}
}

// attacks returns the attacks a replica reports.
func (r *replica) attacks(t *testing.T) []adminAttack {
	t.Helper()
	code, body, err := r.api.Raw(context.Background(), "GET", adminapi.Path("/v1/attacks?limit=1000"), nil)
	if err != nil || code != 200 {
		t.Fatalf("%s: GET /v1/attacks: %d %v %s", r.name, code, err, body)
	}
	var page struct {
		Attacks []adminAttack `json:"attacks"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	return page.Attacks
}

type adminAttack struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Action   string `json:"action"`
	Identity struct {
		Kind  string `json:"kind"`
		Value string `json:"value"`
	} `json:"identity"`
}

// requests is how many calls of ip the replica has handled (its forensics).
func (r *replica) requests(t *testing.T, ip string) int64 {
	t.Helper()
	f, err := r.api.Forensics(context.Background(), "ip", ip)
	if err != nil {
		return 0 // not seen yet: 404
	}
	return f.Summary.TotalRequests
}

// status is the replica's GET /v1/status cluster object.
func (r *replica) status(t *testing.T) adminapi.ClusterStatus {
	t.Helper()
	code, body, err := r.api.Raw(context.Background(), "GET", adminapi.Path("/v1/status"), nil)
	if err != nil || code != 200 {
		t.Fatalf("%s: GET /v1/status: %d %v %s", r.name, code, err, body)
	}
	var st struct {
		Cluster *adminapi.ClusterStatus `json:"cluster"`
	}
	if err := json.Unmarshal(body, &st); err != nil || st.Cluster == nil {
		t.Fatalf("%s: GET /v1/status: %s (%v)", r.name, body, err)
	}
	return *st.Cluster
}

// block puts ip on the block list through the replica's admin API.
func (r *replica) block(t *testing.T, ip string) {
	t.Helper()
	if code, body := vigiltest.Call(t, r.api, "POST", "/v1/blocklist", `{"kind":"ip","value":"`+ip+`","ttl":"1h","reason":"manual"}`); code != 201 && code != 200 {
		t.Fatalf("%s: POST /v1/blocklist: %d %s", r.name, code, body)
	}
}

// refusedWithin fails the test unless every replica of rs refuses ip
// within d.
func refusedWithin(t *testing.T, d time.Duration, ip string, rs ...*replica) {
	t.Helper()
	start := time.Now()
	for _, r := range rs {
		vigiltest.Eventually(t, max(d-time.Since(start), time.Millisecond), func() error {
			if res := r.send(t, get(ip, "/shop/items/1")); res.Status != 403 {
				return fmt.Errorf("%s answers %d to %s", r.name, res.Status, ip)
			}
			return nil
		})
	}
}
