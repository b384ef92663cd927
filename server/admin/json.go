package admin

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// The admin API decodes request bodies strictly: encoding/json alone
// matches keys case-insensitively and lets the last of two equal keys win,
// so {"kind":"username","kind":"ip"} would store an ip entry.
// (encoding/json/v2, which refuses both, still needs GOEXPERIMENT=jsonv2 in
// Go 1.26.)

// decodeJSON decodes one JSON object strictly: unknown fields, keys that
// match a field only in another case, duplicate keys, trailing data and
// oversized bodies are errors that say what is wrong.
func decodeJSON(body io.Reader, into any) error {
	data, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("body larger than %d bytes", mbe.Limit)
		}
		return fmt.Errorf("reading the body: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("empty body: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			return errors.New("invalid JSON: the body ends inside the object")
		case errors.As(err, &se):
			return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, se)
		case errors.As(err, &te):
			return fmt.Errorf("field %q: want %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return fmt.Errorf("unknown field %s", field)
		}
		return fmt.Errorf("invalid JSON: %v", err)
	}
	// More() would accept a stray ']' or '}' after the object.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON object")
	}
	// The body is valid JSON of the right shape: now the keys themselves.
	return checkJSONKeys(json.NewDecoder(bytes.NewReader(data)), reflect.TypeOf(into), "")
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checkJSONKeys walks one JSON value along the Go type it decodes into (nil:
// any) and refuses a key repeated in an object, and a key that names a
// struct field in another case. path names the value in messages.
func checkJSONKeys(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("invalid JSON: %v", err)
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && (reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)) {
		t = nil // decodes itself: only duplicate keys are checked inside
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := checkJSONKeys(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case '{':
		var fields map[string]reflect.Type
		var elem reflect.Type
		switch {
		case t != nil && t.Kind() == reflect.Struct:
			fields = map[string]reflect.Type{}
			jsonFields(t, fields)
		case t != nil && t.Kind() == reflect.Map:
			elem = t.Elem()
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return fmt.Errorf("invalid JSON: %v", err)
			}
			key, _ := tok.(string)
			where := key
			if path != "" {
				where = path + "." + key
			}
			if seen[key] {
				return fmt.Errorf("duplicate key %q", where)
			}
			seen[key] = true
			ft := elem
			if fields != nil {
				if ft, ok = fields[key]; !ok {
					for name := range fields {
						if strings.EqualFold(name, key) {
							return fmt.Errorf("unknown field %q: keys are case-sensitive, did you mean %q?", where, name)
						}
					}
					return fmt.Errorf("unknown field %q", where)
				}
			}
			if err := checkJSONKeys(dec, ft, where); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return fmt.Errorf("invalid JSON: %v", err)
	}
	return nil
}

// jsonFields collects the JSON names of a struct's fields, as
// encoding/json sees them (embedded structs' fields promoted).
func jsonFields(t reflect.Type, into map[string]reflect.Type) {
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				jsonFields(ft, into)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		into[name] = f.Type
	}
}

// decodeModelJSON decodes a model document or update strictly into into,
// and its "inspection" member, when there is one, strictly into insp
// (content inspection's part, beside the engine's fields): each with the
// errors decodeJSON gives.
func decodeModelJSON[T any](body io.Reader, into any, insp **T) error {
	data, err := io.ReadAll(body)
	if err != nil {
		return decodeJSON(io.MultiReader(bytes.NewReader(data), errReader{err}), into)
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) == nil {
		if raw, ok := top["inspection"]; ok {
			delete(top, "inspection")
			var v T
			if err := decodeJSON(bytes.NewReader(raw), &v); err != nil {
				return fmt.Errorf("inspection: %w", err)
			}
			*insp = &v
			if data, err = json.Marshal(top); err != nil {
				return err
			}
		}
	}
	return decodeJSON(bytes.NewReader(data), into)
}

// errReader fails with its error.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
