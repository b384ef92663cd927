package decoy

// The page builders: each draws its varying values from the hit, in an order
// fixed by the golden files, and renders its template (templates/).

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// namespace returns the Kubernetes namespace of an environment.
func namespace(env string) string {
	if env == "production" {
		return "prod"
	}
	return env
}

func dotenv(h *hit) Answer {
	env := "production"
	switch strings.TrimPrefix(h.last, ".env.") {
	case "local", "dev", "development":
		env = "development"
	case "stage", "staging":
		env = "staging"
	}
	body := render("dotenv.env.tmpl", struct {
		App                                app
		Env, Namespace                     string
		Debug                              bool
		DatabaseURL, JWTSecret             string
		AWSKeyID, AWSSecret, SMTPPassword  string
		PaymentsKey, PartnerKey, SentryDSN string
	}{
		App: h.app, Env: env, Namespace: namespace(env), Debug: env == "development",
		DatabaseURL:  h.token(KindConnectionString),
		JWTSecret:    h.token(KindSecret),
		AWSKeyID:     h.token(KindAWSKey),
		AWSSecret:    h.awsSecret(),
		SMTPPassword: h.token(KindPassword),
		PaymentsKey:  h.token(KindAPIKey),
		PartnerKey:   h.token(KindAPIKey),
		SentryDSN:    fmt.Sprintf("https://%s@o%d.ingest.sentry.io/%d", h.word(32, lowerHex), h.num(100000, 999999), h.num(1000000, 9999999)),
	})
	return h.file(nginx, "text/plain", body)
}

// gitRemote is a GitHub remote with a deploy token in its user info.
func (h *hit) gitRemote(path string) string {
	u := url.URL{Scheme: "https", User: url.UserPassword("ci-deploy", h.token(KindGitHubToken)), Host: "github.com", Path: path}
	return u.String()
}

func gitConfig(h *hit) Answer {
	body := render("git-config.tmpl", struct{ Remote string }{h.gitRemote("/" + h.app.Org + "/" + h.app.Slug + ".git")})
	return h.file(nginx, "text/plain", body)
}

// gitHead answers .git/HEAD as git writes it: a dumper reads it first, then
// fetches .git/config.
func gitHead(h *hit) Answer {
	return h.file(nginx, "text/plain", render("git-head.tmpl", nil))
}

func gitCredentials(h *hit) Answer {
	return h.file(nginx, "text/plain", render("git-credentials.tmpl", struct{ URL string }{h.gitRemote("")}))
}

const actuatorType = "application/vnd.spring-boot.actuator.v3+json"

func actuatorLinks(h *hit) Answer {
	body := renderJSON("actuator.json.tmpl", struct{ Prefix string }{h.prefix}, "")
	return respond(spring, 200, actuatorType, body)
}

func actuatorHealth(h *hit) Answer {
	total := int64(h.num(40, 120)) << 30
	free := total * int64(h.num(35, 80)) / 100
	body := renderJSON("actuator-health.json.tmpl", struct{ DiskTotal, DiskFree int64 }{total, free}, "")
	return respond(spring, 200, actuatorType, body)
}

func actuatorEnv(h *hit) Answer {
	body := renderJSON("actuator-env.json.tmpl", struct {
		App                               app
		Hostname, DatabaseURL, PartnerKey string
	}{
		App:         h.app,
		Hostname:    h.app.Slug + "-" + h.word(10, lowerNum) + "-" + h.word(5, lowerNum),
		DatabaseURL: h.token(KindConnectionString),
		PartnerKey:  h.token(KindAPIKey),
	}, "")
	return respond(spring, 200, actuatorType, body)
}

// openAPI returns an OpenAPI 3 document of internal and legacy endpoints
// under the API's base path, with an example API key and an example token.
func openAPI(h *hit) Answer {
	body := renderJSON("openapi.json.tmpl", struct{ Base, Title, APIKey, JWT string }{
		Base: h.base, Title: h.app.Title, APIKey: h.token(KindAPIKey), JWT: h.token(KindJWT),
	}, "")
	if h.last == "api-docs" {
		return respond(spring, 200, "application/json", body)
	}
	return h.file(nginx, "application/json", body)
}

