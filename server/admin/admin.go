// Package admin serves Vigil's admin HTTP API: the route table (checked
// against adminapi's OpenAPI document), bearer-token auth with a read-only
// token, strict JSON request bodies, control characters refused where a
// person writes a string, and a handler's panic answered with a 500,
// counted and logged. The answers are adminapi's types.
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/vigil-project/vigil/decoy"
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/detect/inspect"
	"github.com/vigil-project/vigil/detect/observe"
	"github.com/vigil-project/vigil/detect/spec"
	"github.com/vigil-project/vigil/detect/spec/export"
	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/server/dashboard"
)

// maxAdminBody bounds admin request bodies; maxModelBody a model's import,
// which carries content inspection's learned profiles.
const (
	maxAdminBody = 64 << 10
	maxModelBody = 16 << 20
)

// minTTL is the shortest lifetime of a list entry (ttl) or of the allow
// entry of a false positive (allow_for): a shorter one is expired before
// any request could see it.
const minTTL = time.Second

// ContentModels are content inspection's knobs and learned profiles,
// per API, as the model routes show and change them (detect.ContentSink).
type ContentModels interface {
	ContentModel(api string) *detect.ContentModelDoc
	ApplyContent(api string, u *detect.ContentKnobsUpdate) error
	ImportContent(api string, d *detect.ContentModelDoc) error
}

// Deps are what the admin API reads and changes.
type Deps struct {
	Log zerolog.Logger
	// Token opens every route under /v1 (none: the API is open);
	// ReadToken opens the GET routes only.
	Token, ReadToken []byte
	Fingerprinter    *detect.Fingerprinter
	Allow, Block     *detect.List
	Inventory        *observe.Inventory
	Catalog          *atomic.Pointer[detect.Catalog]
	// Metrics are served at /metrics; Panics counts the handler panics
	// recovered.
	Metrics prometheus.Gatherer
	Panics  prometheus.Counter
	Ready   *atomic.Bool
	Now     func() time.Time
	Attacks *detect.AttackStore
	Engine  *behaviour.Engine
	// Content is content inspection's part of the models (optional).
	Content   ContentModels
	Trap      *decoy.Trap
	Forensics *observe.Forensics
	// ClusterStatus reports this replica's view of the replicas sharing
	// Redis, shown by GET /v1/status; nil (or a nil answer) without Redis,
	// and the answer then has no cluster object. It is called on every
	// GET /v1/status from the admin API's goroutines: it must be cheap, safe
	// concurrently, and never wait for Redis.
	ClusterStatus func() *adminapi.ClusterStatus
	// OpenAPI returns an API's compiled OpenAPI document (apis[].openapi),
	// nil when it has none (or OpenAPI is nil): GET /v1/apis then marks
	// the API's endpoints shadow and lists its zombies, and GET
	// /v1/apis/{api}/openapi.json marks its shadow operations.
	OpenAPI func(api string) *spec.Spec
}

// admin serves the admin HTTP API.
type admin struct {
	Deps
}

// route is one route of the admin API: a ServeMux pattern and its handler.
type route struct {
	pattern string
	handler http.Handler
}

// Handler returns the admin HTTP API: every route, request bodies bounded,
// a handler's panic answered with a 500.
func Handler(d Deps) http.Handler {
	a := &admin{d}
	return a.recoverPanics(limitBody(a.mux()))
}

// mux registers the route table.
func (a *admin) mux() *http.ServeMux {
	mux := http.NewServeMux()
	for _, r := range a.routes() {
		mux.Handle(r.pattern, r.handler)
	}
	return mux
}

