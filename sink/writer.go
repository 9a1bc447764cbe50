package sink

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/tablelog/tablelog/internal/schema"
)

// The background writer: one dispatcher cuts the queue into transactions,
// Options.MaxInFlight workers send them.

// batch is one transaction's worth of records of a single partition.
type batch struct {
	pk    string
	recs  []record
	size  int  // payload estimate: at least the sum of wireSize
	exact bool // size is the sum of wireSize
}

// maxPayload is the payload budget of one transaction: Azure's 4 MiB less a
// margin for the multipart framing around the operations.
const maxPayload = schema.MaxBatchBytes - 64<<10

// opOverhead is what one insert operation adds to a transaction besides
// its entity JSON: the MIME part headers, the request line (with the
// table URL and maybe a SAS) and the request headers.
const opOverhead = 2 << 10

// wireSize estimates the bytes one entity takes in a transaction. aztables
// re-encodes entities with encoding/json, which escapes <, > and & as
// \u003c (six bytes) and U+2028/U+2029 as \u2028 (three more).
func wireSize(data []byte) int {
	n := len(data) + opOverhead
	n += 5 * (bytes.Count(data, lt) + bytes.Count(data, gt) + bytes.Count(data, amp))
	n += 3 * bytes.Count(data, e2) // a generous bound for U+2028 and U+2029
	return n
}

var lt, gt, amp, e2 = []byte{'<'}, []byte{'>'}, []byte{'&'}, []byte{0xe2}

// dispatch cuts the queue into transactions and hands them to the workers:
// full ones as soon as they are full, the rest every FlushInterval and on
// Flush, a blocked or dropping writer, or Close.
func (s *Sink) dispatch() {
	defer s.wg.Done()
	defer close(s.work)
	d := &dispatcher{s: s}
	tick := time.NewTicker(s.opts.FlushInterval)
	defer tick.Stop()
	poll := time.NewTimer(fullPoll)
	poll.Stop()
	var pollC <-chan time.Time // poll.C while polling, else nil
	for {
		all := true
		select {
		case <-s.buf.kick:
			all = false
		case <-pollC:
			all = false
		case <-tick.C:
		case <-s.buf.flushNow:
		case <-s.quit:
			d.send(true)
			return
		case <-s.hardCtx.Done():
			s.finish(d.queue, false, context.Canceled)
			return
		}
		pollC = nil
		if d.send(all) {
			poll.Reset(fullPoll)
			pollC = poll.C
		}
	}
}

// fullPoll is how often the dispatcher looks for full transactions on its
// own under sustained load (see dispatcher.send), instead of being woken by
// the logging goroutines: waking it costs a logging goroutine a thread
// wake-up, several times the encoding of a record. A full transaction
// waits at most this long.
const fullPoll = 2 * time.Millisecond

// dispatcher is the dispatch goroutine's state; its slices are reused, so
// dispatching does not allocate in the steady state.
type dispatcher struct {
	s       *Sink
	queue   []record // taken from the buffer, not yet in a transaction
	keep    []record // the next queue: what holdBack keeps
	batches []*batch
	open    []*batch  // per partition, the batch being filled
	take    []spilled // records being read back from the spool
	st      *encState // encodes deferred records
	enc     []*record // the deferred records of a take, encoded into arena
	offs    []int     // enc[i]'s entity is arena[offs[i]:offs[i+1]]
	arena   []byte
}

// send takes the queue (and what fits of the records waiting in the spool)
// and hands it to the workers in transactions. Unless all, each partition's
// last transaction stays in the queue if it is less than full; while
// records wait in the spool, the buffer is full, so everything goes.
//
// It reports whether to poll: when it was woken for full transactions
// (not all) and sent some, the load is sustained, so the dispatcher looks
// again after fullPoll and the writers do not wake it meanwhile (see
// buffer.kickLocked).
func (d *dispatcher) send(all bool) (poll bool) {
	s := d.s
	taken := s.buf.take()
	d.encode(taken)
	d.queue = append(d.queue, taken...)
	s.buf.recycle(taken)
	if d.refill() {
		all = true
	}
	d.cut()
	if !all {
		d.holdBack()
	}
	d.queue, d.keep = d.keep, d.queue[:0]
	clear(d.open)
	poll = !all && len(d.batches) > 0
	carried, carriedBytes := d.carried()
	s.buf.dispatched(carried, carriedBytes, poll)
	d.handOut()
	return poll
}

