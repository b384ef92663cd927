package bench

// Benchmarks of issue 13 (replicas sharing Redis). Every one starts its own
// redis-server on a free loopback port (test/redistest) and runs only with
// -bench (or, for the test forms, their environment variable), so that
// `go test ./...` stays fast:
//
//	go test ./test/bench -run '^$' -bench RedisVersusSingle -benchtime 1x
//
// ext_proc and ext_authz throughput of one replica with Redis configured
// (redis.addrs, flush every 250 ms, share_fraction 0.1) against the same
// replica without Redis, interleaved in the same run (the order swapped
// every round), from the same restored state, with the mixed load
// (mixedClient: 10,000 benign identities and 20 attackers making one call
// in 20, so that windows are shared and flushed). Reported: the median of
// the per-round throughput ratios redis/single and their spread, the
// process CPU per request ratio, and the flush traffic of the Redis runs.

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/test/redistest"

	"time"
)

// benchFingerprintKey is every replica's fingerprint key (mandatory with
// Redis); the replicas without Redis use it too, so that both fingerprint
// the same.
const benchFingerprintKey = "6a1f0c9e3b5d47a8c2e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b"

// singleConfig is benchConfig with a fixed fingerprint key: the replica
// without Redis.
const singleConfig = benchConfig + "fingerprint_key: " + benchFingerprintKey + "\n"

// replicaConfig is singleConfig sharing state through the Redis at addr
// under prefix, as replica id, flushing every flush.
func replicaConfig(addr, prefix, id string, flush time.Duration) string {
	return singleConfig + fmt.Sprintf("redis:\n  addrs: [%s]\n  key_prefix: %q\n  replica_id: %s\n  flush_interval: %s\n",
		addr, prefix, id, flush)
}

// The mixed load's attackers: one call in attackEvery is an attacker's,
// attackers of them in turn, each on attackPaths paths that do not exist
// (404 in ext_proc's response headers): probing, whose windows pass the
// share fraction and are flushed.
const (
	attackEvery = 20
	attackers   = 20
	attackPaths = 60
)

// mixedClient makes the calls of the mixed load: the benign load's, and
// every attackEvery-th an attacker's. A blocked attacker call (an
// immediate response, a denied Check) counts as a call made.
type mixedClient struct {
	base      *client
	authz     bool
	atkProc   []*extprocv3.ProcessingRequest
	atkChecks []*authv3.CheckRequest
	notFound  *extprocv3.ProcessingRequest
	blocked   atomic.Int64
}

func attackerIP(a int) string { return fmt.Sprintf("198.51.100.%d", a+1) }

func newMixedClient(base *client, authz bool) *mixedClient {
	m := &mixedClient{base: base, authz: authz}
	for a := range attackers {
		ip := attackerIP(a)
		for p := range attackPaths {
			path := fmt.Sprintf("/shop/admin-%d/%d", p, a)
			hs := [][2]string{
				{":method", "GET"}, {":path", path}, {":authority", "api.example.com"}, {":scheme", "https"},
				{"user-agent", "scanner/0.1"}, {"accept", "*/*"}, {"x-forwarded-for", ip},
				{"x-request-id", fmt.Sprintf("atk-%d-%d", a, p)}, {"x-envoy-external-address", ip},
			}
			var hv []*corev3.HeaderValue
			hm := map[string]string{}
			for _, h := range hs {
				hv = append(hv, &corev3.HeaderValue{Key: h[0], RawValue: []byte(h[1])})
				hm[h[0]] = h[1]
			}
			m.atkProc = append(m.atkProc, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
				RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: hv}, EndOfStream: true},
			}})
			m.atkChecks = append(m.atkChecks, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
					SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}},
				}}},
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
					Id: hm["x-request-id"], Method: "GET", Path: path, Host: "api.example.com", Scheme: "https",
					Protocol: "HTTP/1.1", Size: -1, Headers: hm,
				}},
			}})
		}
	}
	m.notFound = &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":status", RawValue: []byte("404")}, {Key: "content-type", RawValue: []byte("application/json")},
			{Key: "content-length", RawValue: []byte("20")},
		}}, EndOfStream: true},
	}}
	return m
}

func (m *mixedClient) do(ctx context.Context, i int, w *worker) error {
	if i%attackEvery != 0 {
		return m.base.do(ctx, i, w)
	}
	k := i / attackEvery
	idx := k%attackers*attackPaths + k/attackers%attackPaths
	if m.authz {
		r, err := m.base.az.Check(ctx, m.atkChecks[idx])
		if err == nil && r.GetStatus().GetCode() != 0 {
			m.blocked.Add(1)
		}
		return err
	}
	blocked, err := exchangeOrBlocked(ctx, m.base.ep, m.atkProc[idx], m.notFound)
	if blocked {
		m.blocked.Add(1)
	}
	return err
}

