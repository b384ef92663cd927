package config

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// Webhook notification defaults and limits. A zero value in NotifyConfig
// means the default; negative values and values past the limits are
// configuration errors.
const (
	notifyDefaultTimeout    = 5 * time.Second
	notifyDefaultQueueSize  = 1000
	notifyDefaultMaxRetries = 5
	notifyDefaultBackoff    = time.Second

	notifyMaxTimeout   = 5 * time.Minute
	notifyMaxQueueSize = 1_000_000
	notifyMaxRetries   = 100
	// NotifyMaxBackoff caps every retry delay, Retry-After included.
	NotifyMaxBackoff = time.Minute
)

// WithDefaults returns c with every zero value replaced by its default.
func (c NotifyConfig) WithDefaults() NotifyConfig {
	c.QueueSize = cmp.Or(c.QueueSize, notifyDefaultQueueSize)
	c.MaxRetries = cmp.Or(c.MaxRetries, notifyDefaultMaxRetries)
	c.Backoff = cmp.Or(c.Backoff, notifyDefaultBackoff)
	c.Webhooks = slices.Clone(c.Webhooks)
	for i := range c.Webhooks {
		c.Webhooks[i].Timeout = cmp.Or(c.Webhooks[i].Timeout, notifyDefaultTimeout)
	}
	return c
}

// WebhookConfig is one entry of notify.webhooks[] in the config.
type WebhookConfig struct {
	URL string `yaml:"url"`
	// Headers are sent with every delivery, e.g. Authorization for the
	// receiver. Their values are never logged.
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds one attempt; default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// Types lists the attack types to send; empty sends all.
	Types []string `yaml:"types"`
}

// NotifyConfig configures where attack records are sent.
type NotifyConfig struct {
	Webhooks []WebhookConfig `yaml:"webhooks"`
	// QueueSize bounds the records waiting per webhook; default 1000.
	QueueSize int `yaml:"queue_size"`
	// MaxRetries is the number of retries after a failed attempt; default 5.
	MaxRetries int `yaml:"max_retries"`
	// Backoff is the first retry delay, doubling on each retry, capped at
	// one minute, with jitter; default 1s.
	Backoff time.Duration `yaml:"backoff"`
}

// webhookReservedHeaders are set by Vigil or by the HTTP client and cannot
// be configured.
var webhookReservedHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Content-Type": true, "User-Agent": true,
}

// Validate checks the notify section and reports every problem at once.
// Messages name header names but never their values, and show URLs without
// userinfo or query.
func (c NotifyConfig) Validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("notify.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.QueueSize < 0 || c.QueueSize > notifyMaxQueueSize {
		bad("queue_size", "must be between 0 (default %d) and %d, got %d", notifyDefaultQueueSize, notifyMaxQueueSize, c.QueueSize)
	}
	if c.MaxRetries < 0 || c.MaxRetries > notifyMaxRetries {
		bad("max_retries", "must be between 0 (default %d) and %d, got %d", notifyDefaultMaxRetries, notifyMaxRetries, c.MaxRetries)
	}
	if c.Backoff < 0 || c.Backoff > NotifyMaxBackoff {
		bad("backoff", "must be between 0 (default %s) and %s, got %s", notifyDefaultBackoff, NotifyMaxBackoff, c.Backoff)
	}
	for i, w := range c.Webhooks {
		field := fmt.Sprintf("webhooks[%d]", i)
		if err := checkWebhookURL(w.URL); err != nil {
			bad(field+".url", "%v", err)
		}
		if w.Timeout < 0 || w.Timeout > notifyMaxTimeout {
			bad(field+".timeout", "must be between 0 (default %s) and %s, got %s", notifyDefaultTimeout, notifyMaxTimeout, w.Timeout)
		}
		seen := map[string]string{}
		// Sorted, so that the messages come in a stable order.
		for _, name := range slices.Sorted(maps.Keys(w.Headers)) {
			hf := fmt.Sprintf("%s.headers[%q]", field, name)
			switch {
			case !validHeaderName(name):
				bad(hf, "not a valid header name")
				continue
			case webhookReservedHeaders[http.CanonicalHeaderKey(name)]:
				bad(hf, "is set by Vigil and cannot be configured")
			case !validHeaderValue(w.Headers[name]):
				bad(hf, "value contains control characters")
			}
			canon := http.CanonicalHeaderKey(name)
			if other, dup := seen[canon]; dup {
				bad(hf, "is also configured as %q", other)
			}
			seen[canon] = name
		}
		for j, t := range w.Types {
			if !detect.KnownAttackType(detect.AttackType(t)) {
				bad(fmt.Sprintf("%s.types[%d]", field, j), "unknown attack type %q", t)
			}
		}
	}
	return errs
}

// checkWebhookURL accepts absolute http and https URLs with a host. Its
// errors never repeat userinfo or query.
func checkWebhookURL(raw string) error {
	if raw == "" {
		return errors.New("must not be empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the raw URL, secrets included; keep its cause only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("not a valid URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%s: scheme must be http or https", RedactWebhookURL(u))
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%s: has no host", RedactWebhookURL(u))
	}
	return nil
}

// RedactWebhookURL shows a webhook URL without userinfo, query or fragment.
func RedactWebhookURL(u *url.URL) string {
	// Chat webhooks (Slack, Teams, Discord) carry their secret deeper in
	// the path: only its first segment is shown.
	path := u.Path
	if i := strings.IndexByte(strings.TrimPrefix(path, "/"), '/'); i >= 0 {
		path = path[:i+1] + "/..."
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: path}
	return r.String()
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 5.1).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue rejects control characters other than tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
