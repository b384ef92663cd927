package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/testlog"
)

func notifLogger(level zerolog.Level) (zerolog.Logger, *testlog.Buffer) {
	buf := &testlog.Buffer{}
	return zerolog.New(buf).Level(level), buf
}

func notifAttack(id string, typ detect.AttackType) *detect.Attack {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return &detect.Attack{
		ID: id, Type: typ, API: "shop",
		Identity:   detect.AttackIdentity{Kind: "ip", Value: "203.0.113.7"},
		FirstSeen:  at.Add(-time.Minute),
		DetectedAt: at,
		Variables:  []detect.VariableValue{{Name: "errors_4xx", Observed: 40, Tn: 5, Tx: 10, DeviationPct: 300}},
		ClientIPs:  []string{"203.0.113.7"},
		Action:     detect.ActionBlocked,
	}
}

// notifEventually polls cond until it holds or the deadline passes.
func notifEventually(t *testing.T, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, fmt.Sprintf(format, args...))
		}
		runtime.Gosched()
		<-time.After(time.Millisecond)
	}
}

// notifRun runs n until the returned stop is called (or the test ends).
func notifRun(t *testing.T, n *Notifier) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return stop
}

// notifHangingServer accepts requests and answers none until the test ends
// or the client gives up. inflight counts requests being held.
func notifHangingServer(t *testing.T) (srv *httptest.Server, inflight *atomic.Int64) {
	t.Helper()
	release := make(chan struct{})
	inflight = &atomic.Int64{}
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		defer inflight.Add(-1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return srv, inflight
}

// notifRecorder is a receiver answering with scripted statuses (the last one
// repeats) and recording what it got.
type notifRecorder struct {
	mu       sync.Mutex
	statuses []int
	headers  []http.Header
	bodies   [][]byte
	times    []time.Time
	extra    func(w http.ResponseWriter, n int) // sets response headers before the status
}

func (rec *notifRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	n := len(rec.bodies)
	rec.headers = append(rec.headers, r.Header.Clone())
	rec.bodies = append(rec.bodies, body)
	rec.times = append(rec.times, time.Now())
	status := http.StatusOK
	if len(rec.statuses) > 0 {
		status = rec.statuses[min(n, len(rec.statuses)-1)]
	}
	extra := rec.extra
	rec.mu.Unlock()
	if r.Method != http.MethodPost {
		status = http.StatusMethodNotAllowed
	}
	if extra != nil {
		extra(w, n)
	}
	w.WriteHeader(status)
}

func (rec *notifRecorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.bodies)
}

func notifRecorderServer(t *testing.T, statuses ...int) (*httptest.Server, *notifRecorder) {
	t.Helper()
	rec := &notifRecorder{statuses: statuses}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return srv, rec
}