// routes is the route table, documented in adminapi's OpenAPI document.
func (a *admin) routes() []route {
	rs := []route{
		{"GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, adminapi.Status{Status: "ok"})
		})},
		{"GET /readyz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !a.Ready.Load() {
				writeJSON(w, http.StatusServiceUnavailable, adminapi.Status{Status: "not ready"})
				return
			}
			writeJSON(w, http.StatusOK, adminapi.Status{Status: "ready"})
		})},
		{"GET /metrics", promhttp.HandlerFor(a.Metrics, promhttp.HandlerOpts{})},
	}
	for _, l := range []struct {
		name string
		list *detect.List
	}{{"blocklist", a.Block}, {"allowlist", a.Allow}} {
		rs = append(rs,
			route{"GET /v1/" + l.name, a.auth(a.listEntries(l.list))},
			route{"POST /v1/" + l.name, a.auth(a.addEntry(l.name, l.list))},
			route{"DELETE /v1/" + l.name + "/{kind}/{value...}", a.auth(a.deleteEntry(l.name, l.list))},
		)
	}
	return append(rs,
		route{"GET /v1/openapi.json", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(adminapi.OpenAPI())
		})},
		route{"GET /v1/status", a.auth(http.HandlerFunc(a.status))},
		route{"GET /v1/apis", a.auth(http.HandlerFunc(a.apis))},
		route{"GET /v1/apis/{api}/activity", a.auth(http.HandlerFunc(a.activity))},
		route{"GET /v1/apis/{api}/openapi.json", a.auth(http.HandlerFunc(a.apiOpenAPI))},
		route{"GET /v1/attacks", a.auth(http.HandlerFunc(a.listAttacks))},
		route{"GET /v1/attacks/{id}", a.auth(http.HandlerFunc(a.getAttack))},
		route{"POST /v1/attacks/{id}/false-positive", a.auth(http.HandlerFunc(a.falsePositive))},
		route{"GET /v1/decoys", a.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, adminapi.Decoys{Decoys: a.Trap.Stats(), HoneytokensPlanted: a.Trap.Honeytokens()})
		}))},
		route{"GET /v1/forensics/{kind}/{value...}", a.auth(http.HandlerFunc(a.getForensics))},
		route{"GET /v1/models", a.auth(http.HandlerFunc(a.listModels))},
		route{"GET /v1/models/{api}", a.auth(http.HandlerFunc(a.getModel))},
		route{"PUT /v1/models/{api}", a.auth(http.HandlerFunc(a.putModel))},
		route{"POST /v1/models/{api}/import", a.auth(http.HandlerFunc(a.importModel))},
		route{"GET /{$}", dashboard.Handler()},
		route{"GET /ui/", http.StripPrefix("/ui/", dashboard.Handler())},
		route{"/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
		})},
	)
}

