package detect

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// Kind is the kind of a client identity.
type Kind uint8

// Identity kinds. The order is the order in which lists are checked.
const (
	KindIP Kind = iota
	KindToken
	KindAPIKey
	KindCookie
	KindUsername
	// NumKinds is the number of kinds (not a kind): the length of Identities.
	NumKinds
)

var kindNames = [NumKinds]string{"ip", "token", "api_key", "cookie", "username"}

// Kinds lists every identity kind.
func Kinds() []Kind { return []Kind{KindIP, KindToken, KindAPIKey, KindCookie, KindUsername} }

func (k Kind) String() string {
	if k < NumKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Secret reports whether values of this kind are credentials that Vigil only
// keeps as keyed fingerprints.
func (k Kind) Secret() bool { return k == KindToken || k == KindAPIKey || k == KindCookie }

// ParseKind parses "ip", "token", "api_key", "cookie" or "username".
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if s == n {
			return Kind(i), nil
		}
	}
	return 0, fmt.Errorf("unknown identity kind %q (want one of %s)", s, strings.Join(kindNames[:], ", "))
}

// Identities are the identities of one request. Secret kinds hold fingerprints,
// never the credential itself; an empty string means "not present".
type Identities [NumKinds]string

// Get returns the identity of kind k.
func (ids *Identities) Get(k Kind) string { return ids[k] }

// FingerprintPrefix starts every fingerprint, so that a value can be told
// apart from a raw credential.
const FingerprintPrefix = "fp:"

const fingerprintHexLen = 32 // 16 bytes of HMAC-SHA-256

// Fingerprinter turns credentials into keyed fingerprints
// (HMAC-SHA-256 with a per-deployment key, truncated to 128 bits). The same
// credential gets the same fingerprint whatever kind it is presented as, so a
// token reused as an API key is still recognised.
//
// Credentials up to 256 bytes, nearly all of them, are hashed with the
// RFC 2104 construction H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ m)) spelled out over
// recycled SHA-256 states that start from the key's blocks already hashed
// (the midstates, saved once): two SHA-256 blocks per credential instead of
// four, and no allocation, where crypto/hmac's interface makes every buffer
// escape to the heap. Longer ones go through crypto/hmac. Tests check both
// against crypto/hmac.
type Fingerprinter struct {
	key          []byte
	inner, outer []byte // SHA-256 states after K ⊕ ipad and K ⊕ opad (MarshalBinary)
}

// fpScratch is a recycled SHA-256 state and the buffers handed to it: on
// the heap already, so the interface's calls make nothing escape.
type fpScratch struct {
	d   hash.Hash
	sum [sha256.Size]byte
	buf [maxStackCredential]byte
}

var fpScratches = sync.Pool{New: func() any { return &fpScratch{d: sha256.New()} }}

// maxStackCredential is the longest credential hashed without allocating.
const maxStackCredential = 256

// NewFingerprinter returns a Fingerprinter keyed with key, which must hold at
// least 32 bytes.
func NewFingerprinter(key []byte) (*Fingerprinter, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("fingerprint key: need at least 32 bytes, got %d", len(key))
	}
	f := &Fingerprinter{key: append([]byte(nil), key...)}
	k := key
	if len(k) > sha256.BlockSize {
		sum := sha256.Sum256(k)
		k = sum[:]
	}
	var ipad, opad [sha256.BlockSize]byte
	for i := range ipad {
		var b byte
		if i < len(k) {
			b = k[i]
		}
		ipad[i] = b ^ 0x36
		opad[i] = b ^ 0x5c
	}
	midstate := func(pad []byte) []byte {
		d := sha256.New()
		d.Write(pad)
		st, err := d.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			panic(err) // crypto/sha256 states always marshal
		}
		return st
	}
	f.inner, f.outer = midstate(ipad[:]), midstate(opad[:])
	return f, nil
}

// NewKey returns a fresh random fingerprint key.
func NewKey() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return k
}

// Fingerprint returns the fingerprint of a raw credential.
func (f *Fingerprinter) Fingerprint(raw string) string {
	var sum [sha256.Size]byte
	if len(raw) <= maxStackCredential {
		sc := fpScratches.Get().(*fpScratch)
		u := sc.d.(encoding.BinaryUnmarshaler)
		if err := u.UnmarshalBinary(f.inner); err != nil {
			panic(err) // a state MarshalBinary made
		}
		n := copy(sc.buf[:], raw)
		sc.d.Write(sc.buf[:n])
		sc.d.Sum(sc.sum[:0])
		if err := u.UnmarshalBinary(f.outer); err != nil {
			panic(err)
		}
		sc.d.Write(sc.sum[:])
		sc.d.Sum(sc.sum[:0])
		sum = sc.sum
		clear(sc.buf[:n]) // no credential left in a pooled buffer
		fpScratches.Put(sc)
	} else {
		h := hmac.New(sha256.New, f.key)
		h.Write([]byte(raw))
		copy(sum[:], h.Sum(nil))
	}
	var out [len(FingerprintPrefix) + fingerprintHexLen]byte
	copy(out[:], FingerprintPrefix)
	hex.Encode(out[len(FingerprintPrefix):], sum[:fingerprintHexLen/2])
	return string(out[:])
}

// IsFingerprint reports whether s has the shape of a fingerprint.
func IsFingerprint(s string) bool {
	if len(s) != len(FingerprintPrefix)+fingerprintHexLen || !strings.HasPrefix(s, FingerprintPrefix) {
		return false
	}
	for i := len(FingerprintPrefix); i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Normalize turns a value given by a person (admin API, CLI) into the form
// kept in lists: IPs and CIDR ranges canonical, secrets fingerprinted unless already a
// fingerprint, usernames as given.
func (f *Fingerprinter) Normalize(k Kind, value string) (string, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return "", errors.New("empty value")
	}
	switch {
	case k == KindIP:
		// An address as the extractor sees it, or a CIDR range.
		return NormalizeIP(value)
	case k.Secret():
		return normalizeSecret(f, value)
	case k == KindUsername:
		if len(value) > 256 {
			return "", errors.New("username longer than 256 bytes")
		}
		return value, nil
	}
	return "", fmt.Errorf("unknown identity kind %d", k)
}

// normalizeSecret fingerprints a raw credential and keeps a fingerprint,
// written in lower case whatever case it was given in (as people copy hex).
// A value that starts like a fingerprint but is not a whole one, such as
// the shortened fp:0123abcd… of a table, is refused: fingerprinted again
// as a raw credential it would never match.
func normalizeSecret(f *Fingerprinter, value string) (string, error) {
	n := len(FingerprintPrefix)
	if len(value) < n || !strings.EqualFold(value[:n], FingerprintPrefix) {
		return f.Fingerprint(value), nil
	}
	if fp := FingerprintPrefix + strings.ToLower(value[n:]); IsFingerprint(fp) {
		return fp, nil
	}
	return "", fmt.Errorf("starts with %q but is not a whole fingerprint (%s and %d hex digits); copy it whole from `vigil attacks show` or -o json",
		FingerprintPrefix, FingerprintPrefix, fingerprintHexLen)
}
