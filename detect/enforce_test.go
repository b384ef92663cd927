package detect

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	idsAlice   = Identities{KindIP: "192.0.2.10", KindToken: "fp:00000000000000000000000000000a11", KindUsername: "alice"}
	idsMallory = Identities{KindIP: "203.0.113.66", KindAPIKey: "fp:000000000000000000000000000bad00", KindUsername: "mallory"}
)

func decoyAt(path string) DecoyFunc {
	return func(req *Request) *DecoyResponse {
		if req.Path == path {
			return &DecoyResponse{Status: 404, Body: []byte("not found")}
		}
		return nil
	}
}

// enforcerTests feed TestEnforcerCheck; each runs in every mode.
var enforcerTests = []struct {
	name          string
	allow, block  []Entry
	decoy         string // path of a decoy, if any
	ids           Identities
	path          string
	contentLength int64
	maxBody       int64
	reason        Reason
	status        int
}{
	{name: "nothing", ids: idsAlice, path: "/x", contentLength: -1},
	{name: "block by ip", block: []Entry{{Kind: KindIP, Value: "203.0.113.66"}}, ids: idsMallory, path: "/x", contentLength: -1, reason: ReasonBlockList, status: 403},
	{name: "block by api key", block: []Entry{{Kind: KindAPIKey, Value: idsMallory[KindAPIKey]}}, ids: idsMallory, path: "/x", contentLength: -1, reason: ReasonBlockList, status: 403},
	{name: "block by username", block: []Entry{{Kind: KindUsername, Value: "mallory"}}, ids: idsMallory, path: "/x", contentLength: -1, reason: ReasonBlockList, status: 403},
	{name: "block list does not match others", block: []Entry{{Kind: KindUsername, Value: "mallory"}}, ids: idsAlice, path: "/x", contentLength: -1},
	{
		name: "allow list beats everything", allow: []Entry{{Kind: KindToken, Value: idsAlice[KindToken]}}, block: []Entry{{Kind: KindIP, Value: "192.0.2.10"}},
		decoy: "/admin", ids: idsAlice, path: "/admin", contentLength: 1 << 30, maxBody: 10, reason: ReasonAllowList,
	},
	{name: "block list before decoy", block: []Entry{{Kind: KindIP, Value: "203.0.113.66"}}, decoy: "/admin", ids: idsMallory, path: "/admin", contentLength: -1, reason: ReasonBlockList, status: 403},
	{name: "decoy", decoy: "/admin", ids: idsMallory, path: "/admin", contentLength: -1, reason: ReasonDecoy, status: 404},
	{name: "decoy before limits", decoy: "/admin", ids: idsMallory, path: "/admin", contentLength: 100, maxBody: 10, reason: ReasonDecoy, status: 404},
	{name: "decoy elsewhere", decoy: "/admin", ids: idsMallory, path: "/x", contentLength: -1},
	{name: "content-length over", ids: idsAlice, path: "/x", contentLength: 11, maxBody: 10, reason: ReasonBodyTooLarge, status: 413},
	{name: "content-length at limit", ids: idsAlice, path: "/x", contentLength: 10, maxBody: 10},
	{name: "content-length unknown", ids: idsAlice, path: "/x", contentLength: -1, maxBody: 10},
	{name: "no body limit", ids: idsAlice, path: "/x", contentLength: 1 << 40},
	{
		name: "expired allow entry", allow: []Entry{{Kind: KindIP, Value: "203.0.113.66", ExpiresAt: t0}}, block: []Entry{{Kind: KindUsername, Value: "mallory"}},
		ids: idsMallory, path: "/x", contentLength: -1, reason: ReasonBlockList, status: 403,
	},
	{name: "expired block entry", block: []Entry{{Kind: KindIP, Value: "203.0.113.66", ExpiresAt: t0.Add(-time.Second)}}, ids: idsMallory, path: "/x", contentLength: -1},
}