// status answers GET /v1/status: readiness as /readyz has it, and with
// Redis the replica's view of the cluster.
func (a *admin) status(w http.ResponseWriter, r *http.Request) {
	out := adminapi.ServerStatus{Ready: a.Ready != nil && a.Ready.Load()}
	if a.ClusterStatus != nil {
		if c := a.ClusterStatus(); c != nil {
			c := *c // the source's value stays as it is
			c.DegradedSince = c.DegradedSince.UTC()
			if !c.Degraded {
				c.DegradedSince = time.Time{}
			}
			c.LastFlush = c.LastFlush.UTC()
			out.Cluster = &c
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// auth requires the admin bearer token when one is configured.
func (a *admin) auth(next http.Handler) http.Handler {
	if len(a.Token) == 0 {
		return next
	}
	// Digests are compared, so that the time taken does not even reveal the
	// tokens' lengths. The read-only token opens GET and HEAD only.
	admin := sha256.Sum256(a.Token)
	var reader [sha256.Size]byte
	hasReader := len(a.ReadToken) > 0
	if hasReader {
		reader = sha256.Sum256(a.ReadToken)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(got))
		bearer := strings.EqualFold(scheme, "Bearer")
		isAdmin := bearer && subtle.ConstantTimeCompare(sum[:], admin[:]) == 1
		isReader := bearer && hasReader && subtle.ConstantTimeCompare(sum[:], reader[:]) == 1
		switch {
		case isAdmin:
		case isReader && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		case isReader:
			writeError(w, http.StatusForbidden, "the read-only token cannot change anything; use the admin token")
			return
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil-admin"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong admin bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := int64(maxAdminBody)
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/models/") && strings.HasSuffix(r.URL.Path, "/import") {
			limit = maxModelBody
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

func (a *admin) listEntries(list *detect.List) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entries := list.Entries(a.Now())
		out := make([]adminapi.Entry, 0, len(entries))
		for i := range entries {
			out = append(out, toEntryJSON(&entries[i]))
		}
		writeJSON(w, http.StatusOK, adminapi.Entries{Entries: out})
	})
}

func toEntryJSON(e *detect.Entry) adminapi.Entry {
	j := adminapi.Entry{Kind: e.Kind.String(), Value: e.Value, Reason: e.Reason, CreatedAt: e.CreatedAt.UTC()}
	if !e.ExpiresAt.IsZero() {
		t := e.ExpiresAt.UTC()
		j.ExpiresAt = &t
	}
	return j
}

func (a *admin) addEntry(name string, list *detect.List) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req adminapi.EntryRequest
		if err := decodeJSON(r.Body, &req); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		kind, err := detect.ParseKind(req.Kind)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		value, err := a.Fingerprinter.Normalize(kind, req.Value)
		if err != nil {
			writeError(w, http.StatusBadRequest, "value: "+err.Error())
			return
		}
		now := a.Now()
		e := detect.Entry{Kind: kind, Value: value, Reason: req.Reason, CreatedAt: now}
		if req.TTL != "" {
			ttl, err := time.ParseDuration(req.TTL)
			if err != nil || ttl <= 0 {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("ttl: %q is not a positive duration such as \"10m\" or \"24h\"", req.TTL))
				return
			}
			if ttl < minTTL {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("ttl: %q is shorter than the minimum of %s (the entry would expire before it is used)", req.TTL, minTTL))
				return
			}
			e.ExpiresAt = now.Add(ttl)
		}
		if len(e.Reason) > 512 {
			writeError(w, http.StatusBadRequest, "reason: longer than 512 bytes")
			return
		}
		if err := adminapi.CheckPrintable(e.Reason); err != nil {
			writeError(w, http.StatusBadRequest, "reason: "+err.Error())
			return
		}
		if e.Reason == "" {
			e.Reason = "manual"
		}
		if err := list.Store(e); err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		a.Log.Info().Str("list", name).Str("kind", kind.String()).Str("value", value).
			Str("reason", e.Reason).Time("expires_at", e.ExpiresAt).Msg("list entry added")
		writeJSON(w, http.StatusCreated, toEntryJSON(&e))
	})
}

func (a *admin) deleteEntry(name string, list *detect.List) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind, err := detect.ParseKind(r.PathValue("kind"))
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		// PathValue is already unescaped: unescaping it again would turn a
		// literal "%41" in a value into "A" and refuse a lone "%".
		value, err := a.Fingerprinter.Normalize(kind, r.PathValue("value"))
		if err != nil {
			writeError(w, http.StatusBadRequest, "value: "+err.Error())
			return
		}
		found, err := list.Remove(kind, value)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		if !found {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no %s entry for %s %s", name, kind, value))
			return
		}
		a.Log.Info().Str("list", name).Str("kind", kind.String()).Str("value", value).Msg("list entry removed")
		w.WriteHeader(http.StatusNoContent)
	})
}

func (a *admin) apis(w http.ResponseWriter, r *http.Request) {
	apis := a.Inventory.APIs(a.Catalog.Load().Fallback())
	if a.OpenAPI != nil {
		for i := range apis {
			export.Mark(&apis[i], a.OpenAPI(apis[i].Name))
		}
	}
	writeJSON(w, http.StatusOK, adminapi.APIs{APIs: apis})
}

