package demo

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// FrontDoor is a development stand-in for Envoy, NOT for production: a
// plain HTTP/1 reverse proxy that consults Vigil over the ext_proc protocol
// the way Envoy's ext_proc filter does with the enforcing filter of
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
//     reached → 503.
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

const filterName = "envoy.filters.http.ext_proc"

// closeTimeout is how long the front door waits for Vigil to end a stream
// after half-closing it (Envoy's remote close timeout).
const closeTimeout = time.Second

var defaultTransport = &http.Transport{
	Proxy:               nil,
	DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	MaxIdleConnsPerHost: 256,
	IdleConnTimeout:     90 * time.Second,
}

type hdrs [][2]string

func (h hdrs) get(name string) (string, bool) {
	for _, kv := range h {
		if kv[0] == name {
			return kv[1], true
		}
	}
	return "", false
}

func (h hdrs) del(name string) hdrs {
	out := h[:0:0]
	for _, kv := range h {
		if kv[0] != name {
			out = append(out, kv)
		}
	}
	return out
}

// set replaces every value of name, keeping the first one's place.
func (h hdrs) set(name, value string) hdrs {
	out := make(hdrs, 0, len(h)+1)
	done := false
	for _, kv := range h {
		if kv[0] == name {
			if !done {
				out, done = append(out, [2]string{name, value}), true
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

func (h hdrs) headerMap() *corev3.HeaderMap {
	m := &corev3.HeaderMap{Headers: make([]*corev3.HeaderValue, 0, len(h))}
	for _, kv := range h {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[0], RawValue: []byte(kv[1])})
	}
	return m
}

// hopByHop headers belong to one connection and are not forwarded.
var hopByHop = map[string]bool{"connection": true, "keep-alive": true, "proxy-connection": true, "upgrade": true, "te": true, "trailer": true, "transfer-encoding": true}

// localReply is what the front door answers itself.
type localReply struct {
	status  int
	headers hdrs
	body    []byte
}

func (d *FrontDoor) messageTimeout() time.Duration {
	if d.MessageTimeout > 0 {
		return d.MessageTimeout
	}
	return 200 * time.Millisecond
}

func (d *FrontDoor) bufferLimit() int64 {
	if d.BufferLimit > 0 {
		return d.BufferLimit
	}
	return 1 << 20
}

// ServeHTTP proxies one request through Vigil to the back end.
func (d *FrontDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	peer := r.RemoteAddr
	peerIP, peerPort, err := net.SplitHostPort(peer)
	if err != nil {
		peerIP, peerPort = peer, "0"
	}
	reqHeaders, hasBody := requestHeaders(r, peerIP)

	sctx, cancel := context.WithCancel(context.Background())
	x := &exchange{d: d, ctx: r.Context(), cancel: cancel}
	defer x.finish()
	stream, err := d.open(sctx)
	if err != nil {
		x.abort = true
		if errors.Is(err, context.DeadlineExceeded) {
			x.write(w, &localReply{status: 504, body: []byte("ext_proc_error_per-message_timeout_exceeded")})
		} else {
			x.write(w, &localReply{status: 500, body: []byte("ext_proc_error_gRPC_error_" + grpcDetails(err))})
		}
		return
	}
	x.stream = stream
	x.recv = make(chan recvEvent, 1)
	go func() {
		for {
			m, err := stream.Recv()
			select {
			case x.recv <- recvEvent{m, err}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	port, _ := strconv.ParseFloat(peerPort, 64)
	attrs := &structpb.Struct{Fields: map[string]*structpb.Value{
		"source.address": structpb.NewStringValue(peer),
		"source.port":    structpb.NewNumberValue(port),
	}}
	if id, ok := reqHeaders.get("x-request-id"); ok {
		attrs.Fields["request.id"] = structpb.NewStringValue(id)
	}
	first := &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: reqHeaders.headerMap(), EndOfStream: !hasBody,
		}},
		Attributes:      map[string]*structpb.Struct{filterName: attrs},
		MetadataContext: &corev3.Metadata{},
		ProtocolConfig: &extprocv3.ProtocolConfiguration{
			RequestBodyMode:  extprocfv3.ProcessingMode_BUFFERED,
			ResponseBodyMode: extprocfv3.ProcessingMode_NONE,
		},
	}
	resp, reply := x.call(first, "request_headers")
	if reply != nil {
		x.write(w, reply)
		return
	}
	var body []byte
	if resp != nil {
		cr := resp.GetRequestHeaders().GetResponse()
		if reqHeaders, err = applyMutation(reqHeaders, cr.GetHeaderMutation()); err != nil {
			x.write(w, &localReply{status: 500, body: []byte(err.Error())})
			return
		}
		if cr.GetStatus() == extprocv3.CommonResponse_CONTINUE_AND_REPLACE {
			hasBody = false // no more messages this way; the body is replaced
			body = mutateBody(nil, cr.GetBodyMutation())
			reqHeaders = reqHeaders.del("content-length")
			if len(body) > 0 {
				reqHeaders = append(reqHeaders, [2]string{"content-length", strconv.Itoa(len(body))})
			}
		}
	}
	if hasBody {
		body, err = io.ReadAll(io.LimitReader(r.Body, d.bufferLimit()+1))
		switch {
		case int64(len(body)) > d.bufferLimit():
			x.write(w, &localReply{status: 413, body: []byte("Payload Too Large")})
			return
		case err != nil:
			x.write(w, &localReply{status: 400, body: []byte("Bad Request")})
			return
		}
		if x.stream != nil {
			resp, reply := x.call(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
				RequestBody: &extprocv3.HttpBody{Body: body, EndOfStream: true},
			}, MetadataContext: &corev3.Metadata{}}, "request_body")
			if reply != nil {
				x.write(w, reply)
				return
			}
			if resp != nil {
				cr := resp.GetRequestBody().GetResponse()
				if reqHeaders, err = applyMutation(reqHeaders, cr.GetHeaderMutation()); err != nil {
					x.write(w, &localReply{status: 500, body: []byte(err.Error())})
					return
				}
				if bm := cr.GetBodyMutation(); bm.GetMutation() != nil {
					nb := mutateBody(body, bm)
					if cl, ok := reqHeaders.get("content-length"); ok && cl != strconv.Itoa(len(nb)) {
						x.write(w, &localReply{status: 500, body: []byte("mismatch between content length and the length of the mutated body")})
						return
					}
					body = nb
				}
			}
		}
	}

	up, err := d.upstreamRequest(r.Context(), reqHeaders, body)
	if err != nil {
		x.write(w, &localReply{status: 503, body: []byte(err.Error())})
		return
	}
	transport := d.Transport
	if transport == nil {
		transport = defaultTransport
	}
	res, err := transport.RoundTrip(up)
	if err != nil {
		x.write(w, &localReply{status: 503, body: []byte("upstream connect error or disconnect/reset before headers")})
		return
	}
	defer res.Body.Close()
	respHeaders := hdrs{{":status", strconv.Itoa(res.StatusCode)}}
	for name, vs := range res.Header {
		name = strings.ToLower(name)
		if hopByHop[name] {
			continue
		}
		for _, v := range vs {
			respHeaders = append(respHeaders, [2]string{name, v})
		}
	}
	if _, ok := respHeaders.get("content-length"); !ok && res.ContentLength >= 0 {
		respHeaders = append(respHeaders, [2]string{"content-length", strconv.FormatInt(res.ContentLength, 10)})
	}
	if x.stream != nil {
		resp, reply := x.call(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
			ResponseHeaders: &extprocv3.HttpHeaders{Headers: respHeaders.headerMap(), EndOfStream: res.ContentLength == 0},
		}, MetadataContext: &corev3.Metadata{}}, "response_headers")
		if reply != nil {
			x.write(w, reply)
			return
		}
		if resp != nil {
			if respHeaders, err = applyMutation(respHeaders, resp.GetResponseHeaders().GetResponse().GetHeaderMutation()); err != nil {
				x.write(w, &localReply{status: 500, body: []byte(err.Error())})
				return
			}
		}
	}
	code := res.StatusCode
	for _, kv := range respHeaders {
		if kv[0] == ":status" {
			if n, err := strconv.Atoi(kv[1]); err == nil && n >= 100 && n <= 999 {
				code = n
			}
			continue
		}
		w.Header().Add(kv[0], kv[1])
	}
	w.WriteHeader(code)
	io.Copy(w, res.Body)
}

