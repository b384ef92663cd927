package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/decoy"
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server"
	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/vigiltest"
	"github.com/vigil-project/vigil/test/vigiltest/testfiles"
)

func TestConfigCommands(t *testing.T) {
	ctx := context.Background()
	good := filepath.Join("..", "config", "testdata", "config", "full.good.yaml")
	var stdout, stderr bytes.Buffer
	if err := Main(ctx, []string{"config", "check", good}, &stdout, &stderr); err != nil {
		t.Fatalf("config check %s: %v", good, err)
	}
	if got := stdout.String(); got != good+": ok (4 APIs)\n" {
		t.Errorf("config check printed %q", got)
	}

	stdout.Reset()
	err := Main(ctx, []string{"config", "check", filepath.Join("..", "config", "testdata", "config", "many_problems.bad.yaml")}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "19 problem(s)") {
		t.Errorf("config check of a bad file: got %v, want the 19 problems", err)
	}
	err = Main(ctx, []string{"config", "check", filepath.Join("..", "config", "testdata", "config", "unknown_top_key.bad.yaml")}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), `line 3: unknown key "admin_adr"`) {
		t.Errorf("config check of a file with an unknown key: got %v", err)
	}
	err = Main(ctx, []string{"config", "check", filepath.Join(t.TempDir(), "missing.yaml")}, &stdout, &stderr)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("config check of a missing file: got %v", err)
	}

	stdout.Reset()
	if err := Main(ctx, []string{"config", "default"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	printed := testfiles.Write(t, "default.yaml", stdout.String())
	if cfg, err := config.Load(printed); err != nil {
		t.Errorf("the printed defaults do not load back: %v", err)
	} else if err := cfg.Validate(); err != nil {
		t.Errorf("the printed defaults do not load back: %v", err)
	}
	if !bytes.Equal(stdout.Bytes(), config.DefaultYAML()) {
		t.Error("config default does not print the embedded file")
	}

	for _, args := range [][]string{
		nil, {"frobnicate"}, {"config"}, {"config", "check"}, {"config", "check", "a", "b"}, {"config", "lint"},
		{"serve", "extra-arg"}, {"serve", "--no-such-flag"}, {"replay", "--input", "-", "extra-arg"},
	} {
		stderr.Reset()
		if err := Main(ctx, args, &stdout, &stderr); !errors.Is(err, ErrUsage) {
			t.Errorf("Main(%q) = %v, want ErrUsage", args, err)
		}
	}

	stdout.Reset()
	if err := Main(ctx, []string{"version"}, &stdout, &stderr); err != nil || stdout.String() != "vigil "+server.Version+"\n" {
		t.Errorf("version: %q, %v", stdout.String(), err)
	}
	stdout.Reset()
	if err := Main(ctx, []string{"help"}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "vigil serve [--config FILE]") {
		t.Errorf("help: %q, %v", stdout.String(), err)
	}
}

func TestServeRejectsBadConfigBeforeBinding(t *testing.T) {
	path := testfiles.Write(t, "bad.yaml", "admin_addr: 0.0.0.0:0\nlog_level: loud\n")
	var stdout, stderr bytes.Buffer
	err := Main(context.Background(), []string{"serve", "--config", path, "--data-dir", t.TempDir()}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "admin_token: required") || !strings.Contains(err.Error(), `log_level: unknown level "loud"`) {
		t.Fatalf("serve with a bad config: %v", err)
	}
	// A flag is validated like the file.
	err = Main(context.Background(), []string{"serve", "--grpc-addr", "nowhere", "--data-dir", t.TempDir()}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), `grpc_addr: "nowhere" is not host:port`) {
		t.Fatalf("serve with a bad flag: %v", err)
	}
}

