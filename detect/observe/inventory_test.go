package observe

import (
	"encoding/json"
	"fmt"
	"github.com/vigil-project/vigil/detect"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

var _ detect.Sink = (*Inventory)(nil)

var (
	ordersAPI   = &detect.API{Name: "orders", BasePath: "/orders", Hosts: []string{"shop.test"}, Mode: detect.ModeBlock}
	paymentsAPI = &detect.API{Name: "payments", BasePath: "/pay", Mode: detect.ModeDetect}
	discovered  = &detect.API{Name: "", BasePath: "/", Mode: detect.ModeLearn, Discovered: true}
)

func call(api *detect.API, host, method, path string, status int, at time.Duration) *detect.Transaction {
	return &detect.Transaction{API: api, Host: host, Method: method, Path: path, Status: status, Start: t0.Add(at), HasRequest: true, Complete: status != 0}
}

func apiByName(t *testing.T, stats []APIStats, name string) APIStats {
	t.Helper()
	for _, s := range stats {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no API %q in %v", name, names(stats))
	return APIStats{}
}

func names(stats []APIStats) []string {
	var out []string
	for _, s := range stats {
		out = append(out, s.Name)
	}
	return out
}

func TestInventoryConfiguredAndDiscovered(t *testing.T) {
	inv := NewInventory([]*detect.API{ordersAPI, paymentsAPI}, 10, 10)
	for _, tx := range []*detect.Transaction{
		call(ordersAPI, "shop.test", "GET", "/orders/42", 200, 2*time.Second),
		call(ordersAPI, "Shop.TEST:443", "GET", "/orders/43?x=1", 404, time.Second), // earlier: arrives late
		call(ordersAPI, "shop.test", "GET", "/orders/44", 0, 3*time.Second),
		call(ordersAPI, "shop.test", "POST", "/orders", 201, 4*time.Second),
		call(discovered, "API.Example.com:8443", "GET", "/api/v2/items/7", 200, 5*time.Second),
		call(discovered, "api.example.com", "DELETE", "/api/v2/items/8", 503, 6*time.Second),
		call(discovered, "api.example.com", "GET", "/health", 200, 7*time.Second),
		call(nil, "", "GET", "/", 302, 8*time.Second),
	} {
		inv.Consume(tx)
	}
	blocked := call(ordersAPI, "shop.test", "GET", "/orders/45", 403, 9*time.Second)
	blocked.Blocked = true
	inv.Consume(blocked)
	would := call(discovered, "api.example.com", "GET", "/health", 200, 10*time.Second)
	would.WouldBlock = true
	inv.Consume(would)

	stats := inv.APIs(discovered)
	if got, want := names(stats), []string{"api.example.com/api/v2/items", "api.example.com/health", "orders", "payments", "unknown-host"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("APIs = %v, want %v", got, want)
	}
	orders := apiByName(t, stats, "orders")
	t1, t9 := t0.Add(time.Second), t0.Add(9*time.Second)
	if orders.Discovered || orders.Mode != "block" || orders.BasePath != "/orders" || orders.Requests != 5 || orders.Blocked != 1 ||
		!reflect.DeepEqual(orders.Hosts, []string{"shop.test"}) || !orders.FirstSeen.Equal(t1) || !orders.LastSeen.Equal(t9) {
		t.Errorf("orders = %+v", orders)
	}
	want := []EndpointStats{
		{Method: "POST", Path: "/orders", Requests: 1, Status: map[string]uint64{"2xx": 1}, FirstSeen: t0.Add(4 * time.Second), LastSeen: t0.Add(4 * time.Second)},
		{Method: "GET", Path: "/orders/{id}", Requests: 4, Status: map[string]uint64{"2xx": 1, "4xx": 2, "unknown": 1}, FirstSeen: t1, LastSeen: t9},
	}
	if !reflect.DeepEqual(orders.Endpoints, want) {
		t.Errorf("orders endpoints:\n got %+v\nwant %+v", orders.Endpoints, want)
	}

	items := apiByName(t, stats, "api.example.com/api/v2/items")
	if !items.Discovered || items.Mode != "learn" || items.BasePath != "/api/v2/items" || items.Requests != 2 ||
		!reflect.DeepEqual(items.Hosts, []string{"api.example.com"}) || len(items.Endpoints) != 2 ||
		items.Endpoints[0].Method != "DELETE" || items.Endpoints[0].Status["5xx"] != 1 {
		t.Errorf("items = %+v", items)
	}
	if h := apiByName(t, stats, "api.example.com/health"); h.WouldBlock != 1 || h.Requests != 2 {
		t.Errorf("health = %+v", h)
	}
	if p := apiByName(t, stats, "payments"); p.Discovered || p.Mode != "detect" || p.Requests != 0 || p.FirstSeen != nil || len(p.Endpoints) != 0 {
		t.Errorf("payments, never called = %+v", p)
	}
	if u := apiByName(t, stats, "unknown-host"); u.Endpoints[0].Status["3xx"] != 1 || len(u.Hosts) != 0 {
		t.Errorf("unknown-host = %+v", u)
	}
	if _, err := json.Marshal(stats); err != nil {
		t.Fatal(err)
	}
	// Without a fallback, discovered APIs have no mode.
	if m := apiByName(t, inv.APIs(nil), "api.example.com/health").Mode; m != "" {
		t.Errorf("mode without fallback = %q", m)
	}
}

func TestInventoryStatusClasses(t *testing.T) {
	inv := NewInventory(nil, 10, 10)
	for _, s := range []int{0, -1, 99, 101, 200, 299, 302, 404, 503, 599, 600, 1000} {
		inv.Consume(call(discovered, "h", "GET", "/x", s, 0))
	}
	got := inv.APIs(discovered)[0].Endpoints[0].Status
	want := map[string]uint64{"unknown": 5, "1xx": 1, "2xx": 2, "3xx": 1, "4xx": 1, "5xx": 2}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("status classes %v, want %v", got, want)
	}
}

// TestInventoryBounds: the limit on discovered APIs leaves room for
// discovered APIs whatever the number of configured ones, and the per-API
// endpoint limit counts what it turns away.
func TestInventoryBounds(t *testing.T) {
	inv := NewInventory([]*detect.API{ordersAPI, paymentsAPI}, 2, 3)
	for i := 0; i < 5; i++ {
		inv.Consume(call(discovered, fmt.Sprintf("h%d.test", i), "GET", "/", 200, 0))
	}
	for i := 0; i < 6; i++ {
		inv.Consume(call(ordersAPI, "shop.test", "GET", fmt.Sprintf("/orders/list%c", 'a'+i), 200, 0))
	}
	stats := inv.APIs(discovered)
	if got := names(stats); !reflect.DeepEqual(got, []string{"h0.test", "h1.test", "orders", "payments"}) {
		t.Fatalf("APIs = %v", got)
	}
	if inv.OverflowAPIs() != 3 {
		t.Errorf("OverflowAPIs = %d, want 3", inv.OverflowAPIs())
	}
	orders := apiByName(t, stats, "orders")
	if len(orders.Endpoints) != 3 || orders.OverflowRequests != 3 || orders.Requests != 6 {
		t.Errorf("orders: %d endpoints, overflow %d, requests %d", len(orders.Endpoints), orders.OverflowRequests, orders.Requests)
	}
	// Known APIs and endpoints keep counting past the limits.
	inv.Consume(call(discovered, "h0.test", "GET", "/", 200, 0))
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/lista", 200, 0))
	stats = inv.APIs(discovered)
	if h := apiByName(t, stats, "h0.test"); h.Requests != 2 {
		t.Errorf("h0.test requests %d", h.Requests)
	}
	if o := apiByName(t, stats, "orders"); o.Endpoints[0].Requests != 2 || o.OverflowRequests != 3 {
		t.Errorf("orders %+v", o)
	}
}

func TestInventoryLateConfiguredAPI(t *testing.T) {
	inv := NewInventory(nil, 0, 10) // no room for discovered APIs at all
	late := &detect.API{Name: "late", BasePath: "/late", Hosts: []string{"late.test"}, Mode: detect.ModeDetect}
	inv.Consume(call(late, "late.test", "GET", "/late/1", 200, 0))
	stats := inv.APIs(discovered)
	if len(stats) != 1 || stats[0].Name != "late" || stats[0].Discovered || stats[0].Mode != "detect" || inv.OverflowAPIs() != 0 {
		t.Fatalf("stats %+v, overflow %d", stats, inv.OverflowAPIs())
	}
}

func TestInventoryHostsBounded(t *testing.T) {
	inv := NewInventory(nil, 10, 10)
	api := &detect.API{Name: "many-hosts", BasePath: "/"}
	for i := 0; i < 40; i++ {
		inv.Consume(call(api, fmt.Sprintf("H%02d.test:80", i), "GET", "/", 200, 0))
	}
	hosts := inv.APIs(nil)[0].Hosts
	if len(hosts) != 16 || hosts[0] != "h00.test" {
		t.Fatalf("hosts %v", hosts)
	}
}

// TestInventoryKeepsCopies: request strings may share Envoy's message
// buffers; what the inventory keeps must not change with them.
func TestInventoryKeepsCopies(t *testing.T) {
	inv := NewInventory(nil, 10, 10)
	buf := []byte("Mixed.Example.com|PROPFIND|/dav/files")
	str := unsafe.String(&buf[0], len(buf))
	host, rest, _ := strings.Cut(str, "|")
	method, path, _ := strings.Cut(rest, "|")
	inv.Consume(&detect.Transaction{API: discovered, Host: host, Method: method, Path: path, HasRequest: true})
	for i := range buf {
		buf[i] = 'Z'
	}
	s := inv.APIs(nil)[0]
	if s.Name != "mixed.example.com/dav" || s.BasePath != "/dav" || s.Hosts[0] != "mixed.example.com" ||
		s.Endpoints[0].Method != "PROPFIND" || s.Endpoints[0].Path != "/dav/files" {
		t.Fatalf("inventory aliases request strings: %+v", s)
	}
}

func TestInventoryConcurrent(t *testing.T) {
	inv := NewInventory([]*detect.API{ordersAPI}, 50, 50)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				inv.Consume(call(discovered, fmt.Sprintf("h%d.test", i%70), "GET", fmt.Sprintf("/p%d/%d", i%3, i), 200, time.Duration(i)))
				if i%50 == 0 {
					inv.APIs(discovered)
				}
			}
		}()
	}
	wg.Wait()
	var total uint64
	for _, s := range inv.APIs(discovered) {
		total += s.Requests
	}
	if total+inv.OverflowAPIs() != 2000 {
		t.Fatalf("%d requests + %d overflow, want 2000", total, inv.OverflowAPIs())
	}
}

