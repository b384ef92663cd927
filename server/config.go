package server

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/big"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/decoy"
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultConfigYAML returns the embedded default configuration.
func DefaultConfigYAML() []byte { return bytes.Clone(defaultYAML) }

// Config is Vigil's configuration: embedded defaults, then the YAML file,
// then flags.
type Config struct {
	GRPCAddr   string `yaml:"grpc_addr"`
	AdminAddr  string `yaml:"admin_addr"`
	AdminToken string `yaml:"admin_token"`
	// AdminReadToken opens the admin API's GET routes only.
	AdminReadToken string        `yaml:"admin_read_token"`
	DataDir        string        `yaml:"data_dir"`
	FingerprintKey string        `yaml:"fingerprint_key"`
	TrustedHops    int           `yaml:"trusted_hops"`
	LogLevel       string        `yaml:"log_level"`
	LogFormat      string        `yaml:"log_format"`
	Defaults       APIDefaults   `yaml:"defaults"`
	APIs           []APIConfig   `yaml:"apis"`
	GRPC           GRPCConfig    `yaml:"grpc"`
	Shutdown       Shutdown      `yaml:"shutdown"`
	Pipeline       Pipeline      `yaml:"pipeline"`
	VerdictCache   int64         `yaml:"verdict_cache_size"`
	Discovery      Discovery     `yaml:"discovery"`
	Training       Training      `yaml:"training"`
	BlockTTL       time.Duration `yaml:"block_ttl"`
	// BlockTTLByType overrides block_ttl per attack type.
	BlockTTLByType map[string]time.Duration `yaml:"block_ttl_by_type"`
	Detection      Detection                `yaml:"detection"`
	// DecoyBuiltin adds enticing decoy paths (admin, .env, .git/config, …)
	// to every configured API.
	DecoyBuiltin bool          `yaml:"decoy_builtin"`
	DecoyTTL     time.Duration `yaml:"decoy_ttl"`
	DecoyAPIs    []DecoyAPI    `yaml:"decoy_apis"`
	Retention    Retention     `yaml:"retention"`
	// Notify sends every attack to webhooks.
	Notify NotifyConfig `yaml:"notify"`
	// AdminTLS serves the admin API over TLS.
	AdminTLS TLSFiles `yaml:"admin_tls"`
	// GRPCTLS serves gRPC over TLS; with client_ca_file, Envoy must present
	// a certificate that CA signed (mTLS).
	GRPCTLS TLSFiles `yaml:"grpc_tls"`
	// GRPCInsecure lets gRPC listen off loopback without grpc_tls.client_ca_file,
	// for deployments where something else admits only Envoy (a mesh sidecar
	// with mTLS and an authorization policy). Anyone who reaches an open port
	// can put any client on the block list with one forged Check.
	GRPCInsecure bool `yaml:"grpc_insecure"`
	// AdminTokenFile, AdminReadTokenFile and FingerprintKeyFile name files
	// (a mounted Kubernetes Secret, a Docker secret) that hold admin_token,
	// admin_read_token and fingerprint_key, surrounding whitespace trimmed.
	// They are read when the values are needed (Validate, New, Replay), and
	// never written back into the Config.
	AdminTokenFile     string `yaml:"admin_token_file"`
	AdminReadTokenFile string `yaml:"admin_read_token_file"`
	FingerprintKeyFile string `yaml:"fingerprint_key_file"`

	// src is the file the Config was read from, if any: its decode
	// problems and the lines of its keys, for Validate.
	src *configSource
}

// maxSecretFile bounds a secret file: a token or a key is a line, and a path
// that names something else by mistake (a device, a log) must not be read whole.
const maxSecretFile = 64 << 10

// secrets are the values in effect of the keys that may come from a file.
type secrets struct {
	adminToken, adminReadToken, fingerprintKey string
	// names are what problems with each value are reported under: the key,
	// and the file it came from.
	names [3]string
}

