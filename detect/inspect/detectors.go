package inspect

import (
	"bytes"

	libinjection "github.com/corazawaf/libinjection-go"
)

// Detector names, as findings report them.
const (
	DetLibinjectionSQLi = "libinjection-sqli"
	DetLibinjectionXSS  = "libinjection-xss"
	DetSQLConstruct     = "sql-construct" // sleep(, waitfor delay, select … from, case when, stacked queries libinjection lets by
	DetDotDot           = "dot-dot-separator"
	DetSensitiveFile    = "sensitive-file"
	DetCommand          = "command-after-separator" // ;id  |cat /etc/passwd  $(whoami)
	DetSubstitution     = "command-substitution"    // `id`  $(id)
	DetShellshock       = "shellshock"              // () { :; };
	DetSSI              = "ssi-exec"                // <!--#exec cmd="…"-->
	DetSSRFMetadata     = "ssrf-cloud-metadata"
	DetSSRFInternal     = "ssrf-internal-address"
	DetSSRFScheme       = "ssrf-scheme" // file:, gopher:, dict:…
	DetJNDI             = "jndi-lookup"
	DetCRLF             = "crlf-header"
	DetCRLFSplit        = "crlf-response-split"
)

// Pre-filter masks: a detector runs only on values holding one of its
// classes.
const (
	travClasses = clsSlash | clsBackslash
	cmdClasses  = clsSemi | clsPipe | clsBacktick | clsAmp | clsCRLF | clsDollar
)

// detectValue runs the detectors of the state's set that the value's
// classes call for and returns the first match. The cheap class test comes
// first: most values (words, numbers, identifiers, dates, e-mail
// addresses) run no detector at all.
func (st *state) detectValue(loc Location, v []byte, c classes) (Kind, string) {
	if c&^plain == 0 && !c.has(clsDot) {
		return KindNone, ""
	}
	set := st.cfg.Detectors
	if set.Has(XXE) && c.has(clsLT) && c.has(clsExcl) {
		if d := detectXXE(v); d != "" {
			return XXE, d
		}
	}
	if set.Has(JNDIInjection) && c.has(clsDollar) && c.has(clsBrace) {
		if detectJNDI(st.scr[:0], v) {
			return JNDIInjection, DetJNDI
		}
	}
	if set.Has(CommandInjection) && c.has(clsParen) && c.has(clsBrace) && detectShellshock(v) {
		return CommandInjection, DetShellshock
	}
	if set.Has(SSRF) && (c.has(clsColon) || c.has(clsDot) && c.has(clsDigit)) {
		if d := detectSSRF(v, c); d != "" {
			return SSRF, d
		}
	}
	if set.Has(NoSQLInjection) && c.has(clsDollar) {
		if d := detectNoSQLValue(v); d != "" {
			return NoSQLInjection, d
		}
	}
	if set.Has(CRLFInjection) && c.has(clsCRLF) {
		if d := detectCRLF(v, loc); d != "" {
			return CRLFInjection, d
		}
	}
	if set.Has(CommandInjection) && c.has(cmdClasses|clsLT) {
		if d := detectCommand(v, c); d != "" {
			return CommandInjection, d
		}
	}
	if set.Has(PathTraversal) && (c.has(travClasses) || c.has(clsDot) && c.has(clsDigit)) {
		if d := detectTraversal(v); d != "" {
			return PathTraversal, d
		}
	}
	if set.Has(SQLInjection) && sqlGate(v, c) {
		if ok, _ := libinjection.IsSQLi(stringOf(v)); ok {
			return SQLInjection, DetLibinjectionSQLi
		}
		if c.has(clsQuote|clsParen|clsSemi) && hasSQLConstruct(v) {
			return SQLInjection, DetSQLConstruct
		}
	}
	if set.Has(XSS) && (c.has(clsLT) || c.has(clsQuote|clsBacktick) && c.has(clsEq) || c.has(clsColon) && c.has(clsParen|clsBacktick|clsAmp)) {
		if libinjection.IsXSS(stringOf(v)) {
			return XSS, DetLibinjectionXSS
		}
	}
	return KindNone, ""
}

