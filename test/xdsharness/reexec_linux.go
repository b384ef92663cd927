//go:build linux

package xdsharness

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal kills the re-executed child if the parent dies (for
// example SIGKILLed by go test's own timeout), so no orphan keeps running.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
