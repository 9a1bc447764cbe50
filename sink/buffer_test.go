package sink

import (
	"errors"
	"testing"
	"testing/synctest"

	"github.com/tablelog/tablelog/internal/spool"
)

// newTestBuffer returns a buffer of max bytes (recordOverhead included)
// for transactions of batch records, alone: no Sink, no dispatcher.
func newTestBuffer(max, batch int, drop bool) (*buffer, *lifecycle, *counters) {
	life, c := &lifecycle{}, &counters{}
	o := Options{BufferBytes: max, BatchSize: batch}
	if drop {
		o.Overflow = DropNewest
	}
	return newBuffer(o, life, c), life, c
}

func entityOf(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'x'
	}
	return b
}

// TestBufferAccounting: put copies and counts, take hands the records out
// in order, finish releases their bytes and counts them written or failed;
// Stats agree with the contents.
func TestBufferAccounting(t *testing.T) {
	b, _, c := newTestBuffer(1<<20, 100, false)
	for range 3 {
		if r := b.put("pk", spool.Ticket{}, false, entityOf(100)); r != putQueued {
			t.Fatalf("put: %v", r)
		}
	}
	var st Stats
	b.stats(&st)
	if st.BufferedRecords != 3 || st.BufferedBytes != 3*(100+recordOverhead) || st.Enqueued != 3 {
		t.Fatalf("after 3 puts: %+v", st)
	}
	taken := b.take()
	if len(taken) != 3 || taken[0].seq != 1 || taken[2].seq != 3 || len(taken[1].data) != 100 {
		t.Fatalf("take: %d records", len(taken))
	}
	recs := append([]record(nil), taken...)
	b.recycle(taken)
	b.finish(recs[:2], true, nil)
	b.finish(recs[2:], false, errors.New("bad"))
	b.stats(&st)
	if st.BufferedRecords != 0 || st.BufferedBytes != 0 || st.Written != 2 || st.FailedRecords != 1 || c.enqueued.Load() != 3 {
		t.Fatalf("after finish: %+v", st)
	}
	// The failure nobody waited for is reported once, by the next wait.
	if w, prior, last := b.wait(); w != nil || prior != 1 || last == nil || last.Error() != "bad" {
		t.Fatalf("wait: %v %d %v", w, prior, last)
	}
	if _, prior, _ := b.wait(); prior != 0 {
		t.Fatalf("reported twice: %d", prior)
	}
}

// TestBufferBlocksAndRefuses: a put into a full buffer waits until finish
// makes room (counted in Stats.Blocked), is refused once the lifecycle
// reaches closing (woken by wake), and DropNewest drops instead.
func TestBufferBlocksAndRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cost := 100 + recordOverhead
		b, life, c := newTestBuffer(2*cost, 100, false)
		b.put("pk", spool.Ticket{}, false, entityOf(100))
		b.put("pk", spool.Ticket{}, false, entityOf(100))
		res := make(chan putResult, 2)
		go func() { res <- b.put("pk", spool.Ticket{}, false, entityOf(100)) }()
		synctest.Wait()
		select {
		case r := <-res:
			t.Fatalf("a put into a full buffer returned %v", r)
		default:
		}
		if c.blocked.Load() != 1 {
			t.Fatalf("blocked %d, want 1", c.blocked.Load())
		}
		taken := b.take()
		recs := append([]record(nil), taken...)
		b.finish(recs[:1], true, nil)
		synctest.Wait()
		if r := <-res; r != putQueued {
			t.Fatalf("after room was made: %v", r)
		}
		go func() { res <- b.put("pk", spool.Ticket{}, false, entityOf(100)) }()
		synctest.Wait()
		life.advance(phaseClosing)
		b.wake()
		synctest.Wait()
		if r := <-res; r != putRefused || c.rejected.Load() != 1 {
			t.Fatalf("a put blocked at Close: %v, rejected %d", r, c.rejected.Load())
		}

		d, _, dc := newTestBuffer(cost, 100, true)
		d.put("pk", spool.Ticket{}, false, entityOf(100))
		if r := d.put("pk", spool.Ticket{}, false, entityOf(100)); r != putDropped || dc.dropped.Load() != 1 {
			t.Fatalf("DropNewest into a full buffer: %v, dropped %d", r, dc.dropped.Load())
		}
	})
}