func BenchmarkInventoryConsume(b *testing.B) {
	inv := NewInventory([]*detect.API{ordersAPI}, 1000, 1000)
	txs := make([]*detect.Transaction, 256)
	for i := range txs {
		txs[i] = call(ordersAPI, "shop.test", "GET", fmt.Sprintf("/orders/%d/items/%d", i, i*7), 200, 0)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		inv.Consume(txs[i%len(txs)])
		i++
	}
}

// TestInventoryActivityBeforeTheFirstCall: a configured API before its
// first call, and an API restored after a restart before traffic, have a
// time line of zeros (it once was a nil pointer dereference).
func TestInventoryActivityBeforeTheFirstCall(t *testing.T) {
	inv := NewInventory([]*detect.API{ordersAPI}, 10, 10)
	inv.Restore([]APIStats{{Name: "api.example.com/v1", BasePath: "/v1", Discovered: true, Requests: 7}})
	for _, api := range []string{"orders", "api.example.com/v1"} {
		points, step, ok := inv.Activity(api, t0.Add(-10*time.Minute), t0, 5*time.Minute)
		if !ok || step != 5*time.Minute || len(points) != 3 {
			t.Fatalf("%s: %d points, step %v, ok %v; want 3 points of 5m", api, len(points), step, ok)
		}
		for _, p := range points {
			if p.Requests != 0 || p.Blocked != 0 {
				t.Fatalf("%s: activity %+v before any call", api, p)
			}
		}
	}
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/1", 200, -time.Minute))
	points, _, _ := inv.Activity("orders", t0.Add(-10*time.Minute), t0, 5*time.Minute)
	if points[1].Requests != 1 { // 11:55–12:00
		t.Fatalf("after a call: %+v", points)
	}
	if _, _, ok := inv.Activity("nosuch", t0.Add(-time.Minute), t0, time.Minute); ok {
		t.Fatal("an unknown API has activity")
	}
}

