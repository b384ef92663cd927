package dashboard

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// attackCard is the CSS selector of the feed's card for one attack.
func attackCard(id string) string { return fmt.Sprintf(`article[data-attack-id="%s"]`, id) }

func TestAttackFeedExplainsADecoyHitAndOpensTheIdentity(t *testing.T) {
	v := startVigil(t, "")
	v.decoyHit("198.51.100.7", "/shop/.env")
	id, err := v.findAttack("decoy", "198.51.100.7")
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	b.open(v, "")

	card := attackCard(id)
	b.waitText("h1", "Live attack feed")
	// What fired, against which thresholds, from where, and what Vigil did.
	b.waitText(card, "decoy", "shop", "198.51.100.7", "decoy_hits", "Observed", "Tn", "Tx", "Deviation",
		"Client IPs", "GET shop.example.com/shop/.env", "blocked")
	b.waitText(card, "is on the block list")
	if got := eval[string](b, `document.querySelector('nav a[aria-current="page"]').innerText`); got != "Attacks" {
		t.Errorf("current page in the navigation: %q, want Attacks", got)
	}

	b.click(card+" .actions", "Open identity")
	b.waitJS("the identity route", `location.hash === "#/identity/ip/198.51.100.7"`)
	b.waitText("h1", "Identity", "ip", "198.51.100.7")
	b.waitText("table.ips", "IP", "Requests", "198.51.100.7")
	b.waitText("main", "Endpoints", "/shop/.env", "Timeline", "Attacks (1)", "decoy_hits")
	b.waitJS("the hourly timeline chart", `document.querySelector('main svg.chart rect') !== null`)
}

// TestAttackFeedExplainsAContentAttack: a SQL injection refused on its
// request is a card saying where the value was, what matched and the
// value, and the request.
func TestAttackFeedExplainsAContentAttack(t *testing.T) {
	v := startVigil(t, "")
	if status := v.send("198.51.100.8", "/shop/items?q=%27%20UNION%20SELECT%20password%20FROM%20users--"); status != 403 {
		t.Fatalf("the injection got %d, want 403", status)
	}
	id := v.waitAttack("sql_injection", "198.51.100.8")
	b := newBrowser(t)
	b.open(v, "")
	b.waitText(attackCard(id), "sql_injection", "shop", "198.51.100.8", "content inspection", "Location", "Matched",
		"query.q", "libinjection-sqli", "UNION SELECT", "GET shop.example.com/shop/items")
}

func TestUnblockAndBlockAgainFromTheFeed(t *testing.T) {
	v := startVigil(t, "")
	v.decoyHit("198.51.100.7", "/shop/.env")
	id, err := v.findAttack("decoy", "198.51.100.7")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v.entry("blocklist", "ip", "198.51.100.7"); !ok {
		t.Fatal("the decoy hit did not block the IP")
	}
	b := newBrowser(t)
	b.open(v, "#/attacks")
	card := attackCard(id)

	b.click(card+" .actions", "Unblock")
	b.waitText(card, "is not on the block list")
	b.waitText("#status", "Unblocked ip 198.51.100.7")
	if e, ok := v.entry("blocklist", "ip", "198.51.100.7"); ok {
		t.Fatalf("still on the block list after Unblock: %+v", e)
	}
	if got := v.send("198.51.100.7", "/shop/items/1"); got != http.StatusOK {
		t.Fatalf("after Unblock the client gets %d, want 200", got)
	}

	b.click(card+" .actions", "Block again")
	b.waitText(card, "is on the block list")
	e, ok := v.entry("blocklist", "ip", "198.51.100.7")
	if !ok {
		t.Fatal("not on the block list after Block again")
	}
	if e.ExpiresAt == nil || math.Abs(e.ExpiresAt.Sub(e.CreatedAt).Minutes()-60) > 1 {
		t.Errorf("Block again with the default duration: entry %+v, want 1h", e)
	}
	if !strings.Contains(e.Reason, id) {
		t.Errorf("reason %q does not name the attack %s", e.Reason, id)
	}
	if got := v.send("198.51.100.7", "/shop/items/1"); got != http.StatusForbidden {
		t.Fatalf("after Block again the client gets %d, want 403", got)
	}
}

