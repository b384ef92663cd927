package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/test/testlog"
)

// newBareAdmin is an admin handler without an engine, inventory or
// attack store: every route that needs one panics on its nil pointer.
func newBareAdmin(t *testing.T) (*admin, *testlog.Buffer, *httptest.Server) {
	t.Helper()
	allow, block := detect.NewLists()
	logs := &testlog.Buffer{}
	ready := &atomic.Bool{}
	ready.Store(true)
	reg := prometheus.NewRegistry()
	panics := prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_panics_total", Help: "Panics recovered."})
	reg.MustRegister(panics)
	a := &admin{Deps{Log: zerolog.New(logs), Allow: allow, Block: block, Ready: ready, Now: time.Now, Metrics: reg, Panics: panics}}
	srv := httptest.NewServer(a.recoverPanics(limitBody(a.mux())))
	t.Cleanup(srv.Close)
	return a, logs, srv
}

// get sends GET path to the server at base.
func get(t *testing.T, base, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// A handler's panic is answered with a 500 and the JSON error body of every
// other error, counted in vigil_panics_total and logged with its stack;
// the server goes on answering.
func TestAdminHandlerPanic(t *testing.T) {
	_, logs, srv := newBareAdmin(t)
	for i, path := range []string{"/v1/models", "/v1/attacks", "/v1/apis/shop/activity"} {
		code, body := get(t, srv.URL, path)
		var e struct {
			Error string `json:"error"`
		}
		if code != http.StatusInternalServerError || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, "internal error") {
			t.Errorf("GET %s: %d %q, want 500 with a JSON error", path, code, body)
		}
		want := fmt.Sprintf("\nvigil_panics_total %d\n", i+1)
		if code, body := get(t, srv.URL, "/metrics"); code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET /metrics after GET %s: %d, want %q", path, code, want)
		}
	}
	if code, _ := get(t, srv.URL, "/healthz"); code != http.StatusOK {
		t.Errorf("healthz after the panics: %d", code)
	}
	var line struct {
		Level, Message, Route, Panic, Stack string
	}
	for l := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(l, "panic") {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatalf("log line %q: %v", l, err)
			}
			break
		}
	}
	if line.Level != "error" || line.Route != "GET /v1/models" || !strings.Contains(line.Panic, "nil pointer") || !strings.Contains(line.Stack, "admin.(*admin).listModels") {
		t.Errorf("panic log line %+v, want level error, the route, the panic and its stack", line)
	}
}

// An answer that cannot be encoded is a 500 with an error, never a 200 with
// an empty body, and it is logged.
func TestAdminUnencodableAnswer(t *testing.T) {
	a, logs, _ := newBareAdmin(t)
	h := a.recoverPanics(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]float64{"tx": math.Inf(1)})
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/models", nil))
	var e struct {
		Error string `json:"error"`
	}
	if rec.Code != http.StatusInternalServerError || json.Unmarshal(rec.Body.Bytes(), &e) != nil || !strings.Contains(e.Error, "unsupported value: +Inf") {
		t.Errorf("%d %q, want 500 with the encoding error", rec.Code, rec.Body.String())
	}
	if !strings.Contains(logs.String(), `"level":"error"`) || !strings.Contains(logs.String(), "unsupported value") {
		t.Errorf("the failure is not logged:\n%s", logs.String())
	}
}
