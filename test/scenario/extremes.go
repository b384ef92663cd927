package scenario

import (
	"strings"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// Measure is a figure of one identity's calls over a window: what an
// attacker who studied the benign population keeps under its extremes.
type Measure int

// The measures.
const (
	MeasureCalls           Measure = iota
	MeasureFailedTemplates         // distinct endpoint templates answered 404 or 405
	MeasureFailedPaths             // distinct paths (without query) answered 404 or 405
	MeasureErrors                  // answers of 400 and above, but 401 and 404
	MeasureFailedLogins            // logins answered 401
	MeasureLoginNames              // distinct user names tried at the login
	MeasureResponseBytes
	MeasureOrderIDs  // distinct orders read (GET /order/{id})
	MeasureDeletes   // DELETE calls
	MeasureAddresses // distinct client addresses
	MeasureMaxBody   // the largest request body
	numMeasures
)

var measureNames = [numMeasures]string{
	"calls", "failed_templates", "failed_paths", "errors", "failed_logins", "login_names",
	"response_bytes", "order_ids", "deletes", "addresses", "max_body",
}

func (m Measure) String() string { return measureNames[m] }

// distinctMeasure reports whether m counts distinct values.
func distinctMeasure(m Measure) bool {
	switch m {
	case MeasureFailedTemplates, MeasureFailedPaths, MeasureLoginNames, MeasureOrderIDs, MeasureAddresses:
		return true
	}
	return false
}

// Windows the measures are taken over, aligned on the scenario's start.
var measureWindows = []time.Duration{time.Minute, 10 * time.Minute, time.Hour}

// Extremes are the largest value of every measure over every benign
// identity of a kind, per window, and over people's only; and the largest
// request body of each endpoint over all benign calls.
type Extremes struct {
	max     map[extKey]float64
	maxBody map[string]int64
}

type extKey struct {
	kind   string
	w      time.Duration
	m      Measure
	person bool
}

// Max is the largest value of m over any benign identity of kind in any
// window of length w (one of a minute, ten minutes, an hour).
func (e *Extremes) Max(kind string, w time.Duration, m Measure) float64 {
	return e.max[extKey{kind, w, m, false}]
}

// PersonMax is Max over one person's identities only: a user's address,
// credentials and name, not a corporate NAT's or mobile carrier's shared
// address, nor a crawler's, partner's, batch job's or integration's.
func (e *Extremes) PersonMax(kind string, w time.Duration, m Measure) float64 {
	return e.max[extKey{kind, w, m, true}]
}

// personal reports whether a benign identity of population pop is one
// person's.
func personal(id Identity, pop string) bool {
	switch pop {
	case PopUser, PopPowerUser, PopNewUser:
		return true
	case PopNAT, PopMobile: // their addresses are shared
		return id.Kind != KindIP
	}
	return false
}

// MaxBody is the largest request body of any benign call of method and path
// template (as detect.TemplatePath gives it).
func (e *Extremes) MaxBody(method, template string) int64 {
	return e.maxBody[method+" "+template]
}

// measureExtremes measures the n records rec gives (benign ones), pop
// naming each identity's population.
func measureExtremes(n int, rec func(int) *detect.Record, start time.Time, pop map[Identity]string) *Extremes {
	e := &Extremes{max: map[extKey]float64{}, maxBody: map[string]int64{}}
	for _, w := range measureWindows {
		for id, v := range measurePeaks(n, rec, start, w, recordIdentityFn) {
			person := personal(id, pop[id])
			for m := range numMeasures {
				k := extKey{id.Kind, w, m, false}
				e.max[k] = max(e.max[k], v[m])
				if person {
					k.person = true
					e.max[k] = max(e.max[k], v[m])
				}
			}
		}
	}
	for i := range n {
		r := rec(i)
		if r.RequestBytes > 0 {
			path, _, _ := strings.Cut(r.Path, "?")
			k := r.Method + " " + detect.TemplatePath(path)
			e.maxBody[k] = max(e.maxBody[k], r.RequestBytes)
		}
	}
	return e
}

// recordIdentityFn calls fn with every identity a record carries: its
// address, the credentials and user name of its headers, and the name a
// login body holds.
func recordIdentityFn(r *detect.Record, fn func(Identity)) {
	add := func(kind, raw string) {
		if raw != "" {
			fn(Identity{kind, raw})
		}
	}
	add(KindIP, r.ClientIP)
	headerIdentities(r.RequestHeaders, add)
	if r.RequestHeaders[HeaderUsername] == "" {
		add(KindUsername, LoginName(r.RequestBody))
	}
}

// measurePeaks returns, for every key keys gives the records, the largest
// value of each measure over the aligned windows of length w from start.
func measurePeaks(n int, rec func(int) *detect.Record, start time.Time, w time.Duration, keys func(*detect.Record, func(Identity))) map[Identity][numMeasures]float64 {
	type cellKey struct {
		id Identity
		i  int64
	}
	type cell struct {
		v    [numMeasures]float64
		sets [numMeasures]map[string]struct{}
		addr string // the first address: most cells see one only
	}
	cells := map[cellKey]*cell{}
	for i := range n {
		r := rec(i)
		wi := int64(r.Time.Sub(start) / w)
		path, _, _ := strings.Cut(r.Path, "?")
		failed := r.Status == 404 || r.Status == 405
		login := path == LoginPath
		keys(r, func(id Identity) {
			k := cellKey{id, wi}
			c := cells[k]
			if c == nil {
				c = &cell{}
				cells[k] = c
			}
			c.v[MeasureCalls]++
			add := func(m Measure, v string) {
				if c.sets[m] == nil {
					c.sets[m] = map[string]struct{}{}
				}
				c.sets[m][v] = struct{}{}
			}
			if failed {
				add(MeasureFailedTemplates, detect.TemplatePath(path))
				add(MeasureFailedPaths, path)
			}
			if r.Status >= 400 && r.Status != 401 && r.Status != 404 {
				c.v[MeasureErrors]++
			}
			if login {
				if r.Status == 401 {
					c.v[MeasureFailedLogins]++
				}
				name := r.RequestHeaders[HeaderUsername]
				if name == "" {
					name = LoginName(r.RequestBody)
				}
				if name != "" {
					add(MeasureLoginNames, name)
				}
			}
			c.v[MeasureResponseBytes] += float64(r.ResponseBytes)
			if r.Method == "GET" && strings.HasPrefix(path, Base+"/order/") {
				add(MeasureOrderIDs, path)
			}
			if r.Method == "DELETE" {
				c.v[MeasureDeletes]++
			}
			switch {
			case c.addr == "":
				c.addr, c.v[MeasureAddresses] = r.ClientIP, 1
			case c.addr != r.ClientIP || c.sets[MeasureAddresses] != nil:
				add(MeasureAddresses, c.addr)
				add(MeasureAddresses, r.ClientIP)
			}
			c.v[MeasureMaxBody] = max(c.v[MeasureMaxBody], float64(r.RequestBytes))
		})
	}
	out := map[Identity][numMeasures]float64{}
	for k, c := range cells {
		for m, s := range c.sets {
			if s != nil {
				c.v[m] = float64(len(s))
			}
		}
		p := out[k.id]
		for m := range numMeasures {
			p[m] = max(p[m], c.v[m])
		}
		out[k.id] = p
	}
	return out
}
