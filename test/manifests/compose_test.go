package manifests

// The Docker example (examples/envoy: docker-compose.yaml, the Envoy and Vigil configs it
// mounts) and the repository's Dockerfile, checked without a Docker engine: every file
// parses strictly, every reference between them resolves, and the ports agree.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	yamlv3 "gopkg.in/yaml.v3"
	"sigs.k8s.io/yaml"

	"github.com/vigil-project/vigil/envoy/bootstrap"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/server/replay"
)

const (
	repoRoot    = "../.."
	envoyDir    = examplesDir + "/envoy"
	composePath = envoyDir + "/docker-compose.yaml"
	mainEnvoy   = envoyDir + "/envoy.yaml"
	dockerfile  = repoRoot + "/Dockerfile"
	// shopCommand is the sample API's command line, as the contract gives it.
	shopCommand = "shop --addr 0.0.0.0:8080"
	shopBase    = "/shopapi-bid"
	// placeholder marks a committed token as a placeholder that must be replaced.
	placeholder = "CHANGE-ME"
	// minEnvoy is the oldest Envoy the configs work with (observability_mode,
	// request_attributes, encode_raw_headers).
	minEnvoyMajor, minEnvoyMinor = 1, 31
)

// composeFile is the part of the Compose specification the example uses. It is decoded
// strictly: a key outside these types (a typo, or a feature the tests do not check) fails.
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]*composeVolume `yaml:"volumes"`
	// Extensions are the top-level x-* keys (YAML anchors' homes); any other key fails.
	Extensions map[string]any `yaml:",inline"`
}

type composeVolume struct {
	Driver string `yaml:"driver"`
}

type composeService struct {
	Image           string                `yaml:"image"`
	Build           *composeBuild         `yaml:"build"`
	Command         []string              `yaml:"command"` // exec form only
	Entrypoint      []string              `yaml:"entrypoint"`
	Environment     map[string]string     `yaml:"environment"`
	Volumes         []composeMount        `yaml:"volumes"` // long syntax only
	Ports           []string              `yaml:"ports"`
	DependsOn       map[string]composeDep `yaml:"depends_on"`
	Healthcheck     *composeHealthcheck   `yaml:"healthcheck"`
	ReadOnly        bool                  `yaml:"read_only"`
	Tmpfs           []string              `yaml:"tmpfs"`
	CapDrop         []string              `yaml:"cap_drop"`
	SecurityOpt     []string              `yaml:"security_opt"`
	StopGracePeriod string                `yaml:"stop_grace_period"`
	Restart         string                `yaml:"restart"`
	User            string                `yaml:"user"`
}

type composeBuild struct {
	Context    string            `yaml:"context"`
	Dockerfile string            `yaml:"dockerfile"`
	Args       map[string]string `yaml:"args"`
}

type composeMount struct {
	Type     string `yaml:"type"`
	Source   string `yaml:"source"`
	Target   string `yaml:"target"`
	ReadOnly bool   `yaml:"read_only"`
}

type composeDep struct {
	Condition string `yaml:"condition"`
}

