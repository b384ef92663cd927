package inspect

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// The JSON string helpers of the readers that hold a whole body (the login
// body's user name in detect, the OpenAPI judge in detect/spec); the
// streaming tokenizer of inspection (json.go) decodes as it goes.

// JSONStringEnd returns the index in b of the quote closing a JSON string
// whose content starts at i (just past its opening quote), or -1 when b ends
// first. A backslash escapes the byte after it. It runs in time linear in
// what it reads and never allocates.
func JSONStringEnd(b []byte, i int) int {
	// Most strings (keys, small values) end within a few bytes, found
	// sooner byte by byte than by a search's call.
	for s := b[:min(len(b), i+16)]; uint(i) < uint(len(s)); i++ {
		switch s[i] {
		case '"':
			return i
		case '\\':
			i++
		}
	}
	q := -1 // the first quote at or after i, once looked for
	for i < len(b) {
		if q < i {
			j := bytes.IndexByte(b[i:], '"')
			if j < 0 {
				return -1
			}
			q = i + j
		}
		e := bytes.IndexByte(b[i:q], '\\')
		if e < 0 {
			return q
		}
		i += e + 2 // the backslash and the byte it escapes
	}
	return -1
}

// AppendJSONUnquoted appends to dst the decoded content of a JSON string
// (raw: what lies between its quotes, escapes kept), at most limit bytes:
// what follows is dropped, and a character from a \u escape that would
// pass the limit ends it whole. A surrogate pair is one character; a lone
// surrogate becomes U+FFFD. The decoding is never longer than raw, so a
// limit of len(raw) reads it all.
//
// ok reports whether every escape read was valid JSON. An invalid one is
// appended leniently: \ and a byte other than a JSON escape's as the byte,
// a \u not followed by four hex digits as it is, a final lone backslash as
// itself.
func AppendJSONUnquoted(dst, raw []byte, limit int) (out []byte, ok bool) {
	ok = true
	end := len(dst) + min(limit, len(raw)) // the decoding is never longer than raw
	for i := 0; i < len(raw) && len(dst) < end; i++ {
		if c := raw[i]; c != '\\' {
			dst = append(dst, c) // byte by byte: cheaper than a copy's call for the short runs between escapes
			continue
		}
		if i+1 >= len(raw) {
			dst = append(dst, '\\')
			return dst, false
		}
		i++
		if raw[i] != 'u' {
			c, valid := jsonEscaped(raw[i])
			dst = append(dst, c)
			ok = ok && valid
			continue
		}
		r, hex := hexN(raw[i+1:], 4)
		if !hex {
			if len(dst)+2 > end {
				return dst, false
			}
			dst = append(dst, '\\', 'u')
			ok = false
			continue
		}
		i += 4
		if utf16.IsSurrogate(r) && i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
			if lo, hex := hexN(raw[i+3:], 4); hex {
				if p := utf16.DecodeRune(r, lo); p != utf8.RuneError {
					r = p
					i += 6
				}
			}
		}
		if utf16.IsSurrogate(r) {
			r = utf8.RuneError
		}
		if len(dst)+utf8.RuneLen(r) > end {
			return dst, ok
		}
		dst = utf8.AppendRune(dst, r)
	}
	return dst, ok
}

// jsonEscaped is the byte the escape \c stands for, c other than 'u'; ok is
// false for a c no JSON escape has, which stands for itself.
func jsonEscaped(c byte) (b byte, ok bool) {
	switch c {
	case '"', '\\', '/':
		return c, true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	}
	return c, false
}