// secrets returns the secrets in effect: each set inline, or read from its
// *_file key (read at every call, so nothing read is kept in the Config).
// The problems name keys and paths, never what a file holds; a value that
// could not be read is empty.
func (c *Config) secrets() (secrets, []error) {
	var out secrets
	var errs []error
	for i, s := range []struct {
		key, fileKey, inline, path string
		into                       *string
	}{
		{"admin_token", "admin_token_file", c.AdminToken, c.AdminTokenFile, &out.adminToken},
		{"admin_read_token", "admin_read_token_file", c.AdminReadToken, c.AdminReadTokenFile, &out.adminReadToken},
		{"fingerprint_key", "fingerprint_key_file", c.FingerprintKey, c.FingerprintKeyFile, &out.fingerprintKey},
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

// TLSFiles names PEM files; all empty means plain TCP.
type TLSFiles struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

func (t TLSFiles) enabled() bool { return t.CertFile != "" || t.KeyFile != "" || t.ClientCAFile != "" }

// tlsConfig loads the files into a TLS configuration (TLS 1.2 at least).
func (t TLSFiles) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load %s and %s: %w", t.CertFile, t.KeyFile, err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", t.ClientCAFile)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// Retention bounds the attack records kept in the data directory.
type Retention struct {
	AttacksMax    int           `yaml:"attacks_max"`
	AttacksMaxAge time.Duration `yaml:"attacks_max_age"`
	// ForensicsIdentities caps the identities with a forensic record.
	ForensicsIdentities int `yaml:"forensics_identities"`
}

// DecoyAPI is a whole fake API: every path under it is a decoy.
type DecoyAPI struct {
	Name     string         `yaml:"name"`
	Hosts    []string       `yaml:"hosts"`
	BasePath string         `yaml:"base_path"`
	Response *DecoyResponse `yaml:"response"`
	Delay    time.Duration  `yaml:"delay"`
}

// DecoyResponse is a fixed answer of a decoy API.
type DecoyResponse struct {
	Status  int               `yaml:"status"`
	Headers map[string]string `yaml:"headers"`
	Body    string            `yaml:"body"`
}

// Training says when an API's model is trained: after Duration of traffic
// and both minimum counts, whichever comes last; then it relearns on the
// interval, leaving out identities flagged as attackers.
type Training struct {
	Duration        time.Duration `yaml:"duration"`
	MinRequests     int64         `yaml:"min_requests"`
	MinIdentities   int64         `yaml:"min_identities"`
	RelearnInterval time.Duration `yaml:"relearn_interval"`
}

// Detection sizes the detection engine.
type Detection struct {
	Workers    int `yaml:"workers"`
	MaxStates  int `yaml:"max_states"`
	MaxAttacks int `yaml:"max_attacks"`
	// BlockAfter single-call detections (oversized_payload) within
	// BlockWindow block an identity; fewer are only recorded.
	BlockAfter  int           `yaml:"block_after"`
	BlockWindow time.Duration `yaml:"block_window"`
}

// APIDefaults are the settings of discovered APIs and the defaults of
// configured ones.
type APIDefaults struct {
	// Mode, when set, is the mode of discovered APIs and of configured APIs
	// that set none. Empty (the embedded default): configured APIs block,
	// discovered APIs detect (see modeOf).
	Mode            string                 `yaml:"mode"`
	MaxBodyBytes    int64                  `yaml:"max_body_bytes"`
	MaxJSONElements int                    `yaml:"max_json_elements"`
	Identities      detect.IdentitySources `yaml:"identities"`
}

// APIConfig is one configured API. Unset fields take the defaults.
type APIConfig struct {
	Name            string           `yaml:"name"`
	Hosts           []string         `yaml:"hosts"`
	BasePath        string           `yaml:"base_path"`
	Mode            *string          `yaml:"mode"`
	MaxBodyBytes    *int64           `yaml:"max_body_bytes"`
	MaxJSONElements *int             `yaml:"max_json_elements"`
	Identities      *IdentityOverlay `yaml:"identities"`
	LoginPaths      []string         `yaml:"login_paths"`
	// Detection sets the API's model knobs and user thresholds, as
	// PUT /v1/models/{api} does.
	Detection *behaviour.ModelUpdate `yaml:"detection"`
	// Decoys are paths, relative to the base path, that no real client
	// calls.
	Decoys []string `yaml:"decoys"`
}

// IdentityOverlay overrides some identity sources of the defaults.
type IdentityOverlay struct {
	TokenHeader    *string `yaml:"token_header"`
	APIKeyHeader   *string `yaml:"api_key_header"`
	APIKeyQuery    *string `yaml:"api_key_query"`
	Cookie         *string `yaml:"cookie"`
	UsernameHeader *string `yaml:"username_header"`
	UsernameClaim  *string `yaml:"username_claim"`
}

// GRPCConfig sets the gRPC server's options.
type GRPCConfig struct {
	MaxRecvMsgBytes      int           `yaml:"max_recv_msg_bytes"`
	MaxConcurrentStreams uint32        `yaml:"max_concurrent_streams"`
	KeepaliveTime        time.Duration `yaml:"keepalive_time"`
	KeepaliveTimeout     time.Duration `yaml:"keepalive_timeout"`
	KeepaliveMinTime     time.Duration `yaml:"keepalive_min_time"`

	// MaxStreams bounds the streams open across all connections; more are
	// refused with RESOURCE_EXHAUSTED.
	MaxStreams int64 `yaml:"max_streams"`
}

// Shutdown sets the graceful shutdown.
type Shutdown struct {
	DrainDelay time.Duration `yaml:"drain_delay"`
	Timeout    time.Duration `yaml:"timeout"`
}

// Pipeline sets the hand-off to detection.
type Pipeline struct {
	QueueSize  int           `yaml:"queue_size"`
	JoinWindow time.Duration `yaml:"join_window"`
}

// Discovery bounds the API inventory.
type Discovery struct {
	MaxAPIs            int `yaml:"max_apis"`
	MaxEndpointsPerAPI int `yaml:"max_endpoints_per_api"`
}

// DefaultConfig returns the embedded defaults.
func DefaultConfig() *Config {
	c := &Config{}
	if err := decodeStrict(defaultYAML, c); err != nil {
		panic("embedded default.yaml: " + err.Error())
	}
	return c
}

// LoadConfig reads a YAML file on top of the embedded defaults. A file that
// cannot be read or parsed as YAML is an error. Problems with its keys and
// values (unknown keys, wrong types, bad byte sizes) are kept in the Config
// and reported by Validate together with every other problem, each with
// its line; New validates, so a Config with problems never runs.
func LoadConfig(path string) (*Config, error) {
	c := DefaultConfig()
	if path == "" {
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	src, err := decodeConfig(data, c)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	src.path = path
	c.src = src
	return c, nil
}

// configSource is what Validate needs to know of the file a Config was
// read from: the problems found while decoding it, and the line of every
// key, so that a validation problem names its line too.
type configSource struct {
	path     string
	problems []configProblem
	lines    map[string]int // dotted key path → line
}

// configProblem is one problem of a configuration; line 0 when the value
// does not come from the file (a default, a flag, a missing key).
type configProblem struct {
	line int
	msg  string
}

// decodeStrict decodes one YAML document on top of into; every problem is
// an error. The embedded files (defaults, the demo's) are read with it.
func decodeStrict(data []byte, into *Config) error {
	src, err := decodeConfig(data, into)
	if err != nil {
		return err
	}
	return src.report(nil)
}

// decodeConfig decodes one YAML document on top of into. Syntax errors and
// extra documents are errors; unknown keys (with the nearest known key
// suggested), values of the wrong type and bad byte sizes are problems of
// the returned source, each naming its line and the dotted path of its key.
func decodeConfig(data []byte, into *Config) (*configSource, error) {
	src := &configSource{lines: map[string]int{}}
	var doc yaml.Node
	nodes := yaml.NewDecoder(bytes.NewReader(data))
	if err := nodes.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return src, nil // an empty file keeps the defaults
		}
		return nil, err
	}
	var extra yaml.Node
	switch err := nodes.Decode(&extra); {
	case err == nil:
		return nil, errors.New("more than one YAML document; a config file holds one")
	case !errors.Is(err, io.EOF):
		return nil, err
	}
	keys := yamlKeys(&doc)
	for _, k := range keys {
		if _, seen := src.lines[k.path]; !seen {
			src.lines[k.path] = k.line
		}
	}
	if len(doc.Content) == 1 {
		checkKeys(doc.Content[0], reflect.TypeOf(into).Elem(), "", src)
	}
	// yaml.Node.Decode knows no KnownFields: checkKeys found the unknown
	// keys above.
	if err := doc.Decode(into); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, err
		}
		for _, e := range te.Errors {
			src.add(explainYAMLError(e, keys))
		}
	}
	return src, nil
}

var problemLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// add records a problem, taking its line from a "line N: " prefix.
func (s *configSource) add(msg string) {
	p := configProblem{msg: msg}
	if m := problemLineRE.FindStringSubmatch(msg); m != nil {
		p.line, _ = strconv.Atoi(m[1])
		p.msg = m[2]
	}
	s.problems = append(s.problems, p)
}

// checkKeys walks a mapping of the document along the Go type it decodes
// into: a key the type does not have is a problem (with the nearest known
// key suggested), and a byte count (a key ending in _bytes) may carry a
// unit, rewritten here into the plain integer the decoder reads. Aliases
// are not followed (the anchored node is checked where it stands).
func checkKeys(n *yaml.Node, t reflect.Type, path string, src *configSource) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	join := func(key string) string {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		kept := n.Content[:0:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, known := fields[k.Value]
			switch {
			case k.Value == "<<" && k.Kind == yaml.ScalarNode: // a merge key
			case !known:
				msg := fmt.Sprintf("line %d: unknown key %q", k.Line, join(k.Value))
				if near := nearestKey(k.Value, fields); near != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", near)
				}
				src.add(msg)
			case strings.HasSuffix(k.Value, "_bytes") && isInteger(f.Type) && v.Kind == yaml.ScalarNode && v.ShortTag() != "!!null":
				size, err := ParseByteSize(v.Value)
				if err != nil {
					src.add(fmt.Sprintf("line %d: %s: %v", v.Line, join(k.Value), err))
					continue // the key keeps its default
				}
				v.Value, v.Tag, v.Style = strconv.FormatInt(size, 10), "!!int", 0
			default:
				checkKeys(v, f.Type, join(k.Value), src)
			}
			kept = append(kept, k, v)
		}
		n.Content = kept
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && n.Kind == yaml.SequenceNode:
		for i, v := range n.Content {
			checkKeys(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i), src)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKeys(n.Content[i+1], t.Elem(), join(n.Content[i].Value), src)
		}
	}
}

// yamlFields maps the YAML keys of a struct type to its fields.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}

