// Package store keeps Vigil's durable state in one bbolt file under the
// data directory: the block and allow lists, attack records and API models.
// Every write is a bbolt transaction, committed with fsync before it
// returns, so what was acknowledged survives a crash or kill -9, and bbolt's
// copy-on-write pages mean a torn write never corrupts what was committed.
// The consumers (detect.List, detect.AttackStore, the server's model
// snapshots) own the interfaces this package implements.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vigil-project/vigil/decoy"
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/detect/observe"
)

// FileName is the database file in the data directory.
const FileName = "vigil.db"

var (
	bucketAttacks = []byte("attacks")
	bucketModels  = []byte("models")
)

func listBucket(name string) []byte { return []byte("list:" + name) }

// Store is the open database.
type Store struct {
	db *bolt.DB
	// AttackRetention bounds the attack records kept: the newest
	// AttackMax, none older than AttackMaxAge (0: no age limit).
	AttackMax    int
	AttackMaxAge time.Duration
	puts         atomic.Int64
}

// Open opens (or creates) the database in dir. Another process holding it
// is an error after a second, not a hang.
func Open(dir string) (*Store, error) {
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: another process holds it", filepath.Join(dir, FileName))
		}
		return nil, fmt.Errorf("open %s: %w", filepath.Join(dir, FileName), err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketAttacks, bucketModels, listBucket("block"), listBucket("allow")} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("prepare %s: %w", FileName, err)
	}
	return &Store{db: db, AttackMax: 100000}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// entryKey is kind, a zero byte, and the value.
func entryKey(k detect.Kind, value string) []byte {
	return append([]byte{byte(k), 0}, value...)
}