// apiOpenAPI answers GET /v1/apis/{api}/openapi.json: the API's
// discovered inventory with its learned parameter profiles (Content's) as
// an OpenAPI 3.1 document, shadow operations marked when it has a document. A
// discovered API's name carries a '/', sent escaped as %2F.
func (a *admin) apiOpenAPI(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("api")
	for _, s := range a.Inventory.APIs(a.Catalog.Load().Fallback()) {
		if s.Name != name {
			continue
		}
		var sp *spec.Spec
		if a.OpenAPI != nil {
			sp = a.OpenAPI(name)
		}
		var profiles []*inspect.Profiles
		if a.Content != nil {
			if d := a.Content.ContentModel(name); d != nil {
				profiles = d.Endpoints
			}
		}
		b, err := export.JSON(s, profiles, sp)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(append(b, '\n'))
		return
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no API %q", name))
}

// writeJSON answers v as JSON. The answer is encoded before anything is
// sent, so that a value that cannot be encoded (an infinite number) is a
// 500 with an error, never a 200 with an empty body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "the answer could not be encoded: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

// writeError answers {"error": msg}. A 5xx message is kept for the log line
// recoverPanics writes.
func writeError(w http.ResponseWriter, status int, msg string) {
	if sw, ok := w.(*statusWriter); ok && status >= 500 {
		sw.failure = msg
	}
	writeJSON(w, status, adminapi.Error{Error: msg})
}

// statusWriter remembers the status of an answer, and the message of a 5xx.
type statusWriter struct {
	http.ResponseWriter
	status  int
	failure string
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recoverPanics answers a handler's panic with a 500 and the JSON error
// body of every other error, counts it in vigil_panics_total and logs it
// with its stack; a panic after the answer has begun cuts the connection,
// so that the client sees the answer incomplete. Other 5xx answers are
// logged too. Log lines name the route pattern, never the path, which may
// hold a raw credential.
func (a *admin) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				if sw.status >= 500 {
					a.Log.Error().Str("method", r.Method).Str("route", r.Pattern).Int("status", sw.status).
						Str("error", sw.failure).Msg("admin request failed")
				}
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			a.Panics.Inc()
			a.Log.Error().Str("method", r.Method).Str("route", r.Pattern).Str("panic", fmt.Sprint(p)).
				Str("stack", string(debug.Stack())).Msg("recovered from panic in admin HTTP handler")
			if sw.status != 0 {
				panic(http.ErrAbortHandler)
			}
			writeError(w, http.StatusInternalServerError, "internal error: the request failed; the server log has the details")
		}()
		next.ServeHTTP(sw, r)
	})
}

// listAttacks answers GET /v1/attacks?api=&type=&since=&limit=&offset=,
// newest first. since is RFC 3339 or a duration back from now ("15m").
func (a *admin) listAttacks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := detect.AttackFilter{API: q.Get("api"), Type: detect.AttackType(q.Get("type")), Limit: 100}
	if f.Type != "" && !detect.KnownAttackType(f.Type) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("type: unknown attack type %q", f.Type))
		return
	}
	since, err := parseSince(q.Get("since"), a.Now(), time.Time{})
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	f.Since = since
	for _, p := range []struct {
		name string
		dst  *int
		max  int
	}{{"limit", &f.Limit, 1000}, {"offset", &f.Offset, 1 << 30}} {
		if s := q.Get(p.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > p.max {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: %q must be an integer from 0 to %d", p.name, s, p.max))
				return
			}
			*p.dst = n
		}
	}
	list, total := a.Attacks.List(f)
	if list == nil {
		list = []*detect.Attack{}
	}
	writeJSON(w, http.StatusOK, adminapi.Attacks{Attacks: list, Total: total})
}

func (a *admin) getAttack(w http.ResponseWriter, r *http.Request) {
	at, ok := a.Attacks.Get(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no attack %q", r.PathValue("id")))
		return
	}
	writeJSON(w, http.StatusOK, at)
}

func (a *admin) listModels(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, adminapi.Models{Models: a.Engine.Models()})
}