func isInteger(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// nearestKey returns the known key closest to key in edit distance, when it
// is close enough to be the one meant (a typo, not another word), else the
// one known key that key begins (a key cut short), else "".
func nearestKey(key string, known map[string]reflect.StructField) string {
	best, bestDist := "", 0
	for k := range known {
		d := editDistance(strings.ToLower(key), k)
		if best == "" || d < bestDist || d == bestDist && k < best {
			best, bestDist = k, d
		}
	}
	if best != "" && bestDist <= max(1, min(len(key), len(best))/3) {
		return best
	}
	// A key cut short: drain for drain_delay.
	var prefixed []string
	for k := range known {
		if strings.HasPrefix(k, strings.ToLower(key)+"_") {
			prefixed = append(prefixed, k)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// byteUnits are the units of a byte size, lower-cased: decimal (kB = 1000)
// and binary (KiB = 1024), as IEC 80000-13 has them.
var byteUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

var byteSizeRE = regexp.MustCompile(`^([0-9]+)(?:\.([0-9]+))?\s*([A-Za-z]*)$`)

// ParseByteSize parses a byte count: a whole number of bytes ("1048576"),
// or a number with a unit, case-insensitive: B, kB, MB, GB, TB (powers of
// 1000) or KiB, MiB, GiB, TiB (powers of 1024); a fraction is accepted when
// it comes to whole bytes ("1.5MiB", not "1.5B"). Negative sizes, sizes
// past 2^63-1 bytes and anything else are errors.
func ParseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("must not be negative, got %q", s)
	}
	m := byteSizeRE.FindStringSubmatch(t)
	if m == nil {
		return 0, fmt.Errorf("%q is not a byte size such as 1048576, \"512KiB\" or \"4MB\"", s)
	}
	unit, ok := byteUnits[strings.ToLower(m[3])]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (want B, kB, MB, GB, TB for powers of 1000, or KiB, MiB, GiB, TiB for powers of 1024)", s, m[3])
	}
	// digits/scale × unit, exactly.
	digits, ok := new(big.Int).SetString(m[1]+m[2], 10)
	if !ok {
		return 0, fmt.Errorf("%q is not a byte size", s)
	}
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(m[2]))), nil)
	n, rem := new(big.Int).QuoRem(digits.Mul(digits, big.NewInt(unit)), scale, new(big.Int))
	switch {
	case rem.Sign() != 0:
		return 0, fmt.Errorf("%q is not a whole number of bytes", s)
	case !n.IsInt64():
		return 0, fmt.Errorf("%q is too large (at most %d bytes)", s, int64(math.MaxInt64))
	}
	return n.Int64(), nil
}

// yamlKey is one key of a YAML document (or one item of a sequence) with the
// dotted path that leads to it.
type yamlKey struct {
	line      int    // of the key, or of the sequence item
	valueLine int    // of the value
	name      string // the key itself; empty for sequence items
	path      string // e.g. apis[0].identities.token_header
	scalar    string // the value when it is a scalar
	isScalar  bool
}

func yamlKeys(doc *yaml.Node) []yamlKey {
	var keys []yamlKey
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				keys = append(keys, yamlKey{line: k.Line, valueLine: v.Line, name: k.Value, path: p, scalar: v.Value, isScalar: v.Kind == yaml.ScalarNode})
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, v := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				keys = append(keys, yamlKey{line: v.Line, valueLine: v.Line, path: p, scalar: v.Value, isScalar: v.Kind == yaml.ScalarNode})
				walk(v, p)
			}
		}
	}
	walk(doc, "")
	return keys
}

var (
	yamlLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlTypeRE = regexp.MustCompile("^cannot unmarshal !!\\w+(?: `(.*)`)? into (.+)$")
)

// explainYAMLError rewrites one of yaml.v3's decode errors so that it names
// the key's path instead of a Go type.
func explainYAMLError(msg string, keys []yamlKey) string {
	m := yamlLineRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	line, _ := strconv.Atoi(m[1])
	rest := m[2]
	path := ""
	if t := yamlTypeRE.FindStringSubmatch(rest); t != nil {
		// yaml.v3 quotes scalars, shortened to 7 bytes and "...", and
		// names only the tag of sequences and mappings.
		value, scalar := strings.TrimSuffix(t[1], "..."), t[1] != ""
		var match []string
		for _, k := range keys {
			if k.valueLine == line && k.isScalar == scalar && strings.HasPrefix(k.scalar, value) {
				match = append(match, k.path)
			}
		}
		if len(match) == 1 {
			path = match[0] + ": "
		}
		if scalar && t[2] == "time.Duration" {
			rest = fmt.Sprintf("%q is not a duration such as \"500ms\", \"5s\" or \"1m30s\"", t[1])
		}
	}
	return fmt.Sprintf("line %d: %s%s", line, path, rest)
}

var apiNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// Validate checks the whole configuration and reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	checkAddr := func(field, addr string) bool {
		_, port, err := net.SplitHostPort(addr)
		if err != nil || port == "" {
			bad(field, "%q is not host:port", addr)
			return false
		}
		if _, err := net.LookupPort("tcp", port); err != nil {
			bad(field, "%q: bad port %q", addr, port)
			return false
		}
		return true
	}
	grpcOK, adminOK := checkAddr("grpc_addr", c.GRPCAddr), checkAddr("admin_addr", c.AdminAddr)
	if grpcOK && adminOK && c.GRPCAddr == c.AdminAddr && !strings.HasSuffix(c.GRPCAddr, ":0") {
		bad("admin_addr", "%q is also grpc_addr", c.AdminAddr)
	}
	if grpcOK && c.grpcOpen() && !c.GRPCInsecure {
		bad("grpc_tls.client_ca_file", "required when grpc_addr (%s) is not a loopback address: "+
			"without it anyone who reaches the port can put any client on the block list; "+
			"authenticate Envoy with mTLS (grpc_tls cert_file, key_file, client_ca_file), "+
			"or set grpc_insecure: true if something else admits only Envoy (a mesh sidecar, a NetworkPolicy)", c.GRPCAddr)
	}
	// A secret read from a file is checked like one set inline; its problems
	// name the file. A file that could not be read is reported once, not
	// again as a missing value.
	sec, secErrs := c.secrets()
	errs = append(errs, secErrs...)
	hasAdminToken := c.AdminToken != "" || c.AdminTokenFile != ""
	if adminOK && !hasAdminToken && !isLoopbackAddr(c.AdminAddr) {
		bad("admin_token", "required when admin_addr (%s) is not a loopback address", c.AdminAddr)
	}
	if sec.adminReadToken != "" && (!hasAdminToken || len(sec.adminReadToken) < 16 || sec.adminReadToken == sec.adminToken) {
		bad(sec.names[1], "needs admin_token too, at least 16 characters, and must differ from admin_token")
	}
	if sec.adminToken != "" && len(sec.adminToken) < 16 {
		bad(sec.names[0], "must be at least 16 characters")
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if sec.fingerprintKey != "" {
		if k, err := hex.DecodeString(sec.fingerprintKey); err != nil || len(k) < 32 {
			bad(sec.names[2], "must be at least 64 hex digits (32 bytes)")
		}
	}
	if c.TrustedHops < 0 || c.TrustedHops > 16 {
		bad("trusted_hops", "must be between 0 and 16, got %d", c.TrustedHops)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "unknown level %q (want debug, info, warn or error)", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "console":
	default:
		bad("log_format", "unknown format %q (want json or console)", c.LogFormat)
	}
	errs = append(errs, validateAPIFields("defaults", c.Defaults.Mode, c.Defaults.MaxBodyBytes, c.Defaults.MaxJSONElements, c.Defaults.Identities)...)
	names := map[string]int{}
	routes := map[string]int{}
	for i, a := range c.APIs {
		field := fmt.Sprintf("apis[%d]", i)
		switch {
		case a.Name == "":
			bad(field+".name", "must not be empty")
		case !apiNameRE.MatchString(a.Name):
			bad(field+".name", "%q: use letters, digits, '.', '_' and '-' (at most 64)", a.Name)
		default:
			if j, dup := names[a.Name]; dup {
				bad(field+".name", "%q is also the name of apis[%d]", a.Name, j)
			}
			names[a.Name] = i
		}
		if a.BasePath == "" || a.BasePath[0] != '/' {
			bad(field+".base_path", "%q must start with '/'", a.BasePath)
		} else if strings.ContainsAny(a.BasePath, "?#* ") {
			bad(field+".base_path", "%q must be a plain path", a.BasePath)
		}
		for j, h := range a.Hosts {
			if !validHostPattern(h) {
				bad(fmt.Sprintf("%s.hosts[%d]", field, j), "%q is not a host name or IP address (without port), \"*\" or \"*.domain\"", h)
			}
		}
		hosts := a.Hosts
		if len(hosts) == 0 {
			hosts = []string{"*"}
		}
		for _, h := range hosts {
			key := strings.ToLower(h) + " " + normalizeBasePath(a.BasePath)
			if j, dup := routes[key]; dup {
				bad(field, "host %q and base_path %q are also those of apis[%d]", h, a.BasePath, j)
			}
			routes[key] = i
		}
		errs = append(errs, validateAPIOverrides(field, a)...)
	}
	if c.GRPC.MaxRecvMsgBytes < 64<<10 {
		bad("grpc.max_recv_msg_bytes", "must be at least 65536")
	}
	if c.GRPC.MaxConcurrentStreams == 0 {
		bad("grpc.max_concurrent_streams", "must be positive")
	}
	if c.GRPC.MaxStreams < 1 {
		bad("grpc.max_streams", "must be positive")
	}
	for _, d := range []struct {
		field string
		v     time.Duration
		zero  bool
	}{
		{"grpc.keepalive_time", c.GRPC.KeepaliveTime, false},
		{"grpc.keepalive_timeout", c.GRPC.KeepaliveTimeout, false},
		{"grpc.keepalive_min_time", c.GRPC.KeepaliveMinTime, false},
		{"shutdown.drain_delay", c.Shutdown.DrainDelay, true},
		{"shutdown.timeout", c.Shutdown.Timeout, false},
		{"pipeline.join_window", c.Pipeline.JoinWindow, false},
		{"detection.block_window", c.Detection.BlockWindow, false},
	} {
		switch {
		case d.v < 0 && d.zero:
			bad(d.field, "must not be negative, got %s", d.v)
		case d.v < 0 || (d.v == 0 && !d.zero):
			bad(d.field, "must be a positive duration, got %s", d.v)
		}
	}
	if c.Pipeline.QueueSize < 1 {
		bad("pipeline.queue_size", "must be positive")
	}
	if c.VerdictCache < 0 {
		bad("verdict_cache_size", "must not be negative")
	}
	if c.Discovery.MaxAPIs < 1 {
		bad("discovery.max_apis", "must be positive")
	}
	if c.Discovery.MaxEndpointsPerAPI < 1 {
		bad("discovery.max_endpoints_per_api", "must be positive")
	}
	if c.Training.Duration < 0 {
		bad("training.duration", "must not be negative")
	}
	if c.Training.MinRequests < 0 {
		bad("training.min_requests", "must not be negative")
	}
	if c.Training.MinIdentities < 0 {
		bad("training.min_identities", "must not be negative")
	}
	if c.Training.RelearnInterval <= 0 {
		bad("training.relearn_interval", "must be a positive duration")
	}
	if c.BlockTTL <= 0 {
		bad("block_ttl", "must be a positive duration")
	}
	for typ, d := range c.BlockTTLByType {
		if !detect.KnownAttackType(detect.AttackType(typ)) {
			bad("block_ttl_by_type."+typ, "unknown attack type")
		} else if d <= 0 {
			bad("block_ttl_by_type."+typ, "must be a positive duration")
		}
	}
	if c.Detection.Workers < 1 || c.Detection.Workers > 64 {
		bad("detection.workers", "must be between 1 and 64")
	}
	if c.Detection.MaxStates < 1000 {
		bad("detection.max_states", "must be at least 1000")
	}
	if c.Detection.MaxAttacks < 1 {
		bad("detection.max_attacks", "must be positive")
	}
	if c.Detection.BlockAfter < 1 || c.Detection.BlockAfter > 100 {
		bad("detection.block_after", "must be between 1 and 100")
	}
	errs = append(errs, c.Notify.Validate()...)
	for name, t := range map[string]TLSFiles{"admin_tls": c.AdminTLS, "grpc_tls": c.GRPCTLS} {
		if t.enabled() && (t.CertFile == "" || t.KeyFile == "") {
			bad(name, "needs both cert_file and key_file")
		}
	}
	if c.AdminTLS.ClientCAFile != "" {
		bad("admin_tls.client_ca_file", "is not supported: the admin API authenticates with bearer tokens")
	}
	if c.Retention.ForensicsIdentities < 1 {
		bad("retention.forensics_identities", "must be positive")
	}
	if c.Retention.AttacksMax < 1 {
		bad("retention.attacks_max", "must be positive")
	}
	if c.Retention.AttacksMaxAge < 0 {
		bad("retention.attacks_max_age", "must not be negative (0: no age limit)")
	}
	if c.DecoyTTL <= 0 {
		bad("decoy_ttl", "must be a positive duration")
	}
	for i, d := range c.DecoyAPIs {
		f := fmt.Sprintf("decoy_apis[%d]", i)
		if !apiNameRE.MatchString(d.Name) {
			bad(f+".name", "%q: use letters, digits, '.', '_' and '-' (at most 64)", d.Name)
		}
		if d.BasePath == "" || d.BasePath[0] != '/' || strings.ContainsAny(d.BasePath, "?#* ") {
			bad(f+".base_path", "%q must be a path starting with '/'", d.BasePath)
		}
		for j, h := range d.Hosts {
			if !validHostPattern(h) {
				bad(fmt.Sprintf("%s.hosts[%d]", f, j), "%q is not a host name, \"*\" or \"*.domain\"", h)
			}
		}
		if r := d.Response; r != nil {
			if r.Status < 100 || r.Status > 599 {
				bad(f+".response.status", "%d is not an HTTP status", r.Status)
			}
			for k := range r.Headers {
				if !headerNameRE.MatchString(k) {
					bad(f+".response.headers", "%q is not a header name", k)
				}
			}
			if len(r.Body) > 1<<20 {
				bad(f+".response.body", "larger than 1 MiB")
			}
		}
		if d.Delay < 0 || d.Delay > 10*time.Second {
			bad(f+".delay", "must be between 0s and 10s (keep it under Envoy's message_timeout)")
		}
	}
	for i, a := range c.APIs {
		// The engine's own login matcher says which paths are logins.
		api := &detect.API{BasePath: normalizeBasePath(a.BasePath), LoginPaths: a.LoginPaths}
		for j, p := range a.Decoys {
			switch full := decoy.FullPath(api.BasePath, p); {
			case p == "" || strings.ContainsAny(p, "?#* "):
				bad(fmt.Sprintf("apis[%d].decoys[%d]", i, j), "%q must be a path relative to the base path", p)
			case api.MayBeLoginPath(full):
				bad(fmt.Sprintf("apis[%d].decoys[%d]", i, j), "%q is a login path (%s): every user who logs in would be blocked", p, full)
			}
		}
		if a.Detection != nil {
			if err := a.Detection.Validate(); err != nil {
				bad(fmt.Sprintf("apis[%d].detection", i), "%v", err)
			}
		}
		for j, p := range a.LoginPaths {
			if p == "" || p[0] != '/' || strings.ContainsAny(p, "?# ") {
				bad(fmt.Sprintf("apis[%d].login_paths[%d]", i, j), "%q must be a path starting with '/'", p)
			}
		}
	}
	return c.src.report(errs)
}

