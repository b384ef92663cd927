// Package config is Vigil's configuration: the Config and its sections,
// the embedded defaults (default.yaml), strict YAML decoding (unknown keys
// with the nearest known one suggested, byte sizes with units), Validate
// reporting every problem at once with its line, the secrets that may come
// from files, and Runtime, the one derivation of the runtime settings
// (catalog, fingerprint key, detection engine) that serve and replay share.
package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"fmt"
	"os"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the embedded default configuration.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

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
	// Redis shares state between replicas; no addresses: a single node.
	Redis RedisConfig `yaml:"redis"`

	// src is the file the Config was read from, if any: its decode
	// problems and the lines of its keys, for Validate.
	src *configSource
}

// TLSFiles names PEM files; all empty means plain TCP.
type TLSFiles struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

func (t TLSFiles) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" || t.ClientCAFile != "" }

// TLSConfig loads the files into a TLS configuration (TLS 1.2 at least).
func (t TLSFiles) TLSConfig() (*tls.Config, error) {
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
	Workers   int `yaml:"workers"`
	MaxStates int `yaml:"max_states"`
	// MaxMemory is the memory budget of everything that grows with the
	// number of identities and endpoints (see Budget); a byte size.
	MaxMemory  int64 `yaml:"max_memory" unit:"bytes"`
	MaxAttacks int   `yaml:"max_attacks"`
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
	// Inspection is content inspection of discovered APIs and the default
	// of configured ones: "on" (the embedded default) or "off".
	Inspection string `yaml:"inspection"`
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
	// LoginUsernameFields are the form and JSON fields of a login body
	// that name the account tried; unset, detect.DefaultLoginUsernameFields;
	// an empty list reads no login body.
	LoginUsernameFields *[]string `yaml:"login_username_fields"`
	// Detection sets the API's model knobs and user thresholds, as
	// PUT /v1/models/{api} does.
	Detection *behaviour.ModelUpdate `yaml:"detection"`
	// Decoys are paths, relative to the base path, that no real client
	// calls.
	Decoys []string `yaml:"decoys"`
	// Inspection turns content inspection on or off for this API ("on",
	// "off"); unset, defaults.inspection.
	Inspection *string `yaml:"inspection"`
	// OpenAPI is the path of the API's OpenAPI 3.0/3.1 document (YAML or
	// JSON), a positive model of its calls.
	OpenAPI string `yaml:"openapi"`
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
func Default() *Config {
	c := &Config{}
	if err := c.Decode(defaultYAML); err != nil {
		panic("embedded default.yaml: " + err.Error())
	}
	return c
}

// LoadConfig reads a YAML file on top of the embedded defaults. A file that
// cannot be read or parsed as YAML is an error. Problems with its keys and
// values (unknown keys, wrong types, bad byte sizes) are kept in the Config
// and reported by Validate together with every other problem, each with
// its line; New validates, so a Config with problems never runs.
func Load(path string) (*Config, error) {
	c := Default()
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
