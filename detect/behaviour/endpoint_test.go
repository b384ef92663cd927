package behaviour

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// body sends a call with a request body of n bytes.
func (f *engineFixture) body(ip, token, method, path string, n int64) {
	t := &detect.Transaction{API: f.api, Host: "shop.example.com", Method: method, Path: path, Status: 200,
		RequestBytes: n, ResponseBytes: 300, Start: f.now, HasRequest: true, Complete: true, UserAgent: "app/1.0"}
	t.Identities[detect.KindIP] = ip
	t.Identities[detect.KindToken] = f.fp.Fingerprint(token)
	f.e.Consume(t)
}

// updatesAndBulkBids trains a model where people update orders with
// bodies of 120 to 400 bytes and partners send bulk bids of up to 8 KiB
// on another endpoint, with the same kind of credential.
func (f *engineFixture) updatesAndBulkBids(d time.Duration, rng *rand.Rand) {
	end := f.now.Add(d)
	for f.now.Before(end) {
		f.now = f.now.Add(time.Second)
		u := rng.IntN(60)
		switch rng.IntN(4) {
		case 0:
			f.body(fmt.Sprintf("10.2.0.%d", u), fmt.Sprintf("user-%d", u), "PATCH", fmt.Sprintf("/shop/order/%d", 1000+u), 120+rng.Int64N(281))
		case 1:
			f.body(fmt.Sprintf("10.3.0.%d", u%4), fmt.Sprintf("partner-%d", u%4), "PUT", "/shop/order", 1000+rng.Int64N(7193))
		default:
			f.tx(fmt.Sprintf("10.2.0.%d", u), fmt.Sprintf("user-%d", u), "GET", fmt.Sprintf("/shop/order/%d", 1000+u), 200, 900)
		}
	}
}

func variable(a *detect.Attack, name string) (detect.VariableValue, bool) {
	for _, v := range a.Variables {
		if v.Name == name {
			return v, true
		}
	}
	return detect.VariableValue{}, false
}

// A body twice the largest an update endpoint took is oversized there,
// though far under what the API's bulk endpoint takes (request_bytes,
// judged over the whole API, passes it): request_bytes_endpoint names the
// endpoint and its limit. Relaxing the attack raises that endpoint's limit
// alone, and the model document shows it set by a person.
func TestOversizedForItsEndpoint(t *testing.T) {
	f := newEngineFixture(t, detect.ModeBlock)
	rng := rand.New(rand.NewPCG(31, 32))
	f.updatesAndBulkBids(45*time.Minute, rng)
	if len(f.attacks) != 0 {
		t.Fatalf("attacks on benign traffic: %+v", f.attacks[0])
	}
	f.now = f.now.Add(time.Second)
	f.body("203.0.113.9", "thief", "PATCH", "/shop/order/77", 800) // 2 × the largest update
	f.body("203.0.113.9", "thief", "PUT", "/shop/order", 800)      // an ordinary bid
	if len(f.attacks) != 1 || f.attacks[0].Type != detect.AttackOversizedPayload {
		t.Fatalf("attacks %+v, want one oversized_payload", f.attacks)
	}
	a := f.attacks[0]
	ep, ok := variable(a, "request_bytes_endpoint")
	whole, _ := variable(a, "request_bytes")
	if !ok || ep.Location != "PATCH /shop/order/{id}" || ep.Observed != 800 || ep.Tx < 400 || ep.Tx >= 800 || ep.Tn > 400 {
		t.Fatalf("request_bytes_endpoint %+v, want 800 past a Tx of 1.5 × the largest update (400)", ep)
	}
	if whole.Observed > whole.Tx {
		t.Fatalf("request_bytes %+v fired: the endpoint's limit should be what catches it", whole)
	}
	rel, err := f.e.Relax(a)
	if err != nil || len(rel) != 1 || rel[0].Kind != "endpoint" || rel[0].Endpoint != "PATCH /shop/order/{id}" || rel[0].NewTx != 1200 {
		t.Fatalf("relax: %+v %v, want the endpoint's Tx at 1.5 × 800", rel, err)
	}
	f.now = f.now.Add(2 * time.Second)
	f.body("203.0.113.10", "other", "PATCH", "/shop/order/78", 1100)
	if len(f.attacks) != 1 {
		t.Fatalf("relaxed endpoint still fires: %+v", f.attacks[1:])
	}
	doc, _ := f.e.Model("shop")
	var found []VariableDoc
	for _, vd := range doc.Variables {
		if vd.Name == "request_bytes_endpoint" {
			found = append(found, vd)
		}
	}
	if len(found) != 2 || found[0].Endpoint != "PATCH /shop/order/{id}" || found[0].Mode != "user" || found[0].Tx != 1200 ||
		found[1].Endpoint != "PUT /shop/order" || found[1].Mode != "system" || found[1].Samples < endpointMinSamples || found[1].Tx < 8000 {
		t.Fatalf("model document's endpoints: %+v", found)
	}
}