// TestInventoryScannerLeavesNoEndpoints: a scanner's guesses answered 404
// or 405, and its calls refused once it was blocked, add no endpoint: the
// misses are counted on the API, and a real endpoint called afterwards is
// recorded.
func TestInventoryScannerLeavesNoEndpoints(t *testing.T) {
	inv := NewInventory([]*detect.API{ordersAPI}, 10, 20)
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/42", 200, 0))
	for i := range 10 {
		status := 404
		if i%2 == 1 {
			status = 405
		}
		inv.Consume(call(ordersAPI, "shop.test", "GET", fmt.Sprintf("/orders/word%c", 'a'+i), status, time.Second))
	}
	for i := range 990 { // the scanner is blocked: Vigil answers
		tx := call(ordersAPI, "shop.test", "GET", fmt.Sprintf("/orders/guess%d", i), 403, 2*time.Second)
		tx.Blocked, tx.Reason = true, detect.ReasonBlockList
		inv.Consume(tx)
	}
	inv.Consume(call(nil, "elsewhere.test", "GET", "/nothing/here", 404, 3*time.Second)) // no API from a miss either
	inv.Consume(call(ordersAPI, "shop.test", "POST", "/orders", 201, 4*time.Second))
	stats := inv.APIs(discovered)
	o := apiByName(t, stats, "orders")
	var paths []string
	for _, e := range o.Endpoints {
		paths = append(paths, e.Method+" "+e.Path)
	}
	if fmt.Sprint(paths) != "[POST /orders GET /orders/{id}]" {
		t.Fatalf("endpoints %v, want only the real ones", paths)
	}
	if o.Misses != 10 || o.Requests != 1002 || o.Blocked != 990 || o.OverflowRequests != 0 {
		t.Fatalf("orders: misses %d, requests %d, blocked %d, overflow %d", o.Misses, o.Requests, o.Blocked, o.OverflowRequests)
	}
	if len(stats) != 1 || inv.Misses() != 11 {
		t.Fatalf("APIs %v, misses %d; want no API from a miss, 11 misses", names(stats), inv.Misses())
	}
	// A miss is visible in the API's JSON, even at zero.
	b, _ := json.Marshal(APIStats{})
	if !strings.Contains(string(b), `"misses":0`) {
		t.Fatalf("JSON %s has no misses", b)
	}
	// A path answered 404 once and 200 later is an endpoint from then on,
	// and its later 404s count on it.
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/new", 404, 5*time.Second))
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/new", 200, 6*time.Second))
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/new", 404, 7*time.Second))
	for _, e := range apiByName(t, inv.APIs(nil), "orders").Endpoints {
		if e.Path == "/orders/new" && !reflect.DeepEqual(e.Status, map[string]uint64{"2xx": 1, "4xx": 1}) {
			t.Fatalf("/orders/new: %+v", e)
		}
	}
}

