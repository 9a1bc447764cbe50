// Package sink writes logs to Azure Table Storage (or the Cosmos DB Table
// API) from zap (Sink.Core) and log/slog (Sink.Handler).
//
// A Sink is a bounded, batching background writer. The logging goroutine
// only encodes a record into its entity (keys included, so a retry can never
// store it twice) and queues a copy of the bytes; background goroutines group
// the queue into entity-group transactions of one partition each and send up
// to Options.MaxInFlight of them at a time, retrying transient failures with
// exponential backoff and jitter. A transaction the service rejects is
// bisected until the bad record is found; its neighbours are stored, and the
// bad record is replaced by a minimal repair entity or, if even that is
// refused, counted and reported.
//
//	s, err := sink.New(logsTable, sink.Options{Service: "checkout"})
//	logger := zap.New(s.Core(zapcore.InfoLevel))
//	slogger := slog.New(s.Handler(&slog.HandlerOptions{Level: slog.LevelInfo}))
//	defer s.Close(ctx)
//
// Nothing is lost silently: every record is counted in Stats as written,
// failed, dropped or rejected, and errors that cannot be returned go to
// Options.ErrorHandler.
package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/tablelog/tablelog/internal/schema"
)

// ErrClosed is returned by writes after Close has begun. Such records are
// counted in Stats.Rejected.
var ErrClosed = errors.New("sink: closed")

// Sink is the background writer shared by the zap cores and slog handlers
// made from it. It is safe for concurrent use. Create it with New and stop
// it with Close; a Sink that is never closed keeps its goroutines and may
// lose the records still buffered when the process exits.
type Sink struct {
	table Table
	opts  Options
	gen   *schema.Generator
	pkc   atomic.Pointer[pkCache]
	pool  sync.Pool // *encState

	mu           sync.Mutex
	space        *sync.Cond // signalled when buffered bytes shrink or Close begins
	blocked      int        // writers waiting on space
	pending      []record   // enqueued, not yet handed to a transaction
	spare        []record
	pendingBytes int
	bufBytes     int // entity bytes enqueued and not yet finished
	bufRecs      int
	seq          uint64 // records enqueued so far; record seq numbers are 1..seq
	kicked       bool
	closed       bool
	waiters      []*waiter
	lastErr      error // last reason a record was given up on

	kick     chan struct{} // a full transaction is waiting
	flushNow chan struct{} // send everything now
	quit     chan struct{} // Close: dispatcher sends what is left and exits
	work     chan *batch
	hardCtx  context.Context // cancelled when Close gives up
	hardStop context.CancelFunc
	wg       sync.WaitGroup // dispatcher and workers
	closeMu  sync.Mutex
	stopped  chan struct{} // closed when Close has finished

	tableMu    sync.Mutex
	tableReady bool

	limitMu    sync.Mutex
	limitLast  map[string]time.Time
	limitCount map[string]int

	c counters
}

type counters struct {
	enqueued, written, dropped, rejected        atomic.Uint64
	repaired, truncated, replaced, retries      atomic.Uint64
	failedBatches, failedRecords, catalogWrites atomic.Uint64
}

// record is one encoded entity waiting to be stored.
type record struct {
	pk   string
	data []byte
	seq  uint64
}

// batch is one transaction's worth of records of a single partition.
type batch struct {
	pk      string
	recs    []record
	catalog bool // the first batch of its partition in this process
}

// waiter is a Flush waiting for the records enqueued before it.
type waiter struct {
	upto      uint64 // records with seq <= upto
	remaining int
	failed    int
	done      chan struct{}
}

type pkCache struct {
	lo, hi int64 // the UTC day [lo, hi) in Unix seconds
	pk     string
}

