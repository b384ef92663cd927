package manifests

// The compose example's replicas and their Redis: two Vigil services behind Envoy
// share one config (vigil-compose.yaml, vigil.yaml plus the redis section), one
// fingerprint key and the password of the redis service's ACL user.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/server/config"
)

// vigilReplicas are the compose services that run `vigil serve` from the
// repository's image, sorted.
func vigilReplicas(t *testing.T, f *composeFile, df *dockerfileInfo) []string {
	t.Helper()
	var out []string
	for name, s := range f.Services {
		if cmd := imageCommand(t, s, df); s.Build != nil && len(cmd) > 0 && cmd[0] == "serve" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// containerFile returns the host file behind a container path of a service
// (relative to the compose file's directory, as the mount names it) and
// whether gen-certs.sh makes it, or "" when no bind mount holds it.
func containerFile(s composeService, path string) (source string, generated bool) {
	var best *composeMount
	for i, m := range s.Volumes {
		if m.Type == "bind" && (path == m.Target || strings.HasPrefix(path, strings.TrimSuffix(m.Target, "/")+"/")) &&
			(best == nil || len(m.Target) > len(best.Target)) {
			best = &s.Volumes[i]
		}
	}
	if best == nil {
		return "", false
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(path, best.Target), "/")
	return filepath.ToSlash(filepath.Join(best.Source, rel)), generatedCerts(best.Source)
}

// loadComposeVigilConfig loads and validates a replica's config as `vigil serve`
// would in the container: every *_file it names must be in a bind mount of the
// service; a file gen-certs.sh makes is stood in for by a valid value.
func loadComposeVigilConfig(t *testing.T, f *composeFile, service, cfgPath, text string) *config.Config {
	t.Helper()
	raw, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("%s: %v", cfgPath, err)
	}
	valid := map[string]string{
		"fingerprint_key_file": strings.Repeat("0123456789abcdef", 4),
		"redis.password_file":  strings.Repeat("9f8e", 16),
	}
	dir := t.TempDir()
	for _, k := range secretFileKeys(raw) {
		if *k.path == "" {
			continue
		}
		src, generated := containerFile(f.Services[service], *k.path)
		switch {
		case src == "":
			t.Errorf("%s: %s %s is in no bind mount of %s", cfgPath, k.name, *k.path, service)
			continue
		case !generated:
			t.Errorf("%s: %s comes from the committed %s: secrets are made by gen-certs.sh (certs/), never committed", cfgPath, k.name, src)
			continue
		}
		v, ok := valid[k.name]
		if !ok {
			t.Errorf("%s: %s: no stand-in value for a generated file", cfgPath, k.name)
			continue
		}
		host := filepath.Join(dir, strings.ReplaceAll(k.name, ".", "_"))
		if err := os.WriteFile(host, []byte(v+"\n"), 0o400); err != nil {
			t.Fatal(err)
		}
		text = strings.ReplaceAll(text, *k.path, host)
	}
	return loadVigilConfig(t, cfgPath, text)
}

// TestVigilComposeMatchesVigil: the replicas' vigil-compose.yaml is vigil.yaml
// with the redis section and the shared fingerprint key, nothing else.
func TestVigilComposeMatchesVigil(t *testing.T) {
	one, err := config.Load(filepath.Join(envoyDir, "vigil.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	many, err := config.Load(filepath.Join(envoyDir, "vigil-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !many.Redis.Enabled() || many.FingerprintKeyFile == "" {
		t.Fatal("vigil-compose.yaml: want redis.addrs and fingerprint_key_file")
	}
	if one.Redis.Enabled() {
		t.Error("vigil.yaml (one Vigil, run without containers) needs no Redis")
	}
	many.Redis, many.FingerprintKeyFile = one.Redis, one.FingerprintKeyFile
	a, b := reflect.ValueOf(one).Elem(), reflect.ValueOf(many).Elem()
	for i := range a.NumField() {
		if f := a.Type().Field(i); f.IsExported() && !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			t.Errorf("vigil-compose.yaml differs from vigil.yaml in %s (beyond redis and fingerprint_key_file, all must agree)", f.Name)
		}
	}
}

// redisScriptRE finds the file the redis service's start script reads the
// password from, and its ACL line.
var (
	redisPasswordRE = regexp.MustCompile(`\$\$\(cat (/[^)\s]+)\)`)
	redisACLRE      = regexp.MustCompile(`user ([a-z0-9_-]+) on >%s ~(\S+)\* `)
)

// checkComposeRedis: the replicas' redis.addrs name the redis service on its
// port; the replicas and Redis read the password from one generated file, the
// replicas the fingerprint key from one generated file; Redis' ACL user is
// redis.username on redis.key_prefix; Redis is hardened and not published.
func checkComposeRedis(t *testing.T, f *composeFile, replicas []string, validated *config.Config) {
	t.Helper()
	if len(replicas) >= 2 && !validated.Redis.Enabled() {
		t.Fatalf("%d Vigil replicas without redis.addrs: each would learn from its share of the traffic alone", len(replicas))
	}
	first := f.Services[replicas[0]]
	cfgPath := bindSource(first, "/etc/vigil/vigil.yaml")
	cfg, err := config.Load(cfgPath) // the container's paths
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range cfg.Redis.Addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Errorf("redis.addrs[%d]: %v", i, err)
			continue
		}
		rs, ok := f.Services[host]
		if !ok {
			t.Errorf("redis.addrs[%d] %q: %s is not a compose service", i, a, host)
			continue
		}
		script := strings.Join(rs.Command, " ")
		if port != "6379" || strings.Contains(script, "--port") {
			t.Errorf("redis.addrs[%d] %q: want Redis' default port 6379, and no --port in %s's command", i, a, host)
		}
		for _, name := range replicas {
			if d, ok := f.Services[name].DependsOn[host]; !ok || d.Condition != "service_started" {
				t.Errorf("%s: want depends_on %s: service_started (Vigil serves without Redis, degraded, so it need not wait for it to be healthy)", name, host)
			}
		}
		checkComposeRedisService(t, host, rs, cfg)
		pw := redisPasswordRE.FindStringSubmatch(script)
		if pw == nil {
			t.Errorf("%s: the start script reads no password file ($$(cat FILE))", host)
			continue
		}
		redisSrc, _ := containerFile(rs, pw[1])
		for _, name := range replicas {
			src, generated := containerFile(f.Services[name], cfg.Redis.PasswordFile)
			if src == "" || src != redisSrc || !generated {
				t.Errorf("%s reads Redis' password from %q, %s from %q: want one file gen-certs.sh makes", name, src, host, redisSrc)
			}
		}
	}
	var key string
	for _, name := range replicas {
		src, generated := containerFile(f.Services[name], cfg.FingerprintKeyFile)
		if key == "" {
			key = src
		}
		if src == "" || src != key || !generated {
			t.Errorf("%s reads the fingerprint key from %q, %s from %q: want one file gen-certs.sh makes", name, src, replicas[0], key)
		}
	}
}

