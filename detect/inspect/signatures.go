package inspect

import "net/netip"

// --- command injection ---

// shellCommands are commands injected after a separator (in lower case);
// the name may come with a path (/bin/cat, /usr/bin/id).
var shellCommands = [...]string{
	"id", "whoami", "uname", "cat", "ls", "dir", "sleep", "ping", "wget", "curl", "nc", "ncat",
	"netcat", "bash", "sh", "zsh", "ksh", "csh", "tcsh", "dash", "echo", "type", "nslookup", "dig",
	"host", "powershell", "pwsh", "cmd", "ifconfig", "ipconfig", "net", "perl", "python",
	"python3", "php", "ruby", "node", "chmod", "chown", "rm", "touch", "kill", "ps", "netstat",
	"true", "false", "env", "set", "printenv", "passwd", "telnet", "ssh", "scp", "tftp", "ftp",
	"systeminfo", "tasklist", "hostname", "timeout", "eval", "exec", "base64", "xterm", "awk",
	"sed", "find", "head", "tail", "more", "less", "cp", "mv", "mkdir", "uptime", "w", "who",
	"last", "sudo", "su", "crontab", "nohup", "expr", "print",
}

// detectCommand finds a shell command after a command separator (; | ||
// && newline), a command substitution (`…`, $(…)), ${IFS} or a
// server-side include's exec.
func detectCommand(v []byte, c classes) string {
	if c.has(clsLT) && indexFold(v, "<!--#exec") >= 0 {
		return DetSSI
	}
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '/':
			if hasPrefixFold(v[i:], "/bin/") && commandAt(v[i+5:]) || hasPrefixFold(v[i:], "/sbin/") && commandAt(v[i+6:]) {
				return DetCommand
			}
		case ';', '|', '\n':
			if commandAt(v[i+1:]) {
				return DetCommand
			}
		case '&':
			if i+1 < len(v) && v[i+1] == '&' {
				if commandAt(v[i+2:]) {
					return DetCommand
				}
				i++
			} else if strongCommandAt(v[i+1:]) {
				return DetCommand
			}
		case '`':
			if j := indexByte(v[i+1:], '`'); j > 0 && commandAt(v[i+1:i+1+j]) {
				return DetSubstitution
			}
		case '$':
			if i+1 < len(v) && v[i+1] == '(' && commandAt(v[i+2:]) {
				return DetSubstitution
			}
			if hasPrefixFold(v[i+1:], "{ifs}") {
				return DetCommand
			}
		}
	}
	return ""
}

// strongCommands are the commands of shellCommands that are not also
// words of prose: after a lone '&' ("Tom & Jerry") only these count.
var strongCommands = [...]string{
	"id", "whoami", "uname", "wget", "curl", "nc", "ncat", "netcat", "bash", "sh", "zsh",
	"powershell", "pwsh", "cmd", "ifconfig", "ipconfig", "nslookup", "ping", "chmod", "chown",
	"rm", "netstat", "systeminfo", "tasklist", "hostname", "crontab", "nohup", "python",
	"python3", "perl", "php", "base64", "telnet", "ssh", "sleep", "cat", "ls", "dir", "passwd",
	"printenv", "xterm", "sudo",
}

func strongCommandAt(s []byte) bool {
	name := commandName(s)
	for _, c := range strongCommands {
		if len(c) == len(name) && hasPrefixFold(name, c) {
			return true
		}
	}
	return false
}

// commandAt reports whether s starts (after blanks, quotes and parens
// closing the context) with a shell command: a name of shellCommands,
// possibly with a directory, followed by the end or an argument separator.
func commandAt(s []byte) bool {
	name := commandName(s)
	for _, c := range shellCommands {
		if len(c) == len(name) && hasPrefixFold(name, c) {
			return true
		}
	}
	return false
}

