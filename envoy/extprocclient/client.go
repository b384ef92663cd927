// Package extprocclient speaks Envoy's side of the ext_proc protocol: it
// drives one HTTP request/response pair through an
// envoy.service.ext_proc.v3.ExternalProcessor server the way Envoy's
// envoy.filters.http.ext_proc filter does (Envoy 1.36 behaviour). It is the
// one ext_proc client of the repository: the demo's front door
// (server/demo) proxies real HTTP through it, and test/envoysim builds its
// Envoy-faithful conformance checks of Vigil on it (no Envoy binary can be
// had in CI, see /work/shared/reference/envoy-protocol.md §6).
//
//   - [Do] runs one request: one gRPC stream per HTTP request,
//     request_headers → request_body* → request_trailers → upstream →
//     response_headers → response_body* → response_trailers, as selected by the
//     processing mode, with pseudo-headers, raw_value header values,
//     protocol_config and attributes on the first message, exactly one reply
//     awaited per message within the message timeout, header/body mutations
//     applied before the upstream sees the request, ImmediateResponse turned
//     into the local reply the downstream client gets, and Envoy's error
//     mapping (504 on message timeout, 500 on spurious messages, stream errors
//     and rejected mutations; failure_mode_allow goes on without the server).
//   - Every deviation from the protocol that Envoy would punish or silently
//     paper over (a missing, extra or mismatched reply, a header mutation with
//     both value and raw_value set, a reply in observability mode, a server
//     that does not end the stream after the client half-closed it, ...) is
//     reported as a [*ProtocolError]; what the downstream client gets is what
//     Envoy would answer regardless.
//   - [Stream] gives raw access to one ext_proc stream for malformed and
//     out-of-order conversations, and [RawStream.Cancel] simulates the
//     downstream client going away; the *Msg functions build single messages.
//
// It imports nothing of Vigil: it is a client of any ext_proc server.
package extprocclient

