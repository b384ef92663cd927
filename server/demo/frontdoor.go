package demo

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/vigil-project/vigil/envoy/extprocclient"
)

// FrontDoor is a development stand-in for Envoy, NOT for production: a
// plain HTTP/1 reverse proxy that consults Vigil over the ext_proc protocol
// through envoy/extprocclient (the Envoy-faithful client the tests use too),
// configured as Envoy's ext_proc filter is with the enforcing filter of
// examples/envoy/envoy.yaml (request headers SEND, request body BUFFERED,
// response headers SEND, response body NONE; request_attributes
// source.address, source.port and request.id; failure_mode_allow false;
// message_timeout 200ms), and like Envoy's connection manager with
// use_remote_address: true and xff_num_trusted_hops: 1:
//
//   - one ext_proc stream per HTTP request; request_headers carry the
//     pseudo-headers (:method, :path, :authority, :scheme) and every value in
//     raw_value; the first message carries protocol_config and the
//     attributes; exactly one reply is awaited per message, within the
//     message timeout;
//   - the peer's address is appended to X-Forwarded-For ("A" from the client
//     becomes "A, 127.0.0.1", so Vigil with trusted_hops: 2 sees A; without
//     the header the peer is the client); x-envoy-* headers from the client
//     are dropped; x-request-id and x-forwarded-proto are set;
//   - an ImmediateResponse goes back to the client with its status, headers
//     and body, and the back end never sees the call; header and body
//     mutations are applied before the back end (or the client) sees them;
//   - fail closed: no stream, a stream error or a spurious reply → 500, no
//     reply within the message timeout → 504; a body over the buffer limit
//     → 413 (Vigil then sees the headers only); a back end that cannot be
//     reached → 503 (which Vigil sees in the response headers, as with
//     Envoy's router). A local reply's body is its response code details.
//
// It does not do TLS, HTTP/2, retries, routing, health checks, ext_authz,
// the observability-mode filter, streamed bodies or trailers.
type FrontDoor struct {
	// Upstream is the back end, e.g. http://127.0.0.1:8080.
	Upstream *url.URL
	// ExtProc is a client of Vigil's ExternalProcessor service.
	ExtProc extprocv3.ExternalProcessorClient
	// MessageTimeout is ext_proc's message_timeout (default 200ms).
	MessageTimeout time.Duration
	// BufferLimit bounds the buffered request body (default 1 MiB, the
	// example's per_connection_buffer_limit_bytes).
	BufferLimit int64
	// Transport calls the back end (default: a transport of its own).
	Transport http.RoundTripper
}

const filterName = extprocclient.FilterName

var defaultTransport = &http.Transport{
	Proxy:               nil,
	DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	MaxIdleConnsPerHost: 256,
	IdleConnTimeout:     90 * time.Second,
}

// hopByHop headers belong to one connection and are not forwarded.
var hopByHop = map[string]bool{"connection": true, "keep-alive": true, "proxy-connection": true, "upgrade": true, "te": true, "trailer": true, "transfer-encoding": true}

func (d *FrontDoor) bufferLimit() int64 {
	if d.BufferLimit > 0 {
		return d.BufferLimit
	}
	return extprocclient.DefaultBufferLimit
}

// ServeHTTP proxies one request through Vigil to the back end.
func (d *FrontDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	peer := r.RemoteAddr
	peerIP, peerPort, err := net.SplitHostPort(peer)
	if err != nil {
		peerIP, peerPort = peer, "0"
	}
	// The buffer limit is enforced by the client (413 after the headers);
	// one byte more than the limit is enough to know.
	body, err := io.ReadAll(io.LimitReader(r.Body, d.bufferLimit()+1))
	if err != nil {
		writeReply(w, 400, nil, []byte("Bad Request"))
		return
	}
	req := extprocclient.HTTPRequest{
		Method: r.Method, Path: r.URL.RequestURI(), Authority: r.Host, Scheme: "http",
		Headers: requestHeaders(r, peerIP), Body: body, SourceAddr: peer,
	}
	requestID, _ := extprocclient.HeaderGet(req.Headers, "x-request-id")
	port, _ := strconv.ParseFloat(peerPort, 64)
	cfg := extprocclient.Config{
		RequestBodyMode:  extprocclient.Buffered,
		ResponseBodyMode: extprocclient.None,
		BufferLimit:      int(d.bufferLimit()),
		MessageTimeout:   d.MessageTimeout,
		ExactHeaders:     true, // the connection manager's headers are set above
		RequestAttributes: map[string]string{
			"source.address": peer,
			"request.id":     requestID,
		},
		RequestAttributeValues: map[string]*structpb.Value{"source.port": structpb.NewNumberValue(port)},
	}
	res, err := extprocclient.Do(r.Context(), d.ExtProc, cfg, req, func(up extprocclient.HTTPRequest) extprocclient.HTTPResponse {
		return d.roundTrip(r.Context(), up)
	})
	if res == nil || r.Context().Err() != nil {
		return // the client went away (or the configuration is wrong, which it is not)
	}
	// Protocol violations are Vigil's to avoid and the tests' to catch; the
	// client answers what Envoy would, which is all the front door needs.
	body = res.Body
	if res.Immediate == nil && res.LocalReplyDetails != "" {
		body = []byte(res.LocalReplyDetails)
		writeReply(w, res.Status, [][2]string{{"content-type", "text/plain"}}, body)
		return
	}
	writeReply(w, res.Status, res.Headers, body)
}

