//go:build !linux

package xdsharness

import "os/exec"

func setParentDeathSignal(*exec.Cmd) {}
