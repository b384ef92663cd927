package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/vigil-project/vigil/detect"
)

const (
	kindAttacks = "attacks"
	// OpClaim is a new attack record: claimed (SET NX) before it is
	// published, so that replicas crossing a threshold at once make one.
	opClaim = "claim"
	// DefaultClaimTTL is how long a claim holds when the record blocks
	// nothing (a would-block or detected attack).
	DefaultClaimTTL = 10 * time.Minute
	// maxRenames bounds the losers' ids remembered.
	maxRenames = 10000
)

// sharedAttacks shares attack records: GET /v1/attacks on any replica lists
// the cluster's attacks.
type sharedAttacks struct {
	c       *Cluster
	store   *detect.AttackStore
	inner   detect.AttackJournal
	onError func(error)
	lists   []*detect.List

	mu      sync.RWMutex
	remote  map[string]bool      // ids of records received from the cluster
	renames map[string]renamedTo // a lost claim's id → the winner's
}

type renamedTo struct {
	id    string
	until time.Time // the claim's end
	at    time.Time // when the claim was lost
}

// repassFor is how long after a lost claim the list entries are checked
// again for the loser's id: a Store under way when the claim was lost puts
// its entry after the first pass.
const repassFor = 5 * time.Second

// ShareAttacks shares the attack records of store with the cluster. j is
// the store's local journal (the bbolt store; nil: none) and onError hears
// of its failures: it replaces the store's journal. lists are the lists
// whose entries carry attack ids (block, allow).
//
// A new record (Add) is claimed in Redis under its identity, API and type
// (SET p+"claim:{h}:type" id NX GET PX ttl, ttl the block's or
// DefaultClaimTTL): the winner publishes it; a loser drops its record from
// the store and points its list entries' attack id (and reason) to the
// winner's, whose record arrives through the events stream. Decoy records
// (one request each) are published unclaimed. An update (false positive)
// is published again. Records of other replicas are journaled and loaded
// into store; the hash keeps MaxAttacks records, the newest.
func (c *Cluster) ShareAttacks(store *detect.AttackStore, j detect.AttackJournal, onError func(error), lists ...*detect.List) {
	s := &sharedAttacks{c: c, store: store, inner: j, onError: onError, lists: lists,
		remote: map[string]bool{}, renames: map[string]renamedTo{}}
	store.SetJournal(s, onError)
	for _, l := range lists {
		l.SetRewrite(s.rewrite)
	}
	c.mu.Lock()
	c.attacks = s
	c.mu.Unlock()
	c.register(&shared{kind: kindAttacks, hash: c.setKey(kindAttacks), apply: s.apply, load: s.load, local: s.local})
	c.every(s.repass)
}

// PutAttack journals a record made or updated here, then queues it.
func (s *sharedAttacks) PutAttack(a *detect.Attack) error {
	var err error
	if s.inner != nil {
		err = s.inner.PutAttack(a)
	}
	b, jerr := json.Marshal(a)
	if jerr != nil {
		return jerr
	}
	s.mu.RLock()
	remote := s.remote[a.ID]
	s.mu.RUnlock()
	ch := change{kind: kindAttacks, op: OpPut, field: a.ID, value: string(b)}
	if !remote && a.Type != detect.AttackDecoy {
		ch.op = opClaim
		ch.claim = s.c.claimKey(a)
		ch.ttl = DefaultClaimTTL
		if a.BlockedUntil != nil {
			if d := a.BlockedUntil.Sub(s.c.now()); d > time.Second {
				ch.ttl = d
			}
		}
	}
	s.c.enqueue(ch)
	return err
}

// claimKey names an attack's claim: its identity, API and type, hashed (a
// fingerprint or user name never appears in a key) into the hash tag. A
// record only detected (not acted on) claims apart, so that a block never
// merges into a mere detection made before it.
func (c *Cluster) claimKey(a *detect.Attack) string {
	h := sha256.Sum256([]byte(a.API + "\x00" + a.Identity.Kind + "\x00" + a.Identity.Value))
	k := "claim:{" + hex.EncodeToString(h[:8]) + "}:" + string(a.Type)
	if a.Action == detect.ActionDetected {
		k += ":detected"
	}
	return c.Key(k)
}

// rewrite points an entry's attack id that lost its claim to the winner's.
func (s *sharedAttacks) rewrite(e *detect.Entry) {
	if e.AttackID == "" {
		return
	}
	s.mu.RLock()
	w, ok := s.renames[e.AttackID]
	s.mu.RUnlock()
	if ok {
		e.Reason = strings.ReplaceAll(e.Reason, e.AttackID, w.id)
		e.AttackID = w.id
	}
}

// lost handles a claim another replica won.
func (s *sharedAttacks) lost(id, winner string, ttl time.Duration) {
	now := s.c.now()
	s.mu.Lock()
	if len(s.renames) >= maxRenames {
		for k, r := range s.renames {
			if now.After(r.until) || len(s.renames) >= maxRenames {
				delete(s.renames, k)
			}
		}
	}
	s.renames[id] = renamedTo{id: winner, until: now.Add(ttl), at: now}
	s.mu.Unlock()
	s.store.Remove(id)
	s.pass(map[string]bool{id: true})
	s.c.metrics.claims.WithLabelValues("lost").Inc()
}

