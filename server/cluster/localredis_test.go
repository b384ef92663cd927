package cluster

// A tiny stand-in for test/redistest until it lands (then replaced).

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/vigil-project/vigil/test/vigilbin"
)

type localRedis struct {
	Addr string
	bin  string
	port int
	cmd  *exec.Cmd
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startLocalRedis(t testing.TB) *localRedis {
	r := &localRedis{bin: vigilbin.Tool(t, "redis-server", "apt-get install -y redis-server"), port: freePort(t)}
	r.Addr = fmt.Sprintf("127.0.0.1:%d", r.port)
	r.Restart(t)
	t.Cleanup(r.Kill)
	return r
}

func (r *localRedis) Restart(t testing.TB) {
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--enable-debug-command", "local")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", r.Addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not listen on %s", r.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *localRedis) Kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGCONT)
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

func (r *localRedis) Stop() { _ = r.cmd.Process.Signal(syscall.SIGSTOP) }
func (r *localRedis) Cont() { _ = r.cmd.Process.Signal(syscall.SIGCONT) }

func newClient(t testing.TB, addrs ...string) rueidis.Client {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

var _ = context.Background
