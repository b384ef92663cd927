package observe

import (
	"fmt"
	"github.com/vigil-project/vigil/detect"
	"testing"
)

// A scanner's misses add neither APIs nor endpoints: the inventory is
// bounded by what exists, not by what clients try.
func TestInventoryIgnoresMissesForNewEntries(t *testing.T) {
	inv := NewInventory([]*detect.API{ordersAPI}, 10, 10)
	for i := range 500 {
		inv.Consume(call(discovered, fmt.Sprintf("junk%d.test", i), "GET", "/x", 404, 0))
		inv.Consume(call(ordersAPI, "shop.test", "GET", fmt.Sprintf("/orders/admin%d.php", i), 404, 0))
	}
	stats := inv.APIs(discovered)
	if len(stats) != 1 || stats[0].Name != "orders" || len(stats[0].Endpoints) != 0 || stats[0].Requests != 500 {
		t.Fatalf("inventory grew from misses: %+v", stats)
	}
}

// A decoy's answer is Vigil's, not the back end's: it adds no endpoint.
func TestInventoryLeavesDecoysOut(t *testing.T) {
	inv := NewInventory([]*detect.API{ordersAPI}, 10, 10)
	tx := call(ordersAPI, "shop.test", "GET", "/orders/.env", 200, 0)
	tx.Reason, tx.Blocked = detect.ReasonDecoy, true
	inv.Consume(tx)
	if eps := inv.APIs(discovered)[0].Endpoints; len(eps) != 0 {
		t.Fatalf("a decoy became an endpoint: %+v", eps)
	}
}
