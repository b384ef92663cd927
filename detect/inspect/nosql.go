package inspect

// Detector names of NoSQL injection.
const (
	DetNoSQLOperatorKey   = "nosql-operator-key"   // user[$ne]=, {"$gt": ""}
	DetNoSQLOperatorValue = "nosql-operator-value" // q={"$where": "sleep(1000)"}
)

// nosqlOperators are MongoDB's query and aggregation operators attackers
// put where a plain value was expected (without their '$').
var nosqlOperators = [...]string{
	"ne", "eq", "gt", "gte", "lt", "lte", "in", "nin", "regex", "where", "exists", "expr",
	"or", "and", "not", "nor", "elemmatch", "type", "mod", "all", "size", "function",
	"accumulator", "lookup", "jsonschema", "text", "options",
}

// operatorAt reports whether s (after a '$') starts with an operator
// followed by a byte that ends a name.
func operatorAt(s []byte) bool {
	for _, op := range nosqlOperators {
		if len(s) < len(op) || !hasPrefixFold(s, op) {
			continue
		}
		if len(s) == len(op) {
			return true
		}
		switch s[len(op)] {
		case '"', '\'', ']', ':', ' ', '=', '}':
			return true
		}
	}
	return false
}

// detectNoSQLOperator checks a JSON key that starts with '$'.
func detectNoSQLOperator(key []byte) string {
	if operatorAt(key[1:]) {
		return DetNoSQLOperatorKey
	}
	return ""
}

// detectNoSQLKeyPath checks a query or form key path for an operator in
// brackets (user[$ne]) or as the key itself ($where).
func detectNoSQLKeyPath(path []byte) string {
	for i := 0; i+1 < len(path); i++ {
		if path[i] == '$' && (i == 0 || path[i-1] == '[' || path[i-1] == '.') && operatorAt(path[i+1:]) {
			return DetNoSQLOperatorKey
		}
	}
	return ""
}

// detectNoSQLValue finds an operator inside a value: a JSON document with
// "$ne" as a key, or a $where clause.
func detectNoSQLValue(v []byte) string {
	for i := 0; i+1 < len(v); i++ {
		if v[i] != '$' {
			continue
		}
		if i > 0 && (v[i-1] == '"' || v[i-1] == '\'' || v[i-1] == '{' || v[i-1] == '[') && operatorAt(v[i+1:]) {
			return DetNoSQLOperatorValue
		}
		if hasPrefixFold(v[i+1:], "where") && operatorAt(v[i+1:]) {
			return DetNoSQLOperatorValue
		}
	}
	return ""
}
