package inspect

import (
	"bytes"
	"encoding/base64"
	"unicode/utf8"
)

// Decodings is the set of decodings applied to a value before a detector
// matched it.
type Decodings uint8

// The decodings.
const (
	DecodedURL     Decodings = 1 << iota // percent-encoding (and '+' for a space in queries and forms)
	DecodedURL2                          // percent-encoding again (double encoding)
	DecodedUnicode                       // %uXXXX, \uXXXX, \xXX
	DecodedHTML                          // HTML character references
	DecodedBase64                        // a clearly base64 value
)

type decodeMode uint8

const (
	decodeNone  decodeMode = iota // JSON strings (already unescaped), headers
	decodeQuery                   // percent-encoding, '+' for a space
	decodePath                    // percent-encoding, '+' kept
)

// maxDecodeRounds bounds how many times the decoders run over a value that
// keeps changing (%2525252e…).
const maxDecodeRounds = 3

// normalize decodes raw into one of the state's buffers (raw itself when
// nothing needs decoding) and says which decodings applied.
func (st *state) normalize(raw []byte, mode decodeMode) ([]byte, Decodings) {
	var dec Decodings
	src := raw
	useA := true
	next := func() []byte {
		if useA {
			useA = false
			return st.a[:0]
		}
		useA = true
		return st.b[:0]
	}
	if mode != decodeNone && (bytes.IndexByte(src, '%') >= 0 || mode == decodeQuery && bytes.IndexByte(src, '+') >= 0) {
		if out, ok := urlDecode(next(), src, mode == decodeQuery); ok {
			src = out
			dec |= DecodedURL
		}
	}
	for range maxDecodeRounds {
		changed := false
		if bytes.IndexByte(src, '%') >= 0 {
			if out, ok := urlDecode(next(), src, false); ok {
				src, changed = out, true
				if dec&DecodedURL != 0 {
					dec |= DecodedURL2
				}
				dec |= DecodedURL
			}
		}
		if bytes.IndexByte(src, '\\') >= 0 {
			if out, ok := unescapeUnicode(next(), src); ok {
				src, changed = out, true
				dec |= DecodedUnicode
			}
		}
		if bytes.IndexByte(src, '&') >= 0 {
			if out, ok := htmlDecode(next(), src); ok {
				src, changed = out, true
				dec |= DecodedHTML
			}
		}
		if !changed {
			break
		}
	}
	// Keep the result out of the buffer the next call to next would hand
	// out: the caller may decode base64 into st.b64 only.
	return src, dec
}

// unhex is the value of a hex digit.
func unhex(c byte) (byte, bool) {
	if d := c - '0'; d < 10 {
		return d, true
	}
	if d := c | 0x20 - 'a'; d < 6 { // c|0x20: the letter in lower case
		return d + 10, true
	}
	return 0, false
}

// hexN reads n hex digits at the start of s.
func hexN(s []byte, n int) (r rune, ok bool) {
	if len(s) < n {
		return 0, false
	}
	for _, c := range s[:n] {
		h, ok := unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(h)
	}
	return r, true
}

// urlDecode appends src to dst with percent-escapes (%XX and the
// non-standard %uXXXX) decoded, and '+' as a space when plus is set.
// Malformed escapes are kept as they are. It reports whether anything was
// decoded.
func urlDecode(dst, src []byte, plus bool) ([]byte, bool) {
	changed := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '%' && i+2 < len(src):
			if h, ok := hexN(src[i+1:], 2); ok {
				dst = append(dst, byte(h))
				i += 2
				changed = true
				continue
			}
			if (src[i+1] == 'u' || src[i+1] == 'U') && i+5 < len(src) {
				if r, ok := hexN(src[i+2:], 4); ok {
					dst = utf8.AppendRune(dst, r)
					i += 5
					changed = true
					continue
				}
			}
			dst = append(dst, c)
		case c == '+' && plus:
			dst = append(dst, ' ')
			changed = true
		default:
			dst = append(dst, c)
		}
	}
	return dst, changed
}

// unescapeUnicode appends src to dst with \uXXXX, \u{X…} and \xXX escapes
// decoded; other backslashes are kept. It reports whether anything was
// decoded.
func unescapeUnicode(dst, src []byte) ([]byte, bool) {
	changed := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '\\' || i+1 >= len(src) {
			dst = append(dst, c)
			continue
		}
		switch src[i+1] {
		case 'u', 'U':
			if r, ok := hexN(src[i+2:], 4); ok {
				dst = utf8.AppendRune(dst, r)
				i += 5
				changed = true
				continue
			}
			if i+2 < len(src) && src[i+2] == '{' {
				var r rune
				j := i + 3
				for ; j < len(src) && j < i+10; j++ {
					h, ok := unhex(src[j])
					if !ok {
						break
					}
					r = r<<4 | rune(h)
				}
				if j < len(src) && src[j] == '}' && j > i+3 {
					dst = utf8.AppendRune(dst, r)
					i = j
					changed = true
					continue
				}
			}
		case 'x', 'X':
			if h, ok := hexN(src[i+2:], 2); ok {
				dst = append(dst, byte(h))
				i += 3
				changed = true
				continue
			}
		}
		dst = append(dst, c)
	}
	return dst, changed
}