func TestFalsePositiveFromTheFeed(t *testing.T) {
	v := startVigil(t, "")
	v.decoyHit("198.51.100.9", "/shop/.git/config")
	id, err := v.findAttack("decoy", "198.51.100.9")
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	b.open(v, "#/attacks")
	card := attackCard(id)

	b.click(card+" .actions", "False positive…")
	b.waitText(card+" .confirm", "allow list", "Allow for")
	b.click(card+" .confirm", "Confirm false positive")
	b.waitText(card, "Marked as a false positive", "allowed until")
	b.waitText(card, "is not on the block list")
	if _, ok := v.entry("blocklist", "ip", "198.51.100.9"); ok {
		t.Error("still on the block list after a false positive")
	}
	e, ok := v.entry("allowlist", "ip", "198.51.100.9")
	if !ok || e.ExpiresAt == nil || math.Abs(e.ExpiresAt.Sub(e.CreatedAt).Hours()-24) > 0.1 {
		t.Errorf("allow list entry after a false positive: %+v (found %v), want 24h", e, ok)
	}
	// The button is gone once the attack is marked.
	if n := eval[int](b, fmt.Sprintf(`[...document.querySelectorAll(%s)].filter((e) => e.innerText.trim() === "False positive…").length`,
		js(card+" button"))); n != 0 {
		t.Errorf("%d False positive buttons left on a marked attack", n)
	}
}

func TestIdentitySearchBlockAndUnblock(t *testing.T) {
	v := startVigil(t, "")
	for i := range 3 {
		if got := v.send("10.1.2.3", fmt.Sprintf("/shop/items/%d", 100+i), "authorization", "Bearer s3cret-token-value"); got != http.StatusOK {
			t.Fatalf("benign call: %d", got)
		}
	}
	b := newBrowser(t)
	b.open(v, "#/decoys")

	// The search box is on every page.
	b.typeInto("#search-value", "10.1.2.3\n")
	b.waitJS("the identity route", `location.hash === "#/identity/ip/10.1.2.3"`)
	b.waitText("table.ips", "10.1.2.3", "3", "GET 3", "shop 3")
	b.waitText("main", "/shop/items/{id}", "No attack recorded for this identity.", "Not on the block list.")

	b.click("main .actions", "Block")
	b.waitText("main", "On the block list until")
	if _, ok := v.entry("blocklist", "ip", "10.1.2.3"); !ok {
		t.Fatal("Block on the identity page did not block")
	}
	b.waitText("main dl", "blocked")
	b.click("main .actions", "Unblock")
	b.waitText("main", "Not on the block list.")
	if _, ok := v.entry("blocklist", "ip", "10.1.2.3"); ok {
		t.Fatal("Unblock on the identity page did not unblock")
	}

	// A raw secret is fingerprinted by Vigil and never lands in the address bar.
	b.do("choose kind token", chromedp.SetValue(chromedp.CSS("#search-kind"), "token"))
	b.typeInto("#search-value", "s3cret-token-value\n")
	b.waitJS("the token's identity route", `location.hash.startsWith("#/identity/token/fp%3A")`)
	b.waitText("h1", "token", "fp:")
	b.waitText("table.ips", "10.1.2.3")
	if hash := eval[string](b, `location.hash + " " + document.title`); strings.Contains(hash, "s3cret") {
		t.Errorf("the raw token is in the address bar or title: %s", hash)
	}
}