var problemKeyRE = regexp.MustCompile(`^([^ :]+)(?: \(from ([a-z_]+) )?`)

// report returns every problem at once, decode problems and validation
// problems errs, in the order of their lines (those without a line, whose
// values do not come from the file, last); nil when there is none. Each
// validation problem starts with the dotted path of its key, which gives
// its line: that of the key, else that of the closest enclosing key that
// the file has.
func (s *configSource) report(errs []error) error {
	var problems []configProblem
	if s != nil {
		problems = append(problems, s.problems...)
	}
	for _, e := range errs {
		p := configProblem{msg: e.Error()}
		if s != nil {
			if m := problemKeyRE.FindStringSubmatch(p.msg); m != nil {
				key := m[1]
				if m[2] != "" {
					key = m[2] // a secret read from a file: the line of its *_file key
				}
				p.line = s.lineOf(key)
			}
		}
		problems = append(problems, p)
	}
	if len(problems) == 0 {
		return nil
	}
	slices.SortStableFunc(problems, func(a, b configProblem) int {
		switch {
		case a.line == b.line:
			return 0
		case a.line == 0:
			return 1
		case b.line == 0:
			return -1
		}
		return a.line - b.line
	})
	var b strings.Builder
	if s != nil && s.path != "" {
		fmt.Fprintf(&b, "config %s: ", s.path)
	}
	fmt.Fprintf(&b, "invalid configuration, %d problem(s):", len(problems))
	for _, p := range problems {
		b.WriteString("\n  - ")
		if p.line > 0 {
			fmt.Fprintf(&b, "line %d: ", p.line)
		}
		b.WriteString(p.msg)
	}
	return errors.New(b.String())
}

