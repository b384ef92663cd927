package cluster

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/vigil-project/vigil/decoy"
)

// Kinds of the shared decoy state.
const (
	kindHoneytokens = "honeytokens"
	keyDecoyHits    = "decoy:hits" // HASH "api path" → hits of the cluster
	keyDecoyLast    = "decoy:last" // HASH "api path" → last hit, unix ms
)

// sharedTokens shares a trap's honeytokens: planted on one replica, every
// replica knows them, so a honeytoken used anywhere gives its user away.
type sharedTokens struct {
	c     *Cluster
	trap  *decoy.Trap
	inner decoy.HoneytokenJournal // nil: none
}

// PutHoneytoken journals a honeytoken planted here, then queues it for the
// cluster. Its field is the credential's fingerprint: nothing secret.
func (s *sharedTokens) PutHoneytoken(fp string, h *decoy.Honeytoken) error {
	var err error
	if s.inner != nil {
		err = s.inner.PutHoneytoken(fp, h)
	}
	b, _ := json.Marshal(h)
	s.c.enqueue(change{kind: kindHoneytokens, op: OpPut, field: fp, value: string(b)})
	return err
}

func (s *sharedTokens) apply(op, fp string, value []byte) {
	if op != OpPut {
		return
	}
	h := new(decoy.Honeytoken)
	if err := json.Unmarshal(value, h); err != nil || fp == "" {
		s.c.countErr("decode", err)
		return
	}
	s.trap.Restore(fp, h)
	if s.inner != nil {
		s.c.journal(func() {
			if err := s.inner.PutHoneytoken(fp, h); err != nil {
				s.c.log.Error().Err(err).Msg("a honeytoken of another replica not journaled")
			}
		})
	}
}

// load adds the cluster's honeytokens Redis has and this replica lacks, and
// publishes those it has and Redis lacks (honeytokens are never removed).
func (s *sharedTokens) load(all map[string]string, _ bool, _ time.Time, _ map[string]int64) []string {
	local := map[string]*decoy.Honeytoken{}
	s.trap.EachHoneytoken(func(fp string, h *decoy.Honeytoken) { local[fp] = h })
	for fp, v := range all {
		if _, ok := local[fp]; !ok {
			s.apply(OpPut, fp, []byte(v))
		}
	}
	for fp, h := range local {
		if _, ok := all[fp]; !ok {
			b, _ := json.Marshal(h)
			s.c.enqueue(change{kind: kindHoneytokens, op: OpPut, field: fp, value: string(b)})
		}
	}
	return nil
}

func (s *sharedTokens) local() []change {
	var out []change
	s.trap.EachHoneytoken(func(fp string, h *decoy.Honeytoken) {
		b, _ := json.Marshal(h)
		out = append(out, change{kind: kindHoneytokens, op: OpPut, field: fp, value: string(b)})
	})
	return out
}

// ShareDecoys shares a decoy trap's honeytokens and hit counts with the
// cluster. j is the trap's local journal (the bbolt store; nil: none): it
// replaces trap.Journal, so that a honeytoken planted here is journaled,
// then queued for Redis; those planted by other replicas are journaled and
// restored into the trap, never published again. Hit counts are summed
// over the replicas every HealthInterval (Stats shows the cluster's hits).
// Call it after the trap was restored from the local store, before Run.
func (c *Cluster) ShareDecoys(trap *decoy.Trap, j decoy.HoneytokenJournal) {
	s := &sharedTokens{c: c, trap: trap, inner: j}
	trap.Journal = s
	c.register(&shared{kind: kindHoneytokens, hash: c.setKey(kindHoneytokens), apply: s.apply, load: s.load, local: s.local})
	h := &decoyHits{c: c, trap: trap, base: map[string]int64{}}
	c.every(h.sync)
}

// decoyHits sums the decoys' hits over the replicas.
type decoyHits struct {
	c    *Cluster
	trap *decoy.Trap
	mu   sync.Mutex
	base map[string]int64 // per decoy: the count last synchronised
}

// hitsScript adds each decoy's new local hits to the cluster's count, never
// letting it fall below a replica's own view (a Redis that lost its data is
// re-seeded so), moves the last hit forward, and returns every count and
// last hit. KEYS: hits hash, last hash. ARGV: triples of field, new hits,
// local total, last hit (unix ms; 0: none).
const hitsScript = `
for i = 1, #ARGV, 4 do
  local f = ARGV[i]
  local n = redis.call('HINCRBY', KEYS[1], f, ARGV[i+1])
  if n < tonumber(ARGV[i+2]) then
    redis.call('HSET', KEYS[1], f, ARGV[i+2])
  end
  local last = tonumber(ARGV[i+3])
  if last > 0 and last > tonumber(redis.call('HGET', KEYS[2], f) or '0') then
    redis.call('HSET', KEYS[2], f, ARGV[i+3])
  end
end
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}
`

var hitsScriptSHA = scriptSHA(hitsScript)

func decoyField(api, path string) string { return api + " " + path }

func (h *decoyHits) sync(ctx context.Context, cl rueidis.Client) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	stats := h.trap.Stats()
	var args []string
	for _, st := range stats {
		f := decoyField(st.API, st.Path)
		delta := st.Hits - h.base[f]
		if delta <= 0 && st.Hits == 0 {
			continue
		}
		var last int64
		if st.LastHit != nil {
			last = st.LastHit.UnixMilli()
		}
		args = append(args, f, strconv.FormatInt(max(delta, 0), 10), strconv.FormatInt(st.Hits, 10), strconv.FormatInt(last, 10))
	}
	keys := []string{h.c.setKey(keyDecoyHits), h.c.setKey(keyDecoyLast)}
	res, err := evalScript(ctx, cl, hitsScript, hitsScriptSHA, keys, args).ToArray()
	if err != nil {
		return err
	}
	if len(res) != 2 {
		return nil
	}
	totals, err := res[0].AsIntMap()
	if err != nil {
		return err
	}
	lasts, _ := res[1].AsIntMap()
	for _, st := range stats {
		f := decoyField(st.API, st.Path)
		t, ok := totals[f]
		if !ok {
			continue
		}
		// Hits counted here since Stats stay above the new base: sent next
		// round.
		if add := t - st.Hits; add > 0 {
			h.trap.AddHits(st.API, st.Path, add, time.UnixMilli(lasts[f]))
		} else if l := lasts[f]; l > 0 {
			h.trap.AddHits(st.API, st.Path, 0, time.UnixMilli(l))
		}
		h.base[f] = max(t, st.Hits)
	}
	return nil
}

// evalScript runs a script by its SHA1, loading it after NOSCRIPT.
func evalScript(ctx context.Context, cl rueidis.Client, script, sha string, keys, args []string) rueidis.RedisResult {
	cmd := func() rueidis.Completed {
		return cl.B().Evalsha().Sha1(sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	}
	r := cl.Do(ctx, cmd())
	if isNoScript(r.Error()) {
		if err := loadScript(ctx, cl, script); err != nil {
			return rueidis.NewErrorResult(err)
		}
		r = cl.Do(ctx, cmd())
	}
	return r
}
