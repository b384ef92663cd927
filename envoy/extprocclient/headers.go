package extprocclient

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// Header lists keep Envoy's header-map semantics: ordered, lower-case keys,
// repeated keys allowed.

// HeaderGet returns the first value of the named header (case
// insensitive) in a header list.
func HeaderGet(h [][2]string, name string) (string, bool) { return hdrGet(h, name) }

// HeaderDel returns the header list without the named header.
func HeaderDel(h [][2]string, name string) [][2]string { return hdrDel(h, name) }

func hdrGet(h [][2]string, name string) (string, bool) {
	name = strings.ToLower(name)
	for _, kv := range h {
		if strings.ToLower(kv[0]) == name {
			return kv[1], true
		}
	}
	return "", false
}

func hdrDel(h [][2]string, name string) [][2]string {
	name = strings.ToLower(name)
	out := h[:0:0]
	for _, kv := range h {
		if kv[0] != name {
			out = append(out, kv)
		}
	}
	return out
}

// hdrSet replaces all values of name by value, keeping the position of the
// first occurrence (Envoy's setCopy), or appends it.
func hdrSet(h [][2]string, name, value string) [][2]string {
	out := make([][2]string, 0, len(h)+1)
	done := false
	for _, kv := range h {
		if kv[0] == name {
			if !done {
				out = append(out, [2]string{name, value})
				done = true
			}
			continue
		}
		out = append(out, kv)
	}
	if !done {
		out = append(out, [2]string{name, value})
	}
	return out
}

func hdrAdd(h [][2]string, name, value string) [][2]string {
	return append(append([][2]string(nil), h...), [2]string{name, value})
}

func lowerAll(h [][2]string) [][2]string {
	out := make([][2]string, 0, len(h))
	for _, kv := range h {
		out = append(out, [2]string{strings.ToLower(kv[0]), kv[1]})
	}
	return out
}

func cloneHeaders(h [][2]string) [][2]string {
	if h == nil {
		return nil
	}
	return append([][2]string(nil), h...)
}

func splitPseudo(h [][2]string) (pseudo, regular [][2]string) {
	for _, kv := range h {
		if strings.HasPrefix(kv[0], ":") {
			pseudo = append(pseudo, kv)
		} else {
			regular = append(regular, kv)
		}
	}
	return pseudo, regular
}

// HeaderMap builds a HeaderMap the way Envoy fills it: keys as given, values
// in raw_value only.
func HeaderMap(headers [][2]string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for _, kv := range headers {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[0], RawValue: []byte(kv[1])})
	}
	return m
}

// HeaderPairs turns "k1", "v1", "k2", "v2", ... into a header list. It panics
// on an odd number of arguments.
func HeaderPairs(kv ...string) [][2]string {
	if len(kv)%2 != 0 {
		panic("extprocclient.HeaderPairs: odd number of arguments")
	}
	out := make([][2]string, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		out = append(out, [2]string{kv[i], kv[i+1]})
	}
	return out
}

// NewRequestID returns a random UUID v4, as Envoy's connection manager puts
// in x-request-id.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

// RequestHeaderMap returns the request header map as Envoy's filters see it
// (ext_proc and ext_authz alike):
// :method, :path, :authority, :scheme, then the lower-cased headers (the
// HTTP/1 "host" header folded into :authority), plus, if addDefaults, the
// client's content-length and the connection manager's x-forwarded-proto
// and x-request-id when absent.
func RequestHeaderMap(req HTTPRequest, addDefaults bool) [][2]string {
	headers := lowerAll(req.Headers)
	authority := req.Authority
	if host, ok := hdrGet(headers, "host"); ok {
		if authority == "" {
			authority = host
		}
		headers = hdrDel(headers, "host")
	}
	method := req.Method
	if method == "" {
		method = "GET"
	}
	path := req.Path
	if path == "" {
		path = "/"
	}
	scheme := req.Scheme
	if scheme == "" {
		scheme = "http"
	}
	// Pseudo-headers given among Headers are dropped: the fields win.
	_, headers = splitPseudo(headers)
	out := [][2]string{{":method", method}, {":path", path}, {":authority", authority}, {":scheme", scheme}}
	out = append(out, headers...)
	if addDefaults {
		_, cl := hdrGet(out, "content-length")
		_, te := hdrGet(out, "transfer-encoding")
		if len(req.Body) > 0 && !cl && !te {
			out = append(out, [2]string{"content-length", strconv.Itoa(len(req.Body))})
		}
		if _, ok := hdrGet(out, "x-forwarded-proto"); !ok {
			out = append(out, [2]string{"x-forwarded-proto", scheme})
		}
		if _, ok := hdrGet(out, "x-request-id"); !ok {
			out = append(out, [2]string{"x-request-id", NewRequestID()})
		}
	}
	return out
}

