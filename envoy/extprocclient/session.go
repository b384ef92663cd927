package extprocclient

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
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// FilterName is the ext_proc filter name, also the attributes key.
const FilterName = "envoy.filters.http.ext_proc"

type phase int

const (
	phaseRequestHeaders phase = iota
	phaseRequestBody
	phaseRequestTrailers
	phaseResponseHeaders
	phaseResponseBody
	phaseResponseTrailers
)

var phaseNames = [...]string{
	"request_headers", "request_body", "request_trailers",
	"response_headers", "response_body", "response_trailers",
}

func (p phase) String() string { return phaseNames[p] }

// replyPhase maps a reply's oneof to the message kind it answers.
func replyPhase(r *extprocv3.ProcessingResponse) (phase, bool) {
	switch r.GetResponse().(type) {
	case *extprocv3.ProcessingResponse_RequestHeaders:
		return phaseRequestHeaders, true
	case *extprocv3.ProcessingResponse_RequestBody:
		return phaseRequestBody, true
	case *extprocv3.ProcessingResponse_RequestTrailers:
		return phaseRequestTrailers, true
	case *extprocv3.ProcessingResponse_ResponseHeaders:
		return phaseResponseHeaders, true
	case *extprocv3.ProcessingResponse_ResponseBody:
		return phaseResponseBody, true
	case *extprocv3.ProcessingResponse_ResponseTrailers:
		return phaseResponseTrailers, true
	}
	return 0, false
}

// ReplyKind names the oneof case of a ProcessingResponse ("request_headers",
// "immediate_response", ...; "empty" when none is set).
func ReplyKind(r *extprocv3.ProcessingResponse) string {
	if p, ok := replyPhase(r); ok {
		return p.String()
	}
	switch r.GetResponse().(type) {
	case *extprocv3.ProcessingResponse_ImmediateResponse:
		return "immediate_response"
	case *extprocv3.ProcessingResponse_StreamedImmediateResponse:
		return "streamed_immediate_response"
	case nil:
		if r.GetOverrideMessageTimeout() != nil {
			return "override_message_timeout"
		}
		return "empty"
	}
	return fmt.Sprintf("%T", r.GetResponse())
}

// streamContext derives the context of an ext_proc stream: it carries the
// caller's values and is cancelled with it, but not its deadline, because
// Envoy sets no grpc-timeout on ext_proc streams.
func streamContext(ctx context.Context) (context.Context, context.CancelFunc) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	return sctx, func() {
		stop()
		cancel()
	}
}

// receiver pumps Recv into a channel so that waits can have deadlines.
type receiver struct {
	ch       chan recvEvent
	stop     chan struct{}
	stopOnce sync.Once
	end      *recvEvent // terminal event once consumed (consumer side only)
}

type recvEvent struct {
	resp *extprocv3.ProcessingResponse
	err  error // terminal: io.EOF for a clean end, else the stream's error
}

