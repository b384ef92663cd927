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
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
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
	every     int // one call in every is an attacker's (1: all)
	atkProc   []*extprocv3.ProcessingRequest
	atkChecks []*authv3.CheckRequest
	notFound  *extprocv3.ProcessingRequest
	blocked   atomic.Int64
}

func attackerIP(a int) string { return fmt.Sprintf("198.51.100.%d", a+1) }

func newMixedClient(base *client, authz bool) *mixedClient {
	m := &mixedClient{base: base, authz: authz, every: attackEvery}
	for a := range attackers {
		ip := attackerIP(a)
		for p := range attackPaths {
			path := fmt.Sprintf("/shop/admin-%d/%d", p, a)
			hs := [][2]string{
				{":method", "GET"}, {":path", path}, {":authority", "api.example.com"}, {":scheme", "https"},
				{"user-agent", "scanner/0.1"}, {"accept", "*/*"}, {"x-forwarded-for", ip},
				{"x-request-id", fmt.Sprintf("atk-%d-%d", a, p)}, {"x-envoy-external-address", ip},
			}
			proc, check := callMessages(hs)
			m.atkProc = append(m.atkProc, proc)
			m.atkChecks = append(m.atkChecks, check)
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
	if m.every == 0 || i%m.every != 0 {
		return m.base.do(ctx, i, w)
	}
	k := i / m.every
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

// monitor counts the commands clients send to the Redis at addr (MONITOR;
// the commands scripts run inside Redis are not counted, nor INFO), by
// command, until the function it returns is called.
func monitor(tb testing.TB, addr string) func() map[string]int {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := conn.Write([]byte("*1\r\n$7\r\nMONITOR\r\n")); err != nil {
		tb.Fatal(err)
	}
	rd := bufio.NewReaderSize(conn, 1<<20)
	if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		tb.Fatalf("MONITOR: %q %v", line, err)
	}
	counts := map[string]int{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			// +1700000000.123456 [0 127.0.0.1:5000] "evalsha" "…" …
			_, rest, ok := strings.Cut(line, "[")
			if !ok {
				continue
			}
			src, rest, _ := strings.Cut(rest, "]")
			if strings.HasSuffix(src, " lua") {
				continue
			}
			rest = strings.TrimSpace(rest)
			if len(rest) < 2 || rest[0] != '"' {
				continue
			}
			name, _, _ := strings.Cut(rest[1:], `"`)
			name = strings.ToLower(name)
			if name != "info" {
				counts[name]++
			}
		}
	}()
	return func() map[string]int {
		// A PING on the monitored connection's server marks the end: once
		// it is seen, everything sent before it was.
		redistest.Command(addr, "PING")
		time.Sleep(100 * time.Millisecond)
		conn.Close()
		<-done
		delete(counts, "ping")
		return counts
	}
}

func total(counts map[string]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

func describe(counts map[string]int) string {
	var out []string
	for name, n := range counts {
		out = append(out, fmt.Sprintf("%s %d", name, n))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
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

// paced makes the calls of cl at rate per second for d, each at its
// scheduled time (up to 64 in flight), and returns the calls made.
func paced(tb testing.TB, cl caller, newWorker func() *worker, rate int, d time.Duration) int {
	total := int(float64(rate) * d.Seconds())
	jobs := make(chan int, 1024)
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		runErr  error
	)
	for range 64 {
		wg.Go(func() {
			w := newWorker()
			for i := range jobs {
				if err := cl.do(context.Background(), i, w); err != nil {
					errOnce.Do(func() { runErr = err })
				}
			}
		})
	}
	start, interval := time.Now(), time.Second/time.Duration(rate)
	for k := range total {
		if dt := time.Until(start.Add(time.Duration(k) * interval)); dt > 0 {
			time.Sleep(dt)
		}
		jobs <- k + 1
	}
	close(jobs)
	wg.Wait()
	if runErr != nil {
		tb.Fatal(runErr)
	}
	return total
}

// BenchmarkRedisCommands measures the Redis traffic of one replica (with
// Redis, flush every 250 ms) per 1,000 ext_proc calls at a fixed rate,
// VIGIL_BENCH_RATE (default 2,000) calls per second for
// VIGIL_BENCH_SECONDS (default 5), a fresh replica and key prefix for each
// traffic: "benign" (the 10,000 identities only), "mixed" (one call in 20
// from 20 probing attackers) and "attack" (every call from the 20
// attackers). Reported per 1,000 calls: the flushes' commands
// (vigil_redis_flush_commands_total) and every command Redis ran for the
// replica sent (MONITOR: the commands scripts run inside Redis left out),
// less what the idle replica sends in the same time (health rounds, the
// stream's XREAD, the trainer lease: measured over 3 s before the
// traffic).
//
//	go test ./test/bench -run '^$' -bench RedisCommands -benchtime 1x
func BenchmarkRedisCommands(b *testing.B) {
	rate, secs := envInt("VIGIL_BENCH_RATE", 2000), envInt("VIGIL_BENCH_SECONDS", 5)
	r := redistest.Start(b)
	l := newLoad()
	state := restoredDirConfig(b, l, singleConfig)
	for k, traffic := range []struct {
		name  string
		every int
	}{{"benign", 0}, {"mixed", attackEvery}, {"attack", 1}} {
		v := startVigilConfig(b, state, replicaConfig(r.Addr(), fmt.Sprintf("c%d:", k), "r1", 250*time.Millisecond))
		cc := dial(b, v.addr)
		m := newMixedClient(newClient(l, cc, false), false)
		m.every = traffic.every
		// Idle: what the replica sends whatever the traffic.
		time.Sleep(time.Second)
		mon := monitor(b, r.Addr())
		time.Sleep(3 * time.Second)
		idle := mon()
		idlePerSec := float64(total(idle)) / 3
		f0, _ := metricSum(metrics(b, v.adminAddr), "vigil_redis_flush_commands_total")
		mon = monitor(b, r.Addr())
		start := time.Now()
		calls := paced(b, m, l.newWorker, rate, time.Duration(secs)*time.Second)
		// The last flush of the traffic's deltas.
		time.Sleep(500 * time.Millisecond)
		busy := mon()
		elapsed := time.Since(start)
		fams := metrics(b, v.adminAddr)
		f1, _ := metricSum(fams, "vigil_redis_flush_commands_total")
		ids, flushes := metricSum(fams, "vigil_redis_flush_identities")
		cc.Close()
		v.stop()
		all := float64(total(busy)) - idlePerSec*elapsed.Seconds()
		per := float64(calls) / 1000
		b.Logf("%s: %d calls at %d/s: flush commands %.1f per 1,000 calls; commands sent to Redis %.1f per 1,000 calls beyond the idle replica's %.1f/s (%.1fs: %s; idle 3s: %s); %.1f identities per flush, %d attacker calls blocked",
			traffic.name, calls, rate, (f1-f0)/per, all/per, idlePerSec, elapsed.Seconds(), describe(busy), describe(idle), ids/math.Max(flushes, 1), m.blocked.Load())
		b.ReportMetric((f1-f0)/per, traffic.name+"_flushcmds/1000calls")
		b.ReportMetric(all/per, traffic.name+"_rediscmds/1000calls")
	}
}

// checkFrom is an ext_authz Check of a GET from ip.
func checkFrom(ip string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "prop", Method: "GET", Path: "/shop/order/1", Host: "api.example.com", Scheme: "https",
			Protocol: "HTTP/1.1", Size: -1, Headers: map[string]string{
				":method": "GET", ":path": "/shop/order/1", ":authority": "api.example.com", "x-forwarded-for": ip,
			},
		}},
	}}
}

