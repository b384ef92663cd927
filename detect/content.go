package detect

import (
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/vigil-project/vigil/detect/inspect"
)

// ContentReason is the reason of a content finding's kind (ReasonNone for
// KindNone).
func ContentReason(k inspect.Kind) Reason {
	if k == inspect.KindNone || k > inspect.MassAssignment {
		return ReasonNone
	}
	return ReasonSQLInjection + Reason(k-inspect.SQLInjection)
}

// IsContent reports whether r is a content inspection's reason.
func (r Reason) IsContent() bool { return r >= ReasonSQLInjection && r <= ReasonMassAssignment }

// ContentFinding is what content inspection found in one call, kept with
// its record for the attack it raises: the attack type, where the value
// was (its key path: query.q, body.user.role), the detector or profile
// rule that matched, and an excerpt of the value with secrets masked.
type ContentFinding struct {
	Type     AttackType
	KeyPath  string
	Detector string
	Excerpt  string
}

// NewContentFinding copies a finding for a record (it allocates: called
// for attacks only).
func NewContentFinding(f *inspect.Finding) *ContentFinding {
	return &ContentFinding{Type: AttackType(f.Kind.String()), KeyPath: f.KeyPath(), Detector: f.Detector, Excerpt: f.Excerpt()}
}

// ContentSample is the content of a call that inspection let through,
// copied for the profile learner: every string and the body are its own.
type ContentSample struct {
	View inspect.RequestView
}

// Copy copies what the learner reads of a request, its body cut at the
// inspector's MaxBodyBytes (a body that comes later is added by SetBody).
func (g *ContentGuard) Copy(rv *inspect.RequestView) *ContentSample {
	s := &ContentSample{View: inspect.RequestView{
		Method: rv.Method, Path: strings.Clone(rv.Path), Query: strings.Clone(rv.Query),
		ContentType: strings.Clone(rv.ContentType), UserAgent: strings.Clone(rv.UserAgent),
		Referer: strings.Clone(rv.Referer), Cookie: strings.Clone(rv.Cookie),
	}}
	s.SetBody(rv.Body, g.maxBody)
	return s
}

// SetBody copies a body into the sample, cut at max bytes (0: no cut).
func (s *ContentSample) SetBody(b []byte, max int) {
	if max > 0 && len(b) > max {
		b = b[:max]
	}
	if len(b) > 0 {
		s.View.Body = append([]byte(nil), b...)
	}
}

// MaxBody is the most body bytes inspection reads (the inspector's
// MaxBodyBytes): a caller gathering a body in chunks keeps no more.
func (g *ContentGuard) MaxBody() int { return g.maxBody }

// ContentGuard is content inspection on the hot path: the inspector, and
// the learned profiles of each configured API, published by the learner
// (ContentSink) and read without a lock.
type ContentGuard struct {
	in      *inspect.Inspector
	maxBody int
	mu      sync.Mutex // serialises SetModel
	models  atomic.Pointer[map[string]*inspect.Model]
	// specs are the configured APIs' OpenAPI documents (apis[].openapi),
	// set before serving.
	specs map[string]SpecJudge
	// sampleEvery: one call in sampleEvery that inspection lets through is
	// copied for the learner (0: none).
	sampleEvery atomic.Uint64
	n           atomic.Uint64
	tolerated   atomic.Uint64
}

// DefaultSampleEvery is how many calls inspection lets through per call
// copied for the learner, by default: learning needs many identities over
// hours, not every call, and a copy is an allocation on the request path.
const DefaultSampleEvery = 4

// NewContentGuard returns a guard inspecting with in.
func NewContentGuard(in *inspect.Inspector) *ContentGuard {
	g := &ContentGuard{in: in, maxBody: in.Config().MaxBodyBytes}
	g.sampleEvery.Store(DefaultSampleEvery)
	return g
}

// Inspector returns the guard's inspector.
func (g *ContentGuard) Inspector() *inspect.Inspector { return g.in }

// SetSampleEvery sets how many calls let through per call sampled for the
// learner (0: learning gets nothing).
func (g *ContentGuard) SetSampleEvery(n int) { g.sampleEvery.Store(uint64(max(n, 0))) }

func (g *ContentGuard) sampleEveryValue() int { return int(g.sampleEvery.Load()) }

// Sample reports whether the caller should copy this call for the learner.
func (g *ContentGuard) Sample() bool {
	every := g.sampleEvery.Load()
	return every > 0 && g.n.Add(1)%every == 0
}

// SetModel publishes the learned profiles of a configured API (nil
// removes them).
func (g *ContentGuard) SetModel(api string, m *inspect.Model) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.models.Load()
	next := make(map[string]*inspect.Model, 1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	if m == nil {
		delete(next, api)
	} else {
		next[api] = m
	}
	g.models.Store(&next)
}

// Model returns the published profiles of an API, nil when none.
func (g *ContentGuard) Model(api string) *inspect.Model {
	if mp := g.models.Load(); mp != nil {
		return (*mp)[api]
	}
	return nil
}

// Tolerated counts signature hits tolerated by a learned profile (a rich
// text field): counted, not refused.
func (g *ContentGuard) Tolerated() uint64 { return g.tolerated.Load() }