// requestHeaders builds the header map Envoy's filters see: pseudo-headers
// first, names lower-cased, x-envoy-* from the client dropped, the peer
// appended to X-Forwarded-For, x-forwarded-proto and a fresh x-request-id.
func requestHeaders(r *http.Request, peerIP string) (hdrs, bool) {
	h := hdrs{{":authority", r.Host}, {":path", r.URL.RequestURI()}, {":method", r.Method}, {":scheme", "http"}}
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
	hasBody := r.ContentLength > 0 || r.ContentLength < 0 && len(r.TransferEncoding) > 0
	switch {
	case r.ContentLength > 0:
		h = append(h, [2]string{"content-length", strconv.FormatInt(r.ContentLength, 10)})
	case hasBody:
		h = append(h, [2]string{"transfer-encoding", "chunked"})
	}
	h = append(h, [2]string{"x-forwarded-for", strings.Join(append(xff, peerIP), ", ")})
	h = append(h, [2]string{"x-forwarded-proto", "http"}, [2]string{"x-request-id", newRequestID()})
	return h, hasBody
}

func newRequestID() string {
	var b [16]byte
	crand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

func (d *FrontDoor) upstreamRequest(ctx context.Context, h hdrs, body []byte) (*http.Request, error) {
	method, _ := h.get(":method")
	path, _ := h.get(":path")
	authority, _ := h.get(":authority")
	u := *d.Upstream
	ref, err := url.ParseRequestURI(path)
	if err != nil {
		return nil, fmt.Errorf("bad path %q", path)
	}
	u.Path, u.RawPath, u.RawQuery = ref.Path, ref.RawPath, ref.RawQuery
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Host = authority
	for _, kv := range h {
		if strings.HasPrefix(kv[0], ":") || kv[0] == "content-length" || kv[0] == "transfer-encoding" {
			continue
		}
		req.Header.Add(kv[0], kv[1])
	}
	req.ContentLength = int64(len(body))
	if len(body) == 0 {
		req.Body = http.NoBody
	}
	return req, nil
}

type recvEvent struct {
	resp *extprocv3.ProcessingResponse
	err  error
}

// exchange is one HTTP request's ext_proc stream.
type exchange struct {
	d      *FrontDoor
	ctx    context.Context // the downstream request's
	cancel context.CancelFunc
	stream extprocv3.ExternalProcessor_ProcessClient // nil once Vigil is no longer consulted
	recv   chan recvEvent
	ended  bool // the stream's end was received
	abort  bool // reset instead of a graceful close
}

// call sends one message and waits for its reply. It returns the reply to
// apply, or the local reply to send instead (an ImmediateResponse, or a
// failure answered closed); both nil when Vigil closed the stream cleanly
// and is no longer consulted.
func (x *exchange) call(msg *extprocv3.ProcessingRequest, phase string) (*extprocv3.ProcessingResponse, *localReply) {
	if err := x.stream.Send(msg); err != nil {
		// The stream is over; its status comes from Recv.
		return x.await(phase)
	}
	return x.await(phase)
}

func (x *exchange) await(phase string) (*extprocv3.ProcessingResponse, *localReply) {
	t := time.NewTimer(x.d.messageTimeout())
	defer t.Stop()
	select {
	case ev := <-x.recv:
		if ev.err != nil {
			x.ended = true
			x.stream = nil
			if errors.Is(ev.err, io.EOF) {
				return nil, nil // closed cleanly: go on without Vigil
			}
			return nil, &localReply{status: 500, body: []byte("ext_proc_error_gRPC_error_" + grpcDetails(ev.err))}
		}
		r := ev.resp
		if ir := r.GetImmediateResponse(); ir != nil {
			return nil, immediate(ir)
		}
		if replyPhase(r) != phase {
			x.abort = true
			return nil, &localReply{status: 500, body: []byte("spurious_message")}
		}
		return r, nil
	case <-t.C:
		x.abort = true
		return nil, &localReply{status: 504, body: []byte("ext_proc_error_per-message_timeout_exceeded")}
	case <-x.ctx.Done():
		x.abort = true
		return nil, &localReply{status: 499, body: []byte("downstream_remote_disconnect")}
	}
}

func replyPhase(r *extprocv3.ProcessingResponse) string {
	switch r.GetResponse().(type) {
	case *extprocv3.ProcessingResponse_RequestHeaders:
		return "request_headers"
	case *extprocv3.ProcessingResponse_RequestBody:
		return "request_body"
	case *extprocv3.ProcessingResponse_ResponseHeaders:
		return "response_headers"
	}
	return fmt.Sprintf("%T", r.GetResponse())
}

func grpcDetails(err error) string {
	st := status.Convert(err)
	return strconv.Itoa(int(st.Code())) + "{" + strings.Join(strings.Fields(st.Message()), "_") + "}"
}

// open opens the request's stream; a Vigil that cannot be reached within
// the message timeout counts as a timeout.
func (d *FrontDoor) open(sctx context.Context) (extprocv3.ExternalProcessor_ProcessClient, error) {
	type opened struct {
		s   extprocv3.ExternalProcessor_ProcessClient
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		s, err := d.ExtProc.Process(sctx)
		ch <- opened{s, err}
	}()
	t := time.NewTimer(d.messageTimeout())
	defer t.Stop()
	select {
	case o := <-ch:
		return o.s, o.err
	case <-t.C:
		return nil, context.DeadlineExceeded
	}
}

// write sends a local reply: Content-Length, text/plain for a body, then
// the reply's own headers on top.
func (x *exchange) write(w http.ResponseWriter, l *localReply) {
	h := hdrs{{"content-length", strconv.Itoa(len(l.body))}}
	if len(l.body) > 0 {
		h = append(h, [2]string{"content-type", "text/plain"})
	}
	for _, kv := range l.headers {
		h = h.set(kv[0], kv[1])
	}
	for _, kv := range h {
		w.Header().Set(kv[0], kv[1])
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(l.body)))
	w.WriteHeader(l.status)
	w.Write(l.body)
}

