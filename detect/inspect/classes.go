package inspect

// classes is a bitmask of the character classes a value holds, computed in
// one pass; the pre-filter decides from it which detectors run.
type classes uint32

const (
	clsAlpha classes = 1 << iota
	clsDigit
	clsSpace // ' ', '\t'
	clsCRLF
	clsCtrl // other control bytes, NUL included
	clsNonASCII
	clsQuote // ' and "
	clsBacktick
	clsLT
	clsGT
	clsDot
	clsSlash
	clsBackslash
	clsDollar
	clsBrace // { }
	clsParen // ( )
	clsBracket
	clsSemi
	clsPipe
	clsAmp
	clsEq
	clsColon
	clsHash
	clsDash
	clsStar
	clsComma
	clsPercent
	clsExcl
	clsOther
)

// classTable maps each byte to its class.
var classTable = func() (t [256]classes) {
	for i := range t {
		c := byte(i)
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			t[i] = clsAlpha
		case c >= '0' && c <= '9':
			t[i] = clsDigit
		case c == ' ' || c == '\t':
			t[i] = clsSpace
		case c == '\r' || c == '\n':
			t[i] = clsCRLF
		case c < 0x20 || c == 0x7f:
			t[i] = clsCtrl
		case c >= 0x80:
			t[i] = clsNonASCII
		default:
			t[i] = clsOther
		}
	}
	for c, k := range map[byte]classes{
		'\'': clsQuote, '"': clsQuote, '`': clsBacktick, '<': clsLT, '>': clsGT, '.': clsDot,
		'/': clsSlash, '\\': clsBackslash, '$': clsDollar, '{': clsBrace, '}': clsBrace,
		'(': clsParen, ')': clsParen, '[': clsBracket, ']': clsBracket, ';': clsSemi,
		'|': clsPipe, '&': clsAmp, '=': clsEq, ':': clsColon, '#': clsHash, '-': clsDash,
		'*': clsStar, ',': clsComma, '%': clsPercent, '!': clsExcl,
	} {
		t[c] = k
	}
	return t
}()

func classify(v []byte) classes {
	var c classes
	for _, b := range v {
		c |= classTable[b]
	}
	return c
}

// plain are the classes of values no detector needs to look at: words,
// numbers, e-mail addresses, identifiers, dates.
const plain = clsAlpha | clsDigit | clsDot | clsDash | clsOther | clsNonASCII

func (c classes) has(m classes) bool { return c&m != 0 }