func TestEnforcerCheck(t *testing.T) {
	for _, tc := range enforcerTests {
		for _, mode := range []Mode{ModeBlock, ModeDetect, ModeLearn} {
			for _, cache := range []int64{0, 1000} {
				t.Run(fmt.Sprintf("%s/%v/cache=%d", tc.name, mode, cache), func(t *testing.T) {
					allow, block := NewLists()
					for _, e := range tc.allow {
						allow.Put(e)
					}
					for _, e := range tc.block {
						block.Put(e)
					}
					enf := newTestEnforcer(t, allow, block, cache)
					if tc.decoy != "" {
						enf.SetDecoy(decoyAt(tc.decoy))
					}
					api := &API{Name: "a", BasePath: "/", Mode: mode, MaxBodyBytes: tc.maxBody}
					req := Request{API: api, Method: "GET", Path: tc.path, Identities: tc.ids, ContentLength: tc.contentLength}
					for round := 0; round < 2; round++ { // then from the cache
						v := enf.Check(&req, t0)
						checkVerdict(t, &v, mode, tc.reason, tc.status)
						if (v.Reason == ReasonAllowList || v.Reason == ReasonBlockList) != (v.Match != nil) {
							t.Fatalf("Match = %v for reason %v", v.Match, v.Reason)
						}
						if (v.Reason == ReasonDecoy) != (v.Decoy != nil) {
							t.Fatalf("Decoy = %v for reason %v", v.Decoy, v.Reason)
						}
						enf.WaitCache()
					}
				})
			}
		}
	}
}

// checkVerdict asserts the reason and status of a verdict and what the mode
// makes of them: block refuses, learn and detect never do.
func checkVerdict(t *testing.T, v *Verdict, mode Mode, reason Reason, status int) {
	t.Helper()
	if v.Reason != reason {
		t.Fatalf("reason %v, want %v", v.Reason, reason)
	}
	fired := reason.refuses()
	if fired && v.Status != status {
		t.Fatalf("status %d, want %d", v.Status, status)
	}
	// Issue 4: a decoy hit blocks in learn mode too; only detect records.
	blocks := mode == ModeBlock || reason == ReasonDecoy && mode == ModeLearn
	if want := fired && blocks; v.Deny != want {
		t.Fatalf("Deny = %v in mode %v for %v", v.Deny, mode, reason)
	}
	if want := fired && !blocks; v.WouldBlock != want {
		t.Fatalf("WouldBlock = %v in mode %v for %v", v.WouldBlock, mode, reason)
	}
	if v.Refused() != fired {
		t.Fatalf("Refused() = %v for %v", v.Refused(), reason)
	}
	if fired != (v.DecisionID != "") {
		t.Fatalf("DecisionID %q for %v", v.DecisionID, reason)
	}
	if fired && (len(v.DecisionID) != 24 || strings.Trim(v.DecisionID, "0123456789abcdef") != "") {
		t.Fatalf("DecisionID %q is not 24 hex digits", v.DecisionID)
	}
}

func TestEnforcerSetDecoyNil(t *testing.T) {
	allow, block := NewLists()
	enf := newTestEnforcer(t, allow, block, 0)
	enf.SetDecoy(decoyAt("/admin"))
	req := Request{API: &API{Mode: ModeBlock}, Path: "/admin", ContentLength: -1}
	if v := enf.Check(&req, t0); v.Reason != ReasonDecoy {
		t.Fatalf("decoy not used: %v", v.Reason)
	}
	enf.SetDecoy(nil)
	if v := enf.Check(&req, t0); v.Reason != ReasonNone {
		t.Fatalf("decoy still used after SetDecoy(nil): %v", v.Reason)
	}
	if a, b := enf.Lists(); a != allow || b != block {
		t.Fatal("Lists() returned other lists")
	}
}

// cachedVerdict reports whether the cache holds a verdict for ids.
func cachedVerdict(e *Enforcer, ids *Identities) bool {
	key, chk := e.hash(ids)
	v, ok := e.cache.Get(key)
	return ok && v.check == chk
}

// mustCache checks ids once and waits until the verdict is really cached.
func mustCache(t *testing.T, e *Enforcer, req *Request, now time.Time) Verdict {
	t.Helper()
	v := e.Check(req, now)
	e.WaitCache()
	if !cachedVerdict(e, &req.Identities) {
		t.Fatal("verdict not cached; the test would prove nothing")
	}
	return v
}

