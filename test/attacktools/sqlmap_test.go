package attacktools

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/test/vigilbin"
)

// responseRE is one answer in sqlmap's traffic file (-t): its number and
// status.
var responseRE = regexp.MustCompile(`(?m)^HTTP response \[#(\d+)\] \((\d{3})`)

// TestSqlmapInjection: sqlmap probes the shop's search parameter for SQL
// injection. Content inspection refuses its payloads on the very request
// that carries them (Vigil's 403 from its first payload on), records them
// as sql_injection with the parameter and an excerpt, and the repeated
// attacks block the address, while a logged-in user keeps being answered.
func TestSqlmapInjection(t *testing.T) {
	t.Parallel()
	sqlmap := vigilbin.Tool(t, "sqlmap", "apt-get install sqlmap")
	const ip = "203.0.113.90"
	d := startDemo(t)
	b := startBenign(t, d.front)
	b.waitAnswered(t, 4, time.Time{})

	dir := t.TempDir()
	traffic := filepath.Join(dir, "traffic.txt")
	start := time.Now()
	out := run(t, 180*time.Second, dir, sqlmap, "-u", "http://"+d.front+"/shopapi-bid/search?q=lamp",
		"--headers", "X-Forwarded-For: "+ip, "--batch", "--flush-session", "--output-dir", dir, "-t", traffic)
	end := time.Now()

	raw, err := os.ReadFile(traffic)
	if err != nil {
		t.Fatal(err)
	}
	answers := responseRE.FindAllStringSubmatch(string(raw), -1)
	statuses := map[string]int{}
	first403 := 0
	for _, a := range answers {
		statuses[a[2]]++
		if n, _ := strconv.Atoi(a[1]); a[2] == "403" && first403 == 0 {
			first403 = n
		}
	}
	t.Logf("sqlmap: %d requests in %s, statuses %v, first 403 at request #%d", len(answers), end.Sub(start).Round(time.Millisecond), statuses, first403)
	// Request #1 is the original, benign value; #2 sqlmap's first payload.
	if first403 == 0 || first403 > 2 || statuses["200"] > 10 {
		t.Fatalf("sqlmap's payloads were not refused from the first: statuses %v, first 403 at #%d\n%s", statuses, first403, out)
	}
	if strings.Contains(out, "is vulnerable") || !strings.Contains(out, "do not appear to be injectable") {
		t.Fatalf("sqlmap's verdict:\n%s", out)
	}

	var on []attack
	if !poll(10*time.Second, func() bool {
		on = d.attacksOn(t, ip)
		return slices.ContainsFunc(on, func(a attack) bool { return a.Type == "sql_injection" && a.Action == "blocked" })
	}) {
		t.Fatalf("no blocking sql_injection attack on %s; attacks on it: %+v", ip, on)
	}
	for _, a := range on {
		if !slices.Contains([]string{"sql_injection", "xss", "command_injection", "path_traversal"}, a.Type) {
			t.Errorf("sqlmap's payloads recorded as %s: %+v", a.Type, a)
		}
	}
	req, _ := http.NewRequest("GET", "http://"+d.front+"/shopapi-bid/search?q=lamp", nil)
	d.refused(t, req, ip, on)
	blockSeen := time.Now()
	b.waitAnswered(t, 2, blockSeen)
	t.Logf("sqlmap from %s: %d requests seen by Vigil, %d attack records, the first %s (%s)", ip, d.requestsFrom(t, ip), len(on), on[0].Type, on[0].Action)
	b.check(t, d, start, end, blockSeen)
}
