package detect

import (
	"fmt"
	"hash/maphash"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Entry is one block or allow list entry.
type Entry struct {
	Kind      Kind
	Value     string // IP, user name, or fingerprint for secret kinds
	Reason    string
	AttackID  string // the attack that put the identity here, if any
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
}

// Expired reports whether the entry has expired at now.
func (e *Entry) Expired(now time.Time) bool {
	return !e.ExpiresAt.IsZero() && !now.Before(e.ExpiresAt)
}

const listShards = 64

// List is a set of identities with a reason and an expiry, read on every
// request. It is sharded so that readers never contend on one lock, and every
// change bumps a generation shared with the other list, which invalidates
// cached verdicts at once.
type List struct {
	journal ListJournal
	seed    maphash.Seed
	gen     *atomic.Uint64
	counts  [numKinds]atomic.Int64
	shards  [listShards]listShard
}

type listShard struct {
	mu sync.RWMutex
	m  map[listKey]Entry
}

type listKey struct {
	kind  Kind
	value string
}

// NewLists returns an allow list and a block list that share one generation
// counter.
func NewLists() (allow, block *List) {
	gen := new(atomic.Uint64)
	return newList(gen), newList(gen)
}

func newList(gen *atomic.Uint64) *List {
	l := &List{seed: maphash.MakeSeed(), gen: gen}
	for i := range l.shards {
		l.shards[i].m = make(map[listKey]Entry)
	}
	return l
}

// Generation changes whenever either list of the pair changes.
func (l *List) Generation() uint64 { return l.gen.Load() }

func (l *List) shard(value string) *listShard {
	return &l.shards[maphash.String(l.seed, value)%listShards]
}

// Lookup returns the live entry for an identity.
func (l *List) Lookup(k Kind, value string, now time.Time) (Entry, bool) {
	if value == "" || l.counts[k].Load() == 0 {
		return Entry{}, false
	}
	s := l.shard(value)
	s.mu.RLock()
	e, ok := s.m[listKey{k, value}]
	s.mu.RUnlock()
	if !ok || e.Expired(now) {
		return Entry{}, false
	}
	return e, true
}

// Match returns the first live entry matching any of ids.
func (l *List) Match(ids *Identities, now time.Time) (Entry, bool) {
	return l.matchKinds(ids, now, numKinds)
}

// matchKinds is Match leaving out one kind (numKinds: none).
func (l *List) matchKinds(ids *Identities, now time.Time, skip Kind) (Entry, bool) {
	for k := range numKinds {
		if k == skip {
			continue
		}
		if e, ok := l.Lookup(k, ids[k], now); ok {
			return e, true
		}
	}
	return Entry{}, false
}

// ListJournal keeps a list's changes durably. Store and Remove call it
// before changing the list, so a change acknowledged to its author survives
// a crash.
type ListJournal interface {
	PutEntry(e Entry) error
	DeleteEntry(k Kind, value string) error
}

// SetJournal makes Store and Remove durable through j.
func (l *List) SetJournal(j ListJournal) { l.journal = j }

// Store journals an entry, then puts it on the list.
func (l *List) Store(e Entry) error {
	if l.journal != nil {
		if err := l.journal.PutEntry(e); err != nil {
			return fmt.Errorf("store %s entry: %w", e.Kind, err)
		}
	}
	l.Put(e)
	return nil
}

// Remove journals the removal of an entry, then removes it, and reports
// whether it was there.
func (l *List) Remove(k Kind, value string) (bool, error) {
	if l.journal != nil {
		if err := l.journal.DeleteEntry(k, value); err != nil {
			return false, fmt.Errorf("remove %s entry: %w", k, err)
		}
	}
	return l.Delete(k, value), nil
}

// Put adds or replaces an entry in memory only. The value must already be
// normalised.
func (l *List) Put(e Entry) {
	s := l.shard(e.Value)
	key := listKey{e.Kind, e.Value}
	s.mu.Lock()
	if _, ok := s.m[key]; !ok {
		l.counts[e.Kind].Add(1)
	}
	s.m[key] = e
	s.mu.Unlock()
	l.gen.Add(1)
}

// Delete removes an entry and reports whether it was there.
func (l *List) Delete(k Kind, value string) bool {
	s := l.shard(value)
	key := listKey{k, value}
	s.mu.Lock()
	_, ok := s.m[key]
	if ok {
		delete(s.m, key)
		l.counts[k].Add(-1)
	}
	s.mu.Unlock()
	if ok {
		l.gen.Add(1)
	}
	return ok
}

// Sweep removes the entries expired at now and returns how many it removed.
// Expired entries are already ignored by Lookup; Sweep only frees memory.
func (l *List) Sweep(now time.Time) int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for key, e := range s.m {
			if e.Expired(now) {
				delete(s.m, key)
				l.counts[key.kind].Add(-1)
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// Entries returns the live entries, sorted by kind then value.
func (l *List) Entries(now time.Time) []Entry {
	var out []Entry
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.RLock()
		for _, e := range s.m {
			if !e.Expired(now) {
				out = append(out, e)
			}
		}
		s.mu.RUnlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Value < out[j].Value
	})
	return out
}

// Len returns the number of entries, expired ones not yet swept included.
func (l *List) Len() int {
	n := int64(0)
	for i := range l.counts {
		n += l.counts[i].Load()
	}
	return int(n)
}
