package decoy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
)

var (
	stripeKey   = regexp.MustCompile(`^sk_live_[A-Za-z0-9]{24}$`)
	githubPAT   = regexp.MustCompile(`^ghp_[A-Za-z0-9]{36}$`)
	awsKeyID    = regexp.MustCompile(`^AKIA[A-Z2-7]{16}$`)
	awsSecret   = regexp.MustCompile(`^[A-Za-z0-9+/]{40}$`)
	hexSecret   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	password    = regexp.MustCompile(`^[A-Za-z0-9]{6}![A-Za-z0-9]{6}$`)
	uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
)

// checkJWT makes the checks an attacker makes on a JWT before trying it:
// three base64url parts without padding, a header and claims that decode to
// JSON objects, plausible claims, and a signature as long as its algorithm's.
func checkJWT(tok string, now time.Time) error {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return fmt.Errorf("%d parts", len(parts))
	}
	var raw [3][]byte
	for i, p := range parts {
		b, err := base64.RawURLEncoding.Strict().DecodeString(p)
		if err != nil {
			return fmt.Errorf("part %d: %v", i, err)
		}
		raw[i] = b
	}
	var header struct{ Alg, Typ string }
	if err := strictJSON(raw[0], &header); err != nil || header.Alg != "HS256" || header.Typ != "JWT" {
		return fmt.Errorf("header %s: %v", raw[0], err)
	}
	var claims struct {
		Sub, Iss, Jti, Scope string
		Iat, Exp             int64
	}
	if err := strictJSON(raw[1], &claims); err != nil {
		return fmt.Errorf("claims %s: %v", raw[1], err)
	}
	iat := time.Unix(claims.Iat, 0)
	switch {
	case !uuidPattern.MatchString(claims.Sub) || !uuidPattern.MatchString(claims.Jti) || claims.Sub == claims.Jti:
		return fmt.Errorf("sub %q, jti %q", claims.Sub, claims.Jti)
	case iat.After(now) || now.Sub(iat) > time.Hour || claims.Exp-claims.Iat != 3600:
		return fmt.Errorf("issued %v, expires %v, at %v", iat, time.Unix(claims.Exp, 0), now)
	case claims.Scope == "":
		return fmt.Errorf("no scope")
	}
	if claims.Iss != "" {
		if u, err := url.Parse(claims.Iss); err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" {
			return fmt.Errorf("iss %q", claims.Iss)
		}
	}
	if len(raw[2]) != 32 { // HMAC-SHA-256
		return fmt.Errorf("signature of %d bytes for HS256", len(raw[2]))
	}
	return nil
}

// strictJSON decodes one JSON object with no unknown or duplicate fields.
func strictJSON(b []byte, into any) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(into)
}

// checkGitHubToken checks a personal access token's CRC-32 checksum, as
// GitHub's secret scanning (and a careful attacker) does.
func checkGitHubToken(tok string) error {
	if !githubPAT.MatchString(tok) {
		return fmt.Errorf("format")
	}
	random, check := tok[4:34], tok[34:]
	n := uint64(0)
	for _, c := range []byte(check) {
		n = n*62 + uint64(strings.IndexByte(base62, c))
	}
	if n != uint64(crc32.ChecksumIEEE([]byte(random))) {
		return fmt.Errorf("checksum %s does not match", check)
	}
	return nil
}

// checkHoneytoken checks a minted value of a kind.
func checkHoneytoken(kind, v string, now time.Time) error {
	var err error
	switch kind {
	case KindToken, KindJWT:
		err = checkJWT(v, now)
	case KindAPIKey:
		if !stripeKey.MatchString(v) {
			err = fmt.Errorf("not a Stripe secret key")
		}
	case KindGitHubToken:
		err = checkGitHubToken(v)
	case KindAWSKey:
		if !awsKeyID.MatchString(v) {
			err = fmt.Errorf("not an AWS access key id")
		}
	case KindSecret:
		if !hexSecret.MatchString(v) {
			err = fmt.Errorf("not 32 bytes in hex")
		}
	case KindPassword:
		if !password.MatchString(v) {
			err = fmt.Errorf("not a password")
		}
	case KindConnectionString:
		u, perr := url.Parse(v)
		if p, ok := u.User.Password(); perr != nil || u.Scheme != "postgres" || !ok || len(p) != 20 || u.Port() != "5432" {
			err = fmt.Errorf("not a connection string: %v", perr)
		}
	default:
		err = fmt.Errorf("unknown kind")
	}
	if err == nil && hasTell(v) {
		err = fmt.Errorf("has a tell")
	}
	if err != nil {
		return fmt.Errorf("%s %q: %w", kind, v, err)
	}
	return nil
}

