package extprocclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// RawStream is one ext_proc stream under the test's full control, for
// malformed and out-of-order conversations. Nothing is checked or added:
// what is sent is exactly what the test built. Call Close when done.
type RawStream struct {
	ctx    context.Context
	cancel context.CancelFunc
	stream extprocv3.ExternalProcessor_ProcessClient
	recv   *receiver
}

// Stream opens one ext_proc stream, as Envoy does for one HTTP request.
// Cancelling ctx resets the stream; like Envoy, no grpc-timeout is sent.
func Stream(ctx context.Context, client extprocv3.ExternalProcessorClient) (*RawStream, error) {
	sctx, cancel := streamContext(ctx)
	st, err := client.Process(sctx)
	if err != nil {
		cancel()
		return nil, err
	}
	return &RawStream{ctx: ctx, cancel: cancel, stream: st, recv: startReceiver(st.Recv)}, nil
}

// Send sends one message as is.
func (r *RawStream) Send(m *extprocv3.ProcessingRequest) error { return r.stream.Send(m) }

// Recv waits up to timeout for the next reply (timeout <= 0 only checks
// whether one is already there). It returns ErrTimeout if none came, io.EOF
// if the server ended the stream cleanly, or the stream's status error.
func (r *RawStream) Recv(timeout time.Duration) (*extprocv3.ProcessingResponse, error) {
	ev, ok, err := r.recv.next(r.ctx, timeout)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrTimeout
	}
	if ev.err != nil {
		return nil, ev.err
	}
	return ev.resp, nil
}

// CloseSend half-closes the stream, as Envoy does when it is done with it;
// the server's Recv then returns io.EOF.
func (r *RawStream) CloseSend() error { return r.stream.CloseSend() }

// Cancel resets the stream, as Envoy does when the downstream client goes
// away mid-request (or after a message timeout): the server's Recv returns
// codes.Canceled.
func (r *RawStream) Cancel() { r.cancel() }

// WaitEnd waits up to timeout for the server to end the stream. It returns
// nil for a clean end (io.EOF), the status error for an error end,
// ErrTimeout, or a *ProtocolError (KindSpurious) if a reply arrives instead.
func (r *RawStream) WaitEnd(timeout time.Duration) error {
	ev, ok, err := r.recv.next(r.ctx, timeout)
	if err != nil {
		return err
	}
	if !ok {
		return ErrTimeout
	}
	if ev.err != nil {
		if errors.Is(ev.err, io.EOF) {
			return nil
		}
		return ev.err
	}
	return &ProtocolError{Kind: KindSpurious, Msg: fmt.Sprintf("expected the server to end the stream, got a %s reply", ReplyKind(ev.resp)), Reply: ev.resp}
}

// Close cancels the stream and releases its resources.
func (r *RawStream) Close() {
	r.cancel()
	r.recv.close()
}

// HeadersMsg builds a request_headers message (end_of_stream false) from
// key/value pairs, given in the order Envoy would send them: pseudo-headers
// first, e.g. HeadersMsg(":method", "GET", ":path", "/", ":authority", "a",
// ":scheme", "http", "user-agent", "x").
func HeadersMsg(kv ...string) *extprocv3.ProcessingRequest {
	return RequestHeadersMsg(HeaderPairs(kv...), false)
}

// RequestHeadersMsg builds a request_headers message.
func RequestHeadersMsg(headers [][2]string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: HeaderMap(headers), EndOfStream: eos}}}
}

// ResponseHeadersMsg builds a response_headers message; include ":status".
func ResponseHeadersMsg(headers [][2]string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: HeaderMap(headers), EndOfStream: eos}}}
}

// BodyMsg builds a request_body message.
func BodyMsg(body []byte, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: body, EndOfStream: eos}}}
}

// ResponseBodyMsg builds a response_body message.
func ResponseBodyMsg(body []byte, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: body, EndOfStream: eos}}}
}

// RequestTrailersMsg builds a request_trailers message.
func RequestTrailersMsg(trailers [][2]string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{
		RequestTrailers: &extprocv3.HttpTrailers{Trailers: HeaderMap(trailers)}}}
}

// ResponseTrailersMsg builds a response_trailers message.
func ResponseTrailersMsg(trailers [][2]string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{
		ResponseTrailers: &extprocv3.HttpTrailers{Trailers: HeaderMap(trailers)}}}
}

// WithProtocolConfig sets protocol_config (Envoy puts it on the first message
// of a stream, outside observability mode) and returns m.
func WithProtocolConfig(m *extprocv3.ProcessingRequest, requestBody, responseBody BodySendMode) *extprocv3.ProcessingRequest {
	m.ProtocolConfig = &extprocv3.ProtocolConfiguration{RequestBodyMode: requestBody, ResponseBodyMode: responseBody}
	return m
}

// WithObservabilityMode sets observability_mode and returns m.
func WithObservabilityMode(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingRequest {
	m.ObservabilityMode = true
	return m
}

// WithAttributes sets attributes["envoy.filters.http.ext_proc"] to string
// values and returns m.
func WithAttributes(m *extprocv3.ProcessingRequest, attrs map[string]string) *extprocv3.ProcessingRequest {
	m.Attributes = map[string]*structpb.Struct{FilterName: toStruct(attrs)}
	return m
}
