package server

import (
	"context"
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/testpki"
)

// TestTLSOnTheAdminAPIAndMutualTLSOnGRPC: with admin_tls the admin API
// answers HTTPS only; with grpc_tls and client_ca_file a client must show
// a certificate of that CA.
func TestTLSOnTheAdminAPIAndMutualTLSOnGRPC(t *testing.T) {
	pki := testpki.New(t)
	cfg := config.Default()
	cfg.GRPCAddr, cfg.AdminAddr, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	cfg.Shutdown.DrainDelay = 0
	cfg.AdminTLS = config.TLSFiles{CertFile: pki.ServerCert, KeyFile: pki.ServerKey}
	cfg.GRPCTLS = config.TLSFiles{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile}
	s, err := New(cfg, zerolog.Nop(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	https := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.CAPool}}}
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
	if err := check(credentials.NewTLS(&tls.Config{RootCAs: pki.CAPool, Certificates: []tls.Certificate{pki.ClientCert}})); err != nil {
		t.Fatalf("gRPC with a client certificate: %v", err)
	}
	if err := check(credentials.NewTLS(&tls.Config{RootCAs: pki.CAPool})); err == nil {
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
