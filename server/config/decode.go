package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	yamlLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlTypeRE = regexp.MustCompile("^cannot unmarshal !!\\w+(?: `(.*)`)? into (.+)$")
)

// configSource is what Validate needs to know of the file a Config was
// read from: the problems found while decoding it, and the line of every
// key, so that a validation problem names its line too.
type configSource struct {
	path     string
	problems []configProblem
	lines    map[string]int // dotted key path → line
}

// configProblem is one problem of a configuration; line 0 when the value
// does not come from the file (a default, a flag, a missing key).
type configProblem struct {
	line int
	msg  string
}

// Decode decodes one YAML document on top of c; every problem is an
// error. The embedded files (defaults, the demo's) are read with it.
func (c *Config) Decode(data []byte) error {
	src, err := decodeConfig(data, c)
	if err != nil {
		return err
	}
	return src.report(nil)
}

// decodeConfig decodes one YAML document on top of into. Syntax errors and
// extra documents are errors; unknown keys (with the nearest known key
// suggested), values of the wrong type and bad byte sizes are problems of
// the returned source, each naming its line and the dotted path of its key.
func decodeConfig(data []byte, into *Config) (*configSource, error) {
	src := &configSource{lines: map[string]int{}}
	var doc yaml.Node
	nodes := yaml.NewDecoder(bytes.NewReader(data))
	if err := nodes.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return src, nil // an empty file keeps the defaults
		}
		return nil, err
	}
	var extra yaml.Node
	switch err := nodes.Decode(&extra); {
	case err == nil:
		return nil, errors.New("more than one YAML document; a config file holds one")
	case !errors.Is(err, io.EOF):
		return nil, err
	}
	keys := yamlKeys(&doc)
	for _, k := range keys {
		if _, seen := src.lines[k.path]; !seen {
			src.lines[k.path] = k.line
		}
	}
	if len(doc.Content) == 1 {
		checkKeys(doc.Content[0], reflect.TypeOf(into).Elem(), "", src)
	}
	// yaml.Node.Decode knows no KnownFields: checkKeys found the unknown
	// keys above.
	if err := doc.Decode(into); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, err
		}
		for _, e := range te.Errors {
			src.add(explainYAMLError(e, keys))
		}
	}
	return src, nil
}

var problemLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// add records a problem, taking its line from a "line N: " prefix.
func (s *configSource) add(msg string) {
	p := configProblem{msg: msg}
	if m := problemLineRE.FindStringSubmatch(msg); m != nil {
		p.line, _ = strconv.Atoi(m[1])
		p.msg = m[2]
	}
	s.problems = append(s.problems, p)
}

// checkKeys walks a mapping of the document along the Go type it decodes
// into: a key the type does not have is a problem (with the nearest known
// key suggested), and a byte count (a key ending in _bytes, or a field
// tagged unit:"bytes" such as detection.max_memory) may carry a unit,
// rewritten here into the plain integer the decoder reads. Aliases are not
// followed (the anchored node is checked where it stands).
func checkKeys(n *yaml.Node, t reflect.Type, path string, src *configSource) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	join := func(key string) string {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		kept := n.Content[:0:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, known := fields[k.Value]
			switch {
			case k.Value == "<<" && k.Kind == yaml.ScalarNode: // a merge key
			case !known:
				msg := fmt.Sprintf("line %d: unknown key %q", k.Line, join(k.Value))
				if near := nearestKey(k.Value, fields); near != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", near)
				}
				src.add(msg)
			case (strings.HasSuffix(k.Value, "_bytes") || f.Tag.Get("unit") == "bytes") && isInteger(f.Type) && v.Kind == yaml.ScalarNode && v.ShortTag() != "!!null":
				size, err := ParseByteSize(v.Value)
				if err != nil {
					src.add(fmt.Sprintf("line %d: %s: %v", v.Line, join(k.Value), err))
					continue // the key keeps its default
				}
				v.Value, v.Tag, v.Style = strconv.FormatInt(size, 10), "!!int", 0
			default:
				checkKeys(v, f.Type, join(k.Value), src)
			}
			kept = append(kept, k, v)
		}
		n.Content = kept
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && n.Kind == yaml.SequenceNode:
		for i, v := range n.Content {
			checkKeys(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i), src)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKeys(n.Content[i+1], t.Elem(), join(n.Content[i].Value), src)
		}
	}
}

// yamlFields maps the YAML keys of a struct type to its fields.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}

