package sink

import "sync/atomic"

// phase is a step of a Sink's life. It only moves forward.
type phase int32

const (
	// phaseOpen: New has returned; records are accepted.
	phaseOpen phase = iota
	// phaseClosing: Close has begun. Records are refused (ErrClosed,
	// counted in Stats.Rejected) and the spool takes no more; Close
	// delivers what is buffered (and what the replay of an earlier run's
	// spool still feeds in).
	phaseClosing
	// phaseStopping: Close has delivered what it could (or its context
	// ended). The replay stops feeding the buffer, shard announcements
	// stop, and the goroutines exit.
	phaseStopping
	// phaseClosed: Close has returned; a later Close returns nil.
	phaseClosed
)

// lifecycle is a Sink's one state. Safe for concurrent use: readers see
// the phase without a lock; Close, the only writer, advances it (and then
// wakes the goroutines waiting in the buffer, see buffer.wake).
type lifecycle struct{ p atomic.Int32 }

// atLeast reports whether the Sink has reached phase p.
func (l *lifecycle) atLeast(p phase) bool { return phase(l.p.Load()) >= p }

// advance moves the Sink to phase p, unless it is there or beyond.
func (l *lifecycle) advance(p phase) {
	for {
		cur := l.p.Load()
		if phase(cur) >= p || l.p.CompareAndSwap(cur, int32(p)) {
			return
		}
	}
}
