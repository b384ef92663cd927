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
// A state gets them (longTerm, 168 bytes behind stateExtra) only once its
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
	numLT
)

// ltOf maps the long window's counters to the long-term ones (-1: none).
var ltOf = [numCounters]int{cRequests: ltRequests, cErrors: ltErrors, cFailed: -1, cLoginFail: ltLoginFail, cDeletes: ltDeletes}

// longTerm is the hour and day windows of one identity. Counters saturate
// at 2^32 - 1.
type longTerm struct {
	hourAt int32 // the newest hour bucket: time / hourBucket
	dayAt  int32 // the current day epoch: time / dayWindow
	hour   [hourBuckets][numLT]uint32
	day    [2][numLT]uint32 // [0] the current epoch, [1] the previous
}

const (
	hourBucket  = 10 * time.Minute
	hourBuckets = int(hourWindow / hourBucket)
)

// advance moves both windows to now (never back).
func (l *longTerm) advance(now int64) {
	if h := now / int64(hourBucket); h > int64(l.hourAt) {
		for i := int64(l.hourAt) + 1; i <= h && i <= int64(l.hourAt)+int64(hourBuckets); i++ {
			l.hour[i%int64(hourBuckets)] = [numLT]uint32{}
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
// window, the identity's whole history.
func (s *identityState) longTerm(now int64) *longTerm {
	if s.extra != nil && s.extra.lt != nil {
		l := s.extra.lt
		l.advance(now)
		return l
	}
	if s.first == 0 || now-s.first < int64(ltAfter) || s.prealloc {
		return nil
	}
	l := new(longTerm)
	l.advance(now)
	for i := range s.long {
		for c, n := range s.long[i] {
			if ltOf[c] >= 0 {
				l.add(ltOf[c], uint64(n))
			}
		}
		l.add(ltBytes, uint64(s.longBytes[i]))
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
		for lc, x := range ltOf {
			if x == c {
				return s.longSum(lc)
			}
		}
		return 0
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