// swaggerUI links to swagger.json next to it, itself a decoy path.
func swaggerUI(h *hit) Answer {
	body := render("swagger-ui.html.tmpl", struct{ DocURL string }{h.prefix + "/swagger.json"})
	return respond(spring, 200, "text/html;charset=UTF-8", body)
}

// pprofIndex is net/http/pprof's index page in its exact layout, with plausible
// profile counts.
func pprofIndex(h *hit) Answer {
	body := render("pprof.html.tmpl", struct{ Heap, Goroutines, Threads int }{h.num(12, 90), h.num(40, 400), h.num(11, 24)})
	return respond(goHTTP, 200, "text/html; charset=utf-8", body, [2]string{"x-content-type-options", "nosniff"})
}

// sizeClasses are the Go runtime's allocation size classes, as
// runtime.MemStats.BySize lists them.
var sizeClasses = [...]uint32{0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048,
	2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880,
	12288, 13568, 14336, 16384, 18432}

// memStats is runtime.MemStats as expvar encodes it with encoding/json: its
// fields in runtime.MemStats's order.
type memStats struct {
	Alloc, TotalAlloc, Sys, Lookups, Mallocs, Frees                                 uint64
	HeapAlloc, HeapSys, HeapIdle, HeapInuse, HeapReleased, HeapObjects              uint64
	StackInuse, StackSys, MSpanInuse, MSpanSys, MCacheInuse, MCacheSys, BuckHashSys uint64
	GCSys, OtherSys, NextGC, LastGC, PauseTotalNs                                   uint64
	PauseNs, PauseEnd                                                               [256]uint64
	NumGC, NumForcedGC                                                              uint32
	GCCPUFraction                                                                   float64
	EnableGC, DebugGC                                                               bool
	BySize                                                                          []sizeClass
}

type sizeClass struct {
	Size           uint32
	Mallocs, Frees uint64
}

// expvarVars is expvar's /debug/vars: the command line (with a database DSN
// flag) and the memory statistics, in expvar's layout.
func expvarVars(h *hit) Answer {
	cmdline := []string{"/usr/local/bin/" + h.app.Slug, "-config", "/etc/" + h.app.Slug + "/config.yaml", "-db", h.token(KindConnectionString)}
	alloc := uint64(h.num(18, 64)) << 20
	sys := alloc*3 + uint64(h.num(8, 40))<<20
	heapSys := sys * 3 / 4
	heapInuse := alloc + alloc/8
	numGC := h.num(800, 40000)
	lastGC := h.now.Add(-time.Duration(h.num(1, 90)) * time.Second)
	m := memStats{Alloc: alloc, Sys: sys, HeapAlloc: alloc, HeapSys: heapSys, HeapInuse: heapInuse,
		HeapIdle: heapSys - heapInuse, HeapReleased: (heapSys - heapInuse) / 2,
		LastGC: uint64(lastGC.UnixNano()), NumGC: uint32(numGC), EnableGC: true,
		MCacheInuse: 14400, MCacheSys: 15600}
	var pauseTotal uint64
	end := lastGC
	for i := range m.PauseNs {
		j := (numGC - 1 - i) % 256 // the newest pause sits at (NumGC+255)%256; numGC > 256
		m.PauseNs[j] = uint64(h.num(25000, 400000))
		m.PauseEnd[j] = uint64(end.UnixNano())
		pauseTotal += m.PauseNs[j]
		end = end.Add(-time.Duration(h.num(60, 240)) * time.Second)
	}
	m.PauseTotalNs = pauseTotal / 256 * uint64(numGC)
	m.BySize = make([]sizeClass, len(sizeClasses))
	for i, s := range sizeClasses {
		if s == 0 {
			continue
		}
		mallocs := uint64(h.num(1000, 9000000)) / uint64(1+i/4)
		frees := mallocs - mallocs/uint64(h.num(40, 400))
		m.BySize[i] = sizeClass{Size: s, Mallocs: mallocs, Frees: frees}
		m.Mallocs, m.Frees = m.Mallocs+mallocs, m.Frees+frees
	}
	m.HeapObjects = m.Mallocs - m.Frees
	// Drawn after the pauses and the size classes, in the order of the fields.
	m.TotalAlloc = alloc * uint64(h.num(200, 3000))
	m.StackInuse = uint64(h.num(48, 128)) << 15
	m.StackSys = uint64(h.num(48, 128)) << 15
	m.MSpanInuse = uint64(h.num(300, 900) * 160)
	m.MSpanSys = uint64(h.num(600, 1200) * 160)
	m.BuckHashSys = uint64(h.num(1500000, 1700000))
	m.GCSys = uint64(h.num(4, 9)) << 20
	m.OtherSys = uint64(h.num(900000, 2500000))
	m.NextGC = alloc + alloc*uint64(h.num(50, 100))/100
	m.GCCPUFraction = float64(h.num(30, 4000)) / 1e6
	body := render("expvar.json.tmpl", struct {
		Cmdline  []string
		MemStats memStats
	}{cmdline, m})
	return respond(goHTTP, 200, "application/json; charset=utf-8", body)
}

