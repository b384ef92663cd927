package bootstrap

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// hcm is the path prefix of the first connection manager in most testdata files.
const hcm = "static_resources.listeners[0:ingress].filter_chains[0].filters[0:envoy.filters.network.http_connection_manager].typed_config<HttpConnectionManager>"

// badFiles lists every testdata/*.bad.yaml with the problems it must produce: each want
// substring is in some problem, and there are exactly n problems (default len(want)):
// semantic and PGV problems are all reported at once, decoding stops at the first.
var badFiles = []struct {
	file string
	want []string
	n    int
}{
	// YAML and protojson: the first decoding error only, with the path it was found at.
	{file: "syntax.bad.yaml", want: []string{"parse yaml: yaml: line 4: found character that cannot start any token"}},
	{file: "duplicate_key.bad.yaml", want: []string{`line 24: key "http_filters" already set in map`}},
	{file: "unknown_field.bad.yaml", want: []string{
		`static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.failure_mode_alow: decode: `,
		`unknown field "failure_mode_alow"`,
	}, n: 1},
	{file: "bad_enum.bad.yaml", want: []string{
		`.http_filters[0].typed_config.processing_mode.request_body_mode: decode: `,
		`invalid value for enum field requestBodyMode: "BUFFER"`,
	}, n: 1},
	{file: "bad_type.bad.yaml", want: []string{
		`.routes[0].typed_per_filter_config[envoy.filters.http.ext_proc].@type: decode: `,
		`unable to resolve "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRouteX"`,
	}, n: 1},

	// PGV rules, at the bootstrap level and inside Any payloads.
	{file: "message_timeout.bad.yaml", want: []string{
		hcm + ".http_filters[0:envoy.filters.http.ext_proc].typed_config<ExternalProcessor>.message_timeout: value must be inside range [0s, 1h0m0s]",
	}},
	{file: "pgv_rules.bad.yaml", want: []string{
		"static_resources.listeners[0:ingress].address.socket_address.port_value: value must be less than or equal to 65535",
		"static_resources.clusters[0:backend].connect_timeout: value must be greater than 0s",
		hcm + ".stat_prefix: value length must be at least 1 runes",
		hcm + ".route_config.virtual_hosts[0:app].domains: value must contain at least 1 item(s)",
	}},

	// Semantic checks.
	{file: "missing_cluster.bad.yaml", want: []string{
		`.weighted_clusters.clusters[1:canary].name: cluster "canary" is not defined in static_resources.clusters`,
		`.routes[1].route.cluster: cluster "backnd" is not defined`,
		`.routes[1].route.request_mirror_policies[0].cluster: cluster "shadow" is not defined`,
		`typed_config<ExtAuthz>.grpc_service.envoy_grpc.cluster_name: cluster "vigil" is not defined`,
		`typed_config<ExternalProcessor>.http_service.http_service.http_uri.cluster: cluster "vigil_http" is not defined`,
	}},
	{file: "router.bad.yaml", want: []string{
		`listeners[0:not_last].filter_chains[0].filters[0:envoy.filters.network.http_connection_manager].typed_config<HttpConnectionManager>.http_filters[0:envoy.filters.http.router]: the router filter must be the last http filter, but "envoy.filters.http.ext_authz" follows it`,
		`listeners[1:missing].filter_chains[0].filters[0:envoy.filters.network.http_connection_manager].typed_config<HttpConnectionManager>.http_filters: no router filter`,
		`listeners[2:twice].filter_chains[0].filters[0:envoy.filters.network.http_connection_manager].typed_config<HttpConnectionManager>.http_filters[1:second_router]: the router filter must appear once (first at http_filters[0])`,
	}},
	{file: "duplicate_filter_name.bad.yaml", want: []string{
		hcm + `.http_filters[1:envoy.filters.http.ext_authz]: duplicate http filter name "envoy.filters.http.ext_authz" (first at http_filters[0])`,
	}},
	{file: "per_filter_config_key.bad.yaml", want: []string{
		hcm + `.route_config.typed_per_filter_config[envoy.filters.http.ext_proc]: no http filter named "envoy.filters.http.ext_proc" in this connection manager`,
		hcm + `.route_config.virtual_hosts[0:app].typed_per_filter_config[envoy.filters.http.ext_authz]: no http filter named "envoy.filters.http.ext_authz"`,
		hcm + `.route_config.virtual_hosts[0:app].routes[0:healthz].typed_per_filter_config[vigil.observe]: no http filter named "vigil.observe"`,
		hcm + `.route_config.virtual_hosts[0:app].routes[1].route.weighted_clusters.clusters[0:backend].typed_per_filter_config[envoy.filters.http.ext_proc]: no http filter named`,
	}},
	{file: "ext_proc_services.bad.yaml", want: []string{
		hcm + ".http_filters[0:both].typed_config<ExternalProcessor>.grpc_service: set exactly one of grpc_service and http_service, not both",
		hcm + ".http_filters[1:neither].typed_config<ExternalProcessor>.grpc_service: set exactly one of grpc_service and http_service",
		hcm + ".http_filters[2:http_with_body].typed_config<ExternalProcessor>.http_service: http_service supports headers only",
		hcm + ".http_filters[3:route_cache].typed_config<ExternalProcessor>.route_cache_action: set either disable_clear_route_cache or route_cache_action",
	}},
	{file: "full_duplex.bad.yaml", want: []string{
		"[0:request_skip].typed_config<ExternalProcessor>.processing_mode.request_trailer_mode: request_body_mode FULL_DUPLEX_STREAMED needs request_trailer_mode SEND, got SKIP",
		"[1:response_default].typed_config<ExternalProcessor>.processing_mode.response_trailer_mode: response_body_mode FULL_DUPLEX_STREAMED needs response_trailer_mode SEND, got DEFAULT",
		"[2:ok_request_bad_response].typed_config<ExternalProcessor>.processing_mode.response_trailer_mode: response_body_mode FULL_DUPLEX_STREAMED needs response_trailer_mode SEND",
	}},
	{file: "observability.bad.yaml", want: []string{
		"[0:observe_buffered].typed_config<ExternalProcessor>.processing_mode.request_body_mode: observability_mode sends bodies only in NONE, STREAMED or GRPC mode, got BUFFERED ",
		"[0:observe_buffered].typed_config<ExternalProcessor>.processing_mode.response_body_mode: observability_mode sends bodies only in NONE, STREAMED or GRPC mode, got BUFFERED_PARTIAL",
		"[1:observe_duplex].typed_config<ExternalProcessor>.processing_mode.response_body_mode: observability_mode sends bodies only in NONE, STREAMED or GRPC mode, got FULL_DUPLEX_STREAMED",
	}},
	{file: "http2.bad.yaml", want: []string{
		"static_resources.clusters[0:vigil_plain]: cluster is used for gRPC (by " + hcm + ".http_filters[0:no_options].typed_config<ExternalProcessor>.grpc_service.envoy_grpc.cluster_name) but does not enable HTTP/2",
		"static_resources.clusters[1:vigil_http1]: cluster is used for gRPC (by " + hcm + ".http_filters[2:http1]",
		"static_resources.clusters[2:vigil_auto]: cluster is used for gRPC (by " + hcm + ".http_filters[3:auto]",
	}},
	{file: "duplicate_names.bad.yaml", want: []string{
		`static_resources.listeners[1:ingress]: duplicate listener name "ingress" (first at static_resources.listeners[0])`,
		`static_resources.clusters[1:backend]: duplicate cluster name "backend" (first at static_resources.clusters[0])`,
	}},
}

