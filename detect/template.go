package detect

import (
	"strings"
	"unicode/utf8"
)

// IDPlaceholder replaces ID-like path segments in endpoint templates.
const IDPlaceholder = "{id}"

const (
	maxTemplateSegments = 32
	maxSegmentBytes     = 64
)

// TemplatePath turns a request path into its endpoint template: the query is
// dropped, empty segments are collapsed, and segments that look like object
// IDs (numbers, UUIDs, long hex, long mixed tokens, e-mail addresses, dates)
// become {id}. Paths deeper than 32 segments are cut there and end in "/…";
// segments longer than 64 bytes are cut at a character boundary.
func TemplatePath(path string) string {
	var buf [256]byte
	return string(AppendTemplate(buf[:0], path))
}

// AppendTemplate appends the endpoint template of path to dst, as
// TemplatePath returns it.
func AppendTemplate(dst []byte, path string) []byte {
	dst, _ = appendTemplate(dst, path)
	return dst
}

// appendTemplate appends the endpoint template of path to dst and returns
// the last segment of the whole path that is an ID, if any: the object the
// call reads.
func appendTemplate(dst []byte, path string) ([]byte, string) {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	n := 0
	lastID := ""
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" {
			continue
		}
		id := IsIDSegment(seg)
		if id {
			lastID = seg
		}
		if n > maxTemplateSegments {
			continue // past the template's end: only the last ID is wanted
		}
		if n == maxTemplateSegments {
			dst = append(dst, "/…"...)
			n++
			continue
		}
		n++
		dst = append(dst, '/')
		if id {
			dst = append(dst, IDPlaceholder...)
			continue
		}
		if len(seg) > maxSegmentBytes {
			// The cut may look like an ID where the whole did not (64
			// digits followed by punctuation): classify what is kept.
			if seg = truncateSegment(seg); IsIDSegment(seg) {
				seg = IDPlaceholder
			}
		}
		dst = append(dst, seg...)
	}
	if n == 0 {
		dst = append(dst, '/')
	}
	return dst, lastID
}

// truncateSegment cuts seg, longer than maxSegmentBytes, to at most that
// many bytes without splitting a UTF-8 sequence (invalid UTF-8 is cut as is).
func truncateSegment(seg string) string {
	for i := maxSegmentBytes; i > maxSegmentBytes-utf8.UTFMax; i-- {
		if utf8.RuneStart(seg[i]) {
			return seg[:i]
		}
	}
	return seg[:maxSegmentBytes]
}

// IsIDSegment reports whether one path segment looks like an object ID
// rather than a resource name.
func IsIDSegment(seg string) bool {
	if seg == "" || seg == IDPlaceholder {
		return seg != ""
	}
	var digits, hex, letters, other int
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
			hex++
		case c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F':
			hex++
			letters++
		case c >= 'g' && c <= 'z' || c >= 'G' && c <= 'Z':
			letters++
		case c == '@':
			return strings.IndexByte(seg, '.') > 0 // e-mail address
		default:
			other++
		}
	}
	switch {
	case digits == len(seg): // 42, 1700000000
		return true
	case isUUID(seg):
		return true
	case hex == len(seg) && len(seg) >= 16 && digits > 0: // sha1, ObjectId, long hex
		return true
	case isDate(seg):
		return true
	case len(seg) >= 20 && digits >= 2 && digits+letters+other == len(seg) && other <= len(seg)/4:
		// base64/base62 keys, ULIDs, prefixed ids like ord_2xK9...
		return true
	case len(seg) >= 8 && digits >= 4 && digits*2 >= len(seg)-strings.Count(seg, "-")-strings.Count(seg, "_"):
		// mostly digits: INV-2024-000123, 12345-67
		return true
	case len(seg) > 2 && digits > 0 && (strings.HasPrefix(seg, "0x") || strings.HasPrefix(seg, "0X")) && hex == len(seg)-1:
		return true
	}
	return false
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// isDate matches 2024-01-31 and 20240131T120000Z-like segments.
func isDate(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	for i := 0; i < 10; i++ {
		if i == 4 || i == 7 {
			continue
		}
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// DiscoveredBase returns the base path of an API discovered from a request
// path: the first segment, and the second too when the first is a version or
// a generic prefix such as "api" (/api/v2/orders/7 → /api/v2/orders).
func DiscoveredBase(path string) string {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	var segs []string
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" {
			continue
		}
		if IsIDSegment(seg) || len(seg) > 64 || len(segs) == 3 {
			break
		}
		segs = append(segs, seg)
		if !isGenericPrefix(seg) {
			break
		}
	}
	if len(segs) == 0 {
		return "/"
	}
	return "/" + strings.Join(segs, "/")
}

func isGenericPrefix(seg string) bool {
	switch strings.ToLower(seg) {
	case "api", "apis", "rest", "services", "service", "public", "internal", "gw", "gateway":
		return true
	}
	// v1, v2, v1beta1, v3.1
	if len(seg) >= 2 && (seg[0] == 'v' || seg[0] == 'V') && seg[1] >= '0' && seg[1] <= '9' {
		return len(seg) <= 8
	}
	return false
}

// DiscoveredName names an API discovered from its host and base path.
func DiscoveredName(host, base string) string {
	host = strings.ToLower(HostOnly(host))
	if host == "" {
		host = "unknown-host"
	}
	if len(host) > 253 {
		host = host[:253]
	}
	if base == "/" {
		return host
	}
	return host + base
}

// StripParams removes ";parameters" from every path segment
// (/shop;jsessionid=1F2E/items → /shop/items). Back ends ignore them for
// routing, and they carry session IDs that must not be logged or kept. It
// allocates only when there is one.
func StripParams(path string) string {
	if strings.IndexByte(path, ';') < 0 {
		return path
	}
	b := make([]byte, 0, len(path))
	skip := false
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case c == '/':
			skip = false
			b = append(b, c)
		case c == ';':
			skip = true
		case !skip:
			b = append(b, c)
		}
	}
	return string(b)
}