// sqlTime is how MySQL prints a datetime.
const sqlTime = "2006-01-02 15:04:05"

// sqlDump is a mysqldump of a users table, one legacy row of which holds a
// plaintext password, and of an api_tokens table.
func sqlDump(h *hit) Answer {
	legacy := person{id: h.num(1, 9), name: "Ops Team", email: "ops@" + h.app.Domain,
		role: "admin", created: h.ago(1000*day, 1400*day)}
	staff := h.people(legacy.id, "admin", "support", "analyst")
	password := h.token(KindPassword)
	deploy, reporting := h.token(KindToken), h.token(KindToken)
	dumped := time.Date(h.now.Year(), h.now.Month(), h.now.Day(), 3, h.num(0, 40), h.num(0, 59), 0, time.UTC)
	if !dumped.Before(h.now) {
		dumped = dumped.Add(-day)
	}
	type userRow struct {
		ID                                       int
		Email, Name, PasswordHash, Role, Created string
	}
	type tokenRow struct {
		UserID                   int
		Token, LastUsed, Created string
	}
	users := []userRow{{legacy.id, legacy.email, legacy.name, password, legacy.role, legacy.created.Format(sqlTime)}}
	for _, p := range staff {
		users = append(users, userRow{p.id, p.email, p.name, h.bcrypt(), p.role, p.created.Format(sqlTime)})
	}
	data := struct {
		App               app
		Users             []userRow
		NextUserID        int
		Reporting, Deploy tokenRow
		Dumped            time.Time
	}{App: h.app, Users: users, NextUserID: staff[len(staff)-1].id + 1, Dumped: dumped}
	data.Reporting = tokenRow{UserID: legacy.id, Token: reporting, Created: h.ago(900*day, 1000*day).Format(sqlTime)}
	data.Deploy = tokenRow{UserID: staff[0].id, Token: deploy, LastUsed: h.ago(time.Hour, 3*day).Format(sqlTime)}
	data.Deploy.Created = h.ago(60*day, 400*day).Format(sqlTime)
	return fileAt(nginx, "application/sql", render("mysqldump.sql.tmpl", data), dumped.Add(time.Duration(h.num(1, 50))*time.Second))
}

// adminLogin is a sign-in page that posts to itself, or a JSON 401 under a
// path that reads like an API.
func adminLogin(h *hit) Answer {
	if h.apiStyle() {
		return respond(nginx, 401, "application/json", renderJSON("admin-401.json.tmpl", nil, ""),
			[2]string{"www-authenticate", `Bearer realm="admin"`},
			[2]string{"cache-control", "no-store"})
	}
	body := render("admin-login.html.tmpl", struct{ Title, Action, CSRF string }{h.app.Title, h.path, h.word(43, alnum+"-_")})
	return respond(nginx, 200, "text/html; charset=utf-8", body,
		[2]string{"cache-control", "no-store"},
		[2]string{"x-frame-options", "DENY"})
}