type composeHealthcheck struct {
	Test        []string `yaml:"test"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	Retries     int      `yaml:"retries"`
	StartPeriod string   `yaml:"start_period"`
}

// decodeCompose decodes a compose file strictly.
func decodeCompose(data []byte) (*composeFile, error) {
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f composeFile
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	for k := range f.Extensions {
		if !strings.HasPrefix(k, "x-") {
			return nil, fmt.Errorf("unknown top-level key %q", k)
		}
	}
	if len(f.Services) == 0 {
		return nil, errors.New("no services")
	}
	return &f, nil
}

func TestComposeDecodeIsStrict(t *testing.T) {
	for _, bad := range []string{
		"services: {a: {imagee: x}}",
		"services: {a: {image: x, command: serve --config /x}}", // shell form
		"services: {a: {image: x, volumes: [./a:/a]}}",          // short syntax
		"services: {a: {image: x}}\nnetworks: {}",               // unchecked feature
		"services: {a: {image: x, healthcheck: {test: [CMD], tst: 1}}}",
	} {
		if _, err := decodeCompose([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if _, err := decodeCompose([]byte("x-a: &a {context: .}\nservices: {a: {build: *a}}")); err != nil {
		t.Errorf("x- extension with an anchor: %v", err)
	}
}

// loadCompose reads the example's compose file.
func loadCompose(t *testing.T) *composeFile {
	t.Helper()
	data, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatal(err)
	}
	f, err := decodeCompose(data)
	if err != nil {
		t.Fatalf("%s: %v", composePath, err)
	}
	return f
}

// imageRef splits an image reference into repository, tag and digest.
func imageRef(ref string) (repo, tag, digest string) {
	repo, digest, _ = strings.Cut(ref, "@")
	if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo, tag = repo[:i], repo[i+1:]
	}
	return repo, tag, digest
}

// pinned reports whether an image reference names one release: a digest, or a tag
// that is neither empty nor a moving one.
func pinned(ref string) bool {
	_, tag, digest := imageRef(ref)
	if strings.HasPrefix(digest, "sha256:") {
		return true
	}
	switch {
	case tag == "", tag == "latest", strings.HasSuffix(tag, "-latest"), tag == "dev", tag == "nightly":
		return false
	}
	return regexp.MustCompile(`\d+\.\d+`).MatchString(tag) || tag == "nonroot" && strings.Contains(ref, "distroless")
}

func TestPinned(t *testing.T) {
	for ref, want := range map[string]bool{
		"envoyproxy/envoy:v1.39.6":                  true,
		"envoyproxy/envoy":                          false,
		"envoyproxy/envoy:latest":                   false,
		"envoyproxy/envoy:v1.39-latest":             false,
		"envoyproxy/envoy-dev:latest":               false,
		"localhost:5000/envoy":                      false,
		"localhost:5000/envoy:v1.39.6":              true,
		"envoyproxy/envoy@sha256:0123456789abcdef":  true,
		"golang:1.26.11-trixie":                     true,
		"gcr.io/distroless/static-debian13:nonroot": true,
	} {
		if got := pinned(ref); got != want {
			t.Errorf("pinned(%q) = %v", ref, got)
		}
	}
}

// publishedPort parses a short-syntax port: [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp].
func publishedPort(s string) (hostIP string, hostPort, containerPort int, err error) {
	s = strings.TrimSuffix(s, "/tcp")
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return "", 0, 0, fmt.Errorf("port %q: want HOST_IP:HOST_PORT:CONTAINER_PORT", s)
	}
	hostIP = parts[0]
	if hostPort, err = strconv.Atoi(parts[1]); err != nil {
		return "", 0, 0, fmt.Errorf("port %q: %v", s, err)
	}
	if containerPort, err = strconv.Atoi(parts[2]); err != nil {
		return "", 0, 0, fmt.Errorf("port %q: %v", s, err)
	}
	return hostIP, hostPort, containerPort, nil
}

// flagValue returns the value of --name (or -name) in an argument list.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// bindSource returns the host file bound at target in a service, relative to the
// compose file, or "".
func bindSource(s composeService, target string) string {
	for _, m := range s.Volumes {
		if m.Type == "bind" && m.Target == target {
			return filepath.Join(envoyDir, m.Source)
		}
	}
	return ""
}

func addrPort(t *testing.T, where, addr string) (host string, port int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: address %q: %v", where, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s: address %q: %v", where, addr, err)
	}
	return h, n
}

// decodeBootstrap decodes an Envoy bootstrap into its proto (after bootstrap.ValidateFile
// has said it is valid).
func decodeBootstrap(t *testing.T, path string) *bootstrapv3.Bootstrap {
	t.Helper()
	if err := bootstrap.ValidateFile(path); err != nil {
		t.Fatalf("invalid Envoy bootstrap:\n%v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var bs bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &bs); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &bs
}

// envoyView is what the tests read out of a bootstrap.
type envoyView struct {
	listenerPort int
	hcm          *hcmv3.HttpConnectionManager
	authz        *extauthzv3.ExtAuthz
	enforcer     *extprocv3.ExternalProcessor // the ext_proc that can refuse
	observer     *extprocv3.ExternalProcessor // the observability_mode one
	filters      []string                     // HTTP filter names in order
	clusters     map[string]*clusterv3.Cluster
}

func viewOf(t *testing.T, path string, bs *bootstrapv3.Bootstrap) *envoyView {
	t.Helper()
	v := &envoyView{clusters: map[string]*clusterv3.Cluster{}}
	ls := bs.GetStaticResources().GetListeners()
	if len(ls) != 1 {
		t.Fatalf("%s: want one listener, got %d", path, len(ls))
	}
	l := ls[0]
	v.listenerPort = int(l.GetAddress().GetSocketAddress().GetPortValue())
	v.hcm = hcmOf(t, path, l)
	for _, f := range v.hcm.GetHttpFilters() {
		v.filters = append(v.filters, f.GetName())
		m, err := f.GetTypedConfig().UnmarshalNew()
		if err != nil {
			t.Fatalf("%s: filter %s: %v", path, f.GetName(), err)
		}
		switch c := m.(type) {
		case *extauthzv3.ExtAuthz:
			if v.authz != nil {
				t.Fatalf("%s: two ext_authz filters", path)
			}
			v.authz = c
		case *extprocv3.ExternalProcessor:
			if c.GetObservabilityMode() {
				v.observer = c
			} else {
				v.enforcer = c
			}
		}
	}
	for _, c := range bs.GetStaticResources().GetClusters() {
		v.clusters[c.GetName()] = c
	}
	return v
}

func hcmOf(t *testing.T, path string, l *listenerv3.Listener) *hcmv3.HttpConnectionManager {
	t.Helper()
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			m, err := f.GetTypedConfig().UnmarshalNew()
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if h, ok := m.(*hcmv3.HttpConnectionManager); ok {
				return h
			}
		}
	}
	t.Fatalf("%s: no http_connection_manager", path)
	return nil
}

// endpoints returns a cluster's endpoint addresses, host:port.
func endpoints(c *clusterv3.Cluster) []*corev3.SocketAddress {
	var out []*corev3.SocketAddress
	for _, le := range c.GetLoadAssignment().GetEndpoints() {
		for _, lb := range le.GetLbEndpoints() {
			out = append(out, lb.GetEndpoint().GetAddress().GetSocketAddress())
		}
	}
	return out
}

// routeCluster returns the cluster that the route config sends a path to (first
// matching virtual host with domain "*", first matching route), or "".
func routeCluster(rc *routev3.RouteConfiguration, path string) (string, error) {
	for _, vh := range rc.GetVirtualHosts() {
		if !slices.Contains(vh.GetDomains(), "*") {
			continue
		}
		for _, r := range vh.GetRoutes() {
			m := r.GetMatch()
			var hit bool
			switch p := m.GetPathSpecifier().(type) {
			case *routev3.RouteMatch_Prefix:
				hit = strings.HasPrefix(path, p.Prefix)
			case *routev3.RouteMatch_Path:
				hit = path == p.Path
			case *routev3.RouteMatch_PathSeparatedPrefix:
				hit = path == p.PathSeparatedPrefix || strings.HasPrefix(path, p.PathSeparatedPrefix+"/")
			default:
				return "", fmt.Errorf("route match %T is not simulated by this test", p)
			}
			if !hit {
				continue
			}
			if c := r.GetRoute().GetCluster(); c != "" {
				return c, nil
			}
			return "", fmt.Errorf("the route for %s has no single cluster", path)
		}
	}
	return "", fmt.Errorf("no route for %s", path)
}

// checkEnvoyShape checks what the issue asks of the Envoy example: ext_authz for the
// request decision, ext_proc for request headers and body, a second ext_proc in
// observability mode for response headers, the router last, and the access log
// `vigil replay` reads. It returns the view for further checks.
func checkEnvoyShape(t *testing.T, path string) *envoyView {
	t.Helper()
	bs := decodeBootstrap(t, path)
	v := viewOf(t, path, bs)
	if v.authz == nil || v.enforcer == nil || v.observer == nil {
		t.Fatalf("%s: want ext_authz, an ext_proc and an observability_mode ext_proc; filters %v", path, v.filters)
	}
	if v.authz.GetFailureModeAllow() || v.authz.GetGrpcService().GetTimeout() == nil {
		t.Errorf("%s: ext_authz: want failure_mode_allow false and a grpc_service timeout", path)
	}
	if v.authz.GetWithRequestBody() == nil {
		t.Errorf("%s: ext_authz: want with_request_body", path)
	}
	pm := v.enforcer.GetProcessingMode()
	if pm.GetRequestHeaderMode() != extprocv3.ProcessingMode_SEND ||
		pm.GetRequestBodyMode() != extprocv3.ProcessingMode_BUFFERED ||
		v.enforcer.GetFailureModeAllow() || v.enforcer.GetMessageTimeout() == nil {
		t.Errorf("%s: ext_proc: want request headers SEND, body BUFFERED, failure_mode_allow false and a message_timeout", path)
	}
	if v.observer.GetProcessingMode().GetResponseHeaderMode() != extprocv3.ProcessingMode_SEND || !v.observer.GetFailureModeAllow() {
		t.Errorf("%s: observer ext_proc: want response headers SEND and failure_mode_allow true", path)
	}
	if n := len(v.filters); n == 0 || v.filters[n-1] != "envoy.filters.http.router" {
		t.Errorf("%s: the router must be the last HTTP filter: %v", path, v.filters)
	}
	// Every side call goes to one gRPC cluster, and /shopapi-bid to the sample API.
	grpcCluster := v.authz.GetGrpcService().GetEnvoyGrpc().GetClusterName()
	for _, ep := range []*extprocv3.ExternalProcessor{v.enforcer, v.observer} {
		if got := ep.GetGrpcService().GetEnvoyGrpc().GetClusterName(); got != grpcCluster {
			t.Errorf("%s: ext_proc cluster %q, ext_authz cluster %q", path, got, grpcCluster)
		}
	}
	if _, ok := v.clusters[grpcCluster]; !ok {
		t.Fatalf("%s: no cluster %q", path, grpcCluster)
	}
	checkAccessLog(t, path, v.hcm)
	return v
}

// replayedFields are the access log keys server/replay.go reads (accessLogLine). A key
// left out is read as zero or empty, silently: so every one must be in the format.
var replayedFields = []string{"time", "client", "method", "authority", "path", "user_agent", "status", "bytes_in", "bytes_out", "duration_ms"}

// sampleValues stands in for Envoy's substitutions when a log line is rendered: a string,
// and the number Envoy writes instead when the command is the whole value (it does for
// numeric commands).
var sampleValues = map[string]struct {
	s string
	n float64
}{
	"%START_TIME%":                             {s: "2026-11-28T10:00:00.123Z"},
	"%REQ(X-REQUEST-ID)%":                      {s: "6c1b0a4e-3f7d-4a51-9d1e-2b6f0c9a7e11"},
	"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%": {s: "203.0.113.7"},
	"%REQ(:METHOD)%":                           {s: "GET"},
	"%REQ(:AUTHORITY)%":                        {s: "localhost:10000"},
	"%REQ(USER-AGENT)%":                        {s: "curl/8.11.1"},
	"%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%":       {s: "/shopapi-bid/search?q=lamp"},
	"%RESPONSE_CODE%":                          {s: "200", n: 200},
	"%RESPONSE_CODE_DETAILS%":                  {s: "via_upstream"},
	"%RESPONSE_FLAGS%":                         {s: "-"},
	"%BYTES_RECEIVED%":                         {s: "0", n: 0},
	"%BYTES_SENT%":                             {s: "1534", n: 1534},
	"%DURATION%":                               {s: "3", n: 3},
	"%UPSTREAM_HOST%":                          {s: "127.0.0.1:8080"},
}

// checkAccessLog renders the JSON access log as Envoy would, once with numbers as
// strings and once as numbers, and replays both lines with `vigil replay`'s code.
func checkAccessLog(t *testing.T, path string, hcm *hcmv3.HttpConnectionManager) {
	t.Helper()
	var format *structpb.Struct
	for _, al := range hcm.GetAccessLog() {
		m, err := al.GetTypedConfig().UnmarshalNew()
		if err != nil {
			t.Fatalf("%s: access log: %v", path, err)
		}
		if s, ok := m.(*streamv3.StdoutAccessLog); ok {
			format = s.GetLogFormat().GetJsonFormat()
		}
	}
	if format == nil {
		t.Fatalf("%s: want a stdout access log with json_format", path)
	}
	for _, k := range replayedFields {
		if _, ok := format.GetFields()[k]; !ok {
			t.Errorf("%s: access log has no %q, which vigil replay reads", path, k)
		}
	}
	var lines bytes.Buffer
	for _, numbers := range []bool{false, true} {
		line := map[string]any{}
		for k, val := range format.GetFields() {
			cmd := val.GetStringValue()
			sv, ok := sampleValues[cmd]
			if !ok {
				t.Fatalf("%s: access log field %s: %q has no sample value in this test; add one", path, k, cmd)
			}
			if numbers && sv.s == strconv.FormatFloat(sv.n, 'f', -1, 64) {
				line[k] = sv.n
			} else {
				line[k] = sv.s
			}
		}
		js, err := protojsonMarshalMap(line)
		if err != nil {
			t.Fatal(err)
		}
		lines.Write(js)
		lines.WriteByte('\n')
	}
	cfg, err := config.Load(filepath.Join(envoyDir, "vigil.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir() // replay keeps the fingerprint key there
	var errs bytes.Buffer
	sum, err := replay.Run(context.Background(), cfg, &lines, io.Discard, &errs)
	if err != nil {
		t.Fatalf("%s: replay: %v", path, err)
	}
	if sum.Transactions != 2 || sum.Malformed != 0 || errs.Len() != 0 {
		t.Errorf("%s: replaying two access log lines: %d transactions, %d malformed: %s", path, sum.Transactions, sum.Malformed, errs.String())
	}
}

// protojsonMarshalMap encodes a map as one line of JSON.
func protojsonMarshalMap(m map[string]any) ([]byte, error) {
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil, err
	}
	return protojson.MarshalOptions{Multiline: false}.Marshal(s)
}

// TestEnvoyExample checks examples/envoy/envoy.yaml, the config for a local run: Vigil on
// its default gRPC address, the sample API where `vigil shop` serves it in the compose
// file, and the client address settings agreeing with Vigil's trusted_hops.
func TestEnvoyExample(t *testing.T) {
	v := checkEnvoyShape(t, mainEnvoy)
	grpcCluster := v.authz.GetGrpcService().GetEnvoyGrpc().GetClusterName()
	_, grpcPort := addrPort(t, "default grpc_addr", config.Default().GRPCAddr)
	for _, sa := range endpoints(v.clusters[grpcCluster]) {
		if sa.GetAddress() != "127.0.0.1" || int(sa.GetPortValue()) != grpcPort {
			t.Errorf("%s: cluster %s at %s:%d, vigil serve's default gRPC address is 127.0.0.1:%d", mainEnvoy, grpcCluster, sa.GetAddress(), sa.GetPortValue(), grpcPort)
		}
	}
	shop, err := routeCluster(v.hcm.GetRouteConfig(), shopBase+"/login")
	if err != nil {
		t.Fatalf("%s: %v", mainEnvoy, err)
	}
	_, shopPort := addrPort(t, "shop --addr", strings.Fields(shopCommand)[2])
	for _, sa := range endpoints(v.clusters[shop]) {
		if sa.GetAddress() != "127.0.0.1" || int(sa.GetPortValue()) != shopPort {
			t.Errorf("%s: %s goes to cluster %s at %s:%d, want the sample API at 127.0.0.1:%d", mainEnvoy, shopBase, shop, sa.GetAddress(), sa.GetPortValue(), shopPort)
		}
	}
	cfg, err := config.Load(filepath.Join(envoyDir, "vigil.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := int(v.hcm.GetXffNumTrustedHops()) + 1; !v.hcm.GetUseRemoteAddress().GetValue() || cfg.TrustedHops != want {
		t.Errorf("want use_remote_address and vigil.yaml trusted_hops = xff_num_trusted_hops + 1 = %d, got %d", want, cfg.TrustedHops)
	}
}

// TestEnvoyComposeMatchesMain makes envoy-compose.yaml a faithful copy of envoy.yaml:
// decoded, they differ only in their clusters' addresses and DNS settings.
func TestEnvoyComposeMatchesMain(t *testing.T) {
	main := decodeBootstrap(t, mainEnvoy)
	f := loadCompose(t)
	envoyCfg := bindSource(f.Services["envoy"], envoyConfigTarget(t, f.Services["envoy"]))
	if envoyCfg == "" || filepath.Clean(envoyCfg) == filepath.Clean(mainEnvoy) {
		t.Skip("compose mounts envoy.yaml itself")
	}
	cp := decodeBootstrap(t, envoyCfg)
	mainClusters := map[string]*clusterv3.Cluster{}
	for _, c := range main.GetStaticResources().GetClusters() {
		mainClusters[c.GetName()] = c
	}
	for _, c := range cp.GetStaticResources().GetClusters() {
		m, ok := mainClusters[c.GetName()]
		if !ok {
			t.Errorf("%s: cluster %q is not in %s", envoyCfg, c.GetName(), mainEnvoy)
			continue
		}
		c.ClusterDiscoveryType = m.ClusterDiscoveryType
		c.DnsLookupFamily = m.DnsLookupFamily
		c.DnsRefreshRate = m.DnsRefreshRate
		ce, me := endpoints(c), endpoints(m)
		if len(me) == 1 && len(ce) > 1 {
			// Several replicas where envoy.yaml has one Vigil: each on its port, and
			// round robin (Envoy's default, as in envoy.yaml).
			for _, e := range ce {
				if e.GetPortValue() != me[0].GetPortValue() {
					t.Errorf("cluster %s: endpoint %s:%d, %s's is on port %d", c.GetName(), e.GetAddress(), e.GetPortValue(), mainEnvoy, me[0].GetPortValue())
				}
			}
			if c.GetLbPolicy() != clusterv3.Cluster_ROUND_ROBIN {
				t.Errorf("cluster %s: lb_policy %v, want ROUND_ROBIN over the replicas", c.GetName(), c.GetLbPolicy())
			}
			le := c.GetLoadAssignment().GetEndpoints()
			if len(le) != 1 {
				t.Errorf("cluster %s: want the replicas in one locality, got %d", c.GetName(), len(le))
				continue
			}
			le[0].LbEndpoints = le[0].LbEndpoints[:1]
			ce = endpoints(c)
		}
		if len(ce) != len(me) {
			t.Errorf("cluster %s: %d endpoints, %d in %s", c.GetName(), len(ce), len(me), mainEnvoy)
			continue
		}
		for i := range ce {
			ce[i].Address = me[i].GetAddress()
		}
	}
	if proto.Equal(main, cp) {
		return
	}
	// Name what differs.
	diff := func(what string, a, b proto.Message) {
		if !proto.Equal(a, b) {
			t.Errorf("%s differs between %s and %s beyond cluster addresses", what, mainEnvoy, envoyCfg)
		}
	}
	diff("admin", main.GetAdmin(), cp.GetAdmin())
	ml, cl := main.GetStaticResources().GetListeners(), cp.GetStaticResources().GetListeners()
	mc, cc := main.GetStaticResources().GetClusters(), cp.GetStaticResources().GetClusters()
	if len(ml) != len(cl) || len(mc) != len(cc) {
		t.Fatalf("listener or cluster count differs between %s and %s", mainEnvoy, envoyCfg)
	}
	for i := range ml {
		diff("listener "+ml[i].GetName(), ml[i], cl[i])
	}
	for i := range mc {
		diff("cluster "+mc[i].GetName(), mc[i], cc[i])
	}
	t.Errorf("%s and %s differ beyond cluster addresses", mainEnvoy, envoyCfg)
}

// envoyConfigTarget returns the path the envoy service's command passes to -c.
func envoyConfigTarget(t *testing.T, s composeService) string {
	t.Helper()
	if p, ok := flagValue(s.Command, "c"); ok {
		return p
	}
	if p, ok := flagValue(s.Command, "config-path"); ok {
		return p
	}
	return "/etc/envoy/envoy.yaml" // the official image's default command
}

// imageCommand is a service's command, or the Dockerfile's CMD for a service built
// from it that sets none.
func imageCommand(t *testing.T, s composeService, df *dockerfileInfo) []string {
	t.Helper()
	if len(s.Command) > 0 || s.Build == nil {
		return s.Command
	}
	return df.cmd
}

// TestComposeExample checks docker-compose.yaml and what it mounts and builds.
func TestComposeExample(t *testing.T) {
	f := loadCompose(t)
	df := parseDockerfileAt(t, dockerfile)
	for _, name := range []string{"envoy", "vigil", "shop", "redis"} {
		if _, ok := f.Services[name]; !ok {
			t.Fatalf("no service %q", name)
		}
	}
	replicas := vigilReplicas(t, f, df)
	if len(replicas) < 2 {
		t.Errorf("Vigil services %v: want two replicas behind Envoy, sharing Redis", replicas)
	}

	// Every service builds from this repository or runs a pinned image; every mount
	// source exists; every published port binds loopback only; every dependency is a
	// service; every named volume is declared.
	for name, s := range f.Services {
		switch {
		case s.Build != nil:
			ctx := filepath.Join(envoyDir, s.Build.Context)
			if abs, _ := filepath.Abs(ctx); abs != mustAbs(t, repoRoot) {
				t.Errorf("%s: build context %s is not the repository root", name, s.Build.Context)
			}
			if s.Build.Dockerfile != "" && s.Build.Dockerfile != "Dockerfile" {
				t.Errorf("%s: builds %s, not the repository's Dockerfile", name, s.Build.Dockerfile)
			}
			if s.Image != "" && !pinned(s.Image) {
				t.Errorf("%s: tags the build as %q: give it a version", name, s.Image)
			}
		case !pinned(s.Image):
			t.Errorf("%s: image %q is not pinned to a release", name, s.Image)
		}
		for _, m := range s.Volumes {
			switch m.Type {
			case "bind":
				src := filepath.Join(envoyDir, m.Source)
				if _, err := os.Stat(src); err != nil && !generatedCerts(m.Source) {
					t.Errorf("%s: mounts %s: %v", name, m.Source, err)
				}
				if !m.ReadOnly {
					t.Errorf("%s: bind mount %s must be read_only", name, m.Source)
				}
			case "volume":
				if _, ok := f.Volumes[m.Source]; !ok {
					t.Errorf("%s: volume %q is not declared under volumes", name, m.Source)
				}
			default:
				t.Errorf("%s: mount type %q", name, m.Type)
			}
		}
		for _, p := range s.Ports {
			ip, _, _, err := publishedPort(p)
			if err != nil {
				t.Errorf("%s: %v", name, err)
			} else if ip != "127.0.0.1" {
				t.Errorf("%s: port %s is published beyond the host's loopback", name, p)
			}
		}
		for dep, d := range s.DependsOn {
			ds, ok := f.Services[dep]
			if !ok {
				t.Errorf("%s: depends on unknown service %q", name, dep)
				continue
			}
			switch d.Condition {
			case "service_started", "service_completed_successfully":
			case "service_healthy":
				if ds.Healthcheck == nil {
					t.Errorf("%s: waits for %s to be healthy, which has no healthcheck", name, dep)
				}
			default:
				t.Errorf("%s: depends_on %s: condition %q", name, dep, d.Condition)
			}
		}
		if h := s.Healthcheck; h != nil {
			for _, d := range []string{h.Interval, h.Timeout, h.StartPeriod} {
				if _, err := time.ParseDuration(d); err != nil {
					t.Errorf("%s: healthcheck: %v", name, err)
				}
			}
		}
		if s.StopGracePeriod != "" {
			if _, err := time.ParseDuration(s.StopGracePeriod); err != nil {
				t.Errorf("%s: stop_grace_period: %v", name, err)
			}
		}
		switch s.Restart {
		case "", "no", "always", "on-failure", "unless-stopped":
		default:
			t.Errorf("%s: restart %q", name, s.Restart)
		}
	}

	// Envoy: the official image, new enough; its mounted config is a valid bootstrap with
	// the filters; its clusters name services and the ports they listen on.
	envoy := f.Services["envoy"]
	repo, tag, _ := imageRef(envoy.Image)
	if repo != "envoyproxy/envoy" {
		t.Errorf("envoy: image %q, want the official envoyproxy/envoy", envoy.Image)
	}
	if m := regexp.MustCompile(`^v(\d+)\.(\d+)\.\d+$`).FindStringSubmatch(tag); m == nil {
		t.Errorf("envoy: tag %q, want a release vX.Y.Z", tag)
	} else if major, _ := strconv.Atoi(m[1]); major < minEnvoyMajor {
		t.Errorf("envoy: %s is older than %d.%d", tag, minEnvoyMajor, minEnvoyMinor)
	} else if minor, _ := strconv.Atoi(m[2]); major == minEnvoyMajor && minor < minEnvoyMinor {
		t.Errorf("envoy: %s is older than %d.%d", tag, minEnvoyMajor, minEnvoyMinor)
	}
	envoyCfg := bindSource(envoy, envoyConfigTarget(t, envoy))
	if envoyCfg == "" {
		t.Fatalf("envoy: nothing is mounted at %s", envoyConfigTarget(t, envoy))
	}
	v := checkEnvoyShape(t, envoyCfg)

	// Vigil: each replica's command reads the same mounted config, which `vigil serve`
	// accepts, and each has a data_dir of its own and an admin port on the host.
	vigil := f.Services["vigil"]
	var cfgPath string
	var cfg *config.Config
	var grpcPort, adminPort int
	dataVolumes := map[string]string{}
	hostAdmin := map[int]string{}
	for _, name := range replicas {
		svc := f.Services[name]
		cmd := imageCommand(t, svc, df)
		cfgTarget, ok := flagValue(cmd, "config")
		if !ok {
			t.Fatalf("%s: command %q has no --config", name, cmd)
		}
		path := bindSource(svc, cfgTarget)
		if path == "" {
			t.Fatalf("%s: nothing is mounted at %s", name, cfgTarget)
		}
		if cfgPath == "" {
			cfgPath = path
			data, err := os.ReadFile(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			cfg = loadComposeVigilConfig(t, f, name, cfgPath, string(data))
			_, grpcPort = addrPort(t, "grpc_addr", cfg.GRPCAddr)
			_, adminPort = addrPort(t, "admin_addr", cfg.AdminAddr)
		} else if filepath.Clean(path) != filepath.Clean(cfgPath) {
			t.Errorf("%s: runs with %s, vigil with %s: replicas share one config", name, path, cfgPath)
		}
		for _, flag := range []string{"grpc-addr", "admin-addr", "data-dir"} {
			if _, ok := flagValue(cmd, flag); ok {
				t.Errorf("%s: --%s in the command overrides the config file; set it in %s", name, flag, cfgPath)
			}
		}
		var dataVolume string
		for _, m := range svc.Volumes {
			if m.Type == "volume" && m.Target == cfg.DataDir {
				dataVolume = m.Source
			}
		}
		if dataVolume == "" {
			t.Errorf("%s: data_dir %s is not a named volume: state would be lost with the container", name, cfg.DataDir)
		} else if other, dup := dataVolumes[dataVolume]; dup {
			t.Errorf("%s and %s share the volume %s: each replica needs a data_dir of its own (bbolt locks it)", other, name, dataVolume)
		}
		dataVolumes[dataVolume] = name
		var published bool
		for _, p := range svc.Ports {
			if _, hp, c, err := publishedPort(p); err == nil && c == adminPort {
				published = true
				if other, dup := hostAdmin[hp]; dup {
					t.Errorf("%s and %s publish their admin port on the same host port %d", other, name, hp)
				}
				hostAdmin[hp] = name
			}
		}
		if !published {
			t.Errorf("%s: admin port %d is not published (README's curl commands use it)", name, adminPort)
		}
		// The healthcheck runs the image's binary against the admin API, with a token the
		// config accepts.
		h := svc.Healthcheck
		if h == nil || len(h.Test) < 3 || h.Test[0] != "CMD" || h.Test[1] != df.entrypoint[0] || h.Test[2] != "status" {
			t.Fatalf("%s: healthcheck %v, want [CMD %s status ...]: distroless has no shell", name, h, df.entrypoint[0])
		}
		if addr, _ := flagValue(h.Test, "admin-addr"); addr != net.JoinHostPort("127.0.0.1", strconv.Itoa(adminPort)) {
			t.Errorf("%s: healthcheck --admin-addr %q, admin listens on port %d", name, addr, adminPort)
		}
		if tok := svc.Environment["VIGIL_ADMIN_TOKEN"]; tok == "" || (tok != cfg.AdminToken && tok != cfg.AdminReadToken) {
			t.Errorf("%s: VIGIL_ADMIN_TOKEN %q is neither admin_token nor admin_read_token of %s", name, tok, cfgPath)
		}
		if d, _ := time.ParseDuration(svc.StopGracePeriod); d != 0 && d <= cfg.Shutdown.DrainDelay+cfg.Shutdown.Timeout {
			t.Errorf("%s: stop_grace_period %s, shutdown takes up to %s", name, d, cfg.Shutdown.DrainDelay+cfg.Shutdown.Timeout)
		}
		if !svc.ReadOnly || !slices.Contains(svc.CapDrop, "ALL") {
			t.Errorf("%s: want read_only and cap_drop ALL", name)
		}
		if d, ok := envoy.DependsOn[name]; !ok || d.Condition != "service_healthy" {
			t.Errorf("envoy: must wait for %s to be healthy (it fails closed)", name)
		}
	}
	grpcHost, _ := addrPort(t, "grpc_addr", cfg.GRPCAddr)
	adminHost, _ := addrPort(t, "admin_addr", cfg.AdminAddr)
	for _, h := range []string{grpcHost, adminHost} {
		if ip := net.ParseIP(h); h != "" && (ip == nil || ip.IsLoopback()) {
			t.Errorf("vigil: %s listens on %q; other containers cannot reach a container's loopback", cfgPath, h)
		}
	}
	for _, tok := range []string{cfg.AdminToken, cfg.AdminReadToken} {
		if tok != "" && !strings.Contains(tok, placeholder) {
			t.Errorf("vigil: %s commits a token that is not marked %s: keep committed tokens placeholders", cfgPath, placeholder)
		}
	}
	if !slices.Contains(df.expose, grpcPort) || !slices.Contains(df.expose, adminPort) {
		t.Errorf("Dockerfile EXPOSE %v, %s listens on %d and %d", df.expose, cfgPath, grpcPort, adminPort)
	}
	checkComposeRedis(t, f, replicas, cfg)
	var shopAPI bool
	for _, a := range cfg.APIs {
		if a.Name == "shop-bidding" && a.BasePath == shopBase {
			shopAPI = true
		}
	}
	if !shopAPI {
		t.Errorf("vigil: %s configures no API shop-bidding at %s", cfgPath, shopBase)
	}
	if want := int(v.hcm.GetXffNumTrustedHops()) + 1; !v.hcm.GetUseRemoteAddress().GetValue() || cfg.TrustedHops != want {
		t.Errorf("want use_remote_address and trusted_hops = xff_num_trusted_hops + 1 = %d, got %d", want, cfg.TrustedHops)
	}

	// The sample API: the same image, with exactly the contract's command.
	shop := f.Services["shop"]
	if got := strings.Join(shop.Command, " "); got != shopCommand {
		t.Errorf("shop: command %q, want %q", got, shopCommand)
	}
	if shop.Build == nil || vigil.Build == nil || !sameBuild(shop.Build, vigil.Build) {
		t.Errorf("shop: must run the image vigil runs (the same build)")
	}
	_, shopPort := addrPort(t, "shop --addr", shop.Command[2])

	// What each service listens on, by compose service name.
	listens := map[string][]int{"shop": {shopPort}}
	for _, name := range replicas {
		listens[name] = []int{grpcPort, adminPort}
	}
	for cname, c := range v.clusters {
		for _, sa := range endpoints(c) {
			ports, ok := listens[sa.GetAddress()]
			if !ok {
				t.Errorf("%s: cluster %s points at %q, not a compose service", envoyCfg, cname, sa.GetAddress())
				continue
			}
			if !slices.Contains(ports, int(sa.GetPortValue())) {
				t.Errorf("%s: cluster %s points at %s:%d; that service listens on %v", envoyCfg, cname, sa.GetAddress(), sa.GetPortValue(), ports)
			}
		}
	}
	// The ext_authz/ext_proc cluster: every replica once, round robin.
	grpcCluster := v.authz.GetGrpcService().GetEnvoyGrpc().GetClusterName()
	var inCluster []string
	for _, sa := range endpoints(v.clusters[grpcCluster]) {
		if !slices.Contains(replicas, sa.GetAddress()) || int(sa.GetPortValue()) != grpcPort {
			t.Errorf("%s: ext_authz/ext_proc cluster at %s:%d, want the Vigil replicas %v on %d", envoyCfg, sa.GetAddress(), sa.GetPortValue(), replicas, grpcPort)
		}
		inCluster = append(inCluster, sa.GetAddress())
	}
	slices.Sort(inCluster)
	if !slices.Equal(inCluster, replicas) {
		t.Errorf("%s: cluster %s has endpoints %v, want each replica once: %v", envoyCfg, grpcCluster, inCluster, replicas)
	}
	if p := v.clusters[grpcCluster].GetLbPolicy(); p != clusterv3.Cluster_ROUND_ROBIN {
		t.Errorf("%s: cluster %s: lb_policy %v, want ROUND_ROBIN", envoyCfg, grpcCluster, p)
	}
	shopCluster, err := routeCluster(v.hcm.GetRouteConfig(), shopBase+"/login")
	if err != nil {
		t.Fatalf("%s: %v", envoyCfg, err)
	}
	for _, sa := range endpoints(v.clusters[shopCluster]) {
		if sa.GetAddress() != "shop" || int(sa.GetPortValue()) != shopPort {
			t.Errorf("%s: %s goes to %s:%d, want shop:%d", envoyCfg, shopBase, sa.GetAddress(), sa.GetPortValue(), shopPort)
		}
	}
	var listenerPublished bool
	for _, p := range envoy.Ports {
		if _, _, c, err := publishedPort(p); err == nil && c == v.listenerPort {
			listenerPublished = true
		}
	}
	if !listenerPublished {
		t.Errorf("envoy: listener port %d is not published", v.listenerPort)
	}
	if _, ok := envoy.DependsOn["shop"]; !ok {
		t.Errorf("envoy: must depend on shop")
	}
}

func sameBuild(a, b *composeBuild) bool {
	if a.Context != b.Context || a.Dockerfile != b.Dockerfile || len(a.Args) != len(b.Args) {
		return false
	}
	for k, v := range a.Args {
		if b.Args[k] != v {
			return false
		}
	}
	return true
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