func startReceiver(recv func() (*extprocv3.ProcessingResponse, error)) *receiver {
	r := &receiver{ch: make(chan recvEvent), stop: make(chan struct{})}
	go func() {
		for {
			m, err := recv()
			select {
			case r.ch <- recvEvent{resp: m, err: err}:
			case <-r.stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// next returns the next event, waiting up to d (d <= 0 only polls). ok is
// false when nothing arrived. Once the stream has ended, the terminal event
// is returned again on every call.
func (r *receiver) next(ctx context.Context, d time.Duration) (ev recvEvent, ok bool, err error) {
	if r.end != nil {
		return *r.end, true, nil
	}
	if err := ctx.Err(); err != nil {
		return ev, false, err
	}
	if d <= 0 {
		select {
		case ev = <-r.ch:
		default:
			return ev, false, nil
		}
	} else {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case ev = <-r.ch:
		case <-t.C:
			return ev, false, nil
		case <-ctx.Done():
			return ev, false, ctx.Err()
		}
	}
	if ev.err != nil {
		e := ev
		r.end = &e
	}
	return ev, true, nil
}

func (r *receiver) close() { r.stopOnce.Do(func() { close(r.stop) }) }

// modes is the effective processing mode of one HTTP stream.
type modes struct {
	reqHeaders, respHeaders   bool
	reqBody, respBody         BodySendMode
	reqTrailers, respTrailers bool
}

func modesFrom(c Config) modes {
	return modes{
		reqHeaders:   c.RequestHeaderMode != Skip,
		respHeaders:  c.ResponseHeaderMode != Skip,
		reqBody:      c.RequestBodyMode,
		respBody:     c.ResponseBodyMode,
		reqTrailers:  c.RequestTrailerMode == Send,
		respTrailers: c.ResponseTrailerMode == Send,
	}
}

// override applies a mode_override like Envoy's effectiveModeOverride: DEFAULT
// header/trailer modes mean "no change", body modes are always replaced.
// Overrides to body modes the client does not model are ignored.
func (m *modes) override(o *extprocfv3.ProcessingMode) bool {
	for _, b := range []BodySendMode{o.GetRequestBodyMode(), o.GetResponseBodyMode()} {
		if b != None && b != Streamed && b != Buffered && b != BufferedPartial {
			return false
		}
	}
	set := func(dst *bool, v HeaderSendMode) {
		if v != Default {
			*dst = v == Send
		}
	}
	set(&m.reqHeaders, o.GetRequestHeaderMode())
	set(&m.respHeaders, o.GetResponseHeaderMode())
	set(&m.reqTrailers, o.GetRequestTrailerMode())
	set(&m.respTrailers, o.GetResponseTrailerMode())
	m.reqBody = o.GetRequestBodyMode()
	m.respBody = o.GetResponseBodyMode()
	return true
}

// direction is the request or the response path.
type direction struct {
	request                                bool
	headersPhase, bodyPhase, trailersPhase phase
	headers                                [][2]string // incl. pseudo-headers
	body                                   []byte
	trailers                               [][2]string
	attrs                                  map[string]string
	attrValues                             map[string]*structpb.Value
	sentAttrs                              bool
}

type session struct {
	ctx    context.Context // the caller's
	sctx   context.Context // the stream's
	cancel context.CancelFunc
	client extprocv3.ExternalProcessorClient
	cfg    Config
	m      modes
	res    *Result

	stream extprocv3.ExternalProcessor_ProcessClient
	recv   *receiver

	sentProtocolConfig bool
	complete           bool // Envoy's processing_complete_: the server is no longer consulted
	local              bool // a local reply was sent downstream
	abort              bool // reset the stream instead of closing it gracefully
	endHandled         bool // the stream's end was seen and handled
	ctxErr             error
}

// Do runs one HTTP request through the ext_proc server the way Envoy's
// ext_proc filter does, calling upstream (nil: an empty 200) unless the
// server or the filter answered locally.
//
// The returned Result is non-nil whenever the configuration is valid, even
// with an error: it tells what the downstream client would have seen. The
// error is the first protocol violation (a *ProtocolError; all are in
// Result.Violations), or the context's error.
func Do(ctx context.Context, client extprocv3.ExternalProcessorClient, cfg Config, req HTTPRequest, upstream func(HTTPRequest) HTTPResponse) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	sctx, cancel := streamContext(ctx)
	s := &session{ctx: ctx, sctx: sctx, cancel: cancel, client: client, cfg: cfg, m: modesFrom(cfg), res: &Result{}}
	defer func() {
		if s.recv != nil {
			s.recv.close()
		}
		cancel()
	}()
	s.run(req, upstream)
	s.finish()
	if s.ctxErr != nil {
		return s.res, s.ctxErr
	}
	if len(s.res.Violations) > 0 {
		return s.res, s.res.Violations[0]
	}
	return s.res, nil
}

func (s *session) stopped() bool { return s.complete || s.local || s.ctxErr != nil }

func (s *session) violation(kind Kind, ph, msg string, reply *extprocv3.ProcessingResponse, err error) {
	s.res.Violations = append(s.res.Violations, &ProtocolError{Kind: kind, Phase: ph, Msg: msg, Reply: reply, Err: err})
}

func (s *session) run(req HTTPRequest, upstream func(HTTPRequest) HTTPResponse) {
	rq := &direction{
		request:      true,
		headersPhase: phaseRequestHeaders, bodyPhase: phaseRequestBody, trailersPhase: phaseRequestTrailers,
		headers:    RequestHeaderMap(req, !s.cfg.ExactHeaders),
		body:       append([]byte(nil), req.Body...),
		trailers:   lowerAll(req.Trailers),
		attrs:      s.cfg.RequestAttributes,
		attrValues: s.cfg.RequestAttributeValues,
	}
	s.process(rq)
	if s.ctxErr != nil || s.local {
		return
	}

	up := HTTPRequest{Body: rq.body, Trailers: rq.trailers, SourceAddr: req.SourceAddr}
	if up.SourceAddr == "" {
		up.SourceAddr = DefaultSourceAddr
	}
	for _, kv := range rq.headers {
		switch kv[0] {
		case ":method":
			up.Method = kv[1]
		case ":path":
			up.Path = kv[1]
		case ":authority":
			up.Authority = kv[1]
		case ":scheme":
			up.Scheme = kv[1]
		default:
			if !strings.HasPrefix(kv[0], ":") {
				up.Headers = append(up.Headers, kv)
			}
		}
	}
	s.res.UpstreamCalled = true
	s.res.UpstreamRequest = &up
	resp := HTTPResponse{Status: 200}
	if upstream != nil {
		resp = upstream(up)
	}

	rs := &direction{
		headersPhase: phaseResponseHeaders, bodyPhase: phaseResponseBody, trailersPhase: phaseResponseTrailers,
		headers:    responseHeaderMap(resp),
		body:       append([]byte(nil), resp.Body...),
		trailers:   lowerAll(resp.Trailers),
		attrs:      s.cfg.ResponseAttributes,
		attrValues: s.cfg.ResponseAttributeValues,
	}
	s.process(rs)
	if s.ctxErr != nil || s.local {
		return
	}
	s.res.Status = resp.Status
	if s.res.Status == 0 {
		s.res.Status = 200
	}
	if v, ok := hdrGet(rs.headers, ":status"); ok {
		if n, err := strconv.Atoi(v); err == nil && n >= 100 && n <= 999 {
			s.res.Status = n
		}
	}
	_, s.res.Headers = splitPseudo(rs.headers)
	s.res.Body = rs.body
	s.res.Trailers = rs.trailers
}

func (s *session) modesFor(d *direction) (headers bool, body BodySendMode, trailers bool) {
	if d.request {
		return s.m.reqHeaders, s.m.reqBody, s.m.reqTrailers
	}
	return s.m.respHeaders, s.m.respBody, s.m.respTrailers
}

// process runs one direction: headers, body, trailers.
func (s *session) process(d *direction) {
	hasBody := len(d.body) > 0
	hasTrailers := len(d.trailers) > 0
	sendHeaders, bodyMode, _ := s.modesFor(d)
	// Envoy drops content-length when the body may be mutated without the
	// server being able to fix it (decodeHeaders/encodeHeaders,
	// shouldRemoveContentLength), right after sending the headers.
	removeCL := !s.cfg.ObservabilityMode && !s.stopped() &&
		(bodyMode == Streamed || bodyMode == BufferedPartial || (bodyMode == Buffered && !sendHeaders))

	replaced := false
	if sendHeaders && !s.stopped() {
		hh := &extprocv3.HttpHeaders{Headers: HeaderMap(d.headers), EndOfStream: !hasBody && !hasTrailers}
		msg := &extprocv3.ProcessingRequest{}
		if d.request {
			msg.Request = &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: hh}
		} else {
			msg.Request = &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: hh}
		}
		if removeCL {
			d.headers = hdrDel(d.headers, "content-length")
		}
		r := s.exchange(d, d.headersPhase, msg)
		if r != nil {
			if s.cfg.AllowModeOverride && r.GetModeOverride() != nil {
				s.m.override(r.GetModeOverride())
			}
			var cr *extprocv3.CommonResponse
			if d.request {
				cr = r.GetRequestHeaders().GetResponse()
			} else {
				cr = r.GetResponseHeaders().GetResponse()
			}
			replacing := cr.GetStatus() == extprocv3.CommonResponse_CONTINUE_AND_REPLACE
			h, err := applyHeaderMutation(d.headersPhase.String()+" reply", d.headers, cr.GetHeaderMutation(), replacing)
			if err != nil {
				s.mutationFailure(d.headersPhase, r, err)
				return
			}
			d.headers = h
			if replacing {
				// No more messages in this direction; the body is replaced.
				replaced = true
				if bm := cr.GetBodyMutation(); bm != nil {
					d.headers = hdrDel(d.headers, "content-length")
					d.body = applyBodyMutation(d.body, bm)
				}
			}
		}
	} else if removeCL {
		d.headers = hdrDel(d.headers, "content-length")
	}
	if s.local || s.ctxErr != nil {
		return
	}

	_, bodyMode, _ = s.modesFor(d)
	if !replaced && hasBody && !s.stopped() {
		switch bodyMode {
		case Buffered:
			s.bufferedBody(d, hasTrailers)
		case Streamed:
			s.streamedBody(d, hasTrailers)
		case BufferedPartial:
			s.partialBody(d, hasTrailers)
		}
	}
	if s.local || s.ctxErr != nil {
		return
	}

	_, _, sendTrailers := s.modesFor(d)
	if !replaced && hasTrailers && sendTrailers && !s.stopped() {
		ht := &extprocv3.HttpTrailers{Trailers: HeaderMap(d.trailers)}
		msg := &extprocv3.ProcessingRequest{}
		if d.request {
			msg.Request = &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: ht}
		} else {
			msg.Request = &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: ht}
		}
		r := s.exchange(d, d.trailersPhase, msg)
		if r != nil {
			var hm *extprocv3.HeaderMutation
			if d.request {
				hm = r.GetRequestTrailers().GetHeaderMutation()
			} else {
				hm = r.GetResponseTrailers().GetHeaderMutation()
			}
			t, err := applyHeaderMutation(d.trailersPhase.String()+" reply", d.trailers, hm, false)
			if err != nil {
				s.mutationFailure(d.trailersPhase, r, err)
				return
			}
			d.trailers = t
		}
	}
}

