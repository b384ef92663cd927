package observe

import "github.com/vigil-project/vigil/detect"
import "time"

// Activity is kept per API at two resolutions: minutes for the last two
// hours and hours for the last week, about 10 KiB an API.
const (
	activityMinutes = 120
	activityHours   = 168
)

type activityBucket struct {
	at                                  int64 // unix minute or hour of the bucket; 0: empty
	requests, c4xx, c5xx, blocked, wblk uint32
}

type activity struct {
	minutes [activityMinutes]activityBucket
	hours   [activityHours]activityBucket
}

func (a *activity) add(t *detect.Transaction) {
	sec := t.Start.Unix()
	if sec <= 0 {
		return // no time: no place on the time line
	}
	for _, ring := range []struct {
		b    []activityBucket
		unit int64
	}{{a.minutes[:], 60}, {a.hours[:], 3600}} {
		at := sec / ring.unit
		b := &ring.b[at%int64(len(ring.b))]
		if b.at != at {
			*b = activityBucket{at: at}
		}
		b.requests++
		switch {
		case t.Blocked:
			b.blocked++
		case t.Status >= 500:
			b.c5xx++
		case t.Status >= 400:
			b.c4xx++
		}
		if t.WouldBlock {
			b.wblk++
		}
	}
}

// ActivityPoint is an API's activity in one step of time.
type ActivityPoint struct {
	Time       time.Time `json:"time"`
	Requests   uint64    `json:"requests"`
	Errors4xx  uint64    `json:"errors_4xx"`
	Errors5xx  uint64    `json:"errors_5xx"`
	Blocked    uint64    `json:"blocked"`
	WouldBlock uint64    `json:"would_block"`
}

// Activity returns an API's activity from since to now in steps of step
// (rounded to whole minutes, or whole hours past the two hours kept by the
// minute), oldest first. An API known but not yet called has a time line
// of zeros.
func (inv *Inventory) Activity(api string, since, now time.Time, step time.Duration) ([]ActivityPoint, time.Duration, bool) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	r, ok := inv.apis[api]
	if !ok {
		return nil, 0, false
	}
	ring, unit := r.activity.minutes[:], int64(60)
	if now.Sub(since) > activityMinutes*time.Minute || step >= time.Hour {
		ring, unit = r.activity.hours[:], 3600
	}
	perStep := max(int64(step/time.Second)/unit, 1)
	step = time.Duration(perStep*unit) * time.Second
	from, to := max(since.Unix(), 0)/unit, max(now.Unix(), 0)/unit
	if max := int64(len(ring)); to-from >= max {
		from = to - max + 1
	}
	from -= from % perStep
	out := make([]ActivityPoint, 0, (to-from)/perStep+1)
	for s := from; s <= to; s += perStep {
		p := ActivityPoint{Time: time.Unix(s*unit, 0).UTC()}
		for u := s; u < s+perStep && u <= to; u++ {
			b := ring[u%int64(len(ring))]
			if b.at != u {
				continue
			}
			p.Requests += uint64(b.requests)
			p.Errors4xx += uint64(b.c4xx)
			p.Errors5xx += uint64(b.c5xx)
			p.Blocked += uint64(b.blocked)
			p.WouldBlock += uint64(b.wblk)
		}
		out = append(out, p)
	}
	return out, step, true
}