type entryJSON struct {
	Kind      string    `json:"kind"`
	Value     string    `json:"value"`
	Reason    string    `json:"reason"`
	AttackID  string    `json:"attack_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// listJournal is one list's journal.
type listJournal struct {
	s      *Store
	bucket []byte
}

// ListJournal returns the journal of the list named name ("block", "allow").
func (s *Store) ListJournal(name string) detect.ListJournal {
	return &listJournal{s: s, bucket: listBucket(name)}
}

func (j *listJournal) PutEntry(e detect.Entry) error {
	data, err := json.Marshal(entryJSON{Kind: e.Kind.String(), Value: e.Value, Reason: e.Reason, AttackID: e.AttackID, CreatedAt: e.CreatedAt, ExpiresAt: e.ExpiresAt})
	if err != nil {
		return err
	}
	return j.s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(j.bucket).Put(entryKey(e.Kind, e.Value), data)
	})
}

func (j *listJournal) DeleteEntry(k detect.Kind, value string) error {
	return j.s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(j.bucket).Delete(entryKey(k, value))
	})
}

// LoadList returns the live entries of a list, and removes the expired
// ones from the database.
func (s *Store) LoadList(name string, now time.Time) ([]detect.Entry, error) {
	var out []detect.Entry
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(listBucket(name))
		var expired [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var j entryJSON
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("list %s: entry %q: %w", name, k, err)
			}
			kind, err := detect.ParseKind(j.Kind)
			if err != nil {
				return fmt.Errorf("list %s: %w", name, err)
			}
			e := detect.Entry{Kind: kind, Value: j.Value, Reason: j.Reason, AttackID: j.AttackID, CreatedAt: j.CreatedAt, ExpiresAt: j.ExpiresAt}
			if e.Expired(now) {
				expired = append(expired, append([]byte(nil), k...))
				return nil
			}
			out = append(out, e)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range expired {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// attackKey orders attacks by detection time, then ID.
func attackKey(a *detect.Attack) []byte {
	k := make([]byte, 8, 8+len(a.ID))
	binary.BigEndian.PutUint64(k, uint64(a.DetectedAt.UnixNano()))
	return append(k, a.ID...)
}

// PutAttack stores an attack record, and now and then prunes past the
// retention limits.
func (s *Store) PutAttack(a *detect.Attack) error {
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	prune := s.puts.Add(1)%1000 == 0
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAttacks)
		if err := b.Put(attackKey(a), data); err != nil {
			return err
		}
		if prune {
			return s.prune(b, a.DetectedAt)
		}
		return nil
	})
}

// prune deletes the oldest records past AttackMax and those older than
// AttackMaxAge.
func (s *Store) prune(b *bolt.Bucket, now time.Time) error {
	extra := b.Stats().KeyN - s.AttackMax
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		old := s.AttackMaxAge > 0 && len(k) >= 8 && int64(binary.BigEndian.Uint64(k)) < now.Add(-s.AttackMaxAge).UnixNano()
		if extra <= 0 && !old {
			break
		}
		if err := c.Delete(); err != nil {
			return err
		}
		extra--
	}
	return nil
}

// LoadAttacks returns up to max attack records, oldest first.
func (s *Store) LoadAttacks(max int) ([]*detect.Attack, error) {
	var out []*detect.Attack
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAttacks).Cursor()
		for k, v := c.Last(); k != nil && len(out) < max; k, v = c.Prev() {
			a := new(detect.Attack)
			if err := json.Unmarshal(v, a); err != nil {
				return fmt.Errorf("attack %x: %w", k, err)
			}
			out = append(out, a)
		}
		return nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

// PutModels stores model documents (one per API), replacing older ones.
func (s *Store) PutModels(docs []*behaviour.ModelDoc) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketModels)
		for _, d := range docs {
			data, err := json.Marshal(d)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(d.API), data); err != nil {
				return err
			}
		}
		return nil
	})
}

// LoadModels returns the stored model documents.
func (s *Store) LoadModels() ([]*behaviour.ModelDoc, error) {
	var out []*behaviour.ModelDoc
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketModels).ForEach(func(k, v []byte) error {
			d := new(behaviour.ModelDoc)
			if err := json.Unmarshal(v, d); err != nil {
				return fmt.Errorf("model %s: %w", k, err)
			}
			out = append(out, d)
			return nil
		})
	})
	return out, err
}

// The forensic records: bucket forensics holds each identity's record
// (key kind, a zero byte, the value; JSON), and forensics_seen indexes them
// by last sighting (key: last_seen as 8 ordered bytes, then the record's
// key; no value), so that a restart reads the newest first and stops when
// memory is full, and pruning deletes the oldest without reading the rest.
var (
	bucketForensics     = []byte("forensics")
	bucketForensicsSeen = []byte("forensics_seen")
)

// forensicsBatch is how many records one transaction indexes or prunes.
const forensicsBatch = 10000

func forensicKey(kind, value string) []byte { return []byte(kind + "\x00" + value) }

// seenStamp orders a last sighting: unix nanoseconds with the sign bit
// flipped (the zero time first).
func seenStamp(t time.Time) uint64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(time.Unix(0, math.MinInt64+1)):
		return 1
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxUint64
	}
	return uint64(t.UnixNano()) ^ 1<<63
}

func seenKey(stamp uint64, key []byte) []byte {
	k := make([]byte, 8, 8+len(key))
	binary.BigEndian.PutUint64(k, stamp)
	return append(k, key...)
}

var lastSeenField = []byte(`"last_seen":"`)

// storedSeen reads a stored record's last sighting without decoding the
// rest: encoding/json writes it as the only key "last_seen" with a string
// value (a quote inside a string is escaped, the maps' values are numbers
// or objects); anything else is decoded.
func storedSeen(v []byte) (uint64, error) {
	if i := bytes.Index(v, lastSeenField); i >= 0 {
		rest := v[i+len(lastSeenField):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			if t, err := time.Parse(time.RFC3339Nano, string(rest[:j])); err == nil {
				return seenStamp(t), nil
			}
		}
	}
	var r struct {
		LastSeen time.Time `json:"last_seen"`
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return 0, err
	}
	return seenStamp(r.LastSeen), nil
}

// forensicBuckets returns the records' and index's buckets, made if new.
func forensicBuckets(tx *bolt.Tx) (recs, seen *bolt.Bucket, err error) {
	if recs, err = tx.CreateBucketIfNotExists(bucketForensics); err != nil {
		return nil, nil, err
	}
	seen, err = tx.CreateBucketIfNotExists(bucketForensicsSeen)
	return recs, seen, err
}

// unindex removes the index entry of a stored record (an unreadable one
// has none).
func unindex(seen *bolt.Bucket, key, old []byte) error {
	if old == nil {
		return nil
	}
	stamp, err := storedSeen(old)
	if err != nil {
		return nil
	}
	return seen.Delete(seenKey(stamp, key))
}

// PutForensics stores identities' forensic records, replacing older ones.
func (s *Store) PutForensics(recs []*observe.ForensicRecord) error {
	if len(recs) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, seen, err := forensicBuckets(tx)
		if err != nil {
			return err
		}
		for _, r := range recs {
			data, err := json.Marshal(r)
			if err != nil {
				return err
			}
			key := forensicKey(r.Kind, r.Value)
			if err := unindex(seen, key, b.Get(key)); err != nil {
				return err
			}
			if err := b.Put(key, data); err != nil {
				return err
			}
			if err := seen.Put(seenKey(seenStamp(r.LastSeen), key), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteForensics deletes the records of identities memory forgot.
func (s *Store) DeleteForensics(keys []observe.ForensicKey) error {
	if len(keys) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, seen, err := forensicBuckets(tx)
		if err != nil {
			return err
		}
		for _, k := range keys {
			key := forensicKey(k.Kind, k.Value)
			if err := unindex(seen, key, b.Get(key)); err != nil {
				return err
			}
			if err := b.Delete(key); err != nil {
				return err
			}
		}
		return nil
	})
}

// PruneForensics deletes the least recently seen records past keep, and
// returns how many it deleted.
func (s *Store) PruneForensics(keep int) (int, error) {
	if err := s.indexForensics(); err != nil {
		return 0, err
	}
	deleted := 0
	for {
		n, ops, more := 0, 0, false
		err := s.db.Update(func(tx *bolt.Tx) error {
			b, seen, err := forensicBuckets(tx)
			if err != nil {
				return err
			}
			extra := b.Stats().KeyN - max(keep, 0)
			c := seen.Cursor()
			for k, _ := c.First(); k != nil && extra > 0; k, _ = c.First() {
				if ops++; ops > forensicsBatch {
					more = true
					break
				}
				if len(k) < 8 { // not one of ours
					if err := c.Delete(); err != nil {
						return err
					}
					continue
				}
				key := k[8:]
				// An entry left behind by an older version points at a
				// record that has since moved: only the entry goes.
				if v := b.Get(key); v != nil {
					if stamp, err := storedSeen(v); err != nil || stamp == binary.BigEndian.Uint64(k) {
						if err := b.Delete(key); err != nil {
							return err
						}
						extra--
						n++
					}
				}
				if err := c.Delete(); err != nil {
					return err
				}
			}
			return nil
		})
		deleted += n
		if err != nil || !more {
			return deleted, err
		}
	}
}

// indexForensics builds the index of a store written before it existed
// (or by an older version since: the counts differ), a batch at a time.
func (s *Store) indexForensics() error {
	var recs, indexed int
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketForensics); b != nil {
			recs = b.Stats().KeyN
		}
		if b := tx.Bucket(bucketForensicsSeen); b != nil {
			indexed = b.Stats().KeyN
		}
		return nil
	})
	if err != nil || recs == indexed {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketForensicsSeen) != nil {
			if err := tx.DeleteBucket(bucketForensicsSeen); err != nil {
				return err
			}
		}
		_, err := tx.CreateBucket(bucketForensicsSeen)
		return err
	})
	var from []byte
	for err == nil {
		done := true
		err = s.db.Update(func(tx *bolt.Tx) error {
			b, seen, err := forensicBuckets(tx)
			if err != nil {
				return err
			}
			c := b.Cursor()
			k, v := c.First()
			if from != nil {
				k, v = c.Seek(from)
			}
			for n := 0; k != nil; k, v = c.Next() {
				if n == forensicsBatch {
					from, done = append(from[:0], k...), false
					return nil
				}
				stamp, err := storedSeen(v)
				if err != nil {
					return fmt.Errorf("forensics %q: %w", k, err)
				}
				if err := seen.Put(seenKey(stamp, k), nil); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if done {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("index forensics: %w", err)
	}
	return nil
}

// LoadForensics hands the stored forensic records to keep, the most
// recently seen first, one at a time, until keep returns false: a store
// holding more than memory keeps is read no further than memory is full.
func (s *Store) LoadForensics(keep func(*observe.ForensicRecord) bool) error {
	if err := s.indexForensics(); err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		b, seen := tx.Bucket(bucketForensics), tx.Bucket(bucketForensicsSeen)
		if b == nil || seen == nil {
			return nil
		}
		c := seen.Cursor()
		for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			if len(k) < 8 {
				continue
			}
			v := b.Get(k[8:])
			if v == nil {
				continue // an entry left behind
			}
			r := new(observe.ForensicRecord)
			if err := json.Unmarshal(v, r); err != nil {
				return fmt.Errorf("forensics %q: %w", k[8:], err)
			}
			if !keep(r) {
				return nil
			}
		}
		return nil
	})
}

