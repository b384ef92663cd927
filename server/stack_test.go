package server

import (
	"testing"
	"unsafe"
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