func TestListsPageAddAndRemove(t *testing.T) {
	v := startVigil(t, "")
	b := newBrowser(t)
	b.open(v, "#/lists")
	b.waitText("main", "The block list is empty.", "The allow list is empty.")

	b.typeInto("#block-value", "192.0.2.77")
	b.typeInto("#block-ttl", "10m")
	b.typeInto("#block-reason", "seen scraping")
	b.click("main", "Add to block list")
	b.waitText("table.list-block", "192.0.2.77", "seen scraping")
	e, ok := v.entry("blocklist", "ip", "192.0.2.77")
	if !ok {
		t.Fatal("the add form did not add to the block list")
	}
	if e.Reason != "seen scraping" || e.ExpiresAt == nil || math.Abs(e.ExpiresAt.Sub(e.CreatedAt).Minutes()-10) > 0.1 {
		t.Errorf("block list entry %+v, want reason \"seen scraping\" and 10m", e)
	}
	if got := v.send("192.0.2.77", "/shop/items/1"); got != http.StatusForbidden {
		t.Errorf("a client added from the dashboard gets %d, want 403", got)
	}

	b.typeInto("#allow-value", "192.0.2.88")
	b.click("main", "Add to allow list")
	b.waitText("table.list-allow", "192.0.2.88", "never")
	if e, ok := v.entry("allowlist", "ip", "192.0.2.88"); !ok || e.ExpiresAt != nil {
		t.Errorf("allow list entry %+v (found %v), want one without expiry", e, ok)
	}

	// A mistake is explained in the banner, with the server's message.
	b.fill("#block-value", "192.0.2.99")
	b.fill("#block-ttl", "soon")
	b.click("main", "Add to block list")
	b.waitText("#banner", "POST /v1/blocklist", "400", `ttl: "soon" is not a positive duration`)
	b.click("#banner", "Dismiss")
	b.waitJS("the banner to hide", `document.getElementById("banner").offsetParent === null`)

	b.clickCSS(`button[aria-label="Remove ip 192.0.2.77 from the block list"]`)
	b.waitText("main", "The block list is empty.")
	if _, ok := v.entry("blocklist", "ip", "192.0.2.77"); ok {
		t.Error("Remove did not remove the block list entry")
	}
}

