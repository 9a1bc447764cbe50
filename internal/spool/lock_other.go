//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd || windows)

package spool

import (
	"errors"
	"fmt"
	"os"
)

// lockDir fails: this platform has no lock the spool knows to release
// reliably when a process dies, and sharing a spool would corrupt it.
func lockDir(dir string) (*os.File, error) {
	return nil, fmt.Errorf("spool: lock %s: %w", dir, errors.ErrUnsupported)
}

func syncDir(string) error { return nil }
