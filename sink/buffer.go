package sink

import (
	"errors"

	"github.com/tablelog/tablelog/internal/spool"
)

// The buffer: records enqueued by logging goroutines, waiting for the
// dispatcher (pending) or in a transaction being sent or retried. Its size
// is the sum of their entity bytes (plus recordOverhead each), bounded by
// Options.BufferBytes. With a spool, records that do not fit wait on disk
// (Sink.spill; see spool.go) and count in bufRecs, and in bufBytes with
// spilledCost each (their entry in the spill queue). All of it is guarded
// by Sink.mu.

// record is one encoded entity waiting to be stored.
type record struct {
	pk       string
	data     []byte // in slab, or its own allocation when slab is nil
	seq      uint64
	slab     *slab
	tk       spool.Ticket // where the record is spooled; zero if it is not
	replayed bool         // spooled by an earlier run: it may be stored already
}

// slab is a block that queued entities are copied into, so enqueueing does
// not allocate per record. It is reused once every record in it is
// finished.
type slab struct {
	buf  []byte
	refs int // records in it, plus one while it is the current slab
}

const (
	slabSize      = 256 << 10
	maxFreeSlabs  = 16 // kept for reuse; more are left to the garbage collector
	maxSlabRecord = slabSize / 8
)

// recordOverhead is what BufferBytes counts for each buffered record
// besides its entity bytes: its bookkeeping (the record header in the
// pending queue, the dispatcher's queue and a transaction, with slice
// growth at its worst): about 500 bytes, measured by the reliability
// suite with 190-byte records during an outage. Without it a buffer of small
// records would hold far more memory than BufferBytes.
const recordOverhead = 512

// waiter is a Flush waiting for the records enqueued before it.
type waiter struct {
	upto      uint64 // records with seq <= upto
	remaining int
	failed    int
	done      chan struct{}
}

// enqueue queues a copy of entity under partition pk (rk is its RowKey),
// appending it to the spool first when there is one. It blocks, drops or
// refuses according to Options.Overflow and Close; only a refusal is an
// error. A spooled record that does not fit in memory waits on disk, and
// blocks or is dropped only when BufferBytes has no room left even for its
// entry in the spill queue (spilledCost).
func (s *Sink) enqueue(pk, rk string, entity []byte) error {
	n := len(entity)
	cost := n + recordOverhead
	var (
		tk      spool.Ticket
		spooled bool
	)
	if s.sp != nil {
		tk, spooled = s.spoolAppend(pk, rk, entity)
	}
	need := cost // room the record needs at the least
	if spooled {
		need = spilledCost // its entry, waiting on disk
	}
	s.mu.Lock()
	waited := false
	for !s.closed && s.bufBytes > 0 && s.bufBytes+need > s.opts.BufferBytes {
		if s.opts.Overflow == DropNewest {
			s.c.dropped.Add(1)
			s.mu.Unlock()
			if spooled {
				s.ack([]record{{tk: tk}}, true, nil) // dropped: not for the next run either
			}
			s.signal(s.flushNow)
			s.reportLimited("drop", errors.New("sink: buffer full (Options.BufferBytes); dropping records (Overflow: DropNewest)"))
			return nil
		}
		if !waited {
			waited = true
			s.c.blocked.Add(1)
		}
		s.blocked++
		s.signal(s.flushNow)
		s.space.Wait()
		s.blocked--
	}
	if s.closed {
		s.c.rejected.Add(1)
		s.mu.Unlock()
		if spooled {
			s.ack([]record{{tk: tk}}, true, nil) // refused: not for the next run either
		}
		s.reportLimited("closed", ErrClosed)
		return ErrClosed
	}
	s.seq++
	s.bufRecs++
	s.c.enqueued.Add(1)
	if spooled && (s.spill.len() > 0 || !s.memFitsLocked(cost)) {
		// The buffer is full (or others already wait on disk): keep only
		// the Ticket; the dispatcher reads the record back in its turn.
		first := s.spill.len() == 0
		s.spill.push(spilled{tk: tk, seq: s.seq, n: uint32(n)})
		s.bufBytes += spilledCost
		s.c.spilled.Add(1)
		s.mu.Unlock()
		if first {
			s.signal(s.flushNow)
		}
		return nil
	}
	r := record{pk: pk, seq: s.seq, tk: tk}
	s.copyEntity(&r, entity)
	s.pending = append(s.pending, r)
	s.pendingBytes += n
	s.bufBytes += cost
	kick := s.kickLocked()
	s.mu.Unlock()
	if kick {
		s.signal(s.kick)
	}
	return nil
}

