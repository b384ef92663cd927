package notify

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/server/config"
)

// FuzzRetryAfter reads arbitrary Retry-After values, as a webhook receiver
// sends them: the wait is never negative nor longer than the backoff cap,
// is asked for only by 429 and 503, and a number of seconds is taken as
// such.
func FuzzRetryAfter(f *testing.F) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, v := range []string{"2", "0", "3600", "99999999999999", now.Add(30 * time.Second).Format(http.TimeFormat),
		now.Add(-time.Hour).Format(http.TimeFormat), "soon", "-5", "", " 7 ", "4294967295", "4294967296", "Sun, 06 Nov 1994 08:49:37 GMT",
		"Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"} {
		f.Add(429, v)
		f.Add(503, v)
	}
	f.Add(500, "5")
	f.Fuzz(func(t *testing.T, status int, value string) {
		resp := &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {value}}}
		got := webhookRetryAfter(resp, now)
		if got < 0 || got > config.NotifyMaxBackoff {
			t.Fatalf("%d with Retry-After %q: %s, outside [0, %s]", status, value, got, config.NotifyMaxBackoff)
		}
		if status != 429 && status != 503 && got != 0 {
			t.Fatalf("%d with Retry-After %q: %s; only 429 and 503 ask to wait", status, value, got)
		}
		if secs, err := strconv.ParseUint(strings.TrimSpace(value), 10, 32); err == nil && (status == 429 || status == 503) {
			if want := min(time.Duration(secs)*time.Second, config.NotifyMaxBackoff); got != want {
				t.Fatalf("%d with Retry-After %q: %s, want %s", status, value, got, want)
			}
		}
	})
}
