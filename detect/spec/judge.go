package spec

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/vigil-project/vigil/detect/inspect"
)

// Rules a Verdict names (in Rule), as attack records show them.
const (
	RuleUnknownPath        = "spec-unknown-path"        // no path of the document matches
	RuleUnknownMethod      = "spec-unknown-method"      // the path has no such method
	RuleMissingParameter   = "spec-missing-parameter"   // a required parameter is absent
	RuleMissingBody        = "spec-missing-body"        // a required request body is absent
	RuleMediaType          = "spec-media-type"          // a body of a media type the operation does not take
	RuleMissingProperty    = "spec-missing-property"    // a required JSON property is absent
	RuleType               = "spec-type"                // a value of the wrong type
	RuleFormat             = "spec-format"              // a value not of its format (uuid, date, email…)
	RuleEnum               = "spec-enum"                // not one of the declared values
	RulePattern            = "spec-pattern"             // not matching the declared pattern
	RuleLength             = "spec-length"              // shorter or longer than declared
	RuleRange              = "spec-range"               // a number out of its bounds
	RuleUndeclaredProperty = "spec-undeclared-property" // a JSON property the document does not declare
	RuleReadOnlyProperty   = "spec-read-only-property"  // a read-only property sent on a write
)

// Verdict is what Judge decided. Kind is inspect.KindNone for a request
// the document allows (or does not cover), inspect.SchemaViolation or
// inspect.MassAssignment otherwise.
type Verdict struct {
	Kind inspect.Kind
	// Rule names the rule broken (RuleUnknownPath…).
	Rule string
	// Loc and KeyPath say where: "query.limit", "path.petId",
	// "header.x-request-id", "body.items[].sku", "path" for an unknown
	// path or method.
	Loc     inspect.Location
	KeyPath string
	// Excerpt is the start of the value (or the property's name), at most
	// 64 bytes, control characters shown as '?'; empty for headers and
	// cookies, which may carry secrets.
	Excerpt string
	// Operation is the operation matched, nil for an unknown path.
	Operation *Operation
}

// Headers gives a request's header values by lower-case name.
type Headers interface {
	Header(name string) (string, bool)
}

// HeaderFunc adapts a function to Headers.
type HeaderFunc func(name string) (string, bool)

// Header calls f.
func (f HeaderFunc) Header(name string) (string, bool) { return f(name) }

// scratch is one judgement's buffers, pooled.
type scratch struct {
	dec  []byte // a decoded value
	key  []byte // a decoded query key
	path []byte // a JSON key path
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{dec: make([]byte, 0, 256), key: make([]byte, 0, 64), path: make([]byte, 0, 128)}
}}

// Judge decides one request of the API against the document. The
// request's path is the full path as sent (the base path included); a
// path under none of the document's base paths is not judged. h gives
// header values for header parameters; when nil, only User-Agent and
// Referer (from r) are known and other header parameters are not checked.
// HEAD is judged as GET when the path has no HEAD, and OPTIONS (CORS
// preflight) is allowed on every known path.
func (s *Spec) Judge(r *inspect.RequestView, h Headers) Verdict {
	path := r.Path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	rest, ok := s.strip(path)
	if !ok {
		return Verdict{}
	}
	n := s.root.match(rest)
	if n == nil || len(n.ops) == 0 {
		return Verdict{Kind: inspect.SchemaViolation, Rule: RuleUnknownPath, Loc: inspect.LocPath, KeyPath: "path", Excerpt: excerpt(bytesOf(path))}
	}
	op := n.ops[r.Method]
	if op == nil && r.Method == "HEAD" {
		op = n.ops["GET"]
	}
	if op == nil {
		if r.Method == "OPTIONS" {
			return Verdict{}
		}
		return Verdict{Kind: inspect.SchemaViolation, Rule: RuleUnknownMethod, Loc: inspect.LocPath, KeyPath: "path", Excerpt: excerpt(bytesOf(r.Method))}
	}
	sc := scratchPool.Get().(*scratch)
	v := op.judge(sc, r, rest, h)
	scratchPool.Put(sc)
	if v.Kind != inspect.KindNone {
		v.Operation = op
	}
	return v
}