func bodyMsg(d *direction, body []byte, eos bool) *extprocv3.ProcessingRequest {
	hb := &extprocv3.HttpBody{Body: append([]byte(nil), body...), EndOfStream: eos}
	if d.request {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: hb}}
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: hb}}
}

func bodyCommon(d *direction, r *extprocv3.ProcessingResponse) *extprocv3.CommonResponse {
	if d.request {
		return r.GetRequestBody().GetResponse()
	}
	return r.GetResponseBody().GetResponse()
}

// bufferedBody: BUFFERED mode, one message with the whole body.
func (s *session) bufferedBody(d *direction, hasTrailers bool) {
	if s.cfg.ObservabilityMode {
		return // only STREAMED and NONE work in observability mode
	}
	if len(d.body) > s.cfg.BufferLimit {
		if d.request {
			s.localReply(413, "request_payload_too_large")
		} else {
			s.localReply(500, "response_payload_too_large")
		}
		return
	}
	// With trailers, the body message does not end the stream (onTrailers
	// sends the buffered data with end_of_stream=false).
	r := s.exchange(d, d.bodyPhase, bodyMsg(d, d.body, !hasTrailers))
	if r == nil {
		return
	}
	cr := bodyCommon(d, r)
	h, err := applyHeaderMutation(d.bodyPhase.String()+" reply", d.headers, cr.GetHeaderMutation(),
		cr.GetStatus() == extprocv3.CommonResponse_CONTINUE_AND_REPLACE)
	if err != nil {
		s.mutationFailure(d.bodyPhase, r, err)
		return
	}
	d.headers = h
	if bm := cr.GetBodyMutation(); bm.GetMutation() != nil {
		nb := applyBodyMutation(d.body, bm)
		if cl, ok := hdrGet(d.headers, "content-length"); ok {
			if n, err := strconv.Atoi(cl); err == nil && n != len(nb) {
				s.mutationFailure(d.bodyPhase, r, fmt.Errorf("%s reply: the body mutation makes the body %d bytes but content-length is %d; Envoy rejects it (mismatch between content length and the length of the mutated body)", d.bodyPhase, len(nb), n))
				return
			}
		}
		d.body = nb
	}
}

