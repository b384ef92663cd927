package behaviour

import (
	"encoding/json"
	"github.com/vigil-project/vigil/detect"
	"math"
	"strings"
	"testing"
)

// Every number of a model update or an imported model is finite and in
// range, or the change is refused with the field named and the model left
// as it was: a Tx of 1e308 once made the model hold +Inf, which no model
// document (GET /v1/models, export, the periodic save) could encode.
func TestModelNumbersInRange(t *testing.T) {
	e := NewEngine(EngineConfig{APIs: []*detect.API{{Name: "shop", BasePath: "/shop"}}})
	f := func(v float64) *float64 { return &v }
	before, _ := json.Marshal(mustModel(t, e))

	for _, tc := range []struct {
		name string
		u    ModelUpdate
		msg  string
	}{
		{"huge tx", ModelUpdate{Variables: []VariableUpdate{{Name: "errors_10m", Kind: "ip", Mode: "user", Tn: f(1), Tx: f(1e308)}}}, "variables[0].tx: 1e+308 must be above 0 and at most 1e+12"},
		{"infinite tx", ModelUpdate{Variables: []VariableUpdate{{Name: "errors_10m", Kind: "ip", Mode: "user", Tn: f(1), Tx: f(math.Inf(1))}}}, "variables[0].tx: +Inf"},
		{"NaN tn", ModelUpdate{Variables: []VariableUpdate{{Name: "errors_10m", Kind: "ip", Mode: "user", Tn: f(math.NaN()), Tx: f(10)}}}, "variables[0].tn: NaN must be from 0"},
		{"huge tn", ModelUpdate{Variables: []VariableUpdate{{Name: "errors_10m", Kind: "ip", Mode: "user", Tn: f(2e12), Tx: f(1e12)}}}, "variables[0].tn: 2e+12"},
		{"tx below tn", ModelUpdate{Variables: []VariableUpdate{{Name: "errors_10m", Kind: "ip", Mode: "user", Tn: f(10), Tx: f(5)}}}, "variables[0].tx: 5 is below tn 10"},
		{"NaN sensitivity", ModelUpdate{Types: map[detect.AttackType]TypeKnobsUpdate{detect.AttackProbing: {Sensitivity: f(math.NaN())}}}, "types.probing.sensitivity: NaN must be from 0.01 to 100"},
		// Tx divided by a tiny sensitivity would overflow into +Inf.
		{"tiny sensitivity", ModelUpdate{Types: map[detect.AttackType]TypeKnobsUpdate{detect.AttackProbing: {Sensitivity: f(1e-300)}}}, "types.probing.sensitivity: 1e-300 must be from 0.01 to 100"},
		{"infinite sensitivity", ModelUpdate{Types: map[detect.AttackType]TypeKnobsUpdate{detect.AttackProbing: {Sensitivity: f(math.Inf(1))}}}, "types.probing.sensitivity: +Inf"},
	} {
		if err := e.Apply("shop", &tc.u); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: Apply = %v, want an error with %q", tc.name, err, tc.msg)
		}
	}

	good := func() *ModelDoc {
		d := mustModel(t, e)
		d.Status.State = "ready"
		return d
	}
	for _, tc := range []struct {
		name   string
		change func(d *ModelDoc)
		msg    string
	}{
		{"huge tx", func(d *ModelDoc) { d.Variables[1].Tx = 1e308 }, "variables[1].tx: 1e+308"},
		{"NaN tn", func(d *ModelDoc) { d.Variables[2].Tn = math.NaN() }, "variables[2].tn: NaN"},
		{"negative samples", func(d *ModelDoc) { d.Variables[0].Samples = -1 }, "variables[0].samples: -1 is negative"},
		{"bad mode", func(d *ModelDoc) { d.Variables[0].Mode = "auto" }, `variables[0].mode: "auto"`},
		{"tiny sensitivity", func(d *ModelDoc) { d.Types[detect.AttackProbing] = TypeKnobs{Enabled: true, Sensitivity: 1e-9} }, "types.probing.sensitivity: 1e-09"},
		{"progress past 1", func(d *ModelDoc) { d.Status.Progress.Requests = 2 }, "status.progress.requests: 2 must be from 0 to 1"},
		{"negative requests", func(d *ModelDoc) { d.Status.Requests = -5 }, "status.requests: -5 is negative"},
		{"every problem at once", func(d *ModelDoc) { d.Variables[0].Tx = -1; d.Variables[3].Tn = -1 }, "variables[0].tx: -1 must be above 0 and at most 1e+12; variables[3].tn: -1"},
	} {
		d := good()
		tc.change(d)
		if err := e.Import(d); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: Import = %v, want an error with %q", tc.name, err, tc.msg)
		}
	}
	after, err := json.Marshal(mustModel(t, e))
	if err != nil || string(after) != string(before) {
		t.Errorf("refused changes changed the model (%v):\nbefore %s\nafter  %s", err, before, after)
	}

	// The bounds themselves are accepted, and the model stays encodable.
	if err := e.Apply("shop", &ModelUpdate{
		Types:     map[detect.AttackType]TypeKnobsUpdate{detect.AttackProbing: {Sensitivity: f(MinSensitivity)}},
		Variables: []VariableUpdate{{Name: "response_bytes_10m", Kind: "ip", Mode: "user", Tn: f(0), Tx: f(MaxThreshold)}},
	}); err != nil {
		t.Fatalf("Apply at the bounds: %v", err)
	}
	if err := e.Import(good()); err != nil {
		t.Fatalf("Import of an exported model: %v", err)
	}
	for _, d := range e.ModelDocs() {
		if _, err := json.Marshal(d); err != nil {
			t.Errorf("model %s cannot be encoded: %v", d.API, err)
		}
	}
}

func mustModel(t *testing.T, e *Engine) *ModelDoc {
	t.Helper()
	if e.modelByName("shop") == nil {
		t.Fatal("no model of shop")
	}
	d, ok := e.Model("shop")
	if !ok {
		t.Fatal("no model of shop")
	}
	return d
}
