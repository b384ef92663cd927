package detect

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

const multipartLogin = "--XyZ\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"username\"\r\n\r\nnot-a-name\r\n" +
	"--XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter2\r\n" +
	"--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\ncarol\r\n--XyZ--\r\n"

// loginBodyTests feed the unit test, the benchmark and the fuzz seeds.
var loginBodyTests = []struct {
	name        string
	fields      []string // nil: the defaults
	contentType string
	body        string
	want        string
}{
	{"form", nil, "application/x-www-form-urlencoded", "username=alice&password=x", "alice"},
	{"form escapes", nil, "application/x-www-form-urlencoded; charset=utf-8", "password=x&username=%20al%69ce+b%20", "alice b"},
	{"form e-mail lower-cased", nil, "application/x-www-form-urlencoded", "email=Bob%40X.com&password=y", "bob@x.com"},
	{"form preference", nil, "application/x-www-form-urlencoded", "login=l&email=e@x&username=u", "u"},
	{"form bad escape skipped", nil, "application/x-www-form-urlencoded", "username=%zz&email=e@x", "e@x"},
	{"form field case", nil, "application/x-www-form-urlencoded", "UserName=dave", "dave"},
	{"form empty value", nil, "application/x-www-form-urlencoded", "username=+&login=l", "l"},
	{"json", nil, "application/json", `{"email":"Bob@X.com","password":"y"}`, "bob@x.com"},
	{"json nested", nil, "application/json", `{"user":{"email":"eve@x.org","password":"p"}}`, "eve@x.org"},
	{"json preference over depth", nil, "application/json", `{"login":"top","user":{"username":"deep"}}`, "deep"},
	{"json first occurrence", nil, "application/json", `{"a":[{"username":"one"},{"username":"two"}]}`, "one"},
	{"json escapes", nil, "application/vnd.api+json", `{"username":"\u0041d\u00e9le \ud83d\ude00"}`, "Adéle 😀"},
	{"json escaped key", nil, "application/json", `{"user\u006eame":"frank"}`, "frank"},
	{"json value not a string", nil, "application/json", `{"username":42,"email":"g@x"}`, "g@x"},
	{"json value is an object", nil, "application/json", `{"username":{"login":"h"}}`, "h"},
	{"json string values are not keys", nil, "application/json", `{"note":"username","x":["username","i"],"login":"j"}`, "j"},
	{"json truncated after name", nil, "application/json", `{"username":"kim","password":"sec`, "kim"},
	{"json truncated in name", nil, "application/json", `{"password":"x","username":"ki`, ""},
	{"json control character", nil, "application/json", `{"username":"a\nb","email":"c@d"}`, "c@d"},
	{"json top-level array", nil, "application/json", `[{"username":"lee"}]`, "lee"},
	{"json garbage", nil, "application/json", `}}]]{"username":"x"}`, ""},
	{"json bad escape", nil, "application/json", `{"username":"\x41","login":"m"}`, "m"},
	{"sniffed json", nil, "", `  {"username":"nina"}`, "nina"},
	{"sniffed form", nil, "", `username=oscar`, "oscar"},
	{"multipart", nil, "multipart/form-data; boundary=XyZ", multipartLogin, "carol"},
	{"multipart without boundary", nil, "multipart/form-data", multipartLogin, ""},
	{"other type", nil, "text/plain", "username=alice", ""},
	{"configured fields", []string{"user_id", "username"}, "application/json", `{"username":"u","user_id":"ID-7"}`, "ID-7"},
	{"configured fields exclude defaults", []string{"account"}, "application/x-www-form-urlencoded", "username=u&email=e@x", ""},
	{"no fields", []string{}, "application/json", `{"username":"u"}`, ""},
	{"empty body", nil, "application/json", "", ""},
	{"binary", nil, "application/json", "\x00\xff\"\x01{\"username\":\"\xff\xfe\"}", ""},
	{"long name cut", nil, "application/x-www-form-urlencoded", "username=" + strings.Repeat("é", 200), strings.Repeat("é", 128)},
}

func TestLoginUsername(t *testing.T) {
	for _, tc := range loginBodyTests {
		t.Run(tc.name, func(t *testing.T) {
			fields := tc.fields
			if fields == nil {
				fields = DefaultLoginUsernameFields
			}
			if got := LoginUsername(fields, tc.contentType, []byte(tc.body)); got != tc.want {
				t.Errorf("LoginUsername(%q, %q) = %q, want %q", tc.contentType, tc.body, got, tc.want)
			}
		})
	}
}

