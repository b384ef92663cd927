package adminapi

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Strings people store through the admin API (a list entry's reason) and
// strings Vigil records from traffic (user names, paths, user agents) end
// up on an operator's terminal. The admin API refuses control characters
// where a person writes the string; the CLI escapes them wherever it prints
// a stored one, so that no escape sequence reaches the terminal.

// unsafeRune reports whether r must not reach a terminal as it is: C0 and
// C1 controls, DEL, the line and paragraph separators, and the
// bidirectional formatting characters that reorder what is displayed.
func unsafeRune(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return true
	case r == '\u2028' || r == '\u2029':
		return true
	case r == '\u061c' || r == '\u200e' || r == '\u200f':
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}

// CheckPrintable refuses a string holding control or bidirectional
// formatting characters, naming the first one.
func CheckPrintable(s string) error {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return fmt.Errorf("invalid UTF-8 at byte %d", i)
			}
		}
		if unsafeRune(r) {
			return fmt.Errorf("control character %U at byte %d is not allowed", r, i)
		}
	}
	return nil
}

// Printable returns s with control and bidirectional formatting characters
// and invalid UTF-8 written as Go escapes (\x1b, \n, \u202e), and a
// backslash doubled when anything was escaped, so that the output cannot
// be mistaken for the stored string.
func Printable(s string) string {
	clean := true
	for i, r := range s {
		if unsafeRune(r) || r == utf8.RuneError && !validAt(s, i) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case unsafeRune(r) && r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += n
	}
	return b.String()
}

func validAt(s string, i int) bool {
	_, n := utf8.DecodeRuneInString(s[i:])
	return n > 1
}
