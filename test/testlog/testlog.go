// Package testlog holds what tests use to read what a server logs, and the
// check that every line it logs is well formed.
package testlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"unicode/utf8"
)

// Buffer collects log output written from several goroutines; tests read
// it while the writers go on.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// New returns a Buffer whose every line is checked when the test ends
// (Check): make it before the server that writes to it, so that the check
// runs after the server has stopped.
func New(tb testing.TB) *Buffer {
	b := &Buffer{}
	tb.Cleanup(func() {
		if err := b.Check(); err != nil {
			tb.Error(err)
		}
	})
	return b
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

// Check reports every line that is not a well-formed JSON object with
// unique keys (CheckLine), and output that does not end a line.
func (b *Buffer) Check() error {
	text := b.String()
	var errs []error
	for n := 1; text != ""; n++ {
		line, rest, ok := bytes.Cut([]byte(text), []byte("\n"))
		text = string(rest)
		if !ok {
			errs = append(errs, fmt.Errorf("log line %d is not ended by a newline: %s", n, line))
		}
		if err := CheckLine(line); err != nil {
			errs = append(errs, fmt.Errorf("log line %d: %w\n\t%s", n, err, line))
		}
	}
	return errors.Join(errs...)
}

// CheckLine reports whether line is one JSON object in UTF-8 in which no
// object, at any depth, has a key twice: log processors keep one of the two
// values, or reject the document.
func CheckLine(line []byte) error {
	if !utf8.Valid(line) {
		return errors.New("not UTF-8")
	}
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	tok, err := d.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("not a JSON object: starts with %v", tok)
	}
	if err := object(d, ""); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("data after the object")
	}
	return nil
}

// object walks the members of an object whose '{' was read, at path.
func object(d *json.Decoder, path string) error {
	seen := map[string]bool{}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		key := tok.(string) // the decoder only gives strings as keys
		if seen[key] {
			return fmt.Errorf("key %q twice in %s", key, or(path, "the line"))
		}
		seen[key] = true
		if err := value(d, path+"."+key); err != nil {
			return err
		}
	}
	_, err := d.Token() // '}'
	return err
}

// value walks one value at path.
func value(d *json.Decoder, path string) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return object(d, path)
	case json.Delim('['):
		for i := 0; d.More(); i++ {
			if err := value(d, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		_, err = d.Token() // ']'
		return err
	}
	return nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
