package spool

import (
	"bytes"
	"fmt"
	"os"
)

// Pending calls fn, oldest first, for each record that Open found in the
// segments of earlier runs and that is not acknowledged when Pending reaches
// it. It stops when fn returns false. fn may Ack the record (or any other)
// and may block; the Spool is not locked while fn runs, so Appends and Acks
// proceed meanwhile. The Record's fields are fresh copies that fn may keep.
//
// Records appended by this Spool are not included. Pending may be called
// again, for instance after a failed send, and again yields whatever is
// still unacknowledged. It returns ErrClosed when the Spool is closed
// meanwhile and the error of a file that cannot be read. Frames are
// validated again as they are read, so corruption that appeared after Open
// is skipped, never yielded.
func (s *Spool) Pending(fn func(Ticket, Record) bool) error {
	for _, id := range s.replay {
		g, err := s.acquire(id)
		if err != nil {
			return err
		}
		if g == nil {
			continue
		}
		more, err := s.replaySegment(g, fn)
		if rerr := s.release(g); err == nil {
			err = rerr
		}
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// acquire registers a reader of segment id, which delays its deletion. It
// returns nil when the segment is gone or has nothing left to read.
func (s *Spool) acquire(id uint64) (*segment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("spool %s: %w", s.dir, ErrClosed)
	}
	g := s.segs[id]
	if g == nil || g.live == 0 {
		return nil, nil
	}
	g.readers++
	return g, nil
}

// release ends a reader of g, deleting its file if it was freed meanwhile.
func (s *Spool) release(g *segment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g.readers--
	if g.readers == 0 && g.live == 0 && g != s.active && s.segs[g.id] == g {
		return s.removeLocked(g)
	}
	return nil
}

func (s *Spool) replaySegment(g *segment, fn func(Ticket, Record) bool) (bool, error) {
	f, err := os.Open(segPath(s.dir, g.id))
	if err != nil {
		return false, fmt.Errorf("spool: replay: %w", err)
	}
	defer f.Close()
	more := true
	_, err = scan(f, g.size, func(idx int, off int64, n int, payload []byte) (bool, error) {
		if idx >= g.count {
			return false, nil // the file changed since Open; yield nothing unknown
		}
		s.mu.Lock()
		closed, acked := s.closed, g.isAcked(uint32(idx))
		s.mu.Unlock()
		if closed {
			return false, fmt.Errorf("spool %s: %w", s.dir, ErrClosed)
		}
		if acked {
			return true, nil
		}
		r, err := decodePayload(bytes.Clone(payload))
		if err != nil { // scan validated it
			return true, nil
		}
		more = fn(Ticket{seg: g.id, off: off, idx: uint32(idx), n: uint32(n)}, r)
		return more, nil
	})
	if err != nil {
		return false, fmt.Errorf("spool: replay %s: %w", segPath(s.dir, g.id), err)
	}
	return more, nil
}

// Read returns the record of t, re-read from disk and checked against its
// CRC-32C: a spill path can hand records to the disk and read them back
// later, keeping only their Tickets in memory. It works for records of this
// run and replayed ones alike, and fails with ErrNotFound when the record is
// acknowledged or t is not from this Spool, ErrCorrupt when the frame fails
// its check, ErrClosed after Close, or the file's I/O error. The Record's
// fields are fresh copies.
func (s *Spool) Read(t Ticket) (Record, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Record{}, fmt.Errorf("spool %s: %w", s.dir, ErrClosed)
	}
	g := s.segs[t.seg]
	if g == nil || int(t.idx) >= g.count || g.isAcked(t.idx) || t.n < frameHdrLen || t.off+int64(t.n) > g.size {
		s.mu.Unlock()
		return Record{}, fmt.Errorf("spool %s: %w", s.dir, ErrNotFound)
	}
	g.readers++
	s.mu.Unlock()

	r, err := func() (Record, error) {
		f, err := os.Open(segPath(s.dir, g.id))
		if err != nil {
			return Record{}, err
		}
		defer f.Close()
		return readFrame(f, t.off, int(t.n))
	}()
	if rerr := s.release(g); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return Record{}, fmt.Errorf("spool %s: read: %w", s.dir, err)
	}
	return r, nil
}
