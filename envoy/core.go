package envoy

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/rs/zerolog"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/inspect"
)

// DecisionHeader carries the decision ID on refusals (and on requests that
// ext_authz lets through).
const DecisionHeader = "x-vigil-decision-id"

// Service names used in metrics.
const (
	ServiceExtProc  = "ext_proc"
	ServiceExtAuthz = "ext_authz"
)

// Metrics receives what the services observe. Implementations must be cheap
// and must not block: they run on the hot path.
type Metrics interface {
	// Decision is called once per decision with the time spent deciding.
	Decision(service string, outcome detect.Outcome, reason detect.Reason, elapsed time.Duration)
	// ProtocolError counts a malformed or out-of-order message.
	ProtocolError(service, what string)
}

type noMetrics struct{}

func (noMetrics) Decision(string, detect.Outcome, detect.Reason, time.Duration) {}
func (noMetrics) ProtocolError(string, string)                                  {}

// Config holds the services' dependencies.
type Config struct {
	Log       zerolog.Logger
	Catalog   *atomic.Pointer[detect.Catalog]
	Extractor *detect.Extractor
	Enforcer  *detect.Enforcer
	Queue     *detect.Queue
	Metrics   Metrics          // optional
	Now       func() time.Time // optional; time.Now by default
	// Content inspects the calls of APIs with inspection on (optional:
	// nil inspects nothing).
	Content *detect.ContentGuard
}

// core is the decision path shared by ext_proc and ext_authz.
type core struct {
	log       zerolog.Logger
	catalog   *atomic.Pointer[detect.Catalog]
	extractor *detect.Extractor
	enforcer  *detect.Enforcer
	queue     *detect.Queue
	metrics   Metrics
	now       func() time.Time
	content   *detect.ContentGuard
}

