// Package dashboard tests Vigil's web dashboard in a real headless Chromium:
// a real Vigil runs in-process, traffic reaches it through the Envoy-faithful
// ext_proc client, and the tests click through the pages and read what a
// person would see.
package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/vigil-project/vigil/test/envoysim"
	"github.com/vigil-project/vigil/test/vigilbin"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// chromiumPath is Debian's chromium package.
const chromiumPath = "/usr/bin/chromium"

// testTimeout bounds each test: Vigil, the browser and every wait in it.
const testTimeout = 90 * time.Second

// waitTimeout bounds one wait for something to appear on the page.
const waitTimeout = 20 * time.Second

// baseConfig is Vigil with one API in block mode and the built-in decoys.
const baseConfig = `
trusted_hops: 1
decoy_builtin: true
pipeline:
  join_window: 100ms
apis:
  - name: shop
    hosts: [shop.example.com]
    base_path: /shop
    mode: block
`

// vigil is a real Vigil on loopback (test/vigiltest).
type vigil struct {
	*vigiltest.Server
	t       *testing.T
	extproc extprocv3.ExternalProcessorClient
}

// startVigil runs Vigil on baseConfig plus extra YAML until the test ends.
func startVigil(t *testing.T, extra string) *vigil {
	t.Helper()
	s := vigiltest.Start(t, baseConfig+extra)
	return &vigil{Server: s, t: t, extproc: extprocv3.NewExternalProcessorClient(s.Dial())}
}

// get decodes the JSON answer of a GET that must succeed.
func (v *vigil) get(path string, into any) {
	v.t.Helper()
	code, body := v.Do("GET", path, "")
	if code != http.StatusOK {
		v.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal([]byte(body), into); err != nil {
		v.t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

type listEntry struct {
	Kind      string     `json:"kind"`
	Value     string     `json:"value"`
	Reason    string     `json:"reason"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// list returns the entries of "blocklist" or "allowlist".
func (v *vigil) list(name string) []listEntry {
	v.t.Helper()
	var out struct{ Entries []listEntry }
	v.get("/v1/"+name, &out)
	return out.Entries
}

// entry finds kind/value on a list.
func (v *vigil) entry(name, kind, value string) (listEntry, bool) {
	v.t.Helper()
	for _, e := range v.list(name) {
		if e.Kind == kind && e.Value == value {
			return e, true
		}
	}
	return listEntry{}, false
}

// upstream is the shop's back end: items exist, everything else is 404.
func upstream(r envoysim.HTTPRequest) envoysim.HTTPResponse {
	if strings.HasPrefix(r.Path, "/shop/items") {
		return envoysim.HTTPResponse{Status: 200, Body: []byte(`{"ok":true}`)}
	}
	return envoysim.HTTPResponse{Status: 404, Body: []byte("not found")}
}

// send makes one call through Envoy's ext_proc filter from client IP ip,
// with optional extra header pairs, and returns the status the client got.
func (v *vigil) send(ip, path string, headers ...string) int {
	v.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := envoysim.Config{
		RequestHeaderMode:  envoysim.Send,
		RequestBodyMode:    envoysim.Buffered,
		ResponseHeaderMode: envoysim.Send,
		MessageTimeout:     5 * time.Second,
	}
	req := envoysim.HTTPRequest{Method: "GET", Path: path, Authority: "shop.example.com",
		Headers: envoysim.HeaderPairs(append([]string{"x-forwarded-for", ip}, headers...)...)}
	res, err := envoysim.Do(ctx, v.extproc, cfg, req, upstream)
	if err != nil {
		v.t.Fatalf("GET %s from %s: %v", path, ip, err)
	}
	return res.Status
}

// decoyHit touches a built-in decoy from ip and waits until the attack is
// recorded (a decoy hit is recorded as the call is refused).
func (v *vigil) decoyHit(ip, path string, headers ...string) {
	v.t.Helper()
	v.send(ip, path, headers...)
	var out struct {
		Attacks []struct{ Type, ID string }
	}
	v.get("/v1/attacks?type=decoy", &out)
	for _, a := range out.Attacks {
		if a.Type == "decoy" {
			return
		}
	}
	v.t.Fatalf("no decoy attack after GET %s from %s", path, ip)
}

// browser is one headless Chromium tab, its console watched.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// newBrowser starts Debian's Chromium with a fresh profile; the test fails
// at the end if the page logged an error or threw. Without Chromium the test
// is skipped, or fails when CI is set.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	chromium := vigilbin.Tool(t, chromiumPath, "apt-get install -y chromium")
	profile := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	// Cleanups run last-registered first: check the console, then close the
	// tab and the browser (which waits for the process to exit, before the
	// profile directory is removed).
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancel()
	})
	if err := chromedp.Do(tabCtx); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	b := &browser{t: t, ctx: tabCtx}
	messages := chromedp.Console(tabCtx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(b.checkConsole)
	return b
}

// checkConsole fails the test for an uncaught exception, a console.error or
// a browser error other than a failed HTTP request (the tests provoke 401s
// and 404s on purpose; the dashboard shows those in its banner).
func (b *browser) checkConsole() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.console {
		if m.IsException() || m.Type == chromedp.ConsoleError && m.Source != "network" {
			b.t.Errorf("browser console: %s (%s:%d)", m, m.URL, m.Line+1)
		}
	}
}

// do runs actions in the tab.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v%s", what, err, b.pageState())
	}
}

// pageState is the banner and the start of the page's text, for failures.
func (b *browser) pageState() string {
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash + "\n" + document.body.innerText.slice(0, 3000)`))
	if err != nil {
		return ""
	}
	return "\n--- page ---\n" + text
}

// open loads the dashboard at hash (e.g. "#/lists").
func (b *browser) open(v *vigil, hash string) {
	b.t.Helper()
	b.do("open "+hash, chromedp.Navigate(v.URL()+"/"+hash))
}

// js quotes a Go string as a JavaScript string literal.
func js(s string) string {
	q, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(q)
}

// waitText waits until the first element matching css is shown and its
// visible text contains every one of want.
func (b *browser) waitText(css string, want ...string) {
	b.t.Helper()
	fn := `(sel, want) => {
		const el = document.querySelector(sel);
		return !!el && el.getClientRects().length > 0 && want.every((w) => el.innerText.includes(w));
	}`
	ctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.PollFunction[bool](fn, chromedp.WithPollingArgs(css, want), chromedp.WithPollingTimeout(0))); err != nil {
		b.t.Fatalf("waiting for %q in %s: %v%s", want, css, err, b.pageState())
	}
}

