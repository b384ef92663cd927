// Package redistest runs real redis-server processes for tests: a standalone
// server or a Redis Cluster of masters, each on free loopback ports, without
// persistence, stopped when the test ends. When redis-server is missing the
// test is skipped locally and fails in CI (vigilbin.Tool's rule).
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-project/vigil/test/vigilbin"
)

const how = "apt-get install redis-server"

// StartTimeout bounds how long a server may take to answer PING.
const StartTimeout = 10 * time.Second

// Server is one redis-server process on a loopback port.
type Server struct {
	tb      testing.TB
	bin     string
	dir     string
	port    int
	cluster bool

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	stopped bool
}

// Start runs a standalone redis-server on a free loopback port and waits until
// it answers PING. It is killed at t.Cleanup.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, false)
}

func start(tb testing.TB, cluster bool) *Server {
	tb.Helper()
	bin := vigilbin.Tool(tb, "redis-server", how)
	s := &Server{tb: tb, bin: bin, dir: tb.TempDir(), cluster: cluster}
	tb.Cleanup(s.Kill)
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		s.port, err = freePort(cluster)
		if err != nil {
			continue
		}
		if err = s.launch(); err == nil {
			return s
		}
		s.Kill()
	}
	tb.Fatalf("redistest: start redis-server: %v", err)
	return nil
}

// freePort finds a loopback port that is free; for a Cluster node its bus
// port (port+10000) must be free as well.
func freePort(cluster bool) (int, error) {
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !cluster {
			return port, nil
		}
		if port+10000 > 65535 {
			continue
		}
		b, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		if err != nil {
			continue
		}
		b.Close()
		return port, nil
	}
	return 0, errors.New("no free loopback port")
}

func (s *Server) args() []string {
	a := []string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--enable-debug-command", "local",
		"--dir", s.dir,
	}
	if s.cluster {
		a = append(a, "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
			"--cluster-node-timeout", "5000")
	}
	return a
}

func (s *Server) launch() error {
	if s.cluster {
		// A restarted node starts empty, without its old cluster identity.
		os.Remove(filepath.Join(s.dir, "nodes.conf"))
	}
	logPath := filepath.Join(s.dir, "redis.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, s.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done, s.stopped = cmd, done, false
	s.mu.Unlock()
	deadline := time.Now().Add(StartTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited: %s", s.port, tail(logPath))
		default:
		}
		if r, err := Command(s.Addr(), "PING"); err == nil && r == "PONG" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on port %d did not answer PING within %v: %s", s.port, StartTimeout, tail(logPath))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Port returns the server's port.
func (s *Server) Port() int { return s.port }

// Kill kills the server (SIGKILL) and waits for it to exit. Its data is lost.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Restart kills the server and starts it again, empty, on the same port.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	var err error
	deadline := time.Now().Add(StartTimeout)
	for {
		if err = s.launch(); err == nil {
			return
		}
		s.Kill()
		if time.Now().After(deadline) {
			s.tb.Fatalf("redistest: restart redis-server: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop freezes the server (SIGSTOP): connections stay open, nothing answers.
func (s *Server) Stop() { s.signal(syscall.SIGSTOP) }

// Cont resumes a server frozen by Stop (SIGCONT).
func (s *Server) Cont() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.tb.Fatalf("redistest: signal %v: server not running", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.tb.Fatalf("redistest: signal %v: %v", sig, err)
	}
	s.stopped = sig == syscall.SIGSTOP
}

// Do runs one command on the server and returns its reply as text (see
// Command); a failure fails the test.
func (s *Server) Do(args ...string) string {
	s.tb.Helper()
	r, err := Command(s.Addr(), args...)
	if err != nil {
		s.tb.Fatalf("redistest: %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// Cluster is a Redis Cluster of masters on loopback ports.
type Cluster struct {
	Nodes []*Server
}

// StartCluster runs n (at least 3) cluster-enabled redis-servers, joins them
// with `redis-cli --cluster create` (no replicas), and waits until every node
// reports cluster_state:ok with every slot assigned.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	if n < 3 {
		tb.Fatalf("redistest: a Redis Cluster needs at least 3 masters, not %d", n)
	}
	cli := vigilbin.Tool(tb, "redis-cli", how)
	c := &Cluster{}
	for i := 0; i < n; i++ {
		c.Nodes = append(c.Nodes, start(tb, true))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("redistest: redis-cli --cluster create: %v: %s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range c.Nodes {
		for {
			info, err := Command(s.Addr(), "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_slots_ok:16384") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)) {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("redistest: node %s not ok within 30s: %q %v", s.Addr(), info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// Addrs returns the nodes' host:port.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr()
	}
	return out
}

// Command sends one command to addr over a fresh connection and returns its
// reply: a simple or bulk string as is, an integer in decimal, an array's
// elements joined by newlines; an error reply is returned as an error. It is
// enough for the harness and for assertions; tests wanting more use a client.
func Command(addr string, args ...string) (string, error) {
	return CommandTimeout(addr, 5*time.Second, args...)
}

// CommandTimeout is Command with a deadline for the whole exchange.
func CommandTimeout(addr string, d time.Duration, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, d)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(d))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn))
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		parts := make([]string, 0, max(n, 0))
		for i := 0; i < n; i++ {
			p, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}