// Match returns the operation a method and path (the full path as sent,
// or an endpoint template with {id} segments) call, nil when none; known
// says whether the path is under one of the document's base paths.
func (s *Spec) Match(method, path string) (op *Operation, known bool) {
	rest, ok := s.strip(path)
	if !ok {
		return nil, false
	}
	n := s.root.match(rest)
	if n == nil {
		return nil, true
	}
	op = n.ops[method]
	if op == nil && method == "HEAD" {
		op = n.ops["GET"]
	}
	return op, true
}

// Declares reports whether a path (as Match takes it) is one of the
// document's templates, whatever the method.
func (s *Spec) Declares(path string) bool {
	rest, ok := s.strip(path)
	return ok && s.root.match(rest) != nil
}

// FullPath is an operation's template with the document's base path (the
// shortest of its servers'): /api/v1/pets/{petId}.
func (s *Spec) FullPath(op *Operation) string {
	base := ""
	if len(s.BasePaths) > 0 {
		base = s.BasePaths[len(s.BasePaths)-1]
	}
	if op.Path == "/" && base != "" {
		return base
	}
	return base + op.Path
}

// strip returns path without the longest base path it is under.
func (s *Spec) strip(path string) (string, bool) {
	for _, b := range s.BasePaths {
		if b == "" {
			return path, true
		}
		if strings.HasPrefix(path, b) && (len(path) == len(b) || path[len(b)] == '/') {
			return path[len(b):], true
		}
	}
	return "", false
}

// match finds the node of a path (relative to the base path), literal
// segments before parameters, backtracking; nil when none.
func (n *node) match(p string) *node {
	for len(p) > 0 && p[0] == '/' {
		p = p[1:]
	}
	if p == "" {
		if len(n.ops) > 0 {
			return n
		}
		return nil
	}
	seg, rest := p, ""
	if i := strings.IndexByte(p, '/'); i >= 0 {
		seg, rest = p[:i], p[i:]
	}
	if c := n.lit[seg]; c != nil {
		if m := c.match(rest); m != nil {
			return m
		}
	} else if strings.IndexByte(seg, '%') >= 0 {
		if d, err := url.PathUnescape(seg); err == nil {
			if c := n.lit[d]; c != nil {
				if m := c.match(rest); m != nil {
					return m
				}
			}
		}
	}
	if n.param != nil {
		return n.param.match(rest)
	}
	return nil
}

