package detect

// maxJSONDepth bounds the nesting the counter tracks; deeper documents are
// flagged as too deep.
const maxJSONDepth = 128

// JSONCounter counts, in one pass over a JSON document fed in chunks of any
// size, the largest number of elements in any one array (the
// operations of a json-patch, the items of a bulk request). It holds a fixed
// amount of state whatever the body's size and never buffers the body, so a
// request can be refused as soon as it crosses a limit. It does not validate
// the document: malformed input yields counts, never an error.
type JSONCounter struct {
	depth    int
	inString bool
	escape   bool
	// MaxElements is the largest element count seen so far, including the
	// containers still open.
	MaxElements int
	// TooDeep is set once nesting went past 128 levels.
	TooDeep bool
	stack   [maxJSONDepth]jsonLevel
}

type jsonLevel struct {
	count    int32
	sawValue bool
	object   bool // members of objects are not counted, only array elements
}

// Write feeds the next chunk of the document.
func (c *JSONCounter) Write(p []byte) {
	for _, b := range p {
		if c.inString {
			switch {
			case c.escape:
				c.escape = false
			case b == '\\':
				c.escape = true
			case b == '"':
				c.inString = false
			}
			continue
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case ',':
			if l := c.level(); l != nil {
				l.count++
				l.sawValue = false
				c.see(l)
			}
			continue
		case ']', '}':
			if c.depth > 0 {
				c.depth--
			}
			continue
		case ':':
			continue
		}
		// A value starts here (or a key in an object).
		if l := c.level(); l != nil && !l.sawValue {
			l.sawValue = true
			if l.count == 0 {
				l.count = 1
				c.see(l)
			}
		}
		switch b {
		case '"':
			c.inString = true
		case '[', '{':
			c.depth++
			if c.depth > maxJSONDepth {
				c.TooDeep = true
			} else {
				c.stack[c.depth-1] = jsonLevel{object: b == '{'}
			}
		}
	}
}

// level returns the innermost open container, or nil outside any (or past
// the tracked depth).
func (c *JSONCounter) level() *jsonLevel {
	if c.depth == 0 || c.depth > maxJSONDepth {
		return nil
	}
	return &c.stack[c.depth-1]
}

func (c *JSONCounter) see(l *jsonLevel) {
	if !l.object && int(l.count) > c.MaxElements {
		c.MaxElements = int(l.count)
	}
}