func TestEnforcerListChangesBeatTheCache(t *testing.T) {
	allow, block := NewLists()
	allow.Put(Entry{Kind: KindUsername, Value: "someone-else"}) // lists not empty: the cache is used
	enf := newTestEnforcer(t, allow, block, 1000)
	req := Request{API: &API{Mode: ModeBlock}, Path: "/x", Identities: idsMallory, ContentLength: -1}

	if v := mustCache(t, enf, &req, t0); v.Refused() {
		t.Fatal("refused before any list entry")
	}
	block.Put(Entry{Kind: KindIP, Value: "203.0.113.66", Reason: "scanner"})
	if v := enf.Check(&req, t0); !v.Deny || v.Match == nil || v.Match.Reason != "scanner" {
		t.Fatalf("block list Put not seen at once: %+v", v)
	}

	mustCache(t, enf, &req, t0)
	allow.Put(Entry{Kind: KindAPIKey, Value: idsMallory[KindAPIKey]})
	if v := enf.Check(&req, t0); v.Reason != ReasonAllowList {
		t.Fatalf("allow list Put not seen at once: %v", v.Reason)
	}

	mustCache(t, enf, &req, t0)
	allow.Delete(KindAPIKey, idsMallory[KindAPIKey])
	if v := enf.Check(&req, t0); v.Reason != ReasonBlockList {
		t.Fatalf("allow list Delete not seen at once: %v", v.Reason)
	}

	mustCache(t, enf, &req, t0)
	block.Delete(KindIP, "203.0.113.66")
	if v := enf.Check(&req, t0); v.Refused() {
		t.Fatalf("block list Delete not seen at once: %v", v.Reason)
	}

	mustCache(t, enf, &req, t0)
	block.Put(Entry{Kind: KindIP, Value: "203.0.113.66", Reason: "first"})
	mustCache(t, enf, &req, t0)
	block.Put(Entry{Kind: KindIP, Value: "203.0.113.66", Reason: "second"}) // replace
	if v := enf.Check(&req, t0); v.Match == nil || v.Match.Reason != "second" {
		t.Fatalf("replaced entry not seen at once: %+v", v.Match)
	}
}

func TestEnforcerCachedExpiry(t *testing.T) {
	allow, block := NewLists()
	block.Put(Entry{Kind: KindIP, Value: "203.0.113.66", ExpiresAt: t0.Add(time.Minute)})
	enf := newTestEnforcer(t, allow, block, 1000)
	req := Request{API: &API{Mode: ModeBlock}, Path: "/x", Identities: idsMallory, ContentLength: -1}
	if v := mustCache(t, enf, &req, t0); !v.Deny {
		t.Fatal("not blocked before expiry")
	}
	if v := enf.Check(&req, t0.Add(time.Minute-1)); !v.Deny {
		t.Fatal("not blocked just before expiry")
	}
	if v := enf.Check(&req, t0.Add(time.Minute)); v.Refused() {
		t.Fatal("cached block verdict outlived its entry")
	}

	// An expiring allow entry in front of a block entry.
	allow.Put(Entry{Kind: KindAPIKey, Value: idsMallory[KindAPIKey], ExpiresAt: t0.Add(2 * time.Minute)})
	block.Put(Entry{Kind: KindIP, Value: idsMallory[KindIP]})
	if v := mustCache(t, enf, &req, t0.Add(time.Minute)); v.Reason != ReasonAllowList {
		t.Fatalf("reason %v, want allowlist", v.Reason)
	}
	if v := enf.Check(&req, t0.Add(2*time.Minute)); v.Reason != ReasonBlockList {
		t.Fatalf("cached allow verdict outlived its entry: %v", v.Reason)
	}
}

// TestEnforcerListsFromTwoPairs uses an allow and a block list that do not
// share a generation counter: changes to either still reach cached verdicts.
func TestEnforcerListsFromTwoPairs(t *testing.T) {
	allow, _ := NewLists()
	_, block := NewLists()
	allow.Put(Entry{Kind: KindUsername, Value: "someone-else"})
	enf := newTestEnforcer(t, allow, block, 1000)
	req := Request{API: &API{Mode: ModeBlock}, Path: "/x", Identities: idsMallory, ContentLength: -1}
	mustCache(t, enf, &req, t0)
	block.Put(Entry{Kind: KindIP, Value: "203.0.113.66"})
	if v := enf.Check(&req, t0); !v.Deny {
		t.Fatal("block list change not seen through the cache")
	}
}

