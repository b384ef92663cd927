// Package notify sends attack records to webhooks (notify.webhooks in the
// config): one queue and worker per receiver, retries with backoff and
// Retry-After, secrets kept out of logs and errors, Prometheus counters.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/server/config"
)

const (
	// notifyShutdownGrace is how long Run lets in-flight deliveries finish
	// once its context ends.
	notifyShutdownGrace = 5 * time.Second
	// notifyMaxDrain is how much of a response body is read so the
	// connection can be reused.
	notifyMaxDrain = 64 << 10

	webhookUserAgent = "vigil-webhook/1"
)

// Notifier sends attack records to webhooks. Notify only enqueues; Run
// delivers, with one worker per webhook so that a slow receiver holds up
// nobody else.
type Notifier struct {
	log    zerolog.Logger
	client *http.Client
	hooks  []*webhook
	grace  time.Duration

	started atomic.Bool
	// mu orders Notify against the end of Run: once stopped, nothing more
	// is queued and what is left has been counted as dropped.
	mu      sync.RWMutex
	stopped bool
}

// webhook is one receiver with its queue and counters.
type webhook struct {
	url        string // as configured, userinfo included (the client sends it as basic auth)
	redacted   string // for logs and stats
	label      string // metric label: index and host, bounded by the config
	header     http.Header
	timeout    time.Duration
	types      map[detect.AttackType]bool // nil: all
	maxRetries int
	backoff    time.Duration
	queue      chan webhookItem

	sent, failed, dropped atomic.Uint64
}

// webhookItem is one attack, marshalled when it was notified so that later
// changes to the record cannot race with delivery.
type webhookItem struct {
	id   string
	typ  detect.AttackType
	body []byte
}

// webhookPayload is the body of a delivery.
type webhookPayload struct {
	Event  string         `json:"event"`
	Attack *detect.Attack `json:"attack"`
}

// WebhookStats counts one webhook's deliveries.
type WebhookStats struct {
	// Name is the metric label: the webhook's index and host.
	Name string `json:"name"`
	// URL is the webhook URL without userinfo or query.
	URL string `json:"url"`
	// Sent counts records delivered (2xx).
	Sent uint64 `json:"sent"`
	// Failed counts failed attempts, retried or not.
	Failed uint64 `json:"failed"`
	// Dropped counts records given up on: queue full, not retriable,
	// retries exhausted, or left over at shutdown.
	Dropped       uint64 `json:"dropped"`
	QueueDepth    int    `json:"queue_depth"`
	QueueCapacity int    `json:"queue_capacity"`
}

