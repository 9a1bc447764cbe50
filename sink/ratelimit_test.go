package sink

import (
	"testing"
	"time"
)

// TestRateLimit: one report per kind per interval; the ones held back are
// counted and handed to the next that goes; kinds are independent.
func TestRateLimit(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newRateLimit(time.Second)
	l.now = func() time.Time { return now }
	check := func(kind string, wantOK bool, wantSuppressed int) {
		t.Helper()
		if ok, n := l.allow(kind); ok != wantOK || n != wantSuppressed {
			t.Fatalf("allow(%q) at %v = %v, %d; want %v, %d", kind, now.Unix(), ok, n, wantOK, wantSuppressed)
		}
	}
	check("a", true, 0)
	check("a", false, 0)
	check("a", false, 0)
	check("b", true, 0) // another kind
	now = now.Add(999 * time.Millisecond)
	check("a", false, 0)
	now = now.Add(time.Millisecond)
	check("a", true, 3) // a second after the last that went: the 3 held back
	check("a", false, 0)
	now = now.Add(5 * time.Second)
	check("a", true, 1)
	check("b", true, 0)
}
