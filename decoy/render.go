package decoy

// Rendering: the pages are text/template files under templates/, parsed once
// from the embedded file system. A template escapes every value it inserts
// with the escaper of the text it inserts it into (escapeHTML, jsString,
// xmlAttr, sqlString, envValue, json); text/template rather than
// html/template because the pages copy real servers byte for byte, and
// html/template would rewrite values in URL attributes and scripts its own
// way. Then the headers of each server an answer can pretend to come from.

import (
	"bytes"
	"embed"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

// pages are the parsed templates, named by file name ("wp-login.html.tmpl").
var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"escapeHTML": html.EscapeString,
	"jsString":   jsString,
	"xmlAttr":    xmlAttr,
	"sqlString":  sqlString,
	"envValue":   envValue,
	"json":       jsonValue,
}).ParseFS(templateFS, "templates/*.tmpl"))

// render executes a template. The templates are static and their data typed,
// so execution fails only on a bug that the golden tests would show; the
// page is then cut where it failed, which is still no crash.
func render(name string, data any) []byte {
	var b bytes.Buffer
	_ = pages.ExecuteTemplate(&b, name, data)
	return b.Bytes()
}

// renderJSON executes a JSON template and lays the result out as the
// servers it imitates do: compact, or indented by indent, and a newline.
func renderJSON(name string, data any, indent string) []byte {
	src := render(name, data)
	var out bytes.Buffer
	if json.Compact(&out, src) != nil {
		return append(src, '\n')
	}
	if indent != "" {
		compact := bytes.Clone(out.Bytes())
		out.Reset()
		_ = json.Indent(&out, compact, "", indent) // compact is valid JSON
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// jsonValue is v as JSON: a string or the strings of a []string by
// jsonString, anything else (numbers, booleans, nil, arrays and structs of
// numbers) by encoding/json.
func jsonValue(v any) string {
	switch v := v.(type) {
	case string:
		return jsonString(v)
	case []string:
		var b strings.Builder
		b.WriteByte('[')
		for i, s := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(jsonString(s))
		}
		b.WriteByte(']')
		return b.String()
	}
	j, err := json.Marshal(v)
	if err != nil { // the types passed here cannot fail
		return "null"
	}
	return string(j)
}

// jsonString returns s as a JSON string. Unlike encoding/json it leaves
// HTML characters alone, so that tokens appear in the body as minted;
// control characters, U+2028, U+2029 and invalid UTF-8 (as U+FFFD) are
// \u-escaped.
func jsonString(s string) string {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20 || r == utf8.RuneError || r == '\u2028' || r == '\u2029':
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return string(append(b, '"'))
}

// envValue quotes a dotenv value when it needs it.
func envValue(v string) string {
	if !strings.ContainsAny(v, " \t\n\"'#$\\`") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "\n", `\n`)
	return `"` + r.Replace(v) + `"`
}

// sqlString returns s as a MySQL string literal.
func sqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}

// xmlAttr escapes s for an XML attribute value.
func xmlAttr(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}

// jsString returns s as a JavaScript string literal safe inside a script
// element.
func jsString(s string) string {
	b, err := json.Marshal(s) // escapes <, > and &
	if err != nil {
		return `""`
	}
	return string(b)
}

// server is the software an answer pretends to come from: its headers and
// its ETag format.
type server uint8

const (
	nginx server = iota
	apache
	php // Apache with PHP
	iis
	spring // Spring Boot with Spring Security's default headers
	goHTTP // Go's net/http, which adds nothing
)

const (
	nginxVersion  = "nginx/1.22.1"
	apacheVersion = "Apache/2.4.57 (Debian)"
	httpTime      = "Mon, 02 Jan 2006 15:04:05 GMT"
)

func (s server) headers(hdr [][2]string) [][2]string {
	switch s {
	case nginx:
		hdr = append(hdr, [2]string{"server", nginxVersion})
	case apache:
		hdr = append(hdr, [2]string{"server", apacheVersion})
	case php:
		hdr = append(hdr, [2]string{"server", apacheVersion}, [2]string{"x-powered-by", "PHP/8.2.18"})
	case iis:
		hdr = append(hdr, [2]string{"server", "Microsoft-IIS/10.0"}, [2]string{"x-powered-by", "ASP.NET"})
	case spring:
		hdr = append(hdr,
			[2]string{"x-content-type-options", "nosniff"},
			[2]string{"x-xss-protection", "0"},
			[2]string{"cache-control", "no-cache, no-store, max-age=0, must-revalidate"},
			[2]string{"pragma", "no-cache"},
			[2]string{"expires", "0"},
			[2]string{"x-frame-options", "DENY"})
	}
	return hdr
}

// respond returns an answer with the content type, the server's headers and
// extra headers.
func respond(s server, status int, ctype string, body []byte, extra ...[2]string) Answer {
	hdr := s.headers([][2]string{{"content-type", ctype}})
	return Answer{Status: status, Headers: append(hdr, extra...), Body: body}
}

// file returns body as a static file served by s, modified some days ago.
func (h *hit) file(s server, ctype string, body []byte) Answer {
	return fileAt(s, ctype, body, h.ago(2*day, 40*day))
}

// fileAt returns body as a static file served by s, modified at mtime, with
// the server's ETag format.
func fileAt(s server, ctype string, body []byte, mtime time.Time) Answer {
	var etag string
	switch s {
	case apache:
		etag = fmt.Sprintf(`"%x-%x"`, len(body), mtime.UnixMicro())
	case iis:
		etag = fmt.Sprintf(`"%x:0"`, mtime.UnixNano()/100+116444736000000000) // FILETIME
	default:
		etag = fmt.Sprintf(`"%x-%x"`, mtime.Unix(), len(body))
	}
	return respond(s, 200, ctype, body,
		[2]string{"last-modified", mtime.Format(httpTime)},
		[2]string{"etag", etag},
		[2]string{"accept-ranges", "bytes"})
}
