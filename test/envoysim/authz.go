package envoysim

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-project/vigil/envoy/extprocclient"
)

// Defaults for CheckOptions.
const (
	DefaultCheckTimeout    = 200 * time.Millisecond // ext_authz grpc_service timeout default
	DefaultDestinationAddr = "127.0.0.1:10000"
	partialBodyHeader      = "x-envoy-auth-partial-body"
)

// CheckOptions mirrors the ext_authz filter settings that shape a
// CheckRequest.
type CheckOptions struct {
	// EncodeRawHeaders is encode_raw_headers: headers go to header_map with
	// raw_value, one entry per header line, instead of the headers map.
	EncodeRawHeaders bool
	// MaxRequestBytes > 0 is with_request_body.max_request_bytes: the body is
	// buffered and sent, with x-envoy-auth-partial-body added to the headers.
	MaxRequestBytes uint32
	// AllowPartialMessage is with_request_body.allow_partial_message. Without
	// it a body over MaxRequestBytes makes Check return
	// ErrRequestEntityTooLarge (Envoy answers 413, never calling the server).
	AllowPartialMessage bool
	// PackAsBytes is with_request_body.pack_as_bytes: raw_body instead of body.
	PackAsBytes bool

	ContextExtensions map[string]string
	MetadataContext   *corev3.Metadata

	// DestinationAddr is the listener address (ip:port), default
	// 127.0.0.1:10000.
	DestinationAddr string
	// ID is attributes.request.http.id; Envoy sends its stream id, a random
	// 64-bit number in decimal, which is the default.
	ID string
	// Protocol is the downstream protocol, default "HTTP/1.1".
	Protocol string
	// Timeout is the grpc_service timeout, default 200ms.
	Timeout time.Duration
	// ExactHeaders: see Config.ExactHeaders.
	ExactHeaders bool
}

// Check calls Authorization/Check with the CheckRequest Envoy's ext_authz
// filter builds for req (see NewCheckRequest), within opts.Timeout. An RPC
// error is what Envoy counts as an authorization *error* (403 by default,
// or allowed with failure_mode_allow), not a denial.
func Check(ctx context.Context, client authv3.AuthorizationClient, req HTTPRequest, opts CheckOptions) (*authv3.CheckResponse, error) {
	cr, err := NewCheckRequest(req, opts)
	if err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return client.Check(ctx, cr)
}

// Allowed applies Envoy's rule: a request is allowed iff the CheckResponse
// status code is 0 (OK; an absent status counts as OK).
func Allowed(resp *authv3.CheckResponse) bool {
	return resp != nil && resp.GetStatus().GetCode() == 0
}

// DeniedStatus is the HTTP status the downstream client gets for a denial:
// denied_response.status, or 403. It returns 0 for an allowed response.
func DeniedStatus(resp *authv3.CheckResponse) int {
	if Allowed(resp) {
		return 0
	}
	if c := int(resp.GetDeniedResponse().GetStatus().GetCode()); c != 0 {
		return c
	}
	return 403
}

func socketAddress(hostport string) (*corev3.Address, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	p, err := strconv.ParseUint(port, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("bad port in %q: %w", hostport, err)
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol:      corev3.SocketAddress_TCP,
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
	}}}, nil
}

// sanitizeUTF8 replaces each invalid byte by '!', like Envoy's
// MessageUtil::sanitizeUtf8String.
func sanitizeUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n == 1 {
			b.WriteByte('!')
		} else {
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// NewCheckRequest builds the CheckRequest Envoy's ext_authz filter sends for
// req: source = the downstream peer (SourceAddr), destination = the listener,
// request.time, request.http with id, method, path (with query), host
// (:authority), scheme, protocol, size (Envoy's bytesReceived: the body
// length when the body is buffered, else 0 as the check starts on headers), lower-cased headers including :authority, :method,
// :path and :scheme (duplicates comma-joined, non-UTF-8 bytes as '!') or
// header_map, and the body as configured.
func NewCheckRequest(req HTTPRequest, opts CheckOptions) (*authv3.CheckRequest, error) {
	src := req.SourceAddr
	if src == "" {
		src = DefaultSourceAddr
	}
	srcAddr, err := socketAddress(src)
	if err != nil {
		return nil, fmt.Errorf("envoysim: SourceAddr: %w", err)
	}
	dst := opts.DestinationAddr
	if dst == "" {
		dst = DefaultDestinationAddr
	}
	dstAddr, err := socketAddress(dst)
	if err != nil {
		return nil, fmt.Errorf("envoysim: DestinationAddr: %w", err)
	}
	// A client-sent x-envoy-auth-partial-body never reaches the server.
	headers := hdrDel(extprocclient.RequestHeaderMap(req, !opts.ExactHeaders), partialBodyHeader)

	httpReq := &authv3.AttributeContext_HttpRequest{
		Id:       opts.ID,
		Protocol: opts.Protocol,
	}
	if httpReq.Id == "" {
		httpReq.Id = newStreamID()
	}
	if httpReq.Protocol == "" {
		httpReq.Protocol = "HTTP/1.1"
	}
	for _, kv := range headers {
		switch kv[0] {
		case ":method":
			httpReq.Method = kv[1]
		case ":path":
			httpReq.Path = kv[1]
		case ":authority":
			httpReq.Host = kv[1]
		case ":scheme":
			httpReq.Scheme = kv[1]
		}
	}

	var partial string
	if opts.MaxRequestBytes > 0 && len(req.Body) > 0 {
		body := req.Body
		if uint64(len(body)) > uint64(opts.MaxRequestBytes) {
			if !opts.AllowPartialMessage {
				return nil, ErrRequestEntityTooLarge
			}
			body = body[:opts.MaxRequestBytes]
		}
		if opts.PackAsBytes {
			httpReq.RawBody = append([]byte(nil), body...)
		} else {
			httpReq.Body = sanitizeUTF8(string(body))
		}
		// bytesReceived: the whole body arrived in one frame.
		httpReq.Size = int64(len(req.Body))
		partial = strconv.FormatBool(len(body) != len(req.Body))
	}

	if opts.EncodeRawHeaders {
		if partial != "" {
			headers = append(headers, [2]string{partialBodyHeader, partial})
		}
		httpReq.HeaderMap = HeaderMap(headers)
	} else {
		httpReq.Headers = make(map[string]string, len(headers)+1)
		for _, kv := range headers {
			v := sanitizeUTF8(kv[1])
			if old, ok := httpReq.Headers[kv[0]]; ok {
				httpReq.Headers[kv[0]] = old + "," + v
			} else {
				httpReq.Headers[kv[0]] = v
			}
		}
		if partial != "" {
			httpReq.Headers[partialBodyHeader] = partial
		}
	}

	attrs := &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: srcAddr},
		Destination: &authv3.AttributeContext_Peer{Address: dstAddr},
		Request:     &authv3.AttributeContext_Request{Time: timestamppb.Now(), Http: httpReq},
	}
	if len(opts.ContextExtensions) > 0 {
		attrs.ContextExtensions = make(map[string]string, len(opts.ContextExtensions))
		for k, v := range opts.ContextExtensions {
			attrs.ContextExtensions[k] = v
		}
	}
	if opts.MetadataContext != nil {
		attrs.MetadataContext = proto.Clone(opts.MetadataContext).(*corev3.Metadata)
	}
	return &authv3.CheckRequest{Attributes: attrs}, nil
}

// newStreamID is what Envoy sends as request.http.id: its stream id, a random
// 64-bit number in decimal.
func newStreamID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return strconv.FormatUint(v, 10)
}
