package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/server/cli"
	"github.com/vigil-project/vigil/test/envoysim"
	"github.com/vigil-project/vigil/test/vigiltest"
)

const inspectionConfig = `
trusted_hops: 1
apis:
  - {name: shop, hosts: [shop.example.com], base_path: /shop, mode: block}
  - {name: watch, hosts: [shop.example.com], base_path: /watch, mode: detect}
  - {name: plain, hosts: [shop.example.com], base_path: /plain, mode: block, inspection: "off"}
`

var (
	sqliQuery      = "q=" + url.QueryEscape("' UNION SELECT password FROM users--")
	traversalQuery = "name=" + url.QueryEscape("../../../../etc/passwd")
)

func jsonPost(method, path, ip, body string) envoysim.HTTPRequest {
	return envoysim.HTTPRequest{Method: method, Path: path, Authority: "shop.example.com", Body: []byte(body),
		Headers: envoysim.HeaderPairs("x-forwarded-for", ip, "content-type", "application/json")}
}

// contentAttackJSON is an attack record of a content type, as GET
// /v1/attacks shows it.
type contentAttackJSON struct {
	ID, Type, API, Action string
	Identity              struct{ Kind, Value string }
	Variables             []struct {
		Name, Location, Detector, Excerpt string
	}
}

func (v *vigil) contentAttacks(typ string) []contentAttackJSON {
	var out struct{ Attacks []contentAttackJSON }
	decodeJSON(v.t, v.MustDo("GET", "/v1/attacks?type="+typ, "", 200), &out)
	return out.Attacks
}

// TestInspectionRefusesInjectionsOnTheFirstRequest: in block mode a SQL
// injection and a traversal are refused on the very request that carries
// them (403, reason the attack type, the decision ID), over ext_proc and
// ext_authz; detect mode lets it through and counts a would-be refusal;
// inspection: off lets it through untouched; a benign JSON POST passes;
// each finding is an attack record naming where the value was.
func TestInspectionRefusesInjectionsOnTheFirstRequest(t *testing.T) {
	v := start(t, inspectionConfig)
	b := assertBlocked(t, v.send(buffered, from("198.51.100.1", "/shop/search?"+sqliQuery)), 403, "sql_injection")
	assertBlocked(t, v.send(buffered, from("198.51.100.2", "/shop/files?"+traversalQuery)), 403, "path_traversal")
	res := v.send(buffered, jsonPost("POST", "/shop/orders", "198.51.100.3", `{"item":"book-17","qty":2,"note":"leave it at the door, please"}`))
	if !res.UpstreamCalled || res.Status != 200 {
		t.Fatalf("benign JSON POST: upstream %v, status %d, body %s", res.UpstreamCalled, res.Status, res.Body)
	}
	assertBlocked(t, v.send(buffered, jsonPost("POST", "/shop/orders", "198.51.100.4", `{"item":"x","note":"1' OR '1'='1' --"}`)), 403, "sql_injection")
	// ext_authz, with the body.
	resp := v.check(jsonPost("POST", "/shop/orders", "198.51.100.5", `{"item":"x","q":"' UNION SELECT password FROM users--"}`),
		envoysim.CheckOptions{MaxRequestBytes: 8192})
	assertDenied(t, resp, 403, "sql_injection")

	// Detect mode: let through, counted as a would-be refusal.
	if res := v.send(buffered, from("198.51.100.6", "/watch/search?"+sqliQuery)); !res.UpstreamCalled || res.Status != 200 {
		t.Fatalf("detect mode: upstream %v, status %d", res.UpstreamCalled, res.Status)
	}
	if n := v.Metric("vigil_verdicts_total", `service="ext_proc"`, `outcome="would_block"`, `reason="sql_injection"`); n != 1 {
		t.Fatalf("would_block sql_injection = %v, want 1", n)
	}
	// inspection: off.
	if res := v.send(buffered, from("198.51.100.7", "/plain/search?"+sqliQuery)); !res.UpstreamCalled || res.Status != 200 {
		t.Fatalf("inspection off: upstream %v, status %d", res.UpstreamCalled, res.Status)
	}
	if n := v.Metric("vigil_verdicts_total", `service="ext_proc"`, `outcome="deny"`, `reason="sql_injection"`); n != 2 {
		t.Fatalf("deny sql_injection over ext_proc = %v, want 2 (the /plain call is not inspected)", n)
	}

	// The records: where, what matched, an excerpt.
	vigiltest.Eventually(t, 10*time.Second, func() error {
		var found, watch bool
		for _, a := range v.contentAttacks("sql_injection") {
			if len(a.Variables) != 1 {
				return fmt.Errorf("attack %+v: want one variable", a)
			}
			x := a.Variables[0]
			if a.API == "shop" && a.Identity.Value == "198.51.100.1" {
				found = x.Name == "query.q" && x.Location == "query" && x.Detector != "" && strings.Contains(x.Excerpt, "UNION") && a.Action == "detected"
			}
			if a.API == "watch" && a.Identity.Value == "198.51.100.6" {
				watch = true
			}
			if a.API == "plain" {
				return fmt.Errorf("a record for the API with inspection off: %+v", a)
			}
		}
		if !found || !watch {
			return fmt.Errorf("records %+v: want shop's query.q one and watch's", v.contentAttacks("sql_injection"))
		}
		if tr := v.contentAttacks("path_traversal"); len(tr) != 1 || tr[0].Variables[0].Name != "query.name" {
			return fmt.Errorf("path_traversal records %+v", tr)
		}
		return nil
	})
	if !strings.Contains(v.Logs.String(), b.DecisionID) {
		t.Fatalf("the decision %s is not in the log", b.DecisionID)
	}
}

