package shop

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

type shopClient struct {
	t    *testing.T
	base string
}

func newShopClient(t *testing.T) (*shopClient, *Shop) {
	shop := NewShop(1)
	srv := httptest.NewServer(shop.Handler())
	t.Cleanup(srv.Close)
	return &shopClient{t: t, base: srv.URL}, shop
}

func (c *shopClient) do(method, path, token, contentType, body string) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (c *shopClient) login(user, pass string) string {
	c.t.Helper()
	code, _, body := c.do("POST", BasePath+"/login", "", "application/x-www-form-urlencoded", LoginForm(user, pass))
	if code != 200 {
		c.t.Fatalf("login %s: %d %s", user, code, body)
	}
	var out struct{ Token string }
	if err := json.Unmarshal(body, &out); err != nil || out.Token == "" {
		c.t.Fatalf("login answer %s: %v", body, err)
	}
	return out.Token
}

func TestLoginFormAndJSONGiveAJWTWithTheUserAsSub(t *testing.T) {
	c, _ := newShopClient(t)
	tok := c.login("user7", "password7")
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not JWT-shaped", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct{ Sub string }
	if err := json.Unmarshal(raw, &claims); err != nil || claims.Sub != "user7" {
		t.Fatalf("claims %s: sub %q, %v", raw, claims.Sub, err)
	}
	if code, _, body := c.do("POST", BasePath+"/login", "", "application/json", `{"username":"user200","password":"password200"}`); code != 200 || !strings.Contains(string(body), `"token"`) {
		t.Fatalf("JSON login: %d %s", code, body)
	}
	if tok2 := c.login("user7", "password7"); tok2 == tok {
		t.Fatal("two logins gave the same token")
	}
}

func TestLoginFailsWith401(t *testing.T) {
	c, _ := newShopClient(t)
	for _, tc := range []struct{ ct, body string }{
		{"application/x-www-form-urlencoded", LoginForm("user7", "password8")},
		{"application/x-www-form-urlencoded", LoginForm("nobody", "password1")},
		{"application/json", `{"username":"user1","password":""}`},
		{"application/x-www-form-urlencoded", LoginForm("user201", "password201")},
	} {
		if code, _, body := c.do("POST", BasePath+"/login", "", tc.ct, tc.body); code != 401 || strings.Contains(string(body), "token") {
			t.Errorf("%s: %d %s, want 401 without a token", tc.body, code, body)
		}
	}
}

