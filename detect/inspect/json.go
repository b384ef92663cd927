package inspect

// jsonTokenizer is a streaming JSON tokenizer (placeholder).
type jsonTokenizer struct {
	str []byte
}

func (t *jsonTokenizer) reset() {}

func (t *jsonTokenizer) write(st *state, b []byte) {
	st.setPath(LocBody, "")
	st.emit(LocBody, b, decodeNone)
}