// Stats are the Sink's counters. Every record a logger hands to the sink
// ends up in exactly one of Written, FailedRecords, Dropped, Rejected, or is
// still buffered: Enqueued = Written + FailedRecords + BufferedRecords.
type Stats struct {
	Enqueued uint64 // records accepted into the buffer
	Written  uint64 // records stored (including Replaced)
	Dropped  uint64 // records discarded because the buffer was full (DropNewest)
	Rejected uint64 // records refused because the Sink was closed

	Repaired  uint64 // values the encoder stored in another form (see internal/schema)
	Truncated uint64 // values the encoder cut short or left out to fit the entity limits
	Replaced  uint64 // records the service rejected, stored as a minimal repair entity instead

	Retries       uint64 // request attempts repeated after a transient failure
	FailedBatches uint64 // transactions the service rejected permanently (then bisected)
	FailedRecords uint64 // records given up on: rejected and not repairable, or abandoned by Close

	CatalogWrites uint64 // catalog entities stored (or found already stored)

	BufferedRecords int // records enqueued and not yet stored or given up on
	BufferedBytes   int // their entity bytes, bounded by Options.BufferBytes
}

// DeliveryError is the error of a Flush or Close that could not confirm
// every record it waited for as stored.
type DeliveryError struct {
	Op      string // "flush" or "close"
	Failed  int    // records given up on (rejected and not repairable; for Close, also those abandoned at the deadline)
	Pending int    // records still buffered or being retried when the context ended (Flush only)
	Err     error  // the context's error, or the last reason a record was given up on
}

// Error says how many records were not stored and why.
func (e *DeliveryError) Error() string {
	n := e.Failed + e.Pending
	what := "records were"
	if n == 1 {
		what = "record was"
	}
	var detail string
	switch {
	case e.Failed > 0 && e.Pending > 0:
		detail = fmt.Sprintf(" (%d failed, %d still pending)", e.Failed, e.Pending)
	case e.Pending > 0:
		detail = " (still pending)"
	}
	if e.Err == nil {
		return fmt.Sprintf("sink: %s: %d %s not delivered%s", e.Op, n, what, detail)
	}
	return fmt.Sprintf("sink: %s: %d %s not delivered%s: %v", e.Op, n, what, detail, e.Err)
}

// Unwrap returns the underlying cause.
func (e *DeliveryError) Unwrap() error { return e.Err }

// New returns a Sink writing to table (typically an *aztables.Client for the
// logs table) and starts its background goroutines. It returns an error for
// invalid Options (an invalid Service name above all); it does no I/O: the
// table is created, unless Options.NoCreateTable, before the first write.
func New(table Table, opts Options) (*Sink, error) {
	if table == nil {
		return nil, errors.New("sink: table is nil")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Sink{
		table:      table,
		opts:       o,
		gen:        schema.NewGenerator(nil),
		kick:       make(chan struct{}, 1),
		flushNow:   make(chan struct{}, 1),
		quit:       make(chan struct{}),
		work:       make(chan *batch),
		stopped:    make(chan struct{}),
		limitLast:  map[string]time.Time{},
		limitCount: map[string]int{},
		tableReady: o.NoCreateTable,
	}
	s.space = sync.NewCond(&s.mu)
	s.pool.New = func() any { return newEncState(s) }
	s.hardCtx, s.hardStop = context.WithCancel(context.Background())
	s.wg.Add(1 + o.MaxInFlight)
	go s.dispatch()
	for range o.MaxInFlight {
		go s.worker()
	}
	return s, nil
}

// Stats returns a snapshot of the counters. It is safe to call at any time.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	st := Stats{BufferedRecords: s.bufRecs, BufferedBytes: s.bufBytes}
	s.mu.Unlock()
	st.Enqueued = s.c.enqueued.Load()
	st.Written = s.c.written.Load()
	st.Dropped = s.c.dropped.Load()
	st.Rejected = s.c.rejected.Load()
	st.Repaired = s.c.repaired.Load()
	st.Truncated = s.c.truncated.Load()
	st.Replaced = s.c.replaced.Load()
	st.Retries = s.c.retries.Load()
	st.FailedBatches = s.c.failedBatches.Load()
	st.FailedRecords = s.c.failedRecords.Load()
	st.CatalogWrites = s.c.catalogWrites.Load()
	return st
}