func TestNotifierDeliversAttack(t *testing.T) {
	srv, rec := notifRecorderServer(t)
	log, _ := notifLogger(zerolog.DebugLevel)
	n := New(config.NotifyConfig{Webhooks: []config.WebhookConfig{{
		URL:     srv.URL + "/hook",
		Headers: map[string]string{"Authorization": "Bearer receiver-token", "X-Team": "secops"},
	}}}, log, srv.Client())
	notifRun(t, n)

	a := notifAttack("atk-1", detect.AttackExcessiveErrors)
	n.Notify(a)
	notifEventually(t, 5*time.Second, func() bool { return n.Stats()[0].Sent == 1 }, "one delivery")

	if got := rec.count(); got != 1 {
		t.Fatalf("receiver got %d requests, want 1", got)
	}
	h := rec.headers[0]
	for name, want := range map[string]string{
		"Content-Type": "application/json", "User-Agent": "vigil-webhook/1",
		"Authorization": "Bearer receiver-token", "X-Team": "secops",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	var payload struct {
		Event  string          `json:"event"`
		Attack json.RawMessage `json:"attack"`
	}
	if err := json.Unmarshal(rec.bodies[0], &payload); err != nil {
		t.Fatalf("body %s: %v", rec.bodies[0], err)
	}
	if payload.Event != "attack" {
		t.Errorf("event = %q, want attack", payload.Event)
	}
	want, _ := json.Marshal(a)
	if !bytes.Equal(payload.Attack, want) {
		t.Errorf("attack =\n%s\nwant\n%s", payload.Attack, want)
	}
	if s := n.Stats()[0]; s.Failed != 0 || s.Dropped != 0 || s.QueueDepth != 0 {
		t.Errorf("stats = %+v, want only one sent", s)
	}
}

func TestNotifierRetriesServerErrors(t *testing.T) {
	srv, rec := notifRecorderServer(t, 500, 502, 200)
	log, _ := notifLogger(zerolog.DebugLevel)
	n := New(config.NotifyConfig{Webhooks: []config.WebhookConfig{{URL: srv.URL}}, Backoff: time.Millisecond}, log, nil)
	notifRun(t, n)

	n.Notify(notifAttack("atk-1", detect.AttackProbing))
	notifEventually(t, 5*time.Second, func() bool { return n.Stats()[0].Sent == 1 }, "delivery after retries")
	if got := rec.count(); got != 3 {
		t.Errorf("receiver got %d requests, want 3", got)
	}
	if s := n.Stats()[0]; s.Failed != 2 || s.Dropped != 0 {
		t.Errorf("stats = %+v, want 2 failed attempts and nothing dropped", s)
	}
}

func TestNotifierGivesUpAfterMaxRetries(t *testing.T) {
	srv, rec := notifRecorderServer(t, 503)
	log, logs := notifLogger(zerolog.InfoLevel)
	n := New(config.NotifyConfig{Webhooks: []config.WebhookConfig{{URL: srv.URL}}, Backoff: time.Millisecond, MaxRetries: 2}, log, nil)
	notifRun(t, n)

	n.Notify(notifAttack("atk-1", detect.AttackProbing))
	notifEventually(t, 5*time.Second, func() bool { return n.Stats()[0].Dropped == 1 }, "record dropped")
	if got := rec.count(); got != 3 {
		t.Errorf("receiver got %d requests, want 1 + 2 retries", got)
	}
	if s := n.Stats()[0]; s.Failed != 3 || s.Sent != 0 {
		t.Errorf("stats = %+v, want 3 failed attempts", s)
	}
	notifEventually(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), "retries exhausted") }, "the log line")
	if got := strings.Count(logs.String(), "retries exhausted"); got != 1 {
		t.Errorf("final failure logged %d times, want once:\n%s", got, logs)
	}
}

func TestNotifierDoesNotRetryClientErrors(t *testing.T) {
	srv, rec := notifRecorderServer(t, 400, 200)
	log, logs := notifLogger(zerolog.InfoLevel)
	n := New(config.NotifyConfig{Webhooks: []config.WebhookConfig{{URL: srv.URL + "/hook"}}, Backoff: time.Millisecond}, log, nil)
	notifRun(t, n)

	n.Notify(notifAttack("atk-1", detect.AttackProbing))
	notifEventually(t, 5*time.Second, func() bool { return n.Stats()[0].Dropped == 1 }, "record dropped")
	if got := rec.count(); got != 1 {
		t.Errorf("receiver got %d requests, want 1 (400 is not retried)", got)
	}
	if s := n.Stats()[0]; s.Failed != 1 || s.Sent != 0 {
		t.Errorf("stats = %+v, want 1 failed attempt", s)
	}
	// The counter moves before the log line is written.
	notifEventually(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), "atk-1") }, "the log line")
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &line); err != nil {
		t.Fatalf("want exactly one log line, got %q: %v", logs, err)
	}
	if line["level"] != "warn" || line["status"] != float64(400) || line["webhook"] != srv.URL+"/hook" || line["attack_id"] != "atk-1" {
		t.Errorf("log line = %v", line)
	}
}

func TestNotifierHonoursRetryAfter(t *testing.T) {
	srv, rec := notifRecorderServer(t, 429, 200)
	rec.extra = func(w http.ResponseWriter, n int) {
		if n == 0 {
			w.Header().Set("Retry-After", "1")
		}
	}
	log, _ := notifLogger(zerolog.InfoLevel)
	n := New(config.NotifyConfig{Webhooks: []config.WebhookConfig{{URL: srv.URL}}, Backoff: time.Millisecond}, log, nil)
	notifRun(t, n)

	n.Notify(notifAttack("atk-1", detect.AttackProbing))
	notifEventually(t, 10*time.Second, func() bool { return n.Stats()[0].Sent == 1 }, "delivery after 429")
	rec.mu.Lock()
	gap := rec.times[1].Sub(rec.times[0])
	rec.mu.Unlock()
	if gap < 900*time.Millisecond {
		t.Errorf("retried %s after a 429 with Retry-After: 1, want about 1s", gap)
	}
	if s := n.Stats()[0]; s.Failed != 1 {
		t.Errorf("stats = %+v, want 1 failed attempt", s)
	}
}

