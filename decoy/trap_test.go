package decoy

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

type recorder struct {
	blocked []detect.Entry
	attacks []*detect.Attack
	n       int
}

func (r *recorder) actions() Actions {
	return Actions{
		Block:    func(e detect.Entry) { r.blocked = append(r.blocked, e) },
		Report:   func(a *detect.Attack) { r.attacks = append(r.attacks, a) },
		AttackID: func() string { r.n++; return strings.Repeat("a", 23) + string(rune('0'+r.n%10)) },
		Now:      func() time.Time { return time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC) },
	}
}

func testFP(t testing.TB) *detect.Fingerprinter {
	fp, err := detect.NewFingerprinter(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

var shop = &detect.API{Name: "shop", Hosts: []string{"shop.example.com"}, BasePath: "/shop", Mode: detect.ModeBlock, LoginPaths: []string{"/shop/login"}}

func request(path string, ids detect.Identities) *detect.Request {
	return &detect.Request{API: shop, Host: "shop.example.com", Method: "GET", Path: path, Identities: ids}
}

func TestTrapRefusesDecoysOnRealEndpoints(t *testing.T) {
	orders := &detect.API{Name: "orders", Hosts: []string{"shop.example.com"}, BasePath: "/shop/orders"}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"login path", Config{APIs: []APIDecoys{{API: shop, Paths: []string{"/login"}}}}, "login path"},
		{"base path", Config{APIs: []APIDecoys{{API: shop, Paths: []string{"/"}}}}, "base path"},
		{"another API", Config{APIs: []APIDecoys{{API: shop, Paths: []string{"/orders"}}, {API: orders}}}, "lies in API orders"},
		{"decoy API over a real one", Config{APIs: []APIDecoys{{API: orders}}, DecoyAPIs: []DecoyAPI{{Name: "old", BasePath: "/shop"}}}, "would cover API orders"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, testFP(t), (&recorder{}).actions())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	// Built-in decoys that would collide are left out, not refused.
	api := &detect.API{Name: "admin-api", BasePath: "/shop/admin"}
	tr, err := New(Config{Builtin: true, APIs: []APIDecoys{{API: shop}, {API: api}}}, testFP(t), (&recorder{}).actions())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range tr.Stats() {
		if s.API == "shop" && s.Path == "/shop/admin" {
			t.Fatal("the built-in /admin decoy lies in API admin-api and must be left out")
		}
	}
}

func TestTrapHitBlocksEveryIdentityAndPlantsUniqueHoneytokens(t *testing.T) {
	r := &recorder{}
	fp := testFP(t)
	tr, err := New(Config{Builtin: true, TTL: time.Hour, APIs: []APIDecoys{{API: shop, Paths: []string{"/internal/export"}}}}, fp, r.actions())
	if err != nil {
		t.Fatal(err)
	}
	ids := detect.Identities{detect.KindIP: "198.51.100.1", detect.KindToken: fp.Fingerprint("t1"), detect.KindUsername: "mallory"}
	if tr.Hook(request("/shop/items/1", ids)) != nil || len(r.attacks) != 0 {
		t.Fatal("a real path was treated as a decoy")
	}
	ans := tr.Hook(request("/shop/.ENV", ids)) // case does not hide a decoy
	if ans == nil || ans.Status != 200 || len(ans.Body) == 0 {
		t.Fatalf("decoy answer %+v", ans)
	}
	if len(r.blocked) != 3 || r.blocked[0].ExpiresAt.Sub(r.blocked[0].CreatedAt) != time.Hour {
		t.Fatalf("blocked %+v", r.blocked)
	}
	if a := r.attacks[0]; a.Type != detect.AttackDecoy || a.Action != detect.ActionBlocked || a.Identity.Kind != "token" || a.Request.Path != "/shop/.ENV" {
		t.Fatalf("attack %+v", a)
	}
	planted := tr.Honeytokens()
	if planted == 0 {
		t.Fatal(".env planted no honeytoken")
	}
	second := tr.Hook(request("/shop/.env", detect.Identities{detect.KindIP: "198.51.100.2"}))
	if string(second.Body) == string(ans.Body) || tr.Honeytokens() != 2*planted {
		t.Fatal("a second hit got the same honeytokens")
	}
	// Miss path: nothing allocated for a real call.
	clean := request("/shop/items/2", detect.Identities{detect.KindIP: "10.0.0.1", detect.KindToken: fp.Fingerprint("ok")})
	if n := testing.AllocsPerRun(100, func() { tr.Hook(clean) }); n != 0 {
		t.Fatalf("%v allocations for a real call", n)
	}
}

func TestTrapDetectModeOnlyRecords(t *testing.T) {
	r := &recorder{}
	watch := &detect.API{Name: "watch", BasePath: "/watch", Mode: detect.ModeDetect}
	tr, err := New(Config{APIs: []APIDecoys{{API: watch, Paths: []string{"/internal"}}}}, testFP(t), r.actions())
	if err != nil {
		t.Fatal(err)
	}
	req := &detect.Request{API: watch, Path: "/watch/internal", Identities: detect.Identities{detect.KindIP: "198.51.100.9"}}
	if tr.Hook(req) == nil {
		t.Fatal("no hit")
	}
	if len(r.blocked) != 0 || r.attacks[0].Action != detect.ActionWouldBlock {
		t.Fatalf("detect mode blocked: %+v %+v", r.blocked, r.attacks[0])
	}
}

func TestTrapDisablesADecoyThatTrafficShowsToBeReal(t *testing.T) {
	watch := &detect.API{Name: "watch", BasePath: "/watch", Mode: detect.ModeDetect}
	tr, err := New(Config{APIs: []APIDecoys{{API: watch, Paths: []string{"/internal"}}}}, testFP(t), (&recorder{}).actions())
	if err != nil {
		t.Fatal(err)
	}
	var real string
	tr.OnReal = func(api, path string, status int) { real = api + " " + path }
	tr.Consume(&detect.Transaction{API: watch, Path: "/watch/internal", Reason: detect.ReasonDecoy, WouldBlock: true, Status: 200})
	if real != "watch /watch/internal" {
		t.Fatalf("not reported: %q", real)
	}
	if tr.Hook(&detect.Request{API: watch, Path: "/watch/internal"}) != nil {
		t.Fatal("the real endpoint is still a decoy")
	}
}

// A decoy is proof, not a statistic: it blocks in learn mode too.
func TestTrapBlocksInLearnMode(t *testing.T) {
	r := &recorder{}
	learning := &detect.API{Name: "new", BasePath: "/new", Mode: detect.ModeLearn}
	tr, err := New(Config{APIs: []APIDecoys{{API: learning, Paths: []string{"/admin"}}}}, testFP(t), r.actions())
	if err != nil {
		t.Fatal(err)
	}
	tr.Hook(&detect.Request{API: learning, Path: "/new/admin", Identities: detect.Identities{detect.KindIP: "198.51.100.3"}})
	if len(r.blocked) != 1 || r.attacks[0].Action != detect.ActionBlocked {
		t.Fatalf("learn mode: blocked %+v, attack %+v", r.blocked, r.attacks[0])
	}
}
