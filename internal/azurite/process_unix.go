//go:build unix

package azurite

import (
	"os"
	"syscall"
)

// killGroup kills the process and everything it started (it leads its own
// process group, see sysProcAttr).
func killGroup(p *os.Process) {
	if syscall.Kill(-p.Pid, syscall.SIGKILL) != nil {
		p.Kill()
	}
}

// interruptGroup asks the process group to shut down gracefully.
func interruptGroup(p *os.Process) {
	if syscall.Kill(-p.Pid, syscall.SIGINT) != nil {
		p.Signal(os.Interrupt)
	}
}

// lockFile takes an exclusive advisory lock on path, waiting for other test
// binaries that hold it, and returns the function that releases it.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
