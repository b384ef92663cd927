package envoy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/inspect"
)

// attributesKey is where Envoy puts request_attributes and
// response_attributes.
const attributesKey = "envoy.filters.http.ext_proc"

// ExtProc serves envoy.service.ext_proc.v3.ExternalProcessor.
type ExtProc struct {
	extprocv3.UnimplementedExternalProcessorServer
	core
}

// NewExtProc returns the ext_proc service.
func NewExtProc(c Config) *ExtProc { return &ExtProc{core: newCore(c)} }

// The replies that carry no mutation are shared: marshalling only reads them.
var (
	continueRequestHeaders   = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
	continueResponseHeaders  = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
	continueRequestBody      = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
	continueResponseBody     = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
	continueRequestTrailers  = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	continueResponseTrailers = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
)

// extProcStream is the state of one HTTP request: Envoy opens one stream per
// request, so everything here is per request and needs no lock.
type extProcStream struct {
	svc *ExtProc
	// tx is the record: own until the request headers are decided, then
	// a detached copy (detach), so that an idle stream keeps no message.
	tx      *detect.Transaction
	own     detect.Transaction
	req     detect.Request
	headers headerList
	verdict detect.Verdict

	requestBodyMode  extprocfv3.ProcessingMode_BodySendMode
	sawProtocol      bool // a protocol_config said the body modes
	responseBodyMode extprocfv3.ProcessingMode_BodySendMode

	sawRequestHeaders  bool
	sawResponseHeaders bool
	json               *detect.JSONCounter // set for JSON request bodies
	requestBodyBytes   int64
	responseBodyBytes  int64
	responseLength     int64         // declared content-length of the response, or -1
	refused            bool          // an ImmediateResponse was sent
	observe            bool          // observability mode: Envoy ignores replies
	delay              time.Duration // a decoy answer is held back this long
	decided            bool          // a decision was made on this stream
	decideTime         time.Duration
	responseID         bool // tx.RequestID was read from a response message

	// Content inspection of the request body: inspectBody while one is
	// expected, its content type (a constant), the chunks gathered when
	// it does not come whole, and the call's copy for the learner.
	inspectBody bool
	bodyType    string
	bodyBuf     []byte
	sample      *detect.ContentSample
	// specPath and specQuery are kept, copied, for an API with an OpenAPI
	// document: it judges the whole call once the body is in.
	specPath, specQuery string
	view                inspect.RequestView
	// loginBody is set while the body of a call to a login path is
	// expected, to read the user name it names; loginType is its
	// content type, copied (a multipart boundary is in it).
	loginBody bool
	loginType string
}

// streams recycles per-stream state: a finished stream hands a detached
// copy of its record to the pipeline and keeps no reference to it.
var streams = sync.Pool{New: func() any { return new(extProcStream) }}

// Process handles one ext_proc stream: one reply per message (none in
// observability mode), an ImmediateResponse when the request is refused, and
// a transaction record when the stream ends.
func (s *ExtProc) Process(srv extprocv3.ExternalProcessor_ProcessServer) error {
	st := streams.Get().(*extProcStream)
	*st = extProcStream{svc: s, responseLength: -1}
	st.tx = &st.own
	ctx := srv.Context()
	err := st.loop(ctx, srv)
	st.finish()
	*st = extProcStream{}
	streams.Put(st)
	return err
}

func (st *extProcStream) loop(ctx context.Context, srv extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		msg, err := srv.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || ctx.Err() != nil {
				return nil // Envoy closed or cancelled the stream: a normal end
			}
			return err
		}
		resp, err := st.handle(msg)
		if err != nil {
			st.svc.metrics.ProtocolError(ServiceExtProc, err.Error())
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if resp == nil {
			continue // observability mode: Envoy ignores replies
		}
		if st.delay > 0 && !waitFor(ctx, st.delay) {
			return nil // Envoy gave up on the request
		}
		if err := srv.Send(resp); err != nil {
			if status.Code(err) == codes.Canceled || ctx.Err() != nil {
				return nil
			}
			return err
		}
		if st.refused {
			// Envoy sends nothing after an ImmediateResponse; closing the
			// stream with OK ends it at once.
			return nil
		}
	}
}

// protocolError is a message Envoy would never send in that state.
type protocolError string