var (
	bucketHoneytokens = []byte("honeytokens")
	bucketDecoyHits   = []byte("decoy_hits")
)

// PutHoneytoken stores a planted honeytoken under its fingerprint.
func (s *Store) PutHoneytoken(fingerprint string, h *decoy.Honeytoken) error {
	data, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketHoneytokens)
		if err != nil {
			return err
		}
		return b.Put([]byte(fingerprint), data)
	})
}

// LoadHoneytokens calls f for every stored honeytoken.
func (s *Store) LoadHoneytokens(f func(fingerprint string, h *decoy.Honeytoken)) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHoneytokens)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			h := new(decoy.Honeytoken)
			if err := json.Unmarshal(v, h); err != nil {
				return fmt.Errorf("honeytoken %s: %w", k, err)
			}
			f(string(k), h)
			return nil
		})
	})
}

// PutDecoyHits stores the decoys' hit counts.
func (s *Store) PutDecoyHits(stats []decoy.Stats) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketDecoyHits)
		if err != nil {
			return err
		}
		for _, st := range stats {
			if st.Hits == 0 {
				continue
			}
			data, err := json.Marshal(st)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(st.API+"\x00"+st.Path), data); err != nil {
				return err
			}
		}
		return nil
	})
}

// LoadDecoyHits returns the stored hit counts.
func (s *Store) LoadDecoyHits() ([]decoy.Stats, error) {
	var out []decoy.Stats
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDecoyHits)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var st decoy.Stats
			if err := json.Unmarshal(v, &st); err != nil {
				return fmt.Errorf("decoy hits %q: %w", k, err)
			}
			out = append(out, st)
			return nil
		})
	})
	return out, err
}

var keyInventory = []byte("inventory")

// PutInventory stores the API inventory (one document).
func (s *Store) PutInventory(apis []observe.APIStats) error {
	data, err := json.Marshal(apis)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("meta"))
		if err != nil {
			return err
		}
		return b.Put(keyInventory, data)
	})
}

// LoadInventory returns the stored API inventory.
func (s *Store) LoadInventory() ([]observe.APIStats, error) {
	var out []observe.APIStats
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("meta"))
		if b == nil {
			return nil
		}
		if v := b.Get(keyInventory); v != nil {
			return json.Unmarshal(v, &out)
		}
		return nil
	})
	return out, err
}
