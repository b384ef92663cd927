package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-project/vigil/server"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// TestRestartKeepsListsAttacksAndModels: a Vigil restarted on the same data
// directory still blocks whom it blocked, lists the attacks it recorded and
// keeps its trained models.
func TestRestartKeepsListsAttacksAndModels(t *testing.T) {
	dir := t.TempDir()
	cfg := trainedShop
	v := startIn(t, dir, cfg)
	v.trainShop()
	v.MustDo("POST", "/v1/blocklist", `{"kind":"token","value":"leaked-token","ttl":"24h","reason":"manual"}`, 201)
	v.MustDo("POST", "/v1/allowlist", `{"kind":"ip","value":"10.9.9.9","reason":"monitoring"}`, 201)
	v.MustDo("POST", "/v1/blocklist", `{"kind":"ip","value":"192.0.2.128/25","ttl":"24h"}`, 201)
	prober := "198.51.100.44"
	v.probeUntilBlocked(t, prober)
	var before []attackJSON
	vigiltest.Eventually(t, 5*time.Second, func() error {
		if before = v.attacks(""); len(before) == 0 {
			return fmt.Errorf("no attack yet")
		}
		return nil
	})
	v.Stop()
	// The pipeline may still have been handling the prober's last calls
	// when the list was read; the shutdown drains it. Every attack the first
	// run logged, before or during its shutdown, is kept.
	var logged []string
	for _, l := range strings.Split(v.Logs.String(), "\n") {
		var line struct {
			Message  string `json:"message"`
			AttackID string `json:"attack_id"`
		}
		if json.Unmarshal([]byte(l), &line) == nil && line.Message == "attack" {
			logged = append(logged, line.AttackID)
		}
	}

	w := startIn(t, dir, cfg)
	after := w.attacks("")
	kept := map[string]bool{}
	for _, a := range after {
		kept[a.ID] = true
	}
	for _, id := range logged {
		if !kept[id] {
			t.Errorf("attack %s, logged before the restart, is not listed after it", id)
		}
	}
	for _, a := range before {
		if !kept[a.ID] {
			t.Errorf("attack %s, listed before the restart, is not listed after it", a.ID)
		}
	}
	if len(after) != len(logged) {
		t.Fatalf("attacks after restart %d (%v), logged before %d, listed before %d (%v)", len(after), after, len(logged), len(before), before)
	}
	list := w.MustDo("GET", "/v1/blocklist", "", 200)
	if !strings.Contains(list, prober) || !strings.Contains(list, `"reason": "manual"`) {
		t.Fatalf("block list after restart:\n%s", list)
	}
	if !strings.Contains(w.MustDo("GET", "/v1/allowlist", "", 200), "10.9.9.9") {
		t.Fatal("allow list lost")
	}
	if res := w.visit(prober, "/shop/items/1"); res.Status != 403 {
		t.Fatalf("the prober is not blocked after the restart: %d", res.Status)
	}
	if res := w.visit("192.0.2.200", "/shop/items/1"); res.Status != 403 {
		t.Fatalf("an address in a blocked range is not blocked after the restart: %d", res.Status)
	}
	if res := w.visit("192.0.2.100", "/shop/items/1"); res.Status != 200 {
		t.Fatalf("an address outside the blocked range after the restart: %d", res.Status)
	}
	var m modelDoc
	decodeJSON(t, w.MustDo("GET", "/v1/models/shop", "", 200), &m)
	if m.Status.State != "ready" {
		t.Fatalf("model after restart: %+v", m.Status)
	}
}

// TestHoneytokensAndDecoyHitsSurviveARestart: a honeytoken planted before
// a restart still gives its user away after it.
func TestHoneytokensAndDecoyHitsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	v := startIn(t, dir, decoyConfig)
	res := v.call(from("198.51.100.120", "/shopapi-bid/.env"))
	key := liveKey.Find(res.Body)
	if key == nil {
		t.Fatalf("no API key planted:\n%s", res.Body)
	}
	v.Stop()
	w := startIn(t, dir, decoyConfig)
	if r := w.call(from("203.0.113.121", "/shopapi-bid/order/1", "x-api-key", string(key))); r.UpstreamCalled {
		t.Fatal("a honeytoken planted before the restart went through after it")
	}
	var d struct {
		Decoys []struct {
			API, Path string
			Hits      int
		}
	}
	decodeJSON(t, w.MustDo("GET", "/v1/decoys", "", 200), &d)
	for _, x := range d.Decoys {
		if x.Path == "/shopapi-bid/.env" && x.Hits != 1 {
			t.Fatalf("hits of /shopapi-bid/.env after the restart: %d", x.Hits)
		}
	}
}

func TestInventorySurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	v := startIn(t, dir, "")
	other := get("/api/v2/users/8812/orders")
	other.Authority = "partners.example.com"
	for range 3 {
		v.send(buffered, other)
	}
	vigiltest.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(v.MustDo("GET", "/v1/apis", "", 200), "partners.example.com/api/v2/users") {
			return fmt.Errorf("not in the inventory yet")
		}
		return nil
	})
	v.Stop()
	w := startIn(t, dir, "")
	out := w.MustDo("GET", "/v1/apis", "", 200)
	if !strings.Contains(out, "partners.example.com/api/v2/users") || !strings.Contains(out, "/api/v2/users/{id}/orders") || !strings.Contains(out, `"requests": 3`) {
		t.Fatalf("inventory after restart:\n%s", out)
	}
	// Its time line is answered before any traffic after the restart.
	w.MustDo("GET", "/v1/apis/"+url.PathEscape("partners.example.com/api/v2/users")+"/activity", "", 200)
}

// TestDecoyOnAnEndpointTrafficShowedRealIsRefusedAtStart: a decoy added on
// a path that clients used successfully before the restart is refused.
func TestDecoyOnAnEndpointTrafficShowedRealIsRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	api := "apis:\n  - {name: shop, hosts: [shop.example.com], base_path: /shop, mode: block"
	v := startIn(t, dir, api+"}\n")
	for range 3 {
		v.send(buffered, get("/shop/internal/export"))
	}
	vigiltest.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(v.MustDo("GET", "/v1/apis", "", 200), "/shop/internal/export") {
			return fmt.Errorf("not in the inventory yet")
		}
		return nil
	})
	v.Stop()
	path := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(path, []byte("grpc_addr: 127.0.0.1:0\nadmin_addr: 127.0.0.1:0\ndata_dir: "+dir+"\n"+api+", decoys: [/internal/export]}\n"), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = server.New(cfg, zerolog.Nop(), server.Options{})
	if err == nil || !strings.Contains(err.Error(), "real endpoint") || !strings.Contains(err.Error(), "/internal/export") {
		t.Fatalf("a decoy on a real endpoint was accepted (or refused without saying why): %v", err)
	}
}
