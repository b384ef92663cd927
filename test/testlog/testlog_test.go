package testlog

import (
	"strings"
	"testing"
)

func TestCheckLine(t *testing.T) {
	for _, tc := range []struct{ line, err string }{
		{`{"level":"info","service":"vigil","message":"refused"}`, ""},
		{`{"a":{"b":1,"c":[{"d":1},{"d":2}]},"e":null}`, ""},
		{`{}`, ""},
		{`{"service":"vigil","filter":"ext_authz","service":"ext_authz"}`, `key "service" twice in the line`},
		{`{"a":{"b":1,"b":2}}`, `key "b" twice in .a`},
		{`{"a":[{"x":1,"x":1}]}`, `key "x" twice in .a[0]`},
		{`{"a":1}{"b":2}`, "data after the object"},
		{`{"a":1} x`, "data after the object"},
		{`["a"]`, "not a JSON object"},
		{`level=info msg=refused`, "invalid character"},
		{`{"a":"` + "\xff" + `"}`, "not UTF-8"},
		{`{"a":`, "EOF"},
		{``, "EOF"},
	} {
		err := CheckLine([]byte(tc.line))
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("CheckLine(%s) = %v, want %q", tc.line, err, tc.err)
		}
	}
}

func TestBufferCheck(t *testing.T) {
	var b Buffer
	b.Write([]byte("{\"a\":1}\n{\"b\":2}\n"))
	if err := b.Check(); err != nil {
		t.Fatal(err)
	}
	b.Write([]byte("{\"c\":1,\"c\":2}\n{\"d\":"))
	err := b.Check()
	if err == nil || !strings.Contains(err.Error(), "log line 3: key \"c\" twice") || !strings.Contains(err.Error(), "log line 4 is not ended") {
		t.Fatalf("Check = %v", err)
	}
}