// judge checks the parameters and the body of a request to op.
func (op *Operation) judge(sc *scratch, r *inspect.RequestView, rest string, h Headers) Verdict {
	// Path parameters, by segment.
	i := 0
	for p := rest; len(p) > 0; {
		for len(p) > 0 && p[0] == '/' {
			p = p[1:]
		}
		if p == "" {
			break
		}
		seg := p
		if j := strings.IndexByte(p, '/'); j >= 0 {
			seg, p = p[:j], p[j:]
		} else {
			p = ""
		}
		if i < len(op.pathVals) && op.pathVals[i] != nil {
			sc.dec, _ = unescape(sc.dec[:0], bytesOf(seg), false)
			if v := op.pathVals[i].check(sc.dec); v.Kind != inspect.KindNone {
				return v
			}
		}
		i++
	}
	var seen uint64
	// Query parameters.
	for q := r.Query; len(q) > 0; {
		part := q
		if j := strings.IndexByte(q, '&'); j >= 0 {
			part, q = q[:j], q[j+1:]
		} else {
			q = ""
		}
		if part == "" {
			continue
		}
		key, val := part, ""
		if j := strings.IndexByte(part, '='); j >= 0 {
			key, val = part[:j], part[j+1:]
		}
		sc.key, _ = unescape(sc.key[:0], bytesOf(key), true)
		p := op.find(inspect.LocQuery, sc.key)
		if p == nil {
			continue
		}
		seen |= bit(p.index)
		sc.dec, _ = unescape(sc.dec[:0], bytesOf(val), true)
		if v := p.check(sc.dec); v.Kind != inspect.KindNone {
			return v
		}
	}
	// Header and cookie parameters.
	headersKnown := h != nil
	for _, p := range op.params {
		switch p.in {
		case inspect.LocHeader:
			var val string
			var ok bool
			switch {
			case h != nil:
				val, ok = h.Header(p.name)
			case p.name == "user-agent":
				val, ok = r.UserAgent, r.UserAgent != ""
			case p.name == "referer":
				val, ok = r.Referer, r.Referer != ""
			}
			if !ok {
				if !headersKnown && p.name != "user-agent" && p.name != "referer" {
					seen |= bit(p.index) // unknown: not missing
				}
				continue
			}
			seen |= bit(p.index)
			if v := p.check(bytesOf(val)); v.Kind != inspect.KindNone {
				v.Excerpt = ""
				return v
			}
		case inspect.LocCookie:
			val, ok := cookie(r.Cookie, p.name)
			if !ok {
				continue
			}
			seen |= bit(p.index)
			sc.dec, _ = unescape(sc.dec[:0], bytesOf(val), false)
			if v := p.check(sc.dec); v.Kind != inspect.KindNone {
				v.Excerpt = ""
				return v
			}
		}
	}
	if missing := op.required &^ seen; missing != 0 {
		for _, p := range op.params {
			if missing&bit(p.index) != 0 {
				return Verdict{Kind: inspect.SchemaViolation, Rule: RuleMissingParameter, Loc: p.in, KeyPath: p.keyPath}
			}
		}
	}
	// The body.
	if len(r.Body) == 0 {
		if op.bodyRequired {
			return Verdict{Kind: inspect.SchemaViolation, Rule: RuleMissingBody, Loc: inspect.LocBody, KeyPath: "body"}
		}
		return Verdict{}
	}
	if !op.acceptsMedia(r.ContentType) {
		return Verdict{Kind: inspect.SchemaViolation, Rule: RuleMediaType, Loc: inspect.LocHeader, KeyPath: "header.content-type", Excerpt: excerpt(bytesOf(r.ContentType))}
	}
	switch mediaKind(r.ContentType) {
	case mediaJSON:
		if op.body != nil {
			return walkJSON(sc, op.body, r.Body, isWrite(r.Method))
		}
	case mediaForm:
		if op.form != nil {
			return walkForm(sc, op.form, r.Body, isWrite(r.Method))
		}
	}
	return Verdict{}
}

func bit(i int) uint64 {
	if i >= 64 {
		return 0
	}
	return 1 << i
}

// find returns the parameter of op at loc named name, nil if none.
func (op *Operation) find(loc inspect.Location, name []byte) *param {
	for _, p := range op.params {
		if p.in == loc && p.name == string(name) {
			return p
		}
	}
	return nil
}

// check checks one parameter's value (decoded).
func (p *param) check(v []byte) Verdict {
	s := p.s
	if s.types == tArray && s.items != nil {
		if !p.commas {
			return p.verdict(s.items.text(v), v)
		}
		for len(v) > 0 {
			item := v
			if j := indexByte(v, ','); j >= 0 {
				item, v = v[:j], v[j+1:]
			} else {
				v = nil
			}
			if rule := s.items.text(item); rule != "" {
				return p.verdict(rule, item)
			}
		}
		return Verdict{}
	}
	return p.verdict(s.text(v), v)
}

func (p *param) verdict(rule string, v []byte) Verdict {
	if rule == "" {
		return Verdict{}
	}
	return Verdict{Kind: inspect.SchemaViolation, Rule: rule, Loc: p.in, KeyPath: p.keyPath, Excerpt: excerpt(v)}
}

