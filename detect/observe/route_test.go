package observe

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// routeStep is one call and the route the inventory must give it.
type routeStep struct {
	api    *detect.API
	host   string
	method string
	path   string
	status int
	want   detect.Route
}

func consumeRoutes(t *testing.T, inv *Inventory, steps []routeStep) {
	t.Helper()
	for i, s := range steps {
		api, host := s.api, s.host
		if api == nil {
			api, host = ordersAPI, "shop.test"
		}
		tx := call(api, host, s.method, s.path, s.status, time.Duration(i)*time.Second)
		inv.Consume(tx)
		if tx.Route != s.want {
			t.Errorf("step %d: %s %s answered %d: route %d, want %d", i, s.method, s.path, s.status, tx.Route, s.want)
		}
	}
}

func TestInventoryRoute(t *testing.T) {
	inv := NewInventory([]*detect.API{ordersAPI}, 10, 10)
	consumeRoutes(t, inv, []routeStep{
		// The call that proves an endpoint is known itself.
		{method: "GET", path: "/orders/42", status: 200, want: detect.RouteKnown},
		// A missing object on a known template.
		{method: "GET", path: "/orders/43", status: 404, want: detect.RouteKnown},
		// A path never answered with success.
		{method: "GET", path: "/orders/admin.php", status: 404, want: detect.RouteUnknown},
		{method: "GET", path: "/orders/42/export", status: 404, want: detect.RouteUnknown},
		// A method the known path does not have.
		{method: "DELETE", path: "/orders/42", status: 405, want: detect.RouteUnknown},
		// A new endpoint: unknown until its first success, known after.
		{method: "GET", path: "/orders/42/items", status: 404, want: detect.RouteUnknown},
		{method: "GET", path: "/orders/42/items", status: 200, want: detect.RouteKnown},
		{method: "GET", path: "/orders/44/items", status: 404, want: detect.RouteKnown},
		// Answered, never with success.
		{method: "GET", path: "/orders/internal", status: 401, want: detect.RouteUnknown},
		{method: "GET", path: "/orders/internal", status: 503, want: detect.RouteUnknown},
		{method: "GET", path: "/orders/debug", status: 403, want: detect.RouteUnknown},
		// A redirect is an answer of a route the API has.
		{method: "GET", path: "/orders/legacy", status: 301, want: detect.RouteKnown},
		// Its answer unseen: known if proven, else unknown on an API whose
		// answers are seen; an interim answer tells nothing.
		{method: "GET", path: "/orders/45", status: 0, want: detect.RouteKnown},
		{method: "GET", path: "/orders/45/notes", status: 0, want: detect.RouteUnknown},
		{method: "GET", path: "/orders/ws", status: 101, want: detect.RouteUnjudged},
		// The template keeps the path's case, as the API's router does.
		{method: "GET", path: "/Orders/46", status: 404, want: detect.RouteUnknown},
	})
}

// A call Vigil refused itself is judged by its path: its answer is
// Vigil's, a decoy's 200 included.
func TestInventoryRouteBlocked(t *testing.T) {
	inv := NewInventory([]*detect.API{ordersAPI}, 10, 10)
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/42", 200, 0))
	for _, c := range []struct {
		path   string
		status int
		reason detect.Reason
		want   detect.Route
	}{
		{"/orders/.env", 200, detect.ReasonDecoy, detect.RouteUnknown},
		{"/orders/7", 403, detect.ReasonDecoy, detect.RouteKnown},
		{"/orders/backup.zip", 403, detect.ReasonDecoy, detect.RouteUnknown},
	} {
		tx := call(ordersAPI, "shop.test", "GET", c.path, c.status, time.Second)
		tx.Reason, tx.Blocked = c.reason, true
		inv.Consume(tx)
		if tx.Route != c.want {
			t.Errorf("refused %s (Vigil answered %d): route %d, want %d", c.path, c.status, tx.Route, c.want)
		}
	}
	// Refused on an API whose answers were never seen: unjudged.
	tx := call(paymentsAPI, "", "GET", "/pay/x", 403, 0)
	tx.Blocked = true
	inv.Consume(tx)
	if tx.Route != detect.RouteUnjudged {
		t.Errorf("refused on an API never answered: route %d, want unjudged", tx.Route)
	}
}

