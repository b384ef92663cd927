package scenario

import (
	"cmp"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// gen is the state of one generation: the records so far, the identities
// benign traffic used, and the allocators that keep every identity unique.
type gen struct {
	cfg           Config
	trainEnd, end time.Time
	peaks         []peak

	records recordStore
	benign  idSet
	secrets map[string]struct{}
	users   int // user names handed out
	leaked  int // breached e-mail addresses handed out

	benignIPs, serverIPs, attackIPs ipRange
	// attackNets hands out the /24 networks of distributed attackers.
	attackNets ipRange

	// pop names the population of every benign identity; curPop is the one
	// being generated ("" once attackers are).
	pop    map[Identity]string
	curPop string
	// ext are the benign extremes stealthy attackers are set from.
	ext *Extremes
}

func newGen(cfg Config) *gen {
	g := &gen{
		cfg:      cfg,
		trainEnd: cfg.Start.Add(cfg.TrainingDuration),
		end:      cfg.Start.Add(cfg.TrainingDuration + cfg.AttackDuration),
		benign:   idSet{},
		secrets:  map[string]struct{}{},
		// Disjoint ranges: home and carrier addresses, data-centre and
		// corporate addresses, attackers.
		benignIPs: newIPRange("100.64.0.0/10", 7919),
		serverIPs: newIPRange("34.64.0.0/12", 4099),
		attackIPs: newIPRange("45.128.0.0/10", 6151),
		// /24 networks (the range's addresses shifted by 8 bits).
		attackNets: newIPRange("0.91.240.0/22", 97),
		pop:        map[Identity]string{},
	}
	// Peak hours: a flash sale in training and one during the attacks,
	// fifteen minutes at three times the usual arrival of sessions.
	for _, at := range []time.Time{
		cfg.Start.Add(cfg.TrainingDuration * 2 / 5),
		g.trainEnd.Add(cfg.AttackDuration * 2 / 5),
	} {
		g.peaks = append(g.peaks, peak{from: at, to: at.Add(15 * time.Minute), factor: 3})
	}
	return g
}

// peak multiplies the arrival of user sessions within [from, to).
type peak struct {
	from, to time.Time
	factor   float64
}

const maxPeakFactor = 3

// load is the relative arrival rate of user sessions at t, at most
// maxPeakFactor: a diurnal curve (quiet night, busiest mid-afternoon) times
// the peak in progress.
func (g *gen) load(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	return (0.25 + 0.75*math.Max(0, math.Sin(math.Pi*(h-6)/16))) * g.peakFactor(t)
}

// peakFactor is the factor of the peak t falls in, or 1.
func (g *gen) peakFactor(t time.Time) float64 {
	for _, p := range g.peaks {
		if !t.Before(p.from) && t.Before(p.to) {
			return p.factor
		}
	}
	return 1
}

// inPeak reports whether t falls in a peak.
func (g *gen) inPeak(t time.Time) bool { return g.peakFactor(t) > 1 }

// arrivals returns the times of a Poisson process of perHour events per hour
// times load(t), within [from, to), by thinning.
func (g *gen) arrivals(r *rand.Rand, perHour float64, from, to time.Time) []time.Time {
	if perHour <= 0 {
		return nil
	}
	maxRate := perHour * maxPeakFactor / 3600 // per second
	var out []time.Time
	t := from
	for {
		t = t.Add(seconds(r.ExpFloat64() / maxRate))
		if !t.Before(to) {
			return out
		}
		if r.Float64()*maxPeakFactor < g.load(t) {
			out = append(out, t)
		}
	}
}

// rngFor returns the random source of one actor: independent of every other
// actor, so that changing one population leaves the others as they were.
func (g *gen) rngFor(stream string, i int) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(stream))
	return rand.New(rand.NewPCG(g.cfg.Seed, h.Sum64()^uint64(i)*0x9e3779b97f4a7c15))
}

// secret returns a fresh opaque credential: prefix and n base-62 characters,
// never handed out before in this scenario.
func (g *gen) secret(r *rand.Rand, prefix string, n int) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, len(prefix)+n)
	for {
		copy(b, prefix)
		for i := len(prefix); i < len(b); i++ {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		s := string(b)
		if _, dup := g.secrets[s]; !dup {
			g.secrets[s] = struct{}{}
			return s
		}
	}
}

var (
	firstNames = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yara", "zoe", "mohamed", "wei", "priya", "lucas", "sofia", "kenji", "amara", "mateo", "ines"}
	lastNames  = []string{"smith", "martin", "garcia", "muller", "rossi", "nguyen", "kim", "silva", "dubois", "kowalski", "jensen", "tanaka", "okafor", "novak", "haddad", "patel", "ivanova", "murphy", "lopez", "berg"}
)

// username returns a user name no one else in the scenario has.
func (g *gen) username(r *rand.Rand) string {
	g.users++
	return firstNames[r.IntN(len(firstNames))] + "." + lastNames[r.IntN(len(lastNames))] + itoa(g.users)
}

// ipRange hands out distinct addresses of a prefix in a scattered order
// (index times an odd stride, modulo the size of the range).
type ipRange struct {
	base   uint32
	mask   uint32
	stride uint32
	next   uint32
}

func newIPRange(prefix string, stride uint32) ipRange {
	p := netip.MustParsePrefix(prefix)
	b := p.Addr().As4()
	return ipRange{
		base:   uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]),
		mask:   1<<(32-p.Bits()) - 1,
		stride: stride | 1,
	}
}