// TestInspectionBlocksARepeatOffender: a scanner's payloads are refused one
// by one, and after detection.block_after of them its identity is on the
// block list: its next call, benign, is refused too (blocklist), with the
// attack that blocked it.
func TestInspectionBlocksARepeatOffender(t *testing.T) {
	v := start(t, inspectionConfig)
	payloads := []string{"/shop/search?" + sqliQuery, "/shop/files?" + traversalQuery, "/shop/search?q=" + url.QueryEscape("<script>alert(1)</script>")}
	for _, p := range payloads {
		res := v.send(buffered, from("203.0.113.50", p))
		if res.UpstreamCalled || res.Status != 403 {
			t.Fatalf("%s: upstream %v, status %d", p, res.UpstreamCalled, res.Status)
		}
	}
	vigiltest.Eventually(t, 10*time.Second, func() error {
		res := v.send(buffered, from("203.0.113.50", "/shop/items/17"))
		if res.Status != 403 || res.UpstreamCalled {
			return fmt.Errorf("benign call after %d payloads: status %d", len(payloads), res.Status)
		}
		assertBlocked(t, res, 403, "blocklist")
		return nil
	})
	var blocked int
	for _, typ := range []string{"sql_injection", "path_traversal", "xss"} {
		for _, a := range v.contentAttacks(typ) {
			if a.Action == "blocked" && a.Identity.Value == "203.0.113.50" {
				blocked++
			}
		}
	}
	if blocked != 1 {
		t.Fatalf("%d blocking records, want 1", blocked)
	}
	// vigil attacks lists it and shows where the value was and what matched.
	var out, errs bytes.Buffer
	if err := cli.Main(context.Background(), []string{"attacks", "--type", "sql_injection", "--admin-addr", v.AdminAddr()}, &out, &errs); err != nil {
		t.Fatalf("vigil attacks: %v\n%s", err, errs.String())
	}
	if !strings.Contains(out.String(), "query.q libinjection") {
		t.Fatalf("vigil attacks lacks the location and detector:\n%s", out.String())
	}
	id := v.contentAttacks("sql_injection")[0].ID
	out.Reset()
	if err := cli.Main(context.Background(), []string{"attacks", "show", id, "--admin-addr", v.AdminAddr()}, &out, &errs); err != nil {
		t.Fatalf("vigil attacks show: %v\n%s", err, errs.String())
	}
	for _, want := range []string{"LOCATION", "MATCHED", "query.q", "UNION SELECT", "GET shop.example.com/shop/search"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("vigil attacks show lacks %q:\n%s", want, out.String())
		}
	}
	if res := v.send(buffered, from("203.0.113.51", "/shop/items/17")); res.Status != 200 {
		t.Fatalf("another client got %d", res.Status)
	}
}

