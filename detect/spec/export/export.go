// Package export goes from traffic to OpenAPI: an API's inventory marked
// against its document (endpoints seen in traffic but not declared are
// shadow, operations declared but never called are zombies), and the
// discovered inventory with its learned parameter profiles written as an
// OpenAPI 3.1 document (GET /v1/apis/{api}/openapi.json). It is apart from
// detect/spec, which the hot path uses, so that detect can use that one
// without an import cycle.
package export

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/inspect"
	"github.com/vigil-project/vigil/detect/observe"
	"github.com/vigil-project/vigil/detect/spec"
)

// Mark marks an API's inventory against its document s: each endpoint the
// document does not declare is Shadow, and Zombies lists the operations
// no endpoint called (HEAD calls GET; OPTIONS, a CORS preflight, calls
// nothing and is shadow only on an unknown path). It sets OpenAPI. A nil
// Spec marks nothing.
func Mark(a *observe.APIStats, s *spec.Spec) {
	if s == nil {
		return
	}
	a.OpenAPI = true
	called := map[*spec.Operation]bool{}
	for i := range a.Endpoints {
		e := &a.Endpoints[i]
		if e.Method == "OPTIONS" {
			e.Shadow = !s.Declares(e.Path)
			continue
		}
		op, _ := s.Match(e.Method, e.Path)
		e.Shadow = op == nil
		if op != nil {
			called[op] = true
		}
	}
	a.Zombies = nil
	for _, op := range s.Operations() {
		if !called[op] {
			a.Zombies = append(a.Zombies, observe.ZombieEndpoint{Method: op.Method, Path: s.FullPath(op)})
		}
	}
}

// JSON writes an API's discovered inventory as an OpenAPI 3.1 document
// (JSON): one operation per endpoint template and method, with the
// parameters and JSON body properties its learned profiles (those of an
// inspect.Model, by endpoint template and method) know
// (type, format, small enums, required when always present; the counts
// under x-vigil-profile), the calls' counts and status classes under
// x-vigil. With the API's document s, an operation it does not declare is
// marked x-vigil-shadow and the document's operations never called are
// listed under x-vigil-zombies. profiles and s may be nil.
func JSON(a observe.APIStats, profiles []*inspect.Profiles, s *spec.Spec) ([]byte, error) {
	doc := Document(a, profiles, s)
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("openapi export of %s: %w", a.Name, err)
	}
	return b, nil
}

// Document is JSON's document, before it is written.
func Document(a observe.APIStats, profiles []*inspect.Profiles, s *spec.Spec) *openapi3.T {
	byEndpoint := make(map[[2]string]*inspect.Profiles, len(profiles))
	for _, p := range profiles {
		if p != nil {
			byEndpoint[[2]string{p.Endpoint, p.Method}] = p
		}
	}
	a.Endpoints = append([]observe.EndpointStats(nil), a.Endpoints...) // Mark writes
	Mark(&a, s)
	base := strings.TrimRight(a.BasePath, "/")
	server := base
	if server == "" {
		server = "/"
	}
	desc := "Endpoints Vigil discovered in traffic"
	if a.Discovered {
		desc += " (a discovered API)"
	}
	doc := &openapi3.T{
		OpenAPI: "3.1.0",
		Info: &openapi3.Info{
			Title:       a.Name,
			Version:     "discovered",
			Description: desc + ", with the parameters its learned profiles know.",
		},
		Servers:    openapi3.Servers{{URL: server}},
		Paths:      openapi3.NewPaths(),
		Extensions: map[string]any{},
	}
	if s != nil {
		doc.Extensions["x-vigil-openapi"] = map[string]any{"source": s.Source, "title": s.Title, "version": s.APIVersion}
		if len(a.Zombies) > 0 {
			doc.Extensions["x-vigil-zombies"] = a.Zombies
		}
	}
	if len(doc.Extensions) == 0 {
		doc.Extensions = nil
	}
	for _, e := range a.Endpoints {
		rel := e.Path
		if base != "" && strings.HasPrefix(rel, base) && (len(rel) == len(base) || rel[len(base)] == '/') {
			rel = rel[len(base):]
		}
		tmpl, pathParams := exportPath(rel)
		item := doc.Paths.Value(tmpl)
		if item == nil {
			item = &openapi3.PathItem{}
			doc.Paths.Set(tmpl, item)
		}
		if !standardMethods[e.Method] {
			// OpenAPI 3.1 has no room for other methods (3.2's
			// additionalOperations): they are listed as an extension.
			if item.Extensions == nil {
				item.Extensions = map[string]any{}
			}
			other, _ := item.Extensions["x-vigil-other-methods"].(map[string]any)
			if other == nil {
				other = map[string]any{}
				item.Extensions["x-vigil-other-methods"] = other
			}
			other[e.Method] = map[string]any{"requests": e.Requests, "status": e.Status, "shadow": e.Shadow}
			continue
		}
		op := exportOperation(e, byEndpoint[[2]string{e.Path, e.Method}], pathParams)
		if e.Shadow {
			op.Extensions["x-vigil-shadow"] = true
		}
		item.SetOperation(e.Method, op)
	}
	return doc
}

