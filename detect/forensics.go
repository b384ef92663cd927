package detect

import (
	"sort"
	"strings"
	"sync"
	"time"
)

// Bounds of one identity's forensic record: beyond them, new IPs, URLs
// and APIs are counted under "(other)".
const (
	forensicMaxIPs  = 50
	forensicMaxURLs = 200
	forensicMaxAPIs = 20
	forensicOther   = "(other)"
)

// Forensics keeps, per identity, what it did: aggregated counts per IP,
// method, endpoint template and API, never a raw request log. The number of
// identities is capped; the least recently seen are forgotten first.
type Forensics struct {
	mu    sync.Mutex
	max   int
	recs  map[forensicKey]*ForensicRecord
	dirty map[forensicKey]bool
}

type forensicKey struct {
	kind  Kind
	value string
}

// ForensicRecord is one identity's aggregated activity.
type ForensicRecord struct {
	Kind      string                  `json:"kind"`
	Value     string                  `json:"value"`
	FirstSeen time.Time               `json:"first_seen"`
	LastSeen  time.Time               `json:"last_seen"`
	Total     int64                   `json:"total_requests"`
	IPs       map[string]*ForensicsIP `json:"ips"`
	Methods   map[string]int64        `json:"methods"`
	URLs      map[string]int64        `json:"urls"`
	APIs      map[string]int64        `json:"apis"`
	// Hours counts requests per hour (unix hour → count), the last 7 days.
	Hours map[int64]int64 `json:"hours"`
}

// ForensicsIP is one IP's share of an identity's activity.
type ForensicsIP struct {
	Total   int64            `json:"total_requests"`
	Methods map[string]int64 `json:"methods"`
	URLs    map[string]int64 `json:"urls"`
	APIs    map[string]int64 `json:"apis"`
}

// NewForensics keeps at most max identities.
func NewForensics(max int) *Forensics {
	return &Forensics{max: max, recs: map[forensicKey]*ForensicRecord{}, dirty: map[forensicKey]bool{}}
}

func bump(m map[string]int64, k string, limit int) {
	if _, ok := m[k]; !ok && len(m) >= limit {
		k = forensicOther
	}
	m[k]++
}

// Consume records one transaction under each of its identities.
func (f *Forensics) Consume(t *Transaction) {
	if !t.HasRequest {
		return
	}
	api := ""
	if t.API != nil && !t.API.Discovered {
		api = t.API.Name
	} else {
		api = DiscoveredName(t.Host, DiscoveredBase(t.Path))
	}
	url := TemplatePath(t.Path)
	method := t.Method
	ip := t.Identities[KindIP]
	hour := t.Start.Unix() / 3600
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range numKinds {
		v := t.Identities[k]
		if v == "" {
			continue
		}
		key := forensicKey{k, v}
		r := f.recs[key]
		if r == nil {
			if len(f.recs) >= f.max {
				f.evict()
			}
			key.value = strings.Clone(v)
			r = newForensicRecord(k, key.value)
			f.recs[key] = r
		}
		f.dirty[key] = true
		if r.FirstSeen.IsZero() || t.Start.Before(r.FirstSeen) {
			r.FirstSeen = t.Start
		}
		if t.Start.After(r.LastSeen) {
			r.LastSeen = t.Start
		}
		r.Total++
		bump(r.Methods, method, 16)
		bump(r.URLs, url, forensicMaxURLs)
		bump(r.APIs, api, forensicMaxAPIs)
		r.Hours[hour]++
		if len(r.Hours) > 24*7 {
			for h := range r.Hours {
				if h < hour-24*7 {
					delete(r.Hours, h)
				}
			}
		}
		if ip != "" {
			pi := r.IPs[ip]
			if pi == nil {
				name := strings.Clone(ip)
				if len(r.IPs) >= forensicMaxIPs {
					name = forensicOther
				}
				if pi = r.IPs[name]; pi == nil {
					pi = &ForensicsIP{Methods: map[string]int64{}, URLs: map[string]int64{}, APIs: map[string]int64{}}
					r.IPs[name] = pi
				}
			}
			pi.Total++
			bump(pi.Methods, method, 16)
			bump(pi.URLs, url, forensicMaxURLs)
			bump(pi.APIs, api, forensicMaxAPIs)
		}
	}
}

