package inspect

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// jsonStringTests feed the unit test, the benchmark and the fuzz seeds: raw
// is a JSON string's content, escapes kept.
var jsonStringTests = []struct {
	name  string
	raw   string
	limit int // 0: len(raw)
	want  string
	ok    bool
}{
	{"plain", `alice@example.com`, 0, "alice@example.com", true},
	{"empty", ``, 0, "", true},
	{"short escapes", `a\"b\\c\/d\be\ff\ng\rh\ti`, 0, "a\"b\\c/d\be\ff\ng\rh\ti", true},
	{"unicode", `\u0041d\u00e9le \u65e5`, 0, "Adéle 日", true},
	{"upper-case hex", `\u00C9`, 0, "É", true},
	{"surrogate pair", `x\ud83d\ude00y`, 0, "x😀y", true},
	{"lone high surrogate", `\ud83dx`, 0, "\uFFFDx", true},
	{"lone low surrogate", `\ude00`, 0, "\uFFFD", true},
	{"high then no low", `\ud83d\u0041`, 0, "\uFFFDA", true},
	{"high then high", `\ud83d\ud83d\ude00`, 0, "\uFFFD😀", true},
	{"high at the end", `\ud83d`, 0, "\uFFFD", true},
	{"raw bytes kept", "\xff\x00é", 0, "\xff\x00é", true},
	{"bad escape kept", `a\xb`, 0, "axb", false},
	{"bad unicode kept", `\u12zz`, 0, `\u12zz`, false},
	{"short unicode kept", `\u12`, 0, `\u12`, false},
	{"lone backslash at the end", `ab\`, 0, `ab\`, false},
	{"bad escape then more", `\q\u0041`, 0, "qA", false},
	{"limit cuts plain bytes", `abcdef`, 3, "abc", true},
	{"limit cuts before an escape", `ab\ncd`, 2, "ab", true},
	{"limit ends a character whole", `ab\u00e9`, 3, "ab", true},
	{"limit ends a pair whole", `a\ud83d\ude00`, 4, "a", true},
	{"limit past the decoding", `a\u0041`, 100, "aA", true},
	{"bad escape past the limit unread", `ab\x`, 2, "ab", true},
	{"bad unicode kept within the limit", `00\u`, 3, "00", false},
	{"limit zero", `ab`, -1, "", true},
}

func TestAppendJSONUnquoted(t *testing.T) {
	for _, tc := range jsonStringTests {
		t.Run(tc.name, func(t *testing.T) {
			limit := tc.limit
			switch {
			case limit == 0:
				limit = len(tc.raw)
			case limit < 0:
				limit = 0
			}
			got, ok := AppendJSONUnquoted([]byte("pre:"), []byte(tc.raw), limit)
			if string(got) != "pre:"+tc.want || ok != tc.ok {
				t.Errorf("AppendJSONUnquoted(%q, %d) = %q, %v, want %q, %v", tc.raw, limit, got, ok, "pre:"+tc.want, tc.ok)
			}
		})
	}
}

func TestJSONStringEnd(t *testing.T) {
	for _, tc := range []struct {
		b    string
		i    int
		want int
	}{
		{`"abc"`, 1, 4},
		{`"a\"b"`, 1, 5},
		{`"a\\"b"`, 1, 4},
		{`"a\\\"b"`, 1, 7},
		{`""`, 1, 1},
		{`"abc`, 1, -1},
		{`"ab\`, 1, -1},
		{`"ab\"`, 1, -1},
		{`{"k":"v"}`, 6, 7},
		{`"x"`, 3, -1},
		{`"x"`, 4, -1},
	} {
		if got := JSONStringEnd([]byte(tc.b), tc.i); got != tc.want {
			t.Errorf("JSONStringEnd(%q, %d) = %d, want %d", tc.b, tc.i, got, tc.want)
		}
	}
}

// An attacker's string of escapes with its closing quote far away, or
// none, is read in linear time: a 1 MiB one in well under a second, where
// looking for the quote again after each escape would take minutes.
func TestJSONStringEndLinear(t *testing.T) {
	for _, b := range [][]byte{
		bytes.Repeat([]byte(`\a`), 1<<19),
		append(bytes.Repeat([]byte(`\a`), 1<<19), '"'),
		bytes.Repeat([]byte(`\"`), 1<<19),
	} {
		want := -1
		if b[len(b)-1] == '"' && b[len(b)-2] != '\\' {
			want = len(b) - 1
		}
		if got := JSONStringEnd(b, 0); got != want {
			t.Errorf("JSONStringEnd of %d bytes = %d, want %d", len(b), got, want)
		}
	}
}

// Neither allocates into a buffer large enough.
func TestJSONStringAllocations(t *testing.T) {
	raw := []byte(`gam\tma \/ \u0041\ud83d\ude00 and more`)
	doc := append(append([]byte(`"`), raw...), '"')
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() {
		AppendJSONUnquoted(buf, raw, len(raw))
		JSONStringEnd(doc, 1)
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func BenchmarkAppendJSONUnquoted(b *testing.B) {
	for _, tc := range jsonStringTests[:6] {
		raw := []byte(tc.raw)
		buf := make([]byte, 0, len(raw))
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				AppendJSONUnquoted(buf, raw, len(raw))
			}
		})
	}
}

// FuzzJSONString: JSONStringEnd finds the first quote no backslash escapes;
// AppendJSONUnquoted stays within its limit and within raw's length, a
// smaller limit gives a prefix, and on a string encoding/json accepts it
// decodes as encoding/json does, reporting ok.
func FuzzJSONString(f *testing.F) {
	for _, tc := range jsonStringTests {
		f.Add(tc.raw, uint16(max(tc.limit, 0)))
	}
	f.Fuzz(func(t *testing.T, raw string, limit uint16) {
		b := []byte(raw)
		want := -1
		for i := 0; i < len(b); i++ {
			if b[i] == '\\' {
				i++
			} else if b[i] == '"' {
				want = i
				break
			}
		}
		if got := JSONStringEnd(b, 0); got != want {
			t.Fatalf("JSONStringEnd(%q) = %d, want %d", raw, got, want)
		}

		all, ok := AppendJSONUnquoted(nil, b, len(b))
		if len(all) > len(b) {
			t.Fatalf("AppendJSONUnquoted(%q) = %q, longer than raw", raw, all)
		}
		cut, _ := AppendJSONUnquoted(nil, b, int(limit))
		if len(cut) > int(limit) || !bytes.HasPrefix(all, cut) {
			t.Fatalf("AppendJSONUnquoted(%q, %d) = %q, not a prefix of %q within the limit", raw, limit, cut, all)
		}
		var dec string
		if err := json.Unmarshal([]byte(`"`+raw+`"`), &dec); err != nil {
			if ok && want < 0 && utf8.ValidString(raw) && !strings.ContainsFunc(raw, func(r rune) bool { return r < 0x20 }) {
				t.Fatalf("AppendJSONUnquoted(%q) ok, encoding/json: %v", raw, err)
			}
			return
		}
		if !ok || (utf8.ValidString(raw) && string(all) != dec) {
			t.Fatalf("AppendJSONUnquoted(%q) = %q, %v; encoding/json %q", raw, all, ok, dec)
		}
	})
}