// With ext_authz alone, no answer is seen: no route is judged unknown.
func TestInventoryRouteNoAnswers(t *testing.T) {
	inv := NewInventory([]*detect.API{ordersAPI}, 10, 10)
	consumeRoutes(t, inv, []routeStep{
		{method: "GET", path: "/orders/42", status: 0, want: detect.RouteUnjudged},
		{method: "GET", path: "/orders/.git/config", status: 0, want: detect.RouteUnjudged},
		{api: discovered, host: "api.example.com", method: "GET", path: "/v1/items", status: 0, want: detect.RouteUnjudged},
	})
}

// Discovered APIs: a host and path never answered with success are
// unknown, the first success makes them known.
func TestInventoryRouteDiscovered(t *testing.T) {
	inv := NewInventory(nil, 10, 10)
	consumeRoutes(t, inv, []routeStep{
		{api: discovered, host: "api.example.com", method: "GET", path: "/v1/items/7", status: 404, want: detect.RouteUnknown},
		{api: discovered, host: "api.example.com", method: "GET", path: "/v1/items/7", status: 200, want: detect.RouteKnown},
		{api: discovered, host: "api.example.com", method: "GET", path: "/v1/items/8", status: 404, want: detect.RouteKnown},
		{api: discovered, host: "api.example.com", method: "GET", path: "/v1/wp-login.php", status: 404, want: detect.RouteUnknown},
		{api: discovered, host: "other.example.com", method: "GET", path: "/v1/items/8", status: 404, want: detect.RouteUnknown},
	})
}

// Known routes survive a restart: the inventory saved and restored keeps
// its proven endpoints.
func TestInventoryRouteRestored(t *testing.T) {
	before := NewInventory([]*detect.API{ordersAPI}, 10, 10)
	consumeRoutes(t, before, []routeStep{
		{method: "GET", path: "/orders/42", status: 200, want: detect.RouteKnown},
		{method: "GET", path: "/orders/42/notes", status: 401, want: detect.RouteUnknown},
		{api: discovered, host: "api.example.com", method: "GET", path: "/v1/items/7", status: 200, want: detect.RouteKnown},
	})
	after := NewInventory([]*detect.API{ordersAPI}, 10, 10)
	after.Restore(before.APIs(discovered))
	consumeRoutes(t, after, []routeStep{
		{method: "GET", path: "/orders/43", status: 404, want: detect.RouteKnown},
		{method: "GET", path: "/orders/43/notes", status: 404, want: detect.RouteUnknown},
		{method: "GET", path: "/orders/.env", status: 404, want: detect.RouteUnknown},
		{api: discovered, host: "api.example.com", method: "GET", path: "/v1/items/9", status: 404, want: detect.RouteKnown},
	})
	// Refused or unanswered: the restored API's answers were seen.
	tx := call(ordersAPI, "shop.test", "GET", "/orders/.git/HEAD", 0, 0)
	after.Consume(tx)
	if tx.Route != detect.RouteUnknown {
		t.Errorf("unanswered call to a path never proven, after a restart: route %d, want unknown", tx.Route)
	}
}

