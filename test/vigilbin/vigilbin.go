// Package vigilbin gives end-to-end tests the built vigil binary and the
// third-party tools they drive, the same way in every test package.
package vigilbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binDir    string
	binary    string
	buildErr  error
)

// Path builds the binary once per test process with `go build -o vigil .`
// at the repository root, as the README says (without -race: the tests that
// run it time it), and returns its path.
func Path(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		if binDir, buildErr = os.MkdirTemp("", "vigil-bin"); buildErr != nil {
			return
		}
		binary = filepath.Join(binDir, "vigil")
		cmd := exec.Command("go", "build", "-o", binary, ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binary
}

// Main runs a test package's tests and removes the binary built for them;
// call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// repoRoot is the module's root: two levels above this file.
func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the repository")
	}
	return filepath.Dir(filepath.Dir(filepath.Dir(file))), nil
}

// Tool returns the path of a program or file a test needs: a name looked
// up in PATH and then in $(go env GOPATH)/bin, or an absolute path. When it
// is missing the test fails in CI (CI set), where .ci/run installs it, and
// is skipped elsewhere; how names the install (a Debian package, a go
// install).
func Tool(tb testing.TB, name, how string) string {
	tb.Helper()
	if filepath.IsAbs(name) {
		if _, err := os.Stat(name); err == nil {
			return name
		}
	} else {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if gp, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			cand := filepath.Join(strings.TrimSpace(string(gp)), "bin", name)
			if _, err := os.Stat(cand); err == nil {
				return cand
			}
		}
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("%s is missing in CI: .ci/run installs it (%s)", name, how)
	}
	tb.Skipf("%s is missing (%s); skipped outside CI", name, how)
	return ""
}
