package archrules

import (
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/vigil-project/vigil"

// TestImportRules holds the module to its import rules.
func TestImportRules(t *testing.T) {
	pkgs, err := Load("../..")
	if err != nil {
		t.Fatal(err)
	}
	// A load that found nothing would pass every rule: make sure it saw the
	// module and the packages the rules are about.
	have := map[string]bool{}
	for _, p := range pkgs {
		if p.Module != nil && p.Module.Main {
			if p.Module.Path != mod {
				t.Fatalf("main module %s, want %s", p.Module.Path, mod)
			}
			have[p.ImportPath] = true
		}
	}
	for _, p := range []string{mod, mod + "/detect", mod + "/detect/behaviour", mod + "/detect/observe", mod + "/server/store", mod + "/envoy"} {
		if !have[p] {
			t.Fatalf("go list did not list %s (found %d packages of the module)", p, len(have))
		}
	}
	for _, v := range Check(pkgs, Rules(mod)) {
		t.Error(v)
	}
}

// fake builds a package graph: each entry is "path: import import …";
// paths without a dot are the main module's (under mod), the others
// third-party.
func fake(lines ...string) []Package {
	abs := func(p string) string {
		if p == "." {
			return mod
		}
		if strings.Contains(strings.SplitN(p, "/", 2)[0], ".") {
			return p
		}
		return mod + "/" + p
	}
	var pkgs []Package
	seen := map[string]bool{}
	add := func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		m := &Module{Path: mod, Main: true}
		if !strings.HasPrefix(p, mod) {
			m = &Module{Path: "third.party"}
		}
		pkgs = append(pkgs, Package{ImportPath: p, Module: m})
	}
	for _, l := range lines {
		from, imps, _ := strings.Cut(l, ":")
		f := abs(strings.TrimSpace(from))
		add(f)
		for _, i := range strings.Fields(imps) {
			i = abs(i)
			add(i)
			k := slices.IndexFunc(pkgs, func(p Package) bool { return p.ImportPath == f })
			pkgs[k].Imports = append(pkgs[k].Imports, i)
		}
	}
	return pkgs
}

