// Command mutation plants deliberate faults in the detection engine, one at
// a time in a copy of the repository, and checks that the tests catch each:
// for every fault some test must fail. Run it whenever detection changes:
//
//	go run ./test/mutation                 # every fault, the detection packages' tests
//	go run ./test/mutation -fault halve    # one fault
//	go run ./test/mutation -pkgs ./...     # the whole suite (as the issue asks; slower)
//
// A fault is a small patch to detect/behaviour/*.go. Each patch names the exact code it
// replaces; when that code has changed, the program stops with an error
// saying which anchor is gone, rather than test an unchanged engine.
// It exits non-zero when a fault goes uncaught or cannot be planted.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// edit replaces old by new in file; want is how many times old must occur
// (0: at least once).
type edit struct {
	file, old, new string
	want           int
	regexp         bool
}

// fault is one deliberate bug: edits to existing files and files added.
type fault struct {
	name, what string
	edits      []edit
	add        map[string]string // file → content
}

// scaleLearned multiplies every learned threshold (Tn and Tx in compute)
// and every variable's floor by f.
func scaleLearned(name, what, f string) fault {
	return fault{
		name: name, what: what,
		edits: []edit{
			{file: "detect/behaviour/model.go", old: "t.Tn = q99\n", new: "t.Tn = " + f + " * q99\n", want: 1},
			{file: "detect/behaviour/model.go", old: "t.Tx = max(d.floor, 2*r.max)", new: "t.Tx = max(d.floor, " + f + "*2*r.max)", want: 1},
			{file: "detect/behaviour/model.go", old: "t.Tx = max(d.floor, 3*q99, 1.5*q999)", new: "t.Tx = max(d.floor, " + f + "*3*q99, " + f + "*1.5*q999)", want: 1},
		},
		add: map[string]string{"detect/behaviour/zz_mutant.go": "package behaviour\n\nfunc init() {\n\tfor i := range varDefs {\n\t\tvarDefs[i].floor *= " + f + "\n\t}\n}\n"},
	}
}

var faults = []fault{
	scaleLearned("halve", "every learned threshold (Tn, Tx in compute) and every floor halved", "0.5"),
	scaleLearned("double", "every learned threshold (Tn, Tx in compute) and every floor doubled", "2"),
	{
		name: "disable-deletes", what: "one variable disabled: deletes_10m (mass_deletion) can never pass its floor",
		add: map[string]string{"detect/behaviour/zz_mutant.go": "package behaviour\n\nfunc init() { varDefs[vDeletes].floor = 1e15 }\n"},
	},
	{
		name: "sketch-low", what: "the distinct counter (HyperLogLog estimate in detect/behaviour/sketch.go) 40% low",
		edits: []edit{{file: "detect/behaviour/sketch.go", old: "func (h *hll) estimate() float64 {",
			new: "func (h *hll) estimate() float64 { return 0.6 * h.estimateTrue() }\n\nfunc (h *hll) estimateTrue() float64 {", want: 1}},
	},
	{
		name: "no-sensitivity", what: "the per-type sensitivity knob ignored (read as 1 wherever the engine divides by it)",
		edits: []edit{{file: "detect/behaviour/engine.go", old: `knobs\[[a-zA-Z_.()\[\]]+\]\.Sensitivity`, new: "1.0", regexp: true}},
	},
}

func main() {
	only := flag.String("fault", "", "run this fault only (names: halve, double, disable-deletes, sketch-low, no-sensitivity)")
	pkgs := flag.String("pkgs", "./detect/... ./server/... ./test/e2e ./test/scenario", "packages whose tests must catch each fault (space-separated)")
	keep := flag.Bool("keep", false, "keep the mutated copies (their paths are printed)")
	flag.Parse()

	root, err := repoRoot()
	if err != nil {
		fatal(err)
	}
	var run []fault
	for _, f := range faults {
		if *only == "" || f.name == *only {
			run = append(run, f)
		}
	}
	if len(run) == 0 {
		fatal(fmt.Errorf("no fault named %q", *only))
	}
	failed := false
	var summary []string
	for _, f := range run {
		start := time.Now()
		fmt.Printf("== %s: %s\n", f.name, f.what)
		caught, err := try(root, f, strings.Fields(*pkgs), *keep)
		took := time.Since(start).Round(time.Second)
		switch {
		case err != nil:
			failed = true
			summary = append(summary, fmt.Sprintf("%-16s CANNOT PLANT: %v", f.name, err))
		case len(caught) == 0:
			failed = true
			summary = append(summary, fmt.Sprintf("%-16s NOT CAUGHT: every test passed (%s)", f.name, took))
		default:
			summary = append(summary, fmt.Sprintf("%-16s caught by %d tests (%s): %s", f.name, len(caught), took, strings.ReplaceAll(strings.Join(first(caught, 6), ", "), "github.com/vigil-project/vigil/", "")))
		}
		fmt.Println(summary[len(summary)-1])
	}
	fmt.Println("\n== summary")
	for _, s := range summary {
		fmt.Println(s)
	}
	if failed {
		os.Exit(1)
	}
}