// problems splits an errors.Join result into its parts.
func problems(err error) []error {
	if err == nil {
		return nil
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		return joined.Unwrap()
	}
	return []error{err}
}

func TestValidateGoodFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.good.yaml (err %v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if err := ValidateFile(f); err != nil {
				t.Errorf("want valid, got:\n%v", err)
			}
		})
	}
}

func TestValidateBadFiles(t *testing.T) {
	for _, tc := range badFiles {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			got := problems(ValidateFile(path))
			if len(got) == 0 {
				t.Fatal("want problems, got none")
			}
			for _, want := range tc.want {
				if !slices.ContainsFunc(got, func(e error) bool { return strings.Contains(e.Error(), want) }) {
					t.Errorf("no problem contains %q", want)
				}
			}
			wantN := tc.n
			if wantN == 0 {
				wantN = len(tc.want)
			}
			if len(got) != wantN {
				t.Errorf("got %d problems, want %d", len(got), wantN)
			}
			for _, e := range got {
				if !strings.HasPrefix(e.Error(), path+": ") {
					t.Errorf("problem does not start with the file name: %v", e)
				}
			}
			if t.Failed() {
				t.Logf("problems:\n%v", errors.Join(got...))
			}
		})
	}
}

// Every bad file is in the table, so a new file cannot go unchecked.
func TestBadFilesAreListed(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, tc := range badFiles {
		listed[tc.file] = true
	}
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("%s has no entry in badFiles", f)
		}
		delete(listed, filepath.Base(f))
	}
	for f := range listed {
		t.Errorf("badFiles lists %s, which does not exist", f)
	}
}

