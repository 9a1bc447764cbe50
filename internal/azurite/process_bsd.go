//go:build unix && !linux

package azurite

import "syscall"

// sysProcAttr puts Azurite in its own process group, so it can be killed with
// everything it started.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