// An endpoint's learned limit travels with the model document: exported,
// then imported on a deployment that saw no traffic, it judges at once;
// invalid endpoint entries are refused, naming the field.
func TestEndpointThresholdsInTheModelDocument(t *testing.T) {
	f := newEngineFixture(t, detect.ModeBlock)
	f.updatesAndBulkBids(45*time.Minute, rand.New(rand.NewPCG(33, 34)))
	doc, _ := f.e.Model("shop")
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	g := newEngineFixture(t, detect.ModeBlock)
	g.now = f.now
	g.tx("10.2.0.1", "user-1", "GET", "/shop/order/1001", 200, 900) // the API's model, nothing learned
	var in ModelDoc
	if err := json.Unmarshal(raw, &in); err != nil {
		t.Fatal(err)
	}
	if err := g.e.Import(&in); err != nil {
		t.Fatalf("import: %v", err)
	}
	g.now = g.now.Add(time.Second)
	g.body("203.0.113.9", "thief", "PATCH", "/shop/order/77", 800)
	if len(g.attacks) != 1 {
		t.Fatalf("imported endpoint limit does not judge: %+v", g.attacks)
	}
	if _, ok := variable(g.attacks[0], "request_bytes_endpoint"); !ok {
		t.Fatalf("explained %+v", g.attacks[0].Variables)
	}
	for _, tc := range []struct {
		u    VariableUpdate
		want string
	}{
		{VariableUpdate{Name: "request_bytes_endpoint", Kind: "token", Endpoint: "PATCH /shop/order/{id}", Mode: "system"}, `variables[0].kind: "token" (request_bytes_endpoint wants kind "endpoint"`},
		{VariableUpdate{Name: "request_bytes_endpoint", Kind: "endpoint", Endpoint: "/shop/order", Mode: "system"}, `variables[0].endpoint: "/shop/order" (want "METHOD /template"`},
		{VariableUpdate{Name: "request_bytes_endpoint", Kind: "endpoint", Endpoint: "PATCH " + strings.Repeat("/a", 600), Mode: "system"}, `at most 1024 bytes`},
		{VariableUpdate{Name: "request_bytes", Kind: "endpoint", Mode: "system"}, `variables[0].kind: "endpoint" does not apply to request_bytes`},
	} {
		err := g.e.Apply("shop", &ModelUpdate{Variables: []VariableUpdate{tc.u}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.u, err, tc.want)
		}
	}
	tx, tn := 5000.0, 100.0
	if err := g.e.Apply("shop", &ModelUpdate{Variables: []VariableUpdate{{Name: "request_bytes_endpoint", Kind: "endpoint", Endpoint: "POST /shop/cart", Mode: "user", Tn: &tn, Tx: &tx}}}); err != nil {
		t.Fatalf("a person's limit for an endpoint not seen yet: %v", err)
	}
	g.now = g.now.Add(time.Second)
	g.body("203.0.113.11", "someone", "POST", "/shop/cart", 5001)
	if len(g.attacks) != 2 {
		t.Fatalf("a person's endpoint limit does not judge: %+v", g.attacks)
	}
}

// A small endpoint's limit is its own: cart additions of 60 to 160 bytes
// make a Tx of 1.5 × the largest (240, over the 128-byte floor), so a
// body of 300 is oversized there and one of 200 is not.
func TestOversizedForASmallEndpoint(t *testing.T) {
	f := newEngineFixture(t, detect.ModeBlock)
	rng := rand.New(rand.NewPCG(35, 36))
	end := f.now.Add(45 * time.Minute)
	for f.now.Before(end) {
		f.now = f.now.Add(time.Second)
		u := rng.IntN(60)
		if rng.IntN(3) == 0 {
			f.body(fmt.Sprintf("10.2.0.%d", u), fmt.Sprintf("user-%d", u), "POST", "/shop/cart", 60+rng.Int64N(101))
		} else {
			f.tx(fmt.Sprintf("10.2.0.%d", u), fmt.Sprintf("user-%d", u), "GET", fmt.Sprintf("/shop/order/%d", 1000+u), 200, 900)
		}
	}
	if len(f.attacks) != 0 {
		t.Fatalf("attacks on benign traffic: %+v", f.attacks[0])
	}
	f.now = f.now.Add(time.Second)
	f.body("203.0.113.11", "shopper", "POST", "/shop/cart", 200)
	if len(f.attacks) != 0 {
		t.Fatalf("a body 1.25 × the largest fired: %+v", f.attacks[0])
	}
	f.body("203.0.113.12", "stuffer", "POST", "/shop/cart", 300)
	if len(f.attacks) != 1 || f.attacks[0].Type != detect.AttackOversizedPayload {
		t.Fatalf("attacks %+v, want one oversized_payload", f.attacks)
	}
	ep, ok := variable(f.attacks[0], "request_bytes_endpoint")
	if !ok || ep.Location != "POST /shop/cart" || ep.Tx < 200 || ep.Tx > 241 {
		t.Fatalf("request_bytes_endpoint %+v, want 300 past a Tx of 1.5 × the largest addition (at most 240)", ep)
	}
}
