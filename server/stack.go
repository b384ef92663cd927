package server

import (
	"context"

	"google.golang.org/grpc"
)

// streamStack is the frame growStack puts on a gRPC call's goroutine where
// it starts, so that its stack is 8 KB from there: what an ext_proc stream
// or an ext_authz call needs (less what is on the stack there), so that
// nothing grows it again.
//
// grpc-go serves each call, unary or stream, on a goroutine of its own,
// started with the runtime's starting stack (2 or 4 KB: the average the
// collector last scanned). grpc's own frames down to the first message's
// read are about 3.3 KB, so every call outgrew it there, and the runtime
// copied the stack, adjusting each of the 17–19 frames on it: about 40,000
// instructions per call (callgrind), null server and Vigil alike. Grown
// where Vigil's code first runs on the goroutine, with 6 or 7 frames on
// it, the copy costs a third of that.
const streamStack = 4 << 10

// growStack grows the calling goroutine's stack, if it is small, to hold a
// frame of streamStack bytes below the caller's: to 8 KB from a stream's
// start. It reads byte i of its frame (any i: the compiler cannot tell
// which) so that the frame is kept, and zeroed: a few hundred
// instructions, where a stack copy costs thousands per frame; where the
// stack is large enough already it costs only that.
//
//go:noinline
func growStack(i int) byte {
	var frame [streamStack]byte
	return frame[i&(len(frame)-1)]
}

// GRPCRegistrar registers services on s as Vigil registers ext_authz: each
// unary method grows its goroutine's stack (growStack) before anything
// else. The benchmark's null server, which has Vigil's GRPCOptions (and so
// its stream interceptor, which does the same for streams), registers
// through it too, so that the comparison stays of the handlers alone.
func GRPCRegistrar(s grpc.ServiceRegistrar) grpc.ServiceRegistrar { return growingUnary{s} }

// growingUnary registers services whose unary methods grow their
// goroutine's stack (growStack) before anything else: grpc-go serves a
// unary call as a stream on a goroutine of its own too, and its method
// handler decodes the request, through the same receive path, before it
// calls any unary interceptor, so only the handler is early enough. The
// copy of the service's description is the original's but for the
// handlers, each wrapped.
type growingUnary struct{ grpc.ServiceRegistrar }

func (r growingUnary) RegisterService(desc *grpc.ServiceDesc, impl any) {
	d := *desc
	d.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, m := range desc.Methods {
		h := m.Handler
		m.Handler = func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			growStack(0)
			return h(srv, ctx, dec, in)
		}
		d.Methods[i] = m
	}
	r.ServiceRegistrar.RegisterService(&d, impl)
}
