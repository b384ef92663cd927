package detect

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Entry is one block or allow list entry.
type Entry struct {
	Kind      Kind
	Value     string // IP or CIDR range, user name, or fingerprint for secret kinds
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
// cached verdicts at once. An ip entry is an address or a CIDR range; ranges
// are kept apart (see ipRanges), so a list without ranges costs what it did.
type List struct {
	journal ListJournal
	rewrite func(*Entry)
	seed    maphash.Seed
	gen     *atomic.Uint64
	counts  [NumKinds]atomic.Int64 // entries of each kind, ranges included
	shards  [listShards]listShard
	ranges  ipRanges
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

// Lookup returns the live entry for an identity. For an IP address that is
// its own entry, else the entry of the longest live range holding it; for a
// CIDR range (admin lookups), the entry of that very range.
func (l *List) Lookup(k Kind, value string, now time.Time) (Entry, bool) {
	if value == "" || l.counts[k].Load() == 0 {
		return Entry{}, false
	}
	if k == KindIP && l.ranges.n.Load() > 0 {
		return l.lookupIP(value, now)
	}
	return l.exact(k, value, now)
}

func (l *List) exact(k Kind, value string, now time.Time) (Entry, bool) {
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
	return l.matchKinds(ids, now, NumKinds)
}

// matchKinds is Match leaving out one kind (NumKinds: none).
func (l *List) matchKinds(ids *Identities, now time.Time, skip Kind) (Entry, bool) {
	for k := range NumKinds {
		// Kinds the list or the request lack cost no call: an Entry is
		// ~100 bytes to return, even empty.
		if k == skip || ids[k] == "" || l.counts[k].Load() == 0 {
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

// SetRewrite makes Store pass every entry through f first (the cluster
// layer points an attack id that lost its claim to the winner's). Set it
// before the list is used.
func (l *List) SetRewrite(f func(*Entry)) { l.rewrite = f }

// Store journals an entry, then puts it on the list.
func (l *List) Store(e Entry) error {
	if l.rewrite != nil {
		l.rewrite(&e)
	}
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

// lookupIP looks an ip identity up when the list holds ranges.
func (l *List) lookupIP(value string, now time.Time) (Entry, bool) {
	if e, ok := l.exact(KindIP, value, now); ok {
		return e, true
	}
	if p, ok := parseRange(value); ok {
		return l.ranges.get(p, now)
	}
	a, err := netip.ParseAddr(value)
	if err != nil {
		return Entry{}, false
	}
	return l.ranges.match(a.WithZone("").Unmap(), now)
}

// Put adds or replaces an entry in memory only. The value must already be
// normalised.
func (l *List) Put(e Entry) {
	if p, ok := rangeOf(e); ok {
		if l.ranges.put(p, e) {
			l.counts[KindIP].Add(1)
		}
		l.gen.Add(1)
		return
	}
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
	var ok bool
	if p, isRange := rangeOf(Entry{Kind: k, Value: value}); isRange {
		ok = l.ranges.delete(p)
	} else {
		s := l.shard(value)
		key := listKey{k, value}
		s.mu.Lock()
		_, ok = s.m[key]
		if ok {
			delete(s.m, key)
		}
		s.mu.Unlock()
	}
	if ok {
		l.counts[k].Add(-1)
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
	swept := l.ranges.sweep(now)
	l.counts[KindIP].Add(-int64(swept))
	return n + swept
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
	out = l.ranges.appendLive(out, now)
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

// NormalizeIP turns an address or a CIDR range given by a person into its
// list form: an address as the extractor sees it (zone dropped, IPv4-mapped
// unmapped); a range masked to its prefix ("10.1.2.3/8" → "10.0.0.0/8"), an
// IPv4-mapped range as the IPv4 range, and a range of one address as that
// address, an exact entry. Clients are seen unmapped, so an IPv6 range
// wider than ::ffff:0:0/96 (such as ::/0, "every IPv6 client") holds no IPv4
// client: IPv4 clients are matched by IPv4 ranges.
func NormalizeIP(value string) (string, error) {
	if !strings.Contains(value, "/") {
		a, err := netip.ParseAddr(value)
		if err != nil {
			return "", fmt.Errorf("invalid IP address %q (want an address such as 192.0.2.1 or a CIDR range such as 203.0.113.0/24)", value)
		}
		return a.WithZone("").Unmap().String(), nil
	}
	p, err := netip.ParsePrefix(value)
	if err != nil {
		return "", fmt.Errorf("invalid CIDR range %q (want an address and a prefix length such as 203.0.113.0/24 or 2001:db8::/32)", value)
	}
	p = canonicalPrefix(p)
	if p.IsSingleIP() {
		return p.Addr().String(), nil
	}
	return p.String(), nil
}

// canonicalPrefix masks p and turns an IPv4-mapped range into the IPv4 one.
func canonicalPrefix(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// parseRange parses a CIDR range value into its canonical prefix.
func parseRange(value string) (netip.Prefix, bool) {
	if strings.IndexByte(value, '/') < 0 {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(value)
	if err != nil {
		return netip.Prefix{}, false
	}
	return canonicalPrefix(p), true
}

// rangeOf reports whether e is an ip entry for a range, and which.
func rangeOf(e Entry) (netip.Prefix, bool) {
	if e.Kind != KindIP {
		return netip.Prefix{}, false
	}
	return parseRange(e.Value)
}

// ipRanges holds a list's CIDR ranges in two path-compressed binary tries,
// one per address family. Matching an address walks at most one node per
// branching prefix on its path (never more than 33 for IPv4, 129 for IPv6),
// never a scan over the ranges. The tries are immutable: a writer (rare;
// they serialise on mu) copies the path it changes and publishes the new
// root, so readers take no lock and write no shared memory.
type ipRanges struct {
	mu     sync.Mutex // writers
	n      atomic.Int64
	v4, v6 atomic.Pointer[rangeNode]
}

// rangeNode is a node of a range trie: a prefix (the address bits in hi,
// lo, an IPv4 address in the top 32 bits of hi), the range's entry if one
// ends here, and the longer prefixes below it by their next bit.
type rangeNode struct {
	hi, lo uint64
	bits   int
	entry  *Entry
	child  [2]*rangeNode
}

// rangeKey is a prefix as the tries hold it.
type rangeKey struct {
	hi, lo uint64
	bits   int
}

func keyOfAddr(a netip.Addr) rangeKey {
	if a.Is4() {
		b := a.As4()
		return rangeKey{hi: uint64(binary.BigEndian.Uint32(b[:])) << 32, bits: 32}
	}
	b := a.As16()
	return rangeKey{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:]), bits: 128}
}

func keyOfPrefix(p netip.Prefix) rangeKey {
	k := keyOfAddr(p.Addr())
	k.bits = p.Bits()
	return k
}

// bit returns bit i (0: the most significant) of k.
func (k rangeKey) bit(i int) int {
	if i < 64 {
		return int(k.hi>>(63-i)) & 1
	}
	return int(k.lo>>(127-i)) & 1
}

// common returns how many leading bits of n's prefix and k agree, at most
// max.
func (n *rangeNode) common(k rangeKey, max int) int {
	c := 128
	if x := n.hi ^ k.hi; x != 0 {
		c = bits.LeadingZeros64(x)
	} else if y := n.lo ^ k.lo; y != 0 {
		c = 64 + bits.LeadingZeros64(y)
	}
	return min(c, max)
}

func (r *ipRanges) root(p netip.Prefix) *atomic.Pointer[rangeNode] {
	if p.Addr().Is4() {
		return &r.v4
	}
	return &r.v6
}

// put adds or replaces a range and reports whether it is new.
func (r *ipRanges) put(p netip.Prefix, e Entry) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	root := r.root(p)
	added := false
	root.Store(insertRange(root.Load(), keyOfPrefix(p), &e, &added))
	if added {
		r.n.Add(1)
	}
	return added
}

// insertRange returns a copy of the trie n with e at k.
func insertRange(n *rangeNode, k rangeKey, e *Entry, added *bool) *rangeNode {
	if n == nil {
		*added = true
		return &rangeNode{hi: k.hi, lo: k.lo, bits: k.bits, entry: e}
	}
	c := n.common(k, min(n.bits, k.bits))
	switch {
	case c == n.bits && c == k.bits: // this very range
		cp := *n
		*added = cp.entry == nil
		cp.entry = e
		return &cp
	case c == n.bits: // below n
		cp := *n
		b := k.bit(n.bits)
		cp.child[b] = insertRange(n.child[b], k, e, added)
		return &cp
	}
	*added = true
	leaf := &rangeNode{hi: k.hi, lo: k.lo, bits: k.bits, entry: e}
	if c == k.bits { // above n
		leaf.child[(&rangeKey{n.hi, n.lo, n.bits}).bit(k.bits)] = n
		return leaf
	}
	// n and k part at bit c: a branch node holds both.
	m := masked(k, c)
	fork := &rangeNode{hi: m.hi, lo: m.lo, bits: c}
	fork.child[k.bit(c)] = leaf
	fork.child[1-k.bit(c)] = n
	return fork
}

// masked returns the first n bits of k.
func masked(k rangeKey, n int) rangeKey {
	switch {
	case n == 0:
		k.hi, k.lo = 0, 0
	case n < 64:
		k.hi &= ^uint64(0) << (64 - n)
		k.lo = 0
	case n < 128:
		k.lo &= ^uint64(0) << (128 - n)
	}
	k.bits = n
	return k
}

func (r *ipRanges) delete(p netip.Prefix) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	root := r.root(p)
	n, ok := deleteRange(root.Load(), keyOfPrefix(p))
	if ok {
		root.Store(n)
		r.n.Add(-1)
	}
	return ok
}

// deleteRange returns a copy of the trie n without the range k, and
// whether k was there.
func deleteRange(n *rangeNode, k rangeKey) (*rangeNode, bool) {
	if n == nil || n.bits > k.bits || n.common(k, n.bits) < n.bits {
		return n, false
	}
	cp := *n
	if n.bits == k.bits {
		if n.entry == nil {
			return n, false
		}
		cp.entry = nil
	} else {
		b := k.bit(n.bits)
		c, ok := deleteRange(n.child[b], k)
		if !ok {
			return n, false
		}
		cp.child[b] = c
	}
	// A node without an entry stays only where two branches part.
	switch {
	case cp.entry != nil || cp.child[0] != nil && cp.child[1] != nil:
		return &cp, true
	case cp.child[0] != nil:
		return cp.child[0], true
	default:
		return cp.child[1], true
	}
}

// get returns the live entry of exactly the range p.
func (r *ipRanges) get(p netip.Prefix, now time.Time) (Entry, bool) {
	k := keyOfPrefix(p)
	for n := r.root(p).Load(); n != nil && n.bits <= k.bits && n.common(k, n.bits) == n.bits; n = n.child[k.bit(n.bits)] {
		if n.bits == k.bits {
			if n.entry == nil || n.entry.Expired(now) {
				break
			}
			return *n.entry, true
		}
	}
	return Entry{}, false
}

// match returns the live entry of the longest range holding a, which must
// be unmapped and without a zone.
func (r *ipRanges) match(a netip.Addr, now time.Time) (Entry, bool) {
	root := &r.v6
	if a.Is4() {
		root = &r.v4
	}
	k := keyOfAddr(a)
	var best *Entry
	for n := root.Load(); n != nil && n.common(k, n.bits) == n.bits; n = n.child[k.bit(n.bits)] {
		if n.entry != nil && !n.entry.Expired(now) {
			best = n.entry
		}
		if n.bits == k.bits {
			break
		}
	}
	if best == nil {
		return Entry{}, false
	}
	return *best, true
}

// sweep removes the ranges expired at now and returns how many.
func (r *ipRanges) sweep(now time.Time) int {
	if r.n.Load() == 0 {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, root := range []*atomic.Pointer[rangeNode]{&r.v4, &r.v6} {
		var expired []rangeKey
		walkRanges(root.Load(), func(x *rangeNode) {
			if x.entry.Expired(now) {
				expired = append(expired, rangeKey{x.hi, x.lo, x.bits})
			}
		})
		t := root.Load()
		for _, k := range expired {
			t, _ = deleteRange(t, k)
		}
		root.Store(t)
		n += len(expired)
	}
	r.n.Add(-int64(n))
	return n
}

// walkRanges calls f on every node of the trie n that holds an entry.
func walkRanges(n *rangeNode, f func(*rangeNode)) {
	if n == nil {
		return
	}
	if n.entry != nil {
		f(n)
	}
	walkRanges(n.child[0], f)
	walkRanges(n.child[1], f)
}

func (r *ipRanges) appendLive(out []Entry, now time.Time) []Entry {
	if r.n.Load() == 0 {
		return out
	}
	collect := func(x *rangeNode) {
		if !x.entry.Expired(now) {
			out = append(out, *x.entry)
		}
	}
	walkRanges(r.v4.Load(), collect)
	walkRanges(r.v6.Load(), collect)
	return out
}
