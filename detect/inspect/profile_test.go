package inspect_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect/inspect"
)

var t0 = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

// train feeds n requests made by `identities` distinct callers spread over
// span; make builds request i.
func train(l *inspect.Learner, endpoint string, n, identities int, span time.Duration, make func(i int) *inspect.RequestView) {
	for i := range n {
		at := t0.Add(span * time.Duration(i) / time.Duration(n))
		l.Observe(endpoint, make(i), fmt.Sprintf("user-%d", i%identities), at)
	}
}

func searchReq(q string) *inspect.RequestView {
	return &inspect.RequestView{Method: "GET", Path: "/search", Query: q}
}

// A shop's search: page (integer), sort (enum), q (free text, sometimes
// with quotes and parens), comment (rich text, sometimes with markup).
func shopModel(identities int, span time.Duration) (*inspect.Inspector, *inspect.Model) {
	in := inspect.New(inspect.Config{})
	l := inspect.NewLearner(in, inspect.LearnConfig{})
	sorts := []string{"price-asc", "price-desc", "new"}
	texts := []string{"red shoes", "kid's boots (size 30)", "o'neil jacket", "50% off, summer", "men hat"}
	notes := []string{"<b>great</b> product", `<div style="color:red">loved it</div>`, "5 stars",
		`<iframe src="https://youtube.com/embed/x1"></iframe>`, "ok"}
	train(l, "/search", 400, identities, span, func(i int) *inspect.RequestView {
		return searchReq(fmt.Sprintf("page=%d&sort=%s&q=%s&comment=%s", i%40+1, sorts[i%3],
			url.QueryEscape(texts[i%5]), url.QueryEscape(notes[i%5])))
	})
	return in, l.Model()
}

func TestProfileJudgesParametersByWhatTheyCarry(t *testing.T) {
	in, m := shopModel(20, 2*time.Hour)
	prof := m.Profiles("/search", "GET")
	if prof == nil || !prof.Trusted {
		t.Fatalf("profile %+v not trusted after 20 identities over 2h", prof)
	}
	if got := prof.Params["query.page"].Type; got != "integer" {
		t.Errorf("page learned as %q, want integer", got)
	}
	cases := []struct {
		name, q   string
		kind      inspect.Kind
		detector  string
		tolerated bool
		where     string
	}{
		{"benign", "page=7&sort=new&q=blue+shoes&comment=nice", inspect.KindNone, "", false, ""},
		{"wrong type", "page=abc&sort=new&q=x", inspect.SchemaViolation, inspect.RuleType, false, "query.page"},
		{"sqli in an integer", "page=" + url.QueryEscape("1 or 1=1"), inspect.SQLInjection, inspect.DetLibinjectionSQLi, false, "query.page"},
		{"enum break", "page=2&sort=cheapest", inspect.SchemaViolation, inspect.RuleEnum, false, "query.sort"},
		{"sqli in an enum", "page=2&sort=" + url.QueryEscape("price-asc'--"), inspect.SQLInjection, "", false, "query.sort"},
		{"never seen characters", "q=" + url.QueryEscape("shoes `x` {y}"), inspect.SchemaViolation, inspect.RuleCharset, false, "query.q"},
		{"far too long", "q=" + strings.Repeat("a", 500), inspect.SchemaViolation, inspect.RuleLength, false, "query.q"},
		{"markup in rich text is tolerated", "comment=" + url.QueryEscape(`<div style="color:blue">bad quality</div>`), inspect.XSS, "", true, "query.comment"},
		{"markup with new characters in rich text stands", "comment=" + url.QueryEscape(`<img src=x onerror="alert(1)">`), inspect.XSS, "", false, "query.comment"},
		{"markup in a field that never carries it", "q=" + url.QueryEscape("<script>alert(1)</script>"), inspect.XSS, "", false, "query.q"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := in.Request(searchReq(c.q), prof)
			if f.Kind != c.kind || f.Tolerated != c.tolerated || c.detector != "" && f.Detector != c.detector ||
				c.where != "" && f.KeyPath() != c.where {
				t.Errorf("%v/%s tolerated=%v at %q, want %v/%s tolerated=%v at %q",
					f.Kind, f.Detector, f.Tolerated, f.KeyPath(), c.kind, c.detector, c.tolerated, c.where)
			}
		})
	}
	// Without the profile, the same markup is a finding.
	if f := in.Request(searchReq("comment="+url.QueryEscape(`<div style="color:blue">bad quality</div>`)), nil); f.Kind != inspect.XSS || f.Tolerated {
		t.Errorf("without a profile: %v tolerated=%v", f.Kind, f.Tolerated)
	}
	if s := in.Stats(); s.Tolerated == 0 {
		t.Errorf("tolerated hits not counted: %+v", s)
	}
}

