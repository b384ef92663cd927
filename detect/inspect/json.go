package inspect

import (
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth is the nesting the tokenizer tracks key paths for; values
// nested deeper are still inspected, under the deepest tracked key path,
// and the request is marked CapDepth.
const maxJSONDepth = 32

// jsonTokenizer is a streaming JSON tokenizer: fed the body in chunks of
// any size (write, then finish), it emits every string, number and literal
// with its key path (body.items[].note) and every object key, holding a
// fixed amount of state: the container stack, and one pooled buffer for the
// string or number being read (capped at MaxValueBytes). Like
// detect.JSONCounter it does not validate: malformed input yields values,
// never an error.
type jsonTokenizer struct {
	str []byte // the string, number or literal being read (capped)
	cut bool   // str was cut at its cap

	depth     int // containers open, tracked or not
	stack     [maxJSONDepth]jsonFrame
	objects   [maxJSONNesting / 64]uint64 // which open containers are objects
	expectKey bool                        // the next string in the innermost object is a key

	inString bool
	isKey    bool // the string being read is an object key
	escape   bool
	hexLeft  int8 // hex digits of a \u escape still to read
	hexVal   rune
	hiSurr   rune // a high surrogate waiting for its low half
	inScalar bool // a number or literal is being read
}

// maxJSONNesting is the nesting the tokenizer tells objects from arrays
// in (keys from values); past it, strings are taken as values.
const maxJSONNesting = 1024

type jsonFrame struct {
	base int // key path length of the container itself
}

func (t *jsonTokenizer) inObject() bool {
	d := t.depth - 1
	return d >= 0 && d < maxJSONNesting && t.objects[d/64]&(1<<(d%64)) != 0
}

func (t *jsonTokenizer) reset() {
	t.str = t.str[:0]
	t.cut = false
	t.depth = 0
	t.expectKey = false
	t.inString, t.isKey, t.escape, t.inScalar = false, false, false, false
	t.hexLeft, t.hexVal, t.hiSurr = 0, 0, 0
}

func (t *jsonTokenizer) top() *jsonFrame {
	if t.depth == 0 || t.depth > maxJSONDepth {
		return nil
	}
	return &t.stack[t.depth-1]
}

// add appends one byte to the value being read, up to the cap.
func (t *jsonTokenizer) add(st *state, c byte) {
	if len(t.str) < st.cfg.MaxValueBytes {
		t.str = append(t.str, c)
	} else {
		t.cut = true
	}
}

// addRun appends bytes to the value being read, up to the cap.
func (t *jsonTokenizer) addRun(st *state, b []byte) {
	if room := st.cfg.MaxValueBytes - len(t.str); len(b) > room {
		b = b[:max(room, 0)]
		t.cut = true
	}
	t.str = append(t.str, b...)
}

func (t *jsonTokenizer) addRune(st *state, r rune) {
	if len(t.str)+utf8.UTFMax <= st.cfg.MaxValueBytes {
		t.str = utf8.AppendRune(t.str, r)
	} else {
		t.cut = true
	}
}

// write feeds the next chunk of the body.
func (t *jsonTokenizer) write(st *state, p []byte) {
	for i := 0; i < len(p) && !st.done; i++ {
		c := p[i]
		if t.inString {
			if t.hexLeft == 0 && !t.escape && t.hiSurr == 0 && c != '"' && c != '\\' {
				// Fast path: copy the run up to the next quote or escape.
				j := i + 1
				for j < len(p) && p[j] != '"' && p[j] != '\\' {
					j++
				}
				t.addRun(st, p[i:j])
				i = j - 1
				continue
			}
			t.stringByte(st, c)
			continue
		}
		if t.inScalar {
			if isScalarByte(c) {
				t.add(st, c)
				continue
			}
			t.endScalar(st)
		}
		switch c {
		case ' ', '\t', '\r', '\n', ':':
		case '"':
			t.inString = true
			t.str, t.cut = t.str[:0], false
			t.isKey = t.expectKey && t.inObject()
		case '{', '[':
			t.open(st, c == '{')
		case '}', ']':
			t.close(st)
		case ',':
			t.expectKey = t.inObject()
		default:
			t.inScalar = true
			t.str, t.cut = t.str[:0], false
			t.add(st, c)
		}
	}
}

// finish ends the document: a number or literal at its very end is
// emitted.
func (t *jsonTokenizer) finish(st *state) {
	if t.inScalar && !st.done {
		t.endScalar(st)
	}
}

func isScalarByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
		c == '-' || c == '+' || c == '.'
}

