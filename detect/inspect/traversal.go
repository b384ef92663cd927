package inspect

import "bytes"

// detectTraversal finds a climb out of a directory (two or more dots and a
// separator, in any of the spellings decoders leave: overlong UTF-8, 0x2e
// text, "..;/") or a well-known sensitive file.
func detectTraversal(v []byte) string {
	if bytes.Contains(v, dotDot) || hasOddDots(v) {
		if d := detectDotDot(v); d != "" {
			return d
		}
	}
	return detectSensitiveFile(v)
}

var dotDot = []byte("..")

// hasOddDots reports whether v may spell a dot some other way: overlong
// UTF-8 (C0/C1/E0 lead bytes) or "0x2e"-style text.
func hasOddDots(v []byte) bool {
	for i, c := range v {
		if c == 0xc0 || c == 0xc1 || c == 0xe0 || c == '0' && i+1 < len(v) && (v[i+1] == 'x' || v[i+1] == 'X') {
			return true
		}
	}
	return false
}

func detectDotDot(v []byte) string {
	dots := 0
	for i := 0; i < len(v); {
		c, n := travByte(v[i:])
		i += n
		switch c {
		case '.':
			dots++
			continue
		case '/', '\\':
			if dots >= 2 {
				return DetDotDot
			}
		case ';':
			if dots >= 2 && i < len(v) && (v[i] == '/' || v[i] == '\\') {
				return DetDotDot
			}
		}
		dots = 0
	}
	return ""
}

func detectSensitiveFile(v []byte) string {
	// One pass: patterns are tried only where their first byte is.
	for i := 0; i < len(v); i++ {
		c := foldByte(v[i])
		for _, f := range sensitiveBy[c] {
			if len(v)-i >= len(f) && hasPrefixFoldSep(v[i:], f) {
				return DetSensitiveFile
			}
		}
	}
	return ""
}

// sensitiveBy indexes sensitiveFiles by their first byte.
var sensitiveBy = func() (by [256][]string) {
	for _, f := range sensitiveFiles {
		by[f[0]] = append(by[f[0]], f)
	}
	return by
}()

// hasPrefixFoldSep reports whether v starts with pat (lower case, '/' for
// both separators), ignoring case.
func hasPrefixFoldSep(v []byte, pat string) bool {
	for j := 0; j < len(pat); j++ {
		if foldByte(v[j]) != pat[j] {
			return false
		}
	}
	return true
}

// travByte reads one path character at the start of s, seeing through the
// spellings of '.', '/' and '\' that slip past a plain decoder: overlong
// UTF-8 (C0 AE, C0 AF, C1 9C, E0 80 AE/AF) and "0x2e"-style hex text.
func travByte(s []byte) (byte, int) {
	c := s[0]
	switch {
	case c == 0xc0 && len(s) > 1:
		switch s[1] {
		case 0xae:
			return '.', 2
		case 0xaf:
			return '/', 2
		}
	case c == 0xc1 && len(s) > 1 && s[1] == 0x9c:
		return '\\', 2
	case c == 0xe0 && len(s) > 2 && s[1] == 0x80:
		switch s[2] {
		case 0xae:
			return '.', 3
		case 0xaf:
			return '/', 3
		}
	case c == '0' && len(s) > 3 && (s[1] == 'x' || s[1] == 'X'):
		switch {
		case s[2] == '2' && (s[3] == 'e' || s[3] == 'E'):
			return '.', 4
		case s[2] == '2' && (s[3] == 'f' || s[3] == 'F'):
			return '/', 4
		case s[2] == '5' && (s[3] == 'c' || s[3] == 'C'):
			return '\\', 4
		}
	}
	return c, 1
}

// sensitiveFiles are files an attacker reads through a traversal or an
// absolute path, written in lower case with '/' (a '\' in the value
// matches '/').
var sensitiveFiles = [...]string{
	"/etc/passwd", "/etc/shadow", "/etc/group", "/etc/hosts", "/etc/issue", "/proc/self/",
	"/proc/version", "c:/windows/", "/windows/win.ini", "/winnt/", "boot.ini", "win.ini",
	"/system32/", "web-inf/web.xml", "/.ssh/", "/.htpasswd", "/.htaccess", "/.git/config",
	"/.env", "/etc/", "web-inf/", "/inetpub/", "global.asa",
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// foldByte folds case and treats '\' as '/'.
func foldByte(c byte) byte {
	if c == '\\' {
		return '/'
	}
	return lower(c)
}

// containsFold reports whether v contains pat (lower case, '/' for both
// separators), ignoring case.
func containsFold(v []byte, pat string) bool {
	if len(pat) == 0 {
		return true
	}
	p0 := pat[0]
	for i := 0; i+len(pat) <= len(v); i++ {
		if foldByte(v[i]) != p0 {
			continue
		}
		j := 1
		for j < len(pat) && foldByte(v[i+j]) == pat[j] {
			j++
		}
		if j == len(pat) {
			return true
		}
	}
	return false
}