// encode encodes the deferred records among recs in place, encodeGroup
// at a time.
func (d *dispatcher) encode(recs []record) {
	s := d.s
	flush := func() {
		if len(d.enc) > 0 {
			s.buf.encoded(d.enc, d.arena, d.offs)
			clear(d.enc)
		}
		d.enc, d.offs, d.arena = d.enc[:0], append(d.offs[:0], 0), d.arena[:0]
	}
	flush()
	for i := range recs {
		r := &recs[i]
		if r.def == nil {
			continue
		}
		if d.st == nil {
			d.st = newEncState(s)
		}
		d.arena = append(d.arena, d.st.encodeDeferred(r.def)...)
		d.offs = append(d.offs, len(d.arena))
		d.enc = append(d.enc, r)
		s.countRepairs(&d.st.enc)
		if len(d.enc) == encodeGroup {
			flush()
		}
	}
	flush()
	if cap(d.arena) > 4<<20 {
		d.arena = nil // a group of huge entries: do not keep its memory
	}
}

// cut groups the queue into transactions (d.batches), one partition each,
// in queue order, each within BatchSize records and maxPayload bytes; the
// queue is left to be cleared.
func (d *dispatcher) cut() {
	s := d.s
	d.batches, d.open = d.batches[:0], d.open[:0]
	for _, r := range d.queue {
		var b *batch
		for _, o := range d.open {
			if o.pk == r.pk {
				b = o
				break
			}
		}
		// Sizes are counted with a cheap upper bound (every byte escaped)
		// until a transaction nears the limit; then exactly.
		ws := 6*len(r.data) + opOverhead
		if b != nil && b.size+ws > maxPayload {
			if !b.exact {
				b.size, b.exact = 0, true
				for _, x := range b.recs {
					b.size += wireSize(x.data)
				}
			}
			ws = wireSize(r.data)
		}
		if b == nil || len(b.recs) >= s.opts.BatchSize || b.size+ws > maxPayload {
			nb := s.newBatch(r.pk)
			if b == nil {
				d.open = append(d.open, nb)
			} else {
				for i, o := range d.open {
					if o == b {
						d.open[i] = nb
					}
				}
			}
			b = nb
			d.batches = append(d.batches, b)
		}
		b.recs = append(b.recs, r)
		b.size += ws
	}
	d.keep = d.keep[:0]
	clear(d.queue)
}

// holdBack moves each partition's last transaction, if less than full,
// out of d.batches into d.keep (the next queue).
func (d *dispatcher) holdBack() {
	s := d.s
	n := 0
	for _, b := range d.batches {
		if len(b.recs) < s.opts.BatchSize && b.size < maxPayload/2 && slices.Contains(d.open, b) {
			d.keep = append(d.keep, b.recs...)
			clear(b.recs)
			s.batchPool.Put(b)
			continue
		}
		d.batches[n] = b
		n++
	}
	clear(d.batches[n:])
	d.batches = d.batches[:n]
}

// carried returns the size of the largest partial transaction held back
// in the queue (they are contiguous, one per partition): it decides when
// new records may fill one (see buffer.kickLocked).
func (d *dispatcher) carried() (records, bytes int) {
	for i := 0; i < len(d.queue); {
		n, nb := 0, 0
		for j := i; j < len(d.queue) && d.queue[j].pk == d.queue[i].pk; j++ {
			n++
			nb += len(d.queue[j].data)
		}
		records, bytes = max(records, n), max(bytes, nb)
		i += n
	}
	return records, bytes
}

// handOut gives d.batches to the workers, one at a time (a worker must be
// free to take one), or finishes them as abandoned once Close gave up.
func (d *dispatcher) handOut() {
	s := d.s
	for i, b := range d.batches {
		select {
		case s.work <- b:
		case <-s.hardCtx.Done():
			s.finish(b.recs, false, context.Canceled)
		}
		d.batches[i] = nil
	}
}

func (s *Sink) newBatch(pk string) *batch {
	b, _ := s.batchPool.Get().(*batch)
	if b == nil {
		b = &batch{recs: make([]record, 0, s.opts.BatchSize)}
	}
	b.pk, b.recs, b.size, b.exact = pk, b.recs[:0], 0, false
	return b
}

