package inspect_test

import (
	"testing"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/inspect"
)

// The kinds carry the contract's attack type names, the same as detect's.
func TestKindNamesAreTheContractsAttackTypes(t *testing.T) {
	want := map[inspect.Kind]detect.AttackType{
		inspect.SQLInjection: detect.AttackSQLInjection, inspect.XSS: detect.AttackXSS,
		inspect.CommandInjection: detect.AttackCommandInjection, inspect.PathTraversal: detect.AttackPathTraversal,
		inspect.SSRF: detect.AttackSSRF, inspect.JNDIInjection: detect.AttackJNDIInjection,
		inspect.NoSQLInjection: detect.AttackNoSQLInjection, inspect.CRLFInjection: detect.AttackCRLFInjection,
		inspect.XXE: detect.AttackXXE, inspect.SchemaViolation: detect.AttackSchemaViolation,
		inspect.MassAssignment: detect.AttackMassAssignment,
	}
	kinds := inspect.Kinds()
	if len(kinds) != len(want) {
		t.Fatalf("Kinds() = %v, want %d kinds", kinds, len(want))
	}
	for _, k := range kinds {
		if got := detect.AttackType(k.String()); got != want[k] {
			t.Errorf("kind %d named %q, want %q", k, got, want[k])
		}
	}
	if inspect.KindNone.String() != "" {
		t.Errorf("KindNone named %q", inspect.KindNone.String())
	}
}

func TestRequestFindsAttackInQueryWithItsKeyPath(t *testing.T) {
	in := inspect.New(inspect.Config{})
	cases := []struct {
		name, query string
		kind        inspect.Kind
		keyPath     string
	}{
		{"sqli union", "page=2&q=%27+UNION+SELECT+password+FROM+users--", inspect.SQLInjection, "query.q"},
		{"sqli tautology", "id=1%27%20or%20%271%27%3D%271", inspect.SQLInjection, "query.id"},
		{"traversal", "file=..%2F..%2Fetc%2Fpasswd", inspect.PathTraversal, "query.file"},
		{"traversal double encoded", "file=..%252F..%252Fetc%252Fpasswd", inspect.PathTraversal, "query.file"},
		{"xss", "name=%3Cscript%3Ealert(1)%3C%2Fscript%3E", inspect.XSS, "query.name"},
		{"benign", "q=red+shoes&page=2&sort=price-asc&email=a.b%40example.com&since=2024-01-02", inspect.KindNone, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := in.Request(&inspect.RequestView{Method: "GET", Path: "/search", Query: c.query}, nil)
			if f.Kind != c.kind {
				t.Fatalf("kind %q (%s), want %q", f.Kind, f.Detector, c.kind)
			}
			if f.Kind != inspect.KindNone && (f.KeyPath() != c.keyPath || f.Loc != inspect.LocQuery) {
				t.Errorf("at %s %q, want query %q", f.Loc, f.KeyPath(), c.keyPath)
			}
		})
	}
}
