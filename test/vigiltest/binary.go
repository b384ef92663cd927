package vigiltest

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-project/vigil/test/vigilbin"
)

// BinaryReadyWithin bounds the wait for a built binary's ready line when
// Binary.ReadyWithin is not set.
const BinaryReadyWithin = 60 * time.Second

// Binary is how to run the built vigil binary (vigilbin.Path): its
// arguments, what it adds to the environment, and the line of its output
// (stdout or stderr) that says it is ready.
type Binary struct {
	Args        []string
	Env         []string       // added to the test process's environment
	Ready       *regexp.Regexp // nil: do not wait
	ReadyWithin time.Duration  // 0: BinaryReadyWithin
}

// StartBinary runs the built binary with args and waits until a line
// matches ready (see Binary.Start).
func StartBinary(tb testing.TB, args []string, ready *regexp.Regexp) *Process {
	tb.Helper()
	return Binary{Args: args, Ready: ready}.Start(tb)
}

// Process is a running built binary.
type Process struct {
	Cmd   *exec.Cmd
	Ready []string // the ready line's submatches (Ready[0] the line's match)

	tb             testing.TB
	mu             sync.Mutex
	stdout, stderr []string
	done           chan struct{} // closed when the process has exited
	err            error         // its exit, once done is closed
	once           sync.Once
}

// Start starts the process, collects its stdout and stderr lines, and
// waits until one matches b.Ready; the test fails with the output so far
// if the process exits first or is not ready within b.ReadyWithin. When
// the test ends it is stopped (Stop).
func (b Binary) Start(tb testing.TB) *Process {
	tb.Helper()
	cmd := exec.Command(vigilbin.Path(tb), b.Args...)
	cmd.Env = append(os.Environ(), b.Env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &Process{Cmd: cmd, tb: tb, done: make(chan struct{})}
	ready := make(chan []string, 1)
	var readers sync.WaitGroup
	read := func(r io.Reader, into *[]string) {
		defer readers.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			*into = append(*into, line)
			p.mu.Unlock()
			if b.Ready != nil {
				if m := b.Ready.FindStringSubmatch(line); m != nil {
					select {
					case ready <- m: // the first line that matches
					default:
					}
				}
			}
		}
		io.Copy(io.Discard, r) // past a line longer than the buffer
	}
	readers.Add(2)
	go read(stdout, &p.stdout)
	go read(stderr, &p.stderr)
	go func() {
		readers.Wait() // Wait closes the pipes: read them to the end first
		p.err = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(p.Stop)
	if b.Ready == nil {
		return p
	}
	within := b.ReadyWithin
	if within == 0 {
		within = BinaryReadyWithin
	}
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case p.Ready = <-ready:
	case <-p.done:
		select {
		case p.Ready = <-ready: // ready, then exited at once
		default:
			tb.Fatalf("%s exited before ready: %v\n%s", b.name(), p.err, p.Output())
		}
	case <-timer.C:
		tb.Fatalf("%s not ready within %s\n%s", b.name(), within, p.Output())
	}
	return p
}

func (b Binary) name() string { return strings.Join(append([]string{"vigil"}, b.Args...), " ") }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Wait waits for the process to exit and returns its exit error; the test
// fails (Fatal) with the output if it has not exited within.
func (p *Process) Wait(within time.Duration) error {
	p.tb.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.err
	case <-timer.C:
		p.tb.Fatalf("vigil did not exit within %s\n%s", within, p.Output())
		return nil
	}
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop ends a process still running with SIGTERM and waits StopWithin for
// it to exit; a failed exit or a process that does not stop (then killed)
// fails the test. It runs when the test ends and may be called more than
// once; a process that exited by itself is left as it is.
func (p *Process) Stop() {
	p.once.Do(func() {
		if p.Exited() {
			return
		}
		p.Signal(syscall.SIGTERM)
		timer := time.NewTimer(StopWithin)
		defer timer.Stop()
		select {
		case <-p.done:
			if p.err != nil {
				p.tb.Errorf("vigil after SIGTERM: %v\n%s", p.err, p.Output())
			}
		case <-timer.C:
			p.Cmd.Process.Kill()
			<-p.done
			p.tb.Errorf("vigil did not stop within %s of SIGTERM\n%s", StopWithin, p.Output())
		}
	})
}

// Stdout is the lines written to stdout so far.
func (p *Process) Stdout() string { return p.lines(&p.stdout) }

// Stderr is the lines written to stderr so far (`vigil serve`'s log).
func (p *Process) Stderr() string { return p.lines(&p.stderr) }

// Output is Stdout, then each line of stderr prefixed "stderr: ".
func (p *Process) Output() string {
	p.mu.Lock()
	all := append([]string(nil), p.stdout...)
	for _, l := range p.stderr {
		all = append(all, "stderr: "+l)
	}
	p.mu.Unlock()
	return strings.Join(all, "\n")
}

func (p *Process) lines(l *[]string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(*l, "\n")
}