// BenchmarkBlockPropagation measures how long a block added through one
// replica's admin API takes to be enforced by another replica (both in
// this process, sharing one redis-server): VIGIL_BENCH_SAMPLES (default
// 300) times, a new address is put on the block list of replica A (POST
// /v1/blocklist) while replica B's ext_authz is asked about it back to
// back until it refuses. Reported: the median and p99 from the POST's
// sending and from its answer to B's first refusal, and B's own
// vigil_redis_propagation_seconds (the stream entry's time to its
// application).
//
//	go test ./test/bench -run '^$' -bench BlockPropagation -benchtime 1x
func BenchmarkBlockPropagation(b *testing.B) {
	n := envInt("VIGIL_BENCH_SAMPLES", 300)
	r := redistest.Start(b)
	empty := b.TempDir() // no list entries: the replicas start empty
	a := startVigilConfig(b, empty, replicaConfig(r.Addr(), "p:", "a", 250*time.Millisecond))
	rb := startVigilConfig(b, empty, replicaConfig(r.Addr(), "p:", "b", 250*time.Millisecond))
	defer a.stop()
	defer rb.stop()
	cc := dial(b, rb.addr)
	defer cc.Close()
	az := authv3.NewAuthorizationClient(cc)
	ctx := context.Background()
	// Both replicas follow the stream before the first sample.
	if _, err := az.Check(ctx, checkFrom("10.250.0.1")); err != nil {
		b.Fatal(err)
	}
	var fromSend, fromAnswer, post []float64
	for k := range n {
		ip := fmt.Sprintf("10.251.%d.%d", k>>8&255, k&255)
		req := checkFrom(ip)
		if r, err := az.Check(ctx, req); err != nil || r.GetStatus().GetCode() != 0 {
			b.Fatalf("%s refused before it was blocked: %v %v", ip, r.GetStatus(), err)
		}
		sent := time.Now()
		a.vigil.MustDo("POST", "/v1/blocklist", `{"kind":"ip","value":"`+ip+`","ttl":"1h","reason":"propagation bench"}`, http.StatusCreated)
		answered := time.Now()
		for {
			r, err := az.Check(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			if r.GetStatus().GetCode() != 0 {
				break
			}
			if time.Since(sent) > 5*time.Second {
				b.Fatalf("%s: not refused by the other replica within 5s", ip)
			}
		}
		refused := time.Now()
		fromSend = append(fromSend, float64(refused.Sub(sent))/1e3)
		fromAnswer = append(fromAnswer, float64(refused.Sub(answered))/1e3)
		post = append(post, float64(answered.Sub(sent))/1e3)
	}
	lagSum, lagN := metricSum(metrics(b, rb.adminAddr), "vigil_redis_propagation_seconds")
	b.Logf("block on A to refusal on B, %d samples: from the POST's sending median %.0fµs p99 %.0fµs max %.0fµs; from its answer median %.0fµs p99 %.0fµs; the POST itself median %.0fµs p99 %.0fµs; B's vigil_redis_propagation_seconds mean %.0fµs over %.0f events",
		n, quantile(fromSend, 0.5), quantile(fromSend, 0.99), quantile(fromSend, 1), quantile(fromAnswer, 0.5), quantile(fromAnswer, 0.99),
		quantile(post, 0.5), quantile(post, 0.99), 1e6*lagSum/math.Max(lagN, 1), lagN)
	b.ReportMetric(quantile(fromSend, 0.5), "p50_µs")
	b.ReportMetric(quantile(fromSend, 0.99), "p99_µs")
}