// checkComposeRedisService checks the redis service itself.
func checkComposeRedisService(t *testing.T, name string, s composeService, cfg *config.Config) {
	t.Helper()
	script := strings.Join(s.Command, " ")
	if len(s.Command) != 3 || s.Command[0] != "sh" || s.Command[1] != "-c" {
		t.Errorf("%s: command %q, want sh -c SCRIPT", name, s.Command)
	}
	if m := redisACLRE.FindStringSubmatch(script); m == nil || m[1] != cfg.Redis.Username || m[2] != cfg.Redis.KeyPrefix {
		t.Errorf("%s: the ACL line %q, want user %s on keys %s*", name, m, cfg.Redis.Username, cfg.Redis.KeyPrefix)
	}
	if !strings.Contains(script, "user default off") {
		t.Errorf("%s: the default user must be off", name)
	}
	if len(s.Ports) > 0 {
		t.Errorf("%s: ports %v: Redis is for the replicas only, on the compose network", name, s.Ports)
	}
	if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") || s.User == "" || s.User == "root" || strings.HasPrefix(s.User, "0") {
		t.Errorf("%s: want read_only, cap_drop ALL and a non-root user, got %v %v %q", name, s.ReadOnly, s.CapDrop, s.User)
	}
	if s.Healthcheck == nil {
		t.Errorf("%s: no healthcheck", name)
	}
	dir := regexp.MustCompile(`--dir (\S+)`).FindStringSubmatch(script)
	var onVolume bool
	for _, m := range s.Volumes {
		onVolume = onVolume || (dir != nil && m.Type == "volume" && m.Target == dir[1])
	}
	if !onVolume || !strings.Contains(script, "--appendonly yes") {
		t.Errorf("%s: want the append-only file (--appendonly yes) in --dir on a named volume", name)
	}
	if !strings.Contains(script, fmt.Sprintf("--aclfile %s", "/run/redis/users.acl")) || !slices.Contains(s.Tmpfs, "/run/redis") {
		t.Errorf("%s: the ACL file (it holds the password) belongs on the tmpfs /run/redis", name)
	}
}