// lineOf returns the line of a dotted key path, or of the closest enclosing
// key the file has, or 0.
func (s *configSource) lineOf(key string) int {
	key = strings.TrimSuffix(key, ":")
	for key != "" {
		if line, ok := s.lines[key]; ok {
			return line
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
	return 0
}

// validateAPIFields checks the defaults' API settings.
// An empty mode is the embedded default (see modeOf).
func validateAPIFields(field, mode string, maxBody int64, maxElems int, ids detect.IdentitySources) []error {
	o := IdentityOverlay{
		TokenHeader: &ids.TokenHeader, APIKeyHeader: &ids.APIKeyHeader, APIKeyQuery: &ids.APIKeyQuery,
		Cookie: &ids.Cookie, UsernameHeader: &ids.UsernameHeader, UsernameClaim: &ids.UsernameClaim,
	}
	a := APIConfig{MaxBodyBytes: &maxBody, MaxJSONElements: &maxElems, Identities: &o}
	if mode != "" {
		a.Mode = &mode
	}
	return validateAPIOverrides(field, a)
}

// validateAPIOverrides checks the settings an API sets itself. Those it
// inherits were checked with the defaults: a bad default is reported once,
// not once per API.
func validateAPIOverrides(field string, a APIConfig) []error {
	var errs []error
	if a.Mode != nil {
		if _, err := detect.ParseMode(*a.Mode); err != nil {
			errs = append(errs, fmt.Errorf("%s.mode: %w", field, err))
		}
	}
	if a.MaxBodyBytes != nil && *a.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("%s.max_body_bytes: must not be negative", field))
	}
	if a.MaxJSONElements != nil && *a.MaxJSONElements < 0 {
		errs = append(errs, fmt.Errorf("%s.max_json_elements: must not be negative", field))
	}
	ids := a.Identities
	if ids == nil {
		return errs
	}
	for _, h := range []struct {
		name string
		v    *string
	}{
		{"token_header", ids.TokenHeader}, {"api_key_header", ids.APIKeyHeader}, {"username_header", ids.UsernameHeader},
	} {
		if h.v != nil && *h.v != "" && !headerNameRE.MatchString(*h.v) {
			errs = append(errs, fmt.Errorf("%s.identities.%s: %q is not a header name", field, h.name, *h.v))
		}
	}
	if ids.Cookie != nil && *ids.Cookie != "" && !headerNameRE.MatchString(*ids.Cookie) {
		errs = append(errs, fmt.Errorf("%s.identities.cookie: %q is not a cookie name", field, *ids.Cookie))
	}
	if ids.APIKeyQuery != nil && *ids.APIKeyQuery != "" && strings.ContainsAny(*ids.APIKeyQuery, "&=?# ") {
		errs = append(errs, fmt.Errorf("%s.identities.api_key_query: %q is not a query parameter name", field, *ids.APIKeyQuery))
	}
	return errs
}