// At a limit, an endpoint or an API the inventory holds no record of may
// be one the limit turned away: unjudged, never unknown for good.
func TestInventoryRouteLimits(t *testing.T) {
	inv := NewInventory([]*detect.API{ordersAPI}, 1, 2)
	consumeRoutes(t, inv, []routeStep{
		{method: "GET", path: "/orders/1", status: 200, want: detect.RouteKnown},
		{method: "POST", path: "/orders", status: 201, want: detect.RouteKnown},
		// Past the limit of 2, with no endpoint to give up: the call
		// proves its route, but the inventory cannot keep it.
		{method: "GET", path: "/orders/1/items", status: 200, want: detect.RouteKnown},
		{method: "GET", path: "/orders/2/items", status: 404, want: detect.RouteUnjudged},
		{method: "GET", path: "/orders/.env", status: 404, want: detect.RouteUnjudged},
		// Endpoints kept are still judged.
		{method: "GET", path: "/orders/3", status: 404, want: detect.RouteKnown},
		// Discovered APIs past their limit of 1.
		{api: discovered, host: "a.example.com", method: "GET", path: "/v1/x", status: 200, want: detect.RouteKnown},
		{api: discovered, host: "b.example.com", method: "GET", path: "/v1/x", status: 200, want: detect.RouteKnown},
		{api: discovered, host: "b.example.com", method: "GET", path: "/v1/x", status: 404, want: detect.RouteUnjudged},
		// A discovered API is a host and a base path (/v1/x): /v1/y would
		// be another, past the limit.
		{api: discovered, host: "a.example.com", method: "GET", path: "/v1/y", status: 404, want: detect.RouteUnjudged},
		{api: discovered, host: "a.example.com", method: "GET", path: "/v1/x/y", status: 404, want: detect.RouteUnknown},
	})
	if inv.OverflowEndpoints() == 0 || inv.OverflowAPIs() == 0 {
		t.Fatalf("the limits turned nothing away: %d endpoints, %d APIs", inv.OverflowEndpoints(), inv.OverflowAPIs())
	}

	// A limit that gives up an unproven endpoint for a proven one leaves
	// room: calls off the list are still judged.
	inv = NewInventory([]*detect.API{ordersAPI}, 1, 2)
	consumeRoutes(t, inv, []routeStep{
		{method: "GET", path: "/orders/1", status: 200, want: detect.RouteKnown},
		{method: "GET", path: "/orders/x", status: 401, want: detect.RouteUnknown},
		{method: "GET", path: "/orders/1/items", status: 200, want: detect.RouteKnown},
		{method: "GET", path: "/orders/2/items", status: 404, want: detect.RouteKnown},
	})
	if inv.EvictedEndpoints() != 1 {
		t.Fatalf("%d endpoints given up, want 1", inv.EvictedEndpoints())
	}
}

// At the byte budget no new endpoint is kept: calls off the inventory are
// unjudged.
func TestInventoryRouteByteBudget(t *testing.T) {
	inv := NewInventory([]*detect.API{ordersAPI}, 10, 1000)
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/1", 200, 0))
	inv.SetMaxBytes(inv.Bytes())
	consumeRoutes(t, inv, []routeStep{
		{method: "GET", path: "/orders/2", status: 404, want: detect.RouteKnown},
		{method: "GET", path: "/orders/1/items", status: 404, want: detect.RouteUnjudged},
	})
}

// Judging the route allocates nothing: a call to a known endpoint costs
// what it did.
func TestInventoryRouteAllocs(t *testing.T) {
	inv := NewInventory([]*detect.API{ordersAPI}, 10, 10)
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/1", 200, 0))
	txs := []*detect.Transaction{
		call(ordersAPI, "shop.test", "GET", "/orders/2", 404, 0),
		call(ordersAPI, "shop.test", "GET", "/orders/3/x.php", 404, 0),
		call(ordersAPI, "shop.test", "GET", "/orders/4", 200, 0),
	}
	for _, tx := range txs {
		tx.Prepare()
		if n := testing.AllocsPerRun(100, func() { inv.Consume(tx) }); n != 0 {
			t.Errorf("Consume(%s %s) allocates %v times", tx.Method, tx.Path, n)
		}
	}
}

func BenchmarkInventoryConsumeMisses(b *testing.B) {
	inv := NewInventory([]*detect.API{ordersAPI}, 1000, 1000)
	inv.Consume(call(ordersAPI, "shop.test", "GET", "/orders/1", 200, 0))
	txs := make([]*detect.Transaction, 256)
	for i := range txs {
		p := fmt.Sprintf("/orders/%d", i)
		if i%2 == 1 {
			p = fmt.Sprintf("/orders/probe%d.php", i)
		}
		txs[i] = call(ordersAPI, "shop.test", "GET", p, 404, 0)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		inv.Consume(txs[i%len(txs)])
		i++
	}
}