// TestEnforcerCacheIsOnlyAnAccelerator replays one random history of list
// changes, clock steps and checks against enforcers without a cache, with a
// one-entry cache (almost every Set is dropped or evicted) and with a large
// one, and demands the same verdicts.
func TestEnforcerCacheIsOnlyAnAccelerator(t *testing.T) {
	allow, block := NewLists()
	enfs := []*Enforcer{
		newTestEnforcer(t, allow, block, 0),
		newTestEnforcer(t, allow, block, 1),
		newTestEnforcer(t, allow, block, 1<<12),
	}
	api := &API{Mode: ModeBlock, MaxBodyBytes: 100}
	r := rand.New(rand.NewPCG(7, 11))
	pool := make([]Identities, 40)
	for i := range pool {
		pool[i] = Identities{KindIP: fmt.Sprintf("10.0.0.%d", i%13), KindToken: fmt.Sprintf("fp:%032x", i%7), KindUsername: fmt.Sprintf("u%d", i%5)}
	}
	pick := func() Entry {
		id := pool[r.IntN(len(pool))]
		k := []Kind{KindIP, KindToken, KindUsername}[r.IntN(3)]
		e := Entry{Kind: k, Value: id[k], Reason: fmt.Sprint(r.IntN(3))}
		if r.IntN(2) == 0 {
			e.ExpiresAt = t0.Add(time.Duration(r.IntN(600)) * time.Second)
		}
		return e
	}
	now := t0
	for step := 0; step < 4000; step++ {
		switch op := r.IntN(20); {
		case op == 0:
			allow.Put(pick())
		case op <= 2:
			block.Put(pick())
		case op == 3:
			e := pick()
			allow.Delete(e.Kind, e.Value)
		case op == 4:
			e := pick()
			block.Delete(e.Kind, e.Value)
		case op == 5:
			now = now.Add(time.Duration(r.IntN(30)) * time.Second)
		case op == 6:
			for _, e := range enfs {
				e.WaitCache()
			}
		case op == 7:
			allow.Sweep(now)
			block.Sweep(now)
		default:
			req := Request{API: api, Path: "/x", Identities: pool[r.IntN(len(pool))], ContentLength: int64(r.IntN(200)) - 1}
			want := enfs[0].Check(&req, now)
			for i, e := range enfs[1:] {
				if got := e.Check(&req, now); !sameVerdict(&got, &want) {
					t.Fatalf("step %d: enforcer %d says %+v, uncached says %+v", step, i+1, got, want)
				}
			}
		}
	}
}

func sameVerdict(a, b *Verdict) bool {
	if a.Deny != b.Deny || a.WouldBlock != b.WouldBlock || a.Status != b.Status || a.Reason != b.Reason || (a.Match == nil) != (b.Match == nil) {
		return false
	}
	return a.Match == nil || *a.Match == *b.Match
}