func newForensicRecord(k Kind, v string) *ForensicRecord {
	return &ForensicRecord{Kind: k.String(), Value: v, IPs: map[string]*ForensicsIP{}, Methods: map[string]int64{},
		URLs: map[string]int64{}, APIs: map[string]int64{}, Hours: map[int64]int64{}}
}

// evict forgets the least recently seen identity (a scan; eviction only
// happens past the cap).
func (f *Forensics) evict() {
	var oldest forensicKey
	var at time.Time
	first := true
	for k, r := range f.recs {
		if first || r.LastSeen.Before(at) {
			oldest, at, first = k, r.LastSeen, false
		}
	}
	delete(f.recs, oldest)
	delete(f.dirty, oldest)
}

// Get returns a copy of an identity's record.
func (f *Forensics) Get(k Kind, value string) (*ForensicRecord, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.recs[forensicKey{k, value}]
	if !ok {
		return nil, false
	}
	return r.clone(), true
}

// Put installs a record read back from storage.
func (f *Forensics) Put(r *ForensicRecord) {
	k, err := ParseKind(r.Kind)
	if err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs[forensicKey{k, r.Value}] = r
}

// Dirty returns copies of the records changed since the last call.
func (f *Forensics) Dirty() []*ForensicRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*ForensicRecord, 0, len(f.dirty))
	for k := range f.dirty {
		if r := f.recs[k]; r != nil {
			out = append(out, r.clone())
		}
	}
	clear(f.dirty)
	sort.Slice(out, func(i, j int) bool { return out[i].Value < out[j].Value })
	return out
}

func (r *ForensicRecord) clone() *ForensicRecord {
	c := *r
	c.Methods, c.URLs, c.APIs = cloneCounts(r.Methods), cloneCounts(r.URLs), cloneCounts(r.APIs)
	c.Hours = make(map[int64]int64, len(r.Hours))
	for h, n := range r.Hours {
		c.Hours[h] = n
	}
	c.IPs = make(map[string]*ForensicsIP, len(r.IPs))
	for ip, p := range r.IPs {
		c.IPs[ip] = &ForensicsIP{Total: p.Total, Methods: cloneCounts(p.Methods), URLs: cloneCounts(p.URLs), APIs: cloneCounts(p.APIs)}
	}
	return &c
}

func cloneCounts(m map[string]int64) map[string]int64 {
	c := make(map[string]int64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Len returns the number of identities tracked.
func (f *Forensics) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.recs)
}

// AttacksOf returns the attack records naming an identity, newest first.
func (s *AttackStore) AttacksOf(kind Kind, value string) []*Attack {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Attack
	for i := len(s.list) - 1; i >= 0; i-- {
		if a := s.list[i]; a.Identity.Kind == kind.String() && a.Identity.Value == value {
			out = append(out, a)
		}
	}
	return out
}

// TopIdentity is one of an API's busiest identities.
type TopIdentity struct {
	Kind     string `json:"kind"`
	Value    string `json:"value"`
	Requests int64  `json:"requests"`
}

// Top returns the n identities with the most requests to api.
func (f *Forensics) Top(api string, n int) []TopIdentity {
	f.mu.Lock()
	var out []TopIdentity
	for k, r := range f.recs {
		if c := r.APIs[api]; c > 0 {
			out = append(out, TopIdentity{Kind: k.kind.String(), Value: k.value, Requests: c})
		}
	}
	f.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Requests != out[j].Requests {
			return out[i].Requests > out[j].Requests
		}
		return out[i].Kind+out[i].Value < out[j].Kind+out[j].Value
	})
	return out[:min(n, len(out))]
}