// PGV's ValidateAll stops at google.protobuf.Any: the bootstrap alone passes, only the walk
// into typed_config finds the out-of-range message_timeout.
func TestDeepWalkFindsWhatValidateAllMisses(t *testing.T) {
	data, err := os.ReadFile("testdata/message_timeout.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	var bs bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &bs); err != nil {
		t.Fatal(err)
	}
	if err := bs.ValidateAll(); err != nil {
		t.Fatalf("Bootstrap.ValidateAll: want nil (shallow), got %v", err)
	}
	if err := ValidateYAML(data); err == nil || !strings.Contains(err.Error(), "message_timeout: value must be inside range") {
		t.Fatalf("ValidateYAML: want the message_timeout range error, got %v", err)
	}
}

func TestValidateInputs(t *testing.T) {
	minimal, err := os.ReadFile("testdata/minimal.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	asJSON, err := yaml.YAMLToJSON(minimal)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data string
		want string // "" = valid
	}{
		{"json", string(asJSON), ""},
		{"empty", "", "parse yaml: empty document"},
		{"comment only", "# nothing\n", "parse yaml: empty document"},
		{"top-level list", "- a\n", "decode: "},
		{"empty bootstrap", "{}", ""},
		{"unknown top-level field", "admin: {}\nstatic_resource: {}\n", `static_resource: decode: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateYAML([]byte(tc.data))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("want valid, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("want error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestValidateFileMissing(t *testing.T) {
	err := ValidateFile(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("want fs.ErrNotExist, got %v", err)
	}
}

func TestJSONPathAt(t *testing.T) {
	const js = `{"a":{"b":[{"c":1},{"d":"x","e.f":{"g":true}}],"h":[[1,2],[3]]},"i":null}`
	for _, tc := range []struct {
		at   string // the offset is where this substring starts
		want string
	}{
		{`"a"`, "a"},
		{`{"b"`, "a"},
		{`"b"`, "a.b"},
		{`[{"c"`, "a.b"},
		{`"c"`, "a.b[0].c"},
		{`1}`, "a.b[0].c"},
		{`{"d"`, "a.b[1]"},
		{`"x"`, "a.b[1].d"},
		{`"e.f"`, "a.b[1][e.f]"},
		{`"g"`, "a.b[1][e.f].g"},
		{`true`, "a.b[1][e.f].g"},
		{`3]`, "a.h[1][0]"},
		{`2]`, "a.h[0][1]"},
		{`null`, "i"},
	} {
		off := strings.Index(js, tc.at)
		if off < 0 {
			t.Fatalf("%q not in document", tc.at)
		}
		if got := jsonPathAt([]byte(js), off); got != tc.want {
			t.Errorf("at %q (offset %d): got %q, want %q", tc.at, off, got, tc.want)
		}
	}
}

// FuzzValidateYAML checks that no input panics and that the report is deterministic (map
// iteration must not reorder problems). The seeds are every testdata file.
func FuzzValidateYAML(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		first := ValidateYAML(data)
		second := ValidateYAML(data)
		if (first == nil) != (second == nil) || (first != nil && first.Error() != second.Error()) {
			t.Fatalf("not deterministic:\n%v\n---\n%v", first, second)
		}
	})
}