// TestEnforcerConcurrentDroppedSets checks from many goroutines through a tiny
// cache whose Set buffer overflows: every verdict must still be right.
func TestEnforcerConcurrentDroppedSets(t *testing.T) {
	allow, block := NewLists()
	for i := 0; i < 100; i += 3 {
		block.Put(Entry{Kind: KindIP, Value: fmt.Sprintf("10.0.%d.%d", i/250, i%250)})
	}
	allow.Put(Entry{Kind: KindIP, Value: "10.0.0.9"})
	enf := newTestEnforcer(t, allow, block, 4)
	api := &API{Mode: ModeDetect}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3000; i++ {
				n := (i*7 + g) % 100
				req := Request{API: api, Path: "/x", ContentLength: -1, Identities: Identities{KindIP: fmt.Sprintf("10.0.%d.%d", n/250, n%250)}}
				v := enf.Check(&req, t0)
				want := ReasonNone
				switch {
				case n == 9:
					want = ReasonAllowList
				case n%3 == 0:
					want = ReasonBlockList
				}
				if v.Reason != want || v.Deny {
					t.Errorf("identity %d: %v (deny %v), want %v", n, v.Reason, v.Deny, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestEnforcerCheckAllocs: a request that no rule refuses costs no heap
// allocation, without the cache and on a cache hit.
func TestEnforcerCheckAllocs(t *testing.T) {
	allow, block := NewLists()
	block.Put(Entry{Kind: KindIP, Value: "203.0.113.66"})
	req := Request{API: &API{Mode: ModeBlock, MaxBodyBytes: 100}, Path: "/x", Identities: idsAlice, ContentLength: 10}
	for _, cache := range []int64{0, 1000} {
		enf := newTestEnforcer(t, allow, block, cache)
		if cache > 0 {
			mustCache(t, enf, &req, t0)
		}
		if n := testing.AllocsPerRun(200, func() { enf.Check(&req, t0) }); n != 0 {
			t.Errorf("cache %d: Check allocates %v times", cache, n)
		}
	}
}

// checkBodyTests feed TestEnforcerCheckBody.
var checkBodyTests = []struct {
	name     string
	maxBody  int64
	maxElems int
	bytes    int64
	doc      string // fed to a JSONCounter; "-" for no counter
	reason   Reason
}{
	{"small", 100, 10, 10, `[1,2]`, ReasonNone},
	{"bytes over", 100, 10, 101, `[1]`, ReasonBodyTooLarge},
	{"bytes at limit", 100, 10, 100, `[1]`, ReasonNone},
	{"no byte limit", 0, 10, 1 << 40, `[1]`, ReasonNone},
	{"elements over", 0, 3, 10, `[1,2,3,4]`, ReasonTooManyElements},
	{"elements at limit", 0, 3, 10, `[1,2,3]`, ReasonNone},
	{"nested elements over", 0, 3, 10, `{"a":{"b":[1,2,3,4]}}`, ReasonTooManyElements},
	{"no element limit", 0, 0, 10, `[1,2,3,4]`, ReasonNone},
	{"too deep", 0, 1000, 10, strings.Repeat("[", 200), ReasonJSONTooDeep},
	{"too deep without element limit", 0, 0, 10, strings.Repeat("[", 200), ReasonNone},
	{"no counter", 0, 3, 10, "-", ReasonNone},
	{"bytes before elements", 5, 3, 10, `[1,2,3,4]`, ReasonBodyTooLarge},
}

func TestEnforcerCheckBody(t *testing.T) {
	allow, block := NewLists()
	enf := newTestEnforcer(t, allow, block, 0)
	for _, tc := range checkBodyTests {
		for _, mode := range []Mode{ModeBlock, ModeDetect, ModeLearn} {
			t.Run(fmt.Sprintf("%s/%v", tc.name, mode), func(t *testing.T) {
				req := Request{API: &API{Mode: mode, MaxBodyBytes: tc.maxBody, MaxJSONElements: tc.maxElems}}
				var c *JSONCounter
				if tc.doc != "-" {
					c = new(JSONCounter)
					c.Write([]byte(tc.doc))
				}
				v := enf.CheckBody(&req, tc.bytes, c)
				checkVerdict(t, &v, mode, tc.reason, 413)
			})
		}
	}
}

// TestEnforcerRefusesPatchEarly streams a 10,000-operation json-patch in
// small chunks, as ext_proc does, and expects the refusal in the very chunk
// that holds the first operation over the limit.
func TestEnforcerRefusesPatchEarly(t *testing.T) {
	const limit = 500
	doc := jsonPatch(10000)
	// Offset of the comma before operation limit+1: past it, the count is over.
	over := 0
	for i, commas := 0, 0; i < len(doc); i++ {
		if doc[i] == ',' && doc[i+1] == '{' && doc[i-1] == '}' {
			if commas++; commas == limit {
				over = i
				break
			}
		}
	}
	allow, block := NewLists()
	enf := newTestEnforcer(t, allow, block, 0)
	req := Request{API: &API{Mode: ModeBlock, MaxBodyBytes: 10 << 20, MaxJSONElements: limit}}
	var c JSONCounter
	const chunk = 100
	for off := 0; off < len(doc); off += chunk {
		c.Write(doc[off:min(off+chunk, len(doc))])
		v := enf.CheckBody(&req, int64(min(off+chunk, len(doc))), &c)
		if !v.Refused() {
			if off/chunk >= over/chunk {
				t.Fatalf("not refused in chunk %d, which crosses the limit", off/chunk)
			}
			continue
		}
		if off/chunk != over/chunk {
			t.Fatalf("refused in chunk %d, want chunk %d", off/chunk, over/chunk)
		}
		if !v.Deny || v.Status != 413 || v.Reason != ReasonTooManyElements {
			t.Fatalf("verdict %+v", v)
		}
		if off > len(doc)/10 {
			t.Fatalf("refused only after %d of %d bytes", off, len(doc))
		}
		return
	}
	t.Fatal("never refused")
}

func TestIDGenerator(t *testing.T) {
	g := NewIDGenerator()
	seen := sync.Map{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				id := g.Next()
				if len(id) != 24 || strings.Trim(id, "0123456789abcdef") != "" {
					t.Errorf("ID %q is not 24 hex digits", id)
					return
				}
				if _, dup := seen.LoadOrStore(id, true); dup {
					t.Errorf("duplicate ID %q", id)
					return
				}
			}
		}()
	}
	wg.Wait()
	if a, b := NewIDGenerator().Next(), NewIDGenerator().Next(); a[:8] == b[:8] {
		t.Logf("two generators share the prefix %q (1 in 2^32)", a[:8])
	}
}

func TestAppendDenyBody(t *testing.T) {
	for _, v := range []Verdict{
		{Deny: true, Status: 403, Reason: ReasonBlockList, DecisionID: "0123456789abcdef01234567"},
		{Deny: true, Status: 413, Reason: ReasonTooManyElements, DecisionID: "0123456789abcdef01234568"},
	} {
		b := AppendDenyBody([]byte("prefix:"), &v)
		var got struct {
			Error, DecisionID, Reason string
			Status                    int
		}
		body, ok := strings.CutPrefix(string(b), "prefix:")
		if !ok {
			t.Fatalf("prefix lost: %s", b)
		}
		if err := json.Unmarshal([]byte(strings.ReplaceAll(body, "decision_id", "DecisionID")), &got); err != nil {
			t.Fatalf("not JSON: %s: %v", body, err)
		}
		wantErr := map[int]string{403: "forbidden", 413: "payload_too_large"}[v.Status]
		if got.Error != wantErr || got.DecisionID != v.DecisionID || got.Reason != v.Reason.String() || got.Status != v.Status {
			t.Errorf("body %s", body)
		}
	}
}

func TestReasons(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Reasons() {
		s := r.String()
		if s == "unknown" || seen[s] {
			t.Errorf("reason %d named %q", r, s)
		}
		seen[s] = true
	}
	if Reason(200).String() != "unknown" {
		t.Error("out-of-range reason has a name")
	}
}

// BenchmarkEnforcerCheck checks 10,000 distinct clients against lists of a
// few hundred entries (1 in 50 clients is listed), with and without the
// verdict cache, and with and without 1,000 CIDR ranges of 17 prefix lengths
// (IPv4 and IPv6) on the block list, which hold none of the clients.
func BenchmarkEnforcerCheck(b *testing.B) {
	fp := newTestFingerprinter(b, testKey)
	const clients = 10000
	reqs := make([]Request, clients)
	api := &API{Mode: ModeBlock, MaxBodyBytes: 1 << 20}
	for i := range reqs {
		reqs[i] = Request{API: api, Method: "GET", Path: "/orders", ContentLength: -1, Identities: Identities{
			KindIP:       fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255),
			KindToken:    fp.Fingerprint(fmt.Sprint("token-", i)),
			KindUsername: fmt.Sprint("user-", i),
		}}
	}
	for _, ranges := range []int{0, 1000} {
		allow, block := NewLists()
		for i := 0; i < clients; i += 50 {
			block.Put(Entry{Kind: KindIP, Value: reqs[i].Identities[KindIP]})
		}
		for i := 0; i < 100; i++ {
			block.Put(Entry{Kind: KindToken, Value: fp.Fingerprint(fmt.Sprint("elsewhere-", i))})
			allow.Put(Entry{Kind: KindUsername, Value: fmt.Sprint("partner-", i)})
		}
		for i := range ranges {
			v := fmt.Sprintf("%d.%d.%d.0/%d", 11+i%200, i%256, i/256, 12+i%9)
			if i%2 == 1 {
				v = fmt.Sprintf("2001:db8:%x::/%d", i, 40+i%8)
			}
			v, err := NormalizeIP(v)
			if err != nil {
				b.Fatal(err)
			}
			block.Put(Entry{Kind: KindIP, Value: v})
		}
		for _, cache := range []int64{0, 1 << 16} {
			enf := newTestEnforcer(b, allow, block, cache)
			name := fmt.Sprintf("ranges=%d/cache=%d", ranges, cache)
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					enf.Check(&reqs[i%clients], t0)
					i++
				}
			})
			b.Run(name+"/parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := rand.IntN(clients)
					for pb.Next() {
						enf.Check(&reqs[i%clients], t0)
						i++
					}
				})
			})
		}
	}
}

