package spec

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// detect and envoy/ judge requests with this package: it must import
// nothing of Vigil but detect/inspect, or detect could not use it.
func TestImportsNoVigilButInspect(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range af.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if strings.HasPrefix(p, "github.com/vigil-project/vigil/") && p != "github.com/vigil-project/vigil/detect/inspect" {
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
}
