package envoy

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/inspect"
)

// loginPassword is the password every test login carries: it must never
// be found in a record, a log line or a refusal.
const loginPassword = "pw-Sup3r-s3cret"

const formType = "application/x-www-form-urlencoded"

// loginConfig is newTestConfig with the shop's login path /shop/login,
// a gateway's user name header, and debug logs into logs.
func loginConfig(tb testing.TB, mode detect.Mode, logs *bytes.Buffer) (Config, *detect.List) {
	cfg, block := newTestConfig(tb, mode)
	shop := cfg.Catalog.Load().Match("shop.example.com", "/shop/x")
	shop.LoginPaths = []string{"/shop/login"}
	shop.Identities.UsernameHeader = "x-user"
	if logs != nil {
		cfg.Log = zerolog.New(logs).Level(zerolog.DebugLevel)
	}
	return cfg, block
}

// login is an ext_proc stream of a POST with body to path, sent whole
// (BUFFERED) or in chunks of chunk bytes (STREAMED).
func login(path, contentType, body string, chunk int, kv ...string) []*extprocv3.ProcessingRequest {
	h := reqHeaders("POST", path, true, append([]string{"content-type", contentType, "content-length", fmt.Sprint(len(body))}, kv...)...)
	mode := extprocfv3.ProcessingMode_BUFFERED
	if chunk > 0 {
		mode = extprocfv3.ProcessingMode_STREAMED
	}
	h.ProtocolConfig = &extprocv3.ProtocolConfiguration{RequestBodyMode: mode}
	in := []*extprocv3.ProcessingRequest{h}
	if chunk <= 0 {
		chunk = len(body) + 1
	}
	for i := 0; ; i += chunk {
		end := min(i+chunk, len(body))
		in = append(in, reqBody(body[i:end], end == len(body)))
		if end == len(body) {
			break
		}
	}
	return append(in, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":status", RawValue: []byte("401")}}}}}})
}

// TestExtProcLoginBodyNamesTheUsername: the user name in a login's form or
// JSON body, whole or in chunks, is the record's username identity, ahead
// of a gateway's header; configured fields replace the defaults; a body
// to any other path is not read; the password is nowhere.
func TestExtProcLoginBodyNamesTheUsername(t *testing.T) {
	for _, tc := range []struct {
		name, path, ct, body string
		fields               []string
		chunk                int
		header               []string
		want                 string
	}{
		{"form", "/shop/login", formType, "username=alice&password=" + loginPassword, nil, 0, nil, "alice"},
		{"json", "/shop/login", "application/json", `{"email":"Bob@X.com","password":"` + loginPassword + `"}`, nil, 0, nil, "bob@x.com"},
		{"json in chunks", "/shop/login", "application/json", `{"user":{"password":"` + loginPassword + `","email":"Bob@X.com"}}`, nil, 7, nil, "bob@x.com"},
		{"ahead of the header", "/shop/login", formType, "login=carol&password=" + loginPassword, nil, 0, []string{"x-user", "gateway-user"}, "carol"},
		{"header when the body names none", "/shop/login", formType, "password=" + loginPassword, nil, 0, []string{"x-user", "gateway-user"}, "gateway-user"},
		{"configured fields", "/shop/login", formType, "username=u&acct=dave&password=" + loginPassword, []string{"acct"}, 0, nil, "dave"},
		{"configured fields exclude the defaults", "/shop/login", formType, "username=u&password=" + loginPassword, []string{"acct"}, 0, nil, ""},
		{"fields off", "/shop/login", formType, "username=u&password=" + loginPassword, []string{}, 0, nil, ""},
		{"not a login path", "/shop/orders", formType, "username=alice&password=" + loginPassword, nil, 0, nil, ""},
	} {
		for _, inspection := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/inspection=%v", tc.name, inspection), func(t *testing.T) {
				var logs bytes.Buffer
				cfg, _ := loginConfig(t, detect.ModeBlock, &logs)
				shop := cfg.Catalog.Load().Match("shop.example.com", "/shop/x")
				shop.LoginUsernameFields = tc.fields
				if inspection {
					shop.Inspection = true
					cfg.Content = detect.NewContentGuard(inspect.New(inspect.Config{}))
					cfg.Content.SetSampleEvery(1)
				}
				recs := records(t, cfg)
				m := &memStream{ctx: context.Background(), in: login(tc.path, tc.ct, tc.body, tc.chunk, tc.header...)}
				if err := NewExtProc(cfg).Process(m); err != nil {
					t.Fatal(err)
				}
				if m.last.GetImmediateResponse() != nil {
					t.Fatalf("refused: %v", m.last)
				}
				tx := next(t, recs)
				if got := tx.Identities[detect.KindUsername]; got != tc.want {
					t.Errorf("username %q, want %q", got, tc.want)
				}
				if tx.Status != 401 || tx.Path != tc.path {
					t.Errorf("record %s %d", tx.Path, tx.Status)
				}
				assertNoPassword(t, fmt.Sprintf("%+v", *tx)+logs.String())
				if inspection && (tx.Sample == nil || !strings.Contains(string(tx.Sample.View.Body), tc.body)) {
					// The learner's copy (in memory, never stored: profiles
					// keep value classes) has the whole body.
					t.Errorf("inspection's sample %+v", tx.Sample)
				}
			})
		}
	}
}