func TestModelPageShowsThresholdsAndTogglesTypes(t *testing.T) {
	v := startVigil(t, "")
	v.send("10.1.2.3", "/shop/items/1")
	var model struct {
		Types     map[string]struct{ Enabled bool }
		Variables []struct {
			Name, Kind string
			Tn, Tx     float64
		}
	}
	// The model starts with the API's first traffic, which the pipeline
	// handles after the call.
	vigiltest.Until(t, 10*time.Second, "the shop model", func() bool {
		code, _ := v.Do("GET", "/v1/models/shop", "")
		return code == http.StatusOK
	})
	v.get("/v1/models/shop", &model)
	var tn, tx float64
	for _, x := range model.Variables {
		if x.Name == "requests_per_min" && x.Kind == "ip" {
			tn, tx = x.Tn, x.Tx
		}
	}
	if tx == 0 {
		t.Fatalf("no requests_per_min threshold for ip in %+v", model.Variables)
	}

	b := newBrowser(t)
	b.open(v, "#/apis")
	b.click("main table", "shop")
	b.waitJS("the model route", `location.hash === "#/model/shop"`)
	b.waitText("h1", "Model: shop")
	b.waitText("main", "Training", "learning", "Attack types", "Thresholds")
	b.waitText("table.thresholds", "Variable", "Tn", "Tx", "requests_per_min", "not_found_10m", "distinct_failed_paths")
	row := eval[[]string](b, `[...[...document.querySelectorAll("table.thresholds tbody tr")]
		.find((r) => r.cells[0].innerText === "requests_per_min" && r.cells[2].innerText === "ip").cells].map((c) => c.innerText)`)
	if len(row) < 6 || row[4] != number(tn) || row[5] != number(tx) {
		t.Errorf("requests_per_min (ip) row %q, want Tn %s and Tx %s", row, number(tn), number(tx))
	}
	// The populations beyond the identity kinds are choices too.
	b.waitJS("the population token_on_shared_ip offered",
		`[...document.getElementById("threshold-kind").options].some((o) => o.value === "token_on_shared_ip")`)
	b.do("choose token_on_shared_ip", chromedp.SetValue(chromedp.CSS("#threshold-kind"), "token_on_shared_ip"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("threshold-kind").dispatchEvent(new Event("change"))`))
	b.waitText("table.thresholds caption", "token_on_shared_ip population")
	b.waitJS("only token_on_shared_ip rows", `[...document.querySelectorAll("table.thresholds tbody tr")].every((r) => r.cells[2].innerText === "token_on_shared_ip")`)

	// An endpoint's request size limit set by a person: the endpoint
	// population lists it with its endpoint, and "Use learned" gives it back.
	if code, out := v.Do("PUT", "/v1/models/shop", `{"variables":[{"name":"request_bytes_endpoint","kind":"endpoint","endpoint":"POST /shop/cart","mode":"user","tn":100,"tx":900}]}`); code != http.StatusOK {
		t.Fatalf("PUT an endpoint threshold: %d %s", code, out)
	}
	b.waitJS("the population endpoint offered", `[...document.getElementById("threshold-kind").options].some((o) => o.value === "endpoint")`)
	b.do("choose endpoint", chromedp.SetValue(chromedp.CSS("#threshold-kind"), "endpoint"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("threshold-kind").dispatchEvent(new Event("change"))`))
	b.waitText("table.thresholds", "request_bytes_endpoint", "endpoint POST /shop/cart", "user", "900")
	b.click("table.thresholds", "Use learned")
	b.waitText("#status", "request_bytes_endpoint (POST /shop/cart) uses learned thresholds again.")
	b.waitText("main", "No variables.")

	b.clickCSS("#type-probing")
	b.waitText("#status", "probing detection turned off for shop")
	b.waitJS("the switch to show off", `!document.getElementById("type-probing").checked && document.querySelector('label[for="type-probing"]').innerText.endsWith("off")`)
	v.get("/v1/models/shop", &model)
	if model.Types["probing"].Enabled {
		t.Error("probing still enabled after the switch was turned off")
	}
	if !model.Types["credential_stuffing"].Enabled {
		t.Error("the switch changed another type")
	}
}

// number formats like the dashboard (en, up to 2 decimals, thousands separators).
func number(f float64) string {
	s := strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
	whole, frac, _ := strings.Cut(s, ".")
	for i := len(whole) - 3; i > 0; i -= 3 {
		whole = whole[:i] + "," + whole[i:]
	}
	if frac != "" {
		return whole + "." + frac
	}
	return whole
}

func TestAPIsAndDecoysPages(t *testing.T) {
	v := startVigil(t, "")
	for i := range 5 {
		v.send("10.1.2.3", fmt.Sprintf("/shop/items/%d", i))
	}
	v.decoyHit("198.51.100.7", "/shop/.env")
	b := newBrowser(t)
	b.open(v, "#/apis")

	b.waitText("main", "Inventory", "Models and training", "Endpoints")
	b.waitText("main section:nth-of-type(2) table", "shop", "block", "shop.example.com /shop", "6", "1")
	b.waitText("main", "learning", "time", "requests", "identities")
	b.waitJS("progress bars", `document.querySelectorAll("main progress").length >= 3`)
	b.waitText(".charts", "shop", "requests", "blocked")
	b.waitJS("the traffic chart", `document.querySelector('.charts svg.chart polyline, .charts svg.chart circle') !== null`)
	b.waitText("main", "From Vigil's activity record")

	b.click("nav", "Decoys")
	b.waitText("h1", "Decoys and honeytokens")
	b.waitText("table.decoys", "/shop/.env", "/shop/.git/config", "/shop/swagger.json")
	row := eval[[]string](b, `[...[...document.querySelectorAll("table.decoys tbody tr")]
		.find((r) => r.cells[1].innerText === "/shop/.env").cells].map((c) => c.innerText)`)
	if len(row) != 4 || row[0] != "shop" || row[2] != "1" || row[3] == "never" {
		t.Errorf("/shop/.env row %q, want shop, 1 hit and a last hit time", row)
	}
	b.waitText("main .stats", "honeytokens planted", "hit")
}

