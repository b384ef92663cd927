package spec

import (
	"strings"

	"github.com/vigil-project/vigil/detect/inspect"
)

// maxDepth bounds the JSON nesting judged; deeper values are skipped
// unjudged.
const maxDepth = 64

// walker judges a JSON body against its schema in one pass, without
// building anything: the first rule broken wins. A body that is not JSON,
// or cut (ext_proc buffers a bounded body), ends the walk without a
// verdict for what could not be read.
type walker struct {
	b     []byte
	i     int
	write bool
	sc    *scratch
	v     Verdict
	stop  bool // a verdict, or unreadable JSON
	depth int
}

func walkJSON(sc *scratch, s *schema, body []byte, write bool) Verdict {
	w := walker{b: body, write: write, sc: sc}
	sc.path = append(sc.path[:0], "body"...)
	w.value(s)
	return w.v
}

func (w *walker) ws() {
	for w.i < len(w.b) {
		switch w.b[w.i] {
		case ' ', '\t', '\n', '\r':
			w.i++
		default:
			return
		}
	}
}

func (w *walker) fail(kind inspect.Kind, rule string, v []byte) {
	w.v = Verdict{Kind: kind, Rule: rule, Loc: inspect.LocBody, KeyPath: string(w.sc.path), Excerpt: excerpt(v)}
	w.stop = true
}

// value reads one JSON value and judges it against s.
func (w *walker) value(s *schema) {
	w.ws()
	if w.i >= len(w.b) {
		w.stop = true
		return
	}
	switch c := w.b[w.i]; {
	case c == '{':
		if !s.types.allows(tObject) {
			w.fail(inspect.SchemaViolation, RuleType, w.b[w.i:w.i+1])
			return
		}
		w.object(s)
	case c == '[':
		if !s.types.allows(tArray) {
			w.fail(inspect.SchemaViolation, RuleType, w.b[w.i:w.i+1])
			return
		}
		w.array(s)
	case c == '"':
		end := inspect.JSONStringEnd(w.b, w.i+1) // called here, not in a method: this is the hot loop
		if end < 0 {
			w.stop = true // cut
			return
		}
		raw := w.b[w.i+1 : end]
		w.i = end + 1
		if !s.types.allows(tString) {
			w.fail(inspect.SchemaViolation, RuleType, raw)
			return
		}
		if s == anySchema {
			return
		}
		v := raw
		if indexByte(raw, '\\') >= 0 {
			w.sc.dec, _ = inspect.AppendJSONUnquoted(w.sc.dec[:0], raw, len(raw))
			v = w.sc.dec
		}
		if rule := s.str(v); rule != "" {
			w.fail(inspect.SchemaViolation, rule, v)
		}
	case c == '-' || c >= '0' && c <= '9':
		start := w.i
		integer := true
		for w.i < len(w.b) {
			c := w.b[w.i]
			if c == '.' || c == 'e' || c == 'E' {
				integer = false
			} else if !(c >= '0' && c <= '9' || c == '-' || c == '+') {
				break
			}
			w.i++
		}
		if w.i >= len(w.b) {
			w.stop = true // cut: the number may go on
			return
		}
		v := w.b[start:w.i]
		t := tNumber
		if integer {
			t = tInteger
		}
		if !s.types.allows(t) {
			w.fail(inspect.SchemaViolation, RuleType, v)
			return
		}
		if rule := s.number(v, integer); rule != "" {
			w.fail(inspect.SchemaViolation, rule, v)
		}
	case c == 't' || c == 'f':
		lit := "true"
		if c == 'f' {
			lit = "false"
		}
		if !w.literal(lit) {
			return
		}
		if !s.types.allows(tBoolean) {
			w.fail(inspect.SchemaViolation, RuleType, bytesOf(lit))
			return
		}
		if rule := s.enumOf(bytesOf(lit)); rule != "" {
			w.fail(inspect.SchemaViolation, rule, bytesOf(lit))
		}
	case c == 'n':
		if !w.literal("null") {
			return
		}
		if !s.types.allows(tNull) {
			w.fail(inspect.SchemaViolation, RuleType, bytesOf("null"))
		}
	default:
		w.stop = true // not JSON: not judged
	}
}

func (w *walker) literal(lit string) bool {
	if !strings.HasPrefix(stringOf(w.b[w.i:]), lit) {
		w.stop = true
		return false
	}
	w.i += len(lit)
	return true
}

