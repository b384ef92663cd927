package server

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// h2conn is a bare HTTP/2 client: it opens streams without honouring the
// server's SETTINGS_MAX_CONCURRENT_STREAMS, as a hostile caller would (grpc-go's
// client would queue them instead).
type h2conn struct {
	t    *testing.T
	conn net.Conn
	fr   *http2.Framer
	next uint32 // next stream ID
	// maxStreams is the SETTINGS_MAX_CONCURRENT_STREAMS the server advertised.
	maxStreams uint32
}

func dialH2(t *testing.T, addr string) *h2conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	c := &h2conn{t: t, conn: conn, fr: http2.NewFramer(conn, conn), next: 1}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	// The server's first frame is its SETTINGS.
	f, err := c.fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		t.Fatalf("first frame %v, want the server's SETTINGS", f)
	}
	sf.ForeachSetting(func(s http2.Setting) error {
		if s.ID == http2.SettingMaxConcurrentStreams {
			c.maxStreams = s.Val
		}
		return nil
	})
	if err := c.fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}
	return c
}

// open starts a gRPC call to method; with a non-nil message it sends it and
// half-closes, else it leaves the stream open and idle. It returns the ID.
func (c *h2conn) open(method string, message []byte) uint32 {
	c.t.Helper()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, h := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", method}, {":authority", "vigil"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		enc.WriteField(hpack.HeaderField{Name: h[0], Value: h[1]})
	}
	id := c.next
	c.next += 2
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
	if message != nil {
		frame := append([]byte{0, byte(len(message) >> 24), byte(len(message) >> 16), byte(len(message) >> 8), byte(len(message))}, message...)
		if err := c.fr.WriteData(id, true, frame); err != nil {
			c.t.Fatal(err)
		}
	}
	return id
}

// waitFor reads frames until one for stream id satisfies done, answering
// pings; it fails the test at the deadline or on a connection error.
func (c *h2conn) waitFor(what string, id uint32, done func(http2.Frame) bool) {
	c.t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatalf("waiting for %s on stream %d: %v", what, id, err)
		}
		if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
			c.fr.WritePing(true, p.Data)
			continue
		}
		if f.Header().StreamID == id && done(f) {
			return
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok && rst.StreamID == id {
			c.t.Fatalf("waiting for %s: stream %d reset with %v", what, id, rst.ErrCode)
		}
	}
}

// TestStreamLimitPerConnection: the server advertises grpc.max_concurrent_streams
// and refuses a stream beyond it on one connection with REFUSED_STREAM, so idle
// streams on one connection cannot grow without bound; once one closes, a new
// stream on the same connection is served.
func TestStreamLimitPerConnection(t *testing.T) {
	// The default is what one Envoy connection needs (Envoy opens another at its
	// cluster's max_concurrent_streams, 1000 in the examples), not 100,000.
	if c := dialH2(t, startServer(t, testConfig(t)).GRPCAddr()); c.maxStreams == 0 || c.maxStreams > 1000 {
		t.Errorf("default SETTINGS_MAX_CONCURRENT_STREAMS = %d, want at most 1000", c.maxStreams)
	}
	cfg := testConfig(t)
	cfg.GRPC.MaxConcurrentStreams = 4
	ts := startServer(t, cfg)
	c := dialH2(t, ts.GRPCAddr())
	if c.maxStreams != 4 {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want 4", c.maxStreams)
	}
	const process = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
	var ids []uint32
	for range 4 {
		ids = append(ids, c.open(process, nil))
	}
	over := c.open(process, nil)
	c.waitFor("REFUSED_STREAM", over, func(f http2.Frame) bool {
		rst, ok := f.(*http2.RSTStreamFrame)
		if ok && rst.ErrCode != http2.ErrCodeRefusedStream {
			t.Fatalf("stream over the limit reset with %v, want REFUSED_STREAM", rst.ErrCode)
		}
		return ok
	})
	// Close one idle stream: a health check on a new stream is answered.
	if err := c.fr.WriteRSTStream(ids[0], http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the closed stream's handler to return", func() bool { return ts.streams.open.Load() == 3 })
	check := c.open("/grpc.health.v1.Health/Check", []byte{})
	c.waitFor("the health check's trailers", check, func(f http2.Frame) bool {
		h, ok := f.(*http2.MetaHeadersFrame)
		if ok && h.StreamEnded() {
			for _, hf := range h.Fields {
				if hf.Name == "grpc-status" && hf.Value != "0" {
					t.Fatalf("health check on a fresh stream: grpc-status %s", hf.Value)
				}
			}
		}
		return ok && h.StreamEnded()
	})
}

// TestStreamLimitTotal: grpc.max_streams bounds the streams open across
// connections: one more is refused with RESOURCE_EXHAUSTED (and counted), and a
// fresh stream works once another has closed.
func TestStreamLimitTotal(t *testing.T) {
	cfg := testConfig(t)
	cfg.GRPC.MaxConcurrentStreams = 4
	cfg.GRPC.MaxStreams = 6
	ts := startServer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	type open struct {
		stream extprocv3.ExternalProcessor_ProcessClient
		cancel context.CancelFunc
	}
	var streams []open
	for i := range 6 { // three connections, two idle streams each
		conn := dialGRPC(t, ts.GRPCAddr())
		for range 2 {
			sctx, scancel := context.WithCancel(ctx)
			defer scancel()
			s, err := extprocv3.NewExternalProcessorClient(conn).Process(sctx)
			if err != nil {
				t.Fatalf("stream %d: %v", i, err)
			}
			streams = append(streams, open{s, scancel})
		}
		if len(streams) == 6 {
			break
		}
	}
	waitFor(t, 5*time.Second, "6 streams open on the server", func() bool { return ts.streams.open.Load() == 6 })

	process := func() error {
		s, err := extprocv3.NewExternalProcessorClient(dialGRPC(t, ts.GRPCAddr())).Process(ctx)
		if err != nil {
			return err
		}
		if err := s.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: ":method", RawValue: []byte("GET")}, {Key: ":path", RawValue: []byte("/x")}, {Key: ":authority", RawValue: []byte("api.example")},
			}}, EndOfStream: true,
		}}}); err != nil && !errors.Is(err, context.Canceled) {
			_, rerr := s.Recv()
			return rerr
		}
		if _, err := s.Recv(); err != nil {
			return err
		}
		return s.CloseSend()
	}
	err := process()
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a 7th stream: %v, want RESOURCE_EXHAUSTED", err)
	}
	if got := ts.streams.refused.Load(); got != 1 {
		t.Errorf("refused = %d, want 1", got)
	}
	if code, body := adminDo(t, ts.base, "GET", "/metrics", "", ""); code != 200 || !bytes.Contains([]byte(body), []byte("vigil_grpc_streams_refused_total 1")) {
		t.Errorf("metrics: %d, no vigil_grpc_streams_refused_total 1", code)
	}

	streams[0].cancel()
	waitFor(t, 5*time.Second, "the cancelled stream's handler to return", func() bool { return ts.streams.open.Load() == 5 })
	if err := process(); err != nil {
		t.Fatalf("a fresh stream after one closed: %v", err)
	}
}

// BenchmarkStreamLimit is what grpc.max_streams adds to each stream: the
// interceptor around a handler that does nothing, from many goroutines.
func BenchmarkStreamLimit(b *testing.B) {
	l := newStreamLimit(1 << 40)
	handler := func(any, grpc.ServerStream) error { return nil }
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.intercept(nil, nil, nil, handler); err != nil {
				b.Fatal(err)
			}
		}
	})
}
