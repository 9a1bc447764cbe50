package sink

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/internal/spool"
)

// The buffer: records enqueued by logging goroutines (and the replay of an
// earlier run's spool), waiting for the dispatcher (pending) or in a
// transaction being sent or retried, until finish. Its size is the sum of
// their entity bytes (plus recordOverhead each), bounded by
// Options.BufferBytes. With a spool, records that do not fit wait on disk
// (spill, see spool.go) and count in records, and in bytes with
// spilledCost each (their entry in the spill queue). It owns the Flush
// waiters, and the record counters that must agree with its contents
// (enqueued, written, failed, dropped, rejected change under its mutex, so
// Stats is a consistent snapshot). It knows nothing of the table: the
// dispatcher takes records from it, the workers hand them back to finish.

// record is one encoded entity waiting to be stored.
type record struct {
	pk       string
	data     []byte // in slab, or its own allocation when slab is nil
	seq      uint64
	slab     *slab
	tk       spool.Ticket // where the record is spooled; zero if it is not
	replayed bool         // spooled by an earlier run: it may be stored already
	def      *deferred    // not encoded yet (data is nil): see deferred.go
	est      int32        // deferred: the entity bytes counted for it, for its whole stay
}

// size is the entity bytes the buffer counts for r: a deferred record's
// estimate (also once it is encoded: encoding does not make room, so Block
// admits records only as others leave), else its entity's length.
func (r *record) size() int {
	if r.est > 0 {
		return int(r.est)
	}
	return len(r.data)
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

// buffer is the Sink's bounded record queue. Its methods are safe for
// concurrent use; only put and putReplayed wait (for room).
type buffer struct {
	max       int        // Options.BufferBytes
	drop      bool       // Options.Overflow is DropNewest
	batchSize int        // Options.BatchSize: a full transaction
	life      *lifecycle // refuses records from closing on; the replay stops at stopping
	c         *counters

	kick     chan struct{} // to the dispatcher: a full transaction is waiting
	flushNow chan struct{} // to the dispatcher: send everything now

	mu            sync.Mutex
	space         *sync.Cond // signalled when bytes shrink or the lifecycle advances
	blocked       int        // goroutines waiting on space
	slab          *slab      // where put copies entities (see copyEntity)
	freeSlabs     []*slab
	pending       []record // enqueued, not yet taken by the dispatcher
	spare         []record
	pendingBytes  int
	bytes         int    // entity bytes (+recordOverhead) of the records held in memory, +spilledCost for each waiting on disk
	records       int    // records enqueued and not yet finished
	seq           uint64 // records enqueued so far; record seq numbers are 1..seq
	kicked        bool
	polling       bool // the dispatcher looks for full transactions on its own (see fullPoll)
	carried       int  // records in the largest partial transaction the dispatcher holds back
	carriedBytes  int  // and their bytes
	waiters       []*waiter
	lastErr       error      // last reason a record was given up on
	unreported    int        // records given up on that no Flush or Close has reported yet
	spill         spillQueue // spooled records waiting on disk only (the buffer was full)
	chunk         *defChunk  // where putDeferred puts deferred records
	freeChunks    []*defChunk
	ndeferred     int          // deferred records not yet encoded
	deferredBytes atomic.Int64 // and their deferredSize
}

func newBuffer(o Options, life *lifecycle, c *counters) *buffer {
	b := &buffer{
		max:       o.BufferBytes,
		drop:      o.Overflow == DropNewest,
		batchSize: o.BatchSize,
		life:      life,
		c:         c,
		kick:      make(chan struct{}, 1),
		flushNow:  make(chan struct{}, 1),
	}
	b.space = sync.NewCond(&b.mu)
	return b
}

// putResult is what put did with a record.
type putResult int

const (
	putQueued  putResult = iota // in memory, pending
	putSpilled                  // spooled and waiting on disk only
	putDropped                  // the buffer was full (DropNewest)
	putRefused                  // Close has begun
)

// put queues a copy of entity under partition pk. tk is where the record
// is spooled (spooled false: it is not). It blocks while the buffer is
// full (unless DropNewest: then it drops). A spooled record that does not
// fit in memory waits on disk, and blocks or is dropped only when the
// buffer has no room left even for its entry in the spill queue
// (spilledCost). From closing on, it refuses.
func (b *buffer) put(pk string, tk spool.Ticket, spooled bool, entity []byte) putResult {
	n := len(entity)
	cost := n + recordOverhead
	need := cost // room the record needs at the least
	if spooled {
		need = spilledCost // its entry, waiting on disk
	}
	if res := b.admit(need); res != putQueued {
		return res
	}
	if spooled && (b.spill.len() > 0 || !b.memFitsLocked(cost)) {
		// The buffer is full (or others already wait on disk): keep only
		// the Ticket; the dispatcher reads the record back in its turn.
		first := b.spill.len() == 0
		b.spill.push(spilled{tk: tk, seq: b.seq, n: uint32(n)})
		b.bytes += spilledCost
		b.c.spilled.Add(1)
		b.mu.Unlock()
		if first {
			signal(b.flushNow)
		}
		return putSpilled
	}
	r := record{pk: pk, seq: b.seq, tk: tk}
	b.copyEntity(&r, entity)
	b.queueLocked(r)
	return putQueued // queueLocked unlocked b.mu
}

// admit locks b.mu and waits until a record needing need bytes fits (the
// buffer is empty or has room), then numbers and counts it, leaving b.mu
// locked, and returns putQueued. If the buffer is full and drops, or Close
// has begun, it counts that and returns putDropped or putRefused, b.mu
// unlocked.
func (b *buffer) admit(need int) putResult {
	b.mu.Lock()
	waited := false
	for !b.life.atLeast(phaseClosing) && b.bytes > 0 && b.bytes+need > b.max {
		if b.drop {
			b.c.dropped.Add(1)
			b.mu.Unlock()
			signal(b.flushNow)
			return putDropped
		}
		if !waited {
			waited = true
			b.c.blocked.Add(1)
		}
		b.waitLocked()
	}
	if b.life.atLeast(phaseClosing) {
		b.c.rejected.Add(1)
		b.mu.Unlock()
		return putRefused
	}
	b.seq++
	b.records++
	b.c.enqueued.Add(1)
	return putQueued
}

// putDeferred queues a record that the dispatcher encodes (see
// deferred.go): z, a zap entry, or sl, a slog record (the other is nil),
// counting its est bytes for its whole stay. It blocks, drops and refuses
// as put does.
func (b *buffer) putDeferred(z *pendingZap, sl *pendingSlog) putResult {
	var est, nf, na int
	pk := ""
	if z != nil {
		est, nf, pk = z.est, len(z.fields), z.pk
	} else {
		est, na, pk = sl.est, sl.n, sl.pk
	}
	if res := b.admit(est + recordOverhead); res != putQueued {
		return res
	}
	d := b.deferredSlot(nf, na)
	if z != nil {
		z.fill(d)
	} else {
		sl.fill(d)
	}
	b.ndeferred++
	b.deferredBytes.Add(deferredSize(nf, na))
	b.queueLocked(record{pk: pk, seq: b.seq, def: d, est: int32(est)})
	return putQueued // queueLocked unlocked b.mu
}

// deferredSlot returns a slot in the current defChunk with room for nf
// zap fields and na slog attributes.
func (b *buffer) deferredSlot(nf, na int) *deferred {
	cur := b.chunk
	if cur == nil || len(cur.defs) == cap(cur.defs) ||
		(cap(cur.fields) > 0 && len(cur.fields)+nf > cap(cur.fields)) ||
		(cap(cur.attrs) > 0 && len(cur.attrs)+na > cap(cur.attrs)) {
		if cur != nil {
			b.releaseChunk(cur)
		}
		if k := len(b.freeChunks); k > 0 {
			cur = b.freeChunks[k-1]
			b.freeChunks = b.freeChunks[:k-1]
		} else {
			cur = &defChunk{defs: make([]deferred, 0, chunkDefs)}
		}
		cur.refs = 1
		b.chunk = cur
	}
	if nf > 0 && cap(cur.fields) == 0 {
		cur.fields = make([]zapcore.Field, 0, chunkFields)
	}
	if na > 0 && cap(cur.attrs) == 0 {
		cur.attrs = make([]slog.Attr, 0, chunkFields)
	}
	cur.defs = cur.defs[:len(cur.defs)+1]
	d := &cur.defs[len(cur.defs)-1]
	if nf > 0 {
		start := len(cur.fields)
		cur.fields = cur.fields[:start+nf]
		d.fields = cur.fields[start : start+nf : start+nf]
	}
	if na > 0 {
		start := len(cur.attrs)
		cur.attrs = cur.attrs[:start+na]
		d.attrs = cur.attrs[start : start+na : start+na]
	}
	d.chunk = cur
	cur.refs++
	return d
}

// dropDeferred clears r's deferred entry, so that its chunk keeps nothing
// of the caller's (strings, errors' text) alive, and releases the chunk.
func (b *buffer) dropDeferred(r *record) {
	d := r.def
	c := d.chunk
	b.ndeferred--
	b.deferredBytes.Add(-deferredSize(len(d.fields), len(d.attrs)))
	clear(d.fields)
	clear(d.attrs)
	*d = deferred{}
	r.def = nil
	b.releaseChunk(c)
}

// releaseChunk drops one reference to c and recycles it when none is
// left (its entries are cleared already).
func (b *buffer) releaseChunk(c *defChunk) {
	c.refs--
	if c.refs == 0 && len(b.freeChunks) < maxFreeChunks {
		c.defs, c.fields, c.attrs = c.defs[:0], c.fields[:0], c.attrs[:0]
		b.freeChunks = append(b.freeChunks, c)
	}
}

// maxFreeChunks defChunks (about 320 KB each) are kept for reuse: about
// maxDeferredBytes.
var maxFreeChunks = int(maxDeferredBytes/(chunkDefs*deferredSize(0, 0)+chunkFields*(deferredSize(1, 0)-deferredSize(0, 0)))) + 1

// encoded puts the entity data of the deferred records recs[i] (encoded
// by the dispatcher: data[offs[i]:offs[i+1]]) in place. They go on
// counting their estimates (record.size).
func (b *buffer) encoded(recs []*record, data []byte, offs []int) {
	b.mu.Lock()
	for i, r := range recs {
		b.copyEntity(r, data[offs[i]:offs[i+1]])
		b.dropDeferred(r)
	}
	b.mu.Unlock()
}

// putReplayed queues a record an earlier run left in the spool (its bytes
// are the caller's to give away), waiting for room in memory as a blocked
// writer would. It returns false, queueing nothing, from stopping on.
func (b *buffer) putReplayed(pk string, tk spool.Ticket, entity []byte) bool {
	n := len(entity)
	b.mu.Lock()
	for !b.life.atLeast(phaseStopping) && !b.memFitsLocked(n+recordOverhead) {
		b.waitLocked()
	}
	if b.life.atLeast(phaseStopping) {
		b.mu.Unlock()
		return false
	}
	b.seq++
	b.records++
	b.c.enqueued.Add(1)
	b.c.replayed.Add(1)
	b.queueLocked(record{pk: pk, data: entity, seq: b.seq, tk: tk, replayed: true})
	return true
}

// waitLocked waits on space, asking the dispatcher to send everything
// meanwhile.
func (b *buffer) waitLocked() {
	b.blocked++
	signal(b.flushNow)
	b.space.Wait()
	b.blocked--
}

// queueLocked appends r (its data in place) to pending, unlocks b.mu and
// wakes the dispatcher if a full transaction may be waiting.
func (b *buffer) queueLocked(r record) {
	b.pending = append(b.pending, r)
	b.pendingBytes += r.size()
	b.bytes += r.size() + recordOverhead
	kick := b.kickLocked()
	b.mu.Unlock()
	if kick {
		signal(b.kick)
	}
}

// kickLocked reports whether a full transaction may be waiting, counting
// those the dispatcher carries over (a partial transaction it kept) with
// the new ones, and the dispatcher is to be woken for it (it is not
// polling), and if so marks the dispatcher kicked.
func (b *buffer) kickLocked() bool {
	kick := !b.kicked && !b.polling && len(b.pending) > 0 &&
		(len(b.pending)+b.carried >= b.batchSize || b.pendingBytes+b.carriedBytes >= maxPayload/2)
	if kick {
		b.kicked = true
	}
	return kick
}

// copyEntity sets r.data to a copy of entity, in the current slab when it
// is small.
func (b *buffer) copyEntity(r *record, entity []byte) {
	n := len(entity)
	if n > maxSlabRecord {
		r.data = append([]byte(nil), entity...)
		return
	}
	cur := b.slab
	if cur == nil || len(cur.buf)+n > cap(cur.buf) {
		if cur != nil {
			b.release(cur)
		}
		if k := len(b.freeSlabs); k > 0 {
			cur = b.freeSlabs[k-1]
			b.freeSlabs = b.freeSlabs[:k-1]
		} else {
			cur = &slab{buf: make([]byte, 0, slabSize)}
		}
		cur.refs = 1
		b.slab = cur
	}
	start := len(cur.buf)
	cur.buf = append(cur.buf, entity...)
	cur.refs++
	r.data = cur.buf[start:len(cur.buf):len(cur.buf)]
	r.slab = cur
}

// release drops one reference to sl and recycles it when none is left.
func (b *buffer) release(sl *slab) {
	sl.refs--
	if sl.refs == 0 && len(b.freeSlabs) < maxFreeSlabs {
		sl.buf = sl.buf[:0]
		b.freeSlabs = append(b.freeSlabs, sl)
	}
}

// take returns the pending records, leaving an empty queue. Give the
// slice back with recycle once its records are copied out.
func (b *buffer) take() []record {
	b.mu.Lock()
	defer b.mu.Unlock()
	taken := b.pending
	b.pending, b.spare = b.spare[:0], nil
	b.pendingBytes = 0
	b.kicked = false
	return taken
}

// recycle gives back a slice take returned, cleared, for reuse.
func (b *buffer) recycle(taken []record) {
	clear(taken)
	b.mu.Lock()
	if b.spare == nil {
		b.spare = taken[:0]
	}
	b.mu.Unlock()
}

// dispatched records what the dispatcher holds back after a round (the
// largest partial transaction it carries over) and whether it polls from
// now on, and wakes it again if new records already fill a transaction.
func (b *buffer) dispatched(carried, carriedBytes int, polling bool) {
	b.mu.Lock()
	b.carried, b.carriedBytes = carried, carriedBytes
	b.polling = polling
	kick := b.kickLocked()
	b.mu.Unlock()
	if kick {
		signal(b.kick)
	}
}

// deferredCount returns how many deferred records wait to be encoded
// (tests).
func (b *buffer) deferredCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ndeferred
}

