package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"

	"github.com/vigil-project/vigil/server"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// The tests below are the parts of instructions.sh, which counts the
// instructions per call of the null server and of the built binary under
// valgrind's callgrind, each a process of its own; they are skipped unless
// their variable is set.

// TestPrepareState writes, in VIGIL_BENCH_PREPARE, the data directory of a
// restart (restoredDir) and the configuration the binary runs with
// (vigil.yaml).
func TestPrepareState(t *testing.T) {
	dst := os.Getenv("VIGIL_BENCH_PREPARE")
	if dst == "" {
		t.Skip("VIGIL_BENCH_PREPARE not set")
	}
	dir := restoredDir(t, newLoad())
	if dir == "" {
		t.Fatal("VIGIL_BENCH_STATE=fresh: nothing to prepare")
	}
	if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
}

// TestServeNull serves the null server on VIGIL_BENCH_SERVE_NULL, with
// Vigil's gRPC options, until SIGTERM or SIGINT.
func TestServeNull(t *testing.T) {
	addr := os.Getenv("VIGIL_BENCH_SERVE_NULL")
	if addr == "" {
		t.Skip("VIGIL_BENCH_SERVE_NULL not set")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(server.GRPCOptions(vigiltest.Load(t, t.TempDir(), benchConfig), func(any) {})...)
	extprocv3.RegisterExternalProcessorServer(s, nullServer{})
	authv3.RegisterAuthorizationServer(server.GRPCRegistrar(s), nullServer{})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() { <-ctx.Done(); s.Stop() }()
	fmt.Println("null serving on", l.Addr())
	s.Serve(l)
}

// TestDrive sends VIGIL_BENCH_CALLS calls (default 5,000) of the 10,000
// identities' load to the server at VIGIL_BENCH_TARGET, through ext_proc
// or, with VIGIL_BENCH_SERVICE=ext_authz, ext_authz, from 16 goroutines,
// and prints the calls and the seconds they took. With VIGIL_BENCH_MIXED
// set, the load is the mixed one (mixedClient: one call in 20 from probing
// attackers).
func TestDrive(t *testing.T) {
	addr := os.Getenv("VIGIL_BENCH_TARGET")
	if addr == "" {
		t.Skip("VIGIL_BENCH_TARGET not set")
	}
	calls := envInt("VIGIL_BENCH_CALLS", 5000)
	l := newLoad()
	cc := dial(t, addr)
	defer cc.Close()
	authz := os.Getenv("VIGIL_BENCH_SERVICE") == "ext_authz"
	var cl caller = newClient(l, cc, authz)
	if os.Getenv("VIGIL_BENCH_MIXED") != "" {
		cl = newMixedClient(newClient(l, cc, authz), authz)
	}
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		fail atomic.Pointer[error]
	)
	start := time.Now()
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > calls {
					return
				}
				if err := cl.do(context.Background(), i, nil); err != nil {
					fail.Store(&err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := fail.Load(); err != nil {
		t.Fatal(*err)
	}
	fmt.Printf("calls %d seconds %.3f\n", calls, time.Since(start).Seconds())
}