var mintedKinds = []string{KindAPIKey, KindToken, KindJWT, KindGitHubToken, KindAWSKey, KindSecret, KindPassword, KindConnectionString}

// TestMintedHoneytokensPassAnAttackersChecks mints many of every kind, on
// hosts of every shape, and checks each one as an attacker would.
func TestMintedHoneytokensPassAnAttackersChecks(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	hosts := []string{"shop.example.com", "Shop.Example.COM:8443", "[2001:db8::1]:443", "2001:db8::1", `evil"host`, "honeypot.test", ""}
	seen := map[string]bool{}
	for _, kind := range mintedKinds {
		for i := range 400 {
			host := hosts[i%len(hosts)]
			v := mintValue(kind, host, now)
			if err := checkHoneytoken(kind, v, now); err != nil {
				t.Fatalf("on host %q: %v", host, err)
			}
			if seen[v] {
				t.Fatalf("%s %q minted twice", kind, v)
			}
			seen[v] = true
			if kind == KindJWT && i%len(hosts) == 0 {
				claims, _ := base64.RawURLEncoding.DecodeString(strings.Split(v, ".")[1])
				if !bytes.Contains(claims, []byte(`"iss":"https://shop.example.com"`)) {
					t.Fatalf("claims %s: the issuer is not the host called", claims)
				}
			}
		}
	}
	if v := mintValue("something_new", "", now); len(v) != 32 {
		t.Fatalf("an unknown kind got %q", v)
	}
}

// plantedPatterns find planted values in answers, by kind.
var plantedPatterns = []struct {
	kind string
	re   *regexp.Regexp
}{
	{KindToken, regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)},
	{KindAPIKey, regexp.MustCompile(`sk_live_[A-Za-z0-9]+`)},
	{KindGitHubToken, regexp.MustCompile(`ghp_[A-Za-z0-9]+`)},
	{KindAWSKey, regexp.MustCompile(`AKIA[A-Z0-9]+`)},
	{KindSecret, regexp.MustCompile(`(?i)jwt_secret"?\s*[=:]\s*"?([^"\s]+)`)},
	{"aws_secret", regexp.MustCompile(`(?i)aws_secret_access_key\s*=\s*"?([^"\s]+)`)},
}

// TestPlantedHoneytokensDecodeAndAreCaught: over many hits on every decoy
// that plants credentials, every planted value passes the attacker's checks,
// and every one a client can present is caught when replayed.
func TestPlantedHoneytokensDecodeAndAreCaught(t *testing.T) {
	paths := []string{"/.env", "/.git/config", "/.git-credentials", "/swagger.json", "/config.json", "/credentials.json",
		"/.aws/credentials", "/server-status", "/backup.sql", "/users", "/actuator/env", "/web.config"}
	r := &recorder{}
	fp := testFP(t)
	tr, err := New(Config{APIs: []APIDecoys{{API: shop, Paths: paths}}}, fp, r.actions())
	if err != nil {
		t.Fatal(err)
	}
	now := r.actions().Now()
	found := map[string]int{}
	for round := range 25 {
		for _, p := range paths {
			ip := fmt.Sprintf("198.51.%d.%d", round, len(found)%250)
			ans := tr.Hook(request("/shop"+p, detect.Identities{detect.KindIP: ip}))
			if ans == nil {
				t.Fatalf("%s is no decoy", p)
			}
			body := string(ans.Body)
			for _, pat := range plantedPatterns {
				for _, m := range pat.re.FindAllStringSubmatch(body, -1) {
					v := m[len(m)-1]
					found[pat.kind]++
					if pat.kind == "aws_secret" {
						if !awsSecret.MatchString(v) {
							t.Fatalf("%s: AWS secret %q", p, v)
						}
						continue
					}
					if err := checkHoneytoken(pat.kind, v, now); err != nil {
						t.Fatalf("%s: %v", p, err)
					}
					// Replayed from a fresh address on a real endpoint.
					before := len(r.attacks)
					replay := request("/shop/items/1", detect.Identities{detect.KindIP: "203.0.113.200", detect.KindToken: fp.Fingerprint(v)})
					if tr.Hook(replay) == nil || len(r.attacks) != before+1 || r.attacks[before].Honeytoken == nil {
						t.Fatalf("%s: the planted %s %q is not caught when replayed", p, pat.kind, v)
					}
				}
			}
		}
	}
	for _, pat := range plantedPatterns {
		if found[pat.kind] < 25 {
			t.Errorf("only %d %s found in %d hits", found[pat.kind], pat.kind, 25*len(paths))
		}
	}
}
