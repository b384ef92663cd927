package detect

import (
	"fmt"
	"sort"
	"strings"
)

// Mode says what Vigil does with an API's would-be blocks.
type Mode uint8

// Modes. learn and detect never block: they record what would have been
// blocked. block blocks.
const (
	ModeBlock Mode = iota
	ModeDetect
	ModeLearn
)

func (m Mode) String() string {
	switch m {
	case ModeBlock:
		return "block"
	case ModeDetect:
		return "detect"
	case ModeLearn:
		return "learn"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode parses "learn", "detect" or "block".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "block":
		return ModeBlock, nil
	case "detect":
		return ModeDetect, nil
	case "learn":
		return ModeLearn, nil
	}
	return 0, fmt.Errorf("unknown mode %q (want learn, detect or block)", s)
}

// API is one protected API as Vigil enforces it. Values are immutable once
// built: a configuration change builds a new catalog.
type API struct {
	Name     string
	Hosts    []string // lower-case, without port; "*" or empty matches any host; "*.x" matches sub-domains
	BasePath string   // "/" or a path without trailing slash
	Mode     Mode
	// MaxBodyBytes is the largest request body accepted; 0 means no limit.
	MaxBodyBytes int64
	// MaxJSONElements is the largest element count of any JSON array in a
	// request body (a json-patch's operations); 0 means no limit.
	MaxJSONElements int
	Identities      IdentitySources
	// LoginPaths are the API's login endpoints (suffixes of the path);
	// empty means DefaultLoginPaths.
	LoginPaths []string
	// LoginUsernameFields are the form and JSON fields of a login body
	// that name the account tried (apis[].login_username_fields): a call
	// to a login path has its username identity read from its body (see
	// LoginUsername). nil means DefaultLoginUsernameFields; an empty
	// list reads no body.
	LoginUsernameFields []string
	// Discovered is set on the catalog's fallback API, which stands for
	// every API discovered from traffic.
	Discovered bool
	// DecoysBlock makes a decoy hit refuse whatever Mode says: set on the
	// fallback when its detect mode is Vigil's default rather than the
	// operator's choice, so that decoy APIs and honeytokens keep trapping.
	DecoysBlock bool
	// Inspection turns content inspection (detect/inspect) on for the
	// API's calls: values of the query, path, selected headers and body
	// checked for injections and against learned profiles.
	Inspection bool
	// OpenAPIPath is the API's OpenAPI document (apis[].openapi), a
	// positive model of its calls; empty: none.
	OpenAPIPath string
}

// MayBeLoginPath reports whether a call to path, in any letter case, is a
// login to the API as the engine counts logins (its login paths, else
// DefaultLoginPaths, matched by isLoginPath). A decoy, which matches paths
// case-insensitively, must never stand where this holds.
func (a *API) MayBeLoginPath(path string) bool {
	lps := loginPaths(a)
	lower := make([]string, len(lps))
	for i, p := range lps {
		lower[i] = strings.ToLower(p)
	}
	return isLoginPath(lower, strings.ToLower(path))
}

// DefaultLoginPaths are the login endpoints of APIs that configure none:
// a path ending in one of them is a login.
var DefaultLoginPaths = []string{"/login", "/signin", "/sign-in", "/auth", "/authenticate", "/token", "/oauth/token", "/session", "/sessions"}

// IsLoginPath reports whether a call to path is a login to the API as the
// engine counts logins: path ends in one of its login paths (DefaultLoginPaths
// when it configures none, or a is nil), at a segment boundary.
func (a *API) IsLoginPath(path string) bool { return isLoginPath(loginPaths(a), path) }

func loginPaths(a *API) []string {
	if a != nil && len(a.LoginPaths) > 0 {
		return a.LoginPaths
	}
	return DefaultLoginPaths
}

// isLoginPath reports whether path is one of the API's login endpoints: it
// ends in one of paths, at a segment boundary (/login matches
// /shopapi-bid/login, not /shopapi-bid/relogin).
func isLoginPath(paths []string, path string) bool {
	for _, p := range paths {
		if p == "" || !strings.HasSuffix(path, p) {
			continue
		}
		if len(path) == len(p) || p[0] == '/' || path[len(path)-len(p)-1] == '/' {
			return true
		}
	}
	return false
}