func splitChunks(b []byte, size int) [][]byte {
	if size <= 0 || size >= len(b) {
		return [][]byte{b}
	}
	var out [][]byte
	for len(b) > 0 {
		n := min(size, len(b))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// streamedBody: STREAMED mode, one message per data frame.
func (s *session) streamedBody(d *direction, hasTrailers bool) {
	chunks := splitChunks(d.body, s.cfg.ChunkSize)
	eos := func(i int) bool { return i == len(chunks)-1 && !hasTrailers }
	out := make([]byte, 0, len(d.body))
	if s.cfg.ObservabilityMode {
		for i, c := range chunks {
			s.exchange(d, d.bodyPhase, bodyMsg(d, c, eos(i)))
		}
		return
	}
	if s.cfg.PipelineStreamedChunks {
		s.drainUnsolicited(d.bodyPhase.String())
		sent := 0
		for i, c := range chunks {
			if s.stopped() || !s.send(d, d.bodyPhase, bodyMsg(d, c, eos(i))) {
				break
			}
			sent++
		}
		for i := range chunks {
			if i < sent && !s.stopped() {
				if r := s.await(d.bodyPhase); r != nil {
					out = append(out, applyBodyMutation(chunks[i], bodyCommon(d, r).GetBodyMutation())...)
					continue
				}
			}
			if s.local || s.ctxErr != nil {
				return
			}
			out = append(out, chunks[i]...) // the server is gone: data passes unprocessed
		}
		d.body = out
		return
	}
	for i, c := range chunks {
		r := s.exchange(d, d.bodyPhase, bodyMsg(d, c, eos(i)))
		if s.local || s.ctxErr != nil {
			return
		}
		if r != nil {
			c = applyBodyMutation(c, bodyCommon(d, r).GetBodyMutation())
		}
		out = append(out, c...)
	}
	d.body = out
}

// partialBody: BUFFERED_PARTIAL mode, one message with at most BufferLimit
// bytes; the rest passes through unprocessed.
func (s *session) partialBody(d *direction, hasTrailers bool) {
	if s.cfg.ObservabilityMode {
		return
	}
	n := min(len(d.body), s.cfg.BufferLimit)
	part, rest := d.body[:n], d.body[n:]
	r := s.exchange(d, d.bodyPhase, bodyMsg(d, part, n == len(d.body) && !hasTrailers))
	if r == nil {
		return
	}
	part = applyBodyMutation(part, bodyCommon(d, r).GetBodyMutation())
	d.body = append(append([]byte(nil), part...), rest...)
}

// exchange sends one message and, outside observability mode, returns the
// matching reply. It returns nil when there is nothing to apply: the server
// answered with an ImmediateResponse, failed, went away, or Envoy does not
// wait in this mode.
func (s *session) exchange(d *direction, p phase, msg *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	if s.stopped() {
		return nil
	}
	s.drainUnsolicited(p.String())
	if s.stopped() {
		return nil
	}
	if !s.send(d, p, msg) {
		return nil
	}
	if s.cfg.ObservabilityMode {
		return nil
	}
	return s.await(p)
}

// open opens the stream lazily, as Envoy does with the first message.
func (s *session) open(p phase) bool {
	if s.stream != nil {
		return true
	}
	st, err := s.client.Process(s.sctx)
	if err != nil {
		if s.ctx.Err() != nil {
			s.ctxErr = s.ctx.Err()
			return false
		}
		s.violation(KindStreamError, p.String(), "could not open the ext_proc stream", nil, err)
		s.endHandled = true
		s.complete = true
		if !s.cfg.FailureModeAllow {
			st := status.Convert(err)
			s.localReply(500, fmt.Sprintf("ext_proc_error_gRPC_error_%d{%s}", int(st.Code()), st.Message()))
		}
		return false
	}
	s.stream = st
	s.res.StreamOpened = true
	s.recv = startReceiver(st.Recv)
	return true
}

func toStruct(attrs map[string]string) *structpb.Struct {
	st := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(attrs))}
	for k, v := range attrs {
		st.Fields[k] = structpb.NewStringValue(v)
	}
	return st
}

