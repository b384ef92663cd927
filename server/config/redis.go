package config

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"time"
)

// Bounds of the redis section's values.
const (
	redisMinFlushInterval     = 10 * time.Millisecond
	redisMaxFlushInterval     = 10 * time.Second
	redisMinReconcileInterval = 10 * time.Second
	redisMaxReconcileInterval = 24 * time.Hour
	redisMaxOutboxSize        = 10_000_000
	redisMaxKeyPrefix         = 64
)

// RedisConfig is the redis section: the shared state of several replicas.
// No addresses (the embedded default): a single node, as without the
// section; nothing of the cluster layer starts.
type RedisConfig struct {
	// Addrs are host:port addresses: one is a standalone server, several
	// (or Cluster) a Redis Cluster, whose nodes are the seeds.
	Addrs []string `yaml:"addrs"`
	// Cluster uses Redis Cluster even with one seed address.
	Cluster bool `yaml:"cluster"`
	// KeyPrefix starts every key Vigil writes, so that several Vigil
	// clusters may share one Redis.
	KeyPrefix string `yaml:"key_prefix"`
	// Username is the ACL user (AUTH username password); empty: the
	// default user.
	Username string `yaml:"username"`
	// PasswordFile names a file holding the password (requirepass or the
	// ACL user's), surrounding whitespace trimmed; read when needed, never
	// kept in the Config.
	PasswordFile string `yaml:"password_file"`
	// TLS to Redis.
	TLS RedisTLS `yaml:"tls"`
	// FlushInterval is how often behaviour deltas go to Redis and the
	// merged windows come back.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// ShareFraction: an identity's windows are shared with the cluster once
	// one of its variables passes this fraction of the variable's threshold.
	ShareFraction float64 `yaml:"share_fraction"`
	// ReconcileInterval is how often the lists are reloaded whole from
	// Redis, beside following their change stream.
	ReconcileInterval time.Duration `yaml:"reconcile_interval"`
	// OutboxSize bounds the list writes queued while Redis is unreachable;
	// past it the oldest are dropped and counted.
	OutboxSize int `yaml:"outbox_size"`
	// ReplicaID names this replica in the cluster; empty: the host name and
	// a random suffix (EffectiveReplicaID).
	ReplicaID string `yaml:"replica_id"`
}