// commandName is the command name at the start of s: leading blanks and
// context-closing bytes skipped, directory and .exe dropped; nil when it
// cannot be a command.
func commandName(s []byte) []byte {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '+' || s[i] == '|' || s[i] == ';' || s[i] == '&' || s[i] == '(' || s[i] == '{') {
		i++
	}
	s = s[i:]
	// The name runs to a separator; its last path element is the command.
	j := 0
	for j < len(s) && !isCmdEnd(s[j]) {
		j++
	}
	name := s[:j]
	for k := len(name) - 1; k >= 0; k-- {
		if name[k] == '/' || name[k] == '\\' {
			name = name[k+1:]
			break
		}
	}
	if n := len(name); n > 4 && hasSuffixFoldBytes(name, ".exe") {
		name = name[:n-4]
	}
	if len(name) > 12 {
		return nil
	}
	return name
}

func isCmdEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ';', '|', '&', '`', ')', '<', '>', '+', '"', '\'', '$', '#', ',':
		return true
	}
	return false
}

func hasSuffixFoldBytes(b []byte, suf string) bool {
	return len(b) >= len(suf) && hasPrefixFold(b[len(b)-len(suf):], suf)
}

// detectShellshock finds a bash function definition, "() {", spaces
// allowed around the parens.
func detectShellshock(v []byte) bool {
	for i := 0; i+1 < len(v); i++ {
		if v[i] != '(' {
			continue
		}
		j := i + 1
		for j < len(v) && v[j] == ' ' {
			j++
		}
		if j >= len(v) || v[j] != ')' {
			continue
		}
		j++
		for j < len(v) && v[j] == ' ' {
			j++
		}
		if j < len(v) && v[j] == '{' {
			return true
		}
	}
	return false
}

// --- SSRF ---

// ssrfSchemes are URL schemes that reach files or raw sockets; "file:" is
// taken only before a '/'.
var ssrfSchemes = [...]string{"gopher:", "dict:", "php:", "jar:", "netdoc:", "expect:", "phar:", "sftp:", "tftp:", "ldap:", "ldaps:"}

// metadataHosts are cloud metadata endpoints by name.
var metadataHosts = [...]string{"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "metadata.azure.com"}

// detectSSRF finds a URL (scheme://host, //host) whose host is a cloud
// metadata endpoint or an internal address (loopback, private, link-local,
// in any spelling: 2130706433, 0x7f.1, 0177.0.0.1, [::ffff:127.0.0.1]), a
// scheme that reaches files or raw sockets, or a metadata address anywhere.
func detectSSRF(v []byte, c classes) string {
	if c.has(clsColon) {
		for i := 0; i < len(v); i++ {
			if v[i] != ':' {
				continue
			}
			// The scheme is the letters before the colon.
			s := i
			for s > 0 && isSchemeByte(v[s-1]) {
				s--
			}
			if s == i {
				continue
			}
			scheme := v[s : i+1]
			if hasPrefixFold(scheme, "file:") && len(scheme) == 5 && i+1 < len(v) && (v[i+1] == '/' || v[i+1] == '\\') {
				return DetSSRFScheme
			}
			for _, sc := range ssrfSchemes {
				if len(sc) == len(scheme) && hasPrefixFold(scheme, sc) && i+2 < len(v) && v[i+1] == '/' && v[i+2] == '/' {
					return DetSSRFScheme
				}
			}
			if i+2 < len(v) && v[i+1] == '/' && v[i+2] == '/' {
				if d := ssrfHost(hostOf(v[i+3:])); d != "" {
					return d
				}
			}
		}
	}
	if indexFold(v, "169.254.169.254") >= 0 || indexFold(v, "fd00:ec2::254") >= 0 {
		return DetSSRFMetadata
	}
	return ""
}

func isSchemeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
}

