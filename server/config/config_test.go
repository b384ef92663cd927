package config

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/decoy"
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/test/vigiltest/testfiles"
)

// TestConfigFiles loads every testdata/config/*.yaml file. A *.good.yaml file
// must load and validate; a *.bad.yaml file must fail with every line of its
// sidecar *.bad.err file in the error text. Adding a case needs no Go code.
func TestConfigFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "config", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no files in testdata/config")
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			err := loadAndValidate(path)
			switch {
			case strings.HasSuffix(name, ".good.yaml"):
				if err != nil {
					t.Fatalf("want a valid configuration, got:\n%v", err)
				}
			case strings.HasSuffix(name, ".bad.yaml"):
				want := readWantedErrors(t, strings.TrimSuffix(path, ".yaml")+".err")
				if err == nil {
					t.Fatalf("want an error containing %q, got none", want)
				}
				for _, w := range want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error does not contain %q:\n%v", w, err)
					}
				}
			default:
				t.Fatalf("%s: name it *.good.yaml or *.bad.yaml", name)
			}
		})
	}
}

func loadAndValidate(path string) error {
	cfg, err := Load(path)
	if err != nil {
		return err
	}
	return cfg.Validate()
}

func readWantedErrors(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("every *.bad.yaml needs a *.bad.err file with the expected error substrings: %v", err)
	}
	var want []string
	for line := range strings.SplitSeq(string(data), "\n") {
		if line != "" {
			want = append(want, line)
		}
	}
	if len(want) == 0 {
		t.Fatalf("%s names no expected error", path)
	}
	return want
}

// TestConfigManyProblemsCounted checks that every problem is reported and
// that a default inherited by several APIs is reported once.
func TestConfigManyProblemsCounted(t *testing.T) {
	err := loadAndValidate(filepath.Join("testdata", "config", "many_problems.bad.yaml"))
	if err == nil {
		t.Fatal("want an error")
	}
	lines := strings.Count(err.Error(), "\n  - ")
	if lines != 19 {
		t.Errorf("want 19 problems listed, got %d:\n%v", lines, err)
	}
	if strings.Contains(err.Error(), "apis[0].mode") || strings.Contains(err.Error(), "apis[1].identities") {
		t.Errorf("a bad default is reported again for the APIs that inherit it:\n%v", err)
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("embedded defaults do not validate: %v", err)
	}
	noFile, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(noFile, cfg) {
		t.Errorf("Load(\"\") = %+v, want the embedded defaults %+v", noFile, cfg)
	}
	// Spot checks that the embedded file is the one documented.
	if cfg.GRPCAddr != "127.0.0.1:9000" || cfg.AdminAddr != "127.0.0.1:9001" || cfg.Defaults.Mode != "" ||
		cfg.Shutdown.DrainDelay != 5*time.Second || cfg.Shutdown.Timeout != 15*time.Second {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
	// DefaultYAML hands out a copy.
	b := DefaultYAML()
	b[0] = 'X'
	if DefaultYAML()[0] == 'X' {
		t.Error("DefaultYAML returns the embedded bytes, not a copy")
	}
}

func TestPartialFileKeepsDefaults(t *testing.T) {
	path := testfiles.Write(t, "partial.yaml", `
grpc_addr: 127.0.0.1:9100
defaults:
  identities:
    api_key_header: x-key
shutdown:
  timeout: 3s
apis:
  - name: orders
    base_path: /orders
    identities:
      cookie: sid
`)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.GRPCAddr = "127.0.0.1:9100"
	want.Defaults.Identities.APIKeyHeader = "x-key"
	want.Shutdown.Timeout = 3 * time.Second
	sid := "sid"
	want.APIs = []APIConfig{{Name: "orders", BasePath: "/orders", Identities: &IdentityOverlay{Cookie: &sid}}}
	cfg.src = nil // where the values came from
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}

	// The API inherits every default it does not set.
	api, ok := cfg.Catalog().Lookup("orders")
	if !ok {
		t.Fatal("orders is not in the catalog")
	}
	wantIDs := detect.IdentitySources{TokenHeader: "authorization", APIKeyHeader: "x-key", Cookie: "sid", UsernameClaim: "sub"}
	if api.Identities != wantIDs || api.Mode != detect.ModeBlock || api.BasePath != "/orders" {
		t.Errorf("orders = %+v, want identities %+v, mode block", api, wantIDs)
	}
}

