// Package spec loads an API's OpenAPI 3.0 or 3.1 document (YAML or JSON)
// at start, with github.com/getkin/kin-openapi, and compiles it into a
// positive model the hot path consults without a generic validator: a tree
// of path templates per base path, per operation its parameters (path,
// query, header, cookie) with type, format, enum, required, pattern and
// bounds, and its JSON request body's schema (properties, required ones,
// additionalProperties, read-only ones, items).
//
// Judge decides one request against it: a call the document does not
// allow (an unknown path or method under the API's base path, a missing
// required parameter or property, a value of the wrong type, format,
// enum, pattern or bounds) is a schema_violation; a JSON property the
// document does not declare, or declares read-only, sent on a write (POST,
// PUT, PATCH) is a mass_assignment. A conforming request is judged without
// allocating.
//
// The package imports nothing of Vigil but detect/inspect, so detect and
// envoy/ can call it on the hot path. Its sibling detect/spec/export goes
// the other way: the inventory marked shadow and zombie against a
// document, and exported as an OpenAPI 3.1 document.
package spec

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// maxDocumentBytes bounds the size of a document read.
const maxDocumentBytes = 32 << 20

// Spec is a compiled OpenAPI document. It is immutable once loaded and
// safe for concurrent use.
type Spec struct {
	// Source is where the document was read from (its file), for messages.
	Source string
	// Version is the document's openapi field ("3.0.3", "3.1.0"); Title
	// and APIVersion its info.
	Version, Title, APIVersion string
	// BasePaths are the path prefixes of its servers ("" for the root),
	// longest first.
	BasePaths []string

	root *node
	ops  []*Operation
}

// Operation is one method of one path template of the document.
type Operation struct {
	// Method is upper case ("GET"); Path is the document's template
	// ("/pets/{petId}"), relative to the base path.
	Method, Path string
	// ID is the operationId, if any.
	ID string

	params   []*param // query, header, cookie (path ones are in pathVals)
	pathVals []*param // by segment index of the template, nil for literals
	required uint64   // bit i: params[i] is required (the first 64)

	media        []string // the request body's media types declared, lower case
	body         *schema  // the JSON request body's schema; nil: not checked
	bodyRequired bool
	form         *schema // an application/x-www-form-urlencoded body's schema
}

// Operations lists the document's operations, sorted by path then method.
func (s *Spec) Operations() []*Operation { return s.ops }

// Key is "METHOD path".
func (o *Operation) Key() string { return o.Method + " " + o.Path }

