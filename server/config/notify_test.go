package config

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestNotifyConfigValidate(t *testing.T) {
	good := NotifyConfig{
		Webhooks: []WebhookConfig{
			{URL: "https://hooks.example.com/vigil", Headers: map[string]string{"Authorization": "Bearer x"}, Timeout: 2 * time.Second, Types: []string{"probing", "decoy", "sql_injection", "mass_assignment"}},
			{URL: "http://10.0.0.5:8080/in?team=sec"},
		},
		QueueSize: 10, MaxRetries: 3, Backoff: 500 * time.Millisecond,
	}
	if errs := good.Validate(); len(errs) != 0 {
		t.Errorf("good config: %v", errs)
	}
	if errs := (NotifyConfig{}).Validate(); len(errs) != 0 {
		t.Errorf("zero config: %v", errs)
	}

	bad := NotifyConfig{
		Webhooks: []WebhookConfig{
			{URL: "ftp://user:ftp-secret@files.example.com/drop?key=query-secret"},
			{URL: "not a url at all"},
			{URL: "http://u:pw-secret@[::1"},
			{URL: ""},
			{URL: "https:///path-only"},
			{URL: "https://ok.example.com", Timeout: -time.Second, Types: []string{"probing", "sqli"},
				Headers: map[string]string{"Bad Name": "v", "X-Ok": "line\r\nInjected: header-secret", "Content-Type": "text/plain", "x-dup": "a", "X-Dup": "b"}},
		},
		QueueSize: -1, MaxRetries: -2, Backoff: -time.Second,
	}
	errs := bad.Validate()
	var text []string
	for _, err := range errs {
		text = append(text, err.Error())
	}
	all := strings.Join(text, "\n")
	want := []string{
		"notify.queue_size: must be between 0",
		"notify.max_retries: must be between 0",
		"notify.backoff: must be between 0",
		"notify.webhooks[0].url: ftp://files.example.com/drop: scheme must be http or https",
		// It parses as a relative path, shown escaped.
		"notify.webhooks[1].url: not%20a%20url%20at%20all: scheme must be http or https",
		"notify.webhooks[2].url: not a valid URL",
		"notify.webhooks[3].url: must not be empty",
		"notify.webhooks[4].url: https:///path-only: has no host",
		"notify.webhooks[5].timeout: must be between 0",
		`notify.webhooks[5].headers["Bad Name"]: not a valid header name`,
		`notify.webhooks[5].headers["X-Ok"]: value contains control characters`,
		`notify.webhooks[5].headers["Content-Type"]: is set by Vigil`,
		`notify.webhooks[5].headers["x-dup"]: is also configured as "X-Dup"`,
		`notify.webhooks[5].types[1]: unknown attack type "sqli"`,
	}
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("missing error %q in:\n%s", w, all)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("got %d errors, want %d:\n%s", len(errs), len(want), all)
	}
	for _, secret := range []string{"ftp-secret", "query-secret", "pw-secret", "header-secret"} {
		if strings.Contains(all, secret) {
			t.Errorf("validation errors reveal %q:\n%s", secret, all)
		}
	}
}

func TestRedactWebhookURLHidesChatSecrets(t *testing.T) {
	u, _ := url.Parse("https://hooks.slack.com/services/T000/B000/XXXXSECRET")
	if got := RedactWebhookURL(u); strings.Contains(got, "XXXXSECRET") || got != "https://hooks.slack.com/services/..." {
		t.Fatalf("redacted %q", got)
	}
}