// TestExtProcLoginBodyEndedByTrailers: a login body whose end Envoy
// marks on the trailers is read when they come; a block-listed name is
// refused there.
func TestExtProcLoginBodyEndedByTrailers(t *testing.T) {
	cfg, block := loginConfig(t, detect.ModeBlock, nil)
	block.Put(detect.Entry{Kind: detect.KindUsername, Value: "mallory"})
	recs := records(t, cfg)
	trailers := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{}}}
	for _, tc := range []struct{ user, want string }{{"alice", ""}, {"mallory", "blocklist"}} {
		in := login("/shop/login", formType, "password="+loginPassword+"&username="+tc.user, 9)
		in[len(in)-2].GetRequestBody().EndOfStream = false
		in = append(in[:len(in)-1], trailers, in[len(in)-1])
		m := &memStream{ctx: context.Background(), in: in}
		if err := NewExtProc(cfg).Process(m); err != nil {
			t.Fatal(err)
		}
		if _, reason := denyBody(t, m.last); reason != tc.want {
			t.Fatalf("%s: refusal %q, want %q", tc.user, reason, tc.want)
		}
		if got := next(t, recs).Identities[detect.KindUsername]; got != tc.user {
			t.Fatalf("username %q, want %q", got, tc.user)
		}
	}
}

// assertNoPassword fails when text holds the test password.
func assertNoPassword(t *testing.T, text string) {
	t.Helper()
	if strings.Contains(text, loginPassword) {
		t.Fatalf("the password is kept: %s", text)
	}
}