// Load reads and compiles the OpenAPI 3.0 or 3.1 document at path (YAML
// or JSON). External $refs may name other local files, never URLs. An
// invalid document is an error naming the file and what is wrong.
func Load(path string) (*Spec, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("openapi %s: %w", path, err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("openapi %s: is a directory, not a document", path)
	}
	if fi.Size() > maxDocumentBytes {
		return nil, fmt.Errorf("openapi %s: %d bytes, more than the %d a document may have", path, fi.Size(), maxDocumentBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("openapi %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	return parse(data, path, &url.URL{Path: filepath.ToSlash(abs)})
}

// Parse compiles a document held in memory (YAML or JSON); name is for
// messages. External $refs are refused.
func Parse(data []byte, name string) (*Spec, error) {
	return parse(data, name, nil)
}

func parse(data []byte, name string, location *url.URL) (s *Spec, err error) {
	defer func() {
		// kin-openapi is well tested, but a document is outside input: a
		// panic inside it is a load error, never a crash.
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("openapi %s: the document could not be read (%v)", name, r)
		}
	}()
	if len(data) > maxDocumentBytes {
		return nil, fmt.Errorf("openapi %s: %d bytes, more than the %d a document may have", name, len(data), maxDocumentBytes)
	}
	if strings.TrimSpace(string(data)) == "" {
		return nil, fmt.Errorf("openapi %s: the document is empty", name)
	}
	loader := openapi3.NewLoader()
	loader.Context = context.Background()
	loader.IsExternalRefsAllowed = location != nil
	loader.ReadFromURIFunc = func(l *openapi3.Loader, u *url.URL) ([]byte, error) {
		if location == nil {
			return nil, fmt.Errorf("external reference %s: not allowed in a document given in memory", u)
		}
		if u.Scheme != "" && u.Scheme != "file" || u.Host != "" {
			return nil, fmt.Errorf("external reference %s: only local files may be referred to", u)
		}
		return openapi3.ReadFromFile(l, u)
	}
	var doc *openapi3.T
	if location != nil {
		doc, err = loader.LoadFromDataWithPath(data, location)
	} else {
		doc, err = loader.LoadFromData(data)
	}
	if err != nil {
		return nil, fmt.Errorf("openapi %s: %w", name, err)
	}
	if doc.OpenAPI == "" {
		return nil, fmt.Errorf("openapi %s: no openapi field: not an OpenAPI 3 document (Swagger 2.0 is not read)", name)
	}
	if mm := doc.OpenAPIMajorMinor(); mm != "3.0" && mm != "3.1" {
		return nil, fmt.Errorf("openapi %s: version %q: only OpenAPI 3.0 and 3.1 are read", name, doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi %s: invalid document: %w", name, err)
	}
	if doc.Paths == nil || doc.Paths.Len() == 0 {
		return nil, fmt.Errorf("openapi %s: the document declares no paths", name)
	}
	return compile(doc, name)
}

// compile builds the Spec of a loaded, valid document.
func compile(doc *openapi3.T, name string) (*Spec, error) {
	s := &Spec{Source: name, Version: doc.OpenAPI, root: newNode()}
	if doc.Info != nil {
		s.Title, s.APIVersion = doc.Info.Title, doc.Info.Version
	}
	s.BasePaths = basePaths(doc.Servers)
	c := &compiler{schemas: map[*openapi3.Schema]*schema{}}
	paths := doc.Paths.Map()
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, p := range keys {
		item := paths[p]
		if item == nil {
			continue
		}
		segs := splitPath(p)
		n := s.root
		for _, seg := range segs {
			if strings.ContainsAny(seg, "{}") {
				// A parameter, or text with one ("{name}.json"): any
				// segment matches.
				if n.param == nil {
					n.param = newNode()
				}
				n = n.param
				continue
			}
			child := n.lit[seg]
			if child == nil {
				child = newNode()
				n.lit[seg] = child
			}
			n = child
		}
		ops := item.Operations()
		methods := make([]string, 0, len(ops))
		for m := range ops {
			methods = append(methods, m)
		}
		sort.Strings(methods)
		for _, m := range methods {
			op, err := c.operation(strings.ToUpper(m), p, segs, item, ops[m])
			if err != nil {
				return nil, fmt.Errorf("openapi %s: %s %s: %w", name, strings.ToUpper(m), p, err)
			}
			if n.ops == nil {
				n.ops = map[string]*Operation{}
			}
			if prev := n.ops[op.Method]; prev != nil {
				return nil, fmt.Errorf("openapi %s: %s %s and %s %s are the same template", name, op.Method, prev.Path, op.Method, p)
			}
			n.ops[op.Method] = op
			s.ops = append(s.ops, op)
		}
	}
	sort.Slice(s.ops, func(i, j int) bool {
		if s.ops[i].Path != s.ops[j].Path {
			return s.ops[i].Path < s.ops[j].Path
		}
		return s.ops[i].Method < s.ops[j].Method
	})
	return s, nil
}

// basePaths are the path prefixes of the servers, variables replaced by
// their defaults, without a trailing slash ("" for the root), longest
// first.
func basePaths(servers openapi3.Servers) []string {
	seen := map[string]bool{}
	var out []string
	for _, sv := range servers {
		if sv == nil {
			continue
		}
		raw := sv.URL
		for k, v := range sv.Variables {
			if v != nil {
				raw = strings.ReplaceAll(raw, "{"+k+"}", v.Default)
			}
		}
		p := raw
		if u, err := url.Parse(raw); err == nil && (u.Scheme != "" || u.Host != "") {
			p = u.Path
		} else if i := strings.Index(raw, "://"); i >= 0 {
			p = raw[i+3:]
			if j := strings.IndexByte(p, '/'); j >= 0 {
				p = p[j:]
			} else {
				p = ""
			}
		}
		p = "/" + strings.Join(splitPath(p), "/")
		if p == "/" {
			p = ""
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		out = []string{""}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// node is one segment of the path tree.
type node struct {
	lit   map[string]*node
	param *node
	ops   map[string]*Operation // by method
}

func newNode() *node { return &node{lit: map[string]*node{}} }

func splitPath(p string) []string {
	var out []string
	for _, seg := range strings.Split(p, "/") {
		if seg != "" {
			out = append(out, seg)
		}
	}
	return out
}
