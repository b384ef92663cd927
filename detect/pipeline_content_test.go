package detect

import (
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect/inspect"
)

// TestContentReasonsAreTheAttackTypes: every content kind has a reason
// whose name, the refusal's reason, is the contract's attack type.
func TestContentReasonsAreTheAttackTypes(t *testing.T) {
	for _, k := range inspect.Kinds() {
		r := ContentReason(k)
		if !r.IsContent() || r.String() != k.String() || !KnownAttackType(AttackType(r.String())) {
			t.Errorf("kind %s: reason %s (content %v)", k, r, r.IsContent())
		}
	}
	if len(inspect.Kinds()) != len(ContentAttackTypes()) || ContentReason(inspect.KindNone) != ReasonNone {
		t.Fatalf("%d kinds, %d content attack types", len(inspect.Kinds()), len(ContentAttackTypes()))
	}
}

func contentTx(api *API, ip string, at time.Time, typ AttackType) *Transaction {
	t := &Transaction{API: api, Host: "shop.example.com", Method: "GET", Path: "/shop/search", Start: at, HasRequest: true, Blocked: api.Mode == ModeBlock,
		WouldBlock: api.Mode != ModeBlock, Content: &ContentFinding{Type: typ, KeyPath: "query.q", Detector: "libinjection-sqli", Excerpt: "' union"}}
	t.Identities[KindIP] = ip
	return t
}

// TestContentSinkBlocksAfterRepeats: the first findings of an identity are
// recorded as detected, the BlockAfter-th within the window blocks it for
// the type's TTL (would_block in detect mode), later ones while it is
// acted on add no record, and another identity starts from zero.
func TestContentSinkBlocksAfterRepeats(t *testing.T) {
	for _, mode := range []Mode{ModeBlock, ModeDetect} {
		var blocked []Entry
		store := NewAttackStore(100)
		s := NewContentSink(ContentSinkConfig{Guard: NewContentGuard(inspect.New(inspect.Config{})), Store: store,
			Block: func(e Entry) { blocked = append(blocked, e) }, BlockTTL: time.Hour,
			TypeTTL: map[AttackType]time.Duration{AttackPathTraversal: 6 * time.Hour}, BlockAfter: 3, BlockWindow: 10 * time.Minute})
		api := &API{Name: "shop", Mode: mode}
		t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
		s.Consume(contentTx(api, "192.0.2.1", t0, AttackSQLInjection))
		s.Consume(contentTx(api, "192.0.2.1", t0.Add(20*time.Minute), AttackSQLInjection)) // the first left the window
		s.Consume(contentTx(api, "192.0.2.1", t0.Add(21*time.Minute), AttackXSS))
		s.Consume(contentTx(api, "192.0.2.2", t0.Add(21*time.Minute), AttackSQLInjection))
		if store.Len() != 4 || len(blocked) != 0 {
			t.Fatalf("%s: %d records, %d blocks after 3 of one identity over 21 minutes", mode, store.Len(), len(blocked))
		}
		s.Consume(contentTx(api, "192.0.2.1", t0.Add(22*time.Minute), AttackPathTraversal))
		s.Consume(contentTx(api, "192.0.2.1", t0.Add(23*time.Minute), AttackPathTraversal)) // acted on: no record
		list, _ := store.List(AttackFilter{})
		if store.Len() != 5 {
			t.Fatalf("%s: %d records, want 5", mode, store.Len())
		}
		a := list[0]
		switch mode {
		case ModeBlock:
			if a.Action != ActionBlocked || len(blocked) != 1 || blocked[0].Value != "192.0.2.1" || blocked[0].AttackID != a.ID ||
				!blocked[0].ExpiresAt.Equal(t0.Add(22*time.Minute+6*time.Hour)) {
				t.Fatalf("block mode: action %s, blocks %+v", a.Action, blocked)
			}
		case ModeDetect:
			if a.Action != ActionWouldBlock || len(blocked) != 0 {
				t.Fatalf("detect mode: action %s, blocks %+v", a.Action, blocked)
			}
		}
		if v := a.Variables; len(v) != 1 || v[0].Name != "query.q" || v[0].Location != "query" || v[0].Detector == "" || v[0].Excerpt == "" {
			t.Fatalf("variables %+v", v)
		}
		for _, r := range list[1:] {
			if r.Action != ActionDetected {
				t.Fatalf("%s: an earlier record is %s", mode, r.Action)
			}
		}
	}
}

// TestContentSinkLearnsOnlyFromTrustworthyCalls: sampled calls teach the
// API's profiles, except those of identities flagged by an attack or
// refused, which never reach the published model.
func TestContentSinkLearnsOnlyFromTrustworthyCalls(t *testing.T) {
	g := NewContentGuard(inspect.New(inspect.Config{}))
	s := NewContentSink(ContentSinkConfig{Guard: g, Learn: inspect.LearnConfig{MinIdentities: 2, MinSpan: inspect.Duration(time.Millisecond), MinSamples: 5}})
	api := &API{Name: "shop", Mode: ModeBlock, Inspection: true}
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	s.Flag(&Attack{Identity: AttackIdentity{Kind: "ip", Value: "203.0.113.9"}, DetectedAt: t0})
	call := func(ip string, i int, q string) *Transaction {
		rv := inspect.RequestView{Method: "GET", Path: "/shop/search", Query: q}
		tx := &Transaction{API: api, Method: "GET", Path: "/shop/search", Start: t0.Add(time.Duration(i) * time.Second), HasRequest: true, Complete: true, Status: 200,
			Sample: g.Copy(&rv)}
		tx.Identities[KindIP] = ip
		return tx
	}
	for i := range 20 {
		s.Consume(call([]string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}[i%3], i, "page=2"))
		s.Consume(call("203.0.113.9", i, "page=2&admin=1")) // flagged: never learned
	}
	refused := call("192.0.2.4", 30, "page=2&debug=1")
	refused.Blocked = true
	s.Consume(refused)
	s.Publish(t0.Add(time.Minute))
	p := g.Model("shop").Profiles("/shop/search", "GET")
	if p == nil || !p.Trusted || p.Params["query.page"] == nil {
		t.Fatalf("profiles %+v: want a trusted profile of query.page", p)
	}
	if p.Params["query.admin"] != nil || p.Params["query.debug"] != nil {
		t.Fatalf("learned from a flagged or refused call: %v", p.Params)
	}
}