// text checks a value carried as text (a parameter, a form field)
// against s and returns the rule it breaks, "" for none.
func (s *schema) text(v []byte) string {
	t := s.types
	switch {
	case t == 0 || t&tString != 0:
		return s.str(v)
	case t&tInteger != 0 && isInteger(v):
		return s.number(v, true)
	case t&tNumber != 0 && isNumber(v):
		return s.number(v, false)
	case t&tBoolean != 0 && (string(v) == "true" || string(v) == "false"):
		return s.enumOf(v)
	case t&tNull != 0 && (len(v) == 0 || string(v) == "null"):
		return ""
	case t&(tObject|tArray) != 0:
		return "" // serialized structures are not judged as text
	}
	return RuleType
}

// str checks a string value.
func (s *schema) str(v []byte) string {
	if s.minLen > 0 || s.maxLen >= 0 {
		n := utf8.RuneCount(v)
		if n < s.minLen || s.maxLen >= 0 && n > s.maxLen {
			return RuleLength
		}
	}
	if s.format != fmtNone && !s.formatOK(v) {
		return RuleFormat
	}
	if rule := s.enumOf(v); rule != "" {
		return rule
	}
	if s.pattern != nil && len(v) <= maxPatternInput && !s.pattern.Match(v) {
		return RulePattern
	}
	return ""
}

func (s *schema) enumOf(v []byte) string {
	if len(s.enum) == 0 {
		return ""
	}
	for _, e := range s.enum {
		if e == string(v) {
			return ""
		}
	}
	return RuleEnum
}

// number checks a number's format, enum and bounds.
func (s *schema) number(v []byte, integer bool) string {
	if integer && (s.format == fmtInt32 || s.format == fmtInt64) {
		n, err := strconv.ParseInt(stringOf(v), 10, 64)
		if err != nil || s.format == fmtInt32 && (n < -1<<31 || n > 1<<31-1) {
			return RuleFormat
		}
	}
	if rule := s.enumOf(v); rule != "" {
		return rule
	}
	if !s.hasMin && !s.hasMax {
		return ""
	}
	f, err := strconv.ParseFloat(stringOf(v), 64)
	if err != nil {
		return RuleRange
	}
	if s.hasMin && (f < s.min || s.exclMin && f == s.min) || s.hasMax && (f > s.max || s.exclMax && f == s.max) {
		return RuleRange
	}
	return ""
}

func (s *schema) formatOK(v []byte) bool {
	switch s.format {
	case fmtUUID:
		return isUUID(v)
	case fmtDate:
		return isDate(v)
	case fmtDateTime:
		return isDateTime(v)
	case fmtEmail:
		at := indexByte(v, '@')
		return at > 0 && at < len(v)-1 && indexByte(v[at+1:], '@') < 0 && indexByte(v, ' ') < 0
	case fmtIPv4, fmtIPv6:
		a, err := netip.ParseAddr(stringOf(v))
		return err == nil && (s.format == fmtIPv4) == a.Is4()
	}
	return true // int32/int64 on strings, others: not checked
}

