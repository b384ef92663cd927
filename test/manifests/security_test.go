package manifests

// What keeps the examples' Vigil from being called by anyone but Envoy (mutual TLS, or
// the mesh's identities and policies) and what makes Vigil, the routes and the backend
// see one form of each path (Envoy's path normalisation).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/vigil-project/vigil/server"
	"github.com/vigil-project/vigil/server/config"
)

// genCertsScript makes the development PKI that docker-compose.yaml mounts from certs/.
const genCertsScript = envoyDir + "/gen-certs.sh"

// generatedCerts reports whether a compose bind source is made by gen-certs.sh: certs/
// holds private keys, so it is never committed and does not exist in a checkout.
func generatedCerts(source string) bool {
	return strings.HasPrefix(filepath.ToSlash(filepath.Clean(source)), "certs/")
}

// exampleBootstraps returns every Envoy bootstrap under examples/ (a YAML file with a
// top-level static_resources or listeners key), as envoy/bootstrap finds them.
func exampleBootstraps(t *testing.T) []string {
	t.Helper()
	key := regexp.MustCompile(`(?m)^(static_resources|listeners)\s*:`)
	var found []string
	err := filepath.WalkDir(examplesDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if ext := strings.ToLower(filepath.Ext(path)); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err == nil && key.Match(data) {
			found = append(found, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) < 3 {
		t.Fatalf("found only %v", found)
	}
	return found
}

// checkPathNormalisation: the HCM normalises paths (RFC 3986 and merged slashes), and
// escaped slashes are refused or redirected, never forwarded as they are.
func checkPathNormalisation(t *testing.T, where string, hcm *hcmv3.HttpConnectionManager) {
	t.Helper()
	if !hcm.GetNormalizePath().GetValue() || !hcm.GetMergeSlashes() {
		t.Errorf("%s: http_connection_manager: want normalize_path: true and merge_slashes: true", where)
	}
	switch a := hcm.GetPathWithEscapedSlashesAction(); a {
	case hcmv3.HttpConnectionManager_REJECT_REQUEST, hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
	default:
		t.Errorf("%s: http_connection_manager: path_with_escaped_slashes_action %v, want REJECT_REQUEST or UNESCAPE_AND_REDIRECT", where, a)
	}
}

// TestExampleHCMsNormalisePaths checks every HTTP connection manager of every Envoy
// bootstrap in the examples (Istio's is a patch, checked by TestManifests).
func TestExampleHCMsNormalisePaths(t *testing.T) {
	for _, path := range exampleBootstraps(t) {
		bs := decodeBootstrap(t, path)
		for _, l := range bs.GetStaticResources().GetListeners() {
			checkPathNormalisation(t, path+" listener "+l.GetName(), hcmOf(t, path, l))
		}
	}
}

// checkClusterAuthenticated: a cluster that calls Vigil reaches it on loopback only, or
// presents a client certificate and checks Vigil's against a CA and a name. It returns
// the TLS context, or nil for a loopback cluster without one.
func checkClusterAuthenticated(t *testing.T, where string, c *clusterv3.Cluster) *tlsv3.UpstreamTlsContext {
	t.Helper()
	eps := endpoints(c)
	loopback := len(eps) > 0
	for _, ep := range eps {
		ip := net.ParseIP(ep.GetAddress())
		if ep.GetAddress() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			loopback = false
		}
	}
	ts := c.GetTransportSocket()
	if ts == nil {
		if !loopback {
			t.Errorf("%s: cluster %s reaches Vigil off loopback without a transport_socket: Envoy must present a client certificate (mTLS)", where, c.GetName())
		}
		return nil
	}
	m, err := ts.GetTypedConfig().UnmarshalNew()
	if err != nil {
		t.Fatalf("%s: cluster %s transport_socket: %v", where, c.GetName(), err)
	}
	utc, ok := m.(*tlsv3.UpstreamTlsContext)
	if !ok {
		t.Fatalf("%s: cluster %s transport_socket is %T, want UpstreamTlsContext", where, c.GetName(), m)
	}
	ctc := utc.GetCommonTlsContext()
	certs := ctc.GetTlsCertificates()
	if len(certs) != 1 || certs[0].GetCertificateChain().GetFilename() == "" || certs[0].GetPrivateKey().GetFilename() == "" {
		t.Errorf("%s: cluster %s: want one client certificate (certificate_chain and private_key files)", where, c.GetName())
	}
	vc := ctc.GetValidationContext()
	if vc.GetTrustedCa().GetFilename() == "" || len(vc.GetMatchTypedSubjectAltNames()) == 0 {
		t.Errorf("%s: cluster %s: want Vigil's certificate checked (trusted_ca and match_typed_subject_alt_names)", where, c.GetName())
	}
	if !slices.Contains(ctc.GetAlpnProtocols(), "h2") {
		t.Errorf("%s: cluster %s: want alpn_protocols [h2]: grpc-go refuses TLS without ALPN h2", where, c.GetName())
	}
	return utc
}

// TestExampleVigilClustersAuthenticate: in every Envoy bootstrap, the clusters of the
// Vigil filters are on loopback or authenticate Envoy with mTLS.
func TestExampleVigilClustersAuthenticate(t *testing.T) {
	for _, path := range exampleBootstraps(t) {
		v := viewOf(t, path, decodeBootstrap(t, path))
		names := map[string]bool{}
		if v.authz != nil {
			names[v.authz.GetGrpcService().GetEnvoyGrpc().GetClusterName()] = true
		}
		if v.enforcer != nil {
			names[v.enforcer.GetGrpcService().GetEnvoyGrpc().GetClusterName()] = true
		}
		if v.observer != nil {
			names[v.observer.GetGrpcService().GetEnvoyGrpc().GetClusterName()] = true
		}
		for name := range names {
			c := v.clusters[name]
			if c == nil {
				t.Errorf("%s: no cluster %q", path, name)
				continue
			}
			checkClusterAuthenticated(t, path, c)
			checkStreamsPerConnection(t, path, c)
		}
	}
}

// TestComposeMutualTLS runs gen-certs.sh, then serves Vigil with the compose config's
// grpc_tls on the generated files and calls it as Envoy's cluster would: with Envoy's
// client certificate, the CA and the SNI/SAN of envoy-compose.yaml. Without a client
// certificate, or with Vigil's own (a server certificate), the call is refused.
func TestComposeMutualTLS(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("gen-certs.sh needs openssl")
	}
	dir := t.TempDir()
	if out, err := exec.Command("sh", genCertsScript, dir).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", genCertsScript, err, out)
	}
	f := loadCompose(t)
	// hostPath is the file behind path in a service's container: a committed file, or
	// one gen-certs.sh wrote.
	hostPath := func(service, path string) string {
		t.Helper()
		var best *composeMount
		for i, m := range f.Services[service].Volumes {
			if m.Type == "bind" && (path == m.Target || strings.HasPrefix(path, strings.TrimSuffix(m.Target, "/")+"/")) &&
				(best == nil || len(m.Target) > len(best.Target)) {
				best = &f.Services[service].Volumes[i]
			}
		}
		if best == nil {
			t.Fatalf("%s: %s is in no bind mount", service, path)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(path, best.Target), "/")
		if generatedCerts(best.Source) {
			return filepath.Join(dir, strings.TrimPrefix(filepath.ToSlash(filepath.Clean(best.Source)), "certs/"), rel)
		}
		return filepath.Join(envoyDir, best.Source, rel)
	}
	generated := map[string][]string{} // certs/ directory mounted → services
	for name, s := range f.Services {
		for _, m := range s.Volumes {
			if m.Type == "bind" && generatedCerts(m.Source) {
				generated[filepath.ToSlash(filepath.Clean(m.Source))] = append(generated[filepath.ToSlash(filepath.Clean(m.Source))], name)
				if _, err := os.Stat(hostPath(name, m.Target)); err != nil {
					t.Errorf("%s: mounts %s, which gen-certs.sh does not make: %v", name, m.Source, err)
				}
			}
		}
	}
	replicas := vigilReplicas(t, f, parseDockerfileAt(t, dockerfile))
	for _, name := range replicas {
		if !slices.Contains(generated["certs/vigil"], name) {
			t.Errorf("%s: want certs/vigil (Vigil's server certificate) mounted", name)
		}
	}
	if !slices.Equal(generated["certs/envoy"], []string{"envoy"}) {
		t.Errorf("certs/envoy (Envoy's client key) is mounted into %v, want envoy alone", generated["certs/envoy"])
	}
	for _, name := range generated["certs/vigil"] {
		if !slices.Contains(replicas, name) {
			t.Errorf("certs/vigil (Vigil's server key) is mounted into %s, which is no Vigil replica", name)
		}
	}

	envoyCfg := bindSource(f.Services["envoy"], envoyConfigTarget(t, f.Services["envoy"]))
	v := viewOf(t, envoyCfg, decodeBootstrap(t, envoyCfg))
	utc := checkClusterAuthenticated(t, envoyCfg, v.clusters[v.authz.GetGrpcService().GetEnvoyGrpc().GetClusterName()])
	if utc == nil {
		t.Fatalf("%s: the vigil cluster has no TLS", envoyCfg)
	}
	ctc := utc.GetCommonTlsContext()
	clientCert, err := tls.LoadX509KeyPair(hostPath("envoy", ctc.GetTlsCertificates()[0].GetCertificateChain().GetFilename()),
		hostPath("envoy", ctc.GetTlsCertificates()[0].GetPrivateKey().GetFilename()))
	if err != nil {
		t.Fatalf("Envoy's client certificate: %v", err)
	}
	caPEM, err := os.ReadFile(hostPath("envoy", ctc.GetValidationContext().GetTrustedCa().GetFilename()))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("Envoy's trusted_ca holds no certificate")
	}
	san := ctc.GetValidationContext().GetMatchTypedSubjectAltNames()[0].GetMatcher().GetExact()
	if san == "" || utc.GetSni() != san {
		t.Errorf("%s: sni %q and the SAN matcher %q: want both the name Vigil's certificate carries", envoyCfg, utc.GetSni(), san)
	}

	cmd := imageCommand(t, f.Services["vigil"], parseDockerfileAt(t, dockerfile))
	target, _ := flagValue(cmd, "config")
	cfg, err := config.Load(bindSource(f.Services["vigil"], target))
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.GRPCTLS
	if g.CertFile == "" || g.KeyFile == "" || g.ClientCAFile == "" {
		t.Fatalf("vigil.yaml: grpc_tls %+v: want cert_file, key_file and client_ca_file", g)
	}
	cfg.GRPCTLS = config.TLSFiles{CertFile: hostPath("vigil", g.CertFile), KeyFile: hostPath("vigil", g.KeyFile), ClientCAFile: hostPath("vigil", g.ClientCAFile)}
	vigilCert, err := tls.LoadX509KeyPair(cfg.GRPCTLS.CertFile, cfg.GRPCTLS.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.FingerprintKeyFile != "" {
		cfg.FingerprintKeyFile = hostPath("vigil", cfg.FingerprintKeyFile)
	}
	// The replicas' Redis is TestComposeExample's: this test serves one Vigil on the
	// generated certificates, alone.
	cfg.Redis = config.Default().Redis
	cfg.GRPCAddr, cfg.AdminAddr, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	cfg.Shutdown.DrainDelay = 0
	srv, err := server.New(cfg, zerolog.Nop(), server.Options{})
	if err != nil {
		t.Fatalf("vigil serve with the generated certificates: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()

	call := func(certs []tls.Certificate) error {
		creds := credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: san, Certificates: certs})
		conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer conn.Close()
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		_, err = healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{})
		return err
	}
	if err := call([]tls.Certificate{clientCert}); err != nil {
		t.Errorf("as Envoy, with its client certificate: %v", err)
	}
	if err := call(nil); err == nil {
		t.Error("a caller without a client certificate was served")
	}
	if err := call([]tls.Certificate{vigilCert}); err == nil {
		t.Error("a caller presenting Vigil's server certificate as a client certificate was served")
	}
}

// checkStreamsPerConnection: Envoy opens another connection to Vigil before it would
// put more streams on one than Vigil serves (grpc.max_concurrent_streams, default):
// Envoy does not follow the limit a server advertises, and queues instead.
func checkStreamsPerConnection(t *testing.T, where string, c *clusterv3.Cluster) {
	t.Helper()
	m, err := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].UnmarshalNew()
	if err != nil {
		t.Fatalf("%s: cluster %s: %v", where, c.GetName(), err)
	}
	po, _ := m.(*upstreamhttpv3.HttpProtocolOptions)
	got := po.GetExplicitHttpConfig().GetHttp2ProtocolOptions().GetMaxConcurrentStreams().GetValue()
	if max := config.Default().GRPC.MaxConcurrentStreams; got == 0 || got > max {
		t.Errorf("%s: cluster %s: http2_protocol_options.max_concurrent_streams %d, want 1..%d (Vigil's grpc.max_concurrent_streams)", where, c.GetName(), got, max)
	}
}
