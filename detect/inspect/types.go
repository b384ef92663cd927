package inspect

// ValueType is the most specific type a value fits, as profiles learn it.
type ValueType uint8

// Value types, from the most to the least specific.
const (
	TypeEmpty ValueType = iota
	TypeInteger
	TypeDecimal
	TypeBoolean
	TypeUUID
	TypeDate
	TypeEmail
	TypeJWT
	TypeHex
	TypeToken // letters, digits, '_', '-', '.': a word, a slug, an identifier
	TypeText  // anything else
	numTypes
)

var typeNames = [numTypes]string{"empty", "integer", "decimal", "boolean", "uuid", "date", "email", "jwt", "hex", "token", "text"}

// String is the type's name ("integer").
func (t ValueType) String() string {
	if t < numTypes {
		return typeNames[t]
	}
	return "unknown"
}

func typeByName(s string) (ValueType, bool) {
	for i, n := range typeNames {
		if n == s {
			return ValueType(i), true
		}
	}
	return 0, false
}

// typeSet is a set of value types.
type typeSet uint16

// accepts says which value types a parameter of each learned type takes:
// a decimal parameter takes integers, a token parameter takes numbers, hex
// and UUIDs, a text parameter takes anything.
var accepts = [numTypes]typeSet{
	TypeEmpty:   1 << TypeEmpty,
	TypeInteger: 1<<TypeInteger | 1<<TypeEmpty,
	TypeDecimal: 1<<TypeDecimal | 1<<TypeInteger | 1<<TypeEmpty,
	TypeBoolean: 1<<TypeBoolean | 1<<TypeEmpty,
	TypeUUID:    1<<TypeUUID | 1<<TypeEmpty,
	TypeDate:    1<<TypeDate | 1<<TypeEmpty,
	TypeEmail:   1<<TypeEmail | 1<<TypeEmpty,
	TypeJWT:     1<<TypeJWT | 1<<TypeEmpty,
	TypeHex:     1<<TypeHex | 1<<TypeInteger | 1<<TypeEmpty,
	TypeToken: 1<<TypeToken | 1<<TypeInteger | 1<<TypeDecimal | 1<<TypeBoolean | 1<<TypeUUID |
		1<<TypeHex | 1<<TypeDate | 1<<TypeEmpty,
	TypeText: 1<<numTypes - 1,
}

// TypeOf is the most specific type v fits.
func TypeOf(v []byte) ValueType {
	if len(v) == 0 {
		return TypeEmpty
	}
	switch {
	case isInteger(v):
		return TypeInteger
	case isDecimal(v):
		return TypeDecimal
	case string(v) == "true" || string(v) == "false":
		return TypeBoolean
	case isUUID(v):
		return TypeUUID
	case isDate(v):
		return TypeDate
	case isEmail(v):
		return TypeEmail
	case isJWT(v):
		return TypeJWT
	case isHex(v):
		return TypeHex
	case isToken(v):
		return TypeToken
	}
	return TypeText
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isInteger(v []byte) bool {
	if v[0] == '-' || v[0] == '+' {
		v = v[1:]
	}
	if len(v) == 0 || len(v) > 20 {
		return false
	}
	for _, c := range v {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

func isDecimal(v []byte) bool {
	if v[0] == '-' || v[0] == '+' {
		v = v[1:]
	}
	digits, dot, exp := 0, false, false
	for i, c := range v {
		switch {
		case isDigit(c):
			digits++
		case c == '.' && !dot && !exp:
			dot = true
		case (c == 'e' || c == 'E') && !exp && digits > 0 && i+1 < len(v):
			exp = true
			if v[i+1] == '-' || v[i+1] == '+' {
				continue
			}
		case (c == '-' || c == '+') && i > 0 && (v[i-1] == 'e' || v[i-1] == 'E'):
		default:
			return false
		}
	}
	return digits > 0 && len(v) <= 40
}

func isUUID(v []byte) bool {
	if len(v) != 36 {
		return false
	}
	for i, c := range v {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if _, ok := unhex(c); !ok {
			return false
		}
	}
	return true
}

// isDate takes ISO 8601 dates and date-times (2024-01-02,
// 2024-01-02T10:00:00Z) and day-first or month-first dates with '/'.
func isDate(v []byte) bool {
	if len(v) < 8 || len(v) > 35 {
		return false
	}
	if len(v) >= 10 && isDigits(v[:4]) && v[4] == '-' && isDigits(v[5:7]) && v[7] == '-' && isDigits(v[8:10]) {
		rest := v[10:]
		if len(rest) == 0 {
			return true
		}
		if rest[0] != 'T' && rest[0] != ' ' && rest[0] != 't' {
			return false
		}
		for _, c := range rest[1:] {
			if !isDigit(c) && c != ':' && c != '.' && c != 'Z' && c != 'z' && c != '+' && c != '-' {
				return false
			}
		}
		return true
	}
	return len(v) == 10 && isDigits(v[:2]) && v[2] == '/' && isDigits(v[3:5]) && v[5] == '/' && isDigits(v[6:])
}

func isDigits(v []byte) bool {
	for _, c := range v {
		if !isDigit(c) {
			return false
		}
	}
	return len(v) > 0
}

func isEmail(v []byte) bool {
	at := indexByte(v, '@')
	if at <= 0 || at == len(v)-1 || len(v) > 254 {
		return false
	}
	dom := v[at+1:]
	if indexByte(dom, '.') <= 0 || dom[len(dom)-1] == '.' {
		return false
	}
	for _, c := range v {
		if c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '(' || c == ')' || c == ',' || c == ';' || c == '"' || c == '\\' {
			return false
		}
	}
	return indexByte(dom, '@') < 0
}

func isJWT(v []byte) bool {
	if len(v) < 20 || !hasPrefixFold(v, "eyj") {
		return false
	}
	dots := 0
	for _, c := range v {
		switch {
		case c == '.':
			dots++
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', isDigit(c), c == '-', c == '_', c == '=':
		default:
			return false
		}
	}
	return dots == 2
}

func isHex(v []byte) bool {
	if len(v) < 8 {
		return false
	}
	letters := false
	for _, c := range v {
		if _, ok := unhex(c); !ok {
			return false
		}
		letters = letters || !isDigit(c)
	}
	return letters
}

func isToken(v []byte) bool {
	for _, c := range v {
		if !isWordByte(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}
