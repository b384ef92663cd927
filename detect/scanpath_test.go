package detect

import (
	"bufio"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/server/demo/shop"
)

// scanPathCases feed the test, the benchmark and the fuzz seeds.
var scanPathCases = []struct {
	path    string
	scanner bool
}{
	// Source checkouts, backups, dumps, configuration, keys.
	{"/.git/config", true},
	{"/.git/HEAD", true},
	{"/api/.svn/entries", true},
	{"/.hg/store", true},
	{"/.env", true},
	{"/shopapi-bid/.env", true},
	{"/.DS_Store", true},
	{"/.htaccess", true},
	{"/.htpasswd", true},
	{"/.aws/credentials", true},
	{"/index.php.bak", true},
	{"/config.old", true},
	{"/app.js.orig", true},
	{"/.index.php.swp", true},
	{"/settings.swp", true},
	{"/index.php~", true},
	{"/~root", true},
	{"/db.sql", true},
	{"/dump.SQL", true},
	{"/backup.tar.gz", true},
	{"/backup.zip", true},
	{"/site.rar", true},
	{"/www.7z", true},
	{"/web.config", true},
	{"/php.ini", true},
	{"/logs/error.log", true},
	{"/id_rsa", true},
	{"/home/user/.ssh/id_rsa", true},
	{"/id_rsa.pub", true},
	{"/etc/passwd", true},
	{"/composer.json", true},
	{"/WEB-INF/web.xml", true},
	// Server-side scripts on a JSON API.
	{"/index.php", true},
	{"/shopapi-bid/phpinfo.php", true},
	{"/default.asp", true},
	{"/login.aspx", true},
	{"/Trace.axd", true},
	{"/index.jsp", true},
	{"/cgi-bin/test.cgi", true},
	{"/awstats.pl", true},
	{"/index.cfm", true},
	{"/login.do", true},
	{"/user/login.action", true},
	// Consoles and frameworks' probes.
	{"/wp-admin/", true},
	{"/wp-login.php", true},
	{"/blog/wp-content/plugins/x/readme.txt", true},
	{"/xmlrpc.php", true},
	{"/phpMyAdmin/", true},
	{"/administrator/index.php", true},
	{"/manager/html", true},
	{"/Manager/HTML", true},
	{"/actuator/env", true},
	{"/server-status", true},
	{"/cgi-bin/", true},
	{"/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", true},
	{"/_profiler/phpinfo", true},
	{"/solr/admin/info/system", true},
	{"/jenkins/login", true},
	{"/console", true},
	{"/HNAP1/", true},
	{"/boaform/admin/formLogin", true},
	// Escaped dots as a path not cleaned would carry them.
	{"/%2egit/config", true},
	{"/%2Eenv", true},
	{"/..", true},

	// Calls to APIs.
	{"/", false},
	{"", false},
	{"/api/v1/users/123", false},
	{"/v2/orders/abc-def/items", false},
	{"/files/report.pdf", false},
	{"/images/logo.png", false},
	{"/v1/exports/2024-01.csv", false},
	{"/openapi.json", false},
	{"/swagger.json", false},
	{"/api/openapi.yaml", false},
	{"/v3/api-docs", false},
	{"/swagger-ui/index.html", false},
	{"/swagger-ui/swagger-ui-bundle.js", false},
	{"/docs/", false},
	{"/graphql", false},
	{"/oauth/token", false},
	{"/.well-known/security.txt", false},
	{"/.well-known/openid-configuration", false},
	{"/.well-known/jwks.json", false},
	{"/robots.txt", false},
	{"/sitemap.xml", false},
	{"/favicon.ico", false},
	{"/healthz", false},
	{"/readyz", false},
	{"/metrics", false},
	{"/admin/users/42", false},
	{"/api/v1/config", false},
	{"/api/v1/backup", false},
	{"/api/v1/login", false},
	{"/api/v1/logs", false},
	{"/v1.2/items", false},
	{"/users/john.doe@example.com", false},
	{"/api/v1/manager/reports", false},
	{"/api/v1/git/refs/heads/main", false},
	// Public APIs' shapes: GitHub, Stripe, Twilio, Slack, Kubernetes.
	{"/repos/octocat/hello-world/contents/README.md", false},
	{"/repos/octocat/hello-world/pulls/1347/comments", false},
	{"/v1/customers/cus_NffrFeUfNV2Hib/sources", false},
	{"/v1/payment_intents/pi_3MtwBwLkdIwHu7ix28a3tqPa/confirm", false},
	{"/2010-04-01/Accounts/AC0123456789abcdef/Messages.json", false},
	{"/api/chat.postMessage", false},
	{"/api/users.info", false},
	{"/api/auth.test", false},
	{"/api/conversations.history", false},
	{"/api/v1/namespaces/kube-system/pods/coredns-5d78c9869d-4xq2k/log", false},
	{"/apis/apps/v1/namespaces/default/deployments/web/scale", false},
	{"/v1/objects/8f14e45f-ceea-467f-a0e6-1d7c7e2a1b3c", false},
	{"/api/v1/search", false},
	{"/assets/app.3f2a1c.css", false},
}

