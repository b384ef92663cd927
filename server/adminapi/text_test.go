package adminapi

import "testing"

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain Zürich — ok": "plain Zürich — ok",
		`a\b`:               `a\b`, // nothing escaped: kept as it is
		"a\x1b[31m\\b":      `a\x1b[31m\\b`,
		"\x00\x7f\u0085":    `\x00\x7f\u0085`,
		"l1\nl2\r\t":        `l1\nl2\r\t`,
		"rtl\u202e\u2066":   `rtl\u202e\u2066`,
		"bad \xff utf8":     `bad \xff utf8`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %s, want %s", in, got, want)
		}
	}
}