// RedisTLS sets TLS to Redis. TLS is on when Enabled is true or any file or
// the server name is set; without ca_file the system's roots verify Redis.
type RedisTLS struct {
	Enabled bool `yaml:"enabled"`
	// CAFile holds the PEM certificates that sign Redis' certificate.
	CAFile string `yaml:"ca_file"`
	// ServerName is the name Redis' certificate is checked against;
	// empty: the host of the address dialled.
	ServerName string `yaml:"server_name"`
	// CertFile and KeyFile are a client certificate, for a Redis that
	// requires one (tls-auth-clients).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether Redis is configured (redis.addrs not empty).
func (r RedisConfig) Enabled() bool { return len(r.Addrs) > 0 }

// IsCluster reports whether the addresses are those of a Redis Cluster:
// several of them, or redis.cluster set.
func (r RedisConfig) IsCluster() bool { return r.Cluster || len(r.Addrs) > 1 }

// On reports whether TLS to Redis is configured.
func (t RedisTLS) On() bool {
	return t.Enabled || t.CAFile != "" || t.ServerName != "" || t.CertFile != "" || t.KeyFile != ""
}

// Password reads redis.password_file (at every call, so that a rotated
// Secret is picked up on reconnection); empty without the key. Its errors
// name the key and the path, never the content.
func (r RedisConfig) Password() (string, error) {
	if r.PasswordFile == "" {
		return "", nil
	}
	v, err := readSecretFile(r.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("redis.password_file: %w", err)
	}
	return v, nil
}

// TLSConfig builds the TLS configuration to Redis (TLS 1.2 at least); nil
// when TLS is off.
func (r RedisConfig) TLSConfig() (*tls.Config, error) {
	t := r.TLS
	if !t.On() {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis.tls.ca_file: %q holds no PEM certificate", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.cert_file and key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

var replicaIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// EffectiveReplicaID returns redis.replica_id, or when it is empty a new
// id: the host name (cut to what an id may hold) and a random suffix,
// different at every call; call it once per process.
func (r RedisConfig) EffectiveReplicaID() string {
	if r.ReplicaID != "" {
		return r.ReplicaID
	}
	host, _ := os.Hostname()
	host = strings.Map(func(c rune) rune {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
			return c
		}
		return -1
	}, host)
	host = strings.TrimLeft(host, "._-")
	if len(host) > 48 {
		host = host[:48]
	}
	if host == "" {
		host = "vigil"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// FingerprintCheck is the value replicas sharing Redis compare to know
// they fingerprint credentials with the same key: HMAC-SHA256 of a fixed
// text under the key. The cluster stores it, never the key.
func FingerprintCheck(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("vigil fingerprint check v1"))
	return m.Sum(nil)
}

// Validate checks the redis section and reports every problem at once.
// hasFingerprintKey says whether fingerprint_key or fingerprint_key_file is
// set.
func (r RedisConfig) Validate(hasFingerprintKey bool) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("redis.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	seen := map[string]int{}
	for i, a := range r.Addrs {
		field := fmt.Sprintf("addrs[%d]", i)
		host, port, err := net.SplitHostPort(a)
		switch {
		case err != nil || host == "" || port == "":
			bad(field, "%q is not host:port", a)
			continue
		case !validHostPattern(host) || strings.HasPrefix(host, "*"):
			bad(field, "%q: %q is not a host name or IP address", a, host)
			continue
		}
		if p, err := net.LookupPort("tcp", port); err != nil || p == 0 {
			bad(field, "%q: bad port %q", a, port)
			continue
		}
		if j, dup := seen[strings.ToLower(a)]; dup {
			bad(field, "%q is also redis.addrs[%d]", a, j)
		}
		seen[strings.ToLower(a)] = i
	}
	if r.Enabled() && !hasFingerprintKey {
		bad("addrs", "needs fingerprint_key_file (or fingerprint_key), the same on every replica: "+
			"replicas sharing Redis must fingerprint credentials identically, and a key generated "+
			"in each data_dir differs per replica, so one client would be a different identity on each "+
			"(generate one with `openssl rand -hex 32`)")
	}
	if !r.Enabled() {
		for _, k := range []struct {
			field string
			set   bool
		}{
			{"cluster", r.Cluster}, {"username", r.Username != ""}, {"password_file", r.PasswordFile != ""},
			{"tls", r.TLS.On()}, {"replica_id", r.ReplicaID != ""},
		} {
			if k.set {
				bad(k.field, "has no effect without redis.addrs (Vigil runs as a single node)")
			}
		}
	}
	switch {
	case r.KeyPrefix == "":
		bad("key_prefix", "must not be empty (it keeps Vigil's keys apart from others in the same Redis)")
	case len(r.KeyPrefix) > redisMaxKeyPrefix:
		bad("key_prefix", "at most %d bytes, got %d", redisMaxKeyPrefix, len(r.KeyPrefix))
	case strings.ContainsAny(r.KeyPrefix, "{}"):
		bad("key_prefix", "%q must not hold '{' or '}': Redis Cluster would take it for the hash tag that keeps an identity's keys in one slot", r.KeyPrefix)
	case strings.IndexFunc(r.KeyPrefix, func(c rune) bool { return c <= ' ' || c == 0x7f }) >= 0:
		bad("key_prefix", "%q must not hold spaces or control characters", r.KeyPrefix)
	}
	if r.Username != "" && (strings.IndexFunc(r.Username, func(c rune) bool { return c <= ' ' || c == 0x7f }) >= 0 || len(r.Username) > 256) {
		bad("username", "must not hold spaces or control characters (at most 256 bytes)")
	}
	if r.Username != "" && r.PasswordFile == "" {
		bad("username", "needs redis.password_file: an ACL user authenticates with a password")
	}
	if r.Enabled() {
		if _, err := r.Password(); err != nil {
			errs = append(errs, err)
		}
		if r.TLS.CAFile != "" {
			if pem, err := os.ReadFile(r.TLS.CAFile); err != nil {
				bad("tls.ca_file", "cannot read %q: %v", r.TLS.CAFile, unwrapPathError(err))
			} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
				bad("tls.ca_file", "%q holds no PEM certificate", r.TLS.CAFile)
			}
		}
		switch {
		case (r.TLS.CertFile == "") != (r.TLS.KeyFile == ""):
			bad("tls", "a client certificate needs both cert_file and key_file")
		case r.TLS.CertFile != "":
			if _, err := tls.LoadX509KeyPair(r.TLS.CertFile, r.TLS.KeyFile); err != nil {
				bad("tls.cert_file", "cannot load %q and %q: %v", r.TLS.CertFile, r.TLS.KeyFile, unwrapPathError(err))
			}
		}
	}
	if r.TLS.ServerName != "" && !validHostPattern(r.TLS.ServerName) {
		bad("tls.server_name", "%q is not a host name", r.TLS.ServerName)
	}
	if r.FlushInterval < redisMinFlushInterval || r.FlushInterval > redisMaxFlushInterval {
		bad("flush_interval", "must be between %s and %s, got %s", redisMinFlushInterval, redisMaxFlushInterval, r.FlushInterval)
	}
	if !(r.ShareFraction > 0 && r.ShareFraction <= 1) {
		bad("share_fraction", "must be more than 0 and at most 1, got %g", r.ShareFraction)
	}
	if r.ReconcileInterval < redisMinReconcileInterval || r.ReconcileInterval > redisMaxReconcileInterval {
		bad("reconcile_interval", "must be between %s and %s, got %s", redisMinReconcileInterval, redisMaxReconcileInterval, r.ReconcileInterval)
	}
	if r.OutboxSize < 1 || r.OutboxSize > redisMaxOutboxSize {
		bad("outbox_size", "must be between 1 and %d, got %d", redisMaxOutboxSize, r.OutboxSize)
	}
	if r.ReplicaID != "" && !replicaIDRE.MatchString(r.ReplicaID) {
		bad("replica_id", "%q: use letters, digits, '.', '_' and '-' (at most 64)", r.ReplicaID)
	}
	return errs
}

// unwrapPathError keeps the cause of a file error: the path is named
// already.
func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