func (e protocolError) Error() string { return string(e) }

func (st *extProcStream) handle(msg *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	if pc := msg.GetProtocolConfig(); pc != nil {
		st.requestBodyMode = pc.GetRequestBodyMode()
		st.sawProtocol = true
		st.responseBodyMode = pc.GetResponseBodyMode()
	}
	observe := msg.GetObservabilityMode()
	st.observe = st.observe || observe
	var resp *extprocv3.ProcessingResponse
	switch r := msg.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		if st.sawRequestHeaders {
			return nil, protocolError("request_headers received twice on one stream")
		}
		resp = st.onRequestHeaders(msg, r.RequestHeaders)
	case *extprocv3.ProcessingRequest_RequestBody:
		resp = st.onRequestBody(r.RequestBody)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		resp = st.onRequestTrailers()
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		if st.sawResponseHeaders {
			return nil, protocolError("response_headers received twice on one stream")
		}
		resp = st.onResponseHeaders(msg, r.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		resp = st.onResponseBody(r.ResponseBody)
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		resp = continueResponseTrailers
	case nil:
		return nil, protocolError("ProcessingRequest carries no request")
	default:
		return nil, protocolError(fmt.Sprintf("unsupported ProcessingRequest %T", r))
	}
	if observe {
		return nil, nil
	}
	return resp, nil
}

func (st *extProcStream) onRequestHeaders(msg *extprocv3.ProcessingRequest, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	start := st.svc.now() // the one clock reading of the decision
	st.sawRequestHeaders = true
	st.headers = headerList(h.GetHeaders().GetHeaders())
	var f requestFacts
	f.contentLength = -1
	factsFromHeaders(st.headers, &f)
	attributesToFacts(msg.GetAttributes(), &f)
	c := &st.svc.core
	c.begin(&f, &st.headers, &st.req, st.tx)
	st.tx.Start = start
	if isJSON(f.contentType) && st.req.API.MaxJSONElements > 0 {
		st.json = new(detect.JSONCounter)
	}
	st.verdict = c.enforcer.Check(&st.req, start)
	// Expected: a body (-1: of unknown length) that Envoy sends.
	body := f.contentLength != 0 && !h.GetEndOfStream() &&
		!(st.sawProtocol && st.requestBodyMode == extprocfv3.ProcessingMode_NONE)
	if body && !st.verdict.Deny && st.req.API.ReadsLoginBody(st.req.Path) {
		st.loginBody = true
		st.loginType = strings.Clone(f.contentType[:min(len(f.contentType), maxLoginType)])
	}
	if c.inspects(&st.req, &st.verdict) {
		// The view lives in the (recycled) stream: an OpenAPI judge, a
		// func value, would make a local one escape.
		rv := &st.view
		viewOf(&st.req, &f, rv)
		defer func() { st.view = inspect.RequestView{} }()
		// A body to come is inspected (and the call judged against its
		// OpenAPI document with it) once whole.
		st.verdict = c.inspect(&st.req, rv, st.tx, !body)
		if !st.verdict.Refused() {
			st.inspectBody = body
			st.bodyType = bodyMediaType(f.contentType)
			if body && c.content.HasSpec(st.req.API) {
				st.specPath, st.specQuery = strings.Clone(f.rawPath), strings.Clone(f.query)
			}
			if c.content.Sample() {
				st.sample = c.content.Copy(rv)
			}
		}
	}
	resp := st.conclude(&st.verdict, continueRequestHeaders)
	st.detach()
	st.decided = true
	st.decideTime += st.svc.now().Sub(start)
	return resp
}

// detach moves the record off Envoy's message once its headers are
// decided: the strings of the record and of the request are the packed
// copy's from then on (what later messages read of the request: its API,
// method, path and identities), so that while the stream waits for the
// upstream's response, as most streams do, it holds a record of a few
// hundred bytes instead of the message with every header. The copy is the
// one finish would have made.
func (st *extProcStream) detach() {
	st.tx = st.own.Detach()
	st.own = detect.Transaction{}
	st.headers = nil
	r := &st.req
	r.Host, r.Method, r.Path, r.UserAgent = st.tx.Host, st.tx.Method, st.tx.Path, st.tx.UserAgent
	r.Query = ""
	r.Identities = st.tx.Identities
}

