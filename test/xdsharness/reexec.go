package xdsharness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// EnvVar must be "true" when the process starts for grpc-go to register its
// ext_proc client filter (google.golang.org/grpc/internal/envconfig reads it
// in an init function; os.Setenv in TestMain is too late).
const EnvVar = "GRPC_EXPERIMENTAL_XDS_EXT_PROC_ON_CLIENT"

// reexecMarker is set in the child's environment to stop a re-exec loop.
const reexecMarker = "VIGIL_XDSHARNESS_REEXEC"

// enabledAtStart is evaluated during package initialisation, after grpc-go's
// envconfig (an import) has read the same variable, with the same rule
// (case-insensitive "true").
var enabledAtStart = strings.EqualFold(os.Getenv(EnvVar), "true")

const envMissingMessage = EnvVar + "=true was not in the environment when the test binary started, " +
	"so grpc-go did not register its ext_proc client filter (the LDS resource would be NACKed with " +
	`"no filter implementation found"). Add "func TestMain(m *testing.M) { xdsharness.Main(m) }" ` +
	"to the test package, or export " + EnvVar + "=true before running go test"

// Enabled reports whether grpc-go's ext_proc client filter is registered in
// this process.
func Enabled() bool { return enabledAtStart }

// RequireEnv fails t (it does not skip) when the filter is not enabled.
func RequireEnv(t testing.TB) {
	t.Helper()
	if !Enabled() {
		t.Fatal("xdsharness: " + envMissingMessage)
	}
}

// Main is a complete TestMain: ReexecIfNeeded, then os.Exit(m.Run()).
//
//	func TestMain(m *testing.M) { xdsharness.Main(m) }
func Main(m *testing.M) {
	ReexecIfNeeded(m)
	os.Exit(m.Run())
}

// ReexecIfNeeded returns immediately when EnvVar is already "true". Otherwise
// it runs the test binary again (same executable, same arguments, stdin,
// stdout and stderr) with EnvVar=true added to the environment, forwards
// SIGINT/SIGTERM/SIGQUIT to it, and exits with the child's exit status; it
// never returns in that case. Call it first thing in TestMain, before
// m.Run, so the parent runs no test and writes no profile or coverage.
func ReexecIfNeeded(m *testing.M) {
	_ = m // taken so it can only be called from TestMain
	if Enabled() {
		return
	}
	if os.Getenv(reexecMarker) != "" {
		fmt.Fprintf(os.Stderr, "xdsharness: re-executed with %s=true but it is still not enabled; giving up\n", EnvVar)
		os.Exit(2)
	}
	os.Exit(reexec())
}

func reexec() int {
	exe, err := os.Executable()
	if err != nil || exe == "" {
		exe = os.Args[0]
	}
	cmd := exec.Command(exe)
	cmd.Args = append([]string(nil), os.Args...) // keep argv[0] as given
	env := make([]string, 0, len(os.Environ())+2)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, EnvVar+"=") || strings.HasPrefix(kv, reexecMarker+"=") {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, EnvVar+"=true", reexecMarker+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	setParentDeathSignal(cmd)

	// Pdeathsig fires when the thread that started the child exits; keep
	// this goroutine on its thread until we os.Exit.
	runtime.LockOSThread()

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "xdsharness: re-exec %s with %s=true: %v\n", exe, EnvVar, err)
		return 2
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	signal.Stop(sigs)
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if code := ee.ExitCode(); code >= 0 {
			return code
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return 1
	}
	fmt.Fprintf(os.Stderr, "xdsharness: waiting for re-executed test binary: %v\n", err)
	return 2
}
