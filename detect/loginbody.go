package detect

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"unicode/utf8"

	"github.com/vigil-project/vigil/detect/inspect"
)

// DefaultLoginUsernameFields are the form and JSON fields that name the
// account of a login, for an API that configures none
// (apis[].login_username_fields).
var DefaultLoginUsernameFields = []string{"username", "email", "login"}

// Bounds of reading a login body.
const (
	// MaxLoginBody is the most of a login body read for the user name:
	// a field past it is not looked for.
	MaxLoginBody = 64 << 10
	// MaxLoginUsernameFields bounds apis[].login_username_fields.
	MaxLoginUsernameFields = 16
	// MaxLoginFieldName bounds the length of one field name.
	MaxLoginFieldName = 64
	// MaxUsername is the longest user name kept (longer ones are cut, at
	// a character boundary), as for the header and JWT names.
	MaxUsername = maxRecordShort
	// maxLoginJSONDepth: a login body nested deeper is read no further.
	maxLoginJSONDepth = 64
	// maxLoginParts bounds the parts of a multipart login body read.
	maxLoginParts = 64
)

// usernameFields returns the fields naming the account in the API's login
// bodies: its own, DefaultLoginUsernameFields when it configures none (nil),
// none when it configured an empty list.
func (a *API) usernameFields() []string {
	if a == nil || a.LoginUsernameFields == nil {
		return DefaultLoginUsernameFields
	}
	return a.LoginUsernameFields
}

// ReadsLoginBody reports whether the body of a call to path is read for
// the user name: path is one of the API's login paths and the API names
// fields to read. It never allocates.
func (a *API) ReadsLoginBody(path string) bool {
	return len(a.usernameFields()) > 0 && a.IsLoginPath(path)
}

// LoginUsername returns the user name a login body to the API names (see
// the package function), "" when none.
func (a *API) LoginUsername(contentType string, body []byte) string {
	return LoginUsername(a.usernameFields(), contentType, body)
}

// LoginUsername returns the user name a login body names: the string value
// of the first of fields (in their order of preference; names compared
// without ASCII case) found in an application/x-www-form-urlencoded body,
// in a JSON body's objects at any depth (the first occurrence in the
// document), or in a multipart/form-data body's non-file parts. A body
// without a content type is read as JSON when it starts with '{', else as
// a form. Only the first MaxLoginBody bytes are read; a malformed or
// truncated body yields what was read before the fault. The name is
// normalised (NormalizeUsername) and is a new string, sharing no memory
// with body. Nothing else of the body is kept.
func LoginUsername(fields []string, contentType string, body []byte) string {
	if len(fields) == 0 || len(body) == 0 {
		return ""
	}
	if len(body) > MaxLoginBody {
		body = body[:MaxLoginBody]
	}
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(mt)
	switch {
	case mt == "":
		if t := bytes.TrimLeft(body, " \t\r\n"); len(t) > 0 && t[0] == '{' {
			return jsonUsername(fields, body)
		}
		return formUsername(fields, body)
	case isJSONMediaType(mt):
		return jsonUsername(fields, body)
	case strings.EqualFold(mt, "application/x-www-form-urlencoded"):
		return formUsername(fields, body)
	case strings.EqualFold(mt, "multipart/form-data"):
		return multipartUsername(fields, contentType, body)
	}
	return ""
}

// isJSONMediaType reports whether a media type (no parameters) is JSON:
// application/json, anything ending in /json or +json.
func isJSONMediaType(mt string) bool {
	if len(mt) < 5 {
		return false
	}
	tail := mt[len(mt)-5:]
	return strings.EqualFold(tail, "/json") || strings.EqualFold(tail, "+json")
}

// NormalizeUsername is the user name a login body's value stands for:
// surrounding white space trimmed, cut to MaxUsername bytes at a character
// boundary, and lower-cased when it looks like an e-mail address (holds an
// '@'), so that Admin@X.com and admin@x.com are one target. A value with
// a control character or invalid UTF-8 names no one (""). The result is a
// new string.
func NormalizeUsername(v []byte) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || !utf8.Valid(v) {
		return ""
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f {
			return ""
		}
	}
	v = cutRunes(v, MaxUsername)
	if bytes.IndexByte(v, '@') < 0 {
		return string(v)
	}
	return string(cutRunes(bytes.ToLower(v), MaxUsername))
}

// cutRunes cuts valid UTF-8 b to at most n bytes without splitting a
// character.
func cutRunes(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return b[:n]
}

// fieldIndex is the position of name in fields (ASCII case ignored), or -1.
func fieldIndex(fields []string, name []byte) int {
	if len(name) > MaxLoginFieldName {
		return -1
	}
	for i, f := range fields {
		if len(f) == len(name) && strings.EqualFold(f, string(name)) {
			return i
		}
	}
	return -1
}