// Inspect inspects one request of req's API (the caller checked that the
// API has inspection on) against the API's learned profiles. It allocates
// nothing for a benign request. A tolerated hit is counted and returned
// as no finding.
func (g *ContentGuard) Inspect(req *Request, rv *inspect.RequestView) inspect.Finding {
	f := g.in.Request(rv, g.profiles(req.API, req.Path, req.Method))
	if f.Tolerated {
		g.tolerated.Add(1)
		f.Kind = inspect.KindNone
	}
	return f
}

// profiles returns the learned profiles of the request's endpoint: its
// template (as Transaction.Prepare makes it) and method.
func (g *ContentGuard) profiles(api *API, path, method string) *inspect.Profiles {
	mp := g.models.Load()
	if mp == nil || api == nil || api.Discovered {
		return nil
	}
	m := (*mp)[api.Name]
	if m == nil {
		return nil
	}
	var buf [256]byte
	t := AppendTemplate(buf[:0], path)
	return m.Profiles(unsafe.String(unsafe.SliceData(t), len(t)), method)
}

// SpecVerdict is what an API's OpenAPI document says of a call: Kind is
// inspect.SchemaViolation or inspect.MassAssignment, or KindNone for a
// call it allows (or does not cover); Rule names the rule broken, KeyPath
// and Excerpt where and what.
type SpecVerdict struct {
	Kind                   inspect.Kind
	Rule, KeyPath, Excerpt string
}

// SpecJudge judges one call of an API against its OpenAPI document
// (detect/spec's Spec.Judge): the path as sent, the query, the body. It
// must not allocate for a call the document allows.
type SpecJudge func(rv *inspect.RequestView) SpecVerdict

// SetSpec gives an API its OpenAPI document's judge. Call it before the
// guard serves.
func (g *ContentGuard) SetSpec(api string, j SpecJudge) {
	if g.specs == nil {
		g.specs = map[string]SpecJudge{}
	}
	g.specs[api] = j
}

// HasSpec reports whether the API has an OpenAPI document.
func (g *ContentGuard) HasSpec(api *API) bool {
	return api != nil && !api.Discovered && g.specs[api.Name] != nil
}

// JudgeSpec judges a call against its API's OpenAPI document, if it has
// one.
func (g *ContentGuard) JudgeSpec(req *Request, rv *inspect.RequestView) SpecVerdict {
	if !g.HasSpec(req.API) {
		return SpecVerdict{}
	}
	return g.specs[req.API.Name](rv)
}

// CheckSpec turns an OpenAPI verdict into a verdict under the API's mode,
// as CheckContent does.
func (e *Enforcer) CheckSpec(req *Request, sv *SpecVerdict) Verdict {
	r := ContentReason(sv.Kind)
	if r == ReasonNone {
		return Verdict{}
	}
	return e.refuse(req, Verdict{Status: 403, Reason: r})
}

// SpecFinding is an OpenAPI verdict as a record's finding.
func SpecFinding(sv *SpecVerdict) *ContentFinding {
	return &ContentFinding{Type: AttackType(sv.Kind.String()), KeyPath: sv.KeyPath, Detector: sv.Rule, Excerpt: sv.Excerpt}
}

// CheckContent turns a content finding into a verdict under the API's
// mode: a 403 refusal whose reason is the attack type in block mode, a
// would-be one in learn and detect; none for no finding.
func (e *Enforcer) CheckContent(req *Request, f *inspect.Finding) Verdict {
	r := ContentReason(f.Kind)
	if r == ReasonNone || f.Tolerated {
		return Verdict{}
	}
	return e.refuse(req, Verdict{Status: 403, Reason: r})
}

// InspectTransaction runs content inspection on a call rebuilt from a
// record (vigil replay), as the request path does live: a finding becomes
// the call's reason and its Content, whose attack the sink records with
// the action the API's mode gives; a call let through may be sampled for
// the learner. The call is marked would-block, never blocked: a replay
// refuses nothing (as it puts nobody on the block list), so the recorded
// call stays what it was and the engine observes it as it did.
func (g *ContentGuard) InspectTransaction(t *Transaction, rv *inspect.RequestView) {
	if t.API == nil || !t.API.Inspection {
		return
	}
	req := Request{API: t.API, Method: t.Method, Path: t.Path}
	f := g.Inspect(&req, rv)
	var c *ContentFinding
	if f.Kind != inspect.KindNone {
		c = NewContentFinding(&f)
	} else if sv := g.JudgeSpec(&req, rv); sv.Kind != inspect.KindNone {
		c = SpecFinding(&sv)
	}
	if c == nil {
		if g.Sample() {
			t.Sample = g.Copy(rv)
		}
		return
	}
	r := ReasonOf(c.Type)
	t.Reason = r
	t.WouldBlock = true
	t.Content = c
}

// ReasonOf is the reason of a content attack type (ReasonNone for others).
func ReasonOf(t AttackType) Reason {
	for r := ReasonSQLInjection; r <= ReasonMassAssignment; r++ {
		if r.String() == string(t) {
			return r
		}
	}
	return ReasonNone
}
