package detect

import (
	"strings"
	"testing"
)

// A fingerprint given in upper case (copied from a tool that prints hex in
// capitals) is the same fingerprint, not a raw credential to fingerprint
// again; a shortened one is refused rather than fingerprinted.
func TestNormalizeFingerprintCase(t *testing.T) {
	fp := newTestFingerprinter(t, testKey)
	want := fp.Fingerprint("tok-123")
	upper := FingerprintPrefix + strings.ToUpper(want[len(FingerprintPrefix):])
	for _, in := range []string{want, upper, "FP:" + want[len(FingerprintPrefix):], " " + upper + " "} {
		for _, k := range []Kind{KindToken, KindAPIKey, KindCookie} {
			if got, err := fp.Normalize(k, in); err != nil || got != want {
				t.Errorf("Normalize(%v, %q) = %q, %v; want %q", k, in, got, err, want)
			}
		}
	}
	for _, in := range []string{want[:len(FingerprintPrefix)+8] + "…", want + "0", "fp:" + strings.Repeat("g", fingerprintHexLen)} {
		if got, err := fp.Normalize(KindToken, in); err == nil || !strings.Contains(err.Error(), "not a whole fingerprint") {
			t.Errorf("Normalize(token, %q) = %q, %v; want a not-a-whole-fingerprint error", in, got, err)
		}
	}
	// A user name is kept as given, fingerprint-like or not.
	if got, err := fp.Normalize(KindUsername, upper); err != nil || got != upper {
		t.Errorf("Normalize(username, %q) = %q, %v", upper, got, err)
	}
}