// TestServeWithSecretFiles runs `vigil serve` on a config whose secrets are
// files: it starts (Validate runs twice on that path), the tokens open the
// admin API, the key is the file's (none is generated in data_dir), and
// neither check nor serve prints a secret.
func TestServeWithSecretFiles(t *testing.T) {
	path, _ := testfiles.SecretConfig(t, "admin-token-sekrit-1\n", "read-token-sekrit-22\n", testfiles.FingerprintKey+"\n")
	var stdout bytes.Buffer
	if err := Main(context.Background(), []string{"config", "check", path}, &stdout, io.Discard); err != nil {
		t.Fatalf("config check: %v", err)
	}
	if got := stdout.String(); got != path+": ok (0 APIs)\n" {
		t.Errorf("config check printed %q", got)
	}

	dataDir := t.TempDir()
	v := serve(t, "--config", path, "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--data-dir", dataDir, "--log-level", "debug", "--drain-delay", "0s")
	line := v.line
	addr := line["admin_addr"].(string)
	if code, body := vigiltest.Call(t, adminapi.NewClient(addr, "admin-token-sekrit-1"), http.MethodGet, "/v1/apis", ""); code != http.StatusOK {
		t.Errorf("admin token from the file: %d %s", code, body)
	}
	if code, body := vigiltest.Call(t, adminapi.NewClient(addr, "read-token-sekrit-22"), http.MethodGet, "/v1/apis", ""); code != http.StatusOK {
		t.Errorf("read token from the file: %d %s", code, body)
	}
	if code, _ := vigiltest.Call(t, adminapi.NewClient(addr, "read-token-sekrit-22"), http.MethodPost, "/v1/blocklist", `{"kind":"ip","value":"192.0.2.1"}`); code != http.StatusForbidden && code != http.StatusUnauthorized {
		t.Errorf("the read token from the file changes the block list: %d", code)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "fingerprint.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a fingerprint key was generated in data_dir although fingerprint_key_file is set: %v", err)
	}
	v.stop()
	if logs := v.logs.String(); strings.Contains(logs, "sekrit") || strings.Contains(logs, testfiles.FingerprintKey) {
		t.Errorf("the logs show a secret:\n%s", logs)
	}
}

// TestServeRefusesDecoyOnLoginPath: `vigil serve` refuses a decoy that a
// login path matches (as a suffix, as the engine matches logins), before
// it binds; config check reports the same (TestConfigFiles,
// decoy_login_path.bad.yaml). The trap itself refuses it too.
func TestServeRefusesDecoyOnLoginPath(t *testing.T) {
	path := testfiles.Write(t, "vigil.yaml", "apis:\n  - {name: shop, base_path: /shop, login_paths: [/login], decoys: [/login]}\n")
	// Without the guard serve would run: it stops when ctx ends, and fails.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Main(ctx, []string{"serve", "--config", path, "--data-dir", t.TempDir(),
		"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `line 2: apis[0].decoys[0]: "/login" is a login path (/shop/login)`) {
		t.Fatalf("serve with a decoy on the login path: %v", err)
	}
	api := &detect.API{Name: "shop", BasePath: "/shop", LoginPaths: []string{"/login"}}
	_, err = decoy.New(decoy.Config{APIs: []decoy.APIDecoys{{API: api, Paths: []string{"/Login"}}}}, nil, decoy.Actions{})
	if err == nil || !strings.Contains(err.Error(), `decoy "/Login" is a login path`) {
		t.Fatalf("decoy.New with a decoy on the login path: %v", err)
	}
}

// TestConfigCheckReportsEverythingAtOnce: `vigil config check` prints the
// decode problems (unknown keys, wrong types) and the validation problems
// together, each with its line.
func TestConfigCheckReportsEverythingAtOnce(t *testing.T) {
	path := filepath.Join("..", "config", "testdata", "config", "one_pass.bad.yaml")
	err := Main(context.Background(), []string{"config", "check", path}, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("want problems")
	}
	want, rerr := os.ReadFile(strings.TrimSuffix(path, ".yaml") + ".err")
	if rerr != nil {
		t.Fatal(rerr)
	}
	if got := err.Error(); got != "config "+filepath.Join("..", "config", "testdata", "config", strings.TrimSpace(string(want))) {
		t.Errorf("config check:\n%s\nwant:\n%s", got, want)
	}
}

// TestConfigCheckHidesSecrets: `vigil config check` reports the problems of
// secrets read from files (config's TestSecretFileProblemsHideContent) and
// shows no secret.
func TestConfigCheckHidesSecrets(t *testing.T) {
	const short, notHex = "sekrit-short", "REPLACE-WITH-openssl-rand-hex-32-sekrit"
	path, _ := testfiles.SecretConfig(t, short+"\n", short, notHex)
	var stdout, stderr bytes.Buffer
	err := Main(context.Background(), []string{"config", "check", path}, &stdout, &stderr)
	if err == nil || strings.Contains(err.Error()+stdout.String()+stderr.String(), "sekrit") {
		t.Errorf("config check: %v\n%s%s", err, stdout.String(), stderr.String())
	}
}
