package behaviour

import (
	"math"
	"time"
)

// Hour and day windows. An attacker who keeps every minute and every ten
// minutes under the benign extremes (under a call a second, a scraper
// reading a few objects a minute) still adds up, over an hour or a day, to
// many times what a heavy user does. These windows count it in a few
// counters, not a list of calls: the hour in six 10-minute buckets (exact
// to ten minutes, so an hourly batch job's runs are not counted twice),
// the day in two tumbling epochs read as a sliding window (the current
// epoch plus the previous one weighted by the share of it still inside
// the window, as sliding-window rate limiters count).
//
// A state gets them (longTerm, 232 bytes behind stateExtra) only once its
// identity has been seen for longer than the 10-minute window: until then
// that window holds its whole history and the hour and day values are its
// sums. Most identities (a botnet's addresses, a short session's token)
// never pay for them.
//
// A variable over a window longer than what the API's model has seen
// (the day variables, for a day after the model started) is measured and
// explained but raises nothing: its thresholds were learned from shorter
// histories than it counts (see armed).
//
// They are per replica: with several replicas sharing windows
// (ShareFraction), a shared state's hour and day values are its own
// replica's part (the 10-minute windows are the cluster's), and they do
// not make a state shared.

const (
	hourWindow = time.Hour
	dayWindow  = 24 * time.Hour
	// ltAfter is how long an identity is seen before it gets its hour and
	// day windows: the long window's span.
	ltAfter = longBuckets * longBucket
)

// Counters of the hour and day windows.
const (
	ltRequests = iota
	ltErrors   // as cErrors
	ltLoginFail
	ltDeletes
	ltBytes // response bytes
	// ltObjectMisses counts reads of an object refused or missing (403,
	// 404): an ID walk's, however slow (walking). The 10-minute window
	// has no counter of them: they count from the hour window's start.
	ltObjectMisses
	numLT
)

// ltOf maps the long window's counters to the long-term ones (-1: none),
// and longOf back (-1: response bytes, which the long window keeps apart,
// and object misses, which it does not count).
var (
	ltOf   = [numCounters]int{cRequests: ltRequests, cErrors: ltErrors, cFailed: -1, cLoginFail: ltLoginFail, cDeletes: ltDeletes}
	longOf = [numLT]int{ltRequests: cRequests, ltErrors: cErrors, ltLoginFail: cLoginFail, ltDeletes: cDeletes, ltBytes: -1, ltObjectMisses: -1}
)

// longTerm is the hour and day windows of one identity. Counters saturate
// at 2^32 - 1.
type longTerm struct {
	hourAt int32 // the newest hour bucket: time / hourBucket
	dayAt  int32 // the current day epoch: time / dayWindow
	hour   [hourBuckets][numLT]uint32
	day    [2][numLT]uint32 // [0] the current epoch, [1] the previous
	// own is the identity's own busiest 10 minutes per counter, from the
	// buckets leaving the hour window (so an hour behind: an attack that
	// starts now does not raise it for an hour), decaying with a half-life
	// of a day: its self-baseline. history counts the buckets folded in.
	own     [numLT]float32
	history uint16
	from    int32 // the first hour bucket of the identity's history
}

// ownDecay halves the self-baseline in a day of 10-minute buckets.
const ownDecay = 0.99520 // 0.5^(1/144)

const (
	hourBucket  = 10 * time.Minute
	hourBuckets = int(hourWindow / hourBucket)
)

// advance moves both windows to now (never back).
func (l *longTerm) advance(now int64) {
	if h := now / int64(hourBucket); h > int64(l.hourAt) {
		for i := int64(l.hourAt) + 1; i <= h && i <= int64(l.hourAt)+int64(hourBuckets); i++ {
			b := &l.hour[i%int64(hourBuckets)]
			if i-int64(hourBuckets) >= int64(l.from) { // a bucket of the identity's history leaves
				for c, n := range b {
					l.own[c] = max(l.own[c]*ownDecay, float32(n))
				}
				l.history = min(l.history+1, math.MaxUint16)
			}
			*b = [numLT]uint32{}
		}
		l.hourAt = int32(h)
	}
	switch e := now / int64(dayWindow); {
	case e <= int64(l.dayAt):
	case e == int64(l.dayAt)+1:
		l.day[1], l.day[0] = l.day[0], [numLT]uint32{}
		l.dayAt = int32(e)
	default:
		l.day = [2][numLT]uint32{}
		l.dayAt = int32(e)
	}
}

func (l *longTerm) add(c int, n uint64) {
	p := &l.hour[int64(l.hourAt)%int64(hourBuckets)][c]
	*p = uint32(min(uint64(*p)+n, math.MaxUint32))
	l.day[0][c] = uint32(min(uint64(l.day[0][c])+n, math.MaxUint32))
}

func (l *longTerm) hourSum(c int) float64 {
	var n uint64
	for i := range l.hour {
		n += uint64(l.hour[i][c])
	}
	return float64(n)
}

// daySum reads the day window's counter c at now: the current epoch plus
// the part of the previous one still inside the window.
func (l *longTerm) daySum(c int, now int64) float64 {
	elapsed := float64(now%int64(dayWindow)) / float64(dayWindow)
	return float64(l.day[0][c]) + float64(l.day[1][c])*(1-elapsed)
}