// userList is a page of staff accounts and one service account with its API
// key.
func userList(h *hit) Answer {
	const rfc3339 = "2006-01-02T15:04:05Z"
	type user struct {
		ID                                    int
		Name, Email, Role, Created, LastLogin string
	}
	people := h.people(0, "admin", "support", "analyst", "developer")
	var staff []user
	for _, p := range people {
		staff = append(staff, user{p.id, p.name, p.email, p.role, p.created.Format(rfc3339), p.lastActive.Format(rfc3339)})
	}
	last := people[len(people)-1]
	service := user{ID: last.id + h.num(1, 90), Name: "svc-" + h.app.Org + "-sync", Email: "svc-sync@" + h.app.Domain, Role: "service"}
	service.Created = last.created.Add(time.Duration(h.num(1, 15)) * day).Format(rfc3339)
	body := renderJSON("users.json.tmpl", struct {
		Staff   []user
		Service user
		APIKey  string
		Total   int
	}{staff, service, h.token(KindAPIKey), len(staff) + 1}, "")
	return respond(nginx, 200, "application/json; charset=utf-8", body, [2]string{"cache-control", "no-cache, private"})
}

// phpHeaders are the caching headers WordPress and phpMyAdmin send on their
// login pages.
var phpHeaders = [][2]string{
	{"expires", "Wed, 11 Jan 1984 05:00:00 GMT"},
	{"cache-control", "no-cache, must-revalidate, max-age=0, no-store, private"},
	{"x-frame-options", "SAMEORIGIN"},
}

// wpLogin is WordPress's login page, under the path it was asked at.
func wpLogin(h *hit) Answer {
	body := render("wp-login.html.tmpl", struct{ Title, Root string }{h.app.Title, h.prefix})
	return respond(php, 200, "text/html; charset=UTF-8", body, phpHeaders...)
}

// phpMyAdmin is phpMyAdmin 5.2's login page; it posts to itself.
func phpMyAdmin(h *hit) Answer {
	body := render("phpmyadmin.html.tmpl", struct{ Action, Token string }{h.path, h.word(32, lowerHex)})
	return respond(php, 200, "text/html; charset=utf-8", body, phpHeaders...)
}

func awsCredentials(h *hit) Answer {
	type profile struct{ KeyID, Secret string }
	var data struct {
		App             app
		Default, Deploy profile
	}
	data.App = h.app
	data.Default = profile{h.token(KindAWSKey), h.awsSecret()}
	data.Deploy = profile{h.token(KindAWSKey), h.awsSecret()}
	return h.file(nginx, "text/plain", render("aws-credentials.tmpl", data))
}

func configJSON(h *hit) Answer {
	body := renderJSON("config.json.tmpl", struct {
		App                                 app
		DatabaseURL, JWTSecret, PaymentsKey string
	}{h.app, h.token(KindConnectionString), h.token(KindSecret), h.token(KindAPIKey)}, "  ")
	return h.file(nginx, "application/json", body)
}

func credentialsJSON(h *hit) Answer {
	body := renderJSON("credentials.json.tmpl", struct {
		App              app
		Password, APIKey string
	}{h.app, h.token(KindPassword), h.token(KindAPIKey)}, "  ")
	return h.file(nginx, "application/json", body)
}

// sshKey is an OpenSSH private key: the real header and key type, then
// material that does not decode to a usable key.
func sshKey(h *hit) Answer {
	const head = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAABlwAAAAdzc2gtcn" +
		"NhAAAAAwEAAQAAAYEA"
	blob := head + h.word(2499, b64) + "=" // 2588 characters, as base64 wants
	var lines []string
	for len(blob) > 70 {
		lines, blob = append(lines, blob[:70]), blob[70:]
	}
	lines = append(lines, blob)
	return h.file(nginx, "application/octet-stream", render("ssh-key.tmpl", struct{ Lines []string }{lines}))
}

// statusRow is one worker of Apache's mod_status table.
type statusRow struct {
	Slot, Generation, PID, AccConn, AccChild, AccSlot int
	Mode                                              string
	CPU                                               float64
	SS, Req, Dur                                      int
	Conn, Child, SlotMB                               float64
	Client3, Client4                                  int
	Request                                           string
}