func TestCatalogFromConfig(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "config", "full.good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cat := cfg.Catalog()
	orders, ok := cat.Lookup("orders")
	if !ok {
		t.Fatal("orders is not in the catalog")
	}
	if orders.BasePath != "/orders" || orders.Mode != detect.ModeBlock || orders.MaxBodyBytes != 65536 || orders.MaxJSONElements != 1000 {
		t.Errorf("orders = %+v", orders)
	}
	wantIDs := detect.IdentitySources{TokenHeader: "x-auth", APIKeyHeader: "x-key", APIKeyQuery: "key", Cookie: "sid", UsernameHeader: "x-username", UsernameClaim: "preferred_username"}
	if orders.Identities != wantIDs {
		t.Errorf("orders identities = %+v, want %+v", orders.Identities, wantIDs)
	}
	users, _ := cat.Lookup("users")
	if users == nil || users.Mode != detect.ModeLearn || users.MaxBodyBytes != 1048576 || users.Identities.UsernameHeader != "x-user" {
		t.Errorf("users = %+v, want learn mode and the defaults", users)
	}
	for _, tc := range []struct{ host, path, want string }{
		{"api.example.com", "/orders/1", "orders"},
		{"API.EXAMPLE.COM:443", "/orders", "orders"},
		{"eu.orders.example.com", "/orders?x=1", "orders"},
		{"[::1]:8080", "/anything", "v6"},
		{"other.example.com", "/users/7", "users"},
		{"other.example.com", "/ordersx", "v6"},
	} {
		if got := cat.Match(tc.host, tc.path); got.Name != tc.want {
			t.Errorf("Match(%q, %q) = %q, want %q", tc.host, tc.path, got.Name, tc.want)
		}
	}
	fb := cat.Fallback()
	if fb.Mode != detect.ModeDetect || fb.MaxBodyBytes != 1048576 || !fb.Discovered {
		t.Errorf("fallback = %+v", fb)
	}
	// login_username_fields: the configured list, none when empty, the
	// defaults when unset (discovered APIs included).
	partners, _ := cat.Lookup("partners")
	form := "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		api        *detect.API
		path, body string
		want       string
	}{
		{users, "/users/login", "username=u&user_id=ID-9", "ID-9"},
		{users, "/users/login", "user%5Bemail%5D=A@B.c", "a@b.c"},
		{users, "/users/login", "email=e@x", ""},
		{orders, "/orders/login", "email=e@x&login=l", "e@x"},
		{partners, "/partners/login", "username=p", ""},
		{fb, "/api/oauth/token", "login=l", "l"},
	} {
		got := ""
		if tc.api.ReadsLoginBody(tc.path) {
			got = tc.api.LoginUsername(form, []byte(tc.body))
		}
		if got != tc.want {
			t.Errorf("%s: login body %q names %q, want %q", tc.api.Name, tc.body, got, tc.want)
		}
	}
}

func TestValidHostPattern(t *testing.T) {
	for h, want := range map[string]bool{
		"*": true, "*.example.com": true, "api.example.com": true, "localhost": true, "10.0.0.1": true, "::1": true,
		"under_score.example": true, "API.Example.COM": true,
		"": false, "**": false, "*.": false, "a.*.com": false, "api.example.com:8443": false, "[::1]": false,
		"-api.example.com": false, "api..example.com": false, "http://x": false, "a b": false, "x/y": false,
	} {
		if got := validHostPattern(h); got != want {
			t.Errorf("validHostPattern(%q) = %v, want %v", h, got, want)
		}
	}
}