// partitionKey returns the PartitionKey of a record at t, cached per day.
func (s *Sink) partitionKey(t time.Time) string {
	sec := t.Unix()
	if c := s.pkc.Load(); c != nil && sec >= c.lo && sec < c.hi {
		return c.pk
	}
	day := schema.Day(t)
	c := &pkCache{lo: day.Unix(), hi: day.Unix() + 86400, pk: schema.PartitionKey(s.opts.Service, t)}
	s.pkc.Store(c)
	return c.pk
}

// enqueue queues a copy of entity under partition pk. It blocks, drops or
// refuses according to Options.Overflow and Close; only a refusal is an
// error.
func (s *Sink) enqueue(pk string, entity []byte) error {
	n := len(entity)
	data := make([]byte, n)
	copy(data, entity)

	s.mu.Lock()
	for !s.closed && s.bufBytes > 0 && s.bufBytes+n > s.opts.BufferBytes {
		if s.opts.Overflow == DropNewest {
			s.mu.Unlock()
			s.c.dropped.Add(1)
			s.signal(s.flushNow)
			s.reportLimited("drop", errors.New("sink: buffer full (Options.BufferBytes); dropping records (Overflow: DropNewest)"))
			return nil
		}
		s.blocked++
		s.signal(s.flushNow)
		s.space.Wait()
		s.blocked--
	}
	if s.closed {
		s.mu.Unlock()
		s.c.rejected.Add(1)
		s.reportLimited("closed", ErrClosed)
		return ErrClosed
	}
	s.seq++
	s.pending = append(s.pending, record{pk: pk, data: data, seq: s.seq})
	s.pendingBytes += n
	s.bufBytes += n
	s.bufRecs++
	kick := !s.kicked && (len(s.pending) >= s.opts.BatchSize || s.pendingBytes >= maxPayload/2)
	if kick {
		s.kicked = true
	}
	s.mu.Unlock()
	s.c.enqueued.Add(1)
	if kick {
		s.signal(s.kick)
	}
	return nil
}

