package adminapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestClientErrorsHideCredentials: an error answer is a *StatusError with
// the server's message, and neither it nor an unreachable server's error
// repeats a raw credential from the path; the token is sent as a bearer.
func TestClientErrorsHideCredentials(t *testing.T) {
	const secret = "raw-api-key-sekrit"
	var auth, path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth, path = r.Header.Get("Authorization"), r.URL.Path
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":"no blocklist entry for api_key fp:00"}`))
	}))
	defer srv.Close()
	c := NewClient(strings.TrimPrefix(srv.URL, "http://"), "admin-token-0123456789")
	err := c.RemoveEntry(context.Background(), "blocklist", "api_key", secret)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound || se.Message != "no blocklist entry for api_key fp:00" {
		t.Fatalf("error %v, want a StatusError 404 with the server's message", err)
	}
	if want := "DELETE /v1/blocklist/api_key/<value>: no blocklist entry for api_key fp:00 (404)"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if auth != "Bearer admin-token-0123456789" || path != "/v1/blocklist/api_key/"+secret {
		t.Errorf("sent %q to %q", auth, path)
	}
	// An IP is shown.
	if err := c.RemoveEntry(context.Background(), "blocklist", "ip", "192.0.2.1"); err == nil || !strings.Contains(err.Error(), "DELETE /v1/blocklist/ip/192.0.2.1:") {
		t.Errorf("ip entry: %v", err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	_, err = NewClient(dead, "").Forensics(context.Background(), "token", secret)
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.Addr != dead || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "/v1/") {
		t.Errorf("unreachable: %v, want an UnreachableError naming %s and no path", err, dead)
	}
}
