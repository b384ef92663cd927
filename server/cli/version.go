package cli

import (
	"fmt"
	"runtime/debug"
)

// versionString is what vigil version prints: the stamped version (not
// "dev"), else
// the main module's version from the build info (v1.2.0 for go install
// …@v1.2.0; a pseudo-version for a build in a git checkout), else "dev";
// then the VCS revision, marked +modified for a build with uncommitted
// changes, when the build info has one.
func versionString(stamped string, bi *debug.BuildInfo, ok bool) string {
	v := stamped
	if v == "dev" {
		v = ""
	}
	if v == "" && ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "dev"
	}
	if !ok {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+modified"
			}
		}
	}
	if rev == "" {
		return v
	}
	return fmt.Sprintf("%s (revision %s%s)", v, rev[:min(len(rev), 12)], modified)
}