// TestInventoryLimitGivesUpUnprovenEndpoints: at the endpoint limit, a new
// endpoint answered 2xx or 3xx takes the place of the least recently called
// endpoint never answered 2xx or 3xx; a new unproven one is overflow, and so
// is a proven one when every endpoint is proven. Both are counted.
func TestInventoryLimitGivesUpUnprovenEndpoints(t *testing.T) {
	inv := NewInventory([]*detect.API{ordersAPI}, 10, 4)
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/real1", 200, 0))
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/admin", 403, time.Second))
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/unseen", 0, 2*time.Second))
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/broken", 500, 3*time.Second))
	// Called again: /orders/admin is no longer the least recently called.
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/admin", 401, 4*time.Second))
	// Full. An unproven newcomer is turned away.
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/config", 401, 5*time.Second))
	if inv.OverflowEndpoints() != 1 || inv.LastOverflowAPI() != "orders" || inv.EvictedEndpoints() != 0 {
		t.Fatalf("overflow %d (%q), evicted %d", inv.OverflowEndpoints(), inv.LastOverflowAPI(), inv.EvictedEndpoints())
	}
	endpoints := func() string {
		var paths []string
		for _, e := range apiByName(t, inv.APIs(nil), "orders").Endpoints {
			paths = append(paths, e.Path)
		}
		return fmt.Sprint(paths)
	}
	// Real ones take the places of /orders/unseen, then /orders/broken.
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/real2", 200, 6*time.Second))
	if got := endpoints(); got != "[/orders/admin /orders/broken /orders/real1 /orders/real2]" {
		t.Fatalf("after one real newcomer: %s", got)
	}
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/real3", 302, 7*time.Second))
	// /orders/admin proves real at last: nothing unproven is left.
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/admin", 200, 8*time.Second))
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/real4", 200, 9*time.Second))
	if got := endpoints(); got != "[/orders/admin /orders/real1 /orders/real2 /orders/real3]" {
		t.Fatalf("at the end: %s", got)
	}
	o := apiByName(t, inv.APIs(nil), "orders")
	if o.EvictedEndpoints != 2 || o.OverflowRequests != 2 || inv.EvictedEndpoints() != 2 || inv.OverflowEndpoints() != 2 {
		t.Fatalf("evicted %d/%d, overflow %d/%d; want 2 each", o.EvictedEndpoints, inv.EvictedEndpoints(), o.OverflowRequests, inv.OverflowEndpoints())
	}

	// After a restart, the restored unproven endpoints are given up first,
	// least recently called first, and the counters are kept.
	again := NewInventory([]*detect.API{ordersAPI}, 10, 4)
	again.Restore([]APIStats{{Name: "orders", Misses: 3, Endpoints: []EndpointStats{
		{Method: "GET", Path: "/orders/a", Requests: 1, Status: map[string]uint64{"4xx": 1}, LastSeen: t0.Add(2 * time.Second)},
		{Method: "GET", Path: "/orders/b", Requests: 1, Status: map[string]uint64{"2xx": 1}, LastSeen: t0},
		{Method: "GET", Path: "/orders/c", Requests: 1, Status: map[string]uint64{"unknown": 1}, LastSeen: t0.Add(time.Second)},
		{Method: "GET", Path: "/orders/d", Requests: 1, Status: map[string]uint64{"3xx": 1}, LastSeen: t0},
	}}})
	again.Consume(call(ordersAPI, "shop.test", "GET", "/orders/e", 200, 10*time.Second))
	r := apiByName(t, again.APIs(nil), "orders")
	var paths []string
	for _, e := range r.Endpoints {
		paths = append(paths, e.Path)
	}
	if fmt.Sprint(paths) != "[/orders/a /orders/b /orders/d /orders/e]" || r.Misses != 3 || r.EvictedEndpoints != 1 {
		t.Fatalf("after a restart: %v, misses %d, evicted %d", paths, r.Misses, r.EvictedEndpoints)
	}
}