// The sound layout of the issue: nothing to report.
var sound = []string{
	".: server/cli",
	"server/cli: server server/replay server/demo server/adminapi server/config",
	"server: server/config server/admin server/notify server/store server/cluster envoy decoy detect detect/behaviour detect/observe google.golang.org/grpc",
	"server/cluster: detect detect/behaviour decoy github.com/redis/rueidis",
	"server/config: detect detect/behaviour gopkg.in/yaml.v3",
	"server/store: detect detect/behaviour detect/observe go.etcd.io/bbolt",
	"envoy: detect github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3",
	"github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3: google.golang.org/grpc",
	"decoy: detect",
	"detect: github.com/dgraph-io/ristretto/v2 github.com/cespare/xxhash/v2",
	"detect/behaviour: detect detect/behaviour/anomaly",
	"detect/observe: detect",
	"test/e2e: server envoy",
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		graph []string
		want  []string // each violation's String, in order
	}{
		{name: "the sound layout", graph: sound},
		{
			name:  "detect/observe links gRPC through a helper",
			graph: append(slices.Clone(sound), "detect/observe: detect detect/observe/wire", "detect/observe/wire: google.golang.org/grpc/codes"),
			want: []string{
				`rule "detect/... imports no Envoy or gRPC package" broken: ` + mod + `/detect/observe imports google.golang.org/grpc/codes (via ` + mod + `/detect/observe/wire)`,
				`rule "detect/... imports no Envoy or gRPC package" broken: ` + mod + `/detect/observe/wire imports google.golang.org/grpc/codes`,
			},
		},
		{
			name:  "detect/behaviour imports an Envoy type",
			graph: append(slices.Clone(sound), "detect/behaviour: github.com/envoyproxy/go-control-plane/envoy/config/core/v3"),
			want:  []string{`rule "detect/... imports no Envoy or gRPC package" broken: ` + mod + `/detect/behaviour imports github.com/envoyproxy/go-control-plane/envoy/config/core/v3`},
		},
		{
			name:  "the hot path imports the engine",
			graph: append(slices.Clone(sound), "detect: detect/behaviour"),
			want:  []string{`rule "the hot-path package detect imports neither the engine (detect/behaviour), detect/observe nor the store (server/store, bbolt)" broken: ` + mod + `/detect imports ` + mod + `/detect/behaviour`},
		},
		{
			name:  "the hot path reaches bbolt through a journal package",
			graph: append(slices.Clone(sound), "detect: detect/journal", "detect/journal: go.etcd.io/bbolt"),
			want:  []string{`rule "the hot-path package detect imports neither the engine (detect/behaviour), detect/observe nor the store (server/store, bbolt)" broken: ` + mod + `/detect imports go.etcd.io/bbolt (via ` + mod + `/detect/journal)`},
		},
		{
			name:  "the hot path imports the store: reported at the store, not again at bbolt",
			graph: append(slices.Clone(sound), "detect: server/store"),
			want: []string{
				`rule "the hot-path package detect imports neither the engine (detect/behaviour), detect/observe nor the store (server/store, bbolt)" broken: ` + mod + `/detect imports ` + mod + `/server/store`,
				// and server/config, which imports detect, now links the store too
				`rule "server/config imports nothing under server/" broken: ` + mod + `/server/config imports ` + mod + `/server/store (via ` + mod + `/detect)`,
			},
		},
		{
			name:  "the engine may use bbolt; only the hot path may not",
			graph: append(slices.Clone(sound), "detect/behaviour: detect go.etcd.io/bbolt"),
		},
		{
			name:  "a package other than main imports the CLI",
			graph: append(slices.Clone(sound), "server/demo: server/cli", "test/e2e: server/cli/output"),
			want: []string{
				`rule "nothing imports server/cli but the module's main package" broken: ` + mod + `/server/demo imports ` + mod + `/server/cli`,
				`rule "nothing imports server/cli but the module's main package" broken: ` + mod + `/test/e2e imports ` + mod + `/server/cli/output`,
			},
		},
		{
			name:  "the CLI may import its own sub-packages",
			graph: append(slices.Clone(sound), "server/cli: server/cli/output"),
		},
		{
			name:  "no server/cli package yet: the rule holds",
			graph: []string{".: server", "server: detect", "detect: github.com/cespare/xxhash/v2"},
		},
		{
			name:  "server/config imports the server, through another package",
			graph: append(slices.Clone(sound), "server/config: detect server/config/secret", "server/config/secret: server/store"),
			want: []string{
				`rule "server/config imports nothing under server/" broken: ` + mod + `/server/config imports ` + mod + `/server/store (via ` + mod + `/server/config/secret)`,
				`rule "server/config imports nothing under server/" broken: ` + mod + `/server/config/secret imports ` + mod + `/server/store`,
			},
		},
		{
			name:  "the engine reaches Redis through a helper",
			graph: append(slices.Clone(sound), "detect/behaviour: detect detect/behaviour/remote", "detect/behaviour/remote: github.com/redis/rueidis"),
			want: []string{
				`rule "the request path (envoy/..., detect/..., decoy/...) links no Redis client: verdicts never wait for the network" broken: ` + mod + `/detect/behaviour imports github.com/redis/rueidis (via ` + mod + `/detect/behaviour/remote)`,
				`rule "the request path (envoy/..., detect/..., decoy/...) links no Redis client: verdicts never wait for the network" broken: ` + mod + `/detect/behaviour/remote imports github.com/redis/rueidis`,
			},
		},
		{
			name:  "envoy imports the cluster",
			graph: append(slices.Clone(sound), "envoy: detect server/cluster"),
			want: []string{
				`rule "the request path (envoy/..., detect/..., decoy/...) links no Redis client: verdicts never wait for the network" broken: ` + mod + `/envoy imports ` + mod + `/server/cluster`,
			},
		},
		{
			name:  "server/config may import its own sub-packages",
			graph: append(slices.Clone(sound), "server/config: detect server/config/secret"),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, v := range Check(fake(tc.graph...), Rules(mod)) {
				got = append(got, v.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"google.golang.org/grpc/...", "google.golang.org/grpc", true},
		{"google.golang.org/grpc/...", "google.golang.org/grpc/codes", true},
		{"google.golang.org/grpc/...", "google.golang.org/grpcx", false},
		{mod + "/detect", mod + "/detect", true},
		{mod + "/detect", mod + "/detect/observe", false},
		{mod + "/server/cli/...", mod + "/server/client", false},
	} {
		if got := Match(tc.pattern, tc.path); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}
