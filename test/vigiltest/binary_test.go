package vigiltest_test

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/test/vigilbin"
	"github.com/vigil-project/vigil/test/vigiltest"
)

func TestMain(m *testing.M) { vigilbin.Main(m) }

var servingRE = regexp.MustCompile(`"grpc_addr":"([^"]+)","admin_addr":"([^"]+)".*"message":"vigil serving"`)

// TestStartBinaryServesAndStops: the built binary is ready with the ready
// line's addresses, answers on them, its log is collected, and Stop ends it
// with SIGTERM and a clean exit.
func TestStartBinaryServesAndStops(t *testing.T) {
	p := vigiltest.StartBinary(t, []string{"serve", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--data-dir", t.TempDir(), "--drain-delay", "0s"}, servingRE)
	if len(p.Ready) != 3 || !strings.HasPrefix(p.Ready[2], "127.0.0.1:") {
		t.Fatalf("ready submatches %q", p.Ready)
	}
	if err := adminapi.NewClient(p.Ready[2], "").Ready(context.Background()); err != nil {
		t.Fatalf("readyz at the ready line's admin address: %v", err)
	}
	if !strings.Contains(p.Stderr(), "vigil serving") || !strings.Contains(p.Output(), "stderr: ") {
		t.Errorf("the log was not collected:\nstderr: %s\noutput: %s", p.Stderr(), p.Output())
	}
	p.Stop()
	if !p.Exited() || !strings.Contains(p.Stderr(), "vigil stopped") {
		t.Errorf("Stop did not end it cleanly:\n%s", p.Stderr())
	}
	p.Stop() // a second Stop, and the one at cleanup, do nothing
}

// TestStartBinaryFailsWithTheOutputWhenItExitsFirst: a binary that exits
// before its ready line fails the test at once, with what it wrote.
func TestStartBinaryFailsWithTheOutputWhenItExitsFirst(t *testing.T) {
	ft := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		vigiltest.StartBinary(ft, []string{"serve", "--config", filepath.Join(t.TempDir(), "missing.yaml")}, servingRE)
	}()
	<-done
	if !strings.Contains(ft.fatal, "exited before ready") || !strings.Contains(ft.fatal, "missing.yaml") {
		t.Errorf("failure %q, want it to say the binary exited and show its output", ft.fatal)
	}
}

// fatalTB records a Fatal and ends the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	fatal string
}

func (f *fatalTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