// kickLocked reports whether a full transaction may be waiting, counting
// those the dispatcher carries over (a partial transaction it kept) with
// the new ones, and the dispatcher is to be woken for it (it is not
// polling), and if so marks the dispatcher kicked.
func (s *Sink) kickLocked() bool {
	kick := !s.kicked && !s.polling && len(s.pending) > 0 &&
		(len(s.pending)+s.carried >= s.opts.BatchSize || s.pendingBytes+s.carriedBytes >= maxPayload/2)
	if kick {
		s.kicked = true
	}
	return kick
}

// copyEntity sets r.data to a copy of entity, in the current slab when it
// is small.
func (s *Sink) copyEntity(r *record, entity []byte) {
	n := len(entity)
	if n > maxSlabRecord {
		r.data = append([]byte(nil), entity...)
		return
	}
	cur := s.slab
	if cur == nil || len(cur.buf)+n > cap(cur.buf) {
		if cur != nil {
			s.release(cur)
		}
		if k := len(s.freeSlabs); k > 0 {
			cur = s.freeSlabs[k-1]
			s.freeSlabs = s.freeSlabs[:k-1]
		} else {
			cur = &slab{buf: make([]byte, 0, slabSize)}
		}
		cur.refs = 1
		s.slab = cur
	}
	start := len(cur.buf)
	cur.buf = append(cur.buf, entity...)
	cur.refs++
	r.data = cur.buf[start:len(cur.buf):len(cur.buf)]
	r.slab = cur
}

// release drops one reference to sl and recycles it when none is left.
func (s *Sink) release(sl *slab) {
	sl.refs--
	if sl.refs == 0 && len(s.freeSlabs) < maxFreeSlabs {
		sl.buf = sl.buf[:0]
		s.freeSlabs = append(s.freeSlabs, sl)
	}
}

// signal does a non-blocking send on a 1-buffered channel.
func (s *Sink) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// finish marks recs as stored (ok) or given up on, releases their buffer
// space and wakes what waits for them. Spooled records are acknowledged,
// except those abandoned by Close (cause is context.Canceled), which stay
// in the spool. recs must not be used afterwards: their bytes are reused.
func (s *Sink) finish(recs []record, ok bool, cause error) {
	if len(recs) == 0 {
		return
	}
	if s.sp != nil {
		s.ack(recs, ok, cause)
	}
	s.mu.Lock()
	if ok {
		s.c.written.Add(uint64(len(recs)))
	} else {
		s.c.failedRecords.Add(uint64(len(recs)))
		if cause != nil {
			s.lastErr = cause
		}
	}
	for i := range recs {
		r := &recs[i]
		s.bufBytes -= len(r.data) + recordOverhead
		if r.slab != nil {
			s.release(r.slab)
		}
		r.data, r.slab = nil, nil
		covered := false
		for _, w := range s.waiters {
			if r.seq <= w.upto {
				covered = true
				w.remaining--
				if !ok {
					w.failed++
				}
			}
		}
		if !ok && !covered {
			s.unreported++ // for the next Flush or Close to report
		}
	}
	s.bufRecs -= len(recs)
	for i := 0; i < len(s.waiters); {
		w := s.waiters[i]
		if w.remaining <= 0 {
			close(w.done)
			s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
			continue
		}
		i++
	}
	if s.blocked > 0 {
		s.space.Broadcast()
	}
	refill := s.spill.len() > 0
	s.mu.Unlock()
	if refill {
		s.signal(s.kick) // the dispatcher reads spilled records back
	}
}

func (s *Sink) removeWaiter(w *waiter) {
	for i, x := range s.waiters {
		if x == w {
			s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
			return
		}
	}
}