// longTerm returns the state's hour and day windows advanced to now, made
// when the identity has been seen for longer than ltAfter (nil before, and
// for the scratch state of a first call). A new one starts from the 10-minute
// window, the identity's whole history: call it before the state advances.
func (s *identityState) longTerm(now int64) *longTerm {
	if s.extra != nil && s.extra.lt != nil {
		l := s.extra.lt
		l.advance(now)
		return l
	}
	if s.first == 0 || now-s.first < int64(ltAfter) || s.prealloc() {
		return nil
	}
	l := &longTerm{from: int32(s.first / int64(hourBucket))}
	l.hourAt = l.from
	l.advance(now)
	// Each minute of the long window into its 10-minute bucket (the
	// window ends at longHead, not yet moved to now: it holds every call
	// of the identity so far).
	for j := range int64(longBuckets) {
		minute := int64(s.longHead) - j
		h := minute * int64(longBucket) / int64(hourBucket)
		if minute < 0 || h <= int64(l.hourAt)-int64(hourBuckets) {
			continue
		}
		b := &l.hour[h%int64(hourBuckets)]
		i := minute % longBuckets
		for c, n := range s.long[i] {
			if lc := ltOf[c]; lc >= 0 {
				b[lc] += uint32(n)
				l.day[0][lc] += uint32(n)
			}
		}
		b[ltBytes] = uint32(min(uint64(b[ltBytes])+uint64(s.longBytes[i]), math.MaxUint32))
		l.day[0][ltBytes] = uint32(min(uint64(l.day[0][ltBytes])+uint64(s.longBytes[i]), math.MaxUint32))
	}
	s.ext().lt = l
	return l
}

// ltValue reads counter c of the hour (or day) window: the long window's
// sum while the state has no long-term windows yet.
func (s *identityState) ltValue(c int, day bool) float64 {
	l := s.lt()
	if l == nil {
		if c == ltBytes {
			return s.respBytes()
		}
		return s.longSum(longOf[c])
	}
	if day {
		return l.daySum(c, int64(s.shortHead)*int64(shortBucket))
	}
	return l.hourSum(c)
}

func (s *identityState) lt() *longTerm {
	if s.extra == nil {
		return nil
	}
	return s.extra.lt
}

// span is the window of a slow variable: what the model must have seen
// before the variable raises anything (0 for the others).
func span(v varID) time.Duration {
	switch {
	case v == vRequestsDay || v == vResponseBytesDay:
		return dayWindow
	case varDefs[v].slow:
		return hourWindow
	}
	return 0
}

// armed reports whether variable v may raise an attack on model m at now
// (unix nanoseconds): the model has seen traffic for at least the
// variable's window, or a person set its thresholds. A day variable's
// learned thresholds come from identities seen for less than a day until
// then, and a client that does every hour what it did in training (a
// batch job) would pass them.
func (m *apiModel) armed(v varID, now int64, th threshold) bool {
	sp := span(v)
	return sp == 0 || th.User || now-m.since.Load() >= int64(sp)
}

// ownHour is the most an identity's own history says it does in an hour
// of hour variable v: hourBuckets times its own busiest 10 minutes, once
// an hour of its history has left the window (0 before, and for the
// variables of no counter). What an identity has done for hours is its
// normal: a steady integration that alone on its address makes more calls
// an hour than the address population passes nothing by going on (the
// day window and the self-baselines still judge it); an attacker that
// keeps an hour's pace past its first hour was judged in that hour.
func (s *identityState) ownHour(v varID) float64 {
	c := hourCounter(v)
	l := s.lt()
	if c < 0 || l == nil || int(l.history) < hourBuckets {
		return 0
	}
	return float64(hourBuckets) * float64(l.own[c])
}

// hourCounter is the hour window's counter of hour variable v, -1 for
// the variables of none.
func hourCounter(v varID) int {
	switch v {
	case vRequestsHour:
		return ltRequests
	case vErrorsHour:
		return ltErrors
	case vLoginFailuresHour:
		return ltLoginFail
	case vDeletesHour:
		return ltDeletes
	case vResponseBytesHour:
		return ltBytes
	}
	return -1
}

// paceOfHour scales an hour variable's value x (a count, or distinct
// objects) of an identity seen for age (unix nanoseconds) to a whole hour
// at the same pace (its first ten minutes at least): what the identity
// showed of itself while its API learned, when that was less than an hour
// of it. Other variables are x.
func paceOfHour(v varID, x float64, age int64) float64 {
	if hourCounter(v) < 0 && v != vObjectsHour || age >= int64(hourWindow) {
		return x
	}
	return x * float64(hourWindow) / float64(max(age, int64(hourBucket)))
}

// Self-baselines: an identity that lasts (an API key, a user account)
// and has a steady history is also judged against itself. A partner key
// that reads 40 kB every ten minutes and suddenly reads 1.5 MB, changed:
// the variable is the last 10 minutes over the identity's own busiest 10
// minutes (own), once it has an hour of history beyond its first 10
// minutes and that baseline reaches selfFloor (10 calls, 5 errors,
// 100 KiB): an identity idle for hours whose next session is busy has no
// baseline to break, and is judged by its population alone.
var selfFloor = [numLT]float64{ltRequests: 10, ltErrors: 5, ltBytes: 100 << 10}

// self returns the last 10 minutes' x of counter c over the identity's
// own baseline, 0 while it has none.
func (s *identityState) self(c int, x float64) float64 {
	l := s.lt()
	if l == nil || int(l.history) < hourBuckets || float64(l.own[c]) < selfFloor[c] {
		return 0
	}
	return x / float64(l.own[c])
}