// serverStatus is Apache's mod_status page; one request in flight carries an
// access token in its query.
func serverStatus(h *hit) Answer {
	restart := h.ago(2*day, 30*day)
	up := h.now.Sub(restart)
	accesses := int(up.Seconds()) * h.num(2, 9)
	const long = "Monday, 02-Jan-2006 15:04:05 MST"
	data := struct {
		Now, Restart                    string
		ConfigGeneration, MPMGeneration int
		Days, Hours, Minutes, Seconds   int
		Load1, Load5, Load15            float64
		Accesses                        int
		TrafficGB                       float64
		Duration, Idle                  int
		Rows                            []statusRow
	}{
		Now: h.now.Format(long), Restart: restart.Format(long), ConfigGeneration: h.num(2, 12), MPMGeneration: h.num(1, 11),
		Days: int(up.Hours()) / 24, Hours: int(up.Hours()) % 24, Minutes: int(up.Minutes()) % 60, Seconds: int(up.Seconds()) % 60,
		Load1: float64(h.num(5, 90)) / 100, Load5: float64(h.num(5, 90)) / 100, Load15: float64(h.num(5, 90)) / 100,
		Accesses: accesses, TrafficGB: float64(accesses) * 7 / 1e6, Duration: accesses * h.num(20, 60), Idle: h.num(60, 90),
	}
	requests := []string{
		"GET " + h.base + "/v0/orders/" + strconv.Itoa(h.num(10000, 99999)) + " HTTP/1.1",
		"GET " + h.base + "/admin/export?format=csv&access_token=" + h.token(KindToken) + " HTTP/1.1",
		"GET " + h.path + " HTTP/1.1",
		"POST " + h.base + "/internal/users/sync HTTP/1.1",
	}
	pid := h.num(1200, 30000)
	for i, req := range requests {
		mode := "W"
		if i == 3 {
			mode = "K"
		}
		data.Rows = append(data.Rows, statusRow{
			Slot: i, Generation: h.num(1, 9), PID: pid + i*h.num(1, 40),
			AccConn: h.num(0, 4), AccChild: h.num(10, 900), AccSlot: h.num(1000, 90000), Mode: mode,
			CPU: float64(h.num(1, 900)) / 100, SS: h.num(0, 3), Req: h.num(0, 900), Dur: h.num(100, 9000000),
			Conn: float64(h.num(0, 90)) / 10, Child: float64(h.num(1, 9000)) / 100, SlotMB: float64(h.num(1000, 90000)) / 100,
			Client3: h.num(0, 9), Client4: h.num(2, 250), Request: req,
		})
	}
	return respond(apache, 200, "text/html; charset=ISO-8859-1", render("server-status.html.tmpl", data))
}

// webConfig is an ASP.NET web.config with a connection string and an API key.
func webConfig(h *hit) Answer {
	conn := h.token(KindConnectionString)
	provider := "System.Data.SqlClient"
	switch {
	case strings.HasPrefix(conn, "postgres"):
		provider = "Npgsql"
	case strings.HasPrefix(conn, "mysql"):
		provider = "MySql.Data.MySqlClient"
	}
	body := render("web-config.xml.tmpl", struct{ ConnectionString, Provider, PaymentsKey string }{conn, provider, h.token(KindAPIKey)})
	return h.file(iis, "text/xml", body)
}

// htpasswd has hashed entries and one written with htpasswd -p, in plain
// text.
func htpasswd(h *hit) Answer {
	body := render("htpasswd.tmpl", struct {
		App                                           app
		AdminSalt, AdminHash, DeployPassword, OrgHash string
	}{h.app, h.word(8, crypt64), h.word(22, crypt64), h.token(KindPassword), "$2y$05$" + h.word(53, crypt64)})
	return h.file(apache, "text/plain", body)
}

// emptyPage is an empty page of a cursor-paginated JSON API with a cursor to
// the next one.
func emptyPage(h *hit) Answer {
	cursor := h.clean(func() string {
		return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"id":%d}`, h.num(10000, 9999999)))
	})
	body := renderJSON("empty-page.json.tmpl", struct{ Cursor string }{cursor}, "")
	return respond(nginx, 200, "application/json; charset=utf-8", body, [2]string{"cache-control", "no-cache, private"})
}