// htmlNamed are the named character references attacks use; the ones
// marked loose are also recognised without their ';', as browsers do.
var htmlNamed = [...]struct {
	name  string
	char  byte
	loose bool
}{
	{"lt", '<', true}, {"gt", '>', true}, {"amp", '&', true}, {"quot", '"', true},
	{"apos", '\'', false}, {"colon", ':', false}, {"lpar", '(', false}, {"rpar", ')', false},
	{"sol", '/', false}, {"bsol", '\\', false}, {"semi", ';', false}, {"comma", ',', false},
	{"period", '.', false}, {"grave", '`', false}, {"dollar", '$', false}, {"lcub", '{', false},
	{"rcub", '}', false}, {"lbrace", '{', false}, {"rbrace", '}', false}, {"lsqb", '[', false},
	{"rsqb", ']', false}, {"lbrack", '[', false}, {"rbrack", ']', false}, {"excl", '!', false},
	{"quest", '?', false}, {"equals", '=', false}, {"percnt", '%', false}, {"num", '#', false},
	{"ast", '*', false}, {"plus", '+', false}, {"verbar", '|', false}, {"vert", '|', false},
	{"NewLine", '\n', false}, {"Tab", '\t', false}, {"nbsp", ' ', false}, {"hyphen", '-', false},
	{"dash", '-', false}, {"lowbar", '_', false}, {"commat", '@', false}, {"Hat", '^', false},
}

// htmlDecode appends src to dst with HTML character references decoded:
// numeric ones (&#60; &#x3c; with any leading zeros, the ';' optional) and
// the named ones attacks use. It reports whether anything was decoded.
func htmlDecode(dst, src []byte) ([]byte, bool) {
	changed := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '&' || i+2 >= len(src) {
			dst = append(dst, c)
			continue
		}
		if src[i+1] == '#' {
			j := i + 2
			hex := j < len(src) && (src[j] == 'x' || src[j] == 'X')
			if hex {
				j++
			}
			start := j
			var r rune
			for ; j < len(src) && j-start < 10; j++ {
				var d byte
				if hex {
					h, ok := unhex(src[j])
					if !ok {
						break
					}
					d = h
					r = r<<4 | rune(d)
				} else {
					if src[j] < '0' || src[j] > '9' {
						break
					}
					r = r*10 + rune(src[j]-'0')
				}
			}
			if j > start && r <= utf8.MaxRune && r >= 0 {
				if r == 0 {
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				if j < len(src) && src[j] == ';' {
					j++
				}
				i = j - 1
				changed = true
				continue
			}
			dst = append(dst, c)
			continue
		}
		matched := false
		for _, e := range htmlNamed {
			rest := src[i+1:]
			if len(rest) < len(e.name) || string(rest[:len(e.name)]) != e.name {
				continue
			}
			semi := len(rest) > len(e.name) && rest[len(e.name)] == ';'
			if !semi && !e.loose {
				continue
			}
			dst = append(dst, e.char)
			i += len(e.name)
			if semi {
				i++
			}
			matched, changed = true, true
			break
		}
		if !matched {
			dst = append(dst, c)
		}
	}
	return dst, changed
}

// minBase64 is the shortest value taken for base64: shorter ones are too
// often words.
const minBase64 = 16

// base64Text decodes src into dst when src is clearly base64 (standard or
// URL alphabet, at least 16 characters, padded to a multiple of four or
// unpadded, mixed character classes) and decodes to text (printable ASCII,
// tabs and newlines). dst must have room for len(src) bytes.
func base64Text(dst, src []byte) ([]byte, bool) {
	if len(src) < minBase64 || len(src) > cap(dst) {
		return nil, false
	}
	var upper, lower, digit, std, url bool
	pad := 0
	for i, c := range src {
		switch {
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= '0' && c <= '9':
			digit = true
		case c == '+' || c == '/':
			std = true
		case c == '-' || c == '_':
			url = true
		case c == '=':
			if i < len(src)-2 {
				return nil, false
			}
			pad++
		default:
			return nil, false
		}
		if pad > 0 && c != '=' {
			return nil, false
		}
	}
	if std && url || !(upper && lower) && !(digit && (upper || lower)) {
		return nil, false
	}
	enc := base64.StdEncoding
	switch {
	case url && pad > 0:
		enc = base64.URLEncoding
	case url:
		enc = base64.RawURLEncoding
	case pad == 0 && len(src)%4 != 0:
		enc = base64.RawStdEncoding
	}
	dst = dst[:cap(dst)]
	n, err := enc.Decode(dst, src)
	if err != nil || n == 0 {
		return nil, false
	}
	dst = dst[:n]
	for _, c := range dst {
		if (c < 0x20 || c >= 0x7f) && c != '\t' && c != '\n' && c != '\r' {
			return nil, false
		}
	}
	return dst, true
}

// base64 decodes v into the state's base64 buffer when it is clearly
// base64 text.
func (st *state) base64(v []byte) ([]byte, bool) {
	if len(v) < minBase64 {
		return nil, false
	}
	return base64Text(st.b64[:0], v)
}
