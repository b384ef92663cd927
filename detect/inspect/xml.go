package inspect

// Detector names of XXE.
const (
	DetXXEExternalEntity = "xxe-external-entity" // <!ENTITY x SYSTEM "file:///etc/passwd">
	DetXXEExternalDTD    = "xxe-external-dtd"    // <!DOCTYPE x SYSTEM "http://evil/x.dtd">
	DetXXEExpansion      = "xxe-entity-expansion"
	DetXInclude          = "xinclude"
)

// looksXML reports whether a body of another declared type starts as an
// XML document (a declaration or a DOCTYPE): XXE payloads are often sent
// as text/plain or with no type at all.
func looksXML(b []byte) bool {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	return hasPrefixFold(b, "<?xml") || hasPrefixFold(b, "<!doctype")
}

// xmlBody inspects an XML body: XXE over the whole (capped) body, then
// each text node (body.<element>) and attribute value
// (body.<element>.<attribute>) as a value, entities decoded by the HTML
// decoder. Markup itself is not a value, so a plain document does not look
// like XSS.
func (st *state) xmlBody(b []byte) {
	st.setPath(LocBody, "")
	if st.cfg.Detectors.Has(XXE) {
		if d := detectXXE(b); d != "" {
			st.values++
			st.found(XXE, d, LocBody, b, 0)
			return
		}
	}
	var elem []byte
	for i := 0; i < len(b) && !st.done; {
		if b[i] != '<' {
			j := i
			for j < len(b) && b[j] != '<' {
				j++
			}
			if text := trimSpace(b[i:j]); len(text) > 0 {
				st.xmlPath(elem, nil)
				st.emit(LocBody, text, decodeNone)
			}
			i = j
			continue
		}
		rest := b[i:]
		switch {
		case hasPrefixFold(rest, "<!--"):
			i += skipPast(rest, "-->")
		case hasPrefixFold(rest, "<![cdata["):
			end := indexFold(rest, "]]>")
			if end < 0 {
				end = len(rest)
			}
			st.xmlPath(elem, nil)
			st.emit(LocBody, rest[len("<![cdata["):end], decodeNone)
			i += min(end+3, len(rest))
		case hasPrefixFold(rest, "<?"):
			i += skipPast(rest, "?>")
		case hasPrefixFold(rest, "<!"):
			if k := indexByte(rest, '['); k >= 0 && k < indexByte(rest, '>') {
				i += skipPast(rest, "]>")
			} else {
				i += skipPast(rest, ">")
			}
		case hasPrefixFold(rest, "</"):
			i += skipPast(rest, ">")
		default:
			i += st.xmlTag(rest, &elem)
		}
	}
}

// xmlTag reads one start tag at the start of s, emits its attribute values
// and returns its length.
func (st *state) xmlTag(s []byte, elem *[]byte) int {
	j := 1
	for j < len(s) && !isXMLSpace(s[j]) && s[j] != '>' && s[j] != '/' {
		j++
	}
	*elem = localName(s[1:j])
	for j < len(s) && !st.done {
		for j < len(s) && isXMLSpace(s[j]) {
			j++
		}
		if j >= len(s) || s[j] == '>' || s[j] == '/' {
			break
		}
		k := j
		for k < len(s) && s[k] != '=' && s[k] != '>' && !isXMLSpace(s[k]) {
			k++
		}
		name := localName(s[j:k])
		for k < len(s) && (isXMLSpace(s[k]) || s[k] == '=') {
			k++
		}
		if k >= len(s) || s[k] != '"' && s[k] != '\'' {
			j = k
			continue
		}
		q := s[k]
		end := k + 1
		for end < len(s) && s[end] != q {
			end++
		}
		st.xmlPath(*elem, name)
		st.emit(LocBody, s[k+1:end], decodeNone)
		j = end + 1
	}
	return min(skipPast(s, ">"), len(s))
}

func (st *state) xmlPath(elem, attr []byte) {
	st.setPath(LocBody, "")
	if len(elem) > 0 {
		st.appendPath(".")
		st.appendPathBytes(elem)
	}
	if len(attr) > 0 {
		st.appendPath(".")
		st.appendPathBytes(attr)
	}
}

// localName drops a namespace prefix.
func localName(n []byte) []byte {
	if i := indexByte(n, ':'); i >= 0 {
		return n[i+1:]
	}
	return n
}

func isXMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isXMLSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isXMLSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// skipPast is the length of s up to and including the first end, or
// len(s).
func skipPast(s []byte, end string) int {
	if i := indexFold(s, end); i >= 0 {
		return i + len(end)
	}
	return len(s)
}

// detectXXE finds a DOCTYPE that pulls in outside content (an external
// DTD, an external or parameter entity with SYSTEM or PUBLIC), an entity
// expansion bomb (many entities referring to each other), or an XInclude.
func detectXXE(b []byte) string {
	i := indexFold(b, "<!doctype")
	if i < 0 {
		if indexFold(b, "xinclude") >= 0 && indexFold(b, ":include") >= 0 {
			return DetXInclude
		}
		return ""
	}
	d := b[i+len("<!doctype"):]
	// The DOCTYPE's header runs to its internal subset '[' or its end '>'.
	head := d
	for j, c := range d {
		if c == '[' || c == '>' {
			head = d[:j]
			break
		}
	}
	if indexFold(head, "system") >= 0 || indexFold(head, "public") >= 0 {
		return DetXXEExternalDTD
	}
	entities := 0
	for rest := d; ; {
		j := indexFold(rest, "<!entity")
		if j < 0 {
			break
		}
		entities++
		rest = rest[j+len("<!entity"):]
		decl := rest
		if k := indexByte(rest, '>'); k >= 0 {
			decl = rest[:k]
		}
		if indexFold(decl, "system") >= 0 || indexFold(decl, "public") >= 0 {
			return DetXXEExternalEntity
		}
	}
	if entities >= 3 && indexByte(d, '&') >= 0 {
		return DetXXEExpansion
	}
	return ""
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// indexFold is the index of pat (lower case ASCII) in v ignoring case, or
// -1.
func indexFold(v []byte, pat string) int {
	if len(pat) == 0 {
		return 0
	}
	p0 := pat[0]
	for i := 0; i+len(pat) <= len(v); i++ {
		if lower(v[i]) != p0 {
			continue
		}
		j := 1
		for j < len(pat) && lower(v[i+j]) == pat[j] {
			j++
		}
		if j == len(pat) {
			return i
		}
	}
	return -1
}

func hasPrefixFold(v []byte, pat string) bool {
	if len(v) < len(pat) {
		return false
	}
	for i := 0; i < len(pat); i++ {
		if lower(v[i]) != pat[i] {
			return false
		}
	}
	return true
}