// send decorates and sends one message. It returns false if the stream is
// gone (the outcome has then been handled).
func (s *session) send(d *direction, p phase, msg *extprocv3.ProcessingRequest) bool {
	if !s.open(p) {
		return false
	}
	if s.cfg.ObservabilityMode {
		msg.ObservabilityMode = true
	} else if !s.sentProtocolConfig {
		msg.ProtocolConfig = &extprocv3.ProtocolConfiguration{RequestBodyMode: s.m.reqBody, ResponseBodyMode: s.m.respBody}
		s.sentProtocolConfig = true
	}
	if len(d.attrs)+len(d.attrValues) > 0 && !d.sentAttrs {
		st := toStruct(d.attrs)
		for k, v := range d.attrValues {
			st.Fields[k] = v
		}
		msg.Attributes = map[string]*structpb.Struct{FilterName: st}
		d.sentAttrs = true
	}
	if s.cfg.MetadataContext != nil {
		msg.MetadataContext = proto.Clone(s.cfg.MetadataContext).(*corev3.Metadata)
	} else {
		msg.MetadataContext = &corev3.Metadata{}
	}
	s.res.Requests = append(s.res.Requests, msg)
	if err := s.stream.Send(msg); err != nil {
		// The stream is over; its status comes from Recv.
		s.waitEnd(p.String(), s.cfg.CloseTimeout, err)
		return false
	}
	return true
}