func (t *jsonTokenizer) endScalar(st *state) {
	t.inScalar = false
	t.value(st)
}

func (t *jsonTokenizer) stringByte(st *state, c byte) {
	switch {
	case t.hexLeft > 0:
		h, ok := unhex(c)
		if !ok { // a broken \u escape: keep what follows as it is
			t.hexLeft = 0
			t.flushSurrogate(st)
			t.add(st, c)
			return
		}
		t.hexVal = t.hexVal<<4 | rune(h)
		if t.hexLeft--; t.hexLeft == 0 {
			t.unicode(st, t.hexVal)
		}
	case t.escape:
		t.escape = false
		if c == 'u' {
			t.hexLeft, t.hexVal = 4, 0
			return
		}
		c, _ = jsonEscaped(c) // a byte no JSON escape has stands for itself
		t.flushSurrogate(st)  // a high surrogate before it was alone
		t.add(st, c)
	case c == '\\':
		t.escape = true
	case c == '"':
		t.flushSurrogate(st)
		t.inString = false
		if t.isKey {
			t.key(st)
		} else {
			t.value(st)
		}
	default:
		t.flushSurrogate(st)
		t.add(st, c)
	}
}

// unicode appends a \u escape's code point, joining surrogate pairs.
func (t *jsonTokenizer) unicode(st *state, r rune) {
	switch {
	case r >= 0xd800 && r < 0xdc00:
		t.flushSurrogate(st)
		t.hiSurr = r
	case r >= 0xdc00 && r < 0xe000 && t.hiSurr != 0:
		t.addRune(st, utf16.DecodeRune(t.hiSurr, r))
		t.hiSurr = 0
	default:
		t.flushSurrogate(st)
		t.addRune(st, r)
	}
}

func (t *jsonTokenizer) flushSurrogate(st *state) {
	if t.hiSurr != 0 {
		t.addRune(st, utf8.RuneError)
		t.hiSurr = 0
	}
}

func (t *jsonTokenizer) open(st *state, object bool) {
	t.depth++
	t.expectKey = object
	if d := t.depth - 1; d < maxJSONNesting {
		if object {
			t.objects[d/64] |= 1 << (d % 64)
		} else {
			t.objects[d/64] &^= 1 << (d % 64)
		}
	}
	if t.depth > maxJSONDepth {
		st.capped |= CapDepth
		return
	}
	t.stack[t.depth-1] = jsonFrame{base: len(st.path)}
	if !object {
		st.appendPath("[]")
	}
}

func (t *jsonTokenizer) close(st *state) {
	if t.depth == 0 {
		return
	}
	if f := t.top(); f != nil {
		st.path = st.path[:f.base]
	}
	t.depth--
	t.expectKey = false
}

// key sets the key path to the object's path and the key just read, and
// checks the key itself (NoSQL operators, mass assignment).
func (t *jsonTokenizer) key(st *state) {
	t.expectKey = false
	f := t.top()
	if f == nil {
		st.capped |= CapDepth
		st.onKey(LocBody, st.path, t.str)
		return
	}
	st.path = st.path[:f.base]
	st.onKey(LocBody, st.path, t.str)
	st.appendPath(".")
	st.appendPathBytes(t.str)
}

// value emits the string, number or literal just read.
func (t *jsonTokenizer) value(st *state) {
	if t.cut {
		st.capped |= CapValueBytes
	}
	st.emit(LocBody, t.str, decodeNone)
}