// isPolling reports whether the dispatcher polls (tests).
func (b *buffer) isPolling() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.polling
}

// finish marks recs as stored (ok) or given up on (cause), releases their
// buffer space and wakes what waits for them. It reports whether records
// wait on disk to be read back. recs must not be used afterwards: their
// bytes are reused.
func (b *buffer) finish(recs []record, ok bool, cause error) (spilled bool) {
	b.mu.Lock()
	if ok {
		b.c.written.Add(uint64(len(recs)))
	} else {
		b.c.failedRecords.Add(uint64(len(recs)))
		if cause != nil {
			b.lastErr = cause
		}
	}
	for i := range recs {
		r := &recs[i]
		b.bytes -= r.size() + recordOverhead
		if r.slab != nil {
			b.release(r.slab)
		}
		if r.def != nil {
			b.dropDeferred(r)
		}
		r.data, r.slab, r.def, r.est = nil, nil, nil, 0
		covered := false
		for _, w := range b.waiters {
			if r.seq <= w.upto {
				covered = true
				w.remaining--
				if !ok {
					w.failed++
				}
			}
		}
		if !ok && !covered {
			b.unreported++ // for the next Flush or Close to report
		}
	}
	b.records -= len(recs)
	for i := 0; i < len(b.waiters); {
		w := b.waiters[i]
		if w.remaining <= 0 {
			close(w.done)
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			continue
		}
		i++
	}
	if b.blocked > 0 {
		b.space.Broadcast()
	}
	spilled = b.spill.len() > 0
	b.mu.Unlock()
	return spilled
}

