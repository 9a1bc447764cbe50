package sink

import (
	"context"
	"errors"
	"fmt"
	"unsafe"

	"github.com/tablelog/tablelog/internal/spool"
)

// The durable spool (Options.SpoolDir), built on internal/spool.
//
// Every record is appended to the spool on the writing goroutine, before
// Write or Handle returns, and carries its Ticket through the buffer and the
// writer; finish acknowledges it once it is stored or given up on (but not
// when Close abandons it at its deadline: it then stays for the next run).
//
// When the memory budget is full, a spooled record is not copied into
// memory: only its Ticket waits, in the buffer's spill queue (FIFO), and the dispatcher
// reads it back from disk when there is room again. Once the spill queue
// is not empty, new spooled records join it too, so nobody overtakes.
// Spooled records in memory take at most half of BufferBytes; each entry
// of the spill queue counts spilledCost bytes against BufferBytes.
//
// New over a directory with records of an earlier run starts a goroutine
// that feeds them (spool.Pending) into the buffer, waiting for room in it
// as a blocked writer would.

// ErrSpoolUnavailable is wrapped by the error New returns when
// Options.SpoolDir cannot be used. The Sink returned with it works, without
// a spool: records are held in memory only, under the BufferBytes and
// Overflow policy.
var ErrSpoolUnavailable = errors.New("sink: spool unavailable")

// spoolSegmentBytes is the size of the spool's segment files. After a crash
// the stored records that share a segment with unstored ones are sent again
// (and answered "already exists"); smaller segments mean fewer of those but
// more files and fsyncs.
const spoolSegmentBytes = 4 << 20

// spilled is a record kept on disk only: its Ticket, its place in the
// sequence (for Flush) and its entity size (for the memory budget).
type spilled struct {
	tk  spool.Ticket
	seq uint64
	n   uint32
}

// spilledCost is what BufferBytes counts for a record waiting on disk: its
// entry in the spill queue (40 bytes on 64-bit platforms). Counted, the
// entries of a long outage cannot grow past the memory budget.
const spilledCost = int(unsafe.Sizeof(spilled{}))

// spillBlockLen is the number of entries in one block of a spillQueue.
const spillBlockLen = 256

// spillQueue is a FIFO of spilled records, in blocks of spillBlockLen
// entries: it holds the memory of its entries plus at most three blocks
// (the head's, the tail's and one spare, about 30 KiB), and gives blocks
// back as it drains (a slice grown by doubling would keep up to twice its
// longest length for good).
type spillQueue struct {
	blocks [][]spilled // blocks[0][head:] is the front; only the last block is not full
	head   int
	n      int
	spare  []spilled
}

func (q *spillQueue) len() int       { return q.n }
func (q *spillQueue) peek() *spilled { return &q.blocks[0][q.head] }

func (q *spillQueue) push(x spilled) {
	if k := len(q.blocks); k == 0 || len(q.blocks[k-1]) == spillBlockLen {
		b := q.spare
		q.spare = nil
		if b == nil {
			b = make([]spilled, 0, spillBlockLen)
		}
		q.blocks = append(q.blocks, b)
	}
	k := len(q.blocks) - 1
	q.blocks[k] = append(q.blocks[k], x)
	q.n++
}

func (q *spillQueue) pop() (x spilled) {
	x = q.blocks[0][q.head]
	q.head++
	q.n--
	if q.head == len(q.blocks[0]) { // the head block is used up
		b := q.blocks[0]
		q.blocks[0] = nil
		q.blocks = q.blocks[1:]
		q.head = 0
		if q.spare == nil {
			clear(b)
			q.spare = b[:0]
		}
		if len(q.blocks) == 0 {
			q.blocks = nil
		}
	}
	return x
}

// all returns the entries, oldest first.
func (q *spillQueue) all() []spilled {
	out := make([]spilled, 0, q.n)
	for i, b := range q.blocks {
		if i == 0 {
			b = b[q.head:]
		}
		out = append(out, b...)
	}
	return out
}

func (q *spillQueue) reset() { *q = spillQueue{} }