// TestLoginBodyUsernameOnTheBlockListIsRefused: a login whose body names
// a block-listed user is refused at its body in block mode, as a header's
// name would be (403, the same JSON, reason blocklist), over ext_proc and
// ext_authz; in detect mode it goes on, recorded as would-block.
func TestLoginBodyUsernameOnTheBlockListIsRefused(t *testing.T) {
	body := `{"username":"mallory","password":"` + loginPassword + `"}`
	for _, mode := range []detect.Mode{detect.ModeBlock, detect.ModeDetect} {
		t.Run(mode.String(), func(t *testing.T) {
			var logs bytes.Buffer
			cfg, block := loginConfig(t, mode, &logs)
			block.Put(detect.Entry{Kind: detect.KindUsername, Value: "mallory", AttackID: "a1b2"})
			recs := records(t, cfg)

			m := &memStream{ctx: context.Background(), in: login("/shop/login", "application/json", body, 0)}
			if err := NewExtProc(cfg).Process(m); err != nil {
				t.Fatal(err)
			}
			tx := next(t, recs)
			if tx.Identities[detect.KindUsername] != "mallory" || tx.Reason != detect.ReasonBlockList {
				t.Fatalf("record: username %q, reason %v", tx.Identities[detect.KindUsername], tx.Reason)
			}
			// The same refusal a header's name gets.
			hm := &memStream{ctx: context.Background(), in: []*extprocv3.ProcessingRequest{reqHeaders("GET", "/shop/x", false, "x-user", "mallory")}}
			if err := NewExtProc(cfg).Process(hm); err != nil {
				t.Fatal(err)
			}
			next(t, recs)
			if mode == detect.ModeBlock {
				if m.sent != 2 || tx.Status != 403 || !tx.Blocked {
					t.Fatalf("block mode: %d replies, record %+v", m.sent, tx)
				}
				status, reason := denyBody(t, m.last)
				hstatus, hreason := denyBody(t, hm.last)
				if status != 403 || reason != "blocklist" || hstatus != status || hreason != reason {
					t.Fatalf("body-time refusal %d %s, header-time %d %s", status, reason, hstatus, hreason)
				}
				if !strings.Contains(string(m.last.GetImmediateResponse().GetBody()), `"attack_id":"a1b2"`) {
					t.Fatalf("refusal body %s", m.last.GetImmediateResponse().GetBody())
				}
			} else if tx.Blocked || !tx.WouldBlock || tx.Status != 401 || m.last.GetImmediateResponse() != nil {
				t.Fatalf("detect mode: record %+v, last reply %v", tx, m.last)
			}

			// ext_authz with the body (with_request_body).
			resp, err := NewExtAuthz(cfg).Check(context.Background(), authzLogin("/shop/login", "application/json", body))
			if err != nil {
				t.Fatal(err)
			}
			atx := next(t, recs)
			if atx.Identities[detect.KindUsername] != "mallory" || atx.Reason != detect.ReasonBlockList || !atx.LoginBody {
				t.Fatalf("ext_authz record %+v", atx)
			}
			denied := codes.Code(resp.GetStatus().GetCode()) == codes.PermissionDenied
			if denied != (mode == detect.ModeBlock) {
				t.Fatalf("ext_authz in %s mode: %v", mode, resp)
			}
			if denied && (resp.GetDeniedResponse().GetStatus().GetCode() != 403 || !strings.Contains(resp.GetDeniedResponse().GetBody(), `"reason":"blocklist"`)) {
				t.Fatalf("ext_authz refusal %v", resp.GetDeniedResponse())
			}
			assertNoPassword(t, logs.String()+fmt.Sprintf("%+v %+v %v %v", *tx, *atx, m.last, resp))
			if mode == detect.ModeBlock && !strings.Contains(logs.String(), `"match_value":"mallory"`) {
				t.Fatalf("the refusal is not logged with its match: %s", logs.String())
			}
		})
	}
}

// authzLogin is a CheckRequest with its body, as with_request_body sends.
func authzLogin(path, contentType, body string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "10.9.0.2"}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Path: path, Host: "shop.example.com", Size: int64(len(body)), RawBody: []byte(body),
			Headers: map[string]string{"content-type": contentType, "x-forwarded-for": "10.9.0.2"},
		}},
	}}
}

// TestExtAuthzLoginBodyNamesTheUsername: with the body, ext_authz reads a
// login's user name as ext_proc does; without it, the header's stays.
func TestExtAuthzLoginBodyNamesTheUsername(t *testing.T) {
	cfg, _ := loginConfig(t, detect.ModeBlock, nil)
	recs := records(t, cfg)
	s := NewExtAuthz(cfg)
	for _, tc := range []struct {
		path, ct, body, want string
	}{
		{"/shop/login", formType, "username=alice&password=" + loginPassword, "alice"},
		{"/shop/login", "application/json", `{"email":"Bob@X.com","password":"` + loginPassword + `"}`, "bob@x.com"},
		{"/shop/orders", formType, "username=alice", ""},
		{"/shop/login", formType, "", ""},
	} {
		resp, err := s.Check(context.Background(), authzLogin(tc.path, tc.ct, tc.body))
		if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Fatalf("%s %q: %v %v", tc.path, tc.body, resp, err)
		}
		tx := next(t, recs)
		if got := tx.Identities[detect.KindUsername]; got != tc.want || tx.LoginBody != (tc.want != "") {
			t.Errorf("%s %q: username %q (from the body: %v), want %q", tc.path, tc.body, got, tx.LoginBody, tc.want)
		}
		assertNoPassword(t, fmt.Sprintf("%+v", *tx))
	}
}

