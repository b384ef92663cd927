package bootstrap

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// examplesDir is the repository's examples folder, relative to this package.
const examplesDir = "../../examples"

// bootstrapKey matches a top-level static_resources or listeners key: what makes a YAML
// file an Envoy bootstrap rather than a Kubernetes manifest or a compose file (whose
// Envoy config, if embedded, is indented). It works on the raw text so that a bootstrap
// with a YAML syntax error is still found, and then fails.
var bootstrapKey = regexp.MustCompile(`(?m)^(static_resources|listeners)\s*:`)

// TestExampleBootstraps validates every Envoy bootstrap under examples/, so an example
// cannot drift into a config Envoy would reject.
func TestExampleBootstraps(t *testing.T) {
	var found []string
	err := filepath.WalkDir(examplesDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if ext := strings.ToLower(filepath.Ext(path)); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bootstrapKey.Match(data) {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", examplesDir, err)
	}
	if len(found) == 0 {
		t.Fatalf("no Envoy bootstrap (a YAML file with a top-level static_resources or listeners key) under %s", examplesDir)
	}
	for _, path := range found {
		rel, _ := filepath.Rel(examplesDir, path)
		t.Run(filepath.ToSlash(rel), func(t *testing.T) {
			if err := ValidateFile(path); err != nil {
				t.Errorf("invalid Envoy bootstrap:\n%v", err)
			}
		})
	}
}
