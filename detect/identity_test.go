package detect

import (
	"bytes"
	"strings"
	"testing"
)

func TestKindNamesRoundTrip(t *testing.T) {
	for _, k := range Kinds() {
		got, err := ParseKind(k.String())
		if err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v; want %v", k.String(), got, err, k)
		}
	}
	if _, err := ParseKind("IP"); err == nil {
		t.Error(`ParseKind("IP") succeeded; kinds are lower-case`)
	}
	if got := Kind(200).String(); got != "kind(200)" {
		t.Errorf("Kind(200).String() = %q", got)
	}
	for k, secret := range map[Kind]bool{KindIP: false, KindToken: true, KindAPIKey: true, KindCookie: true, KindUsername: false} {
		if k.Secret() != secret {
			t.Errorf("%v.Secret() = %v, want %v", k, k.Secret(), secret)
		}
	}
}

func TestNewFingerprinterRejectsShortKey(t *testing.T) {
	if _, err := NewFingerprinter(make([]byte, 31)); err == nil {
		t.Fatal("31-byte key accepted")
	}
	if len(NewKey()) != 32 {
		t.Fatal("NewKey is not 32 bytes")
	}
	if bytes.Equal(NewKey(), NewKey()) {
		t.Fatal("NewKey returned the same key twice")
	}
}

// fingerprintTests feed TestFingerprint, BenchmarkFingerprint and, as raw
// credentials, the seeds of FuzzExtract.
var fingerprintTests = []struct {
	name, raw string
}{
	{"empty", ""},
	{"short", "s3cr3t"},
	{"api key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"},
	{"jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVzLWhlcmU"},
	{"128 bytes", strings.Repeat("x", 128)},
	{"129 bytes", strings.Repeat("x", 129)},
	{"4 KiB", strings.Repeat("0123456789abcdef", 256)},
	{"utf8", "пароль-密码"},
}

func TestFingerprint(t *testing.T) {
	fp := newTestFingerprinter(t, testKey)
	other := append([]byte(nil), testKey...)
	other[0] ^= 1
	fp2 := newTestFingerprinter(t, other)
	seen := map[string]string{}
	for _, tc := range fingerprintTests {
		t.Run(tc.name, func(t *testing.T) {
			got := fp.Fingerprint(tc.raw)
			if !IsFingerprint(got) {
				t.Fatalf("Fingerprint(%q) = %q, not a fingerprint", tc.raw, got)
			}
			if tc.raw != "" && strings.Contains(got, tc.raw) {
				t.Fatalf("fingerprint %q contains the raw value", got)
			}
			if again := fp.Fingerprint(tc.raw); again != got {
				t.Fatalf("not deterministic: %q then %q", got, again)
			}
			if got2 := fp2.Fingerprint(tc.raw); got2 == got {
				t.Fatalf("two keys give the same fingerprint %q", got)
			}
			if prev, dup := seen[got]; dup {
				t.Fatalf("%q and %q share fingerprint %q", prev, tc.raw, got)
			}
			seen[got] = tc.raw
		})
	}
	// The key is copied: changing the caller's slice changes nothing.
	key := append([]byte(nil), testKey...)
	fp3 := newTestFingerprinter(t, key)
	want := fp3.Fingerprint("abc")
	key[0] ^= 0xff
	if got := fp3.Fingerprint("abc"); got != want {
		t.Fatal("fingerprinter aliases the caller's key")
	}
}

func TestFingerprintConcurrent(t *testing.T) {
	fp := newTestFingerprinter(t, testKey)
	want := make([]string, len(fingerprintTests))
	for i, tc := range fingerprintTests {
		want[i] = fp.Fingerprint(tc.raw)
	}
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for n := 0; n < 200; n++ {
				i := (n + g) % len(fingerprintTests)
				if got := fp.Fingerprint(fingerprintTests[i].raw); got != want[i] {
					t.Errorf("concurrent Fingerprint(%q) = %q, want %q", fingerprintTests[i].raw, got, want[i])
					return
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}

func TestIsFingerprint(t *testing.T) {
	for s, want := range map[string]bool{
		"fp:0123456789abcdef0123456789abcdef":  true,
		"fp:0123456789ABCDEF0123456789abcdef":  false, // upper-case hex is never produced
		"fp:0123456789abcdef0123456789abcde":   false,
		"fp:0123456789abcdef0123456789abcdef0": false,
		"xx:0123456789abcdef0123456789abcdef":  false,
		"fp:0123456789abcdef0123456789abcdeg":  false,
		"":                                     false,
	} {
		if got := IsFingerprint(s); got != want {
			t.Errorf("IsFingerprint(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestNormalize(t *testing.T) {
	fp := newTestFingerprinter(t, testKey)
	fpOf := fp.Fingerprint("tok-123")
	for _, tc := range []struct {
		kind    Kind
		in, out string
		err     bool
	}{
		{KindIP, " 10.0.0.1 ", "10.0.0.1", false},
		{KindIP, "::ffff:10.0.0.1", "10.0.0.1", false},
		{KindIP, "2001:DB8::0001", "2001:db8::1", false},
		{KindIP, "fe80::1%eth0", "fe80::1", false}, // zones never reach the lists from requests
		{KindIP, "10.0.0.1:80", "", true},
		{KindIP, "10.1.2.3/8", "10.0.0.0/8", false}, // a CIDR range (NormalizeIP's tests)
		{KindIP, "10.0.0.0/33", "", true},
		{KindIP, "", "", true},
		{KindToken, "tok-123", fpOf, false},
		{KindAPIKey, " tok-123\n", fpOf, false},
		{KindCookie, "tok-123", fpOf, false},
		{KindToken, fpOf, fpOf, false}, // already a fingerprint
		{KindUsername, " alice ", "alice", false},
		{KindUsername, strings.Repeat("a", 256), strings.Repeat("a", 256), false},
		{KindUsername, strings.Repeat("a", 257), "", true},
		{KindUsername, "  ", "", true},
		{Kind(9), "x", "", true},
	} {
		got, err := fp.Normalize(tc.kind, tc.in)
		if (err != nil) != tc.err || got != tc.out {
			t.Errorf("Normalize(%v, %q) = %q, %v; want %q, error %v", tc.kind, tc.in, got, err, tc.out, tc.err)
		}
	}
}

func BenchmarkFingerprint(b *testing.B) {
	fp := newTestFingerprinter(b, testKey)
	for _, tc := range fingerprintTests {
		b.Run(benchName(tc.name), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.raw)))
			for b.Loop() {
				fp.Fingerprint(tc.raw)
			}
		})
	}
}
