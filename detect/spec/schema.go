package spec

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/vigil-project/vigil/detect/inspect"
)

// typeMask is a set of JSON types; 0 is any.
type typeMask uint8

const (
	tString typeMask = 1 << iota
	tInteger
	tNumber
	tBoolean
	tArray
	tObject
	tNull
)

var typeBits = map[string]typeMask{
	openapi3.TypeString: tString, openapi3.TypeInteger: tInteger, openapi3.TypeNumber: tNumber,
	openapi3.TypeBoolean: tBoolean, openapi3.TypeArray: tArray, openapi3.TypeObject: tObject,
	openapi3.TypeNull: tNull,
}

// allows reports whether a value of type t fits the mask (an integer is a
// number).
func (m typeMask) allows(t typeMask) bool {
	if m == 0 || m&t != 0 {
		return true
	}
	return t == tInteger && m&tNumber != 0
}

// format is a string or number format the hot path checks.
type format uint8

const (
	fmtNone format = iota
	fmtUUID
	fmtDate
	fmtDateTime
	fmtEmail
	fmtIPv4
	fmtIPv6
	fmtInt32
	fmtInt64
)

var formats = map[string]format{
	"uuid": fmtUUID, "date": fmtDate, "date-time": fmtDateTime, "email": fmtEmail,
	"ipv4": fmtIPv4, "ipv6": fmtIPv6, "int32": fmtInt32, "int64": fmtInt64,
}

// maxPatternInput bounds the length of a value a pattern is run on (RE2 is
// linear, but a pattern is the costliest check).
const maxPatternInput = 4096

// schema is a compiled JSON schema: what the hot path checks of one value.
type schema struct {
	types    typeMask // 0: any
	format   format
	enum     []string // the values as text (strings as they are, numbers and booleans as written)
	pattern  *regexp.Regexp
	minLen   int
	maxLen   int // -1: none
	min, max float64
	hasMin   bool
	hasMax   bool
	exclMin  bool
	exclMax  bool
	readOnly bool

	// Objects: declared properties, how many are required (each has its
	// index below 64), and what undeclared ones get.
	props     map[string]*prop
	nRequired int
	// declared is set when the object lists its properties and does not
	// allow others explicitly (additionalProperties absent or false): an
	// undeclared property is then refused (mass assignment on a write).
	declared bool
	// closed: additionalProperties false (refused on any method).
	closed     bool
	additional *schema // additionalProperties given as a schema
	items      *schema
}

type prop struct {
	s   *schema
	req int // index among the required properties, -1 if not required
}

var anySchema = &schema{maxLen: -1}

type compiler struct {
	schemas map[*openapi3.Schema]*schema
}

// schema compiles a schema reference (nil: anything).
func (c *compiler) schema(ref *openapi3.SchemaRef) *schema {
	if ref == nil || ref.Value == nil {
		return anySchema
	}
	v := ref.Value
	if s, ok := c.schemas[v]; ok {
		return s
	}
	s := &schema{maxLen: -1}
	c.schemas[v] = s // before recursing: schemas may refer to themselves
	if v.Always != nil {
		return s // true or false: judged as anything
	}
	if v.Type != nil {
		for _, t := range *v.Type {
			s.types |= typeBits[t]
		}
	}
	if v.Nullable && s.types != 0 {
		s.types |= tNull
	}
	s.format = formats[v.Format]
	for _, e := range v.Enum {
		s.enum = append(s.enum, enumText(e))
	}
	if v.Const != nil {
		s.enum = append(s.enum[:0], enumText(v.Const))
	}
	if v.Pattern != "" {
		if re, err := regexp.Compile(v.Pattern); err == nil {
			s.pattern = re // an ECMA pattern RE2 cannot take is not checked
		}
	}
	s.minLen = int(min(v.MinLength, math.MaxInt32))
	if v.MaxLength != nil {
		s.maxLen = int(min(*v.MaxLength, math.MaxInt32))
	}
	if v.Min != nil {
		s.min, s.hasMin = *v.Min, true
		s.exclMin = v.ExclusiveMin.IsTrue()
	}
	if v.Max != nil {
		s.max, s.hasMax = *v.Max, true
		s.exclMax = v.ExclusiveMax.IsTrue()
	}
	if v.ExclusiveMin.Value != nil {
		s.min, s.hasMin, s.exclMin = *v.ExclusiveMin.Value, true, true
	}
	if v.ExclusiveMax.Value != nil {
		s.max, s.hasMax, s.exclMax = *v.ExclusiveMax.Value, true, true
	}
	s.readOnly = v.ReadOnly
	if v.Items != nil {
		s.items = c.schema(v.Items)
	}
	if len(v.Properties) > 0 {
		s.props = make(map[string]*prop, len(v.Properties))
		for name, p := range v.Properties {
			s.props[name] = &prop{s: c.schema(p), req: -1}
		}
	}
	required := v.Required
	switch ap := v.AdditionalProperties; {
	case ap.Has != nil && !*ap.Has:
		s.closed, s.declared = true, true
	case ap.Has != nil && *ap.Has:
	case ap.Schema != nil:
		s.additional = c.schema(ap.Schema)
	default:
		s.declared = len(v.Properties) > 0
	}
	for _, br := range v.AllOf {
		b := c.schema(br)
		s.merge(b)
		if br != nil && br.Value != nil {
			required = append(required, br.Value.Required...)
		}
	}
	if alt := v.OneOf; len(alt) > 0 {
		s.union(c, alt)
	} else if alt := v.AnyOf; len(alt) > 0 {
		s.union(c, alt)
	}
	s.setRequired(required)
	return s
}

