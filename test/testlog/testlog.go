// Package testlog holds what tests use to read what a server logs.
package testlog

import (
	"bytes"
	"sync"
)

// Buffer collects log output written from several goroutines; tests read
// it while the writers go on.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
