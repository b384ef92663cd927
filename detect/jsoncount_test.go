package detect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// jsonPatch returns a json-patch document of n operations.
func jsonPatch(n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"op":"add","path":"/items/%d","value":{"n":%d,"s":"a,b]}"}}`, i, i)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// jsonCounterTests feed TestJSONCounter, BenchmarkJSONCounter and
// FuzzJSONCounter's seeds. max -1: malformed, any count will do.
var jsonCounterTests = []struct {
	name    string
	doc     string
	max     int
	tooDeep bool
}{
	{"empty", "", 0, false},
	{"scalar", "42", 0, false},
	{"top-level string with brackets", `"[1,2,3]"`, 0, false},
	{"empty array", "[]", 0, false},
	{"empty object", "{}", 0, false},
	{"one", "[1]", 1, false},
	{"three", "[1,2,3]", 3, false},
	{"whitespace", " [ 1 ,\n\t2 ,\r\n 3 ] ", 3, false},
	{"object members are not elements", `{"a":1,"b":[1,2],"c":{"d":null}}`, 2, false},
	{"nested wins", `{"ops":[1,2,3,4,5],"x":1}`, 5, false},
	{"inner siblings", `[[1,2],[3,4,5],[6]]`, 3, false},
	{"object in array", `[{"a":1,"b":2,"c":3,"d":4},1]`, 2, false},
	{"strings hide brackets", `["a,b,c","[[[",  "]]]", "{,}"]`, 4, false},
	{"escaped quote", `["a\",\"b", "c"]`, 2, false},
	{"escaped backslash", `["a\\", 1, 2]`, 3, false},
	{"unicode escape", `["\u0022,", 1]`, 2, false},
	{"keys with commas", `{"a,b":1,"c]":[1,2,3]}`, 3, false},
	{"literals", `[true,false,null,-1.5e3]`, 4, false},
	{"json patch", string(jsonPatch(50)), 50, false},
	{"depth 128", strings.Repeat("[", 128) + "1,2" + strings.Repeat("]", 128), 2, false},
	{"depth 129", strings.Repeat("[", 129) + "1,2" + strings.Repeat("]", 129), 1, true},
	{"counts resume after deep part", "[" + strings.Repeat("[", 200) + strings.Repeat("]", 200) + ",1,2]", 3, true},
	{"malformed closers", "]]]}}}", -1, false},
	{"malformed commas", "[,,,]", -1, false},
	{"malformed unterminated string", `["abc`, -1, false},
	{"malformed trailing backslash", `["abc\`, -1, false},
	{"binary", "\x00\xff[\x80,\x81]", -1, false},
}

func countJSON(chunks ...[]byte) JSONCounter {
	var c JSONCounter
	for _, p := range chunks {
		c.Write(p)
	}
	return c
}

func TestJSONCounter(t *testing.T) {
	for _, tc := range jsonCounterTests {
		t.Run(tc.name, func(t *testing.T) {
			c := countJSON([]byte(tc.doc))
			if tc.max >= 0 && c.MaxElements != tc.max {
				t.Errorf("MaxElements = %d, want %d", c.MaxElements, tc.max)
			}
			if c.TooDeep != tc.tooDeep {
				t.Errorf("TooDeep = %v, want %v", c.TooDeep, tc.tooDeep)
			}
			checkJSONCounter(t, []byte(tc.doc), nil)
		})
	}
}

// refMaxElements counts with encoding/json's tokenizer: the largest number of
// array elements or object members. ok is false for invalid JSON.
func refMaxElements(doc []byte) (n, depth int, ok bool) {
	if !json.Valid(doc) {
		return 0, 0, false
	}
	type level struct {
		object bool
		count  int
		key    bool // next token of an object is a key
	}
	var stack []level
	dec := json.NewDecoder(bytes.NewReader(doc))
	value := func() {
		if len(stack) == 0 {
			return
		}
		top := &stack[len(stack)-1]
		if top.object {
			top.key = !top.key // members are not counted
			return
		}
		top.count++
		n = max(n, top.count)
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return n, depth, true
		}
		if err != nil {
			return 0, 0, false
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			value()
			stack = append(stack, level{object: tok == json.Delim('{'), key: true})
			depth = max(depth, len(stack))
		case json.Delim(']'), json.Delim('}'):
			stack = stack[:len(stack)-1]
		default:
			value()
		}
	}
}

// checkJSONCounter asserts chunking invariance (splits at the given points,
// and byte by byte) and, for valid JSON, agreement with encoding/json.
func checkJSONCounter(t *testing.T, doc []byte, splits []int) {
	t.Helper()
	whole := countJSON(doc)
	var chunks [][]byte
	prev := 0
	for _, s := range splits {
		if s < prev || s > len(doc) {
			continue
		}
		chunks = append(chunks, doc[prev:s])
		prev = s
	}
	chunks = append(chunks, doc[prev:])
	if split := countJSON(chunks...); split != whole {
		t.Fatalf("split at %v: %d/%v, whole: %d/%v", splits, split.MaxElements, split.TooDeep, whole.MaxElements, whole.TooDeep)
	}
	var bytewise JSONCounter
	for i := range doc {
		bytewise.Write(doc[i : i+1])
	}
	if bytewise != whole {
		t.Fatalf("byte by byte: %d/%v, whole: %d/%v", bytewise.MaxElements, bytewise.TooDeep, whole.MaxElements, whole.TooDeep)
	}
	if whole.MaxElements < 0 || whole.MaxElements > len(doc) {
		t.Fatalf("MaxElements %d for %d bytes", whole.MaxElements, len(doc))
	}
	if n, depth, ok := refMaxElements(doc); ok {
		if whole.TooDeep != (depth > maxJSONDepth) {
			t.Fatalf("TooDeep = %v at depth %d", whole.TooDeep, depth)
		}
		if depth <= maxJSONDepth && whole.MaxElements != n {
			t.Fatalf("MaxElements = %d, encoding/json counts %d in %.200q", whole.MaxElements, n, doc)
		}
	}
}

// randomJSON writes a random valid JSON value whose strings are full of
// structural characters.
func randomJSON(r *rand.Rand, b *bytes.Buffer, depth int) {
	strs := []string{`"a"`, `"[,]"`, `"\"{"`, `"\\"`, `"\\\"]"`, `"\u005b,"`, `""`}
	switch k := r.IntN(6); {
	case depth > 3 || k < 2:
		switch r.IntN(4) {
		case 0:
			b.WriteString(strs[r.IntN(len(strs))])
		case 1:
			fmt.Fprintf(b, "%d", r.IntN(1000)-500)
		case 2:
			b.WriteString("true")
		default:
			b.WriteString("null")
		}
	case k < 4:
		b.WriteByte('[')
		for i := range r.IntN(9) {
			if i > 0 {
				b.WriteString(", "[:1+r.IntN(2)])
			}
			randomJSON(r, b, depth+1)
		}
		b.WriteByte(']')
	default:
		b.WriteString("{ "[:1+r.IntN(2)])
		for i := range r.IntN(9) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strs[r.IntN(len(strs))])
			b.WriteString(":")
			randomJSON(r, b, depth+1)
		}
		b.WriteByte('}')
	}
}

func TestJSONCounterRandomSplits(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		var b bytes.Buffer
		randomJSON(r, &b, 0)
		doc := b.Bytes()
		splits := make([]int, r.IntN(8))
		for j := range splits {
			splits[j] = r.IntN(len(doc) + 1)
		}
		// Sorted, duplicates allowed: empty chunks are fine too.
		for j := 1; j < len(splits); j++ {
			for k := j; k > 0 && splits[k] < splits[k-1]; k-- {
				splits[k], splits[k-1] = splits[k-1], splits[k]
			}
		}
		checkJSONCounter(t, doc, splits)
		if _, _, ok := refMaxElements(doc); !ok {
			t.Fatalf("generator made invalid JSON: %s", doc)
		}
	}
}

func TestJSONCounterWriteDoesNotAllocate(t *testing.T) {
	doc := jsonPatch(100)
	var c JSONCounter
	if n := testing.AllocsPerRun(100, func() {
		c = JSONCounter{}
		for i := 0; i < len(doc); i += 7 {
			c.Write(doc[i:min(i+7, len(doc))])
		}
	}); n != 0 {
		t.Fatalf("Write allocates %v times per document", n)
	}
	if c.MaxElements != 100 {
		t.Fatalf("MaxElements = %d", c.MaxElements)
	}
}

func FuzzJSONCounter(f *testing.F) {
	for _, tc := range jsonCounterTests {
		f.Add([]byte(tc.doc), uint16(len(tc.doc)/3), uint16(len(tc.doc)/2))
	}
	f.Fuzz(func(t *testing.T, doc []byte, s1, s2 uint16) {
		a, b := int(s1)%(len(doc)+1), int(s2)%(len(doc)+1)
		checkJSONCounter(t, doc, []int{min(a, b), max(a, b)})
	})
}

func BenchmarkJSONCounter(b *testing.B) {
	docs := []struct {
		name string
		doc  []byte
	}{
		{"json-patch 10000 ops", jsonPatch(10000)},
	}
	for _, tc := range jsonCounterTests {
		if tc.max >= 0 {
			docs = append(docs, struct {
				name string
				doc  []byte
			}{tc.name, []byte(tc.doc)})
		}
	}
	for _, d := range docs {
		b.Run(benchName(d.name), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(d.doc)))
			for b.Loop() {
				var c JSONCounter
				for i := 0; i < len(d.doc); i += 16 << 10 { // Envoy-sized chunks
					c.Write(d.doc[i:min(i+16<<10, len(d.doc))])
				}
			}
		})
	}
}