// writeReply writes a status, headers and body; Content-Length is the body's.
func writeReply(w http.ResponseWriter, status int, headers [][2]string, body []byte) {
	for _, kv := range headers {
		if kv[0] != "content-length" {
			w.Header().Add(kv[0], kv[1])
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// requestHeaders builds the regular headers Envoy's filters see: names
// lower-cased, x-envoy-* from the client dropped, the peer appended to
// X-Forwarded-For, x-forwarded-proto and a fresh x-request-id. The client
// adds the pseudo-headers.
func requestHeaders(r *http.Request, peerIP string) [][2]string {
	var h [][2]string
	var xff []string
	for name, vs := range r.Header {
		name = strings.ToLower(name)
		switch {
		case hopByHop[name], strings.HasPrefix(name, "x-envoy-"), name == "content-length", name == "x-request-id", name == "x-forwarded-proto",
			name == "expect": // 100-continue is answered here, as Envoy does
			continue
		case name == "x-forwarded-for":
			xff = append(xff, vs...)
			continue
		}
		for _, v := range vs {
			h = append(h, [2]string{name, v})
		}
	}
	switch {
	case r.ContentLength > 0:
		h = append(h, [2]string{"content-length", strconv.FormatInt(r.ContentLength, 10)})
	case r.ContentLength < 0 && len(r.TransferEncoding) > 0:
		h = append(h, [2]string{"transfer-encoding", "chunked"})
	}
	h = append(h, [2]string{"x-forwarded-for", strings.Join(append(xff, peerIP), ", ")})
	h = append(h, [2]string{"x-forwarded-proto", "http"}, [2]string{"x-request-id", extprocclient.NewRequestID()})
	return h
}

// roundTrip calls the back end with the request as Vigil left it, and
// returns its answer (503 when it cannot be reached, as Envoy's router).
func (d *FrontDoor) roundTrip(ctx context.Context, in extprocclient.HTTPRequest) extprocclient.HTTPResponse {
	unreachable := func(msg string) extprocclient.HTTPResponse {
		return extprocclient.HTTPResponse{Status: 503, Headers: [][2]string{{"content-length", strconv.Itoa(len(msg))}, {"content-type", "text/plain"}}, Body: []byte(msg)}
	}
	u := *d.Upstream
	ref, err := url.ParseRequestURI(in.Path)
	if err != nil {
		return unreachable("bad path " + strconv.Quote(in.Path))
	}
	u.Path, u.RawPath, u.RawQuery = ref.Path, ref.RawPath, ref.RawQuery
	req, err := http.NewRequestWithContext(ctx, in.Method, u.String(), bytes.NewReader(in.Body))
	if err != nil {
		return unreachable(err.Error())
	}
	req.Host = in.Authority
	for _, kv := range in.Headers {
		if kv[0] == "content-length" || kv[0] == "transfer-encoding" {
			continue
		}
		req.Header.Add(kv[0], kv[1])
	}
	req.ContentLength = int64(len(in.Body))
	if len(in.Body) == 0 {
		req.Body = http.NoBody
	}
	transport := d.Transport
	if transport == nil {
		transport = defaultTransport
	}
	res, err := transport.RoundTrip(req)
	if err != nil {
		return unreachable("upstream connect error or disconnect/reset before headers")
	}
	defer res.Body.Close()
	out := extprocclient.HTTPResponse{Status: res.StatusCode}
	for name, vs := range res.Header {
		name = strings.ToLower(name)
		if hopByHop[name] {
			continue
		}
		for _, v := range vs {
			out.Headers = append(out.Headers, [2]string{name, v})
		}
	}
	if _, ok := extprocclient.HeaderGet(out.Headers, "content-length"); !ok && res.ContentLength >= 0 {
		out.Headers = append(out.Headers, [2]string{"content-length", strconv.FormatInt(res.ContentLength, 10)})
	}
	if out.Body, err = io.ReadAll(res.Body); err != nil {
		return unreachable("upstream reset after headers")
	}
	return out
}