// TestEnforcerForgeableUserNameDoesNotBeatTheBlockList: a user name can be
// claimed by anyone (an unverified JWT, Basic auth without the password), so
// an allow-listed user name lets a request through only when none of its
// identities is blocked.
func TestEnforcerForgeableUserNameDoesNotBeatTheBlockList(t *testing.T) {
	for _, size := range []int64{0, 1000} {
		allow, block := NewLists()
		enf := newTestEnforcer(t, allow, block, size)
		allow.Put(Entry{Kind: KindUsername, Value: "alice"})
		block.Put(Entry{Kind: KindIP, Value: "203.0.113.66"})
		forged := Request{API: &API{Mode: ModeBlock}, Path: "/x", ContentLength: -1,
			Identities: Identities{KindIP: "203.0.113.66", KindUsername: "alice"}}
		if v := enf.Check(&forged, t0); !v.Deny || v.Reason != ReasonBlockList {
			t.Fatalf("cache %d: a blocked IP claiming an allow-listed user name got %+v", size, v)
		}
		alice := Request{API: &API{Mode: ModeBlock}, Path: "/x", ContentLength: -1,
			Identities: Identities{KindIP: "10.0.0.1", KindUsername: "alice"}}
		if v := enf.Check(&alice, t0); v.Reason != ReasonAllowList {
			t.Fatalf("cache %d: alice from a clean IP: %+v", size, v)
		}
		allow.Put(Entry{Kind: KindIP, Value: "203.0.113.66"})
		if v := enf.Check(&forged, t0); v.Reason != ReasonAllowList {
			t.Fatalf("cache %d: an allow-listed IP must beat the block list: %+v", size, v)
		}
	}
}

