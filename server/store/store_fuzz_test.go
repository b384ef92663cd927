package store

import (
	"encoding/json"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vigil-project/vigil/decoy"
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/detect/observe"
)

// storedBuckets are the buckets whose values the store decodes, each with
// the key the store writes a value under.
var storedBuckets = []struct{ bucket, key string }{
	{"list:block", "\x01\x00192.0.2.1"},
	{"list:allow", "\x02\x00fp:00"},
	{"attacks", "\x00\x00\x00\x00\x00\x00\x00\x01a1"},
	{"models", "shop"},
	{"forensics", "ip\x00192.0.2.1"},
	{"honeytokens", "fp:01"},
	{"decoy_hits", "shop\x00/.env"},
	{"meta", "inventory"},
}

// FuzzStoredValues writes an arbitrary value where the store keeps each kind
// of record (a file edited by hand, a disk error, an older or newer Vigil)
// and loads everything back as vigil serve does at start-up, handing what
// decodes to its consumers (lists, attack store, inventory, forensics, the
// engine's model restore): an error or a value, never a panic.
func FuzzStoredValues(f *testing.F) {
	seed := func(i int, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
	}
	until := t0.Add(time.Hour)
	seed(0, entryJSON{Kind: "ip", Value: "192.0.2.1", Reason: "a", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)})
	seed(1, entryJSON{Kind: "token", Value: "fp:00", Reason: "b", CreatedAt: t0, AttackID: "x1"})
	seed(2, &detect.Attack{ID: "a1", Type: detect.AttackProbing, API: "shop", DetectedAt: t0, BlockedUntil: &until,
		Variables: []detect.VariableValue{{Name: "not_found_10m", Observed: 80, Tn: 5, Tx: 20, DeviationPct: 300}}})
	seed(3, &behaviour.ModelDoc{API: "shop"})
	seed(4, &observe.ForensicRecord{Kind: "ip", Value: "192.0.2.1", FirstSeen: t0, LastSeen: t0, Total: 3,
		Methods: map[string]int64{"GET": 3}, Hours: map[int64]int64{t0.Unix() / 3600: 3}})
	seed(5, &decoy.Honeytoken{Kind: "api_key", API: "shop", Path: "/.env", MintedAt: t0, HitID: "a2"})
	seed(6, decoy.Stats{API: "shop", Path: "/.env", Hits: 2})
	seed(7, []observe.APIStats{{Name: "shop", BasePath: "/shop", Hosts: []string{"*"}, Mode: "block", Requests: 9}})
	f.Add(uint8(3), []byte(`{"api":"shop","variables":[{"name":"requests_per_min","kind":"ip","tn":-1,"tx":1e308}]}`))
	f.Add(uint8(4), []byte(`{"kind":"ip","value":"x","hours":{"-9223372036854775808":-1}}`))
	f.Add(uint8(0), []byte(`{"kind":"nonsense"}`))

	s, err := Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	s.db.NoSync = true // durability is not what is fuzzed here
	f.Fuzz(func(t *testing.T, which uint8, value []byte) {
		b := storedBuckets[int(which)%len(storedBuckets)]
		err := s.db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte(b.bucket))
			if err != nil {
				return err
			}
			return bk.Put([]byte(b.key), value)
		})
		if err != nil {
			t.Fatal(err)
		}
		defer s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(b.bucket)).Delete([]byte(b.key)) })

		allow, block := detect.NewLists()
		for name, l := range map[string]*detect.List{"allow": allow, "block": block} {
			entries, _ := s.LoadList(name, t0)
			for _, e := range entries {
				l.Put(e)
			}
		}
		as := detect.NewAttackStore(100)
		attacks, _ := s.LoadAttacks(100)
		for _, a := range attacks {
			as.Load(a)
		}
		as.List(detect.AttackFilter{})
		inv := observe.NewInventory(nil, 10, 10)
		stats, _ := s.LoadInventory()
		inv.Restore(stats)
		fo := observe.NewForensics(10, 0)
		s.LoadForensics(fo.PutOlder)
		s.PruneForensics(fo.Len())
		s.LoadHoneytokens(func(string, *decoy.Honeytoken) {})
		s.LoadDecoyHits()
		// A small engine: its table of first sightings is sized from MaxStates.
		e := behaviour.NewEngine(behaviour.EngineConfig{MaxStates: 1000, APIs: []*detect.API{{Name: "shop", BasePath: "/shop"}}, Store: as})
		models, _ := s.LoadModels()
		for _, d := range models {
			if e.Restore(d) == nil {
				e.Model(d.API)
			}
		}
	})
}