func (p *ipRange) addr() string {
	p.next++
	if p.next > p.mask {
		panic("scenario: address range exhausted") // sizes are far below any range
	}
	v := p.base | (p.next*p.stride)&p.mask
	if v&0xff == 0 || v&0xff == 0xff { // skip network-looking addresses
		return p.addr()
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
}

// idSet collects identities.
type idSet map[Identity]struct{}

func (s idSet) add(kind, raw string) {
	if raw != "" {
		s[Identity{Kind: kind, Raw: raw}] = struct{}{}
	}
}

// addHeaders adds the identities request headers carry, read the way the
// scenario's identity sources say (see the README).
func (s idSet) addHeaders(h map[string]string) { headerIdentities(h, s.add) }

// headerIdentities calls fn with each identity request headers carry.
func headerIdentities(h map[string]string, fn func(kind, raw string)) {
	if v, ok := strings.CutPrefix(h[HeaderToken], "Bearer "); ok {
		fn(KindToken, v)
	}
	fn(KindAPIKey, h[HeaderAPIKey])
	if v, ok := strings.CutPrefix(h["cookie"], SessionCookie+"="); ok {
		fn(KindCookie, v)
	}
	fn(KindUsername, h[HeaderUsername])
}

// client sends requests from one address with one set of headers. The
// identities it uses are added to its owner's set when a call carries them,
// so that a set holds exactly the identities found in the records.
type client struct {
	g     *gen
	owner idSet
	pop   string // the benign population, or ""
	ip    string
	hdr   map[string]string
	dirty bool // ip or hdr changed since the last call
}

func (g *gen) client(owner idSet, ip string, hdr map[string]string) *client {
	return &client{g: g, owner: owner, pop: g.curPop, ip: ip, hdr: hdr, dirty: true}
}

// note adds an identity to the client's owner, and its population.
func (c *client) note(kind, raw string) {
	if raw == "" {
		return
	}
	c.owner.add(kind, raw)
	if c.pop != "" {
		id := Identity{Kind: kind, Raw: raw}
		if _, ok := c.g.pop[id]; !ok {
			c.g.pop[id] = c.pop
		}
	}
}

func (c *client) setIP(ip string) {
	if ip != c.ip {
		c.ip, c.dirty = ip, true
	}
}

func (c *client) setHeaders(h map[string]string) { c.hdr, c.dirty = h, true }

// send records one call at t. Calls at or after the end of the scenario
// are not made: traffic stops there.
func (c *client) send(t time.Time, k call) { c.sendBody(t, k, "", "") }

// sendBody records one call with its request body, and the user name typed
// into it (a login's), an identity of the client's owner.
func (c *client) sendBody(t time.Time, k call, body, name string) {
	if !t.Before(c.g.end) {
		return
	}
	if c.dirty {
		c.note(KindIP, c.ip)
		headerIdentities(c.hdr, c.note)
		c.dirty = false
	}
	c.note(KindUsername, name)
	c.g.records.add(detect.Record{
		Time: t.Truncate(time.Millisecond), Method: k.method, Authority: Host, Path: k.path,
		Status: k.status, ClientIP: c.ip, RequestHeaders: c.hdr,
		RequestBytes: k.req, ResponseBytes: k.resp, DurationMS: math.Round(k.ms*10) / 10,
		RequestBody: body,
	})
}

// recordStore holds records in fixed-size chunks, so that storing them
// never copies the ones already stored.
type recordStore struct {
	chunks [][]detect.Record
	n      int
}

const chunkSize = 1 << 14

func (s *recordStore) add(r detect.Record) {
	if s.n%chunkSize == 0 {
		s.chunks = append(s.chunks, make([]detect.Record, 0, chunkSize))
	}
	last := &s.chunks[len(s.chunks)-1]
	*last = append(*last, r)
	s.n++
}

func (s *recordStore) len() int { return s.n }

func (s *recordStore) at(i int) *detect.Record { return &s.chunks[i/chunkSize][i%chunkSize] }

// sorted returns every record ordered by time, records of equal time in the
// order they were stored.
func (s *recordStore) sorted() []detect.Record {
	type key struct {
		t int64
		i int32
	}
	keys := make([]key, s.n)
	for i := range keys {
		keys[i] = key{s.at(i).Time.UnixNano(), int32(i)}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmp.Compare(a.t, b.t); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})
	out := make([]detect.Record, s.n)
	for j, k := range keys {
		out[j] = *s.at(int(k.i))
	}
	return out
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// between returns a uniform value in [lo, hi).
func between(r *rand.Rand, lo, hi float64) float64 { return lo + r.Float64()*(hi-lo) }

// durBetween returns a uniform duration in [lo, hi).
func durBetween(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

// bytesBetween returns a uniform size in [lo, hi].
func bytesBetween(r *rand.Rand, lo, hi int64) int64 { return lo + r.Int64N(hi-lo+1) }

// lognormal returns a log-normal value with the given median, clamped to
// [lo, hi].
func lognormal(r *rand.Rand, median, sigma, lo, hi float64) float64 {
	return math.Min(hi, math.Max(lo, median*math.Exp(sigma*r.NormFloat64())))
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// chance reports true with probability p.
func chance(r *rand.Rand, p float64) bool { return r.Float64() < p }