// conclude records a verdict, logs a refusal and returns the reply: the
// ImmediateResponse of a refusal, or cont. An observer cannot refuse, so in
// observability mode a refusal is recorded as a would-be one.
func (st *extProcStream) conclude(v *detect.Verdict, cont *extprocv3.ProcessingResponse) *extprocv3.ProcessingResponse {
	if st.observe && v.Deny {
		v.Deny, v.WouldBlock = false, true
	}
	record(st.tx, v)
	st.svc.logVerdict(ServiceExtProc, &st.req, v)
	if v.Deny {
		if v.Decoy != nil {
			st.delay = v.Decoy.Delay
		}
		return st.immediate(v)
	}
	return cont
}

func (st *extProcStream) onRequestBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	body := b.GetBody()
	st.requestBodyBytes += int64(len(body))
	if st.requestBodyBytes > st.tx.RequestBytes {
		st.tx.RequestBytes = st.requestBodyBytes
	}
	resp := continueRequestBody
	if streamedBodyMode(st.requestBodyMode) && !st.observe {
		resp = streamedBodyReply(b, true)
	}
	// Only a request whose headers were seen has an API to check against,
	// and an allow-listed one is exempt from limits; one refused already
	// keeps its first verdict. A login's body still names its account.
	if !st.sawRequestHeaders {
		return resp
	}
	exempt := st.verdict.Reason == detect.ReasonAllowList || st.verdict.Refused()
	if exempt && !st.loginBody {
		return resp
	}
	start := st.svc.now()
	if !exempt {
		if st.json != nil {
			st.json.Write(body)
			st.tx.JSONElements = st.json.MaxElements
		}
		if v := st.svc.enforcer.CheckBody(&st.req, st.requestBodyBytes, st.json); v.Refused() {
			st.verdict = v
			st.inspectBody = false
			resp = st.conclude(&st.verdict, resp)
		}
	}
	if (st.loginBody || st.inspectBody) && !st.verdict.Deny {
		if data, end := st.gather(body, b.GetEndOfStream()); end {
			if st.loginBody {
				resp = st.loginUsername(data, start, resp)
			}
			if st.inspectBody && !st.verdict.Refused() {
				resp = st.inspectRequestBody(data, resp)
			}
			st.bodyBuf = nil
		}
	}
	st.decideTime += st.svc.now().Sub(start)
	return resp
}

// onRequestTrailers: a body ended by trailers (end_of_stream on them, not
// on a chunk) is whole once they come, and a login's is read then.
func (st *extProcStream) onRequestTrailers() *extprocv3.ProcessingResponse {
	resp := continueRequestTrailers
	if st.loginBody && st.bodyBuf != nil && !st.verdict.Deny {
		start := st.svc.now()
		resp = st.loginUsername(st.bodyBuf, start, resp)
		st.decideTime += st.svc.now().Sub(start)
	}
	return resp
}

// maxLoginType bounds the content type kept to read a login body.
const maxLoginType = 256

// gather returns the request body once it is whole: in place when it
// comes in one message (BUFFERED), else gathered from its chunks up to
// what its readers look at (the inspector's MaxBodyBytes, a login's
// detect.MaxLoginBody; the rest is dropped).
func (st *extProcStream) gather(chunk []byte, end bool) ([]byte, bool) {
	if end && st.bodyBuf == nil {
		return chunk, true
	}
	limit := 0
	if st.inspectBody {
		limit = st.svc.content.MaxBody()
	}
	if st.loginBody {
		limit = max(limit, detect.MaxLoginBody)
	}
	if room := limit - len(st.bodyBuf); room > 0 {
		st.bodyBuf = append(st.bodyBuf, chunk[:min(len(chunk), room)]...)
	}
	if st.bodyBuf == nil {
		st.bodyBuf = []byte{} // a body gathered, if empty
	}
	return st.bodyBuf, end
}