// waitNoText waits until the visible text of css no longer contains text.
func (b *browser) waitNoText(css, text string) {
	b.t.Helper()
	fn := `(sel, text) => { const el = document.querySelector(sel); return !!el && !el.innerText.includes(text); }`
	ctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.PollFunction[bool](fn, chromedp.WithPollingArgs(css, text), chromedp.WithPollingTimeout(0))); err != nil {
		b.t.Fatalf("waiting for %q to leave %s: %v%s", text, css, err, b.pageState())
	}
}

// waitJS waits until a JavaScript expression is truthy.
func (b *browser) waitJS(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(0))); err != nil {
		b.t.Fatalf("waiting for %s: %v%s", what, err, b.pageState())
	}
}

// control selects the button or link under scope whose visible text is
// label, as a person finds it.
func control(scope, label string) chromedp.JSPath {
	return chromedp.JSPath(fmt.Sprintf(
		`[...document.querySelectorAll(%s + " button, " + %s + " a")].find((e) => e.innerText.trim() === %s)`,
		js(scope), js(scope), js(label)))
}

// click clicks the control labelled label under scope, once it is visible.
func (b *browser) click(scope, label string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(control(scope, label))); err != nil {
		b.t.Fatalf("click %q in %s: %v%s", label, scope, err, b.pageState())
	}
}

// clickCSS clicks the first element matching css, once it is visible.
func (b *browser) clickCSS(css string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(css))); err != nil {
		b.t.Fatalf("click %s: %v%s", css, err, b.pageState())
	}
}

// typeInto types text into the input matching css.
func (b *browser) typeInto(css, text string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(css), text)); err != nil {
		b.t.Fatalf("type into %s: %v%s", css, err, b.pageState())
	}
}

// fill replaces the text of the input matching css, as a person selecting
// what is there and typing over it.
func (b *browser) fill(css, text string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	selectAll := chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%s).select()`, js(css)))
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(css)), selectAll, chromedp.SendKeys(chromedp.CSS(css), text)); err != nil {
		b.t.Fatalf("fill %s: %v%s", css, err, b.pageState())
	}
}

// eval evaluates a JavaScript expression and decodes its value.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// screenshot writes a full-page PNG to the test's temporary directory and,
// with VIGIL_SCREENSHOT=1, to testdata/screenshot.png.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	if !bytesHasPNGMagic(png) {
		b.t.Fatalf("screenshot is not a PNG (%d bytes)", len(png))
	}
	path := filepath.Join(b.t.TempDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	if os.Getenv("VIGIL_SCREENSHOT") == "1" {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			b.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", name), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	return path
}

func bytesHasPNGMagic(b []byte) bool {
	return len(b) > 8 && string(b[:8]) == "\x89PNG\r\n\x1a\n"
}

var errNotFound = errors.New("not found")

// train sends benign traffic from a few clients until api's model is ready
// (the config must make training short).
func (v *vigil) train(api string) {
	v.t.Helper()
	n := 0
	vigiltest.Until(v.t, 30*time.Second, "training "+api, func() bool {
		for i := range 4 {
			v.send(fmt.Sprintf("10.0.0.%d", i+1), fmt.Sprintf("/shop/items/%d", n))
			n++
		}
		// The model exists once the pipeline has handled the API's first
		// call, after the call returns: until then a 404 is "not ready yet".
		code, body := v.Do("GET", "/v1/models/"+api, "")
		if code == http.StatusNotFound {
			return false
		}
		if code != http.StatusOK {
			v.t.Fatalf("GET /v1/models/%s: %d %s", api, code, body)
		}
		var m struct{ Status struct{ State string } }
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			v.t.Fatalf("GET /v1/models/%s: %v in %s", api, err, body)
		}
		return m.Status.State == "ready"
	})
}

// waitAttack waits until an attack of type typ by value is recorded.
func (v *vigil) waitAttack(typ, value string) string {
	v.t.Helper()
	var id string
	vigiltest.Until(v.t, 15*time.Second, typ+" attack by "+value, func() bool {
		var err error
		id, err = v.findAttack(typ, value)
		return err == nil
	})
	return id
}

// findAttack returns the ID of the newest attack of type typ by value.
func (v *vigil) findAttack(typ, value string) (string, error) {
	var out struct {
		Attacks []struct {
			ID, Type string
			Identity struct{ Kind, Value string }
		}
	}
	v.get("/v1/attacks?type="+typ, &out)
	for _, a := range out.Attacks {
		if a.Identity.Value == value {
			return a.ID, nil
		}
	}
	return "", errNotFound
}
