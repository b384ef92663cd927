package cluster

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// change is one local change waiting to be written to Redis: a put or a
// delete of a shared set's field (with its event), or an event alone.
type change struct {
	kind, op, field string
	value           string
	// expires is the entry's absolute expiry; zero: never. A change whose
	// entry expired while Redis was down is not replayed.
	expires time.Time
	// claim and ttl: the claim key of a new attack record (op opClaim).
	claim string
	ttl   time.Duration
}

func (ch *change) expired(now time.Time) bool {
	return !ch.expires.IsZero() && !now.Before(ch.expires)
}

// outbox is the bounded FIFO of changes not yet written: the writer sends
// them in order and removes them once Redis acknowledged them. Full, it
// drops the oldest (counted).
type outbox struct {
	mu      sync.Mutex
	max     int
	q       []change
	head    uint64         // sequence number of q[0]
	pending map[string]int // kind "\x00" field → changes queued
	// written holds when fields were last written (or dropped), for a
	// reconcile to leave alone what changed since it read Redis; pruned
	// past recentWindow.
	written   map[string]time.Time
	lastPrune time.Time
	dropped   atomic.Uint64
}

// recentWindow is how long a written field is remembered: longer than a
// reconcile's read can take.
const recentWindow = time.Minute

func newOutbox(max int) *outbox {
	return &outbox{max: max, pending: make(map[string]int), written: make(map[string]time.Time)}
}

func pendingKey(kind, field string) string { return kind + "\x00" + field }

func (o *outbox) push(ch change) {
	o.mu.Lock()
	if len(o.q) >= o.max {
		o.removeFront(1)
		o.dropped.Add(1)
	}
	o.q = append(o.q, ch)
	o.pending[pendingKey(ch.kind, ch.field)]++
	o.mu.Unlock()
}

// removeFront removes the n oldest changes; o.mu held.
func (o *outbox) removeFront(n int) {
	now := time.Now()
	if now.Sub(o.lastPrune) > recentWindow {
		for k, t := range o.written {
			if now.Sub(t) > recentWindow {
				delete(o.written, k)
			}
		}
		o.lastPrune = now
	}
	for i := 0; i < n; i++ {
		k := pendingKey(o.q[i].kind, o.q[i].field)
		if o.pending[k]--; o.pending[k] <= 0 {
			delete(o.pending, k)
		}
		o.written[k] = now
		o.q[i] = change{}
	}
	o.q = o.q[n:]
	o.head += uint64(n)
	if len(o.q) == 0 {
		o.q = nil // release the array of a burst
	}
}

// peek copies up to n of the oldest changes and the sequence number of the
// first.
func (o *outbox) peek(n int) ([]change, uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n = min(n, len(o.q))
	return append([]change(nil), o.q[:n]...), o.head
}

// ack removes the n changes from sequence number seq that are still queued
// (some may have been dropped meanwhile).
func (o *outbox) ack(seq uint64, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	end := seq + uint64(n)
	if end <= o.head {
		return
	}
	o.removeFront(min(int(end-o.head), len(o.q)))
}

func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.q)
}

// changedSince reports whether a change of a field is queued, or was
// written after since.
func (o *outbox) changedSince(kind, field string, since time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := pendingKey(kind, field)
	if o.pending[k] > 0 {
		return true
	}
	t, ok := o.written[k]
	return ok && !t.Before(since)
}

// enqueue queues a local change and wakes the writer; it never waits for
// Redis.
func (c *Cluster) enqueue(ch change) {
	c.outbox.push(ch)
	c.kick(c.wakeW)
}

// OutboxLen returns the changes waiting for Redis.
func (c *Cluster) OutboxLen() int { return c.outbox.len() }

