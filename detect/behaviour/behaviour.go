package behaviour

import (
	"github.com/vigil-project/vigil/detect"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Windows of the per-identity state: a short one for rates (1 min in 10 s
// buckets) and a long one for attacks that build slowly (10 min in 1 min
// buckets). Distinct counts use small HyperLogLog sketches over two
// tumbling 5-minute epochs, so they cover the last 5 to 10 minutes.
const (
	shortBucket  = 10 * time.Second
	shortBuckets = 6
	longBucket   = time.Minute
	longBuckets  = 10
	sketchEpoch  = 5 * time.Minute
	// wideEpoch is the epoch of the sketches of where an identity comes
	// from (IPs, user agents): a stolen token used from a new address every
	// few minutes shows only over half an hour or more.
	wideEpoch = 30 * time.Minute
)

// Counters kept per long-window bucket.
const (
	cRequests = iota
	cErrors   // status ≥ 400 other than failed logins, 404 and 405
	cFailed   // 404, 405: paths or methods that do not exist
	cLoginFail
	cDeletes
	numCounters
)

type bucket struct {
	c         [numCounters]uint32
	respBytes uint64
}

// sketchPair is the current and the previous epoch's sketch of one
// variable, with the estimate of their union cached: it is read on every
// request and changes only when a register does.
type sketchPair struct {
	cur, prev hll
	est       float64
	fresh     bool // est is the estimate of cur ∪ prev
}

func (p *sketchPair) add(x uint64) {
	if p.cur.add(x) {
		p.fresh = false
	}
}

func (p *sketchPair) estimate() float64 {
	if !p.fresh {
		u := p.cur
		u.merge(&p.prev)
		p.est, p.fresh = u.estimate(), true
	}
	return p.est
}

// sketches are allocated the first time an identity needs one.
type sketches struct {
	epoch       int64
	wide        int64 // epoch of ips and agents
	failedPaths *sketchPair
	loginUsers  *sketchPair
	ips         *sketchPair
	agents      *sketchPair
	objects     *sketchPair
}

func (s *sketches) rotate(now int64) {
	rotate := func(epoch *int64, e int64, pairs ...*sketchPair) {
		if e == *epoch {
			return
		}
		for _, p := range pairs {
			if p == nil {
				continue
			}
			if e == *epoch+1 {
				p.prev = p.cur
			} else {
				p.prev.reset()
			}
			p.cur.reset()
			p.fresh = false
		}
		*epoch = e
	}
	rotate(&s.epoch, now/int64(sketchEpoch), s.failedPaths, s.loginUsers, s.objects)
	rotate(&s.wide, now/int64(wideEpoch), s.ips, s.agents)
}

func pair(p **sketchPair) *sketchPair {
	if *p == nil {
		*p = new(sketchPair)
	}
	return *p
}

func estimate(p *sketchPair) float64 {
	if p == nil {
		return 0
	}
	return p.estimate()
}

// identityState is what Vigil remembers of one identity on one API: a few
// hundred bytes whatever its traffic.
type identityState struct {
	model *apiModel
	kind  detect.Kind
	id    string

	first, last int64 // unix nanoseconds

	shortHead int64 // index of the newest short bucket (time / shortBucket)
	short     [shortBuckets]uint32
	longHead  int64
	long      [longBuckets]bucket
	sk        sketches

	clientIPs  []string // up to maxClientIPs distinct, for non-IP identities
	lastSample int64    // long bucket index of the last training sample
	// ownMax is the largest value of each variable this identity showed
	// while its API learned: what is normal for this very identity (a
	// nightly batch job, a heavy partner) is not an attack from it.
	ownMax  *[numVars]float32
	flagged *[numTypes]int64
	// attacks counts the attacks acted on (blocked or would-block).
	attacks int
	// strikes holds, per single-call type, the times of its detections
	// not yet acted on (see EngineConfig.BlockAfter).
	strikes *[numTypes][]int64

	// least-recently-seen list of the shard
	prev, next *identityState
	// size is the estimate of the bytes the state holds (bytes) as the
	// shard last accounted for it.
	size uint32
}

const maxClientIPs = 20

// advance moves the windows to now, clearing buckets that went by.
func (s *identityState) advance(now int64) {
	if h := now / int64(shortBucket); h != s.shortHead {
		for i := s.shortHead + 1; i <= h && i <= s.shortHead+shortBuckets; i++ {
			s.short[i%shortBuckets] = 0
		}
		if h > s.shortHead {
			s.shortHead = h
		}
	}
	if h := now / int64(longBucket); h != s.longHead {
		for i := s.longHead + 1; i <= h && i <= s.longHead+longBuckets; i++ {
			s.long[i%longBuckets] = bucket{}
		}
		if h > s.longHead {
			s.longHead = h
		}
	}
	s.sk.rotate(now)
}

func (s *identityState) longSum(c int) float64 {
	var n uint64
	for i := range s.long {
		n += uint64(s.long[i].c[c])
	}
	return float64(n)
}

func (s *identityState) longBytes() float64 {
	var n uint64
	for i := range s.long {
		n += s.long[i].respBytes
	}
	return float64(n)
}

func (s *identityState) shortSum() float64 {
	var n uint64
	for _, v := range s.short {
		n += uint64(v)
	}
	return float64(n)
}

// observe adds one transaction to the state.
func (s *identityState) observe(t *detect.Transaction, now int64, call *callFacts) {
	s.advance(now)
	if s.first == 0 {
		s.first = now
	}
	s.last = now
	s.short[s.shortHead%shortBuckets]++
	b := &s.long[s.longHead%longBuckets]
	b.c[cRequests]++
	b.respBytes += uint64(max(t.ResponseBytes, 0))
	failedLogin := call.login && (t.Status == 401 || t.Status == 403)
	switch {
	case failedLogin:
		b.c[cLoginFail]++
		if s.kind == detect.KindIP || s.kind == detect.KindCookie {
			if u := t.Identities[detect.KindUsername]; u != "" {
				pair(&s.sk.loginUsers).add(hashString(u))
			}
		}
	case t.Status == 404 || t.Status == 405:
		// Paths that do not exist: probing's signal, not an error rate.
		b.c[cFailed]++
		pair(&s.sk.failedPaths).add(hashString(t.Path))
	case t.Status >= 400:
		b.c[cErrors]++
	}
	if t.Method == "DELETE" {
		b.c[cDeletes]++
	}
	if s.kind != detect.KindIP {
		if ip := t.Identities[detect.KindIP]; ip != "" {
			pair(&s.sk.ips).add(hashString(ip))
			s.noteIP(ip)
		}
		if s.kind.Secret() && t.UserAgent != "" {
			pair(&s.sk.agents).add(hashString(t.UserAgent))
		}
	}
	if call.hasObject && t.Method != "DELETE" {
		pair(&s.sk.objects).add(call.object)
	}
}

func (s *identityState) noteIP(ip string) {
	for _, have := range s.clientIPs {
		if have == ip {
			return
		}
	}
	if len(s.clientIPs) < maxClientIPs {
		s.clientIPs = append(s.clientIPs, strings.Clone(ip))
	}
}

// objectKey hashes the endpoint template and the last ID segment of a
// prepared call's path: the object the call reads.
func objectKey(t *detect.Transaction) (uint64, bool) {
	if t.ObjectID() == "" {
		return 0, false
	}
	var d xxhash.Digest
	d.Reset()
	d.WriteString(t.Template)
	d.WriteString("#")
	d.WriteString(t.ObjectID())
	return d.Sum64(), true
}

// beyond reports whether x, the value of v for this identity, passes the
// threshold tx: above tx and the variable's floor, and well above what the
// identity itself did while its API learned.
func (s *identityState) beyond(v varID, x, tx float64) bool {
	if x <= tx || x < varDefs[v].floor {
		return false
	}
	return s.ownMax == nil || x > 1.5*float64(s.ownMax[v])
}