// TestSecretFiles reads the secrets from files, trimmed, every time they are
// asked for: Validate may run more than once (`vigil serve` runs it in
// serveCmd, then in New) and never writes what it read into the Config.
func TestSecretFiles(t *testing.T) {
	path, dir := testfiles.SecretConfig(t, "admin-token-from-a-file\n", "\tread-token-from-a-file \r\n\n", testfiles.FingerprintKey+"\n")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Validate #%d: %v", i+1, err)
		}
		sec, errs := cfg.Secrets()
		if len(errs) > 0 || sec.AdminToken != "admin-token-from-a-file" || sec.AdminReadToken != "read-token-from-a-file" || sec.FingerprintKey != testfiles.FingerprintKey {
			t.Fatalf("after Validate #%d: %q, %q, %q, %v", i+1, sec.AdminToken, sec.AdminReadToken, sec.FingerprintKey, errs)
		}
	}
	if cfg.AdminToken != "" || cfg.AdminReadToken != "" || cfg.FingerprintKey != "" {
		t.Fatalf("a secret read from a file was written into the config: %+v", cfg)
	}
	// The file as it is now (a rotated Secret)...
	if err := os.WriteFile(filepath.Join(dir, "admin-token"), []byte("rotated-admin-token-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	if sec, _ := cfg.Secrets(); cfg.Validate() != nil || sec.AdminToken != "rotated-admin-token-value" {
		t.Fatalf("after rotation: %q, %v", sec.AdminToken, cfg.Validate())
	}
	// ...and nothing once it is gone.
	if err := os.Remove(filepath.Join(dir, "admin-token")); err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if sec, _ := cfg.Secrets(); err == nil || !strings.Contains(err.Error(), "1 problem(s)") || !strings.Contains(err.Error(), "admin_token_file: cannot read") || sec.AdminToken != "" {
		t.Fatalf("after removal: %q, %v", sec.AdminToken, err)
	}
	// A value set inline beside a *_file key is a problem each time, not
	// only the first.
	cfg2, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg2.FingerprintKey = testfiles.FingerprintKey
	for range 2 {
		if err := cfg2.Validate(); err == nil || !strings.Contains(err.Error(), "fingerprint_key_file: set either fingerprint_key or fingerprint_key_file, not both") {
			t.Fatalf("inline and file: %v", err)
		}
	}
}

// TestSecretFileProblemsHideContent: a problem with a secret read from a
// file names the key and the path, never what the file holds.
func TestSecretFileProblemsHideContent(t *testing.T) {
	const short, notHex = "sekrit-short", "REPLACE-WITH-openssl-rand-hex-32-sekrit"
	path, dir := testfiles.SecretConfig(t, short+"\n", short, notHex)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if err == nil {
		t.Fatal("want problems")
	}
	for _, want := range []string{
		`admin_token (from admin_token_file "` + filepath.Join(dir, "admin-token") + `"): must be at least 16 characters`,
		`admin_read_token (from admin_read_token_file "` + filepath.Join(dir, "read-token") + `"): needs admin_token too`,
		`fingerprint_key (from fingerprint_key_file "` + filepath.Join(dir, "fingerprint-key") + `"): must be at least 64 hex digits`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "sekrit") {
		t.Errorf("the error shows a secret:\n%v", err)
	}

	// `vigil config check` reports the same and shows no secret either
	// (TestConfigCheckHidesSecrets in server).

	// A file far larger than a secret is not read whole.
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("a"), maxSecretFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = Default()
	cfg.FingerprintKeyFile = big
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `fingerprint_key_file: "`+big+`" is larger than 64 KiB`) {
		t.Errorf("big file: %v", err)
	}
	// Whitespace only is empty.
	blank := testfiles.Write(t, "blank", " \n\t\n")
	cfg = Default()
	cfg.AdminTokenFile = blank
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `admin_token_file: "`+blank+`" is empty`) {
		t.Errorf("blank file: %v", err)
	}
}