// TestInspectionLearnsProfilesAndRefusesMassAssignment: with the trust
// thresholds lowered through PUT /v1/models/{api}, benign PATCHes of
// several identities train the endpoint's profile; then a PATCH carrying a
// key the object never carries (role) is refused as mass_assignment while
// a benign one passes. The profiles travel with the model: exported from
// this Vigil and imported into a fresh one, they refuse the same PATCH on
// its first call.
func TestInspectionLearnsProfilesAndRefusesMassAssignment(t *testing.T) {
	dir := t.TempDir()
	v := startIn(t, dir, inspectionConfig)
	out := v.MustDo("PUT", "/v1/models/shop", `{"inspection":{"min_identities":3,"min_span":"1ms","min_samples":10,"sample_every":1}}`, 200)
	var doc struct {
		Inspection struct {
			Knobs struct {
				MinIdentities int    `json:"min_identities"`
				MinSpan       string `json:"min_span"`
				MinSamples    int    `json:"min_samples"`
				SampleEvery   int    `json:"sample_every"`
			}
			Endpoints []struct {
				Endpoint, Method string
				Trusted          bool
			}
		}
	}
	decodeJSON(t, out, &doc)
	if k := doc.Inspection.Knobs; k.MinIdentities != 3 || k.MinSpan != "1ms" || k.MinSamples != 10 || k.SampleEvery != 1 {
		t.Fatalf("knobs after PUT: %+v (%s)", k, out)
	}
	v.MustDo("PUT", "/v1/models/shop", `{"inspection":{"min_identities":0}}`, 400)
	patch := func(ip, body string) *envoysim.Result {
		return v.send(buffered, jsonPost("PATCH", "/shop/users/"+fmt.Sprint(1000+len(ip)), ip, body))
	}
	for i := range 30 {
		body := fmt.Sprintf(`{"name":"user %d","email":"user%d@example.com"}`, i, i)
		if res := patch(fmt.Sprintf("198.51.100.%d", 10+i%5), body); res.Status != 200 {
			t.Fatalf("training PATCH %d: status %d", i, res.Status)
		}
	}
	evil := `{"name":"mallory","role":"admin"}`
	vigiltest.Eventually(t, 20*time.Second, func() error {
		res := patch("203.0.113.66", evil)
		if res.Status != 403 {
			return fmt.Errorf("PATCH with role: status %d", res.Status)
		}
		assertBlocked(t, res, 403, "mass_assignment")
		return nil
	})
	if res := patch("198.51.100.10", `{"name":"alice","email":"alice@example.com"}`); res.Status != 200 {
		t.Fatalf("benign PATCH after training: %d", res.Status)
	}
	vigiltest.Eventually(t, 10*time.Second, func() error {
		for _, a := range v.contentAttacks("mass_assignment") {
			if a.Identity.Value == "203.0.113.66" && len(a.Variables) == 1 && strings.Contains(a.Variables[0].Name, "role") && a.Variables[0].Detector != "" {
				return nil
			}
		}
		return fmt.Errorf("no mass_assignment record naming role: %+v", v.contentAttacks("mass_assignment"))
	})

	export := v.MustDo("GET", "/v1/models/shop", "", 200)
	decodeJSON(t, export, &doc)
	var trusted bool
	for _, e := range doc.Inspection.Endpoints {
		trusted = trusted || e.Method == "PATCH" && e.Trusted
	}
	if !trusted {
		t.Fatalf("the export has no trusted PATCH profile: %+v", doc.Inspection.Endpoints)
	}
	w := start(t, inspectionConfig)
	// A model with many profiles is larger than other admin bodies (64 KiB).
	w.MustDo("POST", "/v1/models/shop/import", export+strings.Repeat(" ", 70<<10), 200)
	res := w.send(buffered, jsonPost("PATCH", "/shop/users/77", "203.0.113.67", evil))
	assertBlocked(t, res, 403, "mass_assignment")
	if res := w.send(buffered, jsonPost("PATCH", "/shop/users/77", "203.0.113.68", `{"name":"bob","email":"bob@example.com"}`)); res.Status != 200 {
		t.Fatalf("benign PATCH on the importing Vigil: %d", res.Status)
	}

	// The profiles and knobs outlive a restart.
	v.Stop()
	r := startIn(t, dir, inspectionConfig)
	assertBlocked(t, r.send(buffered, jsonPost("PATCH", "/shop/users/78", "203.0.113.69", evil)), 403, "mass_assignment")
	decodeJSON(t, r.MustDo("GET", "/v1/models/shop", "", 200), &doc)
	if k := doc.Inspection.Knobs; k.MinIdentities != 3 || k.SampleEvery != 1 {
		t.Fatalf("knobs after a restart: %+v", k)
	}
}