// Trust needs enough distinct identities over enough time: one caller, or
// a burst, teaches nothing, whatever it sends.
func TestProfileTrustNeedsIdentitiesAndTime(t *testing.T) {
	for _, c := range []struct {
		name       string
		identities int
		span       time.Duration
		trusted    bool
	}{
		{"one identity", 1, 3 * time.Hour, false},
		{"four identities", 4, 3 * time.Hour, false},
		{"a ten minute burst", 50, 10 * time.Minute, false},
		{"twenty identities over two hours", 20, 2 * time.Hour, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			in, m := shopModel(c.identities, c.span)
			prof := m.Profiles("/search", "GET")
			if prof.Trusted != c.trusted {
				t.Fatalf("trusted %v, want %v", prof.Trusted, c.trusted)
			}
			f := in.Request(searchReq("page=abc"), prof)
			if want := map[bool]inspect.Kind{true: inspect.SchemaViolation, false: inspect.KindNone}[c.trusted]; f.Kind != want {
				t.Errorf("page=abc: %v, want %v", f.Kind, want)
			}
		})
	}
}

// An attacker among the trainers cannot widen a profile: its values reach
// one identity's worth of trust.
func TestProfileResistsOnePoisoner(t *testing.T) {
	in := inspect.New(inspect.Config{})
	l := inspect.NewLearner(in, inspect.LearnConfig{})
	train(l, "/search", 400, 20, 2*time.Hour, func(i int) *inspect.RequestView {
		return searchReq(fmt.Sprintf("page=%d", i%40+1))
	})
	for i := range 1000 {
		l.Observe("/search", searchReq("page=admin%27--"), "mallory", t0.Add(time.Duration(i)*time.Second))
	}
	prof := l.Model().Profiles("/search", "GET")
	if got := prof.Params["query.page"].Type; got != "text" {
		t.Logf("dominant type %q (the poisoner's volume)", got)
	}
	if f := in.Request(searchReq("page=abc"), prof); f.Kind != inspect.SchemaViolation || f.Detector != inspect.RuleType {
		t.Errorf("page=abc after poisoning: %v (%s), want schema_violation (%s)", f.Kind, f.Detector, inspect.RuleType)
	}
}

func orderReq(method, body string) *inspect.RequestView {
	return &inspect.RequestView{Method: method, Path: "/users/7", ContentType: "application/json", Body: []byte(body)}
}

func TestMassAssignmentOnWrites(t *testing.T) {
	in := inspect.New(inspect.Config{})
	l := inspect.NewLearner(in, inspect.LearnConfig{})
	train(l, "/users/{id}", 300, 15, 2*time.Hour, func(i int) *inspect.RequestView {
		return orderReq("PATCH", fmt.Sprintf(`{"name":"user %d","email":"u%d@example.com","address":{"city":"Lyon","zip":"6900%d"}}`, i, i, i%10))
	})
	// One trainer also sent "role": it stays untrusted.
	for i := range 100 {
		l.Observe("/users/{id}", orderReq("PATCH", `{"name":"m","role":"admin"}`), "mallory", t0.Add(time.Duration(i)*time.Minute))
	}
	prof := l.Model().Profiles("/users/{id}", "PATCH")
	cases := []struct {
		name, body string
		kind       inspect.Kind
		where      string
	}{
		{"known keys", `{"name":"Ann","address":{"city":"Paris"}}`, inspect.KindNone, ""},
		{"role", `{"name":"Ann","role":"admin"}`, inspect.MassAssignment, "body.role"},
		{"is_admin nested", `{"address":{"city":"Paris","is_admin":true}}`, inspect.MassAssignment, "body.address.is_admin"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := in.Request(orderReq("PATCH", c.body), prof)
			if f.Kind != c.kind || c.where != "" && f.KeyPath() != c.where {
				t.Errorf("%v (%s) at %q, want %v at %q", f.Kind, f.Detector, f.KeyPath(), c.kind, c.where)
			}
		})
	}
	// Reads are not judged for new keys.
	if f := in.Request(&inspect.RequestView{Method: "GET", Path: "/users/7", ContentType: "application/json", Body: []byte(`{"role":"x"}`)}, prof); f.Kind == inspect.MassAssignment {
		t.Errorf("a GET with a new key is mass assignment")
	}
}

