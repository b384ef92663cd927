package flood_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/flood"
	"github.com/vigil-project/vigil/test/vigilbin"
	"github.com/vigil-project/vigil/test/vigiltest"
)

func TestMain(m *testing.M) { vigilbin.Main(m) }

var servingRE = regexp.MustCompile(`"grpc_addr":"([^"]+)","admin_addr":"([^"]+)".*"message":"vigil serving"`)

// target is the built binary serving one configuration.
type target struct {
	p            *vigiltest.Process
	grpc, admin  string
	cc           *grpc.ClientConn
	client       *flood.Client
	pid          int
	last         flood.Sample
	lastAt       time.Time
	tb           testing.TB
	adminClient  *adminapi.Client
	configMemory int64
}

// start runs `vigil serve` on yml (the embedded defaults underneath, a
// configured API "shop" in block mode on every host) with GOMEMLIMIT unset,
// so that the binary takes its soft limit from detection.max_memory.
func start(tb testing.TB, yml string) *target {
	tb.Helper()
	dir := tb.TempDir()
	yml = fmt.Sprintf("grpc_addr: 127.0.0.1:0\nadmin_addr: 127.0.0.1:0\ndata_dir: %s\nshutdown: {drain_delay: 0s, timeout: 5s}\n"+
		"apis:\n  - name: shop\n    base_path: /shop\n", dir) + yml
	path := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		tb.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		tb.Fatal(err)
	}
	p := vigiltest.Binary{Args: []string{"serve", "--config", path}, Env: []string{"GOMEMLIMIT="}, Ready: servingRE}.Start(tb)
	cc, err := grpc.NewClient(p.Ready[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	t := &target{p: p, grpc: p.Ready[1], admin: p.Ready[2], cc: cc, client: flood.NewClient(cc, "api.example.com", "/shop/item/"),
		pid: p.Cmd.Process.Pid, tb: tb, adminClient: adminapi.NewClient(p.Ready[2], ""), configMemory: cfg.Detection.MaxMemory}
	t.lastAt = time.Now()
	return t
}

// sample measures the process after calls calls.
func (t *target) sample(calls int) flood.Sample {
	t.tb.Helper()
	s, err := flood.Measure(t.pid, t.admin)
	if err != nil {
		t.tb.Fatal(err)
	}
	s.Calls = calls
	now := time.Now()
	s.Rate = float64(calls-t.last.Calls) / now.Sub(t.lastAt).Seconds()
	t.last, t.lastAt = s, now
	return s
}

// BenchmarkFlood floods the built binary, with the default configuration
// (max_memory 384MiB), with fresh identities through each service and
// prints the process's memory at checkpoints. VIGIL_FLOOD sets how many
// calls (each a fresh IP and a fresh token): 1M by default, e.g. 100k.
//
//	go test ./test/flood -run '^$' -bench Flood -benchtime 1x -timeout 60m
func BenchmarkFlood(b *testing.B) {
	n := floodSize(b)
	for _, svc := range []flood.Service{flood.ExtAuthz, flood.ExtProc} {
		b.Run(svc.String(), func(b *testing.B) {
			for range b.N {
				v := start(b, "")
				b.Logf("%s, %d calls from fresh identities, max_memory %d MiB:", svc, n, v.configMemory>>20)
				b.Logf("%v", v.sample(0))
				var s flood.Sample
				done := 0
				for _, cp := range []int{10000, 100000, 250000, 500000, 1000000, 2000000} {
					if cp > n {
						cp = n
					}
					if cp <= done {
						break
					}
					if err := v.client.Drive(context.Background(), svc, done, cp, 64); err != nil {
						b.Fatal(err)
					}
					done = cp
					s = v.sample(done)
					b.Logf("%v", s)
				}
				b.ReportMetric(float64(s.HWM)/(1<<20), "MiB-peak-RSS")
				b.ReportMetric(s.BytesPerState(), "B/state")
				b.ReportMetric(float64(s.States), "states")
			}
		})
	}
}

// floodSize is VIGIL_FLOOD: a number with an optional k or M suffix.
func floodSize(tb testing.TB) int {
	v := os.Getenv("VIGIL_FLOOD")
	if v == "" {
		return 1000000
	}
	mult := 1
	switch {
	case strings.HasSuffix(v, "k"):
		mult, v = 1000, strings.TrimSuffix(v, "k")
	case strings.HasSuffix(v, "M"):
		mult, v = 1000000, strings.TrimSuffix(v, "M")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("VIGIL_FLOOD=%q: want a count such as 100k or 1M", os.Getenv("VIGIL_FLOOD"))
	}
	return n * mult
}
