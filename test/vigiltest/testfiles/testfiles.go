// Package testfiles writes the files a configuration test reads: a config
// file, and secret files with a config naming them. It imports nothing of
// Vigil, so that server/config's own tests may use it.
package testfiles

import (
	"os"
	"path/filepath"
	"testing"
)

// FingerprintKey is a valid fingerprint key (64 hex digits).
const FingerprintKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// Write writes content to name in a new temporary directory and returns
// its path.
func Write(tb testing.TB, name, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// SecretConfig writes the admin token, the read token and the fingerprint
// key to files in dir, and a config that names them (and admin_addr
// 0.0.0.0:9001, which needs the tokens); it returns the config's path.
func SecretConfig(tb testing.TB, admin, read, key string) (path string, dir string) {
	tb.Helper()
	dir = tb.TempDir()
	for name, v := range map[string]string{"admin-token": admin, "read-token": read, "fingerprint-key": key} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o400); err != nil {
			tb.Fatal(err)
		}
	}
	path = Write(tb, "vigil.yaml", "admin_addr: 0.0.0.0:9001\n"+
		"admin_token_file: "+filepath.Join(dir, "admin-token")+"\n"+
		"admin_read_token_file: "+filepath.Join(dir, "read-token")+"\n"+
		"fingerprint_key_file: "+filepath.Join(dir, "fingerprint-key")+"\n")
	return path, dir
}
