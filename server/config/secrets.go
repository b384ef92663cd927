package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigil-project/vigil/detect"
)

// maxSecretFile bounds a secret file: a token or a key is a line, and a path
// that names something else by mistake (a device, a log) must not be read whole.
const maxSecretFile = 64 << 10

// Secrets are the values in effect of the keys that may come from a file.
type Secrets struct {
	AdminToken, AdminReadToken, FingerprintKey string
	// names are what problems with each value are reported under: the key,
	// and the file it came from.
	names [3]string
}

// readSecretFile reads one secret, trimmed. Its errors name the path and the
// reason, never the content.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err == nil {
		defer f.Close()
		var b []byte
		b, err = io.ReadAll(io.LimitReader(f, maxSecretFile+1))
		if err == nil && len(b) > maxSecretFile {
			return "", fmt.Errorf("%q is larger than %d KiB: not a secret file", path, maxSecretFile>>10)
		}
		if err == nil {
			v := strings.TrimSpace(string(b))
			if v == "" {
				return "", fmt.Errorf("%q is empty", path)
			}
			return v, nil
		}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return "", fmt.Errorf("cannot read %q: %v", path, err)
}

// fingerprintKey returns the configured key (sec, from Config.Secrets), or
// the one kept in the data directory, created on first start.
func fingerprintKey(dataDir string, sec Secrets) ([]byte, error) {
	if sec.FingerprintKey != "" {
		return hex.DecodeString(sec.FingerprintKey)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(dataDir, "fingerprint.key")
	key, err := readKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key = detect.NewKey()
	switch err := createKeyFile(path, []byte(hex.EncodeToString(key)+"\n")); {
	case errors.Is(err, fs.ErrExist):
		return readKeyFile(path) // another process sharing the directory was first
	case err != nil:
		return nil, fmt.Errorf("write fingerprint key: %w", err)
	}
	return key, nil
}

func readKeyFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("read fingerprint key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("%s: not a hex key of at least 32 bytes", path)
	}
	return key, nil
}

// createKeyFile writes a secret file with mode 0600, whole or not at all,
// and fails with fs.ErrExist if the file is already there. It writes a fresh
// temporary file (os.WriteFile on a left-over one would keep that file's
// mode) and links it into place, which unlike a rename never replaces a key
// that another process has just created.
func createKeyFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp, path); err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	// The file system has no hard links: a rename is the best left.
	return os.Rename(tmp, path)
}

// Secrets returns the secrets in effect: each set inline, or read from its
// *_file key (read at every call, so nothing read is kept in the Config).
// The problems name keys and paths, never what a file holds; a value that
// could not be read is empty.
func (c *Config) Secrets() (Secrets, []error) {
	var out Secrets
	var errs []error
	for i, s := range []struct {
		key, fileKey, inline, path string
		into                       *string
	}{
		{"admin_token", "admin_token_file", c.AdminToken, c.AdminTokenFile, &out.AdminToken},
		{"admin_read_token", "admin_read_token_file", c.AdminReadToken, c.AdminReadTokenFile, &out.AdminReadToken},
		{"fingerprint_key", "fingerprint_key_file", c.FingerprintKey, c.FingerprintKeyFile, &out.FingerprintKey},
	} {
		out.names[i] = s.key
		switch {
		case s.path == "":
			*s.into = s.inline
		case s.inline != "":
			errs = append(errs, fmt.Errorf("%s: set either %s or %s, not both", s.fileKey, s.key, s.fileKey))
		default:
			v, err := readSecretFile(s.path)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.fileKey, err))
				continue
			}
			*s.into = v
			out.names[i] = fmt.Sprintf("%s (from %s %q)", s.key, s.fileKey, s.path)
		}
	}
	return out, errs
}
