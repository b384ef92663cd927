package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vigil-project/vigil/decoy"
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/spec"
)

// minMaxMemory is the smallest detection.max_memory: below it the shares
// hold too few states for detection to work.
const minMaxMemory = 16 << 20

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
	if grpcOK && c.GRPCOpen() && !c.GRPCInsecure {
		bad("grpc_tls.client_ca_file", "required when grpc_addr (%s) is not a loopback address: "+
			"without it anyone who reaches the port can put any client on the block list; "+
			"authenticate Envoy with mTLS (grpc_tls cert_file, key_file, client_ca_file), "+
			"or set grpc_insecure: true if something else admits only Envoy (a mesh sidecar, a NetworkPolicy)", c.GRPCAddr)
	}
	// A secret read from a file is checked like one set inline; its problems
	// name the file. A file that could not be read is reported once, not
	// again as a missing value.
	sec, secErrs := c.Secrets()
	errs = append(errs, secErrs...)
	hasAdminToken := c.AdminToken != "" || c.AdminTokenFile != ""
	if adminOK && !hasAdminToken && !isLoopbackAddr(c.AdminAddr) {
		bad("admin_token", "required when admin_addr (%s) is not a loopback address", c.AdminAddr)
	}
	if sec.AdminReadToken != "" && (!hasAdminToken || len(sec.AdminReadToken) < 16 || sec.AdminReadToken == sec.AdminToken) {
		bad(sec.names[1], "needs admin_token too, at least 16 characters, and must differ from admin_token")
	}
	if sec.AdminToken != "" && len(sec.AdminToken) < 16 {
		bad(sec.names[0], "must be at least 16 characters")
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if sec.FingerprintKey != "" {
		if k, err := hex.DecodeString(sec.FingerprintKey); err != nil || len(k) < 32 {
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
	if !validSwitch(c.Defaults.Inspection) {
		bad("defaults.inspection", "%q: want on or off", c.Defaults.Inspection)
	}
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
			key := strings.ToLower(h) + " " + NormalizeBasePath(a.BasePath)
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
	if c.Detection.MaxMemory < minMaxMemory {
		bad("detection.max_memory", "must be at least 16MiB (16777216 bytes), got %d bytes", c.Detection.MaxMemory)
	}
	if c.Detection.MaxAttacks < 1 {
		bad("detection.max_attacks", "must be positive")
	}
	if c.Detection.BlockAfter < 1 || c.Detection.BlockAfter > 100 {
		bad("detection.block_after", "must be between 1 and 100")
	}
	errs = append(errs, c.Notify.Validate()...)
	errs = append(errs, c.Redis.Validate(c.FingerprintKey != "" || c.FingerprintKeyFile != "")...)
	for name, t := range map[string]TLSFiles{"admin_tls": c.AdminTLS, "grpc_tls": c.GRPCTLS} {
		if t.Enabled() && (t.CertFile == "" || t.KeyFile == "") {
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
		api := &detect.API{BasePath: NormalizeBasePath(a.BasePath), LoginPaths: a.LoginPaths}
		for j, p := range a.Decoys {
			switch full := decoy.FullPath(api.BasePath, p); {
			case p == "" || strings.ContainsAny(p, "?#* "):
				bad(fmt.Sprintf("apis[%d].decoys[%d]", i, j), "%q must be a path relative to the base path", p)
			case api.MayBeLoginPath(full):
				bad(fmt.Sprintf("apis[%d].decoys[%d]", i, j), "%q is a login path (%s): every user who logs in would be blocked", p, full)
			}
		}
		if a.Inspection != nil && !validSwitch(*a.Inspection) {
			bad(fmt.Sprintf("apis[%d].inspection", i), "%q: want on or off", *a.Inspection)
		}
		if a.OpenAPI != "" {
			if err := checkReadableFile(a.OpenAPI); err != nil {
				bad(fmt.Sprintf("apis[%d].openapi", i), "%v", err)
			} else if _, err := spec.Load(a.OpenAPI); err != nil {
				bad(fmt.Sprintf("apis[%d].openapi", i), "%v", err)
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
		if a.LoginUsernameFields != nil {
			fields := *a.LoginUsernameFields
			if len(fields) > detect.MaxLoginUsernameFields {
				bad(fmt.Sprintf("apis[%d].login_username_fields", i), "%d fields, at most %d", len(fields), detect.MaxLoginUsernameFields)
			}
			for j, f := range fields {
				if !validLoginField(f) {
					bad(fmt.Sprintf("apis[%d].login_username_fields[%d]", i, j), "%q must be a field name: 1 to %d characters, no spaces, quotes or control characters", f, detect.MaxLoginFieldName)
				}
			}
		}
	}
	return c.src.report(errs)
}

// validLoginField accepts a login body's field name: 1 to
// detect.MaxLoginFieldName bytes of UTF-8 without white space, quotes,
// backslashes or control characters.
func validLoginField(f string) bool {
	if f == "" || len(f) > detect.MaxLoginFieldName || !utf8.ValidString(f) {
		return false
	}
	for _, r := range f {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '"' || r == '\\' {
			return false
		}
	}
	return true
}

// validSwitch accepts an on/off key's values.
func validSwitch(s string) bool {
	switch s {
	case "on", "off", "true", "false":
		return true
	}
	return false
}

// checkReadableFile reports why path is not a readable regular file.
func checkReadableFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%q does not exist", path)
		}
		return fmt.Errorf("%q cannot be read: %v", path, errors.Unwrap(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%q cannot be read: %v", path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%q is not a file", path)
	}
	var b [1]byte
	if _, err := f.Read(b[:]); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%q cannot be read: %v", path, err)
	}
	if st.Size() == 0 {
		return fmt.Errorf("%q is empty", path)
	}
	return nil
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

// GRPCOpen reports whether gRPC listens off loopback without requiring a
// client certificate: every caller that reaches the port is served.
func (c *Config) GRPCOpen() bool {
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