// immediate turns an ImmediateResponse into the reply Envoy sends: its
// status (200 when unset), text/plain for a body unless its headers say
// otherwise, its headers and body.
func immediate(ir *extprocv3.ImmediateResponse) *localReply {
	code := 200
	if c := int(ir.GetStatus().GetCode()); c >= 200 {
		code = c
	}
	l := &localReply{status: code, body: append([]byte(nil), ir.GetBody()...)}
	if h, err := applyMutation(nil, ir.GetHeaders()); err == nil {
		l.headers = h
	}
	return l
}

// finish closes the stream as Envoy does: half-close and wait for Vigil to
// end it, or reset it after a failure.
func (x *exchange) finish() {
	if x.stream == nil || x.abort || x.ended {
		x.cancel()
		return
	}
	_ = x.stream.CloseSend()
	go func() {
		defer x.cancel()
		t := time.NewTimer(closeTimeout)
		defer t.Stop()
		for {
			select {
			case ev := <-x.recv:
				if ev.err != nil {
					return
				}
			case <-t.C:
				return
			}
		}
	}()
}

// applyMutation applies a HeaderMutation as Envoy does: values from
// raw_value; both value and raw_value set is an error; pseudo-headers other
// than :status/:path, host and x-envoy-* cannot be changed; append_action
// unset means overwrite (ext_proc's append defaults to false).
func applyMutation(h hdrs, m *extprocv3.HeaderMutation) (hdrs, error) {
	if m == nil {
		return h, nil
	}
	h = append(hdrs(nil), h...)
	for _, name := range m.GetRemoveHeaders() {
		name = strings.ToLower(name)
		if strings.HasPrefix(name, ":") || name == "host" || strings.HasPrefix(name, "x-envoy") {
			continue
		}
		h = h.del(name)
	}
	for _, o := range m.GetSetHeaders() {
		hv := o.GetHeader()
		if hv == nil {
			continue
		}
		if hv.GetValue() != "" && len(hv.GetRawValue()) > 0 {
			return h, fmt.Errorf("only one of value or raw_value in the HeaderValue message should be set (%q)", hv.GetKey())
		}
		name, value := strings.ToLower(hv.GetKey()), string(hv.GetRawValue())
		switch {
		case strings.HasPrefix(name, "x-envoy"), name == ":authority", name == ":scheme", name == ":method", name == "host":
			continue
		}
		_, exists := h.get(name)
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			if o.GetAppend().GetValue() {
				h = append(h, [2]string{name, value})
			} else {
				h = h.set(name, value)
			}
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if !exists {
				h = append(h, [2]string{name, value})
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h = h.set(name, value)
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if exists {
				h = h.set(name, value)
			}
		}
	}
	return h, nil
}

func mutateBody(body []byte, m *extprocv3.BodyMutation) []byte {
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