// wait returns a waiter for every record enqueued so far, or nil if none
// is buffered; prior is the number of records given up on that no Flush or
// Close reported yet (now reported: counted in the waiter's failed, or
// returned with a nil waiter).
func (b *buffer) wait() (w *waiter, prior int, last error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	prior = b.unreported
	b.unreported = 0
	if b.records == 0 {
		return nil, prior, b.lastErr
	}
	w = &waiter{upto: b.seq, remaining: b.records, failed: prior, done: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	return w, prior, b.lastErr
}

// result returns what w counted: records given up on, records still
// buffered, and the last reason a record was given up on. A waiter that
// is not done is removed (its Flush gave up).
func (b *buffer) result(w *waiter) (failed, pending int, last error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, x := range b.waiters {
		if x == w {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			break
		}
	}
	return w.failed, max(w.remaining, 0), b.lastErr
}

// beginClose returns, for Close, the records given up on that no Flush
// reported yet (marked reported) and the count of records given up on so
// far, together: Close reports both those and the ones given up on after.
func (b *buffer) beginClose() (prior int, failedBefore uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	prior, b.unreported = b.unreported, 0
	return prior, b.c.failedRecords.Load()
}

// takeUnreported returns, and marks reported, the records given up on
// that no Flush or Close reported yet.
func (b *buffer) takeUnreported() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.unreported
	b.unreported = 0
	return n
}