// loginUsername reads the user name a login's whole body names: it is the
// call's username identity (the account the attempt is on, ahead of a
// header's or a token's), and, on the block list, refuses the call as a
// header's name would.
func (st *extProcStream) loginUsername(data []byte, now time.Time, resp *extprocv3.ProcessingResponse) *extprocv3.ProcessingResponse {
	st.loginBody = false
	name := st.req.API.LoginUsername(st.loginType, data)
	st.loginType = ""
	if name == "" {
		return resp
	}
	st.req.Identities[detect.KindUsername] = name
	st.tx.Identities[detect.KindUsername] = name
	st.tx.LoginBody = true
	if st.verdict.Refused() || st.verdict.Reason == detect.ReasonAllowList {
		return resp
	}
	if v := st.svc.enforcer.CheckUsername(&st.req, now); v.Refused() {
		st.verdict = v
		st.inspectBody = false
		st.sample = nil
		resp = st.conclude(&st.verdict, resp)
	}
	return resp
}

// inspectRequestBody inspects the whole request body.
func (st *extProcStream) inspectRequestBody(data []byte, resp *extprocv3.ProcessingResponse) *extprocv3.ProcessingResponse {
	c := &st.svc.core
	st.inspectBody = false
	rv := &st.view
	*rv = inspect.RequestView{Method: st.req.Method, ContentType: st.bodyType, Body: data}
	defer func() { st.view = inspect.RequestView{} }()
	v := c.inspect(&st.req, rv, st.tx, false)
	if !v.Refused() && st.specPath != "" {
		// The whole call against the API's OpenAPI document.
		rv.Path, rv.Query = st.specPath, st.specQuery
		c.judgeSpec(&st.req, rv, st.tx, &v)
	}
	if v.Refused() {
		st.verdict = v
		st.sample = nil
		resp = st.conclude(&st.verdict, resp)
	} else if st.sample != nil {
		st.sample.SetBody(data, c.content.MaxBody())
	}
	return resp
}

func (st *extProcStream) onResponseHeaders(msg *extprocv3.ProcessingRequest, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	st.sawResponseHeaders = true
	c := &st.svc.core
	now := c.now()
	for _, hv := range h.GetHeaders().GetHeaders() {
		switch hv.GetKey() {
		case ":status":
			if n, err := strconv.Atoi(headerValue(hv)); err == nil {
				st.tx.Status = n
			}
		case "content-length":
			if n, err := strconv.ParseInt(headerValue(hv), 10, 64); err == nil && n >= 0 {
				st.responseLength = n
			}
		case "x-request-id":
			if st.tx.RequestID == "" {
				st.tx.RequestID = headerValue(hv)
				st.responseID = true
			}
		}
	}
	if a := msg.GetAttributes()[attributesKey]; a != nil {
		if st.tx.Status == 0 {
			if n, ok := numberAttr(a, "response.code"); ok {
				st.tx.Status = int(n)
			}
		}
		if st.tx.RequestID == "" {
			st.tx.RequestID = stringAttr(a, "request.id")
			st.responseID = true
		}
	}
	if !st.tx.Start.IsZero() {
		st.tx.Latency = now.Sub(st.tx.Start)
	} else {
		st.tx.Start = now
	}
	st.tx.Complete = true
	if st.responseLength >= 0 {
		st.tx.ResponseBytes = st.responseLength
	}
	return continueResponseHeaders
}

func (st *extProcStream) onResponseBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	st.responseBodyBytes += int64(len(b.GetBody()))
	if st.responseBodyBytes > st.tx.ResponseBytes {
		st.tx.ResponseBytes = st.responseBodyBytes
	}
	if streamedBodyMode(st.responseBodyMode) {
		return streamedBodyReply(b, false)
	}
	return continueResponseBody
}

// finish hands the transaction to the pipeline once the stream is over.
func (st *extProcStream) finish() {
	if st.decided {
		// One decision per stream, with its final verdict and the time spent
		// on all of its messages.
		st.svc.metrics.Decision(ServiceExtProc, st.verdict.Outcome(), st.verdict.Reason, st.decideTime)
	}
	if !st.sawRequestHeaders && !st.sawResponseHeaders {
		return
	}
	if st.sample != nil && !st.verdict.Refused() {
		st.tx.Sample = st.sample
	}
	st.tx.Sources = detect.SourceExtProc
	if st.observe {
		st.tx.Sources = detect.SourceObserver
	}
	if st.tx == &st.own || st.responseID {
		st.tx = st.tx.Detach() // a response's strings are the message's
	}
	st.svc.queue.Push(st.tx)
}

// immediate builds the ImmediateResponse for a refusal and marks the stream.
func (st *extProcStream) immediate(v *detect.Verdict) *extprocv3.ProcessingResponse {
	st.refused = true
	return ImmediateResponse(v)
}

