package decoy

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// update rewrites the golden files from the current answers:
//
//	go test ./decoy/ -run TestGolden -update
var update = flag.Bool("update", false, "rewrite decoy/testdata/golden from the current answers")

// goldenVariant is one fixed set of inputs an answer is a pure function of:
// the generator is seeded from the path, the API's name and base path, the
// time and the minted tokens, so these pin every byte of an answer.
type goldenVariant struct {
	name     string
	prefix   string // put before the case's path
	apiName  string
	basePath string
	now      time.Time
	mint     func() Minter
}

var goldenNow = time.Date(2027, time.July, 4, 1, 30, 0, 0, time.UTC)

// goldenVariants: "a" runs over every answer case; the others over the first
// case of each rule. "named" moves the clock and renames the API (its tells
// dropped), "awkward" puts markup, quotes, control characters and invalid
// UTF-8 in the path and the tokens, so every escaper is pinned, "nil" plants
// generated values and has no API name.
var goldenVariants = []goldenVariant{
	{name: "a", apiName: apiName, basePath: basePath, mint: func() Minter { return (&minter{tag: "a"}).mint }},
	{name: "named", prefix: "/pay", apiName: "Vigil Decoy Payments v2", basePath: "/pay/v2/", now: goldenNow,
		mint: func() Minter { return (&minter{tag: "b"}).mint }},
	{name: "awkward", prefix: "/q\"<x>&'\u2028\x01\xff", apiName: "shop", basePath: "",
		mint: func() Minter {
			return func(kind string) string { return `a"b'c<d>&e\f g` + kind + "\x01\n\xff\u2028</script>" }
		}},
	{name: "nil", apiName: "", basePath: "/", now: goldenNow, mint: func() Minter { return nil }},
}

// goldenText is an answer as a golden file holds it: the status, the
// headers in order, a blank line and the body.
func goldenText(a Answer) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d\n", a.Status)
	for _, h := range a.Headers {
		fmt.Fprintf(&b, "%s: %s\n", h[0], h[1])
	}
	b.WriteByte('\n')
	b.Write(a.Body)
	return b.Bytes()
}

// goldenName turns a request path into a file name: "/phpMyAdmin/" is
// "phpmyadmin_".
func goldenName(p string) string {
	if p = strings.TrimPrefix(p, "/"); p == "" {
		return "root"
	}
	return strings.NewReplacer("/", "_", ".", "-").Replace(strings.ToLower(p))
}

// TestGolden checks every decoy page byte for byte against
// testdata/golden/<rule>/<variant>-<path>.golden.
func TestGolden(t *testing.T) {
	want := map[string]bool{}
	seenRule := map[string]bool{}
	for _, c := range answerCases {
		first := !seenRule[c.rule]
		seenRule[c.rule] = true
		for _, v := range goldenVariants {
			if v.name != "a" && !first {
				continue
			}
			file := filepath.Join("testdata", "golden", c.rule, v.name+"-"+goldenName(c.path)+".golden")
			if want[file] {
				t.Fatalf("two cases write %s", file)
			}
			want[file] = true
			t.Run(file, func(t *testing.T) {
				got := goldenText(AnswerAt(v.prefix+c.path, v.apiName, v.basePath, v.now, v.mint()))
				if *update {
					if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(file, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				exp, err := os.ReadFile(file)
				if err != nil {
					t.Fatalf("%v (run with -update to write it)", err)
				}
				if !bytes.Equal(got, exp) {
					t.Errorf("answer differs from %s:\n%s", file, firstDiff(exp, got))
				}
			})
		}
	}
	// A golden file that no case writes any more is stale.
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*", "*.golden"))
	for _, f := range files {
		if !want[f] {
			if *update {
				_ = os.Remove(f)
				continue
			}
			t.Errorf("stale golden file %s: no case writes it (run with -update)", f)
		}
	}
}

// firstDiff shows the first differing line of want and got.
func firstDiff(want, got []byte) string {
	wl, gl := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := range max(len(wl), len(gl)) {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g || i >= len(wl) || i >= len(gl) {
			return fmt.Sprintf("line %d:\nwant %q\ngot  %q", i+1, w, g)
		}
	}
	return "(same lines)"
}
