// Package archrules checks the import rules of docs/architecture.md against
// the module's real import graph, as `go list -deps -json ./...` reports it,
// so that a layering mistake fails `go test ./...` (and CI) with the rule's
// name and the offending import instead of living on as prose.
//
// The rules constrain production code: the packages' own imports, not those
// of their tests (a test binary is a leaf that nothing else links).
package archrules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// Package is what the rules read of one package in `go list -json`.
type Package struct {
	ImportPath string
	Imports    []string // direct imports
	Module     *Module  // nil for the standard library
	// Error is set when go list could not load the package (a syntax error
	// in an import block, a missing package): its imports are then unknown.
	Error *struct{ Err string }
}

// Module is the module a package belongs to.
type Module struct {
	Path string
	Main bool
}

// Rule is one import rule. Patterns are import paths; "x/..." matches x
// and every package below it.
type Rule struct {
	Name string // shown in every violation
	// From selects the main module's packages the rule constrains; Except
	// leaves some of them out.
	From, Except []string
	// Forbid are the imports the rule forbids, Allow exceptions to them.
	Forbid, Allow []string
	// Transitive makes the rule hold for everything a package links, not
	// only for what it imports itself.
	Transitive bool
}

// Rules are the module's import rules (docs/architecture.md, "Rules the code
// keeps"), for the module at path mod.
func Rules(mod string) []Rule {
	return []Rule{
		{
			Name:       "detect/... imports no Envoy or gRPC package",
			From:       []string{mod + "/detect/..."},
			Forbid:     []string{"github.com/envoyproxy/...", "google.golang.org/grpc/..."},
			Transitive: true,
		},
		{
			Name: "the hot-path package detect imports neither the engine (detect/behaviour), detect/observe nor the store (server/store, bbolt)",
			From: []string{mod + "/detect"},
			Forbid: []string{mod + "/detect/behaviour/...", mod + "/detect/observe/...",
				mod + "/server/store/...", "go.etcd.io/bbolt/..."},
			Transitive: true,
		},
		{
			Name: "nothing imports server/cli but the module's main package",
			From: []string{mod + "/..."},
			// The CLI's own sub-packages, if it grows any, are its own.
			Except: []string{mod, mod + "/server/cli/..."},
			Forbid: []string{mod + "/server/cli/..."},
		},
		{
			Name:       "server/config imports nothing under server/",
			From:       []string{mod + "/server/config/..."},
			Forbid:     []string{mod + "/server/..."},
			Allow:      []string{mod + "/server/config/..."},
			Transitive: true,
		},
		{
			Name: "the request path (envoy/..., detect/..., decoy/...) links no Redis client: verdicts never wait for the network",
			From: []string{mod + "/envoy/...", mod + "/detect/...", mod + "/decoy/..."},
			Forbid: []string{mod + "/server/cluster/...", "github.com/redis/...",
				"github.com/valkey-io/..."},
			Transitive: true,
		},
	}
}

// Violation is one import a rule forbids.
type Violation struct {
	Rule    string
	Package string   // the constrained package
	Import  string   // the forbidden import
	Via     []string // for a transitive rule: the packages in between
}

func (v Violation) String() string {
	via := ""
	if len(v.Via) > 0 {
		via = " (via " + strings.Join(v.Via, " → ") + ")"
	}
	return fmt.Sprintf("rule %q broken: %s imports %s%s", v.Rule, v.Package, v.Import, via)
}

// Match reports whether the import path p matches pattern.
func Match(pattern, p string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return p == base || strings.HasPrefix(p, base+"/")
	}
	return p == pattern
}

func matchAny(patterns []string, p string) bool {
	return slices.ContainsFunc(patterns, func(pat string) bool { return Match(pat, p) })
}

// Check applies the rules to the packages (the main module's and all their
// dependencies, as `go list -deps` lists them). A transitive rule reports
// each forbidden package where the import graph first reaches it, with the
// shortest chain of imports that leads there, and does not look further
// into it. Violations come in the order of rules, then packages.
func Check(pkgs []Package, rules []Rule) []Violation {
	imports := make(map[string][]string, len(pkgs))
	var own []string
	for _, p := range pkgs {
		imports[p.ImportPath] = p.Imports
		if p.Module != nil && p.Module.Main {
			own = append(own, p.ImportPath)
		}
	}
	slices.Sort(own)
	var out []Violation
	for _, r := range rules {
		forbidden := func(p string) bool { return matchAny(r.Forbid, p) && !matchAny(r.Allow, p) }
		for _, from := range own {
			if !matchAny(r.From, from) || matchAny(r.Except, from) {
				continue
			}
			if !r.Transitive {
				for _, imp := range sorted(imports[from]) {
					if forbidden(imp) {
						out = append(out, Violation{Rule: r.Name, Package: from, Import: imp})
					}
				}
				continue
			}
			// Breadth first, so each chain reported is a shortest one.
			parent := map[string]string{from: ""}
			queue := []string{from}
			for len(queue) > 0 {
				p := queue[0]
				queue = queue[1:]
				for _, imp := range sorted(imports[p]) {
					if _, seen := parent[imp]; seen {
						continue
					}
					parent[imp] = p
					if forbidden(imp) {
						var via []string
						for q := p; q != from; q = parent[q] {
							via = append(via, q)
						}
						slices.Reverse(via)
						out = append(out, Violation{Rule: r.Name, Package: from, Import: imp, Via: via})
						continue
					}
					queue = append(queue, imp)
				}
			}
		}
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// Load lists the packages of the module in dir and everything they import,
// with `go list -deps -json ./...`. A package go list cannot load is an
// error: the rules cannot be checked on imports nobody could read.
func Load(dir string) ([]Package, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(gobin, "list", "-deps", "-e", "-json=ImportPath,Imports,Module,Error", "./...")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	js, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps ./...: %w\n%s", err, stderr.String())
	}
	var pkgs []Package
	dec := json.NewDecoder(bytes.NewReader(js))
	for {
		var p Package
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list output: %w", err)
		}
		if p.Error != nil {
			return nil, fmt.Errorf("go list cannot load %s, so its imports are unknown: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}