// TestAPIsChartFallsBackToSampling answers the activity route with the admin
// API's "no route" 404, as an older Vigil would: the charts then come from
// sampling /v1/apis, labelled as such.
func TestAPIsChartFallsBackToSampling(t *testing.T) {
	v := startVigil(t, "")
	v.send("10.1.2.3", "/shop/items/1")
	b := newBrowser(t)
	if _, err := chromedp.Call(b.ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/activity?*"}}}); err != nil {
		t.Fatal(err)
	}
	paused := chromedp.Events(b.ctx, fetch.RequestPaused)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(b.ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{
				RequestID:       ev.RequestID,
				ResponseCode:    404,
				ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: "application/json"}},
				Body:            []byte(`{"error":"no route GET /v1/apis/shop/activity"}`),
			})
		}
	}()
	b.open(v, "#/apis")
	b.waitText("main", "Since this page opened", "every 5 s")
	b.waitText(".charts", "shop", "requests", "blocked", "would block")
	b.waitJS("no error banner for the missing route", `document.getElementById("banner").offsetParent === null`)
	b.waitJS("the range control to hide", `document.getElementById("chart-range").offsetParent === null`)

	// Traffic after the first sample shows up in the next one.
	v.send("10.1.2.3", "/shop/items/2")
	v.send("10.1.2.3", "/shop/items/3")
	b.waitJS("a sampled point", `document.querySelector('.charts svg.chart polyline, .charts svg.chart circle') !== null`)
}

func TestAdminTokenFieldAndErrorBanner(t *testing.T) {
	const token = "dashboard-test-token-0123456789"
	v := startVigil(t, "admin_token: "+token+"\n")
	b := newBrowser(t)
	b.open(v, "")

	b.waitText("#banner", "401", "missing or wrong admin bearer token", "Admin token")
	b.waitJS("the token field to open", `document.getElementById("token").open`)
	b.typeInto("#token-input", token)
	b.click("#token-form", "Save")
	b.waitJS("the banner to clear", `document.getElementById("banner").offsetParent === null`)
	b.waitText("main", "No attacks recorded")
	b.clickCSS("#token summary")
	b.waitText("#token-state", "A token is set for this tab.")
	if got := eval[string](b, `sessionStorage.getItem("vigil.adminToken")`); got != token {
		t.Errorf("sessionStorage token %q, want the saved token", got)
	}

	// The token is used by the actions too.
	b.click("nav", "Lists")
	b.typeInto("#block-value", "192.0.2.10")
	b.click("main", "Add to block list")
	b.waitText("table.list-block", "192.0.2.10")
	if _, ok := v.entry("blocklist", "ip", "192.0.2.10"); !ok {
		t.Error("adding with the token did not reach the block list")
	}
}

func TestScreenshotOfTheAttackFeed(t *testing.T) {
	v := startVigil(t, "training:\n  duration: 1s\n  min_requests: 20\n  min_identities: 3\n")
	v.train("shop")
	for i := range 80 {
		v.send("192.0.2.66", fmt.Sprintf("/shop/wp-content/plugins/%d/readme.txt", i), "user-agent", "Nuclei/3.2")
	}
	v.waitAttack("probing", "192.0.2.66")
	v.decoyHit("198.51.100.7", "/shop/.env")
	v.decoyHit("203.0.113.9", "/shop/.git/config", "authorization", "Bearer stolen-but-valid", "user-agent", "sqlmap/1.8")
	b := newBrowser(t)
	b.open(v, "#/attacks")
	b.waitText("main .feed", "/shop/.env", "/shop/.git/config", "sqlmap/1.8", "Also blocked by this attack", "probing", "not_found_10m", "over Tx")
	b.waitText("footer", "Updated")
	path := b.screenshot("screenshot.png")
	t.Logf("screenshot: %s", path)
}