// hostOf is the host of the authority at the start of s: up to the path,
// without user info, brackets or port.
func hostOf(s []byte) []byte {
	end := len(s)
	for i, c := range s {
		if c == '/' || c == '?' || c == '#' || c == '\\' || c == ' ' {
			end = i
			break
		}
	}
	s = s[:end]
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '@' {
			s = s[i+1:]
			break
		}
	}
	if len(s) > 0 && s[0] == '[' {
		if j := indexByte(s, ']'); j > 0 {
			return s[1:j]
		}
		return s[1:]
	}
	if j := indexByte(s, ':'); j >= 0 {
		s = s[:j]
	}
	for len(s) > 0 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}

// ssrfHost judges one host name or address.
func ssrfHost(h []byte) string {
	if len(h) == 0 {
		return ""
	}
	for _, m := range metadataHosts {
		if len(h) == len(m) && hasPrefixFold(h, m) {
			return DetSSRFMetadata
		}
	}
	if len(h) == len("localhost") && hasPrefixFold(h, "localhost") || hasSuffixFoldBytes(h, ".localhost") {
		return DetSSRFInternal
	}
	var a netip.Addr
	if ip, ok := parseIPv4Loose(h); ok {
		a = netip.AddrFrom4(ip)
	} else if indexByte(h, ':') >= 0 {
		h = h[:zoneCut(h)]
		p, err := netip.ParseAddr(stringOf(h))
		if err != nil {
			return ""
		}
		a = p.Unmap()
	} else {
		return ""
	}
	return ssrfAddr(a)
}

func zoneCut(h []byte) int {
	if i := indexByte(h, '%'); i >= 0 {
		return i
	}
	return len(h)
}

var (
	metaV4  = netip.AddrFrom4([4]byte{169, 254, 169, 254})
	metaAli = netip.AddrFrom4([4]byte{100, 100, 100, 200})
	metaV6  = netip.MustParseAddr("fd00:ec2::254")
	cgnat   = netip.MustParsePrefix("100.64.0.0/10")
)

func ssrfAddr(a netip.Addr) string {
	switch {
	case a == metaV4 || a == metaAli || a == metaV6:
		return DetSSRFMetadata
	case a.IsLoopback(), a.IsPrivate(), a.IsLinkLocalUnicast(), a.IsUnspecified(),
		a.IsLinkLocalMulticast(), cgnat.Contains(a):
		return DetSSRFInternal
	}
	return ""
}

// parseIPv4Loose parses an IPv4 address the way inet_aton (and so many
// HTTP clients) does: one to four parts, each decimal, hex (0x) or octal
// (leading 0), the last part filling the remaining bytes (127.1,
// 2130706433, 0x7f000001, 0177.0.0.1).
func parseIPv4Loose(h []byte) ([4]byte, bool) {
	var parts [4]uint64
	n := 0
	for len(h) > 0 {
		if n == 4 {
			return [4]byte{}, false
		}
		j := indexByte(h, '.')
		part := h
		if j >= 0 {
			part, h = h[:j], h[j+1:]
			if len(h) == 0 {
				return [4]byte{}, false
			}
		} else {
			h = nil
		}
		x, ok := parseIntLoose(part)
		if !ok {
			return [4]byte{}, false
		}
		parts[n] = x
		n++
	}
	if n == 0 {
		return [4]byte{}, false
	}
	var ip [4]byte
	for i := 0; i < n-1; i++ {
		if parts[i] > 255 {
			return ip, false
		}
		ip[i] = byte(parts[i])
	}
	last := parts[n-1]
	rest := 4 - (n - 1)
	if last >= 1<<(8*rest) {
		return ip, false
	}
	for i := 3; i >= n-1; i-- {
		ip[i] = byte(last)
		last >>= 8
	}
	return ip, true
}

func parseIntLoose(s []byte) (uint64, bool) {
	if len(s) == 0 || len(s) > 34 {
		return 0, false
	}
	base := uint64(10)
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	var x uint64
	for _, c := range s {
		d, ok := unhex(c)
		if !ok || uint64(d) >= base {
			return 0, false
		}
		x = x*base + uint64(d)
		if x > 1<<32 {
			return 0, false
		}
	}
	return x, true
}