func newCore(c Config) core {
	if c.Metrics == nil {
		c.Metrics = noMetrics{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return core{log: c.Log, catalog: c.Catalog, extractor: c.Extractor, enforcer: c.Enforcer, queue: c.Queue, metrics: c.Metrics, now: c.Now, content: c.Content}
}

// requestFacts are the request-line facts read from Envoy's headers or
// attributes.
type requestFacts struct {
	method, path, host, source string
	contentLength              int64
	contentType, userAgent     string
	requestID                  string
	// Read for content inspection: the Cookie and Referer headers, and,
	// set by begin, the path as sent (before cleaning) and the query.
	cookie, referer string
	rawPath, query  string
}

// begin resolves the API and identities of a request and fills req and the
// start of its transaction.
func (c *core) begin(f *requestFacts, h detect.HeaderReader, req *detect.Request, tx *detect.Transaction) {
	path, query, _ := strings.Cut(f.path, "?")
	if i := strings.IndexByte(path, '#'); i >= 0 {
		path = path[:i]
	}
	// The path as Envoy's normalisation hands it over, whether or not the
	// deployment turned that on: APIs, decoys and templates see one spelling.
	f.rawPath, f.query = path, query
	path = detect.CleanPath(detect.StripParams(path))
	api := c.catalog.Load().Match(f.host, path)
	*req = detect.Request{API: api, Host: f.host, Method: f.method, Path: path, Query: query, ContentLength: f.contentLength}
	req.Identities[detect.KindIP] = c.extractor.ClientIP(h, f.source)
	c.extractor.Extract(&api.Identities, h, query, &req.Identities)
	req.UserAgent = f.userAgent
	req.PasswordFP = c.extractor.PasswordFingerprint(&api.Identities, h)
	tx.API = api
	tx.Host = f.host
	tx.Method = f.method
	tx.Path = path
	tx.Identities = req.Identities
	tx.UserAgent = f.userAgent
	tx.RequestID = f.requestID
	tx.HasRequest = true
	if f.contentLength > 0 {
		tx.RequestBytes = f.contentLength
	}
}

// inspects reports whether a request whose header verdict let it go on
// gets content inspection.
func (c *core) inspects(req *detect.Request, v *detect.Verdict) bool {
	return c.content != nil && req.API != nil && req.API.Inspection && !v.Refused() && v.Reason != detect.ReasonAllowList
}

// inspect runs content inspection on a request and returns its verdict
// (none for a benign one); a finding goes into the record for the attack
// it raises.
// With spec, the call is also judged against its API's OpenAPI document
// (the caller passes false while the body is still to come).
func (c *core) inspect(req *detect.Request, rv *inspect.RequestView, tx *detect.Transaction, spec bool) detect.Verdict {
	f := c.content.Inspect(req, rv)
	if f.Kind != inspect.KindNone {
		v := c.enforcer.CheckContent(req, &f)
		if v.Refused() {
			tx.Content = detect.NewContentFinding(&f)
		}
		return v
	}
	var v detect.Verdict
	if spec {
		c.judgeSpec(req, rv, tx, &v)
	}
	return v
}

// judgeSpec judges a whole call against its API's OpenAPI document (the
// body inspected already): a violation sets v and the record's finding.
func (c *core) judgeSpec(req *detect.Request, rv *inspect.RequestView, tx *detect.Transaction, v *detect.Verdict) {
	sv := c.content.JudgeSpec(req, rv)
	if sv.Kind == inspect.KindNone {
		return
	}
	if *v = c.enforcer.CheckSpec(req, &sv); v.Refused() {
		tx.Content = detect.SpecFinding(&sv)
	}
}

// viewOf is the content inspection's view of a request from its facts.
func viewOf(req *detect.Request, f *requestFacts, rv *inspect.RequestView) {
	*rv = inspect.RequestView{Method: req.Method, Path: f.rawPath, Query: f.query, ContentType: f.contentType,
		UserAgent: f.userAgent, Referer: f.referer, Cookie: f.cookie}
}

// bodyMediaType is a constant content type standing for a request's, kept
// past its headers to inspect its body.
func bodyMediaType(ct string) string {
	ct, _, _ = strings.Cut(ct, ";")
	ct = strings.TrimSpace(ct)
	switch {
	case isJSON(ct):
		return "application/json"
	case strings.EqualFold(ct, "application/x-www-form-urlencoded"):
		return "application/x-www-form-urlencoded"
	case strings.EqualFold(ct, "application/xml"), strings.EqualFold(ct, "text/xml"),
		len(ct) > 4 && strings.EqualFold(ct[len(ct)-4:], "+xml"):
		return "application/xml"
	}
	return ""
}

// record notes a verdict in the transaction.
func record(tx *detect.Transaction, v *detect.Verdict) {
	if v.Reason == detect.ReasonNone || v.Reason == detect.ReasonAllowList {
		if v.Reason == detect.ReasonAllowList {
			tx.Reason = v.Reason
		}
		return
	}
	tx.Reason = v.Reason
	tx.Blocked = tx.Blocked || v.Deny
	tx.WouldBlock = tx.WouldBlock || v.WouldBlock
	tx.DecisionID = v.DecisionID
	if v.Deny {
		tx.Status = v.Status
	}
}

// logVerdict logs refusals and would-be refusals. Identities that are
// secrets are fingerprints already; nothing else of the request is logged.
func (c *core) logVerdict(service string, req *detect.Request, v *detect.Verdict) {
	if !v.Refused() {
		return
	}
	ev := c.log.Info()
	if v.WouldBlock {
		ev = c.log.Debug()
	}
	if !ev.Enabled() {
		return
	}
	ev.Str("filter", service).Str("decision_id", v.DecisionID).Str("reason", v.Reason.String()).
		Bool("blocked", v.Deny).Bool("would_block", v.WouldBlock).Int("status", v.Status).
		Str("api", apiName(req.API)).Str("method", req.Method).Str("path", req.Path).
		Str("client_ip", req.Identities[detect.KindIP])
	if v.Match != nil {
		ev.Str("match_kind", v.Match.Kind.String()).Str("match_value", v.Match.Value)
	}
	ev.Msg("refused")
}

func apiName(a *detect.API) string {
	if a == nil || a.Discovered {
		return ""
	}
	return a.Name
}

// headerList reads Envoy's header list in place: a linear scan is cheaper
// than building a map for the handful of headers Vigil reads.
type headerList []*corev3.HeaderValue

func (l *headerList) Header(name string) string {
	for _, h := range *l {
		if h.GetKey() == name {
			return headerValue(h)
		}
	}
	return ""
}

// headerValue returns raw_value, falling back to value. The string shares
// the message's bytes: Envoy's messages are decoded into fresh buffers that
// nothing mutates, and every string kept past the request is cloned.
func headerValue(h *corev3.HeaderValue) string {
	if len(h.RawValue) > 0 {
		return unsafe.String(&h.RawValue[0], len(h.RawValue))
	}
	return h.Value
}

// factsFromHeaders reads the request line from pseudo-headers and headers.
func factsFromHeaders(l headerList, f *requestFacts) {
	for _, h := range l {
		k := h.GetKey()
		switch k {
		case ":method":
			f.method = canonicalMethod(headerValue(h))
		case ":path":
			f.path = headerValue(h)
		case ":authority":
			f.host = headerValue(h)
		case "host":
			if f.host == "" {
				f.host = headerValue(h)
			}
		case "content-length":
			if n, err := strconv.ParseInt(headerValue(h), 10, 64); err == nil && n >= 0 {
				f.contentLength = n
			}
		case "content-type":
			f.contentType = headerValue(h)
		case "user-agent":
			f.userAgent = headerValue(h)
		case "x-request-id":
			f.requestID = headerValue(h)
		case "cookie":
			if f.cookie == "" {
				f.cookie = headerValue(h)
			}
		case "referer":
			f.referer = headerValue(h)
		}
	}
}

// canonicalMethod returns a constant for the common methods, so a method
// kept in a record never pins a message buffer.
func canonicalMethod(m string) string {
	switch m {
	case "GET":
		return "GET"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "PATCH":
		return "PATCH"
	case "DELETE":
		return "DELETE"
	case "HEAD":
		return "HEAD"
	case "OPTIONS":
		return "OPTIONS"
	}
	if len(m) > 32 {
		m = m[:32]
	}
	return m
}

// isJSON reports whether a content type is JSON (application/json,
// application/json-patch+json, application/merge-patch+json, …).
func isJSON(contentType string) bool {
	ct, _, _ := strings.Cut(contentType, ";")
	ct = strings.TrimSpace(ct)
	if len(ct) < 5 {
		return false
	}
	tail := ct[len(ct)-5:]
	return strings.EqualFold(tail, "/json") || strings.EqualFold(tail, "+json")
}
