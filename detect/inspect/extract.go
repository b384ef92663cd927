package inspect

import "bytes"

// request extracts and inspects every value of r, in order: query, path
// segments, headers, cookies, body; it stops at the first finding or when
// the value cap is hit.
func (st *state) request(r *RequestView) {
	st.write = isWrite(r.Method)
	st.pairs(LocQuery, bytesOf(r.Query), '&')
	st.pathSegments(bytesOf(r.Path))
	st.header("user-agent", r.UserAgent)
	st.header("referer", r.Referer)
	st.cookies(bytesOf(r.Cookie))
	st.body(r)
}

// pairs inspects k=v pairs separated by sep (a query string or a form
// body): key path loc.key (the key decoded), value decoded.
func (st *state) pairs(loc Location, s []byte, sep byte) {
	for len(s) > 0 && !st.done {
		var part []byte
		if i := bytes.IndexByte(s, sep); i >= 0 {
			part, s = s[:i], s[i+1:]
		} else {
			part, s = s, nil
		}
		if len(part) == 0 {
			continue
		}
		key, val := part, []byte(nil)
		if i := bytes.IndexByte(part, '='); i >= 0 {
			key, val = part[:i], part[i+1:]
		}
		st.setKeyPath(loc, key, true)
		if st.visit == nil && st.nosqlKey(loc, st.path) {
			return
		}
		st.emit(loc, val, decodeQuery)
	}
}

// setKeyPath makes the key path loc.key with key percent-decoded (and
// capped in length).
func (st *state) setKeyPath(loc Location, key []byte, plus bool) {
	st.path = append(st.path[:0], loc.String()...)
	st.path = append(st.path, '.')
	if len(key) > maxKeyPath {
		key = key[:maxKeyPath]
	}
	st.path, _ = urlDecode(st.path, key, plus)
}

// pathSegments inspects each segment of the path as path[i].
func (st *state) pathSegments(p []byte) {
	if i := bytes.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	n := 0
	for len(p) > 0 && !st.done {
		var seg []byte
		if i := bytes.IndexByte(p, '/'); i >= 0 {
			seg, p = p[:i], p[i+1:]
		} else {
			seg, p = p, nil
		}
		if len(seg) == 0 {
			continue
		}
		// Plain segments (words, numbers, IDs) are neither inspected nor
		// counted: they are most of every path.
		if classify(seg)&^plain == 0 && bytes.IndexByte(seg, '.') < 0 {
			n++
			continue
		}
		st.path = append(st.path[:0], "path["...)
		st.path = appendInt(st.path, n)
		st.path = append(st.path, ']')
		st.emit(LocPath, seg, decodePath)
		n++
	}
}

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

// header inspects one selected header's value as header.name.
func (st *state) header(name, v string) {
	if v == "" || st.done {
		return
	}
	st.setPath(LocHeader, name)
	st.emit(LocHeader, bytesOf(v), decodeNone)
}

// cookies inspects each cookie's value as cookie.name.
func (st *state) cookies(s []byte) {
	for len(s) > 0 && !st.done {
		var part []byte
		if i := bytes.IndexByte(s, ';'); i >= 0 {
			part, s = s[:i], s[i+1:]
		} else {
			part, s = s, nil
		}
		part = bytes.TrimLeft(part, " ")
		i := bytes.IndexByte(part, '=')
		if i <= 0 {
			continue
		}
		st.setKeyPath(LocCookie, bytes.TrimRight(part[:i], " "), false)
		st.emit(LocCookie, part[i+1:], decodePath)
	}
}

