package manifests

// The repository's Dockerfile and .dockerignore, read as text (there is no Docker engine
// to build with here): a multi-stage build of a static binary, a non-root final stage
// without a shell, and a build context that holds every file `go build` reads.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// dfInstruction is one Dockerfile instruction, continuation lines joined.
type dfInstruction struct {
	line int    // first line
	cmd  string // upper case: FROM, RUN...
	args string
}

// dfStage is a build stage: its FROM and what follows it.
type dfStage struct {
	image, name string
	instrs      []dfInstruction
}

// dockerfileInfo is what the tests read out of a Dockerfile.
type dockerfileInfo struct {
	stages     []dfStage
	entrypoint []string // final stage, exec form
	cmd        []string // final stage, exec form
	expose     []int
	user       string // final stage
}

// parseDockerfile splits a Dockerfile into stages of instructions. Comment lines
// (parser directives included) are dropped, also inside a continued instruction.
func parseDockerfile(data []byte) (*dockerfileInfo, error) {
	var instrs []dfInstruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		body, cont := strings.CutSuffix(line, "\\")
		cur.WriteString(body)
		cur.WriteByte(' ')
		if cont {
			continue
		}
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		cmd, args, _ := strings.Cut(text, " ")
		instrs = append(instrs, dfInstruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
	}
	if cur.Len() != 0 {
		return nil, errors.New("the last instruction ends with a line continuation")
	}
	info := &dockerfileInfo{}
	for _, in := range instrs {
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			var st dfStage
			for i := 0; i < len(f); i++ {
				switch {
				case strings.HasPrefix(f[i], "--"):
				case strings.EqualFold(f[i], "AS") && i+1 < len(f):
					st.name = f[i+1]
					i++
				case st.image == "":
					st.image = f[i]
				}
			}
			info.stages = append(info.stages, st)
			continue
		}
		if len(info.stages) == 0 {
			if in.cmd == "ARG" {
				continue // an ARG before the first FROM
			}
			return nil, errors.New("line " + strconv.Itoa(in.line) + ": " + in.cmd + " before FROM")
		}
		st := &info.stages[len(info.stages)-1]
		st.instrs = append(st.instrs, in)
	}
	if len(info.stages) == 0 {
		return nil, errors.New("no FROM")
	}
	final := info.stages[len(info.stages)-1]
	for _, in := range final.instrs {
		var err error
		switch in.cmd {
		case "ENTRYPOINT":
			info.entrypoint, err = execForm(in)
		case "CMD":
			info.cmd, err = execForm(in)
		case "USER":
			info.user = in.args
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				n, perr := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
				if perr != nil {
					return nil, errors.New("line " + strconv.Itoa(in.line) + ": EXPOSE " + p)
				}
				info.expose = append(info.expose, n)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return info, nil
}

// execForm decodes an instruction's JSON array (exec form).
func execForm(in dfInstruction) ([]string, error) {
	var args []string
	if err := json.Unmarshal([]byte(in.args), &args); err != nil || len(args) == 0 {
		return nil, errors.New("line " + strconv.Itoa(in.line) + ": " + in.cmd + " must be in exec form [\"...\"]: there is no shell in the image")
	}
	return args, nil
}

func parseDockerfileAt(t *testing.T, path string) *dockerfileInfo {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := parseDockerfile(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return info
}

func TestParseDockerfile(t *testing.T) {
	info, err := parseDockerfile([]byte("# syntax=docker/dockerfile:1\nARG X=1\nFROM golang:1.26 AS build\nRUN a \\\n  # comment\n  b\nFROM scratch\nUSER 1000\nEXPOSE 9000/tcp 9001\nENTRYPOINT [\"/x\"]\nCMD [\"serve\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(info.stages) != 2 || info.stages[0].name != "build" || info.stages[0].instrs[0].args != "a  b" ||
		info.user != "1000" || !slices.Equal(info.expose, []int{9000, 9001}) || info.entrypoint[0] != "/x" || info.cmd[0] != "serve" {
		t.Fatalf("%+v", info)
	}
	if _, err := parseDockerfile([]byte("FROM scratch\nCMD serve\n")); err == nil {
		t.Fatal("shell-form CMD accepted")
	}
}

// versionAtLeast compares dotted versions: "1.26.11" >= "1.26.8".
func versionAtLeast(have, want string) bool {
	h, w := strings.Split(have, "."), strings.Split(want, ".")
	for i := range w {
		var a int
		if i < len(h) {
			a, _ = strconv.Atoi(h[i])
		}
		b, _ := strconv.Atoi(w[i])
		if a != b {
			return a > b
		}
	}
	return true
}

func TestDockerfile(t *testing.T) {
	df := parseDockerfileAt(t, dockerfile)
	if len(df.stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(df.stages))
	}
	final := df.stages[len(df.stages)-1]

	// The build stage: a pinned Go at least as new as go.mod asks, building a static,
	// trimmed binary with the version stamped in.
	var build *dfStage
	for i := range df.stages[:len(df.stages)-1] {
		if strings.HasPrefix(df.stages[i].image, "golang:") {
			build = &df.stages[i]
		}
	}
	if build == nil {
		t.Fatal("no golang build stage")
	}
	_, tag, _ := imageRef(build.image)
	goVersion := regexp.MustCompile(`^\d+\.\d+(\.\d+)?`).FindString(tag)
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	wantGo := regexp.MustCompile(`(?m)^go (\S+)`).FindSubmatch(gomod)
	switch {
	case !pinned(build.image) || strings.Count(goVersion, ".") != 2:
		t.Errorf("build stage %s: pin a Go release (golang:1.26.N...)", build.image)
	case wantGo == nil || !versionAtLeast(goVersion, string(wantGo[1])):
		t.Errorf("build stage %s: go.mod needs Go %s", build.image, wantGo[1])
	}
	var goBuild string
	var cgoEnv, versionArg bool
	for _, in := range build.instrs {
		switch in.cmd {
		case "ENV":
			cgoEnv = cgoEnv || strings.Contains(in.args, "CGO_ENABLED=0")
		case "ARG":
			versionArg = versionArg || isVersionArg(in)
		case "RUN":
			// The ARG is in scope only from where it is declared.
			if strings.Contains(in.args, "go build") {
				goBuild = in.args
				if !versionArg {
					t.Errorf("line %d: go build before ARG VERSION: ${VERSION} would be empty", in.line)
				}
			}
		}
	}
	if goBuild == "" {
		t.Fatal("build stage: no RUN with go build")
	}
	if !cgoEnv && !strings.Contains(goBuild, "CGO_ENABLED=0") {
		t.Error("go build without CGO_ENABLED=0: the binary would need libc, which distroless/static lacks")
	}
	for _, want := range []string{"-trimpath", "-s -w", "-X github.com/vigil-project/vigil/server.Version=${VERSION}"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("go build lacks %q: %s", want, goBuild)
		}
	}
	if !versionArg {
		t.Error("build stage: no ARG VERSION for server.Version")
	}
	// The build checks that the stamp took: vigil version prints the build argument.
	if !regexp.MustCompile(`test "\$\(/\S+/vigil version\)" = "vigil \$\{VERSION\}"`).MatchString(goBuild) {
		t.Errorf("the build does not check vigil version against ${VERSION}: %s", goBuild)
	}
	// The image says its version: the final stage declares the ARG again (an ARG is
	// scoped to its stage) before the OCI version label that uses it.
	var finalArg, label bool
	for _, in := range final.instrs {
		switch in.cmd {
		case "ARG":
			finalArg = finalArg || isVersionArg(in)
		case "LABEL":
			if strings.Contains(in.args, `org.opencontainers.image.version="${VERSION}"`) {
				label = true
				if !finalArg {
					t.Errorf("line %d: the version label comes before the final stage's ARG VERSION", in.line)
				}
			}
		}
	}
	if !label {
		t.Error(`final stage: no LABEL org.opencontainers.image.version="${VERSION}"`)
	}
	out := regexp.MustCompile(`go build .*?-o\s+(\S+)`).FindStringSubmatch(goBuild)
	if out == nil {
		t.Fatalf("go build without -o: %s", goBuild)
	}

	// The final stage: distroless static (or scratch), a numeric non-root user, no RUN
	// (no shell), the built binary as the exec-form entrypoint.
	switch {
	case final.image == "scratch":
	case strings.HasPrefix(final.image, "gcr.io/distroless/static"):
		if !pinned(final.image) {
			t.Errorf("final stage %s: use the :nonroot tag or a digest", final.image)
		}
	default:
		t.Errorf("final stage %s: want gcr.io/distroless/static or scratch", final.image)
	}
	uid, _, _ := strings.Cut(df.user, ":")
	n, err := strconv.Atoi(uid)
	if err != nil || n == 0 {
		t.Errorf("final stage USER %q: want a numeric non-root uid (runAsNonRoot checks need a number)", df.user)
	}
	var copied bool
	for _, in := range final.instrs {
		switch in.cmd {
		case "RUN":
			t.Errorf("final stage line %d: RUN needs a shell, which the final image must not have", in.line)
		case "COPY":
			f := strings.Fields(in.args)
			if len(f) >= 3 && slices.Contains(f, "--from="+build.name) && slices.Contains(f, out[1]) && len(df.entrypoint) > 0 && f[len(f)-1] == df.entrypoint[0] {
				copied = true
			}
		}
	}
	if !copied {
		t.Errorf("the final stage must COPY --from=%s %s to the ENTRYPOINT %v", build.name, out[1], df.entrypoint)
	}
	if len(df.cmd) == 0 {
		t.Error("no default CMD")
	}

	// The Kubernetes example runs this image as this user, with the same arguments.
	for _, d := range loadDir(t, "kubernetes") {
		dep, ok := d.obj.(*appsv1.Deployment)
		if !ok {
			continue
		}
		psc := dep.Spec.Template.Spec.SecurityContext
		if psc == nil || psc.RunAsUser == nil || int(*psc.RunAsUser) != n {
			t.Errorf("%s: runAsUser should be the Dockerfile's USER %d", d.where, n)
		}
		if args := dep.Spec.Template.Spec.Containers[0].Args; !slices.Equal(args, df.cmd) {
			t.Errorf("%s: args %q, the image's CMD is %q", d.where, args, df.cmd)
		}
	}
}

// isVersionArg reports whether an ARG instruction declares VERSION.
func isVersionArg(in dfInstruction) bool {
	return in.args == "VERSION" || strings.HasPrefix(in.args, "VERSION=")
}

// dockerignore is a parsed .dockerignore: patterns in order, a later match winning.
type dockerignore []struct {
	re     *regexp.Regexp
	negate bool
}

func parseDockerignore(data []byte) dockerignore {
	var d dockerignore
	for line := range strings.SplitSeq(string(data), "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		p = filepath.ToSlash(filepath.Clean(strings.TrimPrefix(p, "/")))
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case p[i] == '*':
				re.WriteString("[^/]*")
			case p[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		re.WriteString("$")
		d = append(d, struct {
			re     *regexp.Regexp
			negate bool
		}{regexp.MustCompile(re.String()), neg})
	}
	return d
}

// excluded reports whether a slash-separated path relative to the context root is left
// out of the build context: a pattern that matches it or one of its parent directories.
func (d dockerignore) excluded(path string) bool {
	var out bool
	for _, p := range d {
		for dir := path; ; {
			if p.re.MatchString(dir) {
				out = !p.negate
				break
			}
			i := strings.LastIndexByte(dir, '/')
			if i < 0 {
				break
			}
			dir = dir[:i]
		}
	}
	return out
}

func TestDockerignoreMatcher(t *testing.T) {
	d := parseDockerignore([]byte("# c\n.git\n/vigil\n**/*.test\ndocs\n!docs/keep.md\n"))
	for path, want := range map[string]bool{
		".git/HEAD": true, "vigil": true, "server/vigil": false, "a/b/x.test": true, "x.test": true,
		"docs/a.md": true, "docs/keep.md": false, "server/config.go": false,
	} {
		if got := d.excluded(path); got != want {
			t.Errorf("excluded(%q) = %v", path, got)
		}
	}
}

// TestDockerignore checks that the build context keeps every file `go build .` reads
// (Go files and go:embed files of the module's packages, go.mod, go.sum) and leaves out
// the repository's history and local binaries.
func TestDockerignore(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	ign := parseDockerignore(data)
	for _, p := range []string{".git/HEAD", "vigil", "vigil-data/vigil.db"} {
		if !ign.excluded(p) {
			t.Errorf(".dockerignore keeps %s in the build context", p)
		}
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	cmd := exec.Command(gobin, "list", "-deps", "-json", ".")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	js, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	root := mustAbs(t, repoRoot)
	needed := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(bytes.NewReader(js))
	for {
		var p struct {
			Dir                           string
			Module                        *struct{ Main bool }
			GoFiles, EmbedFiles, CgoFiles []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || !p.Module.Main {
			continue
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range slices.Concat(p.GoFiles, p.EmbedFiles, p.CgoFiles) {
			needed = append(needed, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	if len(needed) < 10 {
		t.Fatalf("go list found only %v", needed)
	}
	for _, f := range needed {
		if ign.excluded(f) {
			t.Errorf(".dockerignore leaves out %s, which go build reads", f)
		}
	}
}