// TestReplayInspectsRequestBodies: vigil replay inspects recorded calls as
// live: a record's query, and its request_body with its content type,
// raise the same attacks with the same key paths; a benign body raises
// nothing.
func TestReplayInspectsRequestBodies(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(cfgPath, []byte("data_dir: "+dir+"\n"+inspectionConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	rec := func(i int, ip, method, path, body string) string {
		b, _ := json.Marshal(map[string]any{
			"time": t0.Add(time.Duration(i) * time.Second), "method": method, "authority": "shop.example.com", "path": path,
			"status": 200, "client_ip": ip, "request_headers": map[string]string{"content-type": "application/json", "user-agent": "app"},
			"request_bytes": len(body), "response_bytes": 20, "duration_ms": 3, "request_body": body,
		})
		return string(b) + "\n"
	}
	in := rec(0, "198.51.100.1", "GET", "/shop/search?"+sqliQuery, "") +
		rec(1, "198.51.100.2", "POST", "/shop/orders", `{"item":"x","note":"1' OR '1'='1' --"}`) +
		rec(2, "198.51.100.3", "POST", "/shop/orders", `{"item":"book-17","qty":2,"note":"leave it at the door, please"}`) +
		rec(3, "198.51.100.4", "POST", "/plain/orders", `{"item":"x","note":"1' OR '1'='1' --"}`)
	inPath, outPath := filepath.Join(dir, "traffic.jsonl"), filepath.Join(dir, "attacks.jsonl")
	if err := os.WriteFile(inPath, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := cli.Main(context.Background(), []string{"replay", "--config", cfgPath, "--input", inPath, "--out", outPath}, &stdout, &stderr); err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	out, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var a contentAttackJSON
		decodeJSON(t, line, &a)
		if len(a.Variables) != 1 {
			t.Fatalf("attack %s: want one variable", line)
		}
		got = append(got, fmt.Sprintf("%s %s %s %s", a.Type, a.API, a.Identity.Value, a.Variables[0].Name))
	}
	want := []string{"sql_injection shop 198.51.100.1 query.q", "sql_injection shop 198.51.100.2 body.note"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("replayed attacks %q, want %q\n%s", got, want, stderr.String())
	}
}

// TestInspectionSurvivesHugeAndBrokenBodies: bodies past the inspector's
// caps, deeply nested or broken, get an answer (never a crash or a hang),
// the benign ones pass, and the caps hit are counted.
func TestInspectionSurvivesHugeAndBrokenBodies(t *testing.T) {
	v := start(t, inspectionConfig)
	huge := `{"items":[` + strings.Repeat(`{"sku":"book-17","qty":2},`, 2<<20/26) + `{"sku":"x"}]}`
	deep := strings.Repeat(`{"a":[`, 5000) + strings.Repeat(`]}`, 5000)
	big := buffered
	big.BufferLimit = 4 << 20 // Envoy's per_connection_buffer_limit_bytes raised: bodies past the inspector's 1 MiB
	for name, body := range map[string]string{
		"huge":      huge,
		"deep":      deep,
		"broken":    `{"item": "book", "qty": 2, "note": "unterminated`,
		"binary":    string([]byte{0xff, 0xfe, 0x00, 0x01, '{', '"', 0x80}),
		"not json":  strings.Repeat("A", 300000),
		"empty obj": `{}`,
	} {
		res := v.send(big, jsonPost("POST", "/shop/orders", "198.51.100.20", body))
		if res.Status != 200 && res.Status != 403 {
			t.Fatalf("%s body: status %d", name, res.Status)
		}
		if name == "huge" || name == "empty obj" || name == "not json" {
			if res.Status != 200 {
				t.Fatalf("%s benign body refused: %s", name, res.Body)
			}
		}
	}
	if n := v.Metric("vigil_inspection_capped_total", `cap="body_bytes"`); n < 1 {
		t.Fatalf("vigil_inspection_capped_total{cap=body_bytes} = %v, want the huge body counted", n)
	}
	if n := v.Metric("vigil_inspection_requests_total"); n < 6 {
		t.Fatalf("vigil_inspection_requests_total = %v", n)
	}
}

const shopOpenAPI = `openapi: 3.0.3
info: {title: shop, version: "1"}
servers: [{url: /shop}]
paths:
  /search:
    get:
      parameters: [{name: q, in: query, required: true, schema: {type: string, maxLength: 100}}]
      responses: {"200": {description: ok}}
  /users/{id}:
    patch:
      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                name: {type: string}
                email: {type: string, format: email}
      responses: {"200": {description: ok}}
`

// TestOpenAPIRefusesWhatTheDocumentDoesNotAllow: with apis[].openapi, the
// first call the document does not allow is refused, before any training:
// an undeclared property on a write is mass_assignment, an unknown path a
// schema_violation; calls it allows pass.
func TestOpenAPIRefusesWhatTheDocumentDoesNotAllow(t *testing.T) {
	doc := filepath.Join(t.TempDir(), "shop.yaml")
	if err := os.WriteFile(doc, []byte(shopOpenAPI), 0o600); err != nil {
		t.Fatal(err)
	}
	v := start(t, "trusted_hops: 1\napis:\n  - {name: shop, hosts: [shop.example.com], base_path: /shop, mode: block, openapi: "+doc+"}\n")
	assertBlocked(t, v.send(buffered, jsonPost("PATCH", "/shop/users/7", "198.51.100.30", `{"name":"mallory","role":"admin"}`)), 403, "mass_assignment")
	assertBlocked(t, v.send(buffered, from("198.51.100.31", "/shop/internal/export")), 403, "schema_violation")
	if res := v.send(buffered, jsonPost("PATCH", "/shop/users/7", "198.51.100.32", `{"name":"alice","email":"alice@example.com"}`)); res.Status != 200 {
		t.Fatalf("a PATCH the document allows: %d %s", res.Status, res.Body)
	}
	if res := v.send(buffered, from("198.51.100.33", "/shop/search?q=blue+shoes")); res.Status != 200 {
		t.Fatalf("a GET the document allows: %d %s", res.Status, res.Body)
	}
	vigiltest.Eventually(t, 10*time.Second, func() error {
		ma := v.contentAttacks("mass_assignment")
		if len(ma) != 1 || !strings.Contains(ma[0].Variables[0].Name+ma[0].Variables[0].Excerpt, "role") || !strings.HasPrefix(ma[0].Variables[0].Detector, "spec-") {
			return fmt.Errorf("mass_assignment records %+v", ma)
		}
		return nil
	})
	// The admin API knows the document: the inventory is marked against
	// it (both operations were called: no zombie, no shadow endpoint), and
	// the export is served.
	vigiltest.Eventually(t, 10*time.Second, func() error {
		var inv struct {
			APIs []struct {
				Name      string
				OpenAPI   bool `json:"openapi"`
				Endpoints []struct {
					Method, Path string
					Shadow       bool `json:"shadow"`
				}
				Zombies []struct{ Method, Path string }
			}
		}
		decodeJSON(t, v.MustDo("GET", "/v1/apis", "", 200), &inv)
		if len(inv.APIs) != 1 || !inv.APIs[0].OpenAPI || len(inv.APIs[0].Endpoints) != 2 || len(inv.APIs[0].Zombies) != 0 {
			return fmt.Errorf("GET /v1/apis: %+v", inv.APIs)
		}
		for _, e := range inv.APIs[0].Endpoints {
			if e.Shadow {
				return fmt.Errorf("%s %s marked shadow", e.Method, e.Path)
			}
		}
		return nil
	})
	if out := v.MustDo("GET", "/v1/apis/shop/openapi.json", "", 200); !strings.Contains(out, `"openapi"`) {
		t.Fatalf("GET /v1/apis/shop/openapi.json: %s", out)
	}
}