// ImmediateResponse is the ext_proc answer to a refused request: the HTTP
// status (403, 413 or the decoy's), a JSON body, content-type and the
// decision header; gRPC clients get PERMISSION_DENIED or RESOURCE_EXHAUSTED.
func ImmediateResponse(v *detect.Verdict) *extprocv3.ProcessingResponse {
	code, headers, body := denial(v)
	set := make([]*corev3.HeaderValueOption, 0, len(headers))
	for _, kv := range headers {
		set = append(set, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: kv[0], RawValue: []byte(kv[1])},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	grpcCode := codes.PermissionDenied
	if v.Status == 413 {
		grpcCode = codes.ResourceExhausted
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
		Status:     &typev3.HttpStatus{Code: typev3.StatusCode(code)},
		Headers:    &extprocv3.HeaderMutation{SetHeaders: set},
		Body:       body,
		GrpcStatus: &extprocv3.GrpcStatus{Status: uint32(grpcCode)},
		Details:    details(v),
	}}}
}

// denial returns the status, headers and body of a refusal.
func denial(v *detect.Verdict) (int, [][2]string, []byte) {
	if d := v.Decoy; d != nil {
		return d.Status, d.Headers, d.Body
	}
	return v.Status, [][2]string{{"content-type", "application/json"}, {DecisionHeader, v.DecisionID}}, detect.AppendDenyBody(make([]byte, 0, 128), v)
}

// streamedBodyMode reports whether body replies must carry the body back
// (FULL_DUPLEX_STREAMED and GRPC modes), or the data plane loses it.
func streamedBodyMode(m extprocfv3.ProcessingMode_BodySendMode) bool {
	return m == extprocfv3.ProcessingMode_FULL_DUPLEX_STREAMED || m == extprocfv3.ProcessingMode_GRPC
}

// streamedBodyReply passes a body chunk through unchanged in the streamed
// body modes.
func streamedBodyReply(b *extprocv3.HttpBody, request bool) *extprocv3.ProcessingResponse {
	br := &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{
		Mutation: &extprocv3.BodyMutation_StreamedResponse{StreamedResponse: &extprocv3.StreamedBodyResponse{
			Body:                      b.GetBody(),
			EndOfStream:               b.GetEndOfStream(),
			EndOfStreamWithoutMessage: b.GetEndOfStreamWithoutMessage(),
			GrpcMessageCompressed:     b.GetGrpcMessageCompressed(),
		}},
	}}}
	if request {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: br}}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: br}}
}

// attributesToFacts fills what the headers lacked from request_attributes
// (grpc-go's client sends no pseudo-headers).
func attributesToFacts(attrs map[string]*structpb.Struct, f *requestFacts) {
	a := attrs[attributesKey]
	if a == nil {
		return
	}
	if f.path == "" {
		f.path = stringAttr(a, "request.path")
	}
	if f.method == "" {
		f.method = canonicalMethod(stringAttr(a, "request.method"))
	}
	if f.host == "" {
		f.host = stringAttr(a, "request.host")
	}
	if f.requestID == "" {
		f.requestID = stringAttr(a, "request.id")
	}
	if f.userAgent == "" {
		f.userAgent = stringAttr(a, "request.useragent")
	}
	if f.source == "" {
		f.source = stringAttr(a, "source.address")
	}
}

func stringAttr(s *structpb.Struct, key string) string {
	v := s.GetFields()[key]
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_NumberValue:
		return strconv.FormatFloat(k.NumberValue, 'f', -1, 64)
	}
	return ""
}

func numberAttr(s *structpb.Struct, key string) (float64, bool) {
	v := s.GetFields()[key]
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		return k.NumberValue, true
	case *structpb.Value_StringValue:
		n, err := strconv.ParseFloat(k.StringValue, 64)
		return n, err == nil
	}
	return 0, false
}

// waitFor waits d, or until ctx ends; it reports whether d passed.
func waitFor(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// details fills Envoy's %RESPONSE_CODE_DETAILS%: the reason of a refusal,
// and nothing for a decoy's answer, which must look like the back end's.
func details(v *detect.Verdict) string {
	if v.Decoy != nil {
		return ""
	}
	return "vigil_" + v.Reason.String()
}