// signal does a non-blocking send on a 1-buffered channel.
func (s *Sink) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Flush sends every record enqueued before the call and waits until each is
// stored or given up on. It returns nil when all are stored; otherwise a
// *DeliveryError saying how many are not: given up on (rejected and not
// repairable) or, when ctx ends first, still pending (they stay buffered and
// are retried). Flush is safe for concurrent use, also during and after
// Close.
func (s *Sink) Flush(ctx context.Context) error {
	s.mu.Lock()
	outstanding := s.bufRecs
	if outstanding == 0 {
		s.mu.Unlock()
		return nil
	}
	w := &waiter{upto: s.seq, remaining: outstanding, done: make(chan struct{})}
	s.waiters = append(s.waiters, w)
	s.mu.Unlock()
	s.signal(s.flushNow)

	select {
	case <-w.done:
		s.mu.Lock()
		failed, last := w.failed, s.lastErr
		s.mu.Unlock()
		if failed > 0 {
			return &DeliveryError{Op: "flush", Failed: failed, Err: last}
		}
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		s.removeWaiter(w)
		failed, pending := w.failed, w.remaining
		s.mu.Unlock()
		if pending == 0 && failed == 0 {
			return nil
		}
		return &DeliveryError{Op: "flush", Failed: failed, Pending: pending, Err: ctx.Err()}
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

// Close refuses further writes (counted in Stats.Rejected), stores
// everything buffered and stops the background goroutines. If ctx ends
// first, Close abandons the records not yet stored and returns a
// *DeliveryError naming how many were not delivered; it returns once the
// goroutines have stopped, shortly after ctx ends. Close also reports
// records given up on while it ran. Calling Close again waits for the first
// call and returns nil.
func (s *Sink) Close(ctx context.Context) error {
	s.closeMu.Lock()
	select {
	case <-s.stopped:
		s.closeMu.Unlock()
		return nil
	default:
	}
	defer s.closeMu.Unlock()
	defer close(s.stopped)

	failedBefore := s.c.failedRecords.Load()
	s.mu.Lock()
	s.closed = true
	s.space.Broadcast()
	s.mu.Unlock()

	ferr := s.Flush(ctx)
	var ctxErr error
	if de, ok := ferr.(*DeliveryError); ok && de.Pending > 0 {
		ctxErr = de.Err
		s.hardStop() // abort retries and requests in flight
	}
	close(s.quit)
	s.wg.Wait()
	s.hardStop()

	// Whatever the dispatcher never handed out (only after hardStop).
	s.mu.Lock()
	left := s.pending
	s.pending = nil
	s.pendingBytes = 0
	s.mu.Unlock()
	if len(left) > 0 {
		s.finish(left, false, context.Canceled)
	}

	failed := int(s.c.failedRecords.Load() - failedBefore)
	if failed == 0 {
		return nil
	}
	err := ctxErr
	if err == nil {
		s.mu.Lock()
		err = s.lastErr
		s.mu.Unlock()
	}
	return &DeliveryError{Op: "close", Failed: failed, Err: err}
}

// finish marks recs as stored (ok) or given up on, releases their buffer
// space and wakes what waits for them.
func (s *Sink) finish(recs []record, ok bool, cause error) {
	if len(recs) == 0 {
		return
	}
	if ok {
		s.c.written.Add(uint64(len(recs)))
	} else {
		s.c.failedRecords.Add(uint64(len(recs)))
	}
	s.mu.Lock()
	for _, r := range recs {
		s.bufBytes -= len(r.data)
	}
	s.bufRecs -= len(recs)
	if !ok && cause != nil {
		s.lastErr = cause
	}
	for i := 0; i < len(s.waiters); {
		w := s.waiters[i]
		for _, r := range recs {
			if r.seq <= w.upto {
				w.remaining--
				if !ok {
					w.failed++
				}
			}
		}
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
	s.mu.Unlock()
}

// ---- background: dispatcher ----

// maxPayload is the payload budget of one transaction: Azure's 4 MiB less a
// margin for the multipart framing around the operations.
const maxPayload = schema.MaxBatchBytes - 64<<10

// opOverhead is what one insert operation adds to a transaction besides
// its entity JSON: the MIME part headers and the request line and headers.
const opOverhead = 1 << 10

// wireSize estimates the bytes one entity takes in a transaction. aztables
// re-encodes entities with encoding/json, which escapes <, > and & as
// \u003c (six bytes) and U+2028/U+2029 as \u2028 (three more).
func wireSize(data []byte) int {
	n := len(data) + opOverhead
	n += 5 * (bytes.Count(data, []byte{'<'}) + bytes.Count(data, []byte{'>'}) + bytes.Count(data, []byte{'&'}))
	if bytes.Contains(data, []byte("\xe2\x80")) {
		n += 3 * (bytes.Count(data, []byte("\u2028")) + bytes.Count(data, []byte("\u2029")))
	}
	return n
}

// dispatch cuts the queue into transactions and hands them to the workers:
// full ones as soon as they are full, the rest every FlushInterval and on
// Flush, a blocked writer, or Close.
func (s *Sink) dispatch() {
	defer s.wg.Done()
	defer close(s.work)
	seen := map[string]bool{} // partitions whose catalog entity was sent
	tick := time.NewTicker(s.opts.FlushInterval)
	defer tick.Stop()
	for {
		all := true
		select {
		case <-s.kick:
			all = false
		case <-tick.C:
		case <-s.flushNow:
		case <-s.quit:
			s.send(true, seen)
			return
		case <-s.hardCtx.Done():
			return
		}
		s.send(all, seen)
	}
}

// send takes the queue and hands it to the workers in transactions. Unless
// all, a partial last transaction of a partition goes back to the queue.
func (s *Sink) send(all bool, seen map[string]bool) {
	s.mu.Lock()
	recs := s.pending
	s.pending, s.spare = s.spare[:0], nil
	s.pendingBytes = 0
	s.kicked = false
	s.mu.Unlock()
	if len(recs) == 0 {
		s.mu.Lock()
		if s.spare == nil {
			s.spare = recs
		}
		s.mu.Unlock()
		return
	}

	var batches []*batch
	var keep []record
	// Group by partition in order of first appearance; nearly always one.
	for len(recs) > 0 {
		pk := recs[0].pk
		var group, rest []record
		if last := recs[len(recs)-1].pk; last == pk {
			group = recs // fast path: one partition
		} else {
			for _, r := range recs {
				if r.pk == pk {
					group = append(group, r)
				} else {
					rest = append(rest, r)
				}
			}
		}
		var cur *batch
		size := 0
		for _, r := range group {
			ws := wireSize(r.data)
			if cur == nil || len(cur.recs) >= s.opts.BatchSize || (len(cur.recs) > 0 && size+ws > maxPayload) {
				cur = &batch{pk: pk, recs: make([]record, 0, min(len(group), s.opts.BatchSize))}
				batches = append(batches, cur)
				size = 0
			}
			cur.recs = append(cur.recs, r)
			size += ws
		}
		if !all && cur != nil && len(cur.recs) < s.opts.BatchSize && size < maxPayload/2 {
			keep = append(keep, cur.recs...)
			batches = batches[:len(batches)-1]
		}
		if group == nil || len(rest) == 0 && len(group) == len(recs) {
			break
		}
		recs = rest
	}
	// Recycle the queue's backing array.
	if cap(recs) > 0 {
		full := recs[:cap(recs)]
		clear(full)
	}
	s.mu.Lock()
	if len(keep) > 0 {
		s.pending = append(keep, s.pending...)
		for _, r := range keep {
			s.pendingBytes += len(r.data)
		}
	}
	s.mu.Unlock()

	for _, b := range batches {
		if !seen[b.pk] {
			seen[b.pk] = true
			b.catalog = true
		}
		select {
		case s.work <- b:
		case <-s.hardCtx.Done():
			s.finish(b.recs, false, context.Canceled)
		}
	}
}

// ---- background: workers ----

func (s *Sink) worker() {
	defer s.wg.Done()
	for b := range s.work {
		if s.hardCtx.Err() != nil {
			s.finish(b.recs, false, context.Canceled)
			continue
		}
		s.ensureTable()
		if b.catalog {
			s.writeCatalog(b.pk)
		}
		s.store(b.recs, false)
	}
}

// ensureTable creates the table once, before the first write, unless
// Options.NoCreateTable. A failure other than "already exists" is reported
// and writing goes ahead (the table may exist; writes will tell).
func (s *Sink) ensureTable() {
	s.tableMu.Lock()
	defer s.tableMu.Unlock()
	if s.tableReady {
		return
	}
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(s.hardCtx, s.opts.RequestTimeout)
		_, err := s.table.CreateTable(ctx, nil)
		cancel()
		e := classify("CreateTable", err, s.hardCtx)
		switch {
		case e == nil, e.class == exists:
			s.tableReady = true
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
			s.tableReady = true
			s.opts.ErrorHandler(fmt.Errorf("sink: cannot create the table (set Options.NoCreateTable if the credentials may not): %w", e))
			return
		}
	}
}

// store writes recs (one partition) as one transaction, retrying transient
// failures; a permanent failure is bisected down to the bad records.
// uncertain says an earlier attempt of exactly this set of records may have
// been committed (its response was lost).
func (s *Sink) store(recs []record, uncertain bool) {
	for attempt := 0; ; attempt++ {
		e := s.submit(recs)
		if e == nil {
			s.finish(recs, true, nil)
			return
		}
		switch e.class {
		case exists:
			// A transaction is atomic: if an earlier attempt of this very
			// set may have committed, "already exists" means it did.
			if len(recs) == 1 || uncertain {
				s.finish(recs, true, nil)
				return
			}
		case transient:
			uncertain = true
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
			if e.StatusCode == 404 && e.Code == "TableNotFound" && !s.opts.NoCreateTable && attempt == 0 {
				s.tableMu.Lock()
				s.tableReady = false
				s.tableMu.Unlock()
				s.ensureTable()
				continue
			}
			if len(recs) > 1 {
				s.c.failedBatches.Add(1)
			}
			err := fmt.Errorf("sink: %d records not stored: %w", len(recs), e)
			s.opts.ErrorHandler(err)
			s.finish(recs, false, err)
			return
		}
		// Permanent (or a conflict we cannot attribute): isolate.
		if len(recs) == 1 {
			s.repair(recs[0], e)
			return
		}
		s.c.failedBatches.Add(1)
		half := len(recs) / 2
		s.store(recs[:half], false)
		s.store(recs[half:], false)
		return
	}
}

// submit makes one attempt at storing recs: a transaction, or a single
// insert for one record.
func (s *Sink) submit(recs []record) *OpError {
	ctx, cancel := context.WithTimeout(s.hardCtx, s.opts.RequestTimeout)
	defer cancel()
	if len(recs) == 1 {
		_, err := s.table.AddEntity(ctx, recs[0].data, nil)
		return classify("AddEntity", err, s.hardCtx)
	}
	actions := make([]aztables.TransactionAction, len(recs))
	for i, r := range recs {
		actions[i] = aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: r.data}
	}
	_, err := s.table.SubmitTransaction(ctx, actions, nil)
	return classify("SubmitTransaction", err, s.hardCtx)
}

// insertOne inserts one entity, retrying transient failures. It returns
// nil when the entity is stored (or already was).
func (s *Sink) insertOne(entity []byte) *OpError {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(s.hardCtx, s.opts.RequestTimeout)
		_, err := s.table.AddEntity(ctx, entity, nil)
		cancel()
		e := classify("AddEntity", err, s.hardCtx)
		if e == nil || e.class == exists {
			return nil
		}
		if e.class != transient {
			return e
		}
		s.c.retries.Add(1)
		s.reportLimited("transient", e)
		if !s.backoff(attempt, e.RetryAfter) {
			return &OpError{Op: "AddEntity", Err: context.Canceled, class: aborted}
		}
	}
}

// backoff sleeps before retry number attempt+1: a random time between half
// and all of min(MinRetryInterval*2^attempt, MaxRetryInterval), or the
// service's Retry-After when that is longer. It returns false if the sink
// gave up meanwhile.
func (s *Sink) backoff(attempt int, retryAfter time.Duration) bool {
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
	case <-s.hardCtx.Done():
		return false
	}
}

// ---- error reporting ----

// reportLimited passes err to the ErrorHandler at most once a second per
// kind, with the number of reports suppressed since.
func (s *Sink) reportLimited(kind string, err error) {
	s.limitMu.Lock()
	now := time.Now()
	if last, ok := s.limitLast[kind]; ok && now.Sub(last) < time.Second {
		s.limitCount[kind]++
		s.limitMu.Unlock()
		return
	}
	n := s.limitCount[kind]
	s.limitLast[kind] = now
	s.limitCount[kind] = 0
	s.limitMu.Unlock()
	if n > 0 {
		err = fmt.Errorf("%w (and %d more like it)", err, n)
	}
	s.opts.ErrorHandler(err)
}
