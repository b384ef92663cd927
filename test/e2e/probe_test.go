package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/test/envoysim"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// trainedShop is an API whose model is ready after 100 requests from 10
// identities, so that tests reach detection in a second.
const trainedShop = `
trusted_hops: 1
training: {duration: 0s, min_requests: 100, min_identities: 10, relearn_interval: 1h}
apis:
  - {name: shop, hosts: [shop.example.com], base_path: /shop, mode: block}
`

// shopUpstream is the shop's back end: paths with /nope do not exist.
func shopUpstream(r envoysim.HTTPRequest) envoysim.HTTPResponse {
	if strings.Contains(r.Path, "/nope") {
		return envoysim.HTTPResponse{Status: 404}
	}
	return envoysim.HTTPResponse{Status: 200, Body: []byte(`{"ok":true}`)}
}

// visit sends a GET from ip through ext_proc to the shop's back end.
func (v *vigil) visit(ip, path string) *envoysim.Result {
	v.t.Helper()
	res, err := envoysim.Do(context.Background(), v.extproc, buffered, get(path, "x-forwarded-for", ip), shopUpstream)
	if err != nil {
		v.t.Fatal(err)
	}
	return res
}

// trainShop sends the 200 benign requests from 20 clients that make the
// trainedShop model ready, and waits until the pipeline, which handles
// calls after they return, has made it ready.
func (v *vigil) trainShop() {
	v.t.Helper()
	for i := range 200 {
		v.visit(fmt.Sprintf("10.0.0.%d", i%20), fmt.Sprintf("/shop/items/%d", i%7))
	}
	vigiltest.Eventually(v.t, 10*time.Second, func() error {
		code, body := v.Do("GET", "/v1/models/shop", "")
		if code == 404 {
			return fmt.Errorf("no model yet") // the first call is not handled yet
		}
		var m modelDoc
		if code != 200 || json.Unmarshal([]byte(body), &m) != nil {
			v.t.Fatalf("GET /v1/models/shop: %d %s", code, body)
		}
		if m.Status.State != "ready" {
			return fmt.Errorf("model %s", m.Status.State)
		}
		return nil
	})
}

// probeUntilBlocked walks paths that do not exist from ip until the answer
// is 403, and returns that refusal; the test fails if it does not come
// within 10 seconds. Detection runs after the calls, so a fast client gets
// a few answers more before its block lands: the test counts time, not calls.
func (v *vigil) probeUntilBlocked(t *testing.T, ip string) *envoysim.Result {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if res := v.visit(ip, fmt.Sprintf("/shop/nope-%d", i)); res.Status == 403 {
			return res
		}
	}
	t.Fatalf("the prober %s was never refused", ip)
	return nil
}