// exchangeOrBlocked is exchange, where an immediate response to the
// request headers (a block) ends the stream.
func exchangeOrBlocked(ctx context.Context, c extprocv3.ExternalProcessorClient, req, resp *extprocv3.ProcessingRequest) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.Process(ctx)
	if err != nil {
		return false, err
	}
	if err := st.Send(req); err != nil {
		return false, err
	}
	r, err := st.Recv()
	if err != nil {
		return false, err
	}
	if r.GetImmediateResponse() != nil {
		return true, nil
	}
	if err := st.Send(resp); err != nil {
		return false, err
	}
	if r, err = st.Recv(); err != nil {
		return false, err
	}
	if r.GetImmediateResponse() != nil {
		return true, nil
	}
	if err := st.CloseSend(); err != nil {
		return false, err
	}
	if _, err := st.Recv(); err != io.EOF {
		return false, fmt.Errorf("want EOF at the end of the stream, got %v", err)
	}
	return false, nil
}

// runMixed drives the mixed load against addr (see run).
func runMixed(tb testing.TB, l *load, addr string, authz bool, warm, d time.Duration) (result, int64) {
	cc := dial(tb, addr)
	defer cc.Close()
	m := newMixedClient(newClient(l, cc, authz), authz)
	r := runCaller(tb, l, m, 64, warm, d, "")
	return r, m.blocked.Load()
}

// metrics scrapes a server's /metrics.
func metrics(tb testing.TB, adminAddr string) map[string]*dto.MetricFamily {
	tb.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return fams
}

// metricSum is the sum over the series of a counter or gauge; for a
// histogram, its samples' sum and count.
func metricSum(fams map[string]*dto.MetricFamily, name string) (sum, count float64) {
	f := fams[name]
	if f == nil {
		return math.NaN(), math.NaN()
	}
	for _, m := range f.GetMetric() {
		switch {
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			sum += m.GetHistogram().GetSampleSum()
			count += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum, count
}

// redisCommands is the commands Redis has run (INFO commandstats), by
// command, and their total.
func redisCommands(tb testing.TB, addr string) (map[string]int64, int64) {
	tb.Helper()
	info, err := redistest.Command(addr, "INFO", "commandstats")
	if err != nil {
		tb.Fatal(err)
	}
	by := map[string]int64{}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		name, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
		var n int64
		fmt.Sscan(calls, &n)
		by[strings.TrimPrefix(name, "cmdstat_")] = n
		total += n
	}
	return by, total
}

func spread(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return fmt.Sprintf("%.3f–%.3f", s[0], s[len(s)-1])
}

// BenchmarkRedisVersusSingle: see the comment at the top of this file.
// VIGIL_BENCH_ROUNDS (default 3) rounds of VIGIL_BENCH_SECONDS (default 3)
// measured after 6 s of warm-up, per service.
func BenchmarkRedisVersusSingle(b *testing.B) {
	rounds, secs := envInt("VIGIL_BENCH_ROUNDS", 3), envInt("VIGIL_BENCH_SECONDS", 3)
	const warm = 6 * time.Second
	r := redistest.Start(b)
	l := newLoad()
	state := restoredDirConfig(b, l, singleConfig)
	for _, svc := range []struct {
		name  string
		authz bool
	}{{"ext_proc", false}, {"ext_authz", true}} {
		var ratios, cpuRatios, singleRPS, redisRPS, cmdsPer1k, idsPerFlush, blockedShare []float64
		for round := range rounds {
			var rs, rr result
			measure := func(withRedis bool) {
				cfg := singleConfig
				if withRedis {
					cfg = replicaConfig(r.Addr(), fmt.Sprintf("b%d%s:", round, svc.name), "r1", 250*time.Millisecond)
				}
				v := startVigilConfig(b, state, cfg)
				res, blocked := runMixed(b, l, v.addr, svc.authz, warm, time.Duration(secs)*time.Second)
				if withRedis {
					fams := metrics(b, v.adminAddr)
					cmds, _ := metricSum(fams, "vigil_redis_flush_commands_total")
					ids, flushes := metricSum(fams, "vigil_redis_flush_identities")
					cmdsPer1k = append(cmdsPer1k, 1000*cmds/float64(res.calls))
					idsPerFlush = append(idsPerFlush, ids/math.Max(flushes, 1))
					blockedShare = append(blockedShare, float64(blocked)/float64(res.calls))
					rr = res
				} else {
					rs = res
				}
				v.stop()
			}
			// The order swaps every round: a machine growing busier
			// does not favour one side.
			first := round%2 == 1
			measure(first)
			measure(!first)
			ratios = append(ratios, rr.rps/rs.rps)
			cpuRatios = append(cpuRatios, rs.cpuReq/rr.cpuReq)
			singleRPS = append(singleRPS, rs.rps)
			redisRPS = append(redisRPS, rr.rps)
		}
		b.Logf("%s: single %.0f req/s, with redis %.0f req/s; ratio redis/single %.3f (rounds %s); process CPU per request ratio single/redis %.3f (rounds %s); flush commands per 1,000 calls %.1f, identities per flush %.1f, attacker calls blocked %.1f%% (medians of %d rounds of %ds)",
			svc.name, median(singleRPS), median(redisRPS), median(ratios), spread(ratios), median(cpuRatios), spread(cpuRatios),
			median(cmdsPer1k), median(idsPerFlush), 100*median(blockedShare), rounds, secs)
		b.ReportMetric(median(ratios), svc.name+"_redis/single")
		b.ReportMetric(median(cpuRatios), svc.name+"_cpu_single/redis")
		b.ReportMetric(median(cmdsPer1k), svc.name+"_flushcmds/1000calls")
	}
}