// waitEnd consumes events until the stream ends, for when a Send failed.
func (s *session) waitEnd(ph string, timeout time.Duration, sendErr error) {
	deadline := time.Now().Add(timeout)
	for {
		ev, ok, err := s.recv.next(s.ctx, time.Until(deadline))
		if err != nil {
			s.ctxErr = err
			return
		}
		if !ok {
			s.violation(KindStreamError, ph, "sending to the server failed and the stream did not end", nil, sendErr)
			s.failClosed(500, "ext_proc_error_send_failed")
			return
		}
		if ev.err != nil {
			s.onStreamEnd(ph, ev.err)
			return
		}
		s.unsolicited(ph, ev.resp)
	}
}

// drainUnsolicited handles whatever arrived while no message was awaiting a
// reply: replies are extra (or, in observability mode, unwanted), and the
// stream may have ended.
func (s *session) drainUnsolicited(before string) {
	if s.recv == nil {
		return
	}
	for !s.stopped() {
		ev, ok, err := s.recv.next(s.ctx, 0)
		if err != nil {
			s.ctxErr = err
			return
		}
		if !ok {
			return
		}
		if ev.err != nil {
			if !s.endHandled {
				s.onStreamEnd("", ev.err)
			}
			return
		}
		s.unsolicited("before "+before, ev.resp)
	}
}

