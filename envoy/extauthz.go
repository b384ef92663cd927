package envoy

import (
	"context"
	"strconv"
	"sync"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/inspect"
)

// ExtAuthz serves envoy.service.auth.v3.Authorization.
type ExtAuthz struct {
	authv3.UnimplementedAuthorizationServer
	core
}

// NewExtAuthz returns the ext_authz service.
func NewExtAuthz(c Config) *ExtAuthz { return &ExtAuthz{core: newCore(c)} }

// authzHeaders reads a CheckRequest's headers: header_map (raw values, sent
// with encode_raw_headers) when present, else the lower-cased headers map.
type authzHeaders struct {
	m   map[string]string
	raw headerList
}

func (h *authzHeaders) Header(name string) string {
	if h.raw != nil {
		return h.raw.Header(name)
	}
	return h.m[name]
}

// Check decides on one request. A refusal is a CheckResponse with
// PERMISSION_DENIED and the 403 (or 413) response, never an RPC error.
func (s *ExtAuthz) Check(ctx context.Context, in *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	c := &s.core
	start := c.now() // the one clock reading of the decision
	httpReq := in.GetAttributes().GetRequest().GetHttp()
	// Recycled state: the record (handed on detached), the request and the
	// header reader.
	call := calls.Get().(*authzCall)
	defer func() { *call = authzCall{}; calls.Put(call) }()
	call.h = authzHeaders{m: httpReq.GetHeaders()}
	tx, req, h := &call.tx, &call.req, &call.h
	if hm := httpReq.GetHeaderMap(); hm != nil {
		h.raw = headerList(hm.GetHeaders())
	}
	f := requestFacts{
		method:        canonicalMethod(httpReq.GetMethod()),
		path:          httpReq.GetPath(),
		host:          httpReq.GetHost(),
		source:        in.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress(),
		contentLength: httpReq.GetSize(),
	}
	// request.http.id is Envoy's stream ID, not x-request-id: the header is
	// what ext_proc sees too, so it is what joins the parts of a call.
	f.requestID = h.Header("x-request-id")
	if f.contentLength == 0 && len(httpReq.GetRawBody()) == 0 && httpReq.GetBody() == "" {
		f.contentLength = -1 // proto3 default: unknown
	}
	if f.method == "" {
		f.method = canonicalMethod(h.Header(":method"))
	}
	if f.path == "" {
		f.path = h.Header(":path")
	}
	if f.host == "" {
		f.host = h.Header(":authority")
	}
	f.contentType = h.Header("content-type")
	f.userAgent = h.Header("user-agent")
	if cl := h.Header("content-length"); f.contentLength < 0 && cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			f.contentLength = n
		}
	}

	c.begin(&f, h, req, tx)
	tx.Start = start
	v := c.enforcer.Check(req, tx.Start)
	body := httpReq.GetRawBody()
	if len(body) == 0 && httpReq.GetBody() != "" {
		b := httpReq.GetBody()
		body = unsafe.Slice(unsafe.StringData(b), len(b)) // read only
	}
	if len(body) > 0 && !v.Deny && req.API.ReadsLoginBody(req.Path) {
		// The account a login's body names is the call's user name
		// (ahead of a header's or a token's), checked against the block
		// list as a header's is.
		if name := req.API.LoginUsername(f.contentType, body); name != "" {
			req.Identities[detect.KindUsername] = name
			tx.Identities[detect.KindUsername] = name
			tx.LoginBody = true
			if !v.Refused() && v.Reason != detect.ReasonAllowList {
				v = c.enforcer.CheckUsername(req, start)
			}
		}
	}
	if !v.Refused() && v.Reason != detect.ReasonAllowList {
		if len(body) > 0 {
			var json *detect.JSONCounter
			if isJSON(f.contentType) && req.API.MaxJSONElements > 0 {
				json = new(detect.JSONCounter)
				json.Write(body)
				tx.JSONElements = json.MaxElements
			}
			n := int64(len(body))
			if n > tx.RequestBytes {
				tx.RequestBytes = n
			}
			if bv := c.enforcer.CheckBody(req, max(n, f.contentLength), json); bv.Refused() {
				v = bv
			}
		}
	}
	if c.inspects(req, &v) {
		f.cookie, f.referer = h.Header("cookie"), h.Header("referer")
		rv := &call.view
		viewOf(req, &f, rv)
		rv.Body = body
		v = c.inspect(req, rv, tx, true)
		if !v.Refused() && c.content.Sample() {
			tx.Sample = c.content.Copy(rv)
		}
	}
	record(tx, &v)
	var resp *authv3.CheckResponse
	if v.Deny {
		if v.Decoy != nil && v.Decoy.Delay > 0 {
			waitFor(ctx, v.Decoy.Delay)
		}
		resp = CheckDenied(&v)
	} else {
		// A would-be refusal keeps its decision ID: the header, the log and
		// the record name the same decision.
		resp = checkAllowed(c.enforcer.IDs(), v.DecisionID)
		tx.DecisionID = resp.GetOkResponse().GetHeaders()[0].GetHeader().GetValue()
	}
	c.metrics.Decision(ServiceExtAuthz, v.Outcome(), v.Reason, c.now().Sub(start))
	c.logVerdict(ServiceExtAuthz, req, &v)
	tx.Sources = detect.SourceExtAuthz
	c.queue.Push(tx.Detach())
	return resp, nil
}

type authzCall struct {
	tx   detect.Transaction
	req  detect.Request
	h    authzHeaders
	view inspect.RequestView
}

var calls = sync.Pool{New: func() any { return new(authzCall) }}

// okResponse holds every message of an allowing CheckResponse and its
// decision ID, so that it takes one allocation instead of eight.
type okResponse struct {
	resp    authv3.CheckResponse
	status  rpcstatus.Status
	ok      authv3.CheckResponse_OkResponse
	okHTTP  authv3.OkHttpResponse
	headers [1]*corev3.HeaderValueOption
	option  corev3.HeaderValueOption
	header  corev3.HeaderValue
	id      [detect.DecisionIDLen]byte
}

// checkAllowed is the answer that lets a request through, with the
// decision header added to the upstream request: decisionID, or a new ID
// from ids written into the answer's own memory (the record handed on
// copies it: Detach).
func checkAllowed(ids *detect.IDGenerator, decisionID string) *authv3.CheckResponse {
	r := new(okResponse)
	if decisionID == "" {
		ids.Fill(&r.id)
		decisionID = unsafe.String(&r.id[0], len(r.id))
	}
	r.header.Key, r.header.Value = DecisionHeader, decisionID
	r.option.Header = &r.header
	r.option.AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	r.headers[0] = &r.option
	r.okHTTP.Headers = r.headers[:]
	r.ok.OkResponse = &r.okHTTP
	r.status.Code = int32(codes.OK)
	r.resp.Status = &r.status
	r.resp.HttpResponse = &r.ok
	return &r.resp
}

// CheckDenied is the ext_authz answer to a refused request.
func CheckDenied(v *detect.Verdict) *authv3.CheckResponse {
	code, headers, body := denial(v)
	hs := make([]*corev3.HeaderValueOption, 0, len(headers))
	for _, kv := range headers {
		hs = append(hs, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: kv[0], Value: kv[1]},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied), Message: "vigil: " + v.Reason.String()},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(code)},
			Headers: hs,
			Body:    string(body),
		}},
	}
}