// formUsername reads an application/x-www-form-urlencoded body.
func formUsername(fields []string, body []byte) string {
	best, name := len(fields), ""
	var kbuf [MaxLoginFieldName + 1]byte // one more: a longer key matches nothing
	for len(body) > 0 && best > 0 {
		var kv []byte
		if i := bytes.IndexByte(body, '&'); i >= 0 {
			kv, body = body[:i], body[i+1:]
		} else {
			kv, body = body, nil
		}
		k, v, _ := bytes.Cut(kv, []byte{'='})
		if len(k) > 3*MaxLoginFieldName {
			continue
		}
		if bytes.ContainsAny(k, "%+") {
			var ok bool
			if k, ok = unescapeForm(kbuf[:0], k); !ok {
				continue
			}
		}
		i := fieldIndex(fields, k)
		if i < 0 || i >= best {
			continue
		}
		if bytes.ContainsAny(v, "%+") {
			var ok bool
			if v, ok = unescapeForm(make([]byte, 0, min(len(v), 4*MaxUsername)), v); !ok {
				continue
			}
		}
		if n := NormalizeUsername(v); n != "" {
			best, name = i, n
		}
	}
	return name
}

// unescapeForm appends the form-decoding of s ('+' is a space, %XX a
// byte) to dst, up to its capacity (the rest is dropped); false for a bad
// escape.
func unescapeForm(dst, s []byte) ([]byte, bool) {
	for i := 0; i < len(s) && len(dst) < cap(dst); i++ {
		switch c := s[i]; c {
		case '+':
			dst = append(dst, ' ')
		case '%':
			if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
				return nil, false
			}
			dst = append(dst, byte(unhex(s[i+1])<<4|unhex(s[i+2])))
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst, true
}

// multipartUsername reads a multipart/form-data body's non-file parts.
func multipartUsername(fields []string, contentType string, body []byte) string {
	_, params, err := mime.ParseMediaType(contentType)
	boundary := params["boundary"]
	if err != nil || boundary == "" || len(boundary) > 70 {
		return ""
	}
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	best, name := len(fields), ""
	for n := 0; n < maxLoginParts && best > 0; n++ {
		p, err := r.NextRawPart() // no transfer decoding: a name is plain text
		if err != nil {
			break
		}
		i := fieldIndex(fields, []byte(p.FormName()))
		if i < 0 || i >= best || p.FileName() != "" {
			continue
		}
		v, err := io.ReadAll(io.LimitReader(p, 4*MaxUsername))
		if err != nil {
			break
		}
		if u := NormalizeUsername(v); u != "" {
			best, name = i, u
		}
	}
	return name
}

// jsonUsername reads a JSON body: the string values of keys named by
// fields, in objects at any depth up to maxLoginJSONDepth. It scans
// without building the document: malformed input ends the scan.
func jsonUsername(fields []string, body []byte) string {
	var (
		best, name = len(fields), ""
		depth      int
		object     [maxLoginJSONDepth]bool     // the open containers: object or array
		keyNext    bool                        // the next string is an object's key
		valueOf    = -1                        // the field whose value comes next, or -1
		kbuf       [MaxLoginFieldName + 1]byte // one more: a longer key matches nothing
	)
	for i := 0; i < len(body) && best > 0; i++ {
		switch c := body[i]; c {
		case ' ', '\t', '\r', '\n':
		case '{', '[':
			if depth == maxLoginJSONDepth {
				return name
			}
			object[depth] = c == '{'
			depth++
			keyNext, valueOf = c == '{', -1
		case '}', ']':
			if depth == 0 {
				return name
			}
			depth--
			keyNext, valueOf = false, -1
		case ',':
			keyNext, valueOf = depth > 0 && object[depth-1], -1
		case ':':
			keyNext = false
		case '"':
			end := inspect.JSONStringEnd(body, i+1)
			if end < 0 {
				return name // truncated
			}
			raw := body[i+1 : end]
			i = end
			switch {
			case keyNext:
				keyNext, valueOf = false, -1
				if k, ok := inspect.AppendJSONUnquoted(kbuf[:0], raw, len(kbuf)); ok {
					if f := fieldIndex(fields, k); f >= 0 && f < best {
						valueOf = f
					}
				}
			case valueOf >= 0:
				if v, ok := inspect.AppendJSONUnquoted(make([]byte, 0, min(len(raw), 4*MaxUsername)), raw, 4*MaxUsername); ok {
					if u := NormalizeUsername(v); u != "" {
						best, name = valueOf, u
					}
				}
				valueOf = -1
			}
		default: // a number, true, false, null, or garbage: no name
			valueOf = -1
		}
	}
	return name
}
