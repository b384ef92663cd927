// Package flood drives a running Vigil with a flood of fresh identities, as
// a botnet rotating addresses and stolen tokens does: every call comes from
// a new client IP with a new bearer token, over real gRPC, through
// ext_authz (one Check per call) or ext_proc (one new stream per HTTP
// request, as Envoy opens them). Sample reads what the flood costs the
// process: its RSS from /proc, its live heap and tracked states from
// /metrics. The test in this package and its benchmark use it against the
// built binary.
package flood

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// Service is the gRPC service a flood goes through.
type Service int

const (
	ExtAuthz Service = iota
	ExtProc
)

func (s Service) String() string {
	if s == ExtProc {
		return "ext_proc"
	}
	return "ext_authz"
}

// Identity is the client of call i: a client IP and a bearer token no
// other call uses (i below 2^24).
func Identity(i int) (ip, token string) {
	return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), fmt.Sprintf("flood-%08d-%x", i, uint32(i)*2654435761)
}

// Client makes calls to one Vigil.
type Client struct {
	Host, Path string // :authority and :path of every call; Path gets the call's number appended
	// Repeat is how many calls each identity makes in a row in Drive (0: one):
	// a client that returns is tracked as a state, not only sighted.
	Repeat int
	az     authv3.AuthorizationClient
	ep     extprocv3.ExternalProcessorClient
}

// NewClient makes calls over cc to host and path (e.g. "/shop/item/").
func NewClient(cc grpc.ClientConnInterface, host, path string) *Client {
	return &Client{Host: host, Path: path, az: authv3.NewAuthorizationClient(cc), ep: extprocv3.NewExternalProcessorClient(cc)}
}

// Call makes call i as the client with ip and token, and returns whether
// Vigil allowed it.
func (c *Client) Call(ctx context.Context, svc Service, i int, ip, token string) (allowed bool, err error) {
	path := c.Path + strconv.Itoa(i%1000)
	id := "flood-" + strconv.Itoa(i)
	if svc == ExtAuthz {
		r, err := c.az.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}},
			}}},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Id: id, Method: "GET", Path: path, Host: c.Host, Scheme: "https", Protocol: "HTTP/1.1", Size: -1,
				Headers: map[string]string{
					":method": "GET", ":path": path, ":authority": c.Host, "user-agent": "flood/1.0",
					"authorization": "Bearer " + token, "x-request-id": id,
				},
			}},
		}})
		if err != nil {
			return false, err
		}
		return r.GetStatus().GetCode() == int32(codes.OK), nil
	}
	return c.exchange(ctx, path, id, ip, token)
}

// exchange is one HTTP request as Envoy sends it over ext_proc: a new
// stream, request headers, response headers (when the request passed),
// close.
func (c *Client) exchange(ctx context.Context, path, id, ip, token string) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.ep.Process(ctx)
	if err != nil {
		return false, err
	}
	hv := func(kv ...string) *corev3.HeaderMap {
		m := &corev3.HeaderMap{}
		for i := 0; i+1 < len(kv); i += 2 {
			m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
		}
		return m
	}
	req := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
		Headers: hv(":method", "GET", ":path", path, ":authority", c.Host, ":scheme", "https", "user-agent", "flood/1.0",
			"authorization", "Bearer "+token, "x-request-id", id, "x-envoy-external-address", ip),
		EndOfStream: true,
	}}}
	if err := st.Send(req); err != nil {
		return false, err
	}
	r, err := st.Recv()
	if err != nil {
		return false, err
	}
	if r.GetImmediateResponse() != nil {
		st.CloseSend()
		return false, nil
	}
	resp := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
		Headers: hv(":status", "200", "content-type", "application/json", "content-length", "512"), EndOfStream: true,
	}}}
	if err := st.Send(resp); err != nil {
		return false, err
	}
	if _, err := st.Recv(); err != nil {
		return false, err
	}
	if err := st.CloseSend(); err != nil {
		return false, err
	}
	if _, err := st.Recv(); err != io.EOF {
		return false, fmt.Errorf("want EOF at the end of the stream, got %v", err)
	}
	return true, nil
}

// Drive makes calls from up to to (exclusive), each from its own fresh
// identity (Identity; Repeat calls each), with conc calls in flight, and
// returns the first error. A refused call is no error: a flood may trip detection.
func (c *Client) Drive(ctx context.Context, svc Service, from, to, conc int) error {
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	next.Store(int64(from))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= to || ctx.Err() != nil {
					return
				}
				ip, token := Identity(i)
				for range max(c.Repeat, 1) {
					if _, err := c.Call(ctx, svc, i, ip, token); err != nil {
						errOnce.Do(func() { first = fmt.Errorf("%s call %d: %w", svc, i, err) })
						cancel()
						return
					}
				}
			}
		})
	}
	wg.Wait()
	return first
}

// Sample is what the process costs at one point of a flood.
type Sample struct {
	Calls     int
	RSS, HWM  int64   // VmRSS, VmHWM (peak), bytes
	HeapLive  int64   // go_gc_heap_live_bytes: live heap marked by the last GC
	HeapInuse int64   // go_memstats_heap_inuse_bytes
	States    int64   // vigil_tracked_states, every kind
	Estimated int64   // vigil_memory_estimated_bytes, every structure
	Evictions int64   // vigil_state_evictions_total
	Queue     int64   // vigil_queue_depth
	Rate      float64 // calls/s since the previous sample
}

// BytesPerState is the live heap divided by the tracked states.
func (s Sample) BytesPerState() float64 {
	if s.States == 0 {
		return 0
	}
	return float64(s.HeapLive) / float64(s.States)
}

func (s Sample) String() string {
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	return fmt.Sprintf("%8d calls: RSS %s (peak %s), live heap %s (in use %s), states %d, estimated %s, %.0f B/state, evictions %d, queue %d, %.0f calls/s",
		s.Calls, mib(s.RSS), mib(s.HWM), mib(s.HeapLive), mib(s.HeapInuse), s.States, mib(s.Estimated), s.BytesPerState(), s.Evictions, s.Queue, s.Rate)
}

// Measure samples the process pid and its admin listener at adminAddr.
func Measure(pid int, adminAddr string) (Sample, error) {
	var s Sample
	var err error
	if s.RSS, s.HWM, err = ProcMemory(pid); err != nil {
		return s, err
	}
	m, err := Metrics(adminAddr)
	if err != nil {
		return s, err
	}
	s.HeapLive, s.HeapInuse = int64(m["go_gc_heap_live_bytes"]), int64(m["go_memstats_heap_inuse_bytes"])
	s.States, s.Estimated = int64(m["vigil_tracked_states"]), int64(m["vigil_memory_estimated_bytes"])
	s.Evictions, s.Queue = int64(m["vigil_state_evictions_total"]), int64(m["vigil_queue_depth"])
	return s, nil
}

// ProcMemory reads a process's VmRSS and VmHWM from /proc, in bytes.
func ProcMemory(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %q", k, v)
		}
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return rss, hwm, sc.Err()
}

// Metrics reads /metrics at adminAddr: each metric's series summed, by name.
func Metrics(adminAddr string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+adminAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 && i < len(name) {
			name = line[:i]
			rest = line[strings.LastIndexByte(line, '}')+1:]
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			continue
		}
		out[name] += v
	}
	return out, sc.Err()
}
