package detect

import "strings"

// CleanPath returns a request path as Envoy hands it over with
// normalize_path, merge_slashes and escaped slashes unescaped: percent-escapes
// of unreserved characters, '/' and '\' decoded, '\' read as '/', runs of
// slashes merged, "." and ".." segments resolved (never above the root); a
// trailing slash is kept. The examples' Envoy configs normalise paths before
// Vigil sees them; Vigil cleans them again so that a deployment that leaves
// that off still has its decoys, templates and APIs matched by every
// spelling of a path (//.env, /x/../.env, /%2e%65nv, /a%2F..%2F.env), as a
// lenient back end would read them. Other escapes are kept as they are.
// Decoding can make new escapes ("%2%65" → "%2e"), so it cleans until nothing
// changes, as a back end that decodes twice would read it, for at most
// maxCleanRounds rounds; escapes still nested deeper are kept as text. It returns path itself, without allocating, when there is nothing to
// clean.
func CleanPath(path string) string {
	for range maxCleanRounds {
		if !needsCleaning(path) {
			return path
		}
		next := cleanOnce(path)
		if next == path {
			return path // escapes that stay escaped ("%20")
		}
		path = next
	}
	if !needsCleaning(path) {
		return path
	}
	next := cleanOnce(path)
	if next == path {
		return path
	}
	// Escapes nested deeper than any back end decodes: what is left of
	// them is kept as text ('%' → "%25"), so that cleaning the result
	// again changes nothing.
	return strings.ReplaceAll(next, "%", "%25")
}

// maxCleanRounds bounds the decoding rounds, so a path of nested escapes
// costs a few passes over it, not one per layer.
const maxCleanRounds = 8

func cleanOnce(path string) string {
	// Decode what Envoy decodes; '\' and escaped separators become '/'.
	var b strings.Builder
	b.Grow(len(path))
	for i := 0; i < len(path); i++ {
		c := path[i]
		if hi, lo := escapeDigits(path, i); c == '%' && hi >= 0 && lo >= 0 {
			d := byte(hi<<4 | lo)
			if unreserved(d) || d == '/' || d == '\\' {
				c = d
				i += 2
			}
		}
		if c == '\\' {
			c = '/'
		}
		b.WriteByte(c)
	}
	decoded := b.String()
	// Resolve the segments.
	segs := make([]string, 0, strings.Count(decoded, "/")+1)
	for s := range strings.SplitSeq(decoded, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, s)
		}
	}
	out := "/" + strings.Join(segs, "/")
	if len(segs) > 0 && (strings.HasSuffix(decoded, "/") || strings.HasSuffix(decoded, "/.") || strings.HasSuffix(decoded, "/..")) {
		out += "/"
	}
	return out
}

// needsCleaning reports whether CleanPath would change path: an escape, a
// backslash, an empty or dot segment, or no leading slash.
func needsCleaning(path string) bool {
	if path == "" || path[0] != '/' {
		return path != "" && path != "*"
	}
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '%', '\\':
			return true
		case '/':
			if i+1 < len(path) && path[i+1] == '/' {
				return true
			}
			// A "." or ".." segment.
			j := i + 1
			for j < len(path) && path[j] == '.' {
				j++
			}
			if n := j - i - 1; (n == 1 || n == 2) && (j == len(path) || path[j] == '/') {
				return true
			}
		}
	}
	return false
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// escapeDigits returns the values of the two hex digits after path[i], or
// -1 where there is none.
func escapeDigits(path string, i int) (hi, lo int) {
	if i+2 >= len(path) {
		return -1, -1
	}
	return unhex(path[i+1]), unhex(path[i+2])
}
