package cli

import (
	"runtime/debug"
	"testing"
)

// vigil version once printed "dev" whatever the build: it reports the
// module version and VCS revision the toolchain recorded, and a version
// stamped with -ldflags -X still wins.
func TestVersionString(t *testing.T) {
	info := func(version string, settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/vigil-project/vigil", Version: version}}
		for i := 0; i+1 < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	const rev = "3cd74ea94747ef409887239e7c1dab62d5c9a3b0"
	for _, tc := range []struct {
		name    string
		stamped string
		bi      *debug.BuildInfo
		want    string
	}{
		{"go install @version", "dev", info("v1.2.0"), "v1.2.0"},
		{"a build in a git checkout", "dev", info("v0.0.0-20261207024543-3cd74ea94747", "vcs", "git", "vcs.revision", rev, "vcs.modified", "false"),
			"v0.0.0-20261207024543-3cd74ea94747 (revision 3cd74ea94747)"},
		{"uncommitted changes", "dev", info("(devel)", "vcs.revision", rev, "vcs.modified", "true"), "dev (revision 3cd74ea94747+modified)"},
		{"stamped", "1.4.0", info("(devel)", "vcs.revision", rev, "vcs.modified", "false"), "1.4.0 (revision 3cd74ea94747)"},
		{"stamped, no VCS (the Dockerfile)", "1.4.0", info("(devel)"), "1.4.0"},
		{"stamped empty", "", info("v1.2.0"), "v1.2.0"},
		{"nothing known", "dev", info("(devel)"), "dev"},
		{"no build info", "dev", nil, "dev"},
	} {
		if got := versionString(tc.stamped, tc.bi, tc.bi != nil); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