import (
	"errors"
	"fmt"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// HTTPRequest is the downstream HTTP request as Envoy's codec hands it to the
// filter chain. Header names may be given in any case; they are lower-cased
// like Envoy's header map does. A "host" header is turned into :authority
// when Authority is empty (that is what the HTTP/1 codec does).
type HTTPRequest struct {
	Method     string // default "GET"
	Path       string // path and query, not decoded; default "/"
	Authority  string // :authority (HTTP/1 Host)
	Scheme     string // default "http"
	Headers    [][2]string
	Body       []byte
	Trailers   [][2]string
	SourceAddr string // ip:port of the downstream peer; default "127.0.0.1:50000"
}

// HTTPResponse is what the upstream answers. Status 0 means 200.
type HTTPResponse struct {
	Status   int
	Headers  [][2]string
	Body     []byte
	Trailers [][2]string
}

// HeaderSendMode mirrors ext_proc ProcessingMode.HeaderSendMode.
type HeaderSendMode = extprocfv3.ProcessingMode_HeaderSendMode

// BodySendMode mirrors ext_proc ProcessingMode.BodySendMode.
type BodySendMode = extprocfv3.ProcessingMode_BodySendMode

// Processing-mode values, re-exported so that callers need not import the
// filter's proto package.
const (
	Default HeaderSendMode = extprocfv3.ProcessingMode_DEFAULT
	Send    HeaderSendMode = extprocfv3.ProcessingMode_SEND
	Skip    HeaderSendMode = extprocfv3.ProcessingMode_SKIP

	None            BodySendMode = extprocfv3.ProcessingMode_NONE
	Streamed        BodySendMode = extprocfv3.ProcessingMode_STREAMED
	Buffered        BodySendMode = extprocfv3.ProcessingMode_BUFFERED
	BufferedPartial BodySendMode = extprocfv3.ProcessingMode_BUFFERED_PARTIAL
)

// Defaults used when the corresponding Config field is zero.
const (
	DefaultMessageTimeout = 200 * time.Millisecond // ext_proc message_timeout default
	DefaultCloseTimeout   = time.Second            // ext_proc remote_close_timeout_milliseconds default
	DefaultBufferLimit    = 1 << 20                // per_connection_buffer_limit_bytes default
	DefaultSourceAddr     = "127.0.0.1:50000"
)

// Config mirrors the ext_proc filter configuration (ExternalProcessor) that
// matters on the wire. The zero value is Envoy's default filter: request and
// response headers SEND, bodies NONE, trailers SKIP.
type Config struct {
	// processing_mode. DEFAULT means SEND for headers and SKIP for trailers,
	// as in Envoy. FULL_DUPLEX_STREAMED and GRPC body modes are not supported.
	RequestHeaderMode   HeaderSendMode
	ResponseHeaderMode  HeaderSendMode
	RequestBodyMode     BodySendMode
	ResponseBodyMode    BodySendMode
	RequestTrailerMode  HeaderSendMode
	ResponseTrailerMode HeaderSendMode

	// ObservabilityMode is ext_proc observability_mode: every message carries
	// observability_mode=true, nothing waits for replies, only STREAMED and
	// NONE bodies are sent, and any reply from the server is recorded as a
	// violation.
	ObservabilityMode bool

	// ChunkSize is the size of the data frames in which the downstream (for
	// request bodies) and the upstream (for response bodies) deliver their
	// body after the headers were processed. In STREAMED mode each frame
	// becomes one body message. 0 means the whole body arrives in one frame.
	ChunkSize int
	// PipelineStreamedChunks sends all STREAMED chunks before reading their
	// replies (Envoy does this when data arrives faster than the server
	// answers); by default each chunk waits for its reply first.
	PipelineStreamedChunks bool

	// BufferLimit is the stream buffer limit (per_connection_buffer_limit_bytes,
	// default 1 MiB). A BUFFERED request body over it gets a 413 local reply
	// without the body being sent to the server; a BUFFERED response body
	// over it gets a 500. BUFFERED_PARTIAL sends at most BufferLimit bytes and
	// lets the rest through unprocessed.
	BufferLimit int

	// RequestAttributes / ResponseAttributes are the evaluated
	// request_attributes / response_attributes, sent as Struct string values
	// under attributes["envoy.filters.http.ext_proc"] with the first message
	// of each direction.
	RequestAttributes  map[string]string
	ResponseAttributes map[string]string
	// RequestAttributeValues / ResponseAttributeValues are attributes of
	// other types, sent beside the string ones (a key in both takes the value
	// from here): Envoy sends integer attributes such as source.port and
	// response.code as numbers.
	RequestAttributeValues  map[string]*structpb.Value
	ResponseAttributeValues map[string]*structpb.Value
	// MetadataContext, if set, is sent as metadata_context on every message
	// (what metadata_options.forwarding_namespaces produces).
	MetadataContext *corev3.Metadata

	// MessageTimeout is message_timeout (default 200ms). It does not apply in
	// observability mode.
	MessageTimeout time.Duration
	// MaxMessageTimeout is max_message_timeout. When > 0, a reply carrying
	// override_message_timeout within [1ms, MaxMessageTimeout] restarts the
	// timer once per message; otherwise such replies are ignored.
	MaxMessageTimeout time.Duration
	// CloseTimeout bounds the wait for the server to end the stream after
	// the client half-closed it (default 1s).
	CloseTimeout time.Duration
	// ResetOnClose makes the client half-close and then immediately
	// cancel the stream once the conversation is over, as Envoy does unless
	// its ext_proc_graceful_grpc_close runtime guard is on: the server then
	// sees io.EOF and/or codes.Canceled and its late writes go nowhere. By
	// default the client half-closes and waits up to CloseTimeout for the
	// server to end the stream (graceful close), which also lets it catch
	// late extra replies.
	ResetOnClose bool

	// FailureModeAllow is failure_mode_allow: timeouts, spurious messages and
	// stream errors make Envoy continue without the server instead of
	// answering 504/500. They are still reported as errors by Do.
	FailureModeAllow bool
	// AllowModeOverride is allow_mode_override: mode_override in replies to
	// header messages changes the rest of the conversation.
	AllowModeOverride bool

	// ExactHeaders sends exactly HTTPRequest.Headers (after lower-casing and
	// the pseudo-headers). By default the client adds, when absent, the
	// content-length an HTTP/1.1 client sends with a body (unless
	// transfer-encoding is given) and the x-forwarded-proto and x-request-id
	// headers Envoy's connection manager adds before any filter runs.
	ExactHeaders bool
}

func (c Config) withDefaults() Config {
	if c.MessageTimeout <= 0 {
		c.MessageTimeout = DefaultMessageTimeout
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.BufferLimit <= 0 {
		c.BufferLimit = DefaultBufferLimit
	}
	return c
}

func (c Config) validate() error {
	for _, m := range []BodySendMode{c.RequestBodyMode, c.ResponseBodyMode} {
		switch m {
		case None, Streamed, Buffered, BufferedPartial:
		default:
			return fmt.Errorf("extprocclient: body mode %v is not supported", m)
		}
	}
	return nil
}

// Result is what happened to one HTTP request.
type Result struct {
	// Immediate is the ImmediateResponse the server answered with, if any.
	Immediate *extprocv3.ImmediateResponse
	// Status is the final HTTP status the downstream client sees: the
	// immediate response's, a local reply's (413, 500, 504), or the
	// upstream's after response mutations.
	Status int
	// Headers, Body and Trailers are the final response as the downstream
	// client sees it (without :status and without the date/server headers
	// Envoy's connection manager adds).
	Headers  [][2]string
	Body     []byte
	Trailers [][2]string
	// LocalReplyDetails is Envoy's response code details for a local reply
	// generated by the filter (e.g. "ext_proc_error_per-message_timeout_exceeded").
	LocalReplyDetails string

	// Requests are the messages sent to the server, in order; Responses are
	// all messages received from it, in order (including spurious ones).
	Requests  []*extprocv3.ProcessingRequest
	Responses []*extprocv3.ProcessingResponse

	// UpstreamCalled reports whether the request reached the upstream, and
	// UpstreamRequest is the request it got (after mutations).
	UpstreamCalled  bool
	UpstreamRequest *HTTPRequest

	// StreamOpened reports whether an ext_proc stream was opened at all
	// (Envoy opens it lazily with the first message to send).
	StreamOpened bool
	// ClosedByServer reports that the server ended the stream with OK before
	// Envoy was done with it; Envoy then continues without the server.
	ClosedByServer bool

	// Violations are all protocol violations seen (Do returns the first).
	Violations []*ProtocolError
}

// Header returns the first value of the named final response header (case
// insensitive), or "".
func (r *Result) Header(name string) string {
	if r == nil {
		return ""
	}
	v, _ := hdrGet(r.Headers, name)
	return v
}

// Kind classifies a ProtocolError.
type Kind int

// Kinds of protocol violations.
const (
	// KindTimeout: no reply within the message timeout (Envoy: 504).
	KindTimeout Kind = iota + 1
	// KindUnexpectedReply: the reply's oneof does not match the message
	// awaited (Envoy: spurious message, 500).
	KindUnexpectedReply
	// KindSpurious: a reply arrived while no message was awaiting one (an
	// extra reply), or after the conversation was over.
	KindSpurious
	// KindInvalidMutation: a header mutation Envoy rejects or that cannot be
	// what the server meant (both value and raw_value set, value without
	// raw_value, invalid name/value, content-length not matching a mutated
	// buffered body). Envoy: 500.
	KindInvalidMutation
	// KindStreamError: the server ended the stream with a non-OK status
	// (Envoy: 500 unless failure_mode_allow), or the stream could not be opened.
	KindStreamError
	// KindObservabilityReply: the server replied in observability mode.
	KindObservabilityReply
	// KindCloseTimeout: the server did not end the stream within the close
	// timeout after the client half-closed it.
	KindCloseTimeout
)

func (k Kind) String() string {
	switch k {
	case KindTimeout:
		return "message timeout"
	case KindUnexpectedReply:
		return "unexpected reply"
	case KindSpurious:
		return "spurious reply"
	case KindInvalidMutation:
		return "invalid mutation"
	case KindStreamError:
		return "stream error"
	case KindObservabilityReply:
		return "reply in observability mode"
	case KindCloseTimeout:
		return "close timeout"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// ProtocolError is a violation of the ext_proc protocol by the server.
type ProtocolError struct {
	Kind  Kind
	Phase string // the message being processed, e.g. "request_headers"; "" if none
	Msg   string
	// Reply is the offending reply, if any.
	Reply *extprocv3.ProcessingResponse
	// Err is the underlying error (gRPC status), if any.
	Err error
}

func (e *ProtocolError) Error() string {
	var b strings.Builder
	b.WriteString("extprocclient: ext_proc protocol violation: ")
	b.WriteString(e.Kind.String())
	if e.Phase != "" {
		b.WriteString(" (awaiting ")
		b.WriteString(e.Phase)
		b.WriteString(")")
	}
	if e.Msg != "" {
		b.WriteString(": ")
		b.WriteString(e.Msg)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// ErrTimeout is returned by RawStream.Recv and RawStream.WaitEnd when nothing
// arrived in time.
var ErrTimeout = errors.New("extprocclient: timed out waiting for the server")