func TestOrdersNeedAValidTokenOfThisShop(t *testing.T) {
	c, shop := newShopClient(t)
	tok := c.login("user3", "password3")
	id := strconv.Itoa(shop.OrdersOf("user3")[0])
	other := NewShop(1) // same data, another signing key
	foreign := other.issue("user3")
	parts := strings.Split(tok, ".")
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"user4","exp":9999999999}`)) + "." + parts[2]
	for name, bad := range map[string]string{"none": "", "garbage": "abc", "foreign": foreign, "forged": forged} {
		if code, h, _ := c.do("GET", BasePath+"/order/"+id, bad, "", ""); code != 401 || h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s token: %d, want 401 with WWW-Authenticate", name, code)
		}
	}
	code, h, body := c.do("GET", BasePath+"/order/"+id, tok, "", "")
	if code != 200 || h.Get("Content-Length") != strconv.Itoa(len(body)) {
		t.Fatalf("own order: %d %s (content-length %s)", code, body, h.Get("Content-Length"))
	}
	var o Order
	if err := json.Unmarshal(body, &o); err != nil || o.User != "user3" || strconv.Itoa(o.ID) != id {
		t.Fatalf("order %s: %+v %v", body, o, err)
	}
	// The BOLA weakness: someone else's order is answered too.
	if code, _, _ := c.do("GET", BasePath+"/order/"+strconv.Itoa(shop.OrdersOf("user4")[0]), tok, "", ""); code != 200 {
		t.Errorf("another user's order: %d, want 200 (the shop's deliberate BOLA weakness)", code)
	}
	if code, _, _ := c.do("GET", BasePath+"/order/99", tok, "", ""); code != 404 {
		t.Errorf("unknown order: %d, want 404", code)
	}
}

func TestJSONPatchChangesOwnOrdersOnly(t *testing.T) {
	c, shop := newShopClient(t)
	tok := c.login("user5", "password5")
	own := strconv.Itoa(shop.OrdersOf("user5")[0])
	const ct = "application/json-patch+json"
	code, _, body := c.do("PATCH", BasePath+"/order/"+own, tok, ct, `[{"op":"replace","path":"/amount","value":123.5},{"op":"add","path":"/note","value":"gift"},{"op":"test","path":"/amount","value":123.5}]`)
	if code != 200 {
		t.Fatalf("patch: %d %s", code, body)
	}
	_, _, body = c.do("GET", BasePath+"/order/"+own, tok, "", "")
	var o Order
	json.Unmarshal(body, &o)
	if o.Amount != 123.5 || o.Note != "gift" {
		t.Fatalf("after the patch: %+v", o)
	}
	for _, tc := range []struct {
		id, body string
		want     int
	}{
		{strconv.Itoa(shop.OrdersOf("user6")[0]), `[{"op":"replace","path":"/amount","value":1}]`, 403},
		{own, `{"op":"replace"}`, 400},
		{own, `[{"op":"move","path":"/amount","from":"/quantity"}]`, 422},
		{own, `[{"op":"replace","path":"/user","value":"user1"}]`, 422},
		{own, `[{"op":"test","path":"/amount","value":1}]`, 422},
		{"99", `[]`, 404},
	} {
		if code, _, body := c.do("PATCH", BasePath+"/order/"+tc.id, tok, ct, tc.body); code != tc.want {
			t.Errorf("PATCH %s %s: %d %s, want %d", tc.id, tc.body, code, body, tc.want)
		}
	}
}

func TestExportSizeFollowsTheLimit(t *testing.T) {
	c, _ := newShopClient(t)
	tok := c.login("user9", "password9")
	sizes := map[int]int{}
	for _, limit := range []int{10, 5000} {
		code, h, body := c.do("GET", BasePath+"/export?limit="+strconv.Itoa(limit), tok, "", "")
		var out struct {
			Count  int
			Orders []Order
		}
		if code != 200 || json.Unmarshal(body, &out) != nil || out.Count != limit || len(out.Orders) != limit {
			t.Fatalf("export %d: %d, count %d", limit, code, out.Count)
		}
		if h.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Fatalf("export %d: content-length %q for %d bytes", limit, h.Get("Content-Length"), len(body))
		}
		sizes[limit] = len(body)
	}
	if sizes[5000] < 1_500_000 || sizes[10] > 10_000 {
		t.Fatalf("export sizes %v: want a large answer for 5000 orders and a small one for 10", sizes)
	}
	if code, _, _ := c.do("GET", BasePath+"/export?limit=5000", "", "", ""); code != 401 {
		t.Errorf("export without a token: %d, want 401", code)
	}
	if code, _, _ := c.do("GET", BasePath+"/export?limit=-1", tok, "", ""); code != 400 {
		t.Errorf("export limit -1: %d, want 400", code)
	}
}

func TestBidSearchAndUnknownPaths(t *testing.T) {
	c, shop := newShopClient(t)
	tok := c.login("user11", "password11")
	before := len(shop.OrdersOf("user11"))
	if code, _, body := c.do("PUT", BasePath+"/order", tok, "application/json", `{"item_id":3,"amount":42.5,"quantity":1}`); code != 201 {
		t.Fatalf("bid: %d %s", code, body)
	}
	if len(shop.OrdersOf("user11")) != before+1 {
		t.Fatal("the bid is not among the user's orders")
	}
	if code, _, _ := c.do("PUT", BasePath+"/order", tok, "application/json", `{"item_id":0,"amount":-1}`); code != 400 {
		t.Errorf("invalid bid: %d, want 400", code)
	}
	code, _, body := c.do("GET", BasePath+"/search?q=watch", "", "", "")
	if code != 200 || !strings.Contains(string(body), "watch") {
		t.Fatalf("search: %d %s", code, body)
	}
	if code, _, _ := c.do("GET", BasePath+"/backup.zip", "", "", ""); code != 404 {
		t.Errorf("unknown path: %d, want 404", code)
	}
}

// PATCH /profile changes the user's own account, and binds the body onto
// it as a whole: a "role" is taken too (the shop's mass-assignment
// weakness, which Vigil refuses in front of it).
func TestProfileUpdateBindsTheWholeBody(t *testing.T) {
	c, _ := newShopClient(t)
	tok := c.login("user9", "password9")
	type account struct {
		Name        string `json:"name"`
		DisplayName string `json:"display_name"`
		Email       string `json:"email"`
		Role        string `json:"role"`
	}
	var acc account
	code, _, body := c.do("PATCH", BasePath+"/profile", tok, "application/json", `{"display_name":"Lena Koch","email":"lena.9@mail.example"}`)
	if json.Unmarshal(body, &acc); code != 200 || acc != (account{"user9", "Lena Koch", "lena.9@mail.example", "customer"}) {
		t.Fatalf("profile edit: %d %s", code, body)
	}
	if code, _, body := c.do("PATCH", BasePath+"/profile", tok, "application/json", `{"role":"admin"}`); code != 200 {
		t.Fatalf("role: %d %s", code, body)
	}
	_, _, body = c.do("GET", BasePath+"/profile", tok, "", "")
	if json.Unmarshal(body, &acc); acc != (account{"user9", "Lena Koch", "lena.9@mail.example", "admin"}) {
		t.Errorf("after the role write: %s", body)
	}
	if _, _, body := c.do("GET", BasePath+"/profile", c.login("user10", "password10"), "", ""); strings.Contains(string(body), "Lena") {
		t.Errorf("another user's profile changed: %s", body)
	}
	for _, bad := range []string{`[]`, `{"email":"nobody"}`, `{"display_name":""}`} {
		if code, _, body := c.do("PATCH", BasePath+"/profile", tok, "application/json", bad); code != 400 {
			t.Errorf("%s: %d %s, want 400", bad, code, body)
		}
	}
	for i := range 8 {
		if b := ProfileEdit(i+1, i); !json.Valid(b) || len(b) < int(UpdateProfile.ReqBytes[0]) || len(b) > int(UpdateProfile.ReqBytes[1]) {
			t.Errorf("ProfileEdit(%d, %d) = %s, outside the model's sizes %v", i+1, i, b, UpdateProfile.ReqBytes)
		}
	}
}