// worker sends transactions until the dispatcher closes s.work.
func (s *Sink) worker() {
	defer s.wg.Done()
	w := &txWriter{s: s}
	for b := range s.work {
		if s.hardCtx.Err() != nil {
			s.finish(b.recs, false, context.Canceled)
		} else {
			s.ensureTable()
			s.ensureCatalog(b.pk)
			w.pk, w.gen = s.shard(b.pk) // see shard.go
			w.store(b.recs, false)
		}
		clear(b.recs)
		s.batchPool.Put(b)
	}
}

// ensureTable creates the table once, before the first write, unless
// Options.NoCreateTable. A failure other than "already exists" is reported
// and writing goes ahead (the table may exist; writes will tell).
func (s *Sink) ensureTable() {
	if s.tableReady.Load() {
		return
	}
	select {
	case s.tableSem <- struct{}{}:
	case <-s.hardCtx.Done():
		return
	}
	defer func() { <-s.tableSem }()
	if s.tableReady.Load() {
		return
	}
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(s.hardCtx, s.opts.RequestTimeout)
		_, err := s.table.CreateTable(ctx, nil)
		cancel()
		e := classify("CreateTable", err, s.hardCtx)
		switch {
		case e == nil, e.class == exists:
			s.tableReady.Store(true)
			return
		case e.class == transient:
			s.c.retries.Add(1)
			s.reportLimited("transient", e)
			if !s.backoff(attempt, e.RetryAfter) {
				return
			}
		case e.class == aborted:
			return
		default:
			s.tableReady.Store(true)
			s.opts.ErrorHandler(fmt.Errorf("sink: cannot create the table (set Options.NoCreateTable if the credentials may not): %w", e))
			return
		}
	}
}

// txWriter is one worker's transaction sender (with its reusable actions).
type txWriter struct {
	s       *Sink
	actions []aztables.TransactionAction
	pk      string // the shard the current batch goes to (shard.go)
	gen     int    // the day's shard count when pk was picked
	buf     []byte // the batch's entities rewritten for that shard
}

// store writes recs (one partition) as one transaction, retrying transient
// failures; a permanent failure is bisected down to the bad records.
// uncertain says an earlier attempt of exactly this set of records may have
// been committed (its response was lost).
func (w *txWriter) store(recs []record, uncertain bool) {
	s := w.s
	for attempt := 0; ; attempt++ {
		e := w.submit(recs)
		if e == nil {
			s.finish(recs, true, nil)
			return
		}
		switch e.class {
		case exists:
			// A transaction is atomic: if an earlier attempt of this very
			// set may have committed, "already exists" means it did. For a
			// single record it means that in any case. Not so for records
			// replayed from the spool: the crashed run may have stored
			// some of them, and the conflict may be theirs alone.
			if len(recs) == 1 || (uncertain && !anyReplayed(recs)) {
				s.finish(recs, true, nil)
				return
			}
		case transient:
			uncertain = true
			s.throttled(recs[0].pk, w.pk, w.gen, e)
			s.c.retries.Add(1)
			s.reportLimited("transient", fmt.Errorf("sink: retrying %d records: %w", len(recs), e))
			if !s.backoff(attempt, e.RetryAfter) {
				s.finish(recs, false, context.Canceled)
				return
			}
			continue
		case aborted:
			s.finish(recs, false, context.Canceled)
			return
		case denied:
			if e.StatusCode == http.StatusNotFound && !s.opts.NoCreateTable && attempt == 0 {
				// The table is missing (deleted under us?): create it again.
				s.tableReady.Store(false)
				s.ensureTable()
				continue
			}
			if s.keepDenied() {
				// The request was refused, not the records: with a spool
				// they wait (on disk) for the credential, the firewall or
				// the table to be fixed, retried with backoff; Close at
				// its deadline leaves them in the spool for the next run.
				s.c.retries.Add(1)
				s.reportLimited("denied", fmt.Errorf("sink: %d records not stored yet, kept in the spool and retried: %w", len(recs), e))
				if !s.backoff(attempt, e.RetryAfter) {
					s.finish(recs, false, context.Canceled)
					return
				}
				continue
			}
			if len(recs) > 1 {
				s.c.failedBatches.Add(1)
			}
			err := fmt.Errorf("sink: %d records not stored: %w", len(recs), e)
			s.finish(recs, false, err)
			s.reportLimited("denied", err)
			return
		}
		// Permanent (or a conflict we cannot attribute): isolate. A
		// conflict among records replayed from the spool is expected
		// (some were stored before the crash), not a failed batch.
		if len(recs) == 1 {
			s.repair(recs[0], e)
			return
		}
		if e.class == exists && anyReplayed(recs) {
			// Replayed records stored before a crash: usually all of the
			// transaction is. Bisecting would take 2n-1 requests to
			// confirm that; single inserts take n.
			for i := range recs {
				w.store(recs[i:i+1], false)
			}
			return
		}
		s.c.failedBatches.Add(1)
		half := len(recs) / 2
		w.store(recs[:half], false)
		w.store(recs[half:], false)
		return
	}
}