// unsolicited records a reply that no message was awaiting.
func (s *session) unsolicited(when string, r *extprocv3.ProcessingResponse) {
	s.res.Responses = append(s.res.Responses, r)
	if s.cfg.ObservabilityMode {
		s.violation(KindObservabilityReply, "", fmt.Sprintf("server sent a %s reply (%s) although every message had observability_mode=true; Envoy ignores it", ReplyKind(r), when), r, nil)
		return
	}
	if s.stopped() {
		s.violation(KindSpurious, "", fmt.Sprintf("server sent a %s reply (%s) after the conversation was over; Envoy ignores it", ReplyKind(r), when), r, nil)
		return
	}
	s.violation(KindSpurious, "", fmt.Sprintf("server sent a %s reply (%s) while no message was awaiting a reply: more than one reply to a message", ReplyKind(r), when), r, nil)
	if ir := r.GetImmediateResponse(); ir != nil {
		// Envoy acts on an ImmediateResponse whenever it arrives.
		s.immediate(r)
		return
	}
	s.failClosed(500, "spurious_message")
}

// await waits for the reply to the message just sent.
func (s *session) await(p phase) *extprocv3.ProcessingResponse {
	timeout := s.cfg.MessageTimeout
	deadline := time.Now().Add(timeout)
	restarted := false
	for {
		ev, ok, err := s.recv.next(s.ctx, time.Until(deadline))
		if err != nil {
			s.ctxErr = err
			return nil
		}
		if !ok {
			s.violation(KindTimeout, p.String(), fmt.Sprintf("no reply within the message timeout (%v)", timeout), nil, nil)
			if s.cfg.FailureModeAllow {
				s.complete = true
				s.abort = true
			} else {
				s.failClosedStatus(504, "ext_proc_error_per-message_timeout_exceeded")
			}
			return nil
		}
		if ev.err != nil {
			s.onStreamEnd(p.String(), ev.err)
			return nil
		}
		r := ev.resp
		s.res.Responses = append(s.res.Responses, r)
		if omt := r.GetOverrideMessageTimeout(); omt != nil {
			// The rest of such a reply is ignored; it only restarts the timer.
			d := omt.AsDuration()
			if !restarted && s.cfg.MaxMessageTimeout > 0 && d >= time.Millisecond && d <= s.cfg.MaxMessageTimeout {
				timeout, deadline, restarted = d, time.Now().Add(d), true
			}
			continue
		}
		if r.GetImmediateResponse() != nil {
			s.immediate(r)
			return nil
		}
		if rp, ok := replyPhase(r); !ok || rp != p {
			s.violation(KindUnexpectedReply, p.String(), fmt.Sprintf("got a %s reply to a %s message; Envoy treats it as spurious", ReplyKind(r), p), r, nil)
			s.failClosed(500, "spurious_message")
			return nil
		}
		return r
	}
}

// onStreamEnd handles the server ending the stream.
func (s *session) onStreamEnd(ph string, err error) {
	s.endHandled = true
	if errors.Is(err, io.EOF) {
		// Clean close: Envoy goes on without the server.
		if !s.stopped() {
			s.res.ClosedByServer = true
		}
		s.complete = true
		return
	}
	if s.ctx.Err() != nil {
		s.ctxErr = s.ctx.Err()
		return
	}
	st := status.Convert(err)
	s.violation(KindStreamError, ph, fmt.Sprintf("server ended the stream with status %s", st.Code()), nil, err)
	if s.stopped() {
		return
	}
	s.complete = true
	if !s.cfg.FailureModeAllow {
		s.localReply(500, fmt.Sprintf("ext_proc_error_gRPC_error_%d{%s}", int(st.Code()), st.Message()))
	}
}

// failClosed handles a spurious/unexpected reply or a broken send: Envoy
// ignores the server from then on and, unless failure_mode_allow, answers
// status_on_error (500).
func (s *session) failClosed(code int, details string) {
	s.abort = true
	s.complete = true
	if !s.cfg.FailureModeAllow && !s.local {
		s.localReply(code, details)
	}
}

