package cluster

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// listEntry is a list entry as stored in Redis: absolute times, the kind
// by name. Secret kinds' values are fingerprints already.
type listEntry struct {
	Kind      string    `json:"kind"`
	Value     string    `json:"value"`
	Reason    string    `json:"reason,omitempty"`
	AttackID  string    `json:"attack_id,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

func encodeEntry(e detect.Entry) string {
	b, _ := json.Marshal(listEntry{Kind: e.Kind.String(), Value: e.Value, Reason: e.Reason,
		AttackID: e.AttackID, CreatedAt: e.CreatedAt, ExpiresAt: e.ExpiresAt})
	return string(b)
}

func decodeEntry(s string) (detect.Entry, error) {
	var j listEntry
	if err := json.Unmarshal([]byte(s), &j); err != nil {
		return detect.Entry{}, err
	}
	k, err := detect.ParseKind(j.Kind)
	if err != nil {
		return detect.Entry{}, err
	}
	if j.Value == "" {
		return detect.Entry{}, fmt.Errorf("%s entry without a value", j.Kind)
	}
	return detect.Entry{Kind: k, Value: j.Value, Reason: j.Reason, AttackID: j.AttackID,
		CreatedAt: j.CreatedAt, ExpiresAt: j.ExpiresAt}, nil
}

// entryField is an entry's field in its list's hash: "kind:value" (kind
// names hold no colon; values may).
func entryField(k detect.Kind, value string) string { return k.String() + ":" + value }

func parseField(f string) (detect.Kind, string, error) {
	name, value, ok := strings.Cut(f, ":")
	if !ok || value == "" {
		return 0, "", fmt.Errorf("bad list field %q", f)
	}
	k, err := detect.ParseKind(name)
	return k, value, err
}

// sharedList is one list shared with the cluster.
type sharedList struct {
	c     *Cluster
	kind  string // "list:block"
	l     *detect.List
	inner detect.ListJournal // the local journal (bbolt); nil: none
}

// PutEntry journals a local change, then queues it for the cluster.
func (s *sharedList) PutEntry(e detect.Entry) error {
	if s.inner != nil {
		if err := s.inner.PutEntry(e); err != nil {
			return err
		}
	}
	s.c.enqueue(change{kind: s.kind, op: OpPut, field: entryField(e.Kind, e.Value), value: encodeEntry(e), expires: e.ExpiresAt})
	return nil
}

// DeleteEntry journals a local removal, then queues it for the cluster.
func (s *sharedList) DeleteEntry(k detect.Kind, value string) error {
	if s.inner != nil {
		if err := s.inner.DeleteEntry(k, value); err != nil {
			return err
		}
	}
	s.c.enqueue(change{kind: s.kind, op: OpDelete, field: entryField(k, value)})
	return nil
}

// ShareList shares a list with the cluster: name is "block" or "allow", l
// the list the enforcer reads, j its local journal (the bbolt store's
// ListJournal(name); nil: none). It replaces l's journal: every Store and
// Remove on l (admin API, detection, decoys) is journaled through j, then
// queued for Redis; changes of other replicas are journaled through j and
// put on l, never published again. Call it after the list was restored from
// the local store, before Run.
//
// Reconciling: the first load from Redis merges: local entries Redis lacks
// are published (a replica that ran alone brings its list), unless the
// cluster deleted them after they were created (a tombstone: an entry
// removed while this replica was away stays removed). Later loads (every
// ReconcileInterval, after Redis came back) make the list Redis' copy,
// except entries changed locally since the load began (not yet written, or
// written meanwhile).
func (c *Cluster) ShareList(name string, l *detect.List, j detect.ListJournal) {
	s := &sharedList{c: c, kind: "list:" + name, l: l, inner: j}
	l.SetJournal(s)
	c.register(&shared{
		kind:  s.kind,
		hash:  c.setKey(s.kind),
		apply: s.apply,
		load:  s.load,
		local: s.local,
	})
}

// apply applies a change of another replica.
func (s *sharedList) apply(op, field string, value []byte) {
	switch op {
	case OpPut:
		e, err := decodeEntry(string(value))
		if err != nil {
			s.c.countErr("decode", err)
			return
		}
		if e.Expired(s.c.now()) {
			return
		}
		s.put(e)
	case OpDelete:
		k, v, err := parseField(field)
		if err != nil {
			s.c.countErr("decode", err)
			return
		}
		s.del(k, v)
	}
}

// put applies an entry of the cluster: enforced at once, journaled by the
// journal goroutine (a crash in between loses nothing: Redis holds it and
// the next start loads it), so that the local journal's syncs never delay
// enforcement nor the following of changes.
func (s *sharedList) put(e detect.Entry) {
	s.l.Put(e)
	if s.inner != nil {
		s.c.journal(func() {
			if err := s.inner.PutEntry(e); err != nil {
				s.c.log.Error().Err(err).Str("list", s.kind).Msg("a change of another replica not journaled")
			}
		})
	}
}

func (s *sharedList) del(k detect.Kind, v string) {
	s.l.Delete(k, v)
	if s.inner != nil {
		s.c.journal(func() {
			if err := s.inner.DeleteEntry(k, v); err != nil {
				s.c.log.Error().Err(err).Str("list", s.kind).Msg("a removal by another replica not journaled")
			}
		})
	}
}

// load reconciles the list with Redis' copy (see ShareList). It returns the
// fields of expired or unreadable entries, to prune from the hash.
func (s *sharedList) load(all map[string]string, first bool, since time.Time, tombs map[string]int64) []string {
	now := s.c.now()
	var prune []string
	remote := make(map[string]detect.Entry, len(all))
	for f, v := range all {
		e, err := decodeEntry(v)
		if err != nil || entryField(e.Kind, e.Value) != f {
			s.c.countErr("decode", fmt.Errorf("list field %q", f))
			prune = append(prune, f)
			continue
		}
		if e.Expired(now) {
			prune = append(prune, f)
			continue
		}
		remote[f] = e
	}
	local := make(map[string]detect.Entry)
	for _, e := range s.l.Entries(now) {
		local[entryField(e.Kind, e.Value)] = e
	}
	for f, e := range remote {
		if le, ok := local[f]; ok && sameEntry(le, e) {
			continue
		}
		if s.c.outbox.changedSince(s.kind, f, since) {
			continue
		}
		s.put(e)
	}
	for f, e := range local {
		if _, ok := remote[f]; ok {
			continue
		}
		switch {
		case s.c.outbox.changedSince(s.kind, f, since):
			// Changed here since the read: the change decides.
		case first && !deletedAfter(tombs, f, e.CreatedAt):
			// Brought by a replica that ran alone, or made while Redis
			// was unreachable and the outbox lost it.
			s.c.enqueue(change{kind: s.kind, op: OpPut, field: f, value: encodeEntry(e), expires: e.ExpiresAt})
		default:
			// Deleted by another replica (while this one was away, or an
			// event this one missed).
			s.del(e.Kind, e.Value)
		}
	}
	return prune
}

// deletedAfter reports whether the cluster deleted field at or after t
// (an entry without a creation time: deleted at all).
func deletedAfter(tombs map[string]int64, field string, t time.Time) bool {
	at, ok := tombs[field]
	return ok && (t.IsZero() || at >= t.UnixMilli())
}

func sameEntry(a, b detect.Entry) bool {
	return a.Kind == b.Kind && a.Value == b.Value && a.Reason == b.Reason && a.AttackID == b.AttackID &&
		a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

// local lists the live entries, to re-seed Redis.
func (s *sharedList) local() []change {
	entries := s.l.Entries(s.c.now())
	out := make([]change, 0, len(entries))
	for _, e := range entries {
		out = append(out, change{kind: s.kind, op: OpPut, field: entryField(e.Kind, e.Value), value: encodeEntry(e), expires: e.ExpiresAt})
	}
	return out
}