// TestLoginUsernameHostileBodies: bodies an attacker shapes give a safe
// answer: a name found within the first MaxLoginBody bytes, none past it,
// none from nesting past the depth bound, and never a crash.
func TestLoginUsernameHostileBodies(t *testing.T) {
	f := DefaultLoginUsernameFields
	pad := strings.Repeat(`{"a":1},`, 10<<20/8)
	if got := LoginUsername(f, "application/json", []byte(`{"username":"first","pad":[`+pad+`]}`)); got != "first" {
		t.Errorf("10 MB JSON with the name first: %q", got)
	}
	if got := LoginUsername(f, "application/json", []byte(`{"pad":[`+pad+`],"username":"late"}`)); got != "" {
		t.Errorf("name past %d bytes read: %q", MaxLoginBody, got)
	}
	if got := LoginUsername(f, "application/x-www-form-urlencoded", []byte(strings.Repeat("a=b&", 10<<20/4)+"username=late")); got != "" {
		t.Errorf("form name past the cap read: %q", got)
	}
	deep := strings.Repeat(`{"a":`, 100000) + `{"username":"deep"}`
	if got := LoginUsername(f, "application/json", []byte(deep)); got != "" {
		t.Errorf("name nested 100000 deep read: %q", got)
	}
	shallow := strings.Repeat(`{"a":`, maxLoginJSONDepth-1) + `{"username":"ok"}`
	if got := LoginUsername(f, "application/json", []byte(shallow)); got != "ok" {
		t.Errorf("name nested %d deep: %q", maxLoginJSONDepth, got)
	}
	if got := LoginUsername(f, "application/json", bytes.Repeat([]byte{'"', '\\'}, 40000)); got != "" {
		t.Errorf("quotes and backslashes: %q", got)
	}
	if got := LoginUsername(f, "multipart/form-data; boundary=b", bytes.Repeat([]byte("--b\r\nContent-Disposition: form-data; name=x\r\n\r\ny\r\n"), 5000)); got != "" {
		t.Errorf("many parts: %q", got)
	}
}

func TestNormalizeUsername(t *testing.T) {
	for in, want := range map[string]string{
		"  alice\t":    "alice",
		"Alice":        "Alice", // not an e-mail: letter case kept, as header names are
		"Admin@X.COM":  "admin@x.com",
		"ÉMILE@X.FR":   "émile@x.fr",
		"a\x00b":       "",
		"a\x7fb":       "",
		"\xff":         "",
		"":             "",
		"   ":          "",
		"x" + "\u00a0": "x",
		"日本語のユーザー名":    "日本語のユーザー名",
	} {
		if got := NormalizeUsername([]byte(in)); got != want {
			t.Errorf("NormalizeUsername(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadsLoginBody(t *testing.T) {
	shop := &API{Name: "shop", LoginPaths: []string{"/shop/login"}}
	off := &API{Name: "off", LoginPaths: []string{"/login"}, LoginUsernameFields: []string{}}
	for _, tc := range []struct {
		api  *API
		path string
		want bool
	}{
		{shop, "/shop/login", true},
		{shop, "/shop/items", false},
		{shop, "/shop/relogin", false},
		{off, "/login", false},
		{&API{}, "/oauth/token", true}, // the default login paths and fields
		{nil, "/login", true},
	} {
		if got := tc.api.ReadsLoginBody(tc.path); got != tc.want {
			t.Errorf("%v.ReadsLoginBody(%q) = %v, want %v", tc.api, tc.path, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { shop.ReadsLoginBody("/shop/items/7") }); n != 0 {
		t.Errorf("ReadsLoginBody of a call that is no login: %v allocations", n)
	}
}

func BenchmarkLoginUsername(b *testing.B) {
	for _, tc := range loginBodyTests[:12] {
		body := []byte(tc.body)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				LoginUsername(DefaultLoginUsernameFields, tc.contentType, body)
			}
		})
	}
}

// FuzzLoginUsername reads arbitrary login bodies, attacker-chosen, under
// each content type: never a crash or a hang; a name found is valid
// UTF-8 of at most MaxUsername bytes without surrounding space or control
// characters, shares no memory with the body, and is the same when the
// body is read again after being overwritten.
func FuzzLoginUsername(f *testing.F) {
	for _, tc := range loginBodyTests {
		f.Add(tc.contentType, tc.body)
	}
	f.Fuzz(func(t *testing.T, contentType, body string) {
		b := []byte(body)
		got := LoginUsername(DefaultLoginUsernameFields, contentType, b)
		if got == "" {
			return
		}
		if len(got) > MaxUsername || !utf8.ValidString(got) || strings.TrimSpace(got) != got || strings.ContainsAny(got, "\x00\r\n\x7f") {
			t.Fatalf("LoginUsername(%q, %q) = %q", contentType, body, got)
		}
		for i := range b {
			b[i] = 'Z'
		}
		if again := LoginUsername(DefaultLoginUsernameFields, contentType, []byte(body)); again != got {
			t.Fatalf("read twice: %q then %q", got, again)
		}
	})
}

// BenchmarkLoginUsernameLongJSON: a login JSON body of about 8 KiB of other
// fields (strings with and without escapes, numbers, nesting), the name last.
func BenchmarkLoginUsernameLongJSON(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"device":{"id":"0b6b4bd2-5a1e-4a8e-9d3e-2f7c1c9b8a11","caps":[1,2,3]},"notes":[`)
	for i := range 100 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"k":"a plain note of some length","e":"esc\"aped \u00e9 \\ value","n":12345}`)
	}
	sb.WriteString(`],"password":"hunter2","username":"Alice@Example.com"}`)
	body := []byte(sb.String())
	if got := LoginUsername(DefaultLoginUsernameFields, "application/json", body); got != "alice@example.com" {
		b.Fatalf("got %q", got)
	}
	b.ReportAllocs()
	for b.Loop() {
		LoginUsername(DefaultLoginUsernameFields, "application/json", body)
	}
}
