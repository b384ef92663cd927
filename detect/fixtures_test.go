package detect

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// testKey is a fixed fingerprint key, so that tests and fuzz seeds are
// reproducible.
var testKey = bytes.Repeat([]byte("vigil-test-key-0"), 2)

// t0 is the injected "now" of every test: nothing here reads the clock.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// headers is a HeaderReader over a map of lower-case names.
type headers map[string]string

func (h headers) Header(name string) string { return h[name] }

var _ HeaderReader = headers(nil)

func newTestFingerprinter(tb testing.TB, key []byte) *Fingerprinter {
	tb.Helper()
	fp, err := NewFingerprinter(key)
	if err != nil {
		tb.Fatal(err)
	}
	return fp
}

func newTestExtractor(tb testing.TB, hops int) *Extractor {
	tb.Helper()
	x, err := NewExtractor(newTestFingerprinter(tb, testKey), hops)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(x.Close)
	return x
}

func newTestEnforcer(tb testing.TB, allow, block *List, cacheSize int64) *Enforcer {
	tb.Helper()
	e, err := NewEnforcer(allow, block, cacheSize)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.Close)
	return e
}

// benchName makes a table case name usable as a sub-benchmark name.
func benchName(s string) string { return strings.NewReplacer(" ", "_", "/", "_").Replace(s) }
