package config

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestFingerprintKeyCreatedOnce starts several key look-ups on one new data
// directory at once, as replicas sharing a volume would: they must all end
// up with the key on disk.
func TestFingerprintKeyCreatedOnce(t *testing.T) {
	cfg := &Config{DataDir: t.TempDir()}
	const n = 8
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = fingerprintKey(cfg.DataDir, Secrets{}) })
	}
	wg.Wait()
	onDisk, err := readKeyFile(filepath.Join(cfg.DataDir, "fingerprint.key"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("look-up %d: %v", i, errs[i])
		} else if !bytes.Equal(keys[i], onDisk) {
			t.Errorf("look-up %d got a key that is not the one on disk", i)
		}
	}
	if entries, _ := os.ReadDir(cfg.DataDir); len(entries) != 1 {
		t.Errorf("data dir holds %d files, want only the key", len(entries))
	}
}