// setRequired numbers the required properties (the first 64 are checked).
func (s *schema) setRequired(names []string) {
	sort.Strings(names)
	for _, n := range names {
		p := s.props[n]
		if p == nil {
			// Required but not declared: declared as anything.
			if s.props == nil {
				s.props = map[string]*prop{}
			}
			p = &prop{s: anySchema, req: -1}
			s.props[n] = p
		}
		if p.req >= 0 || s.nRequired >= 64 {
			continue
		}
		p.req = s.nRequired
		s.nRequired++
	}
}

// merge folds an allOf branch in: its properties join (required ones are
// numbered later), its constraints apply where s has none.
func (s *schema) merge(b *schema) {
	if b == anySchema {
		return
	}
	if s.types == 0 {
		s.types = b.types
	} else if b.types != 0 {
		s.types &= b.types | (b.types&tNumber)>>1 // number allows integer
	}
	if s.format == fmtNone {
		s.format = b.format
	}
	if s.enum == nil {
		s.enum = b.enum
	}
	if s.pattern == nil {
		s.pattern = b.pattern
	}
	s.minLen = max(s.minLen, b.minLen)
	if b.maxLen >= 0 && (s.maxLen < 0 || b.maxLen < s.maxLen) {
		s.maxLen = b.maxLen
	}
	if !s.hasMin {
		s.min, s.hasMin, s.exclMin = b.min, b.hasMin, b.exclMin
	}
	if !s.hasMax {
		s.max, s.hasMax, s.exclMax = b.max, b.hasMax, b.exclMax
	}
	s.readOnly = s.readOnly || b.readOnly
	if s.items == nil {
		s.items = b.items
	}
	for n, p := range b.props {
		if s.props == nil {
			s.props = map[string]*prop{}
		}
		if _, ok := s.props[n]; !ok {
			s.props[n] = &prop{s: p.s, req: -1}
		}
	}
	s.declared = s.declared || b.declared
	s.closed = s.closed || b.closed
	if s.additional == nil {
		s.additional = b.additional
	}
}

// union folds oneOf or anyOf alternatives in, permissively: any type one
// of them allows, every property one of them declares, no required ones;
// undeclared properties are refused only when every alternative refuses
// them.
func (s *schema) union(c *compiler, alts openapi3.SchemaRefs) {
	var types typeMask
	declared, closed := true, true
	for _, ar := range alts {
		a := c.schema(ar)
		if a.types == 0 {
			types = 0xff
		} else {
			types |= a.types
		}
		declared = declared && a.declared
		closed = closed && a.closed
		for n, p := range a.props {
			if s.props == nil {
				s.props = map[string]*prop{}
			}
			if _, ok := s.props[n]; !ok {
				s.props[n] = &prop{s: p.s, req: -1}
			}
		}
	}
	if types != 0xff {
		if s.types == 0 {
			s.types = types
		} else {
			s.types &= types
		}
	}
	if len(s.props) > 0 {
		s.declared = s.declared || declared
		s.closed = s.closed || closed
	}
}

// enumText writes an enum value as the text a request carries.
func enumText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return "null"
	case json.Number:
		return x.String()
	}
	return fmt.Sprint(v)
}

// param is one declared parameter of an operation.
type param struct {
	name    string // as declared; header names lower case
	in      inspect.Location
	keyPath string // "query.limit", "path.petId"
	index   int    // among the operation's params (query, header, cookie)
	s       *schema
	// explode false: an array's items are separated by commas.
	commas bool
}