// TestModeOfDiscoveredAndConfiguredAPIs: with defaults.mode left empty (the
// embedded default), a blocked client calling an API discovered from
// traffic gets through with a would_block verdict, while a configured API
// that sets no mode (and one that sets block) refuses it. A defaults.mode
// set in the file applies to both, as it always has.
func TestModeOfDiscoveredAndConfiguredAPIs(t *testing.T) {
	const apis = `apis:
  - {name: orders, hosts: [shop.example.com], base_path: /orders}
  - {name: users, hosts: [shop.example.com], base_path: /users, mode: block}
  - {name: watch, hosts: [shop.example.com], base_path: /watch, mode: detect}
`
	for _, tc := range []struct {
		name, defaults string
		// want is the verdict on orders, users, watch and a discovered API
		// for a blocked IP; decoy, on a decoy API (discovered traffic).
		want  [4]detect.Outcome
		decoy detect.Outcome
	}{
		{"embedded default", "", [4]detect.Outcome{detect.OutcomeDeny, detect.OutcomeDeny, detect.OutcomeWouldBlock, detect.OutcomeWouldBlock}, detect.OutcomeDeny},
		{"defaults.mode block", "defaults: {mode: block}\n", [4]detect.Outcome{detect.OutcomeDeny, detect.OutcomeDeny, detect.OutcomeWouldBlock, detect.OutcomeDeny}, detect.OutcomeDeny},
		{"defaults.mode detect", "defaults: {mode: detect}\n", [4]detect.Outcome{detect.OutcomeWouldBlock, detect.OutcomeDeny, detect.OutcomeWouldBlock, detect.OutcomeWouldBlock}, detect.OutcomeWouldBlock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load(testfiles.Write(t, "vigil.yaml", tc.defaults+apis))
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			cat := cfg.Catalog()
			allow, block := detect.NewLists()
			now := time.Now()
			if err := block.Store(detect.Entry{Kind: detect.KindIP, Value: "198.51.100.7", Reason: "test", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
			enf, err := detect.NewEnforcer(allow, block, 1000)
			if err != nil {
				t.Fatal(err)
			}
			defer enf.Close()
			// A decoy API is a configured trap: a hit refuses unless the
			// operator chose detect for discovered APIs.
			fp, err := detect.NewFingerprinter(make([]byte, 32))
			if err != nil {
				t.Fatal(err)
			}
			trap, err := decoy.New(decoy.Config{DecoyAPIs: []decoy.DecoyAPI{{Name: "legacy", BasePath: "/legacy"}}}, fp,
				decoy.Actions{AttackID: func() string { return "a1" }})
			if err != nil {
				t.Fatal(err)
			}
			enf.SetDecoy(trap.Hook)
			hit := &detect.Request{API: cat.Match("shop.example.com", "/legacy/x"), Host: "shop.example.com", Method: "GET", Path: "/legacy/x", ContentLength: -1}
			hit.Identities[detect.KindIP] = "192.0.2.9"
			if v := enf.Check(hit, now); v.Reason != detect.ReasonDecoy || v.Outcome() != tc.decoy {
				t.Errorf("decoy API hit: %s %s, want decoy %s", v.Reason, v.Outcome(), tc.decoy)
			}
			for i, path := range []string{"/orders/1", "/users/1", "/watch/1", "/catalog/items"} {
				req := &detect.Request{API: cat.Match("shop.example.com", path), Host: "shop.example.com", Method: "GET", Path: path, ContentLength: -1}
				req.Identities[detect.KindIP] = "198.51.100.7"
				v := enf.Check(req, now)
				if got := v.Outcome(); got != tc.want[i] {
					t.Errorf("%s (API %q, discovered %v): verdict %s, want %s", path, req.API.Name, req.API.Discovered, got, tc.want[i])
				}
			}
		})
	}
}

// byteSizeCases feed TestParseByteSize and FuzzConfig's seeds.
var byteSizeCases = []struct {
	in   string
	want int64
	err  string // a substring of the error; empty: valid
}{
	{"0", 0, ""},
	{"1024", 1024, ""},
	{"1B", 1, ""},
	{"512KB", 512000, ""},
	{"512kB", 512000, ""},
	{"512KiB", 512 << 10, ""},
	{"4MiB", 4 << 20, ""},
	{"4mib", 4 << 20, ""},
	{"4 MiB", 4 << 20, ""},
	{"4MB", 4000000, ""},
	{"1GB", 1e9, ""},
	{"1GiB", 1 << 30, ""},
	{"2TiB", 2 << 40, ""},
	{"1.5MiB", 3 << 19, ""},
	{"0.5KB", 500, ""},
	{"8388607TiB", 8388607 << 40, ""},
	{"9223372036854775807", math.MaxInt64, ""},
	{"9223372036854775808", 0, "too large"},
	{"8388608TiB", 0, "too large"},
	{"99999999999999999999999999GB", 0, "too large"},
	{"-1", 0, "must not be negative"},
	{"-4MiB", 0, "must not be negative"},
	{"1.5B", 0, "not a whole number of bytes"},
	{"0.1KiB", 0, "not a whole number of bytes"},
	{"4M", 0, `unknown unit "M"`},
	{"4 MiBs", 0, "unknown unit"},
	{"4EiB", 0, "unknown unit"},
	{"", 0, "is not a byte size"},
	{"lots", 0, "is not a byte size"},
	{"1e6", 0, "is not a byte size"},
	{"0x100", 0, "is not a byte size"},
	{"1.", 0, "is not a byte size"},
	{".5MiB", 0, "is not a byte size"},
	{"4MiB 2", 0, "is not a byte size"},
}

func TestParseByteSize(t *testing.T) {
	for _, tc := range byteSizeCases {
		got, err := ParseByteSize(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseByteSize(%q) = %d, %v; want an error with %q", tc.in, got, err, tc.err)
		}
	}
}

// TestByteSizesInConfig: every byte count of the configuration (every key
// ending in _bytes, and detection.max_memory) takes a unit.
func TestByteSizesInConfig(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "config", "byte_sizes.good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cat := cfg.Catalog()
	orders, _ := cat.Lookup("orders")
	users, _ := cat.Lookup("users")
	if cfg.Defaults.MaxBodyBytes != 4<<20 || cat.Fallback().MaxBodyBytes != 4<<20 || orders.MaxBodyBytes != 512000 ||
		users.MaxBodyBytes != 3<<19 || cfg.GRPC.MaxRecvMsgBytes != 16<<20 || cfg.Detection.MaxMemory != 1<<30 {
		t.Errorf("sizes: defaults %d, orders %d, users %d, grpc %d, max_memory %d", cfg.Defaults.MaxBodyBytes, orders.MaxBodyBytes,
			users.MaxBodyBytes, cfg.GRPC.MaxRecvMsgBytes, cfg.Detection.MaxMemory)
	}
	// Every key ending in _bytes or tagged unit:"bytes", wherever it is,
	// goes through ParseByteSize.
	var keys []string
	var walk func(reflect.Type, string)
	walk = func(t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t.PkgPath() == "time" {
			return
		}
		for name, f := range yamlFields(t) {
			if strings.HasSuffix(name, "_bytes") || f.Tag.Get("unit") == "bytes" {
				keys = append(keys, path+name)
			}
			walk(f.Type, path+name+".")
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	slices.Sort(keys)
	if want := []string{"apis.max_body_bytes", "defaults.max_body_bytes", "detection.max_memory", "grpc.max_recv_msg_bytes"}; !slices.Equal(keys, want) {
		t.Logf("byte count keys: %v", keys)
	}
	for _, key := range keys {
		if strings.HasPrefix(key, "apis.") {
			continue // checked above
		}
		section, name, _ := strings.Cut(key, ".")
		path := testfiles.Write(t, "size.yaml", fmt.Sprintf("%s:\n  %s: 70MiB\n", section, name))
		cfg, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: 70MiB: %v", key, err)
		}
	}
}

// FuzzConfig: decoding and validating any file never panics, and a file
// that validates gives a Config that, written back as YAML and read again,
// validates to the same Config.
func FuzzConfig(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "config", "*.yaml"))
	for _, path := range files {
		if b, err := os.ReadFile(path); err == nil {
			f.Add(b)
		}
	}
	f.Add(DefaultYAML())
	for _, tc := range byteSizeCases {
		f.Add([]byte("defaults: {max_body_bytes: " + tc.in + "}\n"))
	}
	f.Add([]byte("a: &x {b: *x}\n"))
	f.Add([]byte("defaults: &d {mode: block}\napis: [{name: a, base_path: /a, <<: *d}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := Default()
		src, err := decodeConfig(data, cfg)
		if err != nil {
			return
		}
		cfg.src = src
		// Secret files are not fuzzed: a path could name a device that
		// blocks a read.
		cfg.AdminTokenFile, cfg.AdminReadTokenFile, cfg.FingerprintKeyFile = "", "", ""
		if cfg.Validate() != nil {
			return
		}
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("a valid config does not marshal: %v", err)
		}
		again := Default()
		src2, err := decodeConfig(out, again)
		if err != nil {
			t.Fatalf("the marshalled config does not parse: %v\n%s", err, out)
		}
		again.src = src2
		if err := again.Validate(); err != nil {
			t.Fatalf("the marshalled config does not validate: %v\n%s", err, out)
		}
		// Compared as YAML: a list left out and an empty one are the same.
		if out2, err := yaml.Marshal(again); err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed the config (%v):\n%s\nthen\n%s", err, out, out2)
		}
	})
}