func TestModelExportsAndImports(t *testing.T) {
	in, m := shopModel(20, 2*time.Hour)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"query.page"`, `"type":"integer"`, `"min_identities":5`, `"min_span":"1h0m0s"`, `"enum":{`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("export lacks %s", want)
		}
	}
	m2, err := inspect.ParseModel(b)
	if err != nil {
		t.Fatal(err)
	}
	prof := m2.Profiles("/search", "GET")
	if f := in.Request(searchReq("page=abc"), prof); f.Kind != inspect.SchemaViolation {
		t.Errorf("imported profile: page=abc %v, want schema_violation", f.Kind)
	}
	// Thresholds are knobs: a stricter model no longer trusts the profile.
	strict := m2.WithConfig(inspect.LearnConfig{MinIdentities: 30})
	if strict.Profiles("/search", "GET").Trusted {
		t.Errorf("trusted with 20 identities under min_identities 30")
	}
	if !m2.Profiles("/search", "GET").Trusted {
		t.Errorf("WithConfig changed the original model")
	}
	for _, bad := range []string{`{"endpoints":[null]}`, `{"endpoints":[{"params":{"q":{"types":{"weird":{}}}}}]}`, `{"config":{"min_span":"soon"}}`, `[`} {
		if _, err := inspect.ParseModel([]byte(bad)); err == nil {
			t.Errorf("ParseModel(%s) accepted", bad)
		}
	}
	// A learner restored from the export goes on from where it was.
	l := inspect.NewLearner(in, inspect.LearnConfig{})
	l.Restore(m2)
	if !l.Model().Profiles("/search", "GET").Trusted {
		t.Errorf("restored learner's model not trusted")
	}
}

func TestJudgeWithProfileDoesNotAllocate(t *testing.T) {
	if inspect.RaceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	in, m := shopModel(20, 2*time.Hour)
	r := searchReq("page=7&sort=new&q=blue+shoes&comment=nice")
	if n := testing.AllocsPerRun(100, func() { in.Request(r, m.Profiles("/search", "GET")) }); n != 0 {
		t.Errorf("%v allocations per judged request", n)
	}
}

// The learner is fed from a sink while the hot path judges against the
// last published model: no lock shared with the hot path, no race.
func TestLearnerAndHotPathConcurrently(t *testing.T) {
	in, m := shopModel(20, 2*time.Hour)
	l := inspect.NewLearner(in, inspect.LearnConfig{})
	l.Restore(m)
	var published atomic.Pointer[inspect.Model] // how the hot path would hold it
	published.Store(m)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 300 {
			l.Observe("/search", searchReq(fmt.Sprintf("page=%d&q=x%d", i, i)), fmt.Sprintf("u%d", i%30), t0.Add(3*time.Hour+time.Duration(i)*time.Second))
			if i%50 == 0 {
				published.Store(l.Model())
			}
		}
	}()
	for range 300 {
		prof := published.Load().Profiles("/search", "GET")
		if f := in.Request(searchReq("page=abc"), prof); f.Kind != inspect.SchemaViolation {
			t.Fatalf("page=abc: %v", f.Kind)
		}
	}
	<-done
	if p := l.Model().Profiles("/search", "GET"); p.Requests != 700 {
		t.Errorf("requests %d after 400 restored and 300 observed, want 700", p.Requests)
	}
}

// Headers and cookies are not the API's parameters: a User-Agent never
// seen before breaks no schema, though a signature in it still counts.
func TestHeadersAreJudgedForSignaturesOnly(t *testing.T) {
	in := inspect.New(inspect.Config{})
	l := inspect.NewLearner(in, inspect.LearnConfig{})
	train(l, "/search", 400, 20, 2*time.Hour, func(i int) *inspect.RequestView {
		r := searchReq(fmt.Sprintf("page=%d", i%40+1))
		r.UserAgent, r.Cookie = "Mozilla/5.0 (X11; Linux x86_64)", fmt.Sprintf("sid=%08x", i)
		return r
	})
	prof := l.Model().Profiles("/search", "GET")
	r := searchReq("page=3")
	r.UserAgent, r.Cookie = "curl/8.5.0 [bot] {x}", "sid=~~~"
	if f := in.Request(r, prof); f.Kind != inspect.KindNone {
		t.Errorf("a new User-Agent and cookie: %v (%s) at %q", f.Kind, f.Detector, f.KeyPath())
	}
	r.UserAgent = "${jndi:ldap://x/a}"
	if f := in.Request(r, prof); f.Kind != inspect.JNDIInjection {
		t.Errorf("jndi in the User-Agent: %v", f.Kind)
	}
}
