package server

// streamStack is the stack a gRPC stream's goroutine is grown to where it
// starts (growStack): what grpc-go's receive path and Vigil's handlers
// need, less what is on it there.
//
// grpc-go serves each stream on a goroutine of its own, started with the
// runtime's starting stack (2 or 4 KB: the average the collector last
// scanned). grpc's receive path under the handler alone is about 3.3 KB
// deep, so every stream's first Recv outgrew it, and the runtime copied
// the stack, adjusting each of the ~19 frames on it: about 40,000
// instructions per stream (callgrind), null server and Vigil alike. Grown
// at the outermost interceptor, with 7 frames on the stack, the copy costs
// a third of that, and the stream's stack is 8 KB either way: what the
// ext_proc and ext_authz calls need, so nothing grows it again.
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
