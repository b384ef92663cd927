package detect

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// TestFingerprintIsHMACSHA256 checks the stack-buffer HMAC against
// crypto/hmac, for short, boundary and long credentials and keys.
func TestFingerprintIsHMACSHA256(t *testing.T) {
	for _, key := range [][]byte{NewKey(), []byte(strings.Repeat("k", 64)), []byte(strings.Repeat("long key ", 20))} {
		f, err := NewFingerprinter(key)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 1, 31, 55, 56, 63, 64, 65, 200, 255, 256, 257, 1000, 5000} {
			raw := strings.Repeat("x", n)
			h := hmac.New(sha256.New, key)
			h.Write([]byte(raw))
			want := FingerprintPrefix + hex.EncodeToString(h.Sum(nil)[:16])
			if got := f.Fingerprint(raw); got != want {
				t.Fatalf("key %d bytes, credential %d bytes: %s, want %s", len(key), n, got, want)
			}
		}
	}
}

func TestFingerprintAllocatesOnlyItsResult(t *testing.T) {
	f, _ := NewFingerprinter(NewKey())
	if n := testing.AllocsPerRun(100, func() { f.Fingerprint("Bearer-token-of-a-usual-length-0123456789") }); n > 1 {
		t.Fatalf("%v allocations, want 1", n)
	}
}
