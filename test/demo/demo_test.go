// Package demo runs the built `vigil demo` end to end, as a user does: the
// scripted timeline must be detected attack by attack with no benign user
// blocked, and --no-traffic must give a trained stack that answers through
// its front door and stops cleanly on SIGTERM.
package demo

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-project/vigil/test/vigilbin"
)

func TestMain(m *testing.M) { vigilbin.Main(m) }

// demoProcess is a running `vigil demo`.
type demoProcess struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	ready chan string // the ready line
	done  chan error
}

func (p *demoProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// startDemo runs `vigil demo` on ephemeral ports with TMPDIR set to tmp.
func startDemo(t *testing.T, tmp string, args ...string) *demoProcess {
	t.Helper()
	args = append([]string{"demo", "--front-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"}, args...)
	cmd := exec.Command(vigilbin.Path(t), args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &demoProcess{cmd: cmd, ready: make(chan string, 1), done: make(chan error, 1)}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			if strings.Contains(sc.Text(), "ready") {
				select {
				case p.ready <- sc.Text(): // the first line that says ready
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
		err := cmd.Wait()
		if stderr.Len() > 0 {
			p.mu.Lock()
			p.lines = append(p.lines, "stderr: "+stderr.String())
			p.mu.Unlock()
		}
		p.done <- err
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

var readyRE = regexp.MustCompile(`front=(\S+) admin=(\S+) grpc=(\S+)`)

func (p *demoProcess) waitReady(t *testing.T) (front, admin string) {
	t.Helper()
	select {
	case line := <-p.ready:
		m := readyRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("ready line %q names no addresses", line)
		}
		return m[1], m[2]
	case err := <-p.done:
		t.Fatalf("vigil demo exited before ready: %v\n%s", err, p.output())
	case <-time.After(60 * time.Second):
		t.Fatalf("vigil demo not ready within 60s\n%s", p.output())
	}
	return "", ""
}

// TestDemoDetectsEveryScriptedAttack plays the whole timeline: each
// scripted attack is detected as the type it is built for and blocked, no
// benign user is blocked, and the demo exits 0.
func TestDemoDetectsEveryScriptedAttack(t *testing.T) {
	t.Parallel()
	started := time.Now()
	p := startDemo(t, t.TempDir(), "--duration", "35s")
	_, admin := p.waitReady(t)
	if resp, err := http.Get("http://" + admin + "/"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("dashboard at http://%s/: %v %v", admin, resp, err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("vigil demo: %v\n%s", err, p.output())
		}
	case <-time.After(100 * time.Second):
		t.Fatalf("vigil demo did not end within 100s\n%s", p.output())
	}
	out := p.output()
	t.Logf("vigil demo ran %s:\n%s", time.Since(started).Round(100*time.Millisecond), out)
	for attack, typ := range map[string]string{
		"probing":             "probing",
		"id_walking":          "bola_enumeration",
		"credential_stuffing": "credential_stuffing",
		"stolen_token":        "stolen_token",
		"exfiltration":        "data_exfiltration",
		"json_patch_flood":    "oversized_payload",
		"decoy":               "decoy",
	} {
		line := summaryLine(out, attack)
		if f := strings.Fields(line); len(f) < 3 || f[1] != "yes" || !strings.Contains(line, typ+" (") || !strings.Contains(line, "refused") {
			t.Errorf("%s: summary line %q, want detected as %s and blocked", attack, line, typ)
		}
	}
	if !strings.Contains(out, "benign users blocked: 0 of 150") || !strings.Contains(out, "benign identities flagged: 0") {
		t.Errorf("benign users were blocked or flagged:\n%s", out)
	}
	if strings.Contains(out, "eyJ") {
		t.Error("the demo printed a bearer token in clear")
	}
}

func summaryLine(out, attack string) string {
	sum := out[strings.LastIndex(out, "Summary:")+1:]
	for _, l := range strings.Split(sum, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == attack {
			return l
		}
	}
	return ""
}

// TestDemoNoTraffic: the trained stack alone answers a login through the
// front door with a token, and SIGTERM stops it cleanly, its temporary
// data directory removed.
func TestDemoNoTraffic(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	p := startDemo(t, tmp, "--no-traffic")
	front, admin := p.waitReady(t)

	resp, err := http.Post("http://"+front+"/shopapi-bid/login", "application/x-www-form-urlencoded",
		strings.NewReader(url.Values{"username": {"user1"}, "password": {"password1"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	var login struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Count(login.Token, ".") != 2 {
		t.Fatalf("login through the front door: %d, token %q", resp.StatusCode, login.Token)
	}
	req, _ := http.NewRequest("GET", "http://"+front+"/shopapi-bid/export?limit=10", nil)
	req.Header.Set("Authorization", "Bearer "+login.Token)
	req.Header.Set("X-Forwarded-For", "203.0.113.50")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("export with the token: %v %v", resp, err)
	}
	mresp, err := http.Get("http://" + admin + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var models struct{ Models []struct{ API, State string } }
	json.NewDecoder(mresp.Body).Decode(&models)
	mresp.Body.Close()
	if len(models.Models) == 0 || models.Models[0].API != "shop-bidding" || models.Models[0].State != "ready" {
		t.Fatalf("models after ready: %+v", models.Models)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.output())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("vigil demo did not exit within 20s of SIGTERM\n%s", p.output())
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the demo left %v in its temporary directory", left)
	}
}