// openSpool opens Options.SpoolDir. On failure the Sink runs without a
// spool and New returns the error.
func (s *Sink) openSpool() error {
	sync := spool.SyncInterval
	if s.opts.SpoolSync == SpoolSyncEveryRecord {
		sync = spool.SyncEveryRecord
	}
	sp, err := spool.Open(spool.Options{
		Dir:          s.opts.SpoolDir,
		MaxBytes:     s.opts.MaxSpoolBytes,
		SegmentBytes: spoolSegmentBytes,
		Sync:         sync,
	})
	if err != nil {
		s.c.spoolErrors.Add(1)
		return fmt.Errorf("%w, records are kept in memory only (Options.BufferBytes, Overflow: %v): %w",
			ErrSpoolUnavailable, s.opts.Overflow, err)
	}
	s.sp = sp
	st := sp.Stats()
	s.spoolCorrupt = uint64(st.Corrupt)
	s.spoolCorruptBytes = uint64(st.CorruptBytes)
	if st.Corrupt > 0 {
		s.opts.ErrorHandler(fmt.Errorf("sink: the spool %s held %d damaged regions (%d bytes: a record torn by a crash, a damaged disk), skipped: the records in them are lost; the valid records around them are sent",
			s.opts.SpoolDir, st.Corrupt, st.CorruptBytes))
	}
	if st.Pending > 0 {
		s.replayDone = make(chan struct{}) // New starts s.replay
	}
	return nil
}

// spoolAppend appends a record to the spool. ok is false when the spool
// refused it; the caller then applies the memory policy.
func (s *Sink) spoolAppend(pk, rk string, entity []byte) (spool.Ticket, bool) {
	if s.life.atLeast(phaseClosing) {
		return spool.Ticket{}, false // the buffer refuses it
	}
	tk, err := s.sp.Append(spool.Record{PartitionKey: pk, RowKey: rk, Entity: entity})
	switch {
	case err == nil:
		s.c.spooled.Add(1)
		return tk, true
	case errors.Is(err, spool.ErrClosed):
		// Only after Close has finished: the buffer refuses it too.
	case errors.Is(err, spool.ErrFull):
		s.c.spoolFull.Add(1)
		s.reportLimited("spool-full", fmt.Errorf("sink: spool full (Options.MaxSpoolBytes = %d), applying Overflow (%v) to new records: %w",
			s.opts.MaxSpoolBytes, s.opts.Overflow, err))
	default:
		s.c.spoolErrors.Add(1)
		s.reportLimited("spool", fmt.Errorf("sink: cannot spool a record, keeping it in memory only (Options.BufferBytes, Overflow: %v): %w",
			s.opts.Overflow, err))
	}
	return spool.Ticket{}, false
}

// ack acknowledges the spooled ones among recs, which are stored (ok) or
// given up on. Records abandoned by Close (cause is context.Canceled) stay
// in the spool for the next run.
func (s *Sink) ack(recs []record, ok bool, cause error) {
	if !ok && errors.Is(cause, context.Canceled) {
		return
	}
	for i := range recs {
		tk := recs[i].tk
		if tk == (spool.Ticket{}) {
			continue
		}
		if err := s.sp.Ack(tk); err != nil && !errors.Is(err, spool.ErrClosed) {
			// The record is acknowledged; its segment file could not be
			// deleted, so the next run sends it again (harmlessly).
			s.c.spoolErrors.Add(1)
			s.reportLimited("spool-ack", fmt.Errorf("sink: spool: %w", err))
		}
	}
}

// refill moves spilled records back into the dispatcher's queue, reading
// them from disk, as far as the memory budget allows. It reports whether
// spilled records remain.
func (d *dispatcher) refill() bool {
	s := d.s
	if s.sp == nil {
		return false
	}
	var more bool
	d.take, more = s.buf.takeSpilled(d.take[:0])
	for _, h := range d.take {
		r, err := s.sp.Read(h.tk)
		if err == nil && len(r.Entity) != int(h.n) {
			err = fmt.Errorf("entity of %d bytes, %d expected", len(r.Entity), h.n)
		}
		if err != nil {
			// Unreadable (a disk error, or corrupted since it was
			// written): give it up and report it.
			s.buf.unspillFailed(int(h.n))
			err = fmt.Errorf("sink: a record kept in the spool cannot be read back, giving it up: %w", err)
			s.finish([]record{{tk: h.tk, seq: h.seq}}, false, err)
			s.opts.ErrorHandler(err)
			continue
		}
		d.queue = append(d.queue, record{pk: r.PartitionKey, data: r.Entity, seq: h.seq, tk: h.tk})
	}
	clear(d.take)
	return more
}

// replay feeds the records an earlier run left in the spool into the
// buffer, waiting for room in it as a blocked writer would, until Close
// stops it.
func (s *Sink) replay() {
	defer close(s.replayDone)
	err := s.sp.Pending(func(tk spool.Ticket, r spool.Record) bool {
		return s.buf.putReplayed(r.PartitionKey, tk, r.Entity)
	})
	if err != nil && !errors.Is(err, spool.ErrClosed) {
		s.c.spoolErrors.Add(1)
		s.opts.ErrorHandler(fmt.Errorf("sink: replaying the spool of an earlier run stopped: %w (the rest is sent by the next Sink opened on it)", err))
	}
}