func (s *session) failClosedStatus(code int, details string) {
	s.abort = true
	s.complete = true
	if !s.local {
		s.localReply(code, details)
	}
}

// mutationFailure: Envoy rejects the reply and answers 500 regardless of
// failure_mode_allow.
func (s *session) mutationFailure(p phase, r *extprocv3.ProcessingResponse, err error) {
	s.violation(KindInvalidMutation, p.String(), err.Error(), r, nil)
	s.failClosedStatus(500, err.Error())
}

func (s *session) localReply(code int, details string) {
	s.local = true
	s.complete = true
	s.res.Status = code
	s.res.Headers = [][2]string{{"content-length", "0"}}
	s.res.Body = nil
	s.res.Trailers = nil
	s.res.LocalReplyDetails = strings.Join(strings.Fields(details), "_")
}

// immediate turns an ImmediateResponse into the local reply Envoy sends.
func (s *session) immediate(r *extprocv3.ProcessingResponse) {
	ir := r.GetImmediateResponse()
	s.res.Immediate = ir
	code := 200 // Envoy's default when status is unset or < 200
	if ir.GetStatus() != nil && int(ir.GetStatus().GetCode()) >= 200 {
		code = int(ir.GetStatus().GetCode())
	}
	body := append([]byte(nil), ir.GetBody()...)
	h := [][2]string{{"content-length", strconv.Itoa(len(body))}}
	if len(body) > 0 {
		h = append(h, [2]string{"content-type", "text/plain"})
	}
	if ir.GetHeaders() != nil {
		nh, err := applyHeaderMutation("immediate_response.headers", h, ir.GetHeaders(), false)
		if err != nil {
			// Envoy logs the failure and sends the reply anyway.
			s.violation(KindInvalidMutation, "", err.Error(), r, nil)
		}
		h = nh
	}
	s.local = true
	s.complete = true
	s.res.Status = code
	s.res.Headers = h
	s.res.Body = body
	s.res.Trailers = nil
	s.res.LocalReplyDetails = strings.Join(strings.Fields(ir.GetDetails()), "_")
}

// finish closes the stream the way Envoy does once it is done with it.
func (s *session) finish() {
	if s.stream == nil || s.ctxErr != nil || s.endHandled {
		return
	}
	s.complete = true // nothing more will be sent
	_ = s.stream.CloseSend()
	if s.abort || s.cfg.ResetOnClose {
		s.cancel()
		return
	}
	deadline := time.Now().Add(s.cfg.CloseTimeout)
	for {
		ev, ok, err := s.recv.next(s.ctx, time.Until(deadline))
		if err != nil {
			s.ctxErr = err
			return
		}
		if !ok {
			s.violation(KindCloseTimeout, "", fmt.Sprintf("server did not end the stream within %v after the client half-closed it (Process must return once Recv gives io.EOF)", s.cfg.CloseTimeout), nil, nil)
			s.cancel()
			return
		}
		if ev.err != nil {
			s.endHandled = true
			if !errors.Is(ev.err, io.EOF) {
				s.violation(KindStreamError, "", fmt.Sprintf("server ended the stream with status %s after the conversation", status.Code(ev.err)), nil, ev.err)
			}
			return
		}
		s.res.Responses = append(s.res.Responses, ev.resp)
		if s.cfg.ObservabilityMode {
			s.violation(KindObservabilityReply, "", fmt.Sprintf("server sent a %s reply although every message had observability_mode=true; Envoy ignores it", ReplyKind(ev.resp)), ev.resp, nil)
		} else {
			s.violation(KindSpurious, "", fmt.Sprintf("server sent a %s reply after the conversation was over (no message was awaiting a reply); Envoy ignores it", ReplyKind(ev.resp)), ev.resp, nil)
		}
	}
}
