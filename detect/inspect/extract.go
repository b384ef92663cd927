package inspect

import "bytes"

// request extracts and inspects every value of r, in order: query, path
// segments, headers, cookies, body; it stops at the first finding or when
// the value cap is hit.
func (st *state) request(r *RequestView) {
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
		if st.nosqlKey(loc, st.path) {
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
	default:
		st.wholeBody(b)
	}
}

type media uint8

const (
	mediaOther media = iota
	mediaForm
	mediaJSON
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
	st.json.reset()
	st.json.write(st, b)
}

// nosqlKey checks a key path for a NoSQL operator; it records a finding.
func (st *state) nosqlKey(loc Location, path []byte) bool { return false }