// TestReplayReadsTheLoginBodyAsLive: a replay record of a login with its
// request_body gives the user name the live call gives.
func TestReplayReadsTheLoginBodyAsLive(t *testing.T) {
	cfg, _ := loginConfig(t, detect.ModeBlock, nil)
	recs := records(t, cfg)
	for _, tc := range []struct{ ct, body string }{
		{formType, "username=alice&password=" + loginPassword},
		{"application/json", `{"user":{"email":" Bob@X.com ","password":"` + loginPassword + `"}}`},
		{"multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"login\"\r\n\r\ncarol\r\n--b--\r\n"},
	} {
		m := &memStream{ctx: context.Background(), in: login("/shop/login", tc.ct, tc.body, 0)}
		if err := NewExtProc(cfg).Process(m); err != nil {
			t.Fatal(err)
		}
		live := next(t, recs)
		rec := detect.Record{Time: time.Now(), Method: "POST", Authority: "shop.example.com", Path: "/shop/login", Status: 401,
			ClientIP: "10.9.0.1", RequestHeaders: map[string]string{"Content-Type": tc.ct}, RequestBody: tc.body}
		replayed := rec.Transaction(cfg.Catalog.Load(), cfg.Extractor)
		if live.Identities[detect.KindUsername] == "" || replayed.Identities != live.Identities || !replayed.LoginBody {
			t.Errorf("%s: live %q, replayed %q", tc.ct, live.Identities, replayed.Identities)
		}
	}
}

// TestLoginBodiesHugeAndBroken: login bodies past the cap, broken,
// binary or nested deep get an answer and a record, never a crash.
func TestLoginBodiesHugeAndBroken(t *testing.T) {
	cfg, _ := loginConfig(t, detect.ModeBlock, nil)
	shop := cfg.Catalog.Load().Match("shop.example.com", "/shop/x")
	shop.MaxBodyBytes, shop.MaxJSONElements = 0, 0 // the login body reader meets the bodies
	recs := records(t, cfg)
	for _, tc := range []struct {
		name, ct, body string
		chunk          int
		want           string
	}{
		{"10 MB, name first", "application/json", `{"username":"big","pad":"` + strings.Repeat("x", 10<<20) + `"}`, 0, "big"},
		{"10 MB in chunks, name past the cap", "application/json", `{"pad":"` + strings.Repeat("x", 10<<20) + `","username":"late"}`, 1 << 20, ""},
		{"truncated JSON", "application/json", `{"password":"` + loginPassword + `","username":"tr`, 0, ""},
		{"binary", "application/json", "\xff\x00\"username\"\x00:\"\xfe\"", 0, ""},
		{"deep", "application/json", strings.Repeat(`{"a":`, 200000) + `{"username":"deep"}`, 0, ""},
		{"form without values", formType, strings.Repeat("username&", 10000), 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &memStream{ctx: context.Background(), in: login("/shop/login", tc.ct, tc.body, tc.chunk)}
			if err := NewExtProc(cfg).Process(m); err != nil {
				t.Fatal(err)
			}
			if m.last.GetImmediateResponse() != nil {
				t.Fatalf("refused: %v", m.last)
			}
			if got := next(t, recs).Identities[detect.KindUsername]; got != tc.want {
				t.Fatalf("username %q, want %q", got, tc.want)
			}
		})
	}
}