func TestScannerPath(t *testing.T) {
	benign := 0
	for _, tc := range scanPathCases {
		if got := ScannerPath(tc.path); got != tc.scanner {
			t.Errorf("ScannerPath(%q) = %v, want %v", tc.path, got, tc.scanner)
		}
		if !tc.scanner {
			benign++
		}
	}
	t.Logf("%d scanner paths, %d benign ones", len(scanPathCases)-benign, benign)
}

// A path that reaches detection is cleaned: its escaped dots and dot
// segments are read as a back end would.
func TestScannerPathCleaned(t *testing.T) {
	for _, p := range []string{"/%2e%67it/config", "/api/x/../.env", "//.env", "/a%2F..%2F.git/HEAD", "/%2e%65nv", "/index%2ephp"} {
		if !ScannerPath(CleanPath(p)) {
			t.Errorf("ScannerPath(CleanPath(%q) = %q) = false", p, CleanPath(p))
		}
	}
}

// The demo shop's routes and the scenario's benign calls (its clients'
// typos included) are no scanner's.
func TestScannerPathShop(t *testing.T) {
	// test/scenario's typoPaths (unexported there), without their query.
	paths := []string{"/item", "/orders", "/favicon.ico", "/itmes", "/profil", "/order/", "/seach", "/healthz"}
	for _, e := range shop.Routes() {
		paths = append(paths, e.Path, strings.ReplaceAll(e.Path, "{id}", "123456"))
	}
	for _, p := range paths {
		for _, full := range []string{p, shop.BasePath + p} {
			if ScannerPath(full) {
				t.Errorf("ScannerPath(%q) = true for a route or a benign call of the demo shop", full)
			}
		}
	}
}

func TestScannerPathAllocs(t *testing.T) {
	for _, tc := range scanPathCases {
		if n := testing.AllocsPerRun(10, func() { ScannerPath(tc.path) }); n != 0 {
			t.Errorf("ScannerPath(%q) allocates %v times", tc.path, n)
		}
	}
}

// dirbWordlists is where Debian's dirb keeps its wordlists (.ci/run
// installs dirb).
const dirbWordlists = "/usr/share/dirb/wordlists"

// heldOut splits a wordlist in two by a hash of each word: ScannerPath was
// tuned on the words for which this is false only (VIGIL_SCANPATH_TUNE=1
// logs that half's misses); the test reports and asserts on the other.
func heldOut(word string) bool {
	h := fnv.New32a()
	h.Write([]byte(word))
	return h.Sum32()%2 == 1
}

func readWords(t *testing.T, files ...string) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		s := bufio.NewScanner(f)
		for s.Scan() {
			w := strings.TrimSpace(s.Text())
			if w == "" || strings.HasPrefix(w, "#") || seen[w] {
				continue
			}
			seen[w] = true
			out = append(out, w)
		}
		f.Close()
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// fileShaped reports whether a wordlist entry names a file or a dot
// directory (it holds a dot or a '~'), as opposed to a plain word
// (about, images, admin) no path shape can tell from an API's resource.
func fileShaped(w string) bool { return strings.ContainsAny(w, ".~") }

// detectionPath is a wordlist entry as detection sees it (a
// Transaction's Path): under the root, without its query or fragment,
// without ;parameters, cleaned.
func detectionPath(w string) string {
	p, _, _ := strings.Cut("/"+strings.TrimPrefix(w, "/"), "?")
	p, _, _ = strings.Cut(p, "#")
	return CleanPath(StripParams(p))
}

