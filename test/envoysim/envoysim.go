// Package envoysim is an Envoy-faithful ext_proc and ext_authz client for tests.
//
// It plays the part Envoy's envoy.filters.http.ext_proc and
// envoy.filters.http.ext_authz filters play in front of Vigil, without an Envoy
// binary (none can be had in this environment, see
// /work/shared/reference/envoy-protocol.md §6):
//
//   - ext_proc: [Do], [Stream] and the message builders are those of
//     envoy/extprocclient, the repository's one ext_proc client (the demo's
//     front door proxies through it too), re-exported here so that the tests
//     read as before. envoysim_test.go pins that client's behaviour against
//     in-test ext_proc servers with hand-written expectations of what Envoy
//     sends and answers (it never compares the client with itself), and
//     test/e2e drives Vigil through it.
//   - ext_authz: [Check] builds a CheckRequest the way the ext_authz filter
//     does and calls envoy.service.auth.v3.Authorization/Check; [Allowed]
//     applies Envoy's allow rule (status code 0).
package envoysim

import (
	"context"
	"errors"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/vigil-project/vigil/envoy/extprocclient"
)

// The ext_proc client's types (see envoy/extprocclient).
type (
	HTTPRequest    = extprocclient.HTTPRequest
	HTTPResponse   = extprocclient.HTTPResponse
	HeaderSendMode = extprocclient.HeaderSendMode
	BodySendMode   = extprocclient.BodySendMode
	Config         = extprocclient.Config
	Result         = extprocclient.Result
	Kind           = extprocclient.Kind
	ProtocolError  = extprocclient.ProtocolError
	RawStream      = extprocclient.RawStream
)

// Processing-mode values.
const (
	Default = extprocclient.Default
	Send    = extprocclient.Send
	Skip    = extprocclient.Skip

	None            = extprocclient.None
	Streamed        = extprocclient.Streamed
	Buffered        = extprocclient.Buffered
	BufferedPartial = extprocclient.BufferedPartial
)

// Defaults used when the corresponding Config field is zero.
const (
	DefaultMessageTimeout = extprocclient.DefaultMessageTimeout
	DefaultCloseTimeout   = extprocclient.DefaultCloseTimeout
	DefaultBufferLimit    = extprocclient.DefaultBufferLimit
	DefaultSourceAddr     = extprocclient.DefaultSourceAddr
)

// Kinds of protocol violations.
const (
	KindTimeout            = extprocclient.KindTimeout
	KindUnexpectedReply    = extprocclient.KindUnexpectedReply
	KindSpurious           = extprocclient.KindSpurious
	KindInvalidMutation    = extprocclient.KindInvalidMutation
	KindStreamError        = extprocclient.KindStreamError
	KindObservabilityReply = extprocclient.KindObservabilityReply
	KindCloseTimeout       = extprocclient.KindCloseTimeout
)

// FilterName is the ext_proc filter name, also the attributes key.
const FilterName = extprocclient.FilterName

// ErrTimeout is returned by RawStream.Recv and RawStream.WaitEnd when nothing
// arrived in time.
var ErrTimeout = extprocclient.ErrTimeout

// ErrRequestEntityTooLarge is returned by Check when the body exceeds
// MaxRequestBytes without AllowPartialMessage: Envoy answers 413 itself and
// never calls the authorization server.
var ErrRequestEntityTooLarge = errors.New("envoysim: ext_authz: request body over max_request_bytes, Envoy answers 413 without calling the server")

// Do runs one HTTP request through the ext_proc server the way Envoy's
// ext_proc filter does; see [extprocclient.Do].
func Do(ctx context.Context, client extprocv3.ExternalProcessorClient, cfg Config, req HTTPRequest, upstream func(HTTPRequest) HTTPResponse) (*Result, error) {
	return extprocclient.Do(ctx, client, cfg, req, upstream)
}

// Stream opens one raw ext_proc stream; see [extprocclient.Stream].
func Stream(ctx context.Context, client extprocv3.ExternalProcessorClient) (*RawStream, error) {
	return extprocclient.Stream(ctx, client)
}

// Message builders; see envoy/extprocclient.
var (
	HeaderMap             = extprocclient.HeaderMap
	HeaderPairs           = extprocclient.HeaderPairs
	ReplyKind             = extprocclient.ReplyKind
	HeadersMsg            = extprocclient.HeadersMsg
	RequestHeadersMsg     = extprocclient.RequestHeadersMsg
	ResponseHeadersMsg    = extprocclient.ResponseHeadersMsg
	BodyMsg               = extprocclient.BodyMsg
	ResponseBodyMsg       = extprocclient.ResponseBodyMsg
	RequestTrailersMsg    = extprocclient.RequestTrailersMsg
	ResponseTrailersMsg   = extprocclient.ResponseTrailersMsg
	WithProtocolConfig    = extprocclient.WithProtocolConfig
	WithObservabilityMode = extprocclient.WithObservabilityMode
	WithAttributes        = extprocclient.WithAttributes
)

var (
	hdrGet = extprocclient.HeaderGet
	hdrDel = extprocclient.HeaderDel
)
