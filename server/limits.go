package server

import (
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// streamLimit bounds the gRPC streams open at once across every connection
// (grpc.max_streams). Each idle ext_proc stream holds about 16 KB, and a
// caller can open them on as many connections as it likes: the per-connection
// limit (grpc.max_concurrent_streams) alone does not bound memory. The count
// is one atomic add on each side of a stream, nothing on the messages.
type streamLimit struct {
	max     int64
	open    atomic.Int64
	refused atomic.Uint64
}

func newStreamLimit(max int64) *streamLimit { return &streamLimit{max: max} }

// intercept is a grpc.StreamServerInterceptor: past the limit the stream ends
// at once with RESOURCE_EXHAUSTED, which Envoy handles by its failure mode.
// It is the outermost interceptor, and so, shallow on the stream's new
// goroutine, also the place that grows its stack (growStack).
func (l *streamLimit) intercept(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if l.open.Add(1) > l.max {
		l.open.Add(-1)
		l.refused.Add(1)
		return status.Errorf(codes.ResourceExhausted, "too many open streams (grpc.max_streams is %d)", l.max)
	}
	defer l.open.Add(-1)
	growStack(0)
	return handler(srv, ss)
}
