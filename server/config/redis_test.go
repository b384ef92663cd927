package config

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/test/testpki"
	"github.com/vigil-project/vigil/test/vigiltest/testfiles"
)

// TestRedisDefaults: the embedded defaults configure no Redis (a single
// node, as before the section existed) and carry the documented values.
func TestRedisDefaults(t *testing.T) {
	r := Default().Redis
	if r.Enabled() || r.IsCluster() || r.TLS.On() {
		t.Errorf("the defaults configure Redis: %+v", r)
	}
	if r.KeyPrefix != "vigil:" || r.FlushInterval != 250*time.Millisecond || r.ShareFraction != 0.1 ||
		r.ReconcileInterval != 5*time.Minute || r.OutboxSize != 100000 || r.ReplicaID != "" || r.PasswordFile != "" {
		t.Errorf("redis defaults: %+v", r)
	}
	if pw, err := r.Password(); pw != "" || err != nil {
		t.Errorf("password without password_file: %q, %v", pw, err)
	}
	if c, err := r.TLSConfig(); c != nil || err != nil {
		t.Errorf("TLS without redis.tls: %v, %v", c, err)
	}
}

// TestRedisStandaloneOrCluster: one address is a standalone server;
// several, or redis.cluster, a Cluster.
func TestRedisStandaloneOrCluster(t *testing.T) {
	for _, tc := range []struct {
		addrs   []string
		cluster bool
		want    bool
	}{
		{[]string{"redis:6379"}, false, false},
		{[]string{"redis:6379"}, true, true},
		{[]string{"a:7000", "b:7000"}, false, true},
	} {
		r := RedisConfig{Addrs: tc.addrs, Cluster: tc.cluster}
		if r.IsCluster() != tc.want {
			t.Errorf("%v cluster=%v: IsCluster %v, want %v", tc.addrs, tc.cluster, r.IsCluster(), tc.want)
		}
	}
}

// TestRedisPasswordFromFile: the password is read from its file at every
// call (a rotated Secret is picked up), trimmed, never kept in the Config,
// and a problem with the file names the key and the path, not the content.
func TestRedisPasswordFromFile(t *testing.T) {
	pwFile := testfiles.Write(t, "redis-password", "first-sekrit-password\n")
	path := testfiles.Write(t, "vigil.yaml", "fingerprint_key: "+testfiles.FingerprintKey+
		"\nredis:\n  addrs: [127.0.0.1:6379]\n  password_file: "+pwFile+"\n")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if pw, err := cfg.Redis.Password(); pw != "first-sekrit-password" || err != nil {
		t.Fatalf("password: %q, %v", pw, err)
	}
	if err := os.WriteFile(pwFile, []byte("rotated-sekrit-password"), 0o600); err != nil {
		t.Fatal(err)
	}
	if pw, _ := cfg.Redis.Password(); pw != "rotated-sekrit-password" {
		t.Fatalf("after rotation: %q", pw)
	}
	if err := os.WriteFile(pwFile, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), `line 4: redis.password_file: "`+pwFile+`" is empty`) {
		t.Fatalf("empty password file: %v", err)
	}
	if err := os.WriteFile(pwFile, []byte("sekrit"), 0o000); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 { // root reads anything
		err = cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), `redis.password_file: cannot read "`+pwFile+`": permission denied`) {
			t.Fatalf("unreadable password file: %v", err)
		}
	}
	if _, err := cfg.Redis.Password(); err != nil && strings.Contains(err.Error(), "sekrit") {
		t.Fatalf("the error shows the password: %v", err)
	}
}

