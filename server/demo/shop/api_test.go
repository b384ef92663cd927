package shop

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The demo serves exactly the model: every endpoint answers a good call
// with its status and a bad one with one of its errors (401 without a
// token where it needs one), and nothing else is routed.
func TestHandlerServesTheModel(t *testing.T) {
	c, shop := newShopClient(t)
	tok := c.login("user7", "password7")
	own := strconv.Itoa(shop.OrdersOf("user7")[0])
	other := strconv.Itoa(shop.OrdersOf("user8")[0])
	type call struct{ path, contentType, body string }
	good := map[*Endpoint]call{
		Login:         {"/login", "application/x-www-form-urlencoded", LoginForm("user7", "password7")},
		ListItems:     {"/items?page=2", "", ""},
		GetItem:       {"/items/3", "", ""},
		Search:        {"/search?q=watch", "", ""},
		GetOrder:      {"/order/" + other, "", ""},
		PutOrder:      {"/order", "application/json", `{"item_id":3,"amount":42.5,"quantity":1}`},
		PatchOrder:    {"/order/" + own, "application/json-patch+json", `[{"op":"replace","path":"/amount","value":99.5}]`},
		Profile:       {"/profile", "", ""},
		UpdateProfile: {"/profile", "application/json", string(ProfileEdit(7, 2))},
		Cart:          {"/cart", "", ""},
		AddToCart:     {"/cart", "application/json", `{"item_id":5,"quantity":2}`},
		Export:        {"/export?limit=10", "", ""},
		DeleteOrder:   {"/order/" + own, "", ""}, // last: it withdraws the order patched above
	}
	bad := map[*Endpoint]call{
		Login:         {"/login", "application/x-www-form-urlencoded", LoginForm("user7", "wrong")},
		ListItems:     {"/items?page=0", "", ""},
		GetItem:       {"/items/999999", "", ""},
		Search:        {"/search", "", ""},
		GetOrder:      {"/order/1", "", ""},
		PutOrder:      {"/order", "application/json", `{"item_id":0}`},
		PatchOrder:    {"/order/" + other, "application/json-patch+json", `[]`},
		DeleteOrder:   {"/order/" + other, "", ""},
		AddToCart:     {"/cart", "application/json", `{"item_id":0}`},
		Export:        {"/export?limit=-1", "", ""},
		UpdateProfile: {"/profile", "application/json", `{"email":"nobody"}`},
	}
	for _, e := range Routes() {
		g, ok := good[e]
		if !ok {
			t.Fatalf("%s: no good call in this test; add one", e.Pattern())
		}
		if !strings.HasPrefix(BasePath+g.path, BasePath+strings.SplitN(e.Path, "{", 2)[0]) {
			t.Fatalf("%s: the test's call %s is not this endpoint", e.Pattern(), g.path)
		}
		if e.Auth {
			if code, _, _ := c.do(e.Method, BasePath+g.path, "", g.contentType, g.body); code != 401 {
				t.Errorf("%s without a token: %d, want 401", e.Pattern(), code)
			}
		}
		if b, ok := bad[e]; ok {
			code, _, body := c.do(e.Method, BasePath+b.path, tok, b.contentType, b.body)
			if code == e.Status || !slices.Contains(e.Errors, code) {
				t.Errorf("%s bad call %s: %d %s, want one of the model's errors %v", e.Pattern(), b.path, code, body, e.Errors)
			}
		}
		if code, _, body := c.do(e.Method, BasePath+g.path, tok, g.contentType, g.body); code != e.Status {
			t.Errorf("%s: %d %s, want the model's %d", e.Pattern(), code, body, e.Status)
		}
	}
	for _, wrong := range []struct{ method, path string }{{"GET", "/login"}, {"GET", "/order"}, {"POST", "/search"}, {"DELETE", "/items"}, {"OPTIONS", "/export"}, {"PUT", "/order/" + other}} {
		if code, h, _ := c.do(wrong.method, BasePath+wrong.path, tok, "", ""); code != 405 || h.Get("Allow") == "" {
			t.Errorf("%s %s: %d (Allow %q), want 405 with the route's methods", wrong.method, wrong.path, code, h.Get("Allow"))
		}
	}
	if code, _, _ := c.do("GET", BasePath+"/orders", tok, "", ""); code != 404 {
		t.Errorf("a path outside the model: %d, want 404", code)
	}
}
