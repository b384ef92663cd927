package detect

import "unsafe"

// ScannerPath reports whether a request path is shaped like a scanner's
// probe rather than a call to a JSON API: a file of a source checkout, a
// backup, a dump, a configuration or a key (/.git/config, /.env,
// /backup.zip, /db.sql, /web.config, /id_rsa, /index.php~); a server-side
// script (.php, .asp, .aspx, .jsp, .cgi, .pl, .cfm, .do, .action); an admin
// console or a framework's probe (/wp-admin, /phpmyadmin, /actuator,
// /server-status, /cgi-bin, /manager/html, /vendor/phpunit, /HNAP1). Letter
// case does not matter.
//
// A path is judged segment by segment, each segment by its name and its
// extension:
//
//   - a segment that starts with '.' (a dot file or directory), except
//     .well-known (RFC 8615: security.txt, openid-configuration), or with
//     '~' (a user directory), or ends with '~' (an editor's backup);
//   - a segment named as a console, a framework's probe, a key or a
//     package manifest (composer.json, package.json: no API routes them);
//   - a segment whose extension is a backup's, an archive's, a dump's, a
//     configuration's, a log's, a key's or a server-side script's.
//
// Plain words are not scanner-shaped, even when a wordlist holds them
// (/admin, /backup, /config, /login: an API may have them, and a call to
// one it does not have is judged by the inventory, not here). Neither are
// documents an API serves: .json (/openapi.json, /swagger.json, a JSON
// download), .yaml, .xml, .html, .js, .css, .txt, images and .pdf, nor
// /robots.txt, /sitemap.xml or /favicon.ico. Archives are: a .zip or
// .tar.gz under an API is far more often a scanner hunting backups than a
// download. An API that names objects like files (a repository's
// contents, domain names ending .pl or .do) makes such paths benign; the
// behaviour engine counts them over many calls, never one.
//
// The path is the one detection sees (a Transaction's Path), cleaned by
// CleanPath: its escaped dots are decoded. A segment that still starts with
// an escaped dot (%2e) counts as a dot file. It allocates nothing.
func ScannerPath(path string) bool {
	// A segment with upper-case letters is looked up lowered in one of
	// two buffers, in turn, so that the previous segment (for pairs) is
	// never overwritten by the next.
	prev := "" // the previous segment, lower case
	var bufs [2][maxScanName]byte
	cur := 0
	for len(path) > 0 {
		if path[0] == '/' {
			path = path[1:]
			continue
		}
		seg := path
		if i := indexSlash(path); i >= 0 {
			seg, path = path[:i], path[i:]
		} else {
			path = ""
		}
		switch seg[0] {
		case '.':
			if !equalFoldASCII(seg, ".well-known") {
				return true
			}
			continue
		case '~':
			return true
		case '%':
			if len(seg) >= 3 && seg[1] == '2' && (seg[2] == 'e' || seg[2] == 'E') {
				return true
			}
		}
		if seg[len(seg)-1] == '~' {
			return true
		}
		if scannerExtension(seg) {
			return true
		}
		if len(seg) > maxScanName {
			prev = ""
			continue // no name of the list is that long
		}
		name := seg
		if hasUpper(seg) {
			lower := &bufs[cur]
			n := copy(lower[:], seg)
			for i := range n {
				if c := lower[i]; 'A' <= c && c <= 'Z' {
					lower[i] = c + 'a' - 'A'
				}
			}
			name, cur = unsafe.String(&lower[0], n), 1-cur
		}
		if scannerName(name) || scannerPair(prev, name) {
			return true
		}
		prev = name
	}
	return false
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// maxScanName is the longest segment ScannerPath looks up by name.
const maxScanName = 24

func indexSlash(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

// equalFoldASCII reports whether s is lower, ignoring ASCII letter case.
func equalFoldASCII(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// maxScanExt is the longest extension ScannerPath looks up.
const maxScanExt = 10

// scannerExtension reports whether seg's extension (after its last dot) is
// one of a backup, an archive, a dump, a configuration, a log, a key or a
// server-side script.
func scannerExtension(seg string) bool {
	dot := -1
	for i := len(seg) - 1; i > 0 && len(seg)-i <= maxScanExt+1; i-- {
		if seg[i] == '.' {
			dot = i
			break
		}
	}
	if dot < 0 || dot == len(seg)-1 {
		return false
	}
	var buf [maxScanExt]byte
	n := copy(buf[:], seg[dot+1:])
	for i := range n {
		if c := buf[i]; 'A' <= c && c <= 'Z' {
			buf[i] = c + 'a' - 'A'
		}
	}
	switch string(buf[:n]) {
	case
		// Backups and editors' files.
		"bak", "bakup", "back", "backup", "bkp", "old", "orig", "save", "sav", "saved",
		"swp", "swo", "tmp", "temp", "copy", "dist", "stackdump",
		// Archives.
		"zip", "rar", "7z", "tar", "gz", "tgz", "bz2", "xz", "war",
		// Dumps and databases.
		"sql", "db", "sqlite", "sqlite3", "mdb", "dump", "mysql", "pgsql", "pid",
		// Configuration, logs, keys.
		"ini", "conf", "cfg", "config", "env", "properties", "inc", "reg", "log",
		"pem", "key", "p12", "pfx", "jks", "keystore", "ppk", "passwd", "htpasswd", "htaccess",
		// Server-side scripts and what only their servers answer.
		"php", "php3", "php4", "php5", "php7", "phtml", "phps", "asp", "aspx", "ashx", "asmx",
		"axd", "asa", "asax", "ascx", "jsp", "jspx", "jhtml", "cgi", "pl", "cfm", "cfc",
		"cfml", "do", "action", "shtml", "stm", "nsf", "dll", "exe", "bat", "sh", "wadl", "swf",
		"jws", "jsw", "jsv", "xsql", "sqljsp", "uix", "idc", "idq", "ida", "htr", "htw", "printer",
		// Sources.
		"java", "rb", "erb", "bas", "vbs", "ear", "nlm", "pwd":
		return true
	}
	return false
}

// scannerName reports whether a segment (lower case) is a console's, a
// framework's probe, a key's or a package manifest's name.
func scannerName(name string) bool {
	switch name {
	case
		// WordPress and PHP tools.
		"wp-admin", "wp-content", "wp-includes", "wp-json", "wordpress",
		"phpmyadmin", "phpmyadmin2", "pma", "myadmin", "mysqladmin", "adminer",
		"phpunit", "phpinfo", "_ignition", "_profiler", "_wdt", "fckeditor", "kcfinder", "elfinder",
		// Consoles of servers and frameworks.
		"administrator", "actuator", "jolokia", "heapdump", "server-status", "server-info",
		"cgi-bin", "cgi-sys", "cgi-pub", "cgi-local", "cgi-script", "solr", "jenkins", "hudson",
		"console", "jmx-console", "web-console", "admin-console", "host-manager", "invoker",
		"web-inf", "meta-inf", "web.xml", "servlet", "ows-bin", "fcgi-bin", "bea_wls_internal", "oa_html", "axis2", "axis2-admin", "webdav", "geoserver", "nacos",
		"_vti_bin", "_vti_pvt", "_vti_cnf", "_vti_log", "_vti_inf", "owa", "ecp", "autodiscover",
		// Devices' probes.
		"hnap1", "boaform", "goform",
		// Keys and system files.
		"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "authorized_keys", "known_hosts", "passwd",
		"id_rsa.pub", "id_dsa.pub", "id_ecdsa.pub", "id_ed25519.pub",
		// Manifests and configuration files no API routes.
		"composer.json", "composer.lock", "package.json", "package-lock.json", "yarn.lock",
		"gemfile", "gemfile.lock", "dockerfile", "docker-compose.yml", "docker-compose.yaml",
		"appsettings.json", "secrets.yml", "database.yml", "settings.py", "thumbs.db",
		"crossdomain.xml", "clientaccesspolicy.xml":
		return true
	}
	return false
}

// scannerPair reports whether two segments together are a probe whose
// second word alone is an ordinary one: Tomcat's /manager/html.
func scannerPair(prev, name string) bool {
	return prev == "manager" && (name == "html" || name == "text" || name == "status")
}