// lastError returns the last reason a record was given up on.
func (b *buffer) lastError() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastErr
}

// wake wakes every goroutine waiting for room, to look at the lifecycle
// again.
func (b *buffer) wake() {
	b.mu.Lock()
	b.space.Broadcast()
	b.mu.Unlock()
}

// drain empties the buffer of what the dispatcher never took: the pending
// records and those waiting on disk (as records without data). Finish
// them.
func (b *buffer) drain() []record {
	b.mu.Lock()
	defer b.mu.Unlock()
	left := b.pending
	b.pending = nil
	b.pendingBytes = 0
	for _, x := range b.spill.all() {
		left = append(left, record{tk: x.tk, seq: x.seq})
		b.bytes += recordOverhead - spilledCost // finish releases recordOverhead
	}
	b.spill.reset()
	return left
}

// stats fills in the counts of st that must agree with the buffer's
// contents: a consistent snapshot.
func (b *buffer) stats(st *Stats) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st.BufferedRecords, st.BufferedBytes = b.records, b.bytes
	st.Enqueued = b.c.enqueued.Load()
	st.Written = b.c.written.Load()
	st.FailedRecords = b.c.failedRecords.Load()
	st.Dropped = b.c.dropped.Load()
	st.Rejected = b.c.rejected.Load()
}

