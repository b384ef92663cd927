package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// leafKeys returns the dotted paths of a YAML mapping's leaves.
func leafKeys(prefix string, n *yaml.Node) []string {
	if n.Kind != yaml.MappingNode {
		return []string{prefix}
	}
	var out []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, leafKeys(prefix+"."+n.Content[i].Value, n.Content[i+1])...)
	}
	return out
}

// TestREADMEDocumentsRedisKeys: every key of the embedded defaults' redis
// section has a row in the README's configuration reference: `redis.a.b`
// itself, or a row of `redis.a.…` naming `b`; and the README says what
// happens when Redis is unreachable at start.
func TestREADMEDocumentsRedisKeys(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for line := range strings.SplitSeq(string(readme), "\n") {
		if strings.HasPrefix(line, "| `redis.") {
			rows = append(rows, line)
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(DefaultYAML(), &doc); err != nil {
		t.Fatal(err)
	}
	var section *yaml.Node
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "redis" {
			section = top.Content[i+1]
		}
	}
	if section == nil {
		t.Fatal("default.yaml has no redis section")
	}
	keys := leafKeys("redis", section)
	if len(keys) < 10 {
		t.Fatalf("redis keys %v", keys)
	}
	for _, k := range keys {
		parent, leaf := k[:strings.LastIndexByte(k, '.')], k[strings.LastIndexByte(k, '.')+1:]
		var found bool
		for _, r := range rows {
			first, _, _ := strings.Cut(strings.TrimPrefix(r, "| "), " |")
			found = found || strings.Contains(first, "`"+k+"`") ||
				(parent != "redis" && strings.HasPrefix(first, "`"+parent+".") && strings.Contains(first, "`"+leaf+"`"))
		}
		if !found {
			t.Errorf("README's configuration reference has no row for %s", k)
		}
	}
	for _, want := range []string{"Redis unreachable when Vigil starts", "refuses to start", "password_file"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README does not say %q", want)
		}
	}
}