// --- Log4Shell ---

// maxLookupRounds bounds the lookups resolved in one value.
const maxLookupRounds = 64

// detectJNDI resolves Log4j lookups from the innermost out, the way Log4j
// does, so that the obfuscations (${${lower:j}ndi:…}, ${${::-j}ndi:…},
// ${${env:X:-j}ndi:…}, ${${upper:J}NDI:…}, ${date:'j'}) collapse, and
// reports whether a ${jndi:…} lookup appears (an unterminated one too).
// buf is scratch of at least len(v) bytes.
func detectJNDI(buf, v []byte) bool {
	if len(v) > cap(buf) {
		v = v[:cap(buf)]
	}
	b := append(buf[:0], v...)
	for range maxLookupRounds {
		// The innermost lookup: the last "${" and the first '}' after it.
		p := -1
		for i := len(b) - 2; i >= 0; i-- {
			if b[i] == '$' && b[i+1] == '{' {
				p = i
				break
			}
		}
		if p < 0 {
			return false
		}
		q := indexByte(b[p+2:], '}')
		if q < 0 {
			// Unterminated: not a lookup Log4j resolves, but a payload cut
			// short (or by a cap) still shows its intent.
			return hasPrefixFold(b[p+2:], "jndi:")
		}
		inner := b[p+2 : p+2+q]
		if hasPrefixFold(inner, "jndi:") {
			return true
		}
		repl := lookupValue(inner)
		n := copy(b[p:], repl)
		n += copy(b[p+n:], b[p+2+q+1:])
		b = b[:p+n]
	}
	return false
}

// lookupValue is what a non-JNDI lookup turns into: its default after
// ":-", the argument of lower:/upper:, a date pattern's quoted text, or
// nothing.
func lookupValue(inner []byte) []byte {
	for i := 0; i+1 < len(inner); i++ {
		if inner[i] == ':' && inner[i+1] == '-' {
			return inner[i+2:]
		}
	}
	switch {
	case hasPrefixFold(inner, "lower:"), hasPrefixFold(inner, "upper:"):
		return inner[6:]
	case hasPrefixFold(inner, "date:"):
		d := inner[5:]
		if len(d) >= 2 && d[0] == '\'' && d[len(d)-1] == '\'' {
			return d[1 : len(d)-1]
		}
		return d
	}
	return nil
}

// --- CRLF ---

// splitHeaders are response headers an injection sets; in bodies, where
// text often spans lines, only these count.
var splitHeaders = [...]string{
	"set-cookie", "location", "content-type", "content-length", "refresh", "x-xss-protection",
	"access-control-allow-origin", "content-security-policy", "transfer-encoding", "cache-control",
	"link", "host", "x-forwarded-for", "cookie", "authorization",
}

// detectCRLF finds a line break followed by a header ("\r\nSet-Cookie:
// x") or an empty line (response splitting). Outside bodies any header
// name counts; in bodies only splitHeaders do.
func detectCRLF(v []byte, loc Location) string {
	for i := 0; i < len(v); i++ {
		if v[i] != '\r' && v[i] != '\n' {
			continue
		}
		j := i + 1
		if v[i] == '\r' && j < len(v) && v[j] == '\n' {
			j++
		}
		rest := v[j:]
		if loc != LocBody && (len(rest) > 0 && (rest[0] == '\r' || rest[0] == '\n')) {
			return DetCRLFSplit
		}
		k := 0
		for k < len(rest) && (isWordByte(rest[k]) || rest[k] == '-') {
			k++
		}
		if k == 0 || k >= len(rest) || rest[k] != ':' {
			continue
		}
		if loc != LocBody {
			return DetCRLF
		}
		for _, h := range splitHeaders {
			if len(h) == k && hasPrefixFold(rest, h) {
				return DetCRLF
			}
		}
	}
	return ""
}