// TestBufferWaiters: a waiter covers the records enqueued before it, and
// is done when each is finished, counting the failed ones; records
// enqueued after it do not hold it up.
func TestBufferWaiters(t *testing.T) {
	b, _, _ := newTestBuffer(1<<20, 100, false)
	for range 3 {
		b.put("pk", spool.Ticket{}, false, entityOf(10))
	}
	w, _, _ := b.wait()
	if w == nil || w.remaining != 3 {
		t.Fatalf("waiter %+v", w)
	}
	b.put("pk", spool.Ticket{}, false, entityOf(10)) // after the waiter
	recs := append([]record(nil), b.take()...)
	b.finish(recs[3:], true, nil)
	b.finish(recs[:1], false, errors.New("x"))
	select {
	case <-w.done:
		t.Fatal("done before its records were finished")
	default:
	}
	b.finish(recs[1:3], true, nil)
	select {
	case <-w.done:
	default:
		t.Fatal("not done after its records were finished")
	}
	if failed, pending, _ := b.result(w); failed != 1 || pending != 0 {
		t.Fatalf("result: %d failed, %d pending", failed, pending)
	}
}

// TestBufferSpill: spooled records that do not fit in memory wait on disk
// (only their entry counted), and come back as memory allows; records in
// memory take at most half the buffer when there is a spool.
func TestBufferSpill(t *testing.T) {
	cost := 1000 + recordOverhead
	b, _, c := newTestBuffer(4*cost, 100, false)
	for range 5 {
		b.put("pk", spool.Ticket{}, true, entityOf(1000))
	}
	var st Stats
	b.stats(&st)
	if c.spilled.Load() != 3 || st.BufferedRecords != 5 || st.BufferedBytes != 2*cost+3*spilledCost {
		t.Fatalf("spilled %d, stats %+v (memory takes half: 2 records)", c.spilled.Load(), st)
	}
	got, more := b.takeSpilled(nil)
	if len(got) != 0 || !more {
		t.Fatalf("took %d back with memory at its half", len(got))
	}
	recs := append([]record(nil), b.take()...)
	b.finish(recs, true, nil)
	got, more = b.takeSpilled(nil)
	if len(got) != 2 || !more || got[0].seq != 3 {
		t.Fatalf("after room was made: took %d (first seq %d), more %v", len(got), got[0].seq, more)
	}
}

// TestBufferKick: the dispatcher is woken once a transaction fills
// (counting what it carries over), not again until it takes the queue, and
// not while it polls.
func TestBufferKick(t *testing.T) {
	b, _, _ := newTestBuffer(1<<20, 3, false)
	kicked := func() bool {
		select {
		case <-b.kick:
			return true
		default:
			return false
		}
	}
	b.put("pk", spool.Ticket{}, false, entityOf(10))
	b.put("pk", spool.Ticket{}, false, entityOf(10))
	if kicked() {
		t.Fatal("kicked before a transaction was full")
	}
	b.put("pk", spool.Ticket{}, false, entityOf(10))
	if !kicked() {
		t.Fatal("not kicked with a full transaction")
	}
	b.put("pk", spool.Ticket{}, false, entityOf(10))
	if kicked() {
		t.Fatal("kicked again before the dispatcher took the queue")
	}
	b.recycle(b.take())
	b.dispatched(2, 20, false) // it kept a partial transaction of 2
	b.put("pk", spool.Ticket{}, false, entityOf(10))
	if !kicked() {
		t.Fatal("not kicked when the new record fills the carried transaction")
	}
	b.recycle(b.take())
	b.dispatched(0, 0, true) // polling
	for range 5 {
		b.put("pk", spool.Ticket{}, false, entityOf(10))
	}
	if kicked() || !b.isPolling() {
		t.Fatal("kicked while the dispatcher polls")
	}
}

// TestLifecycle: the phase only moves forward.
func TestLifecycle(t *testing.T) {
	var l lifecycle
	if !l.atLeast(phaseOpen) || l.atLeast(phaseClosing) {
		t.Fatal("a new lifecycle is not open")
	}
	l.advance(phaseStopping)
	l.advance(phaseClosing)
	if !l.atLeast(phaseStopping) || l.atLeast(phaseClosed) {
		t.Fatal("advance went back or too far")
	}
	l.advance(phaseClosed)
	if !l.atLeast(phaseClosed) {
		t.Fatal("not closed")
	}
}