// writeScript writes one change: the hash (put or delete), its tombstone
// (a delete leaves the time it happened, a put clears it) and the event,
// atomically (the keys share a hash tag). KEYS: the set's hash, the
// stream, the set's tombstones. ARGV: op, field, value, maxlen, replica,
// kind.
const writeScript = `
local op = ARGV[1]
if op == 'put' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('HDEL', KEYS[3], ARGV[2])
elseif op == 'del' then
  redis.call('HDEL', KEYS[1], ARGV[2])
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[3], ARGV[2], t[1] * 1000 + math.floor(t[2] / 1000))
end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*',
  'k', ARGV[6], 'o', op, 'f', ARGV[2], 'v', ARGV[3], 'r', ARGV[5])
`

var writeScriptSHA = scriptSHA(writeScript)

// scriptSHA is a script's SHA1, its name for EVALSHA.
func scriptSHA(script string) string {
	h := sha1.Sum([]byte(script))
	return hex.EncodeToString(h[:])
}

// loadScript loads a script on every node (after NOSCRIPT: Redis restarted
// or a node joined).
func loadScript(ctx context.Context, cl rueidis.Client, script string) error {
	for _, n := range cl.Nodes() {
		if err := n.Do(ctx, n.B().ScriptLoad().Script(script).Build()).Error(); err != nil {
			return err
		}
	}
	return nil
}

func isNoScript(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && re.IsNoScript()
}

func (c *Cluster) maxlen() string { return strconv.FormatInt(c.opts.StreamMaxLen, 10) }

// writeBatch is how many changes one pipeline carries.
const writeBatch = 256

// writeLoop sends the outbox to Redis in order while Redis is up.
func (c *Cluster) writeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wakeW:
		case <-c.upChan():
		}
		for ctx.Err() == nil && c.Up() && c.outbox.len() > 0 {
			cl := c.cli()
			if cl == nil {
				break
			}
			if err := c.writeSome(ctx, cl); err != nil {
				c.countErr("write", err)
				c.pause(ctx, 200*time.Millisecond)
			}
		}
	}
}

// writeSome writes up to writeBatch queued changes in one pipeline and
// removes those Redis acknowledged, up to the first failure.
func (c *Cluster) writeSome(ctx context.Context, cl rueidis.Client) error {
	batch, seq := c.outbox.peek(writeBatch)
	if len(batch) == 0 {
		return nil
	}
	// A claim goes alone: what follows it may depend on its outcome.
	if batch[0].op == opClaim {
		if err := c.writeClaim(ctx, cl, &batch[0]); err != nil {
			return err
		}
		c.outbox.ack(seq, 1)
		return nil
	}
	for i := range batch {
		if batch[i].op == opClaim {
			batch = batch[:i]
			break
		}
	}
	now := c.now()
	maxlen := c.maxlen()
	c.mu.Lock()
	attacks := c.attacks
	c.mu.Unlock()
	cmds := make(rueidis.Commands, 0, len(batch))
	idx := make([]int, 0, len(batch)) // batch index of each command
	for i := range batch {
		ch := &batch[i]
		if ch.op != OpDelete && ch.expired(now) {
			c.metrics.expired.Inc()
			continue
		}
		if attacks != nil && ch.op == OpPut && strings.HasPrefix(ch.kind, "list:") {
			// Queued before this replica's claim was lost: the cluster gets
			// the winner's id.
			if v, ok := attacks.rewriteValue(ch.value); ok {
				ch.value = v
			}
		}
		hash, tombs := c.eventsKey(), c.eventsKey()
		if ch.op != OpEvent {
			hash, tombs = c.setKey(ch.kind), c.tombKey(ch.kind)
		}
		cmds = append(cmds, cl.B().Evalsha().Sha1(writeScriptSHA).Numkeys(3).Key(hash, c.eventsKey(), tombs).
			Arg(ch.op, ch.field, ch.value, maxlen, c.replica, ch.kind).Build())
		idx = append(idx, i)
	}
	if len(cmds) == 0 {
		c.outbox.ack(seq, len(batch))
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for j, r := range cl.DoMulti(wctx, cmds...) {
		if err := r.Error(); err != nil {
			c.outbox.ack(seq, idx[j])
			if isNoScript(err) {
				return loadScript(wctx, cl, writeScript)
			}
			return err
		}
	}
	c.outbox.ack(seq, len(batch))
	return nil
}