// keepDenied reports whether records whose request is denied (401, 403,
// 404) are kept and retried rather than given up on: with a spool, they
// stay on disk until stored (see Options.SpoolDir).
func (s *Sink) keepDenied() bool { return s.sp != nil }

func anyReplayed(recs []record) bool {
	for i := range recs {
		if recs[i].replayed {
			return true
		}
	}
	return false
}

// submit makes one attempt at storing recs: a transaction, or a single
// insert for one record.
func (w *txWriter) submit(recs []record) *OpError {
	s := w.s
	ctx, cancel := context.WithTimeout(s.hardCtx, s.opts.RequestTimeout)
	defer cancel()
	ctx = noSDKRetry(ctx)
	w.buf = w.buf[:0]
	var entity []byte
	if len(recs) == 1 {
		w.buf, entity = inShard(w.buf, recs[0].data, recs[0].pk, w.pk)
		_, err := s.table.AddEntity(ctx, entity, nil)
		return classify("AddEntity", err, s.hardCtx)
	}
	w.actions = w.actions[:0]
	for _, r := range recs {
		w.buf, entity = inShard(w.buf, r.data, r.pk, w.pk)
		w.actions = append(w.actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: entity})
	}
	_, err := s.table.SubmitTransaction(ctx, w.actions, nil)
	clear(w.actions)
	return classify("SubmitTransaction", err, s.hardCtx)
}

// insertOne inserts one entity, retrying transient failures, and denied
// ones too if retryDenied, until ctx ends. It returns nil when the entity
// is stored (or already was).
func (s *Sink) insertOne(ctx context.Context, entity []byte, retryDenied bool) *OpError {
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		_, err := s.table.AddEntity(noSDKRetry(rctx), entity, nil)
		cancel()
		e := classify("AddEntity", err, ctx)
		if e == nil || e.class == exists {
			return nil
		}
		if e.class != transient && (e.class != denied || !retryDenied) {
			return e
		}
		s.c.retries.Add(1)
		kind := "transient"
		if e.class == denied {
			kind = "denied"
			if e.StatusCode == http.StatusNotFound && !s.opts.NoCreateTable {
				s.tableReady.Store(false) // the table is missing: create it again
				s.ensureTable()
			}
		}
		s.reportLimited(kind, e)
		if !s.backoffCtx(ctx, attempt, e.RetryAfter) {
			return &OpError{Op: "AddEntity", Err: context.Canceled, class: aborted}
		}
	}
}

// backoff sleeps before retry number attempt+1: a random time between half
// and all of min(MinRetryInterval*2^attempt, MaxRetryInterval), or the
// service's Retry-After when that is longer. It returns false if the sink
// gave up meanwhile.
func (s *Sink) backoff(attempt int, retryAfter time.Duration) bool {
	return s.backoffCtx(s.hardCtx, attempt, retryAfter)
}

// backoffCtx is backoff giving up when ctx ends.
func (s *Sink) backoffCtx(ctx context.Context, attempt int, retryAfter time.Duration) bool {
	d := s.opts.MaxRetryInterval
	if attempt < 30 {
		if x := s.opts.MinRetryInterval << attempt; x > 0 && x < d {
			d = x
		}
	}
	d = d/2 + rand.N(d/2+1)
	if retryAfter > d {
		d = retryAfter
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// noSDKRetry turns off azcore's retry policy for one write of an
// *aztables.Client (a tablelog.Client never retries writes): the sink
// retries itself, with backoff, honouring Retry-After, and knowing that an
// earlier attempt may have been stored, so azcore's retries would only
// stack on top of its own.
func noSDKRetry(ctx context.Context) context.Context {
	return policy.WithRetryOptions(ctx, policy.RetryOptions{MaxRetries: -1})
}