func TestNotifierRetryAfterParsing(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		status int
		value  string
		want   time.Duration
	}{
		{429, "2", 2 * time.Second},
		{503, "0", 0},
		{503, "3600", config.NotifyMaxBackoff},
		{429, "99999999999999", 0},
		{429, now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{429, now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{429, "soon", 0},
		{429, "-5", 0},
		{429, "", 0},
		{500, "5", 0},
	} {
		resp := &http.Response{StatusCode: tc.status, Header: http.Header{}}
		if tc.value != "" {
			resp.Header.Set("Retry-After", tc.value)
		}
		if got := webhookRetryAfter(resp, now); got != tc.want {
			t.Errorf("%d with Retry-After %q: %s, want %s", tc.status, tc.value, got, tc.want)
		}
	}
}

func TestNotifierBackoffDoublesWithJitterAndCap(t *testing.T) {
	base := 100 * time.Millisecond
	for retry := range 15 {
		full := min(base<<retry, config.NotifyMaxBackoff)
		for range 50 {
			if d := webhookBackoff(base, retry); d < full/2 || d > full {
				t.Fatalf("retry %d: delay %s outside [%s, %s]", retry, d, full/2, full)
			}
		}
	}
}

func TestNotifyNeverBlocksOnHangingReceiver(t *testing.T) {
	hang, inflight := notifHangingServer(t)
	log, _ := notifLogger(zerolog.InfoLevel)
	const queue, total = 100, 10_000
	n := New(config.NotifyConfig{Webhooks: []config.WebhookConfig{{URL: hang.URL, Timeout: time.Minute}}, QueueSize: queue}, log, nil)
	n.grace = 10 * time.Millisecond
	notifRun(t, n)

	n.Notify(notifAttack("first", detect.AttackProbing))
	notifEventually(t, 5*time.Second, func() bool { return inflight.Load() == 1 }, "the receiver holds the first delivery")

	a := notifAttack("", detect.AttackProbing)
	for i := range 64 {
		a.ClientIPs = append(a.ClientIPs, fmt.Sprintf("198.51.100.%d", i))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	for i := range total {
		a.ID = fmt.Sprintf("atk-%d", i)
		n.Notify(a)
	}
	elapsed := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)

	// Generous for the race detector; a blocking Notify never returns.
	if elapsed > 5*time.Second {
		t.Errorf("%d notifications took %s", total, elapsed)
	}
	s := n.Stats()[0]
	if s.QueueDepth != queue || s.QueueCapacity != queue {
		t.Errorf("queue depth %d of %d, want full at %d", s.QueueDepth, s.QueueCapacity, queue)
	}
	if s.Dropped != total-queue || s.Sent != 0 {
		t.Errorf("stats = %+v, want %d dropped", s, total-queue)
	}
	// Each record is over 1 KiB; keeping all of them would hold > 10 MiB.
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 4<<20 {
		t.Errorf("heap grew by %d bytes for a queue of %d", grew, queue)
	}
}

func TestNotifierHangingReceiverDoesNotDelayOthers(t *testing.T) {
	hang, inflight := notifHangingServer(t)
	fast, rec := notifRecorderServer(t)
	log, _ := notifLogger(zerolog.InfoLevel)
	n := New(config.NotifyConfig{Webhooks: []config.WebhookConfig{
		{URL: hang.URL, Timeout: time.Minute},
		{URL: fast.URL},
	}}, log, nil)
	n.grace = 10 * time.Millisecond
	notifRun(t, n)

	const total = 20
	for i := range total {
		n.Notify(notifAttack(fmt.Sprintf("atk-%d", i), detect.AttackProbing))
	}
	notifEventually(t, 5*time.Second, func() bool { return n.Stats()[1].Sent == total },
		"all %d records at the fast webhook", total)
	if got := rec.count(); got != total {
		t.Errorf("fast receiver got %d records, want %d", got, total)
	}
	// The hanging webhook's first request may reach its receiver after the
	// fast one is done: its arrival is polled for, not assumed.
	notifEventually(t, 5*time.Second, func() bool { return inflight.Load() >= 1 }, "the hanging receiver holds a request")
	if got := inflight.Load(); got != 1 {
		t.Errorf("hanging receiver holds %d requests, want 1", got)
	}
	stats := n.Stats()
	if stats[0].Sent != 0 || stats[0].QueueDepth != total-1 {
		t.Errorf("hanging webhook stats = %+v, want %d queued", stats[0], total-1)
	}
	if stats[1].Failed != 0 || stats[1].Dropped != 0 {
		t.Errorf("fast webhook stats = %+v, want no failures", stats[1])
	}
}

func TestNotifierTypesFilter(t *testing.T) {
	onlyDecoys, decoyRec := notifRecorderServer(t)
	all, allRec := notifRecorderServer(t)
	log, _ := notifLogger(zerolog.InfoLevel)
	n := New(config.NotifyConfig{Webhooks: []config.WebhookConfig{
		{URL: onlyDecoys.URL, Types: []string{"decoy", "stolen_token"}},
		{URL: all.URL},
	}}, log, nil)
	notifRun(t, n)

	n.Notify(notifAttack("atk-probing", detect.AttackProbing))
	n.Notify(notifAttack("atk-decoy", detect.AttackDecoy))
	n.Notify(notifAttack("atk-bola", detect.AttackBOLAEnumeration))
	notifEventually(t, 5*time.Second, func() bool { s := n.Stats(); return s[0].Sent == 1 && s[1].Sent == 3 }, "deliveries")
	if got := allRec.count(); got != 3 {
		t.Errorf("unfiltered webhook got %d records, want 3", got)
	}

	decoyRec.mu.Lock()
	defer decoyRec.mu.Unlock()
	if len(decoyRec.bodies) != 1 || !bytes.Contains(decoyRec.bodies[0], []byte(`"id":"atk-decoy"`)) {
		t.Errorf("filtered webhook got %q, want the decoy attack only", decoyRec.bodies)
	}
	if s := n.Stats(); s[0].Dropped != 0 || s[1].Dropped != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestNotifierRunReturnsPromptlyAfterCancel(t *testing.T) {
	hang, inflight := notifHangingServer(t)
	log, logs := notifLogger(zerolog.InfoLevel)
	n := New(config.NotifyConfig{Webhooks: []config.WebhookConfig{{URL: hang.URL, Timeout: time.Minute}}}, log, nil)
	n.grace = 50 * time.Millisecond
	stop := notifRun(t, n)

	for i := range 3 {
		n.Notify(notifAttack(fmt.Sprintf("atk-%d", i), detect.AttackProbing))
	}
	notifEventually(t, 5*time.Second, func() bool { return inflight.Load() == 1 }, "a delivery in flight")

	start := time.Now()
	stop()
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Run took %s to return after cancel", elapsed)
	}
	if s := n.Stats()[0]; s.Dropped != 3 || s.QueueDepth != 0 || s.Sent != 0 {
		t.Errorf("stats = %+v, want the 3 undelivered records dropped", s)
	}
	notifEventually(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), `"undelivered":3`) }, "the shutdown log line")
	if !strings.Contains(logs.String(), `"undelivered":3`) {
		t.Errorf("shutdown not logged:\n%s", logs)
	}
	n.Notify(notifAttack("late", detect.AttackProbing))
	if s := n.Stats()[0]; s.Dropped != 4 || s.QueueDepth != 0 {
		t.Errorf("after Run: stats = %+v, want the late record dropped", s)
	}
}