// Catalog maps a request's host and path to the API it belongs to.
type Catalog struct {
	apis     []*API // sorted by base path length, longest first
	fallback *API
}

// NewCatalog builds a catalog of configured APIs; fallback holds the settings
// of traffic that matches none of them.
func NewCatalog(apis []*API, fallback *API) *Catalog {
	c := &Catalog{apis: append([]*API(nil), apis...), fallback: fallback}
	fallback.Discovered = true
	// The most specific API first: longest base path, then, for one base
	// path, exact hosts before "*.domain" before any host, so that the order
	// of the configuration does not decide.
	sort.SliceStable(c.apis, func(i, j int) bool {
		a, b := c.apis[i], c.apis[j]
		if len(a.BasePath) != len(b.BasePath) {
			return len(a.BasePath) > len(b.BasePath)
		}
		return hostRank(a.Hosts) > hostRank(b.Hosts)
	})
	return c
}

// hostRank orders host lists by specificity: 2 when every host is exact, 1
// when some is a "*.domain" wildcard, 0 when any host matches.
func hostRank(hosts []string) int {
	if len(hosts) == 0 {
		return 0
	}
	rank := 2
	for _, h := range hosts {
		switch {
		case h == "*":
			return 0
		case strings.HasPrefix(h, "*."):
			rank = 1
		}
	}
	return rank
}

// APIs returns the configured APIs.
func (c *Catalog) APIs() []*API { return c.apis }

// Fallback returns the settings used for discovered APIs.
func (c *Catalog) Fallback() *API { return c.fallback }

// Lookup returns the configured API by name.
func (c *Catalog) Lookup(name string) (*API, bool) {
	for _, a := range c.apis {
		if a.Name == name {
			return a, true
		}
	}
	return nil, false
}

// Match returns the API of a request. host may carry a port; path may carry
// a query string. It never allocates.
func (c *Catalog) Match(host, path string) *API {
	host = HostOnly(host)
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	for _, a := range c.apis {
		if pathUnder(path, a.BasePath) && hostMatches(a.Hosts, host) {
			return a
		}
	}
	return c.fallback
}

// pathUnder reports whether path lies under base, on a segment boundary
// (/shop does not hold /shopping). Runs of slashes in path count as one, as
// most servers read them, so that //shop/x cannot escape the /shop API.
func pathUnder(path, base string) bool {
	if base == "/" || base == "" {
		return true
	}
	if len(path) >= len(base) && strings.EqualFold(path[:len(base)], base) && (len(path) == len(base) || path[len(base)] == '/' || path[len(base)] == ';') {
		return true
	}
	// The slow way: repeated slashes collapse, ";parameters" end a segment
	// (/shop;jsessionid=x/items), letters compare without case, as many
	// back ends route.
	i := 0
	for j := 0; j < len(base); j++ {
		if i == len(path) || lower(path[i]) != lower(base[j]) {
			return false
		}
		i++
		if base[j] == '/' {
			// Runs of slashes, and segments that are only ";parameters"
			// (/;x/shop), are one slash.
			for i < len(path) && (path[i] == '/' || path[i] == ';') {
				if path[i] == '/' {
					i++
					continue
				}
				for i < len(path) && path[i] != '/' {
					i++
				}
			}
		}
		if j+1 < len(base) && base[j+1] == '/' || j+1 == len(base) {
			if i < len(path) && path[i] == ';' {
				for i < len(path) && path[i] != '/' {
					i++
				}
			}
		}
	}
	return i == len(path) || path[i] == '/'
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func hostMatches(hosts []string, host string) bool {
	if len(hosts) == 0 {
		return true
	}
	for _, h := range hosts {
		switch {
		case h == "*":
			return true
		case strings.HasPrefix(h, "*."):
			if len(host) > len(h)-1 && strings.EqualFold(host[len(host)-(len(h)-1):], h[1:]) {
				return true
			}
		case strings.EqualFold(h, host):
			return true
		}
	}
	return false
}

// HostOnly strips the port, and the trailing dot of a fully qualified name
// (api.example.com. is api.example.com), from a host header value.
func HostOnly(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i > 0 {
			return host[1:i]
		}
		return host
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host, ':') == i {
		host = host[:i]
	}
	return strings.TrimSuffix(host, ".")
}
