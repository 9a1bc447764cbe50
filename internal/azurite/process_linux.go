package azurite

import "syscall"

// sysProcAttr puts Azurite in its own process group (so it can be killed with
// everything it started, and a terminal's Ctrl-C reaches only the test
// binary, which then stops it) and asks the kernel to kill it if the test
// binary dies without cleaning up (a -timeout panic, SIGKILL).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