func TestNotifierKeepsSecretsOutOfLogs(t *testing.T) {
	var basicUser, basicPass atomic.Value
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		basicUser.Store(u)
		basicPass.Store(p)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(flaky.Close)
	denied, _ := notifRecorderServer(t, http.StatusUnauthorized)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // connections are refused from now on

	log, logs := notifLogger(zerolog.DebugLevel)
	withUserinfo := func(raw, path string) string {
		return strings.Replace(raw, "http://", "http://alice:userinfo-secret@", 1) + path
	}
	cfg := config.NotifyConfig{
		Webhooks: []config.WebhookConfig{
			{URL: withUserinfo(flaky.URL, "/flaky?token=query-secret")},
			{URL: denied.URL + "/denied", Headers: map[string]string{"Authorization": "Bearer header-secret", "X-Api-Key": "key-secret"}},
			{URL: withUserinfo(dead.URL, "/dead?sig=query-secret"), Headers: map[string]string{"X-Api-Key": "key-secret"}},
		},
		Backoff: time.Millisecond, MaxRetries: 1,
	}
	if errs := cfg.Validate(); len(errs) != 0 {
		t.Fatal(errs)
	}
	n := New(cfg, log, nil)
	notifRun(t, n)
	n.Notify(notifAttack("atk-1", detect.AttackProbing))
	notifEventually(t, 5*time.Second, func() bool {
		for _, s := range n.Stats() {
			if s.Dropped != 1 {
				return false
			}
		}
		return true
	}, "every webhook gives up")

	if basicUser.Load() != "alice" || basicPass.Load() != "userinfo-secret" {
		t.Errorf("userinfo not sent as basic auth: %v:%v", basicUser.Load(), basicPass.Load())
	}
	// The counters move before the log lines are written.
	notifEventually(t, 5*time.Second, func() bool {
		o := logs.String()
		return strings.Count(o, "retries exhausted") >= 1 && strings.Contains(o, "rejected")
	}, "the final log lines")
	out := logs.String()
	for _, secret := range []string{"userinfo-secret", "alice", "query-secret", "header-secret", "key-secret", "token=", "sig="} {
		if strings.Contains(out, secret) {
			t.Errorf("logs reveal %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{flaky.URL + "/flaky", denied.URL + "/denied", dead.URL + "/dead", "will retry", "retries exhausted", "rejected"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	for _, s := range n.Stats() {
		if strings.Contains(s.URL, "secret") || strings.Contains(s.Name, "secret") {
			t.Errorf("stats reveal a secret: %+v", s)
		}
	}
}

func TestNotifierCollectors(t *testing.T) {
	ok, _ := notifRecorderServer(t)
	rejecting, _ := notifRecorderServer(t, http.StatusBadRequest)
	log, _ := notifLogger(zerolog.InfoLevel)
	n := New(config.NotifyConfig{Webhooks: []config.WebhookConfig{
		{URL: strings.Replace(ok.URL, "http://", "http://bob:pw@", 1) + "/a?k=v"},
		{URL: rejecting.URL},
	}}, log, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(n.Collectors()...)
	notifRun(t, n)
	n.Notify(notifAttack("atk-1", detect.AttackProbing))
	notifEventually(t, 5*time.Second, func() bool {
		s := n.Stats()
		return s[0].Sent == 1 && s[1].Dropped == 1
	}, "deliveries")

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var label string
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "webhook" {
					label = lp.GetValue()
				}
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			got[f.GetName()+"{"+label+"}"] = v
		}
	}
	okLabel := "0:" + strings.TrimPrefix(ok.URL, "http://")
	rejLabel := "1:" + strings.TrimPrefix(rejecting.URL, "http://")
	want := map[string]float64{
		"vigil_webhook_sent_total{" + okLabel + "}":      1,
		"vigil_webhook_failures_total{" + okLabel + "}":  0,
		"vigil_webhook_dropped_total{" + okLabel + "}":   0,
		"vigil_webhook_queue_depth{" + okLabel + "}":     0,
		"vigil_webhook_sent_total{" + rejLabel + "}":     0,
		"vigil_webhook_failures_total{" + rejLabel + "}": 1,
		"vigil_webhook_dropped_total{" + rejLabel + "}":  1,
		"vigil_webhook_queue_depth{" + rejLabel + "}":    0,
	}
	if len(got) != len(want) {
		t.Errorf("got series %v, want %v", got, want)
	}
	for k, v := range want {
		if g, present := got[k]; !present || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, present, v)
		}
	}
}

func TestNotifierNilAndEmpty(t *testing.T) {
	var n *Notifier
	n.Notify(notifAttack("atk-1", detect.AttackProbing)) // must not panic
	if n.Stats() != nil {
		t.Error("nil notifier has stats")
	}
	log, _ := notifLogger(zerolog.InfoLevel)
	empty := New(config.NotifyConfig{}, log, nil)
	empty.Notify(notifAttack("atk-1", detect.AttackProbing))
	stop := notifRun(t, empty)
	stop()
	if s := empty.Stats(); len(s) != 0 {
		t.Errorf("stats = %+v", s)
	}
}