// New builds a notifier for a validated cfg. A nil client gets one
// that does not follow redirects. No goroutine starts before Run.
func New(cfg config.NotifyConfig, log zerolog.Logger, client *http.Client) *Notifier {
	if client == nil {
		client = &http.Client{
			// A redirect would re-send the configured headers to wherever
			// the receiver points; treat it as a failed delivery instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	cfg = cfg.WithDefaults()
	queueSize, maxRetries, backoff := cfg.QueueSize, cfg.MaxRetries, cfg.Backoff
	n := &Notifier{log: log, client: client, grace: notifyShutdownGrace}
	for i, wc := range cfg.Webhooks {
		w := &webhook{
			url:        wc.URL,
			redacted:   wc.URL,
			label:      strconv.Itoa(i),
			header:     http.Header{},
			timeout:    wc.Timeout,
			maxRetries: maxRetries,
			backoff:    backoff,
			queue:      make(chan webhookItem, queueSize),
		}
		if u, err := url.Parse(wc.URL); err == nil {
			w.redacted = config.RedactWebhookURL(u)
			w.label = strconv.Itoa(i) + ":" + u.Host
		} else {
			w.redacted = "(invalid URL)"
		}
		for k, v := range wc.Headers {
			w.header.Set(k, v)
		}
		w.header.Set("Content-Type", "application/json")
		w.header.Set("User-Agent", webhookUserAgent)
		if len(wc.Types) > 0 {
			w.types = map[detect.AttackType]bool{}
			for _, t := range wc.Types {
				w.types[detect.AttackType(t)] = true
			}
		}
		n.hooks = append(n.hooks, w)
	}
	return n
}

// Notify queues a for every webhook that wants its type. It never blocks: a
// full queue drops the record and counts it. Safe on a nil Notifier.
func (n *Notifier) Notify(a *detect.Attack) {
	if n == nil || a == nil {
		return
	}
	var item webhookItem
	n.mu.RLock()
	defer n.mu.RUnlock()
	for _, w := range n.hooks {
		if w.types != nil && !w.types[a.Type] {
			continue
		}
		if n.stopped {
			w.dropped.Add(1)
			continue
		}
		if item.body == nil {
			body, err := json.Marshal(webhookPayload{Event: "attack", Attack: a})
			if err != nil {
				n.log.Error().Err(err).Str("attack_id", a.ID).Msg("webhook: cannot encode attack")
				return
			}
			item = webhookItem{id: a.ID, typ: a.Type, body: body}
		}
		select {
		case w.queue <- item:
		default:
			w.dropped.Add(1)
		}
	}
}

// Run delivers queued records until ctx ends, with one worker per webhook.
// Then it gives in-flight deliveries up to a grace period, counts whatever
// is left as dropped, and returns. Call it once.
func (n *Notifier) Run(ctx context.Context) {
	if !n.started.CompareAndSwap(false, true) {
		n.log.Error().Msg("webhook: notifier already running")
		return
	}
	// Deliveries outlive ctx by the grace period at most.
	deliveryCtx, cancelDeliveries := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDeliveries()
	var wg sync.WaitGroup
	abandoned := make([]atomic.Uint64, len(n.hooks))
	for i, w := range n.hooks {
		wg.Go(func() { w.run(ctx, deliveryCtx, n, &abandoned[i]) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	<-ctx.Done()
	grace := time.NewTimer(n.grace)
	select {
	case <-done:
		grace.Stop()
	case <-grace.C:
		cancelDeliveries()
		<-done
	}

	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
	for i, w := range n.hooks {
		left := abandoned[i].Load()
	drain:
		for {
			select {
			case <-w.queue:
				left++
			default:
				break drain
			}
		}
		if left > 0 {
			w.dropped.Add(left)
			n.log.Warn().Str("webhook", w.redacted).Uint64("undelivered", left).
				Msg("webhook: attack records left undelivered at shutdown")
		}
	}
}

// run is one webhook's worker. Attempts run under deliveryCtx, which
// outlives ctx by the shutdown grace; waits between retries end with ctx.
func (w *webhook) run(ctx, deliveryCtx context.Context, n *Notifier, abandoned *atomic.Uint64) {
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return
		case item := <-w.queue:
			if ctx.Err() != nil || !w.deliver(ctx, deliveryCtx, n, item) {
				abandoned.Add(1)
			}
		}
	}
}

// deliver tries item until it is delivered, fails for good (both reported
// as true: the record is accounted for) or shutdown interrupts it (false).
func (w *webhook) deliver(ctx, deliveryCtx context.Context, n *Notifier, item webhookItem) bool {
	for attempt := 0; ; attempt++ {
		status, retryAfter, err := w.attempt(deliveryCtx, n.client, item.body)
		if err == nil && status >= 200 && status < 300 {
			w.sent.Add(1)
			return true
		}
		if deliveryCtx.Err() != nil {
			// The grace period ran out with the attempt in flight.
			return false
		}
		w.failed.Add(1)
		retriable := err != nil || status == http.StatusTooManyRequests || status >= 500
		if !retriable || attempt >= w.maxRetries {
			w.dropped.Add(1)
			ev := n.log.Warn().Str("webhook", w.redacted).Str("attack_id", item.id).
				Str("attack_type", string(item.typ)).Int("attempts", attempt+1)
			if err != nil {
				ev = ev.Str("error", err.Error())
			} else {
				ev = ev.Int("status", status)
			}
			if retriable {
				ev.Msg("webhook: delivery failed, retries exhausted; record dropped")
			} else {
				ev.Msg("webhook: delivery rejected; record dropped")
			}
			return true
		}
		delay := max(webhookBackoff(w.backoff, attempt), retryAfter)
		if e := n.log.Debug(); e.Enabled() {
			e = e.Str("webhook", w.redacted).Str("attack_id", item.id).Int("attempt", attempt+1).Dur("retry_in", delay)
			if err != nil {
				e = e.Str("error", err.Error())
			} else {
				e = e.Int("status", status)
			}
			e.Msg("webhook: attempt failed, will retry")
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// attempt posts body once. It returns the status, the Retry-After delay if
// the receiver asked for one, or a transport error without the URL in it.
func (w *webhook) attempt(ctx context.Context, client *http.Client, body []byte) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, errors.New("cannot build request")
	}
	req.Header = w.header.Clone()
	resp, err := client.Do(req)
	if err != nil {
		// url.Error repeats the URL, query included; keep the cause only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, notifyMaxDrain))
	return resp.StatusCode, webhookRetryAfter(resp, time.Now()), nil
}

// webhookBackoff is the delay before retry number retry+1: base doubled
// retry times, capped, with equal jitter (between half and all of it).
func webhookBackoff(base time.Duration, retry int) time.Duration {
	d := max(base, 0)
	for i := 0; i < retry && d < config.NotifyMaxBackoff; i++ {
		d *= 2
	}
	d = min(d, config.NotifyMaxBackoff)
	half := d / 2
	return half + rand.N(d-half+1)
}

// webhookRetryAfter reads Retry-After (seconds or HTTP date) on 429 and 503
// answers, capped at the maximum backoff.
func webhookRetryAfter(resp *http.Response, now time.Time) time.Duration {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return min(time.Duration(secs)*time.Second, config.NotifyMaxBackoff)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), config.NotifyMaxBackoff)
	}
	return 0
}

// Stats returns each webhook's counters, in configuration order.
func (n *Notifier) Stats() []WebhookStats {
	if n == nil {
		return nil
	}
	out := make([]WebhookStats, 0, len(n.hooks))
	for _, w := range n.hooks {
		out = append(out, WebhookStats{
			Name: w.label, URL: w.redacted,
			Sent: w.sent.Load(), Failed: w.failed.Load(), Dropped: w.dropped.Load(),
			QueueDepth: len(w.queue), QueueCapacity: cap(w.queue),
		})
	}
	return out
}

// Collectors exposes the counters to Prometheus, labelled by webhook (index
// and host, so bounded by the configuration).
func (n *Notifier) Collectors() []prometheus.Collector {
	return []prometheus.Collector{notifierCollector{n}}
}

var (
	webhookSentDesc = prometheus.NewDesc("vigil_webhook_sent_total",
		"Attack records delivered to the webhook.", []string{"webhook"}, nil)
	webhookFailuresDesc = prometheus.NewDesc("vigil_webhook_failures_total",
		"Failed delivery attempts to the webhook, retried or not.", []string{"webhook"}, nil)
	webhookDroppedDesc = prometheus.NewDesc("vigil_webhook_dropped_total",
		"Attack records not delivered to the webhook: queue full, rejected, retries exhausted or left at shutdown.", []string{"webhook"}, nil)
	webhookQueueDesc = prometheus.NewDesc("vigil_webhook_queue_depth",
		"Attack records waiting for the webhook.", []string{"webhook"}, nil)
)

// notifierCollector reads the notifier's counters at scrape time.
type notifierCollector struct{ n *Notifier }

var _ prometheus.Collector = notifierCollector{}

// Describe implements prometheus.Collector.
func (c notifierCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- webhookSentDesc
	ch <- webhookFailuresDesc
	ch <- webhookDroppedDesc
	ch <- webhookQueueDesc
}

// Collect implements prometheus.Collector.
func (c notifierCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.n.Stats() {
		ch <- prometheus.MustNewConstMetric(webhookSentDesc, prometheus.CounterValue, float64(s.Sent), s.Name)
		ch <- prometheus.MustNewConstMetric(webhookFailuresDesc, prometheus.CounterValue, float64(s.Failed), s.Name)
		ch <- prometheus.MustNewConstMetric(webhookDroppedDesc, prometheus.CounterValue, float64(s.Dropped), s.Name)
		ch <- prometheus.MustNewConstMetric(webhookQueueDesc, prometheus.GaugeValue, float64(s.QueueDepth), s.Name)
	}
}