func isInteger(v []byte) bool {
	if len(v) > 0 && (v[0] == '-' || v[0] == '+') {
		v = v[1:]
	}
	if len(v) == 0 || len(v) > 19 {
		return false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isNumber takes decimal numbers with an optional exponent (JSON's, with
// a leading '+' and a bare leading '.' allowed), not "NaN" or "Inf".
func isNumber(v []byte) bool {
	if len(v) > 0 && (v[0] == '-' || v[0] == '+') {
		v = v[1:]
	}
	digits, dot, exp := 0, false, false
	for i, c := range v {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot && !exp:
			dot = true
		case (c == 'e' || c == 'E') && !exp && digits > 0:
			exp = true
			if i+1 < len(v) && (v[i+1] == '-' || v[i+1] == '+') {
				continue
			}
		case (c == '-' || c == '+') && i > 0 && (v[i-1] == 'e' || v[i-1] == 'E'):
		default:
			return false
		}
	}
	return digits > 0 && len(v) <= 64 && v[len(v)-1] != 'e' && v[len(v)-1] != 'E'
}

func isUUID(v []byte) bool {
	if len(v) != 36 {
		return false
	}
	for i, c := range v {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !isHex(c) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func digits(v []byte) (int, bool) {
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(v) > 0
}

// isDate takes RFC 3339 full-date: 2024-01-31.
func isDate(v []byte) bool {
	if len(v) != 10 || v[4] != '-' || v[7] != '-' {
		return false
	}
	_, y := digits(v[:4])
	m, okm := digits(v[5:7])
	d, okd := digits(v[8:10])
	return y && okm && okd && m >= 1 && m <= 12 && d >= 1 && d <= 31
}

// isDateTime takes RFC 3339 date-time: 2024-01-31T10:00:00(.123)?(Z|+01:00).
func isDateTime(v []byte) bool {
	if len(v) < 20 || !isDate(v[:10]) || (v[10] != 'T' && v[10] != 't' && v[10] != ' ') {
		return false
	}
	t := v[11:]
	if len(t) < 9 || t[2] != ':' || t[5] != ':' {
		return false
	}
	h, ok1 := digits(t[:2])
	mi, ok2 := digits(t[3:5])
	se, ok3 := digits(t[6:8])
	if !ok1 || !ok2 || !ok3 || h > 23 || mi > 59 || se > 60 {
		return false
	}
	t = t[8:]
	if t[0] == '.' {
		j := 1
		for j < len(t) && t[j] >= '0' && t[j] <= '9' {
			j++
		}
		if j == 1 {
			return false
		}
		t = t[j:]
	}
	switch {
	case len(t) == 1 && (t[0] == 'Z' || t[0] == 'z'):
		return true
	case len(t) == 6 && (t[0] == '+' || t[0] == '-' || t[0] == ' ') && t[3] == ':':
		// ' ': a '+' sent unescaped in a query string, decoded as a space.
		_, a := digits(t[1:3])
		_, b := digits(t[4:6])
		return a && b
	}
	return false
}

// cookie returns the value of the cookie named name in a Cookie header.
func cookie(header, name string) (string, bool) {
	for len(header) > 0 {
		part := header
		if j := strings.IndexByte(header, ';'); j >= 0 {
			part, header = header[:j], header[j+1:]
		} else {
			header = ""
		}
		part = strings.TrimLeft(part, " ")
		if j := strings.IndexByte(part, '='); j > 0 && strings.TrimRight(part[:j], " ") == name {
			return part[j+1:], true
		}
	}
	return "", false
}

// unescape appends src percent-decoded (and '+' as a space when plus).
func unescape(dst, src []byte, plus bool) ([]byte, bool) {
	changed := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '%' && i+2 < len(src) && isHex(src[i+1]) && isHex(src[i+2]):
			dst = append(dst, unhex(src[i+1])<<4|unhex(src[i+2]))
			i += 2
			changed = true
		case c == '+' && plus:
			dst = append(dst, ' ')
			changed = true
		default:
			dst = append(dst, c)
		}
	}
	return dst, changed
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func indexByte(v []byte, c byte) int {
	for i, b := range v {
		if b == c {
			return i
		}
	}
	return -1
}

// isWrite reports whether a method writes: undeclared properties on it are
// mass assignment.
func isWrite(m string) bool { return m == "POST" || m == "PUT" || m == "PATCH" }

// excerpt is the start of v for a record, at most 64 bytes: control and
// non-ASCII bytes as '?', long token-like runs (possible secrets: keys,
// tokens) masked after their first four characters, as detect/inspect's
// excerpts are.
func excerpt(v []byte) string {
	const max = 64
	b := make([]byte, 0, min(len(v), max))
	for i := 0; i < len(v) && len(b) < max; {
		j := i
		for j < len(v) && isTokenByte(v[j]) {
			j++
		}
		if j-i >= 24 {
			b = append(b, v[i:i+4]...)
			b = append(b, "***"...)
			i = j
			continue
		}
		if j == i {
			j = i + 1
		}
		for _, c := range v[i:j] {
			if len(b) == max {
				break
			}
			if c < 0x20 || c >= 0x7f {
				c = '?'
			}
			b = append(b, c)
		}
		i = j
	}
	return string(b)
}

func isTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '+' || c == '/' || c == '=' || c == '_' || c == '-'
}

func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func stringOf(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
