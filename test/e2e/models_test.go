package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/server/cli"
)

type modelDoc struct {
	API    string `json:"api"`
	Status struct {
		State string `json:"state"`
	} `json:"status"`
	Types map[string]struct {
		Enabled     bool
		Sensitivity float64
	} `json:"types"`
	Variables []struct {
		Name, Kind, Mode, Endpoint string
		Tn, Tx                     float64
	} `json:"variables"`
}

func (d *modelDoc) variable(name, kind string) (mode string, tn, tx float64) {
	for _, v := range d.Variables {
		if v.Name == name && v.Kind == kind {
			return v.Mode, v.Tn, v.Tx
		}
	}
	return "", 0, 0
}

func TestModelsAreTunableExportableAndImportable(t *testing.T) {
	cfg := `
training: {duration: 1h, min_requests: 100000, min_identities: 1000, relearn_interval: 1h}
apis:
  - name: shop
    base_path: /shop
    detection:
      types: {bola_enumeration: {sensitivity: 2}}
      variables:
        - {name: deletes_10m, kind: token, mode: user, tn: 3, tx: 30}
        - {name: request_bytes_endpoint, kind: endpoint, endpoint: "PATCH /shop/order/{id}", mode: user, tn: 400, tx: 2000}
`
	staging := start(t, cfg)
	var doc modelDoc
	decodeJSON(t, staging.MustDo("GET", "/v1/models/shop", "", 200), &doc)
	if doc.Status.State != "learning" || doc.Types["bola_enumeration"].Sensitivity != 2 || !doc.Types["probing"].Enabled {
		t.Fatalf("configured knobs not applied: %+v", doc)
	}
	if mode, tn, tx := doc.variable("deletes_10m", "token"); mode != "user" || tn != 3 || tx != 30 {
		t.Fatalf("configured threshold: %s %v %v", mode, tn, tx)
	}
	if mode, tn, tx := doc.variable("request_bytes_endpoint", "endpoint"); mode != "user" || tn != 400 || tx != 2000 {
		t.Fatalf("configured endpoint threshold: %s %v %v", mode, tn, tx)
	}
	// PUT: user thresholds and knobs, then back to learning.
	put := `{"types":{"probing":{"enabled":false}},"variables":[{"name":"requests_per_min","kind":"ip","mode":"user","tn":100,"tx":900}]}`
	decodeJSON(t, staging.MustDo("PUT", "/v1/models/shop", put, 200), &doc)
	if mode, _, tx := doc.variable("requests_per_min", "ip"); mode != "user" || tx != 900 || doc.Types["probing"].Enabled {
		t.Fatalf("after PUT: %s %v %+v", mode, tx, doc.Types["probing"])
	}
	decodeJSON(t, staging.MustDo("PUT", "/v1/models/shop", `{"variables":[{"name":"requests_per_min","kind":"ip","mode":"system"}]}`, 200), &doc)
	if mode, _, _ := doc.variable("requests_per_min", "ip"); mode != "system" {
		t.Fatalf("not back to system: %s", mode)
	}
	// Bad updates say what is wrong and change nothing.
	for _, bad := range []string{
		`{"variables":[{"name":"nope","kind":"ip","mode":"user","tn":1,"tx":2}]}`,
		`{"variables":[{"name":"distinct_ips","kind":"ip","mode":"user","tn":1,"tx":2}]}`,
		`{"types":{"probing":{"sensitivity":-1}}}`,
		`{"types":{"teleport":{"enabled":true}}}`,
		`{"variables":[{"name":"deletes_10m","kind":"token","mode":"user","tn":5,"tx":1}]}`,
		`{"unknown":1}`, `not json`,
	} {
		if code, out := staging.Do("PUT", "/v1/models/shop", bad); code != 400 || !strings.Contains(out, "error") {
			t.Errorf("PUT %s: %d %s", bad, code, out)
		}
	}
	staging.MustDo("GET", "/v1/models/nosuch", "", 404)

	// vigil model export from staging, vigil model import into production.
	file := filepath.Join(t.TempDir(), "shop-model.json")
	var out, errs bytes.Buffer
	if err := cli.Main(context.Background(), []string{"model", "export", "shop", "--admin-addr", staging.AdminAddr(), "--out", file}, &out, &errs); err != nil {
		t.Fatalf("export: %v %s", err, errs.String())
	}
	data, _ := os.ReadFile(file)
	if !strings.Contains(string(data), `"version": 1`) && !strings.Contains(string(data), `"version":1`) {
		t.Fatalf("export is not versioned: %.200s", data)
	}
	production := start(t, cfg)
	if err := cli.Main(context.Background(), []string{"model", "import", file, "--admin-addr", production.AdminAddr()}, &out, &errs); err != nil {
		t.Fatalf("import: %v %s", err, errs.String())
	}
	var imported modelDoc
	decodeJSON(t, production.MustDo("GET", "/v1/models/shop", "", 200), &imported)
	// The staging model had not finished learning, so neither has the
	// imported one; its knobs and thresholds came along.
	if imported.Status.State != doc.Status.State || imported.Types["probing"].Enabled {
		t.Fatalf("imported model: %+v", imported.Status)
	}
	for _, v := range doc.Variables {
		if mode, tn, tx := imported.variable(v.Name, v.Kind); mode != v.Mode || tn != v.Tn || tx != v.Tx {
			t.Fatalf("%s/%s: imported %s %v %v, exported %s %v %v", v.Name, v.Kind, mode, tn, tx, v.Mode, v.Tn, v.Tx)
		}
	}
	// The CLI reports server errors and exits non-zero.
	err := cli.Main(context.Background(), []string{"model", "set", "shop", "--admin-addr", production.AdminAddr(), "--var", "nope", "--kind", "ip", "--tn", "1", "--tx", "2"}, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "unknown variable") {
		t.Fatalf("model set with a bad variable: %v", err)
	}
	var tbl bytes.Buffer
	if err := cli.Main(context.Background(), []string{"model", "get", "shop", "--admin-addr", production.AdminAddr()}, &tbl, &errs); err != nil || !strings.Contains(tbl.String(), "distinct_object_ids") {
		t.Fatalf("model get: %v\n%s", err, tbl.String())
	}
	// An endpoint's request size limit, set from the CLI.
	tbl.Reset()
	err = cli.Main(context.Background(), []string{"model", "set", "shop", "--admin-addr", production.AdminAddr(),
		"--var", "request_bytes_endpoint", "--kind", "endpoint", "--endpoint", "POST /shop/cart", "--tn", "100", "--tx", "900"}, &tbl, &errs)
	if err != nil || !regexp.MustCompile(`request_bytes_endpoint +oversized_payload +endpoint POST /shop/cart +user +100 +900`).MatchString(tbl.String()) {
		t.Fatalf("model set --endpoint: %v\n%s", err, tbl.String())
	}
}
