package inspect

import (
	libinjection "github.com/corazawaf/libinjection-go"
)

// Detector names, as findings report them.
const (
	DetLibinjectionSQLi = "libinjection-sqli"
	DetLibinjectionXSS  = "libinjection-xss"
	DetDotDot           = "dot-dot-separator"
	DetSensitiveFile    = "sensitive-file"
)

// Pre-filter masks: a detector runs only on values holding one of its
// classes.
const (
	sqliClasses = clsQuote | clsBacktick | clsParen | clsSemi | clsHash | clsStar | clsEq | clsComma |
		clsSpace | clsPipe | clsAmp | clsSlash | clsCRLF | clsCtrl
	travClasses = clsSlash | clsBackslash
)

// detectValue runs the detectors of set that the value's classes call for
// and returns the first match.
func detectValue(set Set, loc Location, v []byte, c classes) (Kind, string) {
	if c&^plain == 0 && !c.has(clsDot) {
		return KindNone, ""
	}
	if set.Has(PathTraversal) && (c.has(travClasses) || c.has(clsDot) && c.has(clsDigit)) {
		if d := detectTraversal(v); d != "" {
			return PathTraversal, d
		}
	}
	if set.Has(SQLInjection) && c.has(sqliClasses) {
		if ok, _ := libinjection.IsSQLi(stringOf(v)); ok {
			return SQLInjection, DetLibinjectionSQLi
		}
	}
	if set.Has(XSS) && (c.has(clsLT|clsEq) || c.has(clsColon) && c.has(clsParen|clsBacktick|clsAmp)) {
		if libinjection.IsXSS(stringOf(v)) {
			return XSS, DetLibinjectionXSS
		}
	}
	return KindNone, ""
}