func (a *admin) getModel(w http.ResponseWriter, r *http.Request) {
	doc, ok := a.Engine.Model(r.PathValue("api"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no model for API %q (it has seen no traffic, or is not configured)", r.PathValue("api")))
		return
	}
	writeJSON(w, http.StatusOK, a.model(doc))
}

// model adds content inspection's part to an engine's model document.
func (a *admin) model(doc *behaviour.ModelDoc) adminapi.Model {
	m := adminapi.Model{ModelDoc: doc}
	if a.Content != nil {
		m.Inspection = a.Content.ContentModel(doc.API)
	}
	return m
}

// putModel changes knobs and thresholds: {"types":{"probing":{"enabled":true,
// "sensitivity":1.5}},"variables":[{"name":"requests_per_min","kind":"ip",
// "mode":"user","tn":100,"tx":600}]}; mode "system" gives a variable back to
// learning.
func (a *admin) putModel(w http.ResponseWriter, r *http.Request) {
	var u adminapi.ModelUpdate
	if err := decodeModelJSON(r.Body, &u.ModelUpdate, &u.Inspection); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	api := r.PathValue("api")
	if ci := u.Inspection; ci != nil {
		if a.Content == nil {
			writeError(w, http.StatusBadRequest, "inspection: content inspection is not running")
			return
		}
		if err := ci.Validate(); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if err := a.Engine.Apply(api, &u.ModelUpdate); err != nil {
		status := http.StatusBadRequest
		if _, ok := a.Engine.Model(api); !ok {
			status = http.StatusNotFound
		}
		writeError(w, status, err.Error())
		return
	}
	if u.Inspection != nil {
		if err := a.Content.ApplyContent(api, u.Inspection); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	a.Log.Info().Str("api", api).Msg("model changed")
	doc, _ := a.Engine.Model(api)
	writeJSON(w, http.StatusOK, a.model(doc))
}

// importModel installs a model exported from another deployment.
func (a *admin) importModel(w http.ResponseWriter, r *http.Request) {
	m := adminapi.Model{ModelDoc: &behaviour.ModelDoc{}}
	if err := decodeModelJSON(r.Body, m.ModelDoc, &m.Inspection); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	doc := m.ModelDoc
	doc.API = r.PathValue("api")
	if err := a.Engine.Import(doc); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if m.Inspection != nil && a.Content != nil {
		if err := a.Content.ImportContent(doc.API, m.Inspection); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	a.Log.Info().Str("api", doc.API).Msg("model imported")
	out, _ := a.Engine.Model(doc.API)
	writeJSON(w, http.StatusOK, a.model(out))
}

// getForensics answers what an identity did: GET /v1/forensics/{kind}/{value},
// the value raw (fingerprinted on arrival) or a fingerprint.
func (a *admin) getForensics(w http.ResponseWriter, r *http.Request) {
	kind, err := detect.ParseKind(r.PathValue("kind"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	value, err := a.Fingerprinter.Normalize(kind, r.PathValue("value"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "value: "+err.Error())
		return
	}
	rec, ok := a.Forensics.Get(kind, value)
	attacks := a.Attacks.AttacksOf(kind, value)
	if !ok && len(attacks) == 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no activity recorded for %s %s", kind, value))
		return
	}
	if rec == nil {
		rec = &observe.ForensicRecord{Kind: kind.String(), Value: value}
	}
	now := a.Now()
	status := "active"
	if _, blocked := a.Block.Lookup(kind, value, now); blocked {
		status = "blocked"
	} else if _, allowed := a.Allow.Lookup(kind, value, now); allowed {
		status = "allowed"
	}
	ips := make([]adminapi.ForensicsIP, 0, len(rec.IPs))
	for ip, p := range rec.IPs {
		ips = append(ips, adminapi.ForensicsIP{IP: ip, Total: p.Total, Methods: p.Methods, URLs: p.URLs, APIs: p.APIs})
	}
	sort.Slice(ips, func(i, j int) bool {
		return ips[i].Total > ips[j].Total || ips[i].Total == ips[j].Total && ips[i].IP < ips[j].IP
	})
	if attacks == nil {
		attacks = []*detect.Attack{}
	}
	var first, last *time.Time
	if !rec.FirstSeen.IsZero() {
		f, l := rec.FirstSeen.UTC(), rec.LastSeen.UTC()
		first, last = &f, &l
	}
	f := adminapi.Forensics{
		Attacks: attacks, FirstSeen: first, Kind: kind.String(), LastSeen: last, Status: status, Value: value,
		Summary: adminapi.ForensicsSummary{TotalAttacks: len(attacks), TotalRequests: rec.Total},
	}
	f.Details.HourlyRequests = rec.Hours
	f.Details.Metrics = adminapi.ForensicsMetrics{APIs: nonNil(rec.APIs), IPList: ips, Methods: nonNil(rec.Methods), URLs: nonNil(rec.URLs)}
	writeJSON(w, http.StatusOK, f)
}

func nonNil(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}

// falsePositive undoes an attack that was a mistake: it removes the block
// list entries the attack made, soft-allows the identity for a while
// ({"allow_for":"24h"} by default; "0s" for none) and relaxes the thresholds
// that fired (user-set values on the API's model, reversible with mode
// system). The attack record keeps what was done.
func (a *admin) falsePositive(w http.ResponseWriter, r *http.Request) {
	at, ok := a.Attacks.Get(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no attack %q", r.PathValue("id")))
		return
	}
	var req adminapi.FalsePositiveRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r.Body, &req); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	allowFor := 24 * time.Hour
	if req.AllowFor != "" {
		d, err := time.ParseDuration(req.AllowFor)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("allow_for: %q is not a duration such as \"24h\" (\"0s\": none)", req.AllowFor))
			return
		}
		if d > 0 && d < minTTL {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("allow_for: %q is shorter than the minimum of %s (\"0s\": none)", req.AllowFor, minTTL))
			return
		}
		allowFor = d
	}
	now := a.Now()
	fp := &detect.FalsePositive{At: now.UTC()}
	for _, e := range a.Block.Entries(now) {
		if e.AttackID != at.ID {
			continue
		}
		if _, err := a.Block.Remove(e.Kind, e.Value); err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		fp.Unblocked++
	}
	kind, err := detect.ParseKind(at.Identity.Kind)
	if allowFor > 0 && err == nil && at.Identity.Value != "" {
		until := now.Add(allowFor)
		e := detect.Entry{Kind: kind, Value: at.Identity.Value, Reason: "false positive " + at.ID, CreatedAt: now, ExpiresAt: until}
		if err := a.Allow.Store(e); err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		u := until.UTC()
		fp.AllowedUntil = &u
	}
	relaxed, err := a.Engine.Relax(at)
	if err != nil {
		a.Log.Warn().Err(err).Str("attack_id", at.ID).Msg("thresholds not relaxed")
	}
	fp.Relaxed = relaxed
	updated := *at
	updated.FalsePositive = fp
	a.Attacks.Update(&updated)
	a.Log.Info().Str("attack_id", at.ID).Int("unblocked", fp.Unblocked).Int("relaxed", len(relaxed)).Msg("attack marked as a false positive")
	writeJSON(w, http.StatusOK, &updated)
}

// activity answers an API's activity over time: GET
// /v1/apis/{api}/activity?since=1h&step=1m (since: RFC 3339 or a duration
// back; step: a duration). A discovered API's name carries a '/', sent
// escaped as %2F.
func (a *admin) activity(w http.ResponseWriter, r *http.Request) {
	api := r.PathValue("api")
	now := a.Now()
	since, err := parseSince(r.URL.Query().Get("since"), now, now.Add(-time.Hour))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	step := time.Minute
	if s := r.URL.Query().Get("step"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Minute {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("step: %q must be a duration of at least 1m", s))
			return
		}
		step = d
	}
	points, step, ok := a.Inventory.Activity(api, since, now, step)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no API %q", api))
		return
	}
	writeJSON(w, http.StatusOK, adminapi.Activity{
		API: api, Points: points, Since: since.UTC(), Step: step.String(), TopIdentities: a.Forensics.Top(api, 10),
	})
}

// parseSince reads a since parameter: RFC 3339, or a duration back from
// now ("15m"); empty gives def.
func parseSince(s string, now, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("since: %q is neither RFC 3339 nor a duration such as \"15m\"", s)
}