// try plants f in a copy of root, runs the tests of pkgs there and returns
// the failing tests ("pkg TestName").
func try(root string, f fault, pkgs []string, keep bool) ([]string, error) {
	dir, err := os.MkdirTemp("", "vigil-mutant-"+f.name+"-")
	if err != nil {
		return nil, err
	}
	if keep {
		fmt.Println("copy:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if err := copyRepo(root, dir); err != nil {
		return nil, err
	}
	for _, e := range f.edits {
		if err := apply(dir, e); err != nil {
			return nil, err
		}
	}
	for name, content := range f.add {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	if out, err := command(dir, "go", "build", "./...").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("the mutant does not build:\n%s", out)
	}
	cmd := command(dir, "go", append([]string{"test", "-count=1", "-json"}, pkgs...)...)
	cmd.Env = append(cmd.Env, "GRPC_EXPERIMENTAL_XDS_EXT_PROC_ON_CLIENT=true")
	out, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	failing := failures(out)
	cmd.Wait()
	if len(failing) == 0 && stderr.Len() > 0 && strings.Contains(stderr.String(), "build failed") {
		return nil, fmt.Errorf("the tests do not build:\n%s", stderr.String())
	}
	return failing, nil
}

// failures reads go test -json and returns the failing tests, top level
// only, and packages that failed without a failing test (a build error, a
// panic outside a test).
func failures(r io.Reader) []string {
	type event struct{ Action, Package, Test, Output string }
	tests := map[string]bool{}
	why := map[string][]string{} // test → its first error lines
	pkgFailed := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		name := e.Package + " " + strings.SplitN(e.Test, "/", 2)[0]
		switch {
		case e.Action == "output" && e.Test != "" && errorLine.MatchString(e.Output) && !strings.HasSuffix(strings.TrimSpace(e.Output), ":") && len(why[name]) < 2:
			why[name] = append(why[name], strings.TrimSpace(e.Output))
		case e.Action == "fail" && e.Test == "":
			pkgFailed[e.Package] = true
		case e.Action == "fail":
			tests[name] = true
		}
	}
	var out []string
	for t := range tests {
		out = append(out, t)
		for _, w := range why[t] {
			fmt.Printf("  %s: %.300s\n", strings.TrimPrefix(t, "github.com/vigil-project/vigil/"), w)
		}
	}
	for p := range pkgFailed {
		found := false
		for t := range tests {
			found = found || strings.HasPrefix(t, p+" ")
		}
		if !found {
			out = append(out, p+" (package failed)")
		}
	}
	sort.Strings(out)
	return out
}

// errorLine is a test's t.Error or t.Fatal output.
var errorLine = regexp.MustCompile(`^\s+\w+_test\.go:\d+: `)

func apply(dir string, e edit) error {
	path := filepath.Join(dir, e.file)
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var n int
	var dst string
	if e.regexp {
		re := regexp.MustCompile(e.old)
		n = len(re.FindAllIndex(src, -1))
		dst = re.ReplaceAllLiteralString(string(src), e.new)
	} else {
		n = strings.Count(string(src), e.old)
		dst = strings.ReplaceAll(string(src), e.old, e.new)
	}
	if n == 0 || e.want > 0 && n != e.want {
		return fmt.Errorf("%s: anchor %q found %d times, want %d: the code changed, update the fault in test/mutation/main.go", e.file, e.old, n, max(e.want, 1))
	}
	return os.WriteFile(path, []byte(dst), 0o644)
}

// copyRepo copies the files git knows of (tracked, and untracked but not
// ignored) from root to dir.
func copyRepo(root, dir string) error {
	out, err := command(root, "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		info, err := os.Lstat(src)
		if err != nil {
			continue // deleted in the work tree
		}
		if !info.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, info.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

func repoRoot() (string, error) {
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", fmt.Errorf("run it inside the repository: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func command(dir, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	// Without the copy's path in the builds, what no fault touches comes
	// from the build cache, for every copy.
	cmd.Env = append(os.Environ(), "GOFLAGS=-trimpath")
	return cmd
}

func first(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "mutation:", err)
	os.Exit(2)
}
