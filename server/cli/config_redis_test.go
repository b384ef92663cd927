package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/test/vigiltest/testfiles"
)

// TestConfigCheckRedis: `vigil config check` accepts a redis section with
// a shared fingerprint key and a password file, and for a bad one prints
// every problem with its line: no fingerprint key (and why it is needed),
// an address without a port, an unreadable password file, a value out of
// bounds; never the password.
func TestConfigCheckRedis(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := testfiles.Write(t, "fingerprint-key", testfiles.FingerprintKey+"\n")
	pw := testfiles.Write(t, "redis-password", "sekrit-redis-password\n")
	good := testfiles.Write(t, "good.yaml", "fingerprint_key_file: "+key+"\n"+
		"redis:\n  addrs: [redis.vigil.svc:6379]\n  password_file: "+pw+"\n")
	var stdout, stderr bytes.Buffer
	if err := Main(ctx, []string{"config", "check", good}, &stdout, &stderr); err != nil {
		t.Fatalf("config check of a good redis config: %v", err)
	}
	if got := stdout.String(); got != good+": ok (0 APIs)\n" {
		t.Errorf("config check printed %q", got)
	}

	bad := testfiles.Write(t, "bad.yaml", "# no fingerprint key\n"+
		"redis:\n"+
		"  addrs: [redis, \"redis:6379\"]\n"+
		"  password_file: "+filepath.Join(dir, "missing")+"\n"+
		"  flush_interval: 1m\n"+
		"  key_prefix: \"{vigil}\"\n")
	stdout.Reset()
	err := Main(ctx, []string{"config", "check", bad}, &stdout, &stderr)
	if err == nil {
		t.Fatal("config check of a bad redis config: no error")
	}
	for _, want := range []string{
		"config " + bad + ": invalid configuration, 5 problem(s):",
		"\n  - line 3: redis.addrs: needs fingerprint_key_file (or fingerprint_key), the same on every replica: replicas sharing Redis must fingerprint credentials identically",
		"\n  - line 3: redis.addrs[0]: \"redis\" is not host:port",
		"\n  - line 4: redis.password_file: cannot read \"" + filepath.Join(dir, "missing") + "\": no such file or directory",
		"\n  - line 5: redis.flush_interval: must be between 10ms and 10s, got 1m0s",
		"\n  - line 6: redis.key_prefix: \"{vigil}\" must not hold '{' or '}'",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("config check output lacks %q:\n%v", want, err)
		}
	}

	// A bad value beside a readable password file shows no password.
	leak := testfiles.Write(t, "leak.yaml", "fingerprint_key_file: "+key+"\n"+
		"redis:\n  addrs: [redis:6379]\n  password_file: "+pw+"\n  username: \"a b\"\n")
	err = Main(ctx, []string{"config", "check", leak}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "line 5: redis.username") || strings.Contains(err.Error()+stdout.String()+stderr.String(), "sekrit") {
		t.Errorf("config check with a password file: %v", err)
	}
}
