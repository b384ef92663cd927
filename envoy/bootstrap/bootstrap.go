// Package bootstrap validates Envoy bootstrap files (envoy.yaml) without an Envoy binary.
//
// It owns the offline approximation of `envoy --mode validate` that Vigil's examples and
// users' configs are checked with:
//
//  1. YAML → JSON (sigs.k8s.io/yaml) → protojson into envoy.config.bootstrap.v3.Bootstrap,
//     which rejects unknown fields, bad enum names, bad durations and unresolvable @types;
//  2. the protoc-gen-validate rules (ValidateAll) of the bootstrap and, because PGV does not
//     look inside google.protobuf.Any, of every message packed in a typed_config or other Any;
//  3. semantic checks that Envoy's C++ filter factories make and PGV cannot: cluster
//     references, router placement, filter names used as typed_per_filter_config keys,
//     ext_proc mode rules, HTTP/2 on gRPC clusters, duplicate names.
//
// Every problem is reported at once, each with the field path it was found at. Positions
// are proto field paths (static_resources.listeners[0:ingress]...), not YAML lines.
//
// What it cannot see: which extensions a given Envoy build has, and fields newer than the
// Envoy version you deploy (the API here is go-control-plane envoy v1.40.0). Only the
// extension types imported in extensions.go are known; any other @type is an error.
package bootstrap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// ValidateFile reads an Envoy bootstrap file and validates it like ValidateYAML. Each
// reported problem is prefixed with path.
func ValidateFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read envoy bootstrap: %w", err)
	}
	err = ValidateYAML(data)
	if err == nil {
		return nil
	}
	problems := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		problems = joined.Unwrap()
	}
	wrapped := make([]error, len(problems))
	for i, p := range problems {
		wrapped[i] = fmt.Errorf("%s: %w", path, p)
	}
	return errors.Join(wrapped...)
}

// ValidateYAML validates an Envoy bootstrap given as YAML (or JSON). It returns nil when
// the bootstrap is valid, and otherwise an errors.Join of every problem found, one per
// line, each starting with the field path it concerns.
//
// A bootstrap that does not decode (bad YAML, repeated key, unknown field, bad enum,
// unknown @type) is reported with the first decoding error only: the later checks need a
// decoded message. Only the first YAML document is read.
func ValidateYAML(data []byte) error {
	js, err := yaml.YAMLToJSONStrict(data) // strict: a repeated key is an error, not "last one wins"
	if err != nil {
		return fmt.Errorf("parse yaml: %w", err)
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return errors.New("parse yaml: empty document")
	}
	var bs bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &bs); err != nil {
		if path := jsonPathOfError(js, err); path != "" {
			return fmt.Errorf("%s: decode: %w", path, err)
		}
		return fmt.Errorf("decode: %w", err)
	}
	return validate(&bs)
}

// validate runs the PGV rules (deeply) and the semantic checks on a decoded bootstrap.
func validate(bs *bootstrapv3.Bootstrap) error {
	w := newWalker()
	w.walk(bs.ProtoReflect(), "", true)
	problems := append(w.problems, w.check(bs)...)
	return errors.Join(problems...)
}

// protojsonPos matches the position protojson puts in its errors, "(line 1:1757)". The
// column counts runes, starting at 1.
var protojsonPos = regexp.MustCompile(`\(line (\d+):(\d+)\)`)

// jsonPathOfError turns the position in a protojson error into a field path in the JSON
// document (YAMLToJSON output is one line, so the position alone tells a YAML user
// nothing). It returns "" when the error has no usable position.
func jsonPathOfError(js []byte, err error) string {
	m := protojsonPos.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(js[off:], '\n')
		if i < 0 {
			return ""
		}
		off += i + 1
	}
	for c := 1; c < col && off < len(js); c++ {
		_, size := utf8.DecodeRune(js[off:])
		off += size
	}
	return jsonPathAt(js, off)
}

// jsonFrame is one open object or array while scanning a JSON document.
type jsonFrame struct {
	object    bool
	key       string // object: the current key
	expectKey bool   // object: the next string token is a key
	index     int    // array: index of the current element
}

// jsonPathAt returns the path (a.b[2].c) of the JSON token that covers byte offset off.
func jsonPathAt(js []byte, off int) string {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var stack []jsonFrame
	render := func(withKey string) string {
		var b strings.Builder
		for i, f := range stack {
			switch {
			case !f.object:
				fmt.Fprintf(&b, "[%d]", f.index)
			case i == len(stack)-1 && withKey != "":
				writeKey(&b, withKey)
			case !f.expectKey:
				writeKey(&b, f.key)
			}
		}
		return b.String()
	}
	valueDone := func() {
		if len(stack) == 0 {
			return
		}
		top := &stack[len(stack)-1]
		if top.object {
			top.expectKey = true
		} else {
			top.index++
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return render("")
		}
		if s, ok := tok.(string); ok && len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].expectKey {
			if dec.InputOffset() > int64(off) {
				return render(s)
			}
			stack[len(stack)-1].key = s
			stack[len(stack)-1].expectKey = false
			continue
		}
		if dec.InputOffset() > int64(off) {
			return render("")
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, jsonFrame{object: true, expectKey: true})
		case json.Delim('['):
			stack = append(stack, jsonFrame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}

// writeKey appends .key, or [key] for keys that are not field names (map keys such as
// envoy.filters.http.ext_proc), matching the paths of the other errors.
func writeKey(b *strings.Builder, key string) {
	if strings.ContainsAny(key, "./: ") {
		fmt.Fprintf(b, "[%s]", key)
		return
	}
	if b.Len() > 0 {
		b.WriteByte('.')
	}
	b.WriteString(key)
}