// pass points the list entries naming a lost claim's id to the winner's.
func (s *sharedAttacks) pass(ids map[string]bool) {
	now := s.c.now()
	for _, l := range s.lists {
		for _, e := range l.Entries(now) {
			if ids[e.AttackID] {
				if err := l.Store(e); err != nil { // rewritten to the winner's id
					s.c.log.Error().Err(err).Msg("list entry of a merged attack not stored")
				}
			}
		}
	}
}

// repass runs pass again, every health interval, for the claims lost
// lately.
func (s *sharedAttacks) repass(context.Context, rueidis.Client) error {
	now := s.c.now()
	ids := map[string]bool{}
	s.mu.RLock()
	for id, r := range s.renames {
		if now.Sub(r.at) < repassFor {
			ids[id] = true
		}
	}
	s.mu.RUnlock()
	if len(ids) > 0 {
		s.pass(ids)
	}
	return nil
}

// rewriteValue points a queued list entry's attack id that lost its claim
// to the winner's, as it is written to Redis; ok is false when it names
// none.
func (s *sharedAttacks) rewriteValue(v string) (string, bool) {
	s.mu.RLock()
	n := len(s.renames)
	s.mu.RUnlock()
	if n == 0 {
		return v, false
	}
	e, err := decodeEntry(v)
	if err != nil {
		return v, false
	}
	id := e.AttackID
	s.rewrite(&e)
	if e.AttackID == id {
		return v, false
	}
	return encodeEntry(e), true
}

func (s *sharedAttacks) apply(op, id string, value []byte) {
	switch op {
	case OpPut:
		a := new(detect.Attack)
		if err := json.Unmarshal(value, a); err != nil || a.ID != id {
			s.c.countErr("decode", err)
			return
		}
		s.mu.Lock()
		s.remote[id] = true
		s.mu.Unlock()
		s.store.Load(a)
		if s.inner != nil {
			s.c.journal(func() {
				if err := s.inner.PutAttack(a); err != nil && s.onError != nil {
					s.onError(err)
				}
			})
		}
	case OpDelete:
		s.store.Remove(id)
	}
}

// load loads the cluster's records this replica lacks or holds otherwise;
// at the first load, publishes the records Redis lacks (a replica that ran
// alone brings its attacks). It prunes the hash to MaxAttacks records.
func (s *sharedAttacks) load(all map[string]string, first bool, since time.Time, _ map[string]int64) []string {
	type rec struct {
		id  string
		at  time.Time
		raw string
	}
	recs := make([]rec, 0, len(all))
	var prune []string
	for id, v := range all {
		var a struct {
			DetectedAt time.Time `json:"detected_at"`
		}
		if err := json.Unmarshal([]byte(v), &a); err != nil {
			prune = append(prune, id)
			continue
		}
		recs = append(recs, rec{id, a.DetectedAt, v})
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].at.After(recs[j].at) })
	if len(recs) > s.c.opts.MaxAttacks {
		for _, r := range recs[s.c.opts.MaxAttacks:] {
			prune = append(prune, r.id)
		}
		recs = recs[:s.c.opts.MaxAttacks]
	}
	// Oldest first, as the store keeps them.
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if la, ok := s.store.Get(r.id); ok {
			if b, _ := json.Marshal(la); string(b) == r.raw {
				continue
			}
		}
		s.apply(OpPut, r.id, []byte(r.raw))
	}
	if first {
		local, _ := s.store.List(detect.AttackFilter{})
		for _, a := range local {
			// Not the records made since the read: their claims decide.
			if _, ok := all[a.ID]; !ok && !s.c.outbox.changedSince(kindAttacks, a.ID, since) {
				b, _ := json.Marshal(a)
				s.c.enqueue(change{kind: kindAttacks, op: OpPut, field: a.ID, value: string(b)})
			}
		}
	}
	return prune
}

func (s *sharedAttacks) local() []change {
	list, _ := s.store.List(detect.AttackFilter{})
	out := make([]change, 0, len(list))
	for _, a := range list {
		b, _ := json.Marshal(a)
		out = append(out, change{kind: kindAttacks, op: OpPut, field: a.ID, value: string(b)})
	}
	return out
}

// writeClaim claims a new record: won (the key was free, or holds this id
// already), the record is written and published; lost, the loser's record
// is merged into the winner's.
func (c *Cluster) writeClaim(ctx context.Context, cl rueidis.Client, ch *change) error {
	winner, err := cl.Do(ctx, cl.B().Set().Key(ch.claim).Value(ch.field).Nx().Get().Px(ch.ttl).Build()).ToString()
	switch {
	case rueidis.IsRedisNil(err):
		winner = ch.field
	case err != nil:
		return err
	}
	c.mu.Lock()
	s := c.attacks
	c.mu.Unlock()
	if winner != ch.field && s != nil {
		s.lost(ch.field, winner, ch.ttl)
		return nil
	}
	r := evalScript(ctx, cl, writeScript, writeScriptSHA, []string{c.setKey(kindAttacks), c.eventsKey(), c.tombKey(kindAttacks)},
		[]string{OpPut, ch.field, ch.value, c.maxlen(), c.replica, kindAttacks})
	if err := r.Error(); err != nil {
		return err
	}
	c.metrics.claims.WithLabelValues("won").Inc()
	return nil
}