// TestRedisTLSConfig: the TLS configuration built from redis.tls completes
// a handshake with a server whose certificate the CA file signed, presents
// the client certificate, and fails on a CA that did not sign it.
func TestRedisTLSConfig(t *testing.T) {
	pki := testpki.New(t)
	other := testpki.New(t)
	serverCert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequestClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	gotClientCert := make(chan bool, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			err = tc.Handshake()
			gotClientCert <- err == nil && len(tc.ConnectionState().PeerCertificates) > 0
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	// A client certificate as PEM files.
	certFile, keyFile := filepath.Join(t.TempDir(), "client.pem"), filepath.Join(t.TempDir(), "client-key.pem")
	writeClientPEM(t, pki, certFile, keyFile)

	dial := func(r RedisConfig) error {
		c, err := r.TLSConfig()
		if err != nil {
			return err
		}
		conn, err := tls.Dial("tcp", ln.Addr().String(), c)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	r := RedisConfig{Addrs: []string{ln.Addr().String()}, TLS: RedisTLS{CAFile: pki.CAFile, ServerName: "localhost", CertFile: certFile, KeyFile: keyFile}}
	if err := dial(r); err != nil {
		t.Fatalf("handshake with the CA that signed the server: %v", err)
	}
	if !<-gotClientCert {
		t.Error("the server got no client certificate")
	}
	r.TLS.CAFile = other.CAFile
	if err := dial(r); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("handshake with another CA: %v, want a certificate error", err)
	}
	r.TLS.CAFile = pki.ServerKey // a key, not a certificate
	if _, err := r.TLSConfig(); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("a CA file without certificates: %v", err)
	}
	cfg := Default()
	cfg.FingerprintKey = testfiles.FingerprintKey
	cfg.Redis.Addrs = []string{"127.0.0.1:6379"}
	cfg.Redis.TLS.CAFile = pki.ServerKey
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "redis.tls.ca_file: \""+pki.ServerKey+"\" holds no PEM certificate") {
		t.Errorf("Validate with a CA file without certificates: %v", err)
	}
	cfg.Redis.TLS = RedisTLS{CertFile: pki.ServerKey, KeyFile: pki.ServerCert} // swapped
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "redis.tls.cert_file: cannot load") {
		t.Errorf("Validate with swapped cert and key: %v", err)
	}
}

func writeClientPEM(t *testing.T, pki *testpki.PKI, certFile, keyFile string) {
	t.Helper()
	// The server's pair is a certificate the CA signed; as a client
	// certificate it is presented all the same.
	for src, dst := range map[string]string{pki.ServerCert: certFile, pki.ServerKey: keyFile} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFingerprintCheck: the check value is HMAC-SHA256 of the fixed text
// under the key (pinned by a value computed with openssl), the same for
// the same key, different for another, and does not hold the key.
func TestFingerprintCheck(t *testing.T) {
	key, _ := hex.DecodeString(testfiles.FingerprintKey)
	// printf 'vigil fingerprint check v1' | openssl dgst -sha256 -mac HMAC -macopt hexkey:<testfiles.FingerprintKey>
	const want = "c433275ef08914bfe4045b194d8659717463d537a254e9f9dc57e943a9e26d11"
	got := FingerprintCheck(key)
	if hex.EncodeToString(got) != want {
		t.Errorf("FingerprintCheck = %x, want %s", got, want)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("vigil fingerprint check v1"))
	if !bytes.Equal(got, m.Sum(nil)) || !bytes.Equal(got, FingerprintCheck(bytes.Clone(key))) {
		t.Error("not the HMAC of the fixed text")
	}
	other := bytes.Clone(key)
	other[0] ^= 1
	if bytes.Equal(got, FingerprintCheck(other)) {
		t.Error("two keys give the same check value")
	}
	if bytes.Contains(got, key[:8]) {
		t.Error("the check value holds the key")
	}
}

// TestEffectiveReplicaID: a configured id is kept; without one each
// process gets the host name and a random suffix, a valid id.
func TestEffectiveReplicaID(t *testing.T) {
	if id := (RedisConfig{ReplicaID: "vigil-0"}).EffectiveReplicaID(); id != "vigil-0" {
		t.Errorf("configured id: %q", id)
	}
	a, b := RedisConfig{}.EffectiveReplicaID(), RedisConfig{}.EffectiveReplicaID()
	if a == b {
		t.Errorf("two processes on one host get the same id %q", a)
	}
	host, _ := os.Hostname()
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,56}-[0-9a-f]{8}$`)
	for _, id := range []string{a, b} {
		if !re.MatchString(id) || !replicaIDRE.MatchString(id) {
			t.Errorf("generated id %q is not a valid replica_id", id)
		}
		if host != "" && replicaIDRE.MatchString(host) && len(host) <= 48 && !strings.HasPrefix(id, host+"-") {
			t.Errorf("generated id %q does not start with the host name %q", id, host)
		}
	}
}
