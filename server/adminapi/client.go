package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// maxAnswer bounds an answer the client reads.
const maxAnswer = 64 << 20

// Client calls a running Vigil's admin API.
type Client struct {
	addr  string // as given, for messages
	base  string
	token string
	http  *http.Client
}

// NewClient returns a client of the admin API at addr (host:port, or a
// URL for https), sending token as the bearer token when it is not empty.
func NewClient(addr, token string) *Client {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{addr: addr, base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: 30 * time.Second}}
}

// StatusError is an error answer: the server's message and status. Path is
// the request's path as it may be shown (see Route).
type StatusError struct {
	Method, Path string
	Code         int
	Message      string // the answer's "error"; empty if it had none
	status       string // the HTTP status line's text
}

func (e *StatusError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("%s %s: %s (%d)", e.Method, e.Path, e.Message, e.Code)
	}
	return fmt.Sprintf("%s %s: %s", e.Method, e.Path, e.status)
}

// UnreachableError is a request that got no answer. It names the address,
// never the request's URL, which may hold a raw credential.
type UnreachableError struct {
	Addr string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach Vigil's admin API at %s: %v", e.Addr, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Route is the path of one call, and what messages show of it: the path
// itself, unless it holds a value that must not be echoed (a raw token,
// API key or cookie).
type Route struct {
	Path, Shown string
}

// Path is a route that may be shown as it is.
func Path(p string) Route { return Route{p, p} }

// EntryRoute is DELETE /v1/{list}/{kind}/{value}: the value is shown
// unless it is a raw credential (or of a kind the server will refuse).
func EntryRoute(list, kind, value string) Route {
	r := Path("/v1/" + list + "/" + url.PathEscape(kind) + "/" + url.PathEscape(value))
	if !Showable(kind, value) {
		r.Shown = "/v1/" + list + "/" + url.PathEscape(kind) + "/<value>"
	}
	return r
}

// ForensicsRoute is GET /v1/forensics/{kind}/{value}; the value is never
// shown.
func ForensicsRoute(kind, value string) Route {
	return Route{"/v1/forensics/" + url.PathEscape(kind) + "/" + url.PathEscape(value), "/v1/forensics/" + kind + "/<value>"}
}

// ModelRoute is /v1/models/{api}.
func ModelRoute(api string) Route { return Path("/v1/models/" + url.PathEscape(api)) }

// Showable reports whether a list value given by a person may be printed:
// IPs, user names and fingerprints may, a raw credential (or a value of a
// mistyped kind) may not.
func Showable(kind, value string) bool {
	k, err := detect.ParseKind(kind)
	return (err == nil && !k.Secret()) || detect.IsFingerprint(value)
}

// Do sends a request and decodes a JSON answer into out (nil: the answer
// is dropped; a *json.RawMessage: kept as it is). body, when not nil, is
// sent as JSON: a []byte as it is, anything else encoded. An error answer
// is a *StatusError, no answer an *UnreachableError (or ctx's error).
func (c *Client) Do(ctx context.Context, method string, r Route, body, out any) error {
	code, status, answer, err := c.send(ctx, method, r, body)
	if err != nil {
		return err
	}
	if code >= 300 {
		e := &StatusError{Method: method, Path: r.Shown, Code: code, status: status}
		var body Error
		if json.Unmarshal(answer, &body) == nil {
			e.Message = body.Error
		}
		return e
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *json.RawMessage:
		*o = answer
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("%s %s: unexpected answer: %w", method, r.Shown, err)
	}
	return nil
}

// Raw sends a request as Do does and returns the answer's status code and
// body as they came, an error answer's too (tests check both); the error
// is only for a request that got no answer.
func (c *Client) Raw(ctx context.Context, method string, r Route, body any) (int, []byte, error) {
	code, _, answer, err := c.send(ctx, method, r, body)
	return code, answer, err
}

// send is one request and its answer.
func (c *Client) send(ctx context.Context, method string, r Route, body any) (code int, status string, answer []byte, err error) {
	var data []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		data = b
	default:
		if data, err = json.Marshal(b); err != nil {
			return 0, "", nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+r.Path, bytes.NewReader(data))
	if err != nil {
		return 0, "", nil, fmt.Errorf("%s %s: %v", method, r.Shown, errors.Unwrap(err))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, "", nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // ue, unlike its Err, carries the URL
		}
		return 0, "", nil, &UnreachableError{Addr: c.addr, Err: err}
	}
	defer resp.Body.Close()
	answer, err = io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, "", nil, fmt.Errorf("%s %s: reading the answer: %v", method, r.Shown, err)
	}
	return resp.StatusCode, resp.Status, answer, nil
}

// get is GET of a route that may be shown, into out.
func get[T any](ctx context.Context, c *Client, path string) (*T, error) {
	out := new(T)
	if err := c.Do(ctx, http.MethodGet, Path(path), nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Healthy calls GET /healthz: nil when the server answers.
func (c *Client) Healthy(ctx context.Context) error {
	return c.Do(ctx, http.MethodGet, Path("/healthz"), nil, nil)
}

// Ready calls GET /readyz: nil when the server is ready.
func (c *Client) Ready(ctx context.Context) error {
	return c.Do(ctx, http.MethodGet, Path("/readyz"), nil, nil)
}

// Status calls GET /v1/status.
func (c *Client) Status(ctx context.Context) (*ServerStatus, error) {
	return get[ServerStatus](ctx, c, "/v1/status")
}

// APIs calls GET /v1/apis.
func (c *Client) APIs(ctx context.Context) (*APIs, error) { return get[APIs](ctx, c, "/v1/apis") }

// Models calls GET /v1/models.
func (c *Client) Models(ctx context.Context) (*Models, error) {
	return get[Models](ctx, c, "/v1/models")
}

// Decoys calls GET /v1/decoys.
func (c *Client) Decoys(ctx context.Context) (*Decoys, error) {
	return get[Decoys](ctx, c, "/v1/decoys")
}

// Attacks calls GET /v1/attacks with the query (api, type, since, limit,
// offset).
func (c *Client) Attacks(ctx context.Context, q url.Values) (*Attacks, error) {
	path := "/v1/attacks"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return get[Attacks](ctx, c, path)
}

// Entries calls GET /v1/{list} (blocklist or allowlist).
func (c *Client) Entries(ctx context.Context, list string) (*Entries, error) {
	return get[Entries](ctx, c, "/v1/"+list)
}

// RemoveEntry calls DELETE /v1/{list}/{kind}/{value}.
func (c *Client) RemoveEntry(ctx context.Context, list, kind, value string) error {
	return c.Do(ctx, http.MethodDelete, EntryRoute(list, kind, value), nil, nil)
}

// Forensics calls GET /v1/forensics/{kind}/{value}.
func (c *Client) Forensics(ctx context.Context, kind, value string) (*Forensics, error) {
	out := new(Forensics)
	if err := c.Do(ctx, http.MethodGet, ForensicsRoute(kind, value), nil, out); err != nil {
		return nil, err
	}
	return out, nil
}