func (w *walker) object(s *schema) {
	w.i++ // '{'
	w.depth++
	defer func() { w.depth-- }()
	if w.depth > maxDepth {
		w.stop = true
		return
	}
	mark := len(w.sc.path)
	var seen uint64
	first := true
	for !w.stop {
		w.ws()
		if w.i >= len(w.b) {
			w.stop = true
			return
		}
		if w.b[w.i] == '}' {
			w.i++
			break
		}
		if !first {
			if w.b[w.i] != ',' {
				w.stop = true
				return
			}
			w.i++
			w.ws()
		}
		first = false
		if w.i >= len(w.b) || w.b[w.i] != '"' {
			w.stop = true
			return
		}
		end := inspect.JSONStringEnd(w.b, w.i+1)
		if end < 0 {
			w.stop = true // cut
			return
		}
		key := w.b[w.i+1 : end]
		w.i = end + 1
		if indexByte(key, '\\') >= 0 {
			w.sc.key, _ = inspect.AppendJSONUnquoted(w.sc.key[:0], key, len(key))
			key = w.sc.key
		}
		w.ws()
		if w.i >= len(w.b) || w.b[w.i] != ':' {
			w.stop = true
			return
		}
		w.i++
		w.sc.path = append(append(w.sc.path[:mark], '.'), key...)
		var p *prop
		if s.props != nil {
			p = s.props[string(key)]
		}
		switch {
		case p != nil:
			if p.req >= 0 {
				seen |= 1 << p.req
			}
			if p.s.readOnly && w.write {
				w.fail(inspect.MassAssignment, RuleReadOnlyProperty, key)
				return
			}
			w.value(p.s)
		case s.additional != nil:
			w.value(s.additional)
		case s.declared && (w.write || s.closed):
			kind := inspect.SchemaViolation
			if w.write {
				kind = inspect.MassAssignment
			}
			w.fail(kind, RuleUndeclaredProperty, key)
			return
		default:
			w.value(anySchema)
		}
	}
	w.sc.path = w.sc.path[:mark]
	if w.stop || s.nRequired == 0 {
		return
	}
	if all := uint64(1)<<s.nRequired - 1; seen&all != all {
		w.missing(s, seen)
	}
}

// missing reports the first required property (by name) absent.
func (w *walker) missing(s *schema, seen uint64) {
	name := ""
	for n, p := range s.props {
		if p.req >= 0 && seen&(1<<p.req) == 0 && (name == "" || n < name) {
			name = n
		}
	}
	w.sc.path = append(append(w.sc.path, '.'), name...)
	w.fail(inspect.SchemaViolation, RuleMissingProperty, bytesOf(name))
}

func (w *walker) array(s *schema) {
	w.i++ // '['
	w.depth++
	defer func() { w.depth-- }()
	if w.depth > maxDepth {
		w.stop = true
		return
	}
	items := s.items
	if items == nil {
		items = anySchema
	}
	mark := len(w.sc.path)
	w.sc.path = append(w.sc.path, "[]"...)
	first := true
	for !w.stop {
		w.ws()
		if w.i >= len(w.b) {
			w.stop = true
			return
		}
		if w.b[w.i] == ']' {
			w.i++
			break
		}
		if !first {
			if w.b[w.i] != ',' {
				w.stop = true
				return
			}
			w.i++
		}
		first = false
		w.value(items)
	}
	w.sc.path = w.sc.path[:mark]
}

// walkForm judges an application/x-www-form-urlencoded body against an
// object schema: each field as text, undeclared ones on a write as mass
// assignment, required ones present.
func walkForm(sc *scratch, s *schema, body []byte, write bool) Verdict {
	var seen uint64
	for b := body; len(b) > 0; {
		part := b
		if j := indexByte(b, '&'); j >= 0 {
			part, b = b[:j], b[j+1:]
		} else {
			b = nil
		}
		if len(part) == 0 {
			continue
		}
		key, val := part, []byte(nil)
		if j := indexByte(part, '='); j >= 0 {
			key, val = part[:j], part[j+1:]
		}
		sc.key, _ = unescape(sc.key[:0], key, true)
		var p *prop
		if s.props != nil {
			p = s.props[string(sc.key)]
		}
		fail := func(kind inspect.Kind, rule string, v []byte) Verdict {
			return Verdict{Kind: kind, Rule: rule, Loc: inspect.LocBody, KeyPath: "body." + string(sc.key), Excerpt: excerpt(v)}
		}
		switch {
		case p != nil:
			if p.req >= 0 {
				seen |= 1 << p.req
			}
			if p.s.readOnly && write {
				return fail(inspect.MassAssignment, RuleReadOnlyProperty, sc.key)
			}
			sc.dec, _ = unescape(sc.dec[:0], val, true)
			ps := p.s
			if ps.types == tArray && ps.items != nil {
				ps = ps.items
			}
			if rule := ps.text(sc.dec); rule != "" {
				return fail(inspect.SchemaViolation, rule, sc.dec)
			}
		case s.declared && (write || s.closed):
			kind := inspect.SchemaViolation
			if write {
				kind = inspect.MassAssignment
			}
			return fail(kind, RuleUndeclaredProperty, sc.key)
		}
	}
	if s.nRequired > 0 {
		if all := uint64(1)<<s.nRequired - 1; seen&all != all {
			name := ""
			for n, p := range s.props {
				if p.req >= 0 && seen&(1<<p.req) == 0 && (name == "" || n < name) {
					name = n
				}
			}
			return Verdict{Kind: inspect.SchemaViolation, Rule: RuleMissingProperty, Loc: inspect.LocBody, KeyPath: "body." + name, Excerpt: name}
		}
	}
	return Verdict{}
}
