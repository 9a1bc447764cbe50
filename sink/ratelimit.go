package sink

import (
	"sync"
	"time"
)

// rateLimit lets at most one report of each kind through per interval and
// counts the ones it holds back, to be mentioned with the next that goes
// through. It serves both the Sink's reports (one kind per cause:
// "transient", "denied", "drop", ...) and the default ErrorHandler (one
// kind: every error). Safe for concurrent use; the zero value is not
// usable (see newRateLimit).
type rateLimit struct {
	every time.Duration
	now   func() time.Time

	mu    sync.Mutex
	kinds map[string]*rateKind
}

type rateKind struct {
	last       time.Time
	suppressed int
}

// newRateLimit returns a rateLimit of one report per kind per every.
func newRateLimit(every time.Duration) *rateLimit {
	return &rateLimit{every: every, now: time.Now, kinds: map[string]*rateKind{}}
}

// allow reports whether a report of kind may go now and, if so, how many
// of that kind were held back since the last one that went.
func (l *rateLimit) allow(kind string) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	k := l.kinds[kind]
	if k == nil {
		k = &rateKind{}
		l.kinds[kind] = k
	} else if now.Sub(k.last) < l.every {
		k.suppressed++
		return false, 0
	}
	k.last = now
	suppressed, k.suppressed = k.suppressed, 0
	return true, suppressed
}