func (c *compiler) operation(method, path string, segs []string, item *openapi3.PathItem, o *openapi3.Operation) (*Operation, error) {
	op := &Operation{Method: method, Path: "/" + strings.Join(segs, "/"), ID: o.OperationID}
	if len(segs) == 0 {
		op.Path = "/"
	}
	op.pathVals = make([]*param, len(segs))
	// Operation parameters override the path item's of the same name and
	// location.
	byKey := map[string]*openapi3.Parameter{}
	var order []string
	for _, list := range []openapi3.Parameters{item.Parameters, o.Parameters} {
		for _, pr := range list {
			if pr == nil || pr.Value == nil {
				continue
			}
			k := pr.Value.In + "\x00" + pr.Value.Name
			if _, ok := byKey[k]; !ok {
				order = append(order, k)
			}
			byKey[k] = pr.Value
		}
	}
	for _, k := range order {
		p := byKey[k]
		cp := &param{name: p.Name, s: c.schema(p.Schema)}
		if p.Schema == nil {
			for _, mt := range p.Content {
				if mt != nil && mt.Schema != nil {
					cp.s = anySchema // a serialized value: only presence is checked
				}
			}
		}
		cp.commas = p.Explode != nil && !*p.Explode
		switch p.In {
		case openapi3.ParameterInPath:
			cp.in, cp.keyPath = inspect.LocPath, "path."+p.Name
			found := false
			for i, seg := range segs {
				if seg == "{"+p.Name+"}" {
					op.pathVals[i], found = cp, true
				}
			}
			if !found && !strings.Contains(path, "{"+p.Name+"}") {
				return nil, fmt.Errorf("path parameter %q is not in the path", p.Name)
			}
			continue
		case openapi3.ParameterInQuery:
			cp.in, cp.keyPath = inspect.LocQuery, "query."+p.Name
			cp.commas = p.Explode != nil && !*p.Explode || p.Style == "form" && p.Explode != nil && !*p.Explode
		case openapi3.ParameterInHeader:
			cp.name = strings.ToLower(p.Name)
			if cp.name == "accept" || cp.name == "content-type" || cp.name == "authorization" {
				continue // OpenAPI: such a parameter's definition is ignored
			}
			cp.in, cp.keyPath = inspect.LocHeader, "header."+cp.name
			cp.commas = true // headers carry arrays as a,b,c
		case openapi3.ParameterInCookie:
			cp.in, cp.keyPath = inspect.LocCookie, "cookie."+p.Name
		default:
			continue
		}
		cp.index = len(op.params)
		if p.Required && cp.index < 64 {
			op.required |= 1 << cp.index
		}
		op.params = append(op.params, cp)
	}
	if rb := o.RequestBody; rb != nil && rb.Value != nil {
		op.bodyRequired = rb.Value.Required
		for mt, media := range rb.Value.Content {
			op.media = append(op.media, strings.ToLower(strings.TrimSpace(strings.SplitN(mt, ";", 2)[0])))
			if media == nil {
				continue
			}
			switch mediaKind(mt) {
			case mediaJSON:
				if op.body == nil || mt == "application/json" {
					op.body = c.schema(media.Schema)
				}
			case mediaForm:
				op.form = c.schema(media.Schema)
			}
		}
	}
	sort.Strings(op.media)
	return op, nil
}

// acceptsMedia reports whether the request body's Content-Type is one the
// operation declares (type/* and */* match as wildcards). A request
// without a Content-Type, or an operation declaring no body, is not
// judged.
func (op *Operation) acceptsMedia(ct string) bool {
	if len(op.media) == 0 {
		return true
	}
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	if ct == "" {
		return true
	}
	for _, m := range op.media {
		switch {
		case m == "*/*", strings.EqualFold(m, ct):
			return true
		case strings.HasSuffix(m, "/*"):
			if len(ct) > len(m)-1 && strings.EqualFold(ct[:len(m)-1], m[:len(m)-1]) {
				return true
			}
		}
	}
	return false
}

type media uint8

const (
	mediaOther media = iota
	mediaJSON
	mediaForm
	mediaNone
)

// mediaKind classifies a media type or a Content-Type header.
func mediaKind(ct string) media {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	switch {
	case ct == "":
		return mediaNone
	case strings.EqualFold(ct, "application/json"), len(ct) > 5 && strings.EqualFold(ct[len(ct)-5:], "+json"):
		return mediaJSON
	case strings.EqualFold(ct, "application/x-www-form-urlencoded"):
		return mediaForm
	}
	return mediaOther
}