type resolvedAPI struct {
	mode     string
	maxBody  int64
	maxElems int
	ids      detect.IdentitySources
}

// Modes of APIs when defaults.mode is empty: a configured API blocks (its
// operator chose to protect it), an API discovered from traffic only
// detects (nobody has looked at it yet).
const (
	defaultConfiguredMode = "block"
	defaultDiscoveredMode = "detect"
)

// modeOf is the mode of discovered APIs, or the default mode of configured
// ones: defaults.mode when set (it then applies to both, as it always has),
// else defaultDiscoveredMode or defaultConfiguredMode.
func (c *Config) modeOf(discovered bool) string {
	switch {
	case c.Defaults.Mode != "":
		return c.Defaults.Mode
	case discovered:
		return defaultDiscoveredMode
	}
	return defaultConfiguredMode
}

// resolveAPI applies the defaults to one configured API.
func (c *Config) resolveAPI(a APIConfig) resolvedAPI {
	r := resolvedAPI{mode: c.modeOf(false), maxBody: c.Defaults.MaxBodyBytes, maxElems: c.Defaults.MaxJSONElements, ids: c.Defaults.Identities}
	if a.Mode != nil {
		r.mode = *a.Mode
	}
	if a.MaxBodyBytes != nil {
		r.maxBody = *a.MaxBodyBytes
	}
	if a.MaxJSONElements != nil {
		r.maxElems = *a.MaxJSONElements
	}
	if o := a.Identities; o != nil {
		set := func(dst *string, src *string) {
			if src != nil {
				*dst = *src
			}
		}
		set(&r.ids.TokenHeader, o.TokenHeader)
		set(&r.ids.APIKeyHeader, o.APIKeyHeader)
		set(&r.ids.APIKeyQuery, o.APIKeyQuery)
		set(&r.ids.Cookie, o.Cookie)
		set(&r.ids.UsernameHeader, o.UsernameHeader)
		set(&r.ids.UsernameClaim, o.UsernameClaim)
	}
	return r
}

// Catalog builds the API catalog of a validated configuration.
func (c *Config) Catalog() *detect.Catalog {
	apis := make([]*detect.API, 0, len(c.APIs))
	for _, a := range c.APIs {
		r := c.resolveAPI(a)
		mode, _ := detect.ParseMode(r.mode)
		hosts := make([]string, 0, len(a.Hosts))
		for _, h := range a.Hosts {
			hosts = append(hosts, strings.ToLower(h))
		}
		apis = append(apis, &detect.API{
			Name: a.Name, Hosts: hosts, BasePath: normalizeBasePath(a.BasePath), Mode: mode,
			MaxBodyBytes: r.maxBody, MaxJSONElements: r.maxElems, Identities: r.ids.WithDefaults(),
			LoginPaths: a.LoginPaths,
		})
	}
	mode, _ := detect.ParseMode(c.modeOf(true))
	fallback := &detect.API{
		Name: "", BasePath: "/", Mode: mode, MaxBodyBytes: c.Defaults.MaxBodyBytes,
		MaxJSONElements: c.Defaults.MaxJSONElements, Identities: c.Defaults.Identities.WithDefaults(),
		// Discovered APIs detect by default, but decoy APIs and honeytokens
		// are configured traps: they refuse unless the operator chose detect.
		DecoysBlock: c.Defaults.Mode == "",
	}
	return detect.NewCatalog(apis, fallback)
}

func normalizeBasePath(p string) string {
	for len(p) > 1 && strings.HasSuffix(p, "/") {
		p = p[:len(p)-1]
	}
	if p == "" {
		return "/"
	}
	return p
}

var hostLabelRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$`)

// validHostPattern accepts "*", "*.domain", a host name or an IP address.
// Requests are matched on their host without the port, so a pattern with a
// port would never match.
func validHostPattern(h string) bool {
	if h == "*" {
		return true
	}
	if net.ParseIP(h) != nil {
		return true
	}
	name := strings.TrimPrefix(h, "*.")
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if !hostLabelRE.MatchString(label) {
			return false
		}
	}
	return true
}

// grpcOpen reports whether gRPC listens off loopback without requiring a
// client certificate: every caller that reaches the port is served.
func (c *Config) grpcOpen() bool {
	return !isLoopbackAddr(c.GRPCAddr) && c.GRPCTLS.ClientCAFile == ""
}

func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// typeTTLs converts block_ttl_by_type for the engine.
func (c *Config) typeTTLs() map[detect.AttackType]time.Duration {
	out := make(map[detect.AttackType]time.Duration, len(c.BlockTTLByType))
	for t, d := range c.BlockTTLByType {
		out[detect.AttackType(t)] = d
	}
	return out
}
