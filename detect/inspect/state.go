package inspect

import "unsafe"

// state is one request's scratch: the key path being built, the decode
// buffers and the JSON tokenizer. It is pooled by the Inspector, so its
// buffers are allocated once and reused.
type state struct {
	in   *Inspector
	cfg  *Config
	prof *Profiles

	f      Finding
	done   bool // a finding was made, or the value cap was hit: extract no more
	write  bool // the request's method writes (POST, PUT, PATCH)
	values int
	total  int
	capped Caps

	path []byte // the current key path, "query.q"
	a, b []byte // decode buffers, used in turn
	b64  []byte // a clearly-base64 value, decoded
	scr  []byte // detectors' scratch (Log4j lookups resolved)
	key  []byte // a query or form key being decoded
	json jsonTokenizer

	// visit, when set, sees every decoded value with its key path (the
	// learner's walk); the detectors then do not run.
	visit    func(loc Location, path, v []byte)
	visitKey func(objPath, key []byte)

	tol Finding // the first tolerated signature hit
}

func newState(in *Inspector) *state {
	n := in.cfg.MaxValueBytes
	return &state{
		in:   in,
		cfg:  &in.cfg,
		path: make([]byte, 0, 128),
		a:    make([]byte, 0, n),
		b:    make([]byte, 0, n),
		b64:  make([]byte, 0, n),
		scr:  make([]byte, 0, n),
		key:  make([]byte, 0, 128),
		json: jsonTokenizer{str: make([]byte, 0, n)},
	}
}

func (st *state) reset(prof *Profiles) {
	st.prof = prof
	st.f = Finding{}
	st.tol.Kind = KindNone
	st.done, st.write = false, false
	st.values, st.total, st.capped = 0, 0, 0
	st.path = st.path[:0]
}

// bytesOf views s as bytes without copying; the bytes are only read.
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// stringOf views b as a string without copying, for calls that only read it
// during the call (libinjection keeps nothing of its input).
func stringOf(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// setPath makes the key path loc.key (key taken as it is).
func (st *state) setPath(loc Location, key string) {
	st.path = append(st.path[:0], loc.String()...)
	if key != "" {
		st.path = append(st.path, '.')
		st.path = append(st.path, key...)
	}
}

// emit inspects one raw value under the current key path: caps, decoding,
// pre-filter, detectors. It records the first finding and stops the
// request's extraction then.
func (st *state) emit(loc Location, raw []byte, mode decodeMode) {
	if st.done {
		return
	}
	if st.values >= st.cfg.MaxValues {
		st.capped |= CapValues
		st.done = true
		return
	}
	if len(raw) > st.cfg.MaxValueBytes {
		raw = raw[:st.cfg.MaxValueBytes]
		st.capped |= CapValueBytes
	}
	if rest := st.cfg.MaxTotalBytes - st.total; len(raw) > rest {
		st.capped |= CapTotalBytes
		if rest <= 0 {
			st.done = true
			return
		}
		raw = raw[:rest]
	}
	st.values++
	st.total += len(raw)
	if len(raw) == 0 {
		if st.visit != nil {
			st.visit(loc, st.path, raw)
		}
		return
	}
	v, dec := st.normalize(raw, mode)
	if st.visit != nil {
		st.visit(loc, st.path, v)
		return
	}
	if st.check(loc, v, dec, true) {
		return
	}
	if b, ok := st.base64(v); ok {
		st.check(loc, b, dec|DecodedBase64, false)
	}
}

// check runs the pre-filter and the detectors on one decoded value, judges
// the parameter's value against its profile when judge is set (the value
// as sent, not a base64 decoding of it, nor a key), and records a finding;
// it reports whether there was one.
func (st *state) check(loc Location, v []byte, dec Decodings, judge bool) bool {
	c := classify(v)
	kind, det := st.detectValue(loc, v, c)
	// Headers and cookies are judged for signatures only: they are not the
	// API's parameters, and a browser or bot never seen before is no
	// schema violation.
	if kind == KindNone && (loc == LocHeader || loc == LocCookie) {
		judge = false
	}
	if judge && st.prof != nil && st.prof.Trusted {
		k, rule, tolerated := st.prof.param(st.path).judge(v, c, kind)
		if tolerated {
			if st.tol.Kind == KindNone {
				fill(&st.tol, kind, det, loc, st.path, v, dec)
			}
			return false
		}
		if rule != "" {
			det = rule
		}
		kind = k
	}
	if kind == KindNone {
		return false
	}
	st.found(kind, det, loc, v, dec)
	return true
}

// found records a finding for the value v at the current key path.
func (st *state) found(kind Kind, det string, loc Location, v []byte, dec Decodings) {
	fill(&st.f, kind, det, loc, st.path, v, dec)
	st.done = true
}

func fill(f *Finding, kind Kind, det string, loc Location, path, v []byte, dec Decodings) {
	f.Kind, f.Detector, f.Loc, f.Decodings = kind, det, loc, dec
	f.pathLen = uint8(copy(f.path[:], path))
	if SecretParam(path) {
		f.excerptLen = uint8(copy(f.excerpt[:], "***")) // a credential, whatever it holds
		return
	}
	f.excerptLen = uint8(excerpt(f.excerpt[:], v))
}

// excerpt copies the start of v into dst for a record: control and
// non-ASCII bytes as '?', long token-like runs (possible secrets) masked
// after their first four characters.
func excerpt(dst, v []byte) int {
	n := 0
	for i := 0; i < len(v) && n < len(dst); {
		j := i
		for j < len(v) && isTokenByte(v[j]) {
			j++
		}
		if j-i >= 24 {
			for _, c := range v[i : i+4] {
				if n < len(dst) {
					dst[n] = c
					n++
				}
			}
			for k := 0; k < 3 && n < len(dst); k++ {
				dst[n] = '*'
				n++
			}
			i = j
			continue
		}
		if j == i {
			j = i + 1
		}
		for _, c := range v[i:j] {
			if n == len(dst) {
				break
			}
			if c < 0x20 || c >= 0x7f {
				c = '?'
			}
			dst[n] = c
			n++
		}
		i = j
	}
	return n
}

func isTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '+' || c == '/' || c == '=' || c == '_' || c == '-'
}