// TestEnforcerCacheKeyTellsKindsApart: the verdict cache's key and check
// depend on which kind holds a value, so a blocked token's cached verdict
// is never the answer for the same text as a user name.
func TestEnforcerCacheKeyTellsKindsApart(t *testing.T) {
	allow, block := NewLists()
	enf := newTestEnforcer(t, allow, block, 1000)
	seen := map[[2]uint64]Kind{}
	for k := range NumKinds {
		var ids Identities
		ids[k] = "same-text"
		h, c := enf.hash(&ids)
		if other, dup := seen[[2]uint64{h, c}]; dup {
			t.Fatalf("kinds %v and %v share a cache key", other, k)
		}
		seen[[2]uint64{h, c}] = k
	}
	block.Put(Entry{Kind: KindToken, Value: "same-text"})
	api := &API{Mode: ModeBlock}
	for range 2 { // the second time from the cache
		if v := enf.Check(&Request{API: api, ContentLength: -1, Identities: Identities{KindToken: "same-text"}}, t0); !v.Deny {
			t.Fatalf("blocked token allowed: %+v", v)
		}
		if v := enf.Check(&Request{API: api, ContentLength: -1, Identities: Identities{KindUsername: "same-text"}}, t0); v.Refused() {
			t.Fatalf("user name with the blocked token's text refused: %+v", v)
		}
		enf.WaitCache()
	}
}