func responseHeaderMap(resp HTTPResponse) [][2]string {
	status := resp.Status
	if status == 0 {
		status = 200
	}
	_, headers := splitPseudo(lowerAll(resp.Headers))
	return append([][2]string{{":status", strconv.Itoa(status)}}, headers...)
}

// Header-name validity as Envoy's HeaderUtility::headerNameIsValid (RFC 7230
// token, optionally with a leading ':' for pseudo-headers).
func headerNameValid(name string) bool {
	n := strings.TrimPrefix(name, ":")
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func headerValueValid(v []byte) bool {
	for _, c := range v {
		if c == 0 || c == '\r' || c == '\n' {
			return false
		}
	}
	return true
}

// checkHeaderValue reports header values that Envoy would reject or
// misread: both value and raw_value set (Envoy rejects the mutation, 500),
// or value without raw_value (Envoy reads raw_value only and sets an empty
// header, which is never what the server meant).
func checkHeaderValue(where string, h *corev3.HeaderValue) error {
	if h == nil {
		return nil
	}
	if h.GetValue() != "" && len(h.GetRawValue()) != 0 {
		return fmt.Errorf("%s: header %q has both value and raw_value set (Envoy: \"Only one of value or raw_value in the HeaderValue message should be set\", 500)", where, h.GetKey())
	}
	if h.GetValue() != "" {
		return fmt.Errorf("%s: header %q is set through value, Envoy only reads raw_value (the header would be set empty)", where, h.GetKey())
	}
	return nil
}

// applyHeaderMutation applies m to h like MutationUtils::applyHeaderMutations
// with Envoy's default HeaderMutationRules: x-envoy-*, :method, :authority,
// :scheme and host may not be set; x-envoy-*, pseudo-headers and host may not
// be removed; disallowed mutations are ignored. replacing is true for
// CONTINUE_AND_REPLACE, which may change :method. Envoy uses the same rules
// for ImmediateResponse headers.
func applyHeaderMutation(where string, h [][2]string, m *extprocv3.HeaderMutation, replacing bool) ([][2]string, error) {
	if m == nil {
		return h, nil
	}
	h = cloneHeaders(h)
	for _, name := range m.GetRemoveHeaders() {
		if !headerNameValid(name) {
			return h, fmt.Errorf("%s: invalid character in remove_headers entry %q", where, name)
		}
		name = strings.ToLower(name)
		if strings.HasPrefix(name, ":") || name == "host" {
			continue // system headers may never be removed
		}
		if strings.HasPrefix(name, "x-envoy") {
			continue
		}
		h = hdrDel(h, name)
	}
	for _, sh := range m.GetSetHeaders() {
		hv := sh.GetHeader()
		if hv == nil {
			continue
		}
		if err := checkHeaderValue(where, hv); err != nil {
			return h, err
		}
		value := hv.GetRawValue()
		if !headerNameValid(hv.GetKey()) || !headerValueValid(value) {
			return h, fmt.Errorf("%s: invalid character in set_headers entry %q", where, hv.GetKey())
		}
		name := strings.ToLower(hv.GetKey())
		if strings.HasPrefix(name, "x-envoy") {
			continue
		}
		switch name {
		case ":authority", ":scheme", "host":
			continue
		case ":method":
			if !replacing {
				continue
			}
		}
		_, exists := hdrGet(h, name)
		switch sh.GetAppendAction() {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			// append_action unset (0): the legacy append flag decides,
			// and it defaults to false in ext_proc.
			if sh.GetAppend().GetValue() {
				h = hdrAdd(h, name, string(value))
			} else {
				h = hdrSet(h, name, string(value))
			}
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if !exists {
				h = hdrAdd(h, name, string(value))
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h = hdrSet(h, name, string(value))
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if exists {
				h = hdrSet(h, name, string(value))
			}
		default:
			return h, fmt.Errorf("%s: invalid append_action %v for %q", where, sh.GetAppendAction(), name)
		}
	}
	return h, nil
}

// applyBodyMutation applies a BodyMutation (body or clear_body) to a body
// buffer; other mutations (streamed_response) leave it unchanged.
func applyBodyMutation(body []byte, m *extprocv3.BodyMutation) []byte {
	switch mm := m.GetMutation().(type) {
	case *extprocv3.BodyMutation_Body:
		return append([]byte(nil), mm.Body...)
	case *extprocv3.BodyMutation_ClearBody:
		if mm.ClearBody {
			return nil
		}
	}
	return body
}