// standardMethods are the methods an OpenAPI 3.1 path item has room for.
var standardMethods = map[string]bool{
	"GET": true, "PUT": true, "POST": true, "DELETE": true, "OPTIONS": true, "HEAD": true, "PATCH": true, "TRACE": true,
}

// exportPath turns an endpoint template's path into an OpenAPI path:
// placeholders named id, id2, id3…, other braces escaped. It returns the
// path parameters' names by segment index ("" for literal segments).
func exportPath(p string) (string, []string) {
	segs := strings.Split(strings.Trim(p, "/"), "/")
	names := make([]string, len(segs))
	n := 0
	for i, seg := range segs {
		if seg == detect.IDPlaceholder {
			n++
			name := "id"
			if n > 1 {
				name += strconv.Itoa(n)
			}
			names[i] = name
			segs[i] = "{" + name + "}"
			continue
		}
		segs[i] = strings.NewReplacer("{", "%7B", "}", "%7D").Replace(seg)
	}
	if len(segs) == 1 && segs[0] == "" {
		return "/", nil
	}
	return "/" + strings.Join(segs, "/"), names
}

func exportOperation(e observe.EndpointStats, p *inspect.Profiles, pathParams []string) *openapi3.Operation {
	op := &openapi3.Operation{
		Summary:    fmt.Sprintf("%s %s, %d calls seen", e.Method, e.Path, e.Requests),
		Responses:  openapi3.NewResponses(),
		Extensions: map[string]any{},
	}
	x := map[string]any{"requests": e.Requests, "status": e.Status}
	if !e.FirstSeen.IsZero() {
		x["first_seen"], x["last_seen"] = e.FirstSeen.UTC(), e.LastSeen.UTC()
	}
	op.Extensions["x-vigil"] = x
	// Responses by status class seen.
	classes := make([]string, 0, len(e.Status))
	for c := range e.Status {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, c := range classes {
		if len(c) == 3 && c[1:] == "xx" {
			d := fmt.Sprintf("answered %s (%d calls)", c, e.Status[c])
			op.Responses.Set(strings.ToUpper(c), &openapi3.ResponseRef{Value: &openapi3.Response{Description: &d}})
		}
	}
	if op.Responses.Len() == 0 {
		d := "no answer seen"
		op.Responses.Set("default", &openapi3.ResponseRef{Value: &openapi3.Response{Description: &d}})
	}
	// Path parameters: every placeholder, typed by its segment's profile.
	for i, name := range pathParams {
		if name == "" {
			continue
		}
		var pp *inspect.ParamProfile
		if p != nil {
			pp = p.Params["path["+strconv.Itoa(i)+"]"]
		}
		sch := profileSchema(pp, p, false)
		if sch == nil {
			sch = &openapi3.Schema{Type: &openapi3.Types{openapi3.TypeString}}
		}
		op.Parameters = append(op.Parameters, &openapi3.ParameterRef{Value: &openapi3.Parameter{
			Name: name, In: openapi3.ParameterInPath, Required: true, Schema: &openapi3.SchemaRef{Value: sch},
		}})
	}
	if p == nil {
		return op
	}
	keys := make([]string, 0, len(p.Params))
	for k := range p.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	body := &bodyBuilder{objects: p.Objects}
	for _, k := range keys {
		pp := p.Params[k]
		loc, name, _ := strings.Cut(k, ".")
		if name == "" && loc != "body" {
			continue
		}
		var in string
		switch loc {
		case "query":
			in = openapi3.ParameterInQuery
		case "header":
			in = openapi3.ParameterInHeader
		case "cookie":
			in = openapi3.ParameterInCookie
		case "body":
			body.add(name, profileSchema(pp, p, true), pp.Present == p.Requests && p.Trusted && pp.Trusted)
			continue
		default:
			continue // path segments: typed above
		}
		sch := profileSchema(pp, p, false)
		op.Parameters = append(op.Parameters, &openapi3.ParameterRef{Value: &openapi3.Parameter{
			Name: name, In: in, Schema: &openapi3.SchemaRef{Value: sch},
			Required: pp.Present == p.Requests && p.Trusted && pp.Trusted,
		}})
	}
	if rb := body.requestBody(); rb != nil {
		op.RequestBody = &openapi3.RequestBodyRef{Value: rb}
	}
	if p.Requests > 0 {
		op.Extensions["x-vigil-profile"] = map[string]any{"requests": p.Requests, "trusted": p.Trusted}
	}
	return op
}

// jsonTypes maps a learned value type to a JSON schema type and format.
var jsonTypes = map[string][2]string{
	"integer": {openapi3.TypeInteger, ""},
	"decimal": {openapi3.TypeNumber, ""},
	"boolean": {openapi3.TypeBoolean, ""},
	"uuid":    {openapi3.TypeString, "uuid"},
	"date":    {openapi3.TypeString, ""},
	"email":   {openapi3.TypeString, "email"},
	"jwt":     {openapi3.TypeString, ""},
	"hex":     {openapi3.TypeString, ""},
	"token":   {openapi3.TypeString, ""},
	"text":    {openapi3.TypeString, ""},
}

// profileSchema is the schema a learned parameter profile describes: the
// JSON types of the value types seen (integer and decimal as number,
// any text type with a number as string), the format when only one was
// seen, a small enum of a trusted token parameter; the counts under
// x-vigil-profile. nil for no profile.
//
// In a JSON body, the learner sees null as the token "null": a parameter
// only ever null is of type null, one sometimes null also allows null.
func profileSchema(pp *inspect.ParamProfile, p *inspect.Profiles, body bool) *openapi3.Schema {
	if pp == nil {
		return nil
	}
	_, null := pp.Enum["null"]
	null = null && body
	if null && len(pp.Enum) == 1 && !pp.EnumOpen {
		return &openapi3.Schema{Type: &openapi3.Types{openapi3.TypeNull}}
	}
	seen := map[string]bool{}
	formats := map[string]bool{}
	names := make([]string, 0, len(pp.Types))
	for name := range pp.Types {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		jt, ok := jsonTypes[name]
		if !ok {
			continue // empty values say nothing of the type
		}
		seen[jt[0]] = true
		formats[jt[1]] = true
	}
	sch := &openapi3.Schema{}
	switch {
	case seen[openapi3.TypeString] || len(seen) > 2 || seen[openapi3.TypeBoolean] && len(seen) > 1:
		sch.Type = &openapi3.Types{openapi3.TypeString}
		if len(formats) == 1 {
			for f := range formats {
				sch.Format = f
			}
		}
	case seen[openapi3.TypeNumber]:
		sch.Type = &openapi3.Types{openapi3.TypeNumber}
	case seen[openapi3.TypeInteger]:
		sch.Type = &openapi3.Types{openapi3.TypeInteger}
	case seen[openapi3.TypeBoolean]:
		sch.Type = &openapi3.Types{openapi3.TypeBoolean}
	}
	if pp.Trusted && !pp.EnumOpen && len(pp.Enum) >= 2 && (pp.Type == "token" || pp.Type == "boolean") &&
		pp.Count >= 20*uint64(len(pp.Enum)) && sch.Type != nil && sch.Type.Is(openapi3.TypeString) {
		vals := make([]string, 0, len(pp.Enum))
		for v := range pp.Enum {
			vals = append(vals, v)
		}
		sort.Strings(vals)
		for _, v := range vals {
			if !null || v != "null" {
				sch.Enum = append(sch.Enum, v)
			}
		}
	}
	if null && sch.Type != nil {
		sch.Type = &openapi3.Types{(*sch.Type)[0], openapi3.TypeNull}
		if sch.Enum != nil {
			sch.Enum = append(sch.Enum, nil)
		}
	}
	types := map[string]uint64{}
	for name, s := range pp.Types {
		types[name] = s.Count
	}
	classes := make([]string, 0, len(pp.Classes))
	for c := range pp.Classes {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	x := map[string]any{
		"type": pp.Type, "types": types, "classes": classes, "count": pp.Count, "len_max": pp.LenMax,
		"trusted": pp.Trusted,
	}
	if p != nil && p.Requests > 0 {
		x["presence"] = float64(pp.Present) / float64(p.Requests)
	}
	if len(pp.Signatures) > 0 {
		sigs := make([]string, 0, len(pp.Signatures))
		for k := range pp.Signatures {
			sigs = append(sigs, k)
		}
		sort.Strings(sigs)
		x["tolerated_signatures"] = sigs
	}
	sch.Extensions = map[string]any{"x-vigil-profile": x}
	return sch
}

// bodyBuilder builds a request body schema from key paths (items[].sku)
// and the learned JSON objects' key sets.
type bodyBuilder struct {
	objects map[string]*inspect.ObjectProfile
	root    *openapi3.Schema
	form    bool
}

func newObject() *openapi3.Schema {
	return &openapi3.Schema{Type: &openapi3.Types{openapi3.TypeObject}, Properties: openapi3.Schemas{}}
}

// add places a leaf at a body key path ("" is the whole body, not JSON:
// skipped).
func (b *bodyBuilder) add(path string, leaf *openapi3.Schema, required bool) {
	if path == "" {
		return
	}
	if b.root == nil {
		b.root = newObject()
	}
	cur := b.root
	for path != "" {
		name := path
		rest := ""
		if i := strings.IndexByte(path, '.'); i >= 0 {
			name, rest = path[:i], path[i+1:]
		}
		arrays := 0
		for strings.HasSuffix(name, "[]") {
			name = name[:len(name)-2]
			arrays++
		}
		if name == "" {
			return
		}
		ref := cur.Properties[name]
		if ref == nil {
			ref = &openapi3.SchemaRef{Value: &openapi3.Schema{}}
			cur.Properties[name] = ref
		}
		s := ref.Value
		for ; arrays > 0; arrays-- {
			if s.Items == nil {
				s.Type = &openapi3.Types{openapi3.TypeArray}
				s.Items = &openapi3.SchemaRef{Value: &openapi3.Schema{}}
			}
			s = s.Items.Value
		}
		if rest == "" {
			if leaf != nil && s.Properties == nil {
				*s = *leaf
			}
			if required && !contains(cur.Required, name) {
				cur.Required = append(cur.Required, name)
			}
			return
		}
		if s.Properties == nil {
			*s = *newObject()
		}
		cur = s
		path = rest
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// requestBody is the body built: JSON when the profile learned JSON
// objects, a form otherwise; nil when no body parameter was learned.
func (b *bodyBuilder) requestBody() *openapi3.RequestBody {
	if b.root == nil && len(b.objects) == 0 {
		return nil
	}
	if b.root == nil {
		b.root = newObject()
	}
	mt := "application/x-www-form-urlencoded"
	if len(b.objects) > 0 {
		mt = "application/json"
		// Keys learned without a value profile (objects, nulls) are
		// properties too.
		for path, op := range b.objects {
			rest, ok := strings.CutPrefix(path, "body")
			if !ok {
				continue
			}
			rest = strings.TrimPrefix(rest, ".")
			for k := range op.Keys {
				p := k
				if rest != "" {
					p = rest + "." + k
				}
				b.add(p, nil, false)
			}
		}
	}
	sortRequired(b.root)
	return &openapi3.RequestBody{Content: openapi3.NewContentWithSchema(b.root, []string{mt})}
}

func sortRequired(s *openapi3.Schema) {
	if s == nil {
		return
	}
	sort.Strings(s.Required)
	for _, p := range s.Properties {
		sortRequired(p.Value)
	}
	if s.Items != nil {
		sortRequired(s.Items.Value)
	}
}