// sqlWords are the SQL words an injection without a quote needs (1 or
// 1=1, 1 union select …, 1;drop table …): a value of words, spaces and
// punctuation without one of them is not handed to libinjection. Words of
// prose that cannot start an injection on their own (like, in, is, not,
// from, where: every browser's User-Agent says "like Gecko") are left out.
var sqlWords = [...]string{
	"or", "and", "xor", "div", "union", "select", "having", "order", "group", "rlike", "regexp",
	"sleep", "waitfor", "benchmark", "procedure", "exec", "execute", "declare", "drop", "insert",
	"update", "delete", "limit", "pg_sleep", "extractvalue", "updatexml", "load_file", "outfile",
	"dbms_pipe", "utl_inaddr", "make_set", "elt", "shutdown", "where", "case", "when", "iif", "call",
	"char", "null", "regexp_substring",
}

// sqlWordsBy indexes sqlWords by their first letter.
var sqlWordsBy = func() (by [26][]string) {
	for _, w := range sqlWords {
		by[w[0]-'a'] = append(by[w[0]-'a'], w)
	}
	return by
}()

// hasSQLWord reports whether v holds one of sqlWords as a whole word.
func hasSQLWord(v []byte) bool {
	for i := 0; i < len(v); {
		if !isWordByte(v[i]) {
			i++
			continue
		}
		j := i
		for j < len(v) && isWordByte(v[j]) {
			j++
		}
		if n := j - i; n >= 2 && n <= 12 {
			w := v[i:j]
			if f := lower(w[0]); f >= 'a' && f <= 'z' {
				for _, k := range sqlWordsBy[f-'a'] {
					if len(k) == n && hasPrefixFold(w, k) {
						return true
					}
				}
			}
		}
		i = j
	}
	return false
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// sqlConstructs are SQL phrases that, with a quote, paren or semicolon
// beside them, only an injection carries; they catch the stacked and
// time-based queries libinjection's fingerprints let by. Each is a
// sequence of words (or word plus '(') in order, with anything between.
var sqlConstructs = [...][2]string{
	{"(select", ""}, {"select *", ""}, {"select(", ""}, {";select", ""}, {"; select", ""}, {"waitfor", "delay"}, {"sleep(", ""}, {"benchmark(", ""}, {"pg_sleep(", ""},
	{"case", "when"}, {"union", "select"}, {"procedure", "analyse"}, {"extractvalue(", ""},
	{"updatexml(", ""}, {"iif(", ""}, {"load_file(", ""}, {"into", "outfile"}, {"dbms_", "("},
	{"information_schema", ""}, {"exp(~", ""}, {"char(", "||"},
}

// hasSQLConstruct reports whether v holds one of sqlConstructs, the first
// part at the start of a word.
func hasSQLConstruct(v []byte) bool {
	for _, sc := range sqlConstructs {
		for off := 0; off < len(v); {
			i := indexFold(v[off:], sc[0])
			if i < 0 {
				break
			}
			i += off
			if i > 0 && isWordByte(v[i-1]) && isWordByte(sc[0][0]) {
				off = i + 1
				continue
			}
			if sc[1] == "" || indexFold(v[i+len(sc[0]):], sc[1]) >= 0 {
				return true
			}
			break
		}
	}
	return false
}

// sqlGate is the SQL injection pre-filter: a quote with SQL punctuation
// beside it (' or 1=1, admin'--, 1')), or SQL words. A name with an
// apostrophe (Ann O'Neil) or a browser's User-Agent does not reach
// libinjection.
func sqlGate(v []byte, c classes) bool {
	if c.has(clsQuote|clsBacktick) && (c.has(clsParen|clsSemi|clsEq|clsHash|clsStar|clsComma|clsPipe|clsAmp|clsCRLF|clsCtrl|clsLT|clsGT|clsPercent|clsBackslash) ||
		bytes.Contains(v, sqlDashes)) {
		return true
	}
	return c.has(clsSpace|clsParen|clsComma|clsEq|clsSemi|clsDash|clsHash|clsStar|clsQuote|clsBacktick) && hasSQLWord(v)
}

var sqlDashes = []byte("--")