func isInteger(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// nearestKey returns the known key closest to key in edit distance, when it
// is close enough to be the one meant (a typo, not another word), else the
// one known key that key begins (a key cut short), else "".
func nearestKey(key string, known map[string]reflect.StructField) string {
	best, bestDist := "", 0
	for k := range known {
		d := editDistance(strings.ToLower(key), k)
		if best == "" || d < bestDist || d == bestDist && k < best {
			best, bestDist = k, d
		}
	}
	if best != "" && bestDist <= max(1, min(len(key), len(best))/3) {
		return best
	}
	// A key cut short: drain for drain_delay.
	var prefixed []string
	for k := range known {
		if strings.HasPrefix(k, strings.ToLower(key)+"_") {
			prefixed = append(prefixed, k)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// byteUnits are the units of a byte size, lower-cased: decimal (kB = 1000)
// and binary (KiB = 1024), as IEC 80000-13 has them.
var byteUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

var byteSizeRE = regexp.MustCompile(`^([0-9]+)(?:\.([0-9]+))?\s*([A-Za-z]*)$`)

// ParseByteSize parses a byte count: a whole number of bytes ("1048576"),
// or a number with a unit, case-insensitive: B, kB, MB, GB, TB (powers of
// 1000) or KiB, MiB, GiB, TiB (powers of 1024); a fraction is accepted when
// it comes to whole bytes ("1.5MiB", not "1.5B"). Negative sizes, sizes
// past 2^63-1 bytes and anything else are errors.
func ParseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("must not be negative, got %q", s)
	}
	m := byteSizeRE.FindStringSubmatch(t)
	if m == nil {
		return 0, fmt.Errorf("%q is not a byte size such as 1048576, \"512KiB\" or \"4MB\"", s)
	}
	unit, ok := byteUnits[strings.ToLower(m[3])]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (want B, kB, MB, GB, TB for powers of 1000, or KiB, MiB, GiB, TiB for powers of 1024)", s, m[3])
	}
	// digits/scale × unit, exactly.
	digits, ok := new(big.Int).SetString(m[1]+m[2], 10)
	if !ok {
		return 0, fmt.Errorf("%q is not a byte size", s)
	}
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(m[2]))), nil)
	n, rem := new(big.Int).QuoRem(digits.Mul(digits, big.NewInt(unit)), scale, new(big.Int))
	switch {
	case rem.Sign() != 0:
		return 0, fmt.Errorf("%q is not a whole number of bytes", s)
	case !n.IsInt64():
		return 0, fmt.Errorf("%q is too large (at most %d bytes)", s, int64(math.MaxInt64))
	}
	return n.Int64(), nil
}

// yamlKey is one key of a YAML document (or one item of a sequence) with the
// dotted path that leads to it.
type yamlKey struct {
	line      int    // of the key, or of the sequence item
	valueLine int    // of the value
	name      string // the key itself; empty for sequence items
	path      string // e.g. apis[0].identities.token_header
	scalar    string // the value when it is a scalar
	isScalar  bool
}

func yamlKeys(doc *yaml.Node) []yamlKey {
	var keys []yamlKey
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				keys = append(keys, yamlKey{line: k.Line, valueLine: v.Line, name: k.Value, path: p, scalar: v.Value, isScalar: v.Kind == yaml.ScalarNode})
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, v := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				keys = append(keys, yamlKey{line: v.Line, valueLine: v.Line, path: p, scalar: v.Value, isScalar: v.Kind == yaml.ScalarNode})
				walk(v, p)
			}
		}
	}
	walk(doc, "")
	return keys
}

// explainYAMLError rewrites one of yaml.v3's decode errors so that it names
// the key's path instead of a Go type.
func explainYAMLError(msg string, keys []yamlKey) string {
	m := yamlLineRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	line, _ := strconv.Atoi(m[1])
	rest := m[2]
	path := ""
	if t := yamlTypeRE.FindStringSubmatch(rest); t != nil {
		// yaml.v3 quotes scalars, shortened to 7 bytes and "...", and
		// names only the tag of sequences and mappings.
		value, scalar := strings.TrimSuffix(t[1], "..."), t[1] != ""
		var match []string
		for _, k := range keys {
			if k.valueLine == line && k.isScalar == scalar && strings.HasPrefix(k.scalar, value) {
				match = append(match, k.path)
			}
		}
		if len(match) == 1 {
			path = match[0] + ": "
		}
		if scalar && t[2] == "time.Duration" {
			rest = fmt.Sprintf("%q is not a duration such as \"500ms\", \"5s\" or \"1m30s\"", t[1])
		}
	}
	return fmt.Sprintf("line %d: %s%s", line, path, rest)
}

var problemKeyRE = regexp.MustCompile(`^([^ :]+)(?: \(from ([a-z_]+) )?`)

// report returns every problem at once, decode problems and validation
// problems errs, in the order of their lines (those without a line, whose
// values do not come from the file, last); nil when there is none. Each
// validation problem starts with the dotted path of its key, which gives
// its line: that of the key, else that of the closest enclosing key that
// the file has.
func (s *configSource) report(errs []error) error {
	var problems []configProblem
	if s != nil {
		problems = append(problems, s.problems...)
	}
	for _, e := range errs {
		p := configProblem{msg: e.Error()}
		if s != nil {
			if m := problemKeyRE.FindStringSubmatch(p.msg); m != nil {
				key := m[1]
				if m[2] != "" {
					key = m[2] // a secret read from a file: the line of its *_file key
				}
				p.line = s.lineOf(key)
			}
		}
		problems = append(problems, p)
	}
	if len(problems) == 0 {
		return nil
	}
	slices.SortStableFunc(problems, func(a, b configProblem) int {
		switch {
		case a.line == b.line:
			return 0
		case a.line == 0:
			return 1
		case b.line == 0:
			return -1
		}
		return a.line - b.line
	})
	var b strings.Builder
	if s != nil && s.path != "" {
		fmt.Fprintf(&b, "config %s: ", s.path)
	}
	fmt.Fprintf(&b, "invalid configuration, %d problem(s):", len(problems))
	for _, p := range problems {
		b.WriteString("\n  - ")
		if p.line > 0 {
			fmt.Fprintf(&b, "line %d: ", p.line)
		}
		b.WriteString(p.msg)
	}
	return errors.New(b.String())
}

// lineOf returns the line of a dotted key path, or of the closest enclosing
// key the file has, or 0.
func (s *configSource) lineOf(key string) int {
	key = strings.TrimSuffix(key, ":")
	for key != "" {
		if line, ok := s.lines[key]; ok {
			return line
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
	return 0
}