// memBytesLocked is the part of bytes held by records in memory (the rest
// are the entries of records waiting on disk).
func (b *buffer) memBytesLocked() int { return b.bytes - b.spill.len()*spilledCost }

// memFitsLocked reports whether a spooled record costing cost (entity and
// recordOverhead) may be held in memory rather than wait on disk. With a
// spool, records in memory take at most half of BufferBytes, so that the
// other half is left for the entries of records waiting on disk: were the
// buffer full of records being retried (an outage), no record could wait
// on disk. Nothing in memory: one record is always taken, to make progress.
func (b *buffer) memFitsLocked(cost int) bool {
	mem := b.memBytesLocked()
	return mem == 0 || mem+cost <= b.max/2 && b.bytes+cost <= b.max
}

// takeSpilled moves the records waiting on disk that now fit in memory,
// oldest first, to dst (their memory is counted from now on: give up on
// one that cannot be read back with unspillFailed, then finish), and
// reports whether others still wait.
func (b *buffer) takeSpilled(dst []spilled) ([]spilled, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.spill.len() > 0 {
		h := b.spill.peek()
		cost := int(h.n) + recordOverhead
		if !b.memFitsLocked(cost) {
			break
		}
		b.bytes += cost - spilledCost // in memory now: its spill entry goes
		dst = append(dst, b.spill.pop())
	}
	return dst, b.spill.len() > 0
}

// unspillFailed uncounts the entity bytes of a record takeSpilled handed
// out that could not be read back (finish it without data).
func (b *buffer) unspillFailed(n int) {
	b.mu.Lock()
	b.bytes -= n
	b.mu.Unlock()
}

// signal does a non-blocking send on a 1-buffered channel.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
