package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/vigil-project/vigil/server/config"
)

// testPKI is a CA with a server and a client certificate, written as PEM.
type testPKI struct {
	dir                   string
	caPool                *x509.CertPool
	clientCert            tls.Certificate
	serverCert, serverKey string
	caFile                string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	p := &testPKI{dir: dir, caPool: x509.NewCertPool()}
	p.caPool.AddCert(ca)
	p.caFile = filepath.Join(dir, "ca.pem")
	os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
	sc, sk := issue("vigil", x509.ExtKeyUsageServerAuth)
	p.serverCert, p.serverKey = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	os.WriteFile(p.serverCert, sc, 0o600)
	os.WriteFile(p.serverKey, sk, 0o600)
	cc, ck := issue("envoy", x509.ExtKeyUsageClientAuth)
	p.clientCert, err = tls.X509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTLSOnTheAdminAPIAndMutualTLSOnGRPC: with admin_tls the admin API
// answers HTTPS only; with grpc_tls and client_ca_file a client must show
// a certificate of that CA.
func TestTLSOnTheAdminAPIAndMutualTLSOnGRPC(t *testing.T) {
	pki := newTestPKI(t)
	cfg := config.Default()
	cfg.GRPCAddr, cfg.AdminAddr, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	cfg.Shutdown.DrainDelay = 0
	cfg.AdminTLS = config.TLSFiles{CertFile: pki.serverCert, KeyFile: pki.serverKey}
	cfg.GRPCTLS = config.TLSFiles{CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientCAFile: pki.caFile}
	s, err := New(cfg, zerolog.Nop(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	https := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.caPool}}}
	resp, err := https.Get("https://" + s.AdminAddr() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin over TLS: %v %v", err, resp)
	}
	resp.Body.Close()
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + s.AdminAddr() + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Fatal("the admin API answered plain HTTP")
	}

	check := func(creds credentials.TransportCredentials) error {
		conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer conn.Close()
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		_, err = healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{})
		return err
	}
	if err := check(credentials.NewTLS(&tls.Config{RootCAs: pki.caPool, Certificates: []tls.Certificate{pki.clientCert}})); err != nil {
		t.Fatalf("gRPC with a client certificate: %v", err)
	}
	if err := check(credentials.NewTLS(&tls.Config{RootCAs: pki.caPool})); err == nil {
		t.Fatal("gRPC without a client certificate was accepted")
	}
}

func TestTLSConfigProblems(t *testing.T) {
	cfg := config.Default()
	cfg.GRPCTLS = config.TLSFiles{CertFile: "x.pem"}
	cfg.AdminTLS = config.TLSFiles{CertFile: "a", KeyFile: "b", ClientCAFile: "c"}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "grpc_tls: needs both cert_file and key_file") || !strings.Contains(err.Error(), "admin_tls.client_ca_file") {
		t.Fatalf("validation: %v", err)
	}
	cfg = config.Default()
	cfg.GRPCAddr, cfg.AdminAddr, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	cfg.GRPCTLS = config.TLSFiles{CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem"}
	if _, err := New(cfg, zerolog.Nop(), Options{}); err == nil || !strings.Contains(err.Error(), "grpc_tls") {
		t.Fatalf("missing files: %v", err)
	}
}

// TestGRPCOffLoopbackNeedsClientCA: a gRPC listener anyone can reach lets
// anyone block anyone (one forged Check for a decoy with a victim's
// x-forwarded-for), so off loopback Validate wants Envoy's client
// certificate (grpc_tls.client_ca_file) unless grpc_insecure says that
// something else admits only Envoy.
func TestGRPCOffLoopbackNeedsClientCA(t *testing.T) {
	mtls := config.TLSFiles{CertFile: "c.pem", KeyFile: "k.pem", ClientCAFile: "ca.pem"}
	for _, tc := range []struct {
		addr     string
		tls      config.TLSFiles
		insecure bool
		refused  bool
	}{
		{addr: "0.0.0.0:9000", refused: true},
		{addr: "[::]:9000", refused: true},
		{addr: ":9000", refused: true},
		{addr: "10.1.2.3:9000", refused: true},
		{addr: "[2001:db8::1]:9000", refused: true},
		{addr: "vigil.example.internal:9000", refused: true},
		{addr: "0.0.0.0:9000", tls: config.TLSFiles{CertFile: "c.pem", KeyFile: "k.pem"}, refused: true}, // TLS without client certificates
		{addr: "127.0.0.1:9000"},
		{addr: "127.0.0.2:9000"},
		{addr: "[::1]:9000"},
		{addr: "localhost:9000"},
		{addr: "0.0.0.0:9000", tls: mtls},
		{addr: "vigil.example.internal:9000", tls: mtls},
		{addr: "0.0.0.0:9000", insecure: true},
		{addr: "[::]:9000", insecure: true},
	} {
		cfg := config.Default()
		cfg.GRPCAddr, cfg.GRPCTLS, cfg.GRPCInsecure = tc.addr, tc.tls, tc.insecure
		err := cfg.Validate()
		named := err != nil && strings.Contains(err.Error(), "grpc_tls.client_ca_file") && strings.Contains(err.Error(), "grpc_insecure")
		if named != tc.refused || (!tc.refused && err != nil) {
			t.Errorf("grpc_addr %s, tls %+v, grpc_insecure %v: refused %v, want %v (%v)", tc.addr, tc.tls, tc.insecure, named, tc.refused, err)
		}
	}
}

// TestServeRefusesOpenGRPC runs `vigil serve` and `vigil config check` through
// Main: off loopback without a client CA both fail naming
// grpc_tls.client_ca_file; with grpc_insecure: true serve starts and warns;
// with mTLS it starts without the warning.
func TestServeRefusesOpenGRPC(t *testing.T) {
	common := []string{"--admin-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--drain-delay", "0s"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Main(ctx, append([]string{"serve", "--grpc-addr", "0.0.0.0:0"}, common...), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "grpc_tls.client_ca_file") {
		t.Fatalf("serve on 0.0.0.0 without a client CA: %v, want an error naming grpc_tls.client_ca_file", err)
	}
	open := writeFile(t, "open.yaml", "grpc_addr: 0.0.0.0:9000\n")
	if err := Main(ctx, []string{"config", "check", open}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "grpc_tls.client_ca_file") {
		t.Fatalf("config check: %v, want an error naming grpc_tls.client_ca_file", err)
	}

	insecure := writeFile(t, "insecure.yaml", "grpc_insecure: true\n")
	v := serve(t, append([]string{"--config", insecure, "--grpc-addr", "0.0.0.0:0"}, common...)...)
	warn := waitForLogLine(t, v.logs, "without a client certificate", nil)
	if warn["level"] != "warn" || !strings.Contains(warn["message"].(string), "grpc_tls.client_ca_file") {
		t.Errorf("warning line = %v", warn)
	}
	v.stop()

	pki := newTestPKI(t)
	mtls := writeFile(t, "mtls.yaml", "grpc_tls:\n  cert_file: "+pki.serverCert+"\n  key_file: "+pki.serverKey+"\n  client_ca_file: "+pki.caFile+"\n")
	v = serve(t, "--config", mtls, "--grpc-addr", "0.0.0.0:0", "--admin-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--drain-delay", "0s")
	if strings.Contains(v.logs.String(), "without a client certificate") {
		t.Errorf("warned with mTLS on:\n%s", v.logs.String())
	}
	v.stop()
}
