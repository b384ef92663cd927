package server

import (
	"context"
	"net"
	"testing"
	"time"
	"unsafe"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// stackPointer is the address of a local of its frame: the same call depth
// reads another address once the runtime has moved the goroutine's stack
// to grow it.
//
//go:noinline
func stackPointer() uintptr {
	var x byte
	return uintptr(unsafe.Pointer(&x))
}

// deepCall needs about as much stack below its caller as a stream's first
// Recv does below the stream interceptor.
//
//go:noinline
func deepCall(i int) byte {
	var frame [3 << 10]byte
	return frame[i&(len(frame)-1)]
}

// moves reports, on a new goroutine, whether growStack (if grow) and then
// deepCall moved its stack at each.
func moves(grow bool) (atGrow, atDeep bool) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		a := stackPointer()
		if grow {
			growStack(0)
		}
		b := stackPointer()
		deepCall(0)
		atGrow, atDeep = a != b, b != stackPointer()
	}()
	<-done
	return atGrow, atDeep
}

// TestGrowStack: growStack grows a new goroutine's stack at once (the
// compiler drops an array that nothing reads: its frame must be kept), so
// that the call chain of a stream's first Recv does not grow it again.
func TestGrowStack(t *testing.T) {
	if _, atDeep := moves(false); !atDeep {
		t.Skip("the runtime's starting stack holds the call already: nothing to grow")
	}
	atGrow, atDeep := moves(true)
	if !atGrow {
		t.Error("growStack left a new goroutine's stack as it was")
	}
	if atDeep {
		t.Error("a call as deep as a stream's first Recv grew the stack again after growStack")
	}
}

// echoService's unary method answers its request's value, with " moved"
// if decoding the request moved its goroutine's stack (grew it).
var echoService = grpc.ServiceDesc{
	ServiceName: "vigil.test.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			before := stackPointer()
			if err := dec(in); err != nil {
				return nil, err
			}
			if stackPointer() != before {
				in.Value += " moved"
			}
			h := func(_ context.Context, req any) (any, error) { return req, nil }
			if interceptor == nil {
				return h(ctx, in)
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/vigil.test.Echo/Echo"}, h)
		},
	}},
}

// TestGRPCRegistrar: a unary method registered through GRPCRegistrar is
// the same method (its request, its reply, the unary interceptor around
// it), on a goroutine whose stack was grown before the request was read:
// reading it grows it no more.
func TestGRPCRegistrar(t *testing.T) {
	intercepted := 0
	g := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		intercepted++
		return h(ctx, req)
	}))
	GRPCRegistrar(g).RegisterService(&echoService, struct{}{})
	if _, ok := g.GetServiceInfo()["vigil.test.Echo"]; !ok {
		t.Fatalf("services: %v", g.GetServiceInfo())
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	defer g.Stop()
	conn := dialGRPC(t, lis.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 3 {
		var out wrapperspb.StringValue
		if err := conn.Invoke(ctx, "/vigil.test.Echo/Echo", wrapperspb.String("ping"), &out); err != nil {
			t.Fatal(err)
		}
		if out.GetValue() != "ping" {
			t.Errorf("reply %q, want \"ping\" (\" moved\": reading the request grew the stack)", out.GetValue())
		}
	}
	if intercepted != 3 {
		t.Errorf("the unary interceptor ran %d times for 3 calls", intercepted)
	}
}