// body inspects the body by its content type: forms as pairs, JSON through
// the tokenizer, anything else (XML, text) as one value.
func (st *state) body(r *RequestView) {
	b := r.Body
	if len(b) == 0 || st.done {
		return
	}
	if len(b) > st.cfg.MaxBodyBytes {
		b = b[:st.cfg.MaxBodyBytes]
		st.capped |= CapBodyBytes
	}
	switch mediaType(r.ContentType) {
	case mediaForm:
		st.pairs(LocBody, b, '&')
	case mediaJSON:
		st.jsonBody(b)
	case mediaXML:
		st.xmlBody(b)
	default:
		if looksXML(b) {
			st.xmlBody(b)
			return
		}
		st.wholeBody(b)
	}
}

type media uint8

const (
	mediaOther media = iota
	mediaForm
	mediaJSON
	mediaXML
)

// mediaType classifies a Content-Type: JSON (application/json, any
// +json), forms, or other.
func mediaType(ct string) media {
	if i := indexByteString(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	for len(ct) > 0 && ct[len(ct)-1] == ' ' {
		ct = ct[:len(ct)-1]
	}
	switch {
	case equalFoldASCII(ct, "application/x-www-form-urlencoded"):
		return mediaForm
	case equalFoldASCII(ct, "application/json"), hasSuffixFold(ct, "+json"):
		return mediaJSON
	case equalFoldASCII(ct, "application/xml"), equalFoldASCII(ct, "text/xml"), hasSuffixFold(ct, "+xml"):
		return mediaXML
	}
	return mediaOther
}

func indexByteString(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func hasSuffixFold(s, suf string) bool {
	return len(s) >= len(suf) && equalFoldASCII(s[len(s)-len(suf):], suf)
}

// wholeBody inspects a body that is neither a form nor JSON as one value
// "body" (its first MaxValueBytes).
func (st *state) wholeBody(b []byte) {
	st.setPath(LocBody, "")
	st.emit(LocBody, b, decodeNone)
}

// jsonBody inspects a JSON body's strings, numbers and keys.
func (st *state) jsonBody(b []byte) {
	st.setPath(LocBody, "")
	st.json.reset()
	st.json.write(st, b)
	st.json.finish(st)
}

// appendPath appends s to the key path, cut at maxKeyPath (the request is
// then marked CapDepth: the key path no longer says where the value is).
func (st *state) appendPath(s string) { st.appendPathBytes(bytesOf(s)) }

func (st *state) appendPathBytes(b []byte) {
	if room := maxKeyPath - len(st.path); len(b) > room {
		st.capped |= CapDepth
		if room <= 0 {
			return
		}
		b = b[:room]
	}
	st.path = append(st.path, b...)
}

// nosqlKey checks a query or form key path for a NoSQL operator
// (user[$ne]=, $where=) and records a finding.
func (st *state) nosqlKey(loc Location, path []byte) bool {
	if !st.cfg.Detectors.Has(NoSQLInjection) {
		return false
	}
	if d := detectNoSQLKeyPath(path); d != "" {
		st.found(NoSQLInjection, d, loc, path, 0)
		return true
	}
	return false
}

// onKey checks one JSON object key found in the object at objPath: a NoSQL
// operator ({"$ne": …}), a signature in the key itself, or (on a write,
// against a trusted profile) a key the object never carries: mass
// assignment.
func (st *state) onKey(loc Location, objPath, key []byte) {
	if st.visitKey != nil {
		st.visitKey(objPath, key)
		return
	}
	if st.done {
		return
	}
	if st.cfg.Detectors.Has(NoSQLInjection) && len(key) > 1 && key[0] == '$' {
		if d := detectNoSQLOperator(key); d != "" {
			st.found(NoSQLInjection, d, loc, key, 0)
			return
		}
	}
	if classify(key)&^plain != 0 && st.check(loc, key, 0, false) {
		return
	}
	if st.write && st.prof != nil {
		st.prof.checkKey(st, objPath, key)
	}
}

// isWrite reports whether a method writes (POST, PUT, PATCH): JSON keys
// never seen on it are mass assignment.
func isWrite(m string) bool {
	return m == "POST" || m == "PUT" || m == "PATCH"
}
