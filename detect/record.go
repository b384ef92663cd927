package detect

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-project/vigil/detect/inspect"
)

// Record is one recorded API call, the input of replay: one JSON object per
// line. RequestHeaders carries whatever headers identity extraction reads;
// ClientIP is already resolved.
type Record struct {
	Time           time.Time         `json:"time"`
	Method         string            `json:"method"`
	Authority      string            `json:"authority"`
	Path           string            `json:"path"`
	Status         int               `json:"status"`
	ClientIP       string            `json:"client_ip"`
	RequestHeaders map[string]string `json:"request_headers,omitempty"`
	RequestBytes   int64             `json:"request_bytes"`
	ResponseBytes  int64             `json:"response_bytes"`
	DurationMS     float64           `json:"duration_ms"`
	// RequestBody is the request body as sent (text), optional: with it,
	// content inspection reads the body in a replay as it does live.
	RequestBody string `json:"request_body,omitempty"`
}

// The years a call's time may fall in. The behaviour windows count time
// in 10-second buckets held in 32 bits from the Unix epoch, which last to
// the year 2650; a recorded time outside these years is a broken log.
const (
	minYear = 1970
	maxYear = 2500
)

var (
	minTime = time.Date(minYear, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(maxYear, 1, 1, 0, 0, 0, 0, time.UTC)
)

// TimeInRange reports whether t is a time a call can have: from 1970 up
// to (not including) 2500.
func TimeInRange(t time.Time) bool {
	return !t.Before(minTime) && t.Before(maxTime)
}

// CheckTime says why t is no time a call can have (nil when it is).
func CheckTime(t time.Time) error {
	if !TimeInRange(t) {
		return fmt.Errorf("time %s out of range (%d to %d)", t.Format(time.RFC3339), minYear, maxYear-1)
	}
	return nil
}

// ParseRecord decodes one line. Unknown fields are errors, so a typo is seen.
func ParseRecord(line []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(strings.NewReader(string(line)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Record{}, err
	}
	if r.Time.IsZero() {
		return Record{}, errors.New("missing time")
	}
	if err := CheckTime(r.Time); err != nil {
		return Record{}, err
	}
	switch {
	case r.Method == "":
		return Record{}, errors.New("missing method")
	case r.Path == "" || r.Path[0] != '/':
		return Record{}, fmt.Errorf("path %q must start with '/'", r.Path)
	case r.Status < 0 || r.Status > 999:
		return Record{}, fmt.Errorf("status %d out of range", r.Status)
	}
	return r, nil
}

// ContentView is what content inspection reads of the recorded call: its
// path and query as sent, content type, User-Agent, Referer, Cookie and
// body.
func (r *Record) ContentView() inspect.RequestView {
	h := make(recordHeaders, len(r.RequestHeaders))
	for k, v := range r.RequestHeaders {
		h[strings.ToLower(k)] = v
	}
	path, query, _ := strings.Cut(r.Path, "?")
	rv := inspect.RequestView{Method: strings.ToUpper(r.Method), Path: path, Query: query, ContentType: h["content-type"],
		UserAgent: h["user-agent"], Referer: h["referer"], Cookie: h["cookie"]}
	if r.RequestBody != "" {
		rv.Body = []byte(r.RequestBody)
	}
	return rv
}

// recordHeaders reads a record's headers by lower-case name.
type recordHeaders map[string]string

func (h recordHeaders) Header(name string) string { return h[name] }

// Transaction turns a record into the transaction the engine consumes, with
// the API matched in the catalog and identities extracted as they would be
// live (secrets fingerprinted).
func (r *Record) Transaction(c *Catalog, x *Extractor) *Transaction {
	h := make(recordHeaders, len(r.RequestHeaders))
	for k, v := range r.RequestHeaders {
		h[strings.ToLower(k)] = v
	}
	path, query, _ := strings.Cut(r.Path, "?")
	path = StripParams(path)
	api := c.Match(r.Authority, path)
	t := &Transaction{
		API: api, Host: r.Authority, Method: strings.ToUpper(r.Method), Path: path, UserAgent: h["user-agent"],
		Status: r.Status, RequestBytes: r.RequestBytes, ResponseBytes: r.ResponseBytes,
		Start: r.Time, Latency: time.Duration(r.DurationMS * float64(time.Millisecond)),
		HasRequest: true, Complete: r.Status != 0,
	}
	t.Identities[KindIP] = canonicalIP(r.ClientIP)
	x.Extract(&api.Identities, h, query, &t.Identities)
	// A login's body names the account tried, as it does live (Envoy's
	// body phase, or ext_authz with the body).
	if r.RequestBody != "" && api.ReadsLoginBody(path) {
		body := r.RequestBody[:min(len(r.RequestBody), MaxLoginBody)]
		if name := api.LoginUsername(h["content-type"], []byte(body)); name != "" {
			t.Identities[KindUsername] = name
			t.LoginBody = true
		}
	}
	return t
}
