package demo

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/inspect"

	"github.com/vigil-project/vigil/server/demo/shop"
)

// trainContent learns content profiles from the pre-training records as
// Vigil does (every record's query, headers and request_body; the caller's
// token, else its address, as identity) and returns the inspector and the
// model.
func trainContent(t *testing.T, recs []detect.Record) (*inspect.Inspector, *inspect.Model) {
	t.Helper()
	in := inspect.New(inspect.Config{})
	l := inspect.NewLearner(in, inspect.LearnConfig{})
	for i := range recs {
		r := &recs[i]
		if r.Status >= 400 {
			continue
		}
		rv := r.ContentView()
		if f := in.Request(&rv, nil); f.Kind != inspect.KindNone {
			t.Fatalf("benign record %s %s %q: %s at %s (%s)", r.Method, r.Path, r.RequestBody, f.Kind, f.KeyPath(), f.Detector)
		}
		id := "ip:" + r.ClientIP
		if a := r.RequestHeaders["authorization"]; a != "" {
			id = "token:" + a
		}
		l.Observe(template(rv.Path), &rv, id, r.Time)
	}
	return in, l.Model()
}

func template(path string) string { return string(detect.AppendTemplate(nil, path)) }

// The pre-training records carry the bodies of JSON writes (not of login
// forms, which hold passwords); the profiles learned from them are trusted
// and let every benign call of a later hour through, profile edits
// included, while the scripted mass-assignment PATCH is mass_assignment
// and every payload of the injection scanner is still its attack type.
func TestContentProfilesFromPretraining(t *testing.T) {
	sh := shop.NewShop(1)
	end := mustTime(t, "2026-11-27T12:00:00Z")
	recs := Pretraining{Shop: sh, Seed: 1, End: end, Window: 90 * time.Minute}.Records()
	edits := 0
	for _, r := range recs {
		switch {
		case strings.HasSuffix(r.Path, "/login") && r.RequestBody != "":
			t.Fatalf("a login's body was recorded: %+v", r)
		case r.Method == "PATCH" && strings.HasSuffix(r.Path, "/profile"):
			edits++
			if r.RequestBody == "" {
				t.Fatalf("a profile edit without its body: %+v", r)
			}
		}
	}
	if edits < 200 {
		t.Fatalf("%d profile edits in the pre-training: too few to learn the write's keys", edits)
	}
	in, m := trainContent(t, recs)
	prof := m.Profiles(template(shop.BasePath+"/profile"), "PATCH")
	if prof == nil || !prof.Trusted || prof.Objects["body"] == nil || !prof.Objects["body"].Trusted {
		t.Fatalf("PATCH /profile's learned profile is not trusted: %+v", prof)
	}

	// An hour later, the same users' calls (another seed) pass.
	later := Pretraining{Shop: sh, Seed: 2, End: end.Add(time.Hour), Window: time.Hour}.Records()
	for _, r := range later {
		if r.Status >= 400 {
			continue
		}
		rv := r.ContentView()
		if f := in.Request(&rv, m.Profiles(template(rv.Path), rv.Method)); f.Kind != inspect.KindNone {
			t.Errorf("benign %s %s %q flagged: %s at %s (%s)", r.Method, r.Path, r.RequestBody, f.Kind, f.KeyPath(), f.Detector)
		}
	}

	for _, body := range escalations {
		rv := inspect.RequestView{Method: "PATCH", Path: shop.BasePath + "/profile", ContentType: "application/json", Body: []byte(body)}
		if f := in.Request(&rv, m.Profiles(template(rv.Path), "PATCH")); f.Kind != inspect.MassAssignment {
			t.Errorf("escalation %s: %s at %s (%s), want mass_assignment", body, f.Kind, f.KeyPath(), f.Detector)
		}
	}
	for _, p := range scannerPayloads {
		path, query, _ := strings.Cut(shop.BasePath+p.path, "?")
		rv := inspect.RequestView{Method: p.method, Path: path, Query: query}
		if p.body != "" {
			rv.ContentType, rv.Body = "application/json", []byte(p.body)
		}
		if f := in.Request(&rv, m.Profiles(template(path), p.method)); f.Kind == inspect.KindNone || f.Kind == inspect.SchemaViolation || f.Kind == inspect.MassAssignment {
			t.Errorf("scanner %s %s: %s at %s (%s), want its injection type", p.method, p.path, f.Kind, f.KeyPath(), f.Detector)
		}
	}
}
