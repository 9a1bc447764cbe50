//go:build !unix

package azurite

import (
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(p *os.Process) { p.Kill() }

func interruptGroup(p *os.Process) { p.Kill() }

func lockFile(string) (func(), error) { return func() {}, nil }