// TestScannerPathWordlists measures ScannerPath on the half of dirb's
// wordlists it was not tuned on. Run it alone with
//
//	go test -count=1 -v -run TestScannerPathWordlists ./detect/
func TestScannerPathWordlists(t *testing.T) {
	if _, err := os.Stat(filepath.Join(dirbWordlists, "common.txt")); err != nil {
		t.Skipf("dirb's wordlists are not installed (%v): apt-get install dirb, as .ci/run does", err)
	}
	vulns, err := filepath.Glob(filepath.Join(dirbWordlists, "vulns", "*.txt"))
	if err != nil || len(vulns) == 0 {
		t.Fatalf("no dirb vulns wordlists: %v", err)
	}
	tune := os.Getenv("VIGIL_SCANPATH_TUNE") != ""
	type share struct{ flagged, all int }
	measure := func(words []string, keep func(string) bool) share {
		var s share
		for _, w := range words {
			if !keep(w) {
				continue
			}
			if heldOut(w) == tune {
				continue // the other half
			}
			s.all++
			if ScannerPath(detectionPath(w)) {
				s.flagged++
			} else if tune {
				t.Logf("tune half, missed: %s", w)
			}
		}
		return s
	}
	pct := func(s share) float64 { return 100 * float64(s.flagged) / float64(max(s.all, 1)) }
	words := readWords(t, filepath.Join(dirbWordlists, "common.txt"), filepath.Join(dirbWordlists, "big.txt"))
	probes := readWords(t, vulns...)
	all := measure(words, func(string) bool { return true })
	files := measure(words, fileShaped)
	vuln := measure(probes, func(string) bool { return true })
	vulnFiles := measure(probes, fileShaped)
	half := "held-out"
	if tune {
		half = "tuning"
	}
	t.Logf("%s half of dirb common.txt+big.txt: %d/%d (%.1f%%) of all words are scanner-shaped; %d/%d (%.1f%%) of the file-shaped ones (with a dot or '~')",
		half, all.flagged, all.all, pct(all), files.flagged, files.all, pct(files))
	t.Logf("%s half of dirb vulns/*.txt (servers' known paths): %d/%d (%.1f%%) of all entries; %d/%d (%.1f%%) of the file-shaped ones",
		half, vuln.flagged, vuln.all, pct(vuln), vulnFiles.flagged, vulnFiles.all, pct(vulnFiles))
	if tune {
		return
	}
	// Floors a little under what the held-out half gave when this was
	// written (0.7%, 85.7% of 63, 43.2%, 82.9%): a regression of the
	// lists shows here. Plain words are not scanner-shaped by design (see
	// ScannerPath), so few of all words are, and more than a few would
	// mean a rule catches the resources APIs have (users, orders, admin);
	// servers' known paths are mostly products' own directories
	// (openmarket, sap), which no list of names can hold. File-shaped
	// words are what the function is for; the ones it leaves are the
	// documents an API may serve (.html, .txt, .xml, images).
	for _, f := range []struct {
		what       string
		s          share
		floor, top float64
	}{
		{"all words", all, 0.5, 2},
		{"file-shaped words", files, 80, 100},
		{"vulns entries", vuln, 40, 100},
		{"file-shaped vulns entries", vulnFiles, 80, 100},
	} {
		if p := pct(f.s); p < f.floor || p > f.top {
			t.Errorf("%s: %.1f%% scanner-shaped, want %.1f%% to %.0f%%", f.what, p, f.floor, f.top)
		}
	}
}

func BenchmarkScannerPath(b *testing.B) {
	for _, bc := range []struct{ name, path string }{
		{"benign", "/api/v1/users/123/orders"},
		{"benign-long", "/v1/payment_intents/pi_3MtwBwLkdIwHu7ix28a3tqPa/confirm"},
		{"scanner", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php"},
		{"scanner-short", "/.env"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ScannerPath(bc.path)
			}
		})
	}
}

func FuzzScannerPath(f *testing.F) {
	for _, tc := range scanPathCases {
		f.Add(tc.path)
	}
	f.Fuzz(func(t *testing.T, path string) {
		got := ScannerPath(path)
		if upper := asciiUpper(path); ScannerPath(upper) != got {
			t.Fatalf("ScannerPath(%q) = %v but ScannerPath(%q) = %v", path, got, upper, !got)
		}
		// A benign leading segment changes nothing.
		if under := "/api/" + path; ScannerPath(under) != got {
			t.Fatalf("ScannerPath(%q) = %v but ScannerPath(%q) = %v", path, got, under, !got)
		}
	})
}