// TestInspectionKeys: content inspection is on for configured and
// discovered APIs unless defaults.inspection or apis[].inspection says
// off; apis[].openapi reaches the catalog once its file is readable.
func TestInspectionKeys(t *testing.T) {
	spec := testfiles.Write(t, "shop.yaml", "openapi: 3.1.0\ninfo: {title: shop, version: '1'}\nservers: [{url: /orders}]\npaths:\n  /{id}:\n    get: {parameters: [{name: id, in: path, required: true, schema: {type: integer}}], responses: {\"200\": {description: ok}}}\n")
	for _, tc := range []struct {
		name, yaml string
		// want: orders, users, discovered.
		want [3]bool
	}{
		{"embedded default", "", [3]bool{true, true, true}},
		{"api off", "  - {name: users, base_path: /users, inspection: \"off\"}\n", [3]bool{true, false, true}},
		{"api off unquoted", "  - {name: users, base_path: /users, inspection: off}\n", [3]bool{true, false, true}},
		{"defaults off", "defaults: {inspection: \"off\"}\n", [3]bool{false, true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			users := "  - {name: users, base_path: /users}\n"
			defaults := ""
			switch {
			case strings.HasPrefix(tc.yaml, "  -"):
				users = tc.yaml
			case tc.yaml != "":
				defaults = tc.yaml
				users = "  - {name: users, base_path: /users, inspection: \"on\"}\n"
			}
			cfg, err := Load(testfiles.Write(t, "vigil.yaml", defaults+"apis:\n  - {name: orders, base_path: /orders, openapi: "+spec+"}\n"+users))
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			cat := cfg.Catalog()
			got := [3]bool{cat.Match("h", "/orders/1").Inspection, cat.Match("h", "/users/1").Inspection, cat.Match("h", "/other").Inspection}
			if got != tc.want {
				t.Errorf("inspection of orders, users, discovered = %v, want %v", got, tc.want)
			}
			if p := cat.Match("h", "/orders/1").OpenAPIPath; p != spec {
				t.Errorf("orders' OpenAPIPath = %q, want %q", p, spec)
			}
		})
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"bad switch", "apis:\n  - {name: a, base_path: /a, inspection: maybe}\n", `apis[0].inspection: "maybe": want on or off`},
		{"bad default", "defaults: {inspection: sometimes}\n", `defaults.inspection: "sometimes": want on or off`},
		{"missing openapi", "apis:\n  - {name: a, base_path: /a, openapi: /nonexistent/shop.yaml}\n", `apis[0].openapi: "/nonexistent/shop.yaml" does not exist`},
		{"openapi directory", "apis:\n  - {name: a, base_path: /a, openapi: " + filepath.Dir(spec) + "}\n", `is not a file`},
		{"openapi not a document", "apis:\n  - {name: a, base_path: /a, openapi: " + testfiles.Write(t, "x.yaml", "just: text\n") + "}\n", `apis[0].openapi: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load(testfiles.Write(t, "vigil.yaml", tc.yaml))
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
