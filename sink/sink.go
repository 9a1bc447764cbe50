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
//
// # Shards
//
// One partition takes about 2,000 entities/s on Azure, and a service writes
// one partition per UTC day. When a transaction is throttled (503
// ServerBusy, or OperationTimedOut) after being spread over every shard
// the day has, the sink adds a shard partition "<service>_<yyyyMMdd>_<k>"
// to the day (at most one every 100 ms, up to Options.MaxShards, default
// 16; 1 turns this off) and spreads the day's later transactions over its
// shards round-robin, passing over a shard for 500 ms after it throttled
// one. A transaction never mixes shards, and its retries stay in its
// shard. Before a shard's first record, a background goroutine inserts the
// shard's catalog entry and its marker in the day's own partition
// (insert-only, so an add-only credential suffices, and several processes
// of one service can announce the same shard); the shard is used only
// once both are stored, so readers (package query) learn of every shard
// before it holds a record, and no logging call or worker waits for an
// announcement. A shard whose announcement fails is not used. Stats.Shards
// and Stats.ShardsAdded show what happened.
//
// # Durable spool
//
// By default the buffer lives in memory: what it holds when the process
// dies is lost, and an outage longer than Options.BufferBytes covers makes
// writers block or drop (Options.Overflow). With Options.SpoolDir, every
// record is also appended to a local segment file (length-prefixed, with a
// CRC-32C) on the writing goroutine before Write or Handle returns, and
// removed once the table holds it:
//
//	s, err := sink.New(logsTable, sink.Options{Service: "checkout", SpoolDir: "/var/lib/checkout/logspool"})
//	if errors.Is(err, sink.ErrSpoolUnavailable) {
//		// s works without a spool (memory only); err says why.
//	}
//
// What that guarantees:
//
//   - A crash of the process loses nothing whose Write or Handle returned:
//     the next New on the directory sends what was not stored. A record
//     torn by the crash (or damaged on disk) is detected and skipped,
//     counted (Stats.SpoolCorrupt, Stats.SpoolCorruptBytes) and reported;
//     the records after it are still sent.
//   - A crash of the operating system or a power loss loses at most the
//     last 200ms of records with the default interval fsync, nothing with
//     Options.SpoolSync = SpoolSyncEveryRecord (see SpoolSync for its cost).
//   - Records are stored exactly once across a crash and a replay: keys are
//     fixed before a record is spooled, and "already exists" for a replayed
//     record means the crashed run stored it.
//   - When the memory budget is full, records wait on disk (Stats.Spilled)
//     rather than block or be dropped, up to Options.MaxSpoolBytes;
//     Overflow applies beyond it (Stats.SpoolFull). Each record waiting on
//     disk keeps 40 bytes in memory, counted in BufferBytes (see
//     Options.SpoolDir), so the memory bound holds in the longest outage.
//   - Close at its deadline leaves what it could not store in the spool for
//     the next run, and its *DeliveryError says so.
//
// A record leaves the spool only once stored, or once the service rejected
// that very record and refused its repair entity too (reported, never
// replayed). A request the service denies (401, 403, 404: an expired SAS,
// a firewall, clock skew, RBAC not yet propagated, a table deleted under
// NoCreateTable) says nothing about its records: with a spool they are
// retried with backoff like a transient failure and stay on disk, and
// Close at its deadline leaves them there for the next run (its
// *DeliveryError counts them in Spooled). Without a spool, denied records
// are given up on at once: counted in Stats.FailedRecords and reported. Records the spool refused
// (a full or failing disk: Stats.SpoolFull, Stats.SpoolErrors) are kept in
// memory only, under BufferBytes and Overflow.
//
// Cost: a write(2) per record on the logging goroutine, and the disk
// bandwidth of the entities (about 600 bytes a record). The README's
// Benchmarks section has the measured records/s with and without the spool
// (BenchmarkEndToEnd), for both SpoolSync policies.
package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/internal/spool"
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

	life lifecycle // lifecycle.go: open, closing, stopping, closed
	buf  *buffer   // buffer.go: the records not yet stored, Flush waiters

	sp                *spool.Spool  // nil without Options.SpoolDir or if it cannot be opened
	replayDone        chan struct{} // closed when the replay goroutine exits; nil if none
	spoolCorrupt      uint64        // invalid regions the spool skipped when opened
	spoolCorruptBytes uint64        // and their bytes

	quit     chan struct{} // Close: dispatcher sends what is left and exits
	work     chan *batch
	hardCtx  context.Context // cancelled when Close gives up
	hardStop context.CancelFunc
	shardCtx context.Context // cancelled at phaseStopping: shard announcements stop
	shardEnd context.CancelFunc
	wg       sync.WaitGroup // dispatcher, workers, shard announcements
	closeMu  sync.Mutex     // one Close at a time

	batchPool sync.Pool // *batch

	tableSem   chan struct{} // held while creating the table (a channel, not a mutex: waiters can give up)
	tableReady atomic.Bool

	shards   shardSet   // shard.go
	catalogs catalogSet // catalog.go
	limit    *rateLimit // of reportLimited

	c counters
}

type counters struct {
	enqueued, written, dropped, rejected        atomic.Uint64
	repaired, truncated, replaced, retries      atomic.Uint64
	failedBatches, failedRecords, catalogWrites atomic.Uint64
	spooled, spilled, replayed, spoolFull       atomic.Uint64
	spoolErrors, shardsAdded, blocked           atomic.Uint64
}

// Of counters, enqueued, written, failedRecords, dropped and rejected
// change under the buffer's mutex (see buffer.stats).

type pkCache struct {
	lo, hi int64 // the UTC day [lo, hi) in Unix seconds
	pk     string
}

// Stats are the Sink's counters. Every record a logger hands to the sink
// ends up in exactly one of Written, FailedRecords, Dropped, Rejected, or is
// still buffered: Enqueued = Written + FailedRecords + BufferedRecords.
// Records replayed from the spool of an earlier run count as enqueued.
type Stats struct {
	Enqueued uint64 // records accepted into the buffer (Replayed ones included)
	Written  uint64 // records stored (including Replaced)
	Dropped  uint64 // records discarded because the buffer was full (DropNewest)
	Rejected uint64 // records refused because the Sink was closed
	Blocked  uint64 // writes that waited for room in the buffer (Overflow Block) before being enqueued or refused

	// Repaired and Truncated count when a record is encoded: during the
	// logging call, or, for a record the dispatcher encodes (see Core and
	// Handler), before the Flush or Close that covers it returns.
	Repaired  uint64 // values the encoder stored in another form (see internal/schema)
	Truncated uint64 // values the encoder cut short or left out to fit the entity limits
	Replaced  uint64 // records the service rejected, stored as a minimal repair entity instead

	Retries       uint64 // request attempts repeated after a transient failure
	FailedBatches uint64 // transactions the service rejected permanently (then bisected)
	FailedRecords uint64 // records given up on: rejected and not repairable, or abandoned by Close (with a spool, those stay in it for the next run)

	CatalogWrites uint64 // catalog entities stored (or found already stored), shards' included

	// Shards is the most shard partitions a day uses now (1 until a
	// partition throttles; at most Options.MaxShards). ShardsAdded counts
	// the shards added since New, over all days.
	Shards      int
	ShardsAdded uint64

	BufferedRecords int // records enqueued and not yet stored or given up on (those waiting in the spool included)
	BufferedBytes   int // entity bytes (+512 each) of those held in memory, +40 for each waiting in the spool: bounded by Options.BufferBytes

	// The spool (Options.SpoolDir); all zero without one.
	SpooledRecords uint64 // records appended to the spool (safe from a process crash once written)
	SpoolBytes     int64  // bytes of spool files on disk now, bounded by Options.MaxSpoolBytes
	Spilled        uint64 // records that found the buffer full and waited on disk instead of in memory
	Replayed       uint64 // records of an earlier run read from the spool and sent again
	SpoolFull      uint64 // records not spooled because the spool held MaxSpoolBytes (Overflow applied)
	SpoolErrors    uint64 // spool failures: New could not open it, a record could not be appended (kept in memory only), an acknowledgement or a replay failed
	SpoolCorrupt   uint64 // damaged regions (such as a record torn by a crash) New found in the spool and skipped (reported to the ErrorHandler)

	// SpoolCorruptBytes is the size of those regions. A damaged frame
	// costs only itself: the scan resynchronises on the next frame whose
	// CRC-32C checks, so the records after it in its segment are sent.
	SpoolCorruptBytes uint64
}

// DeliveryError is the error of a Flush or Close that could not confirm
// every record it waited for as stored.
type DeliveryError struct {
	Op      string // "flush" or "close"
	Failed  int    // records given up on (rejected and not repairable; for Close, also those abandoned at the deadline)
	Pending int    // records still buffered or being retried when the context ended (Flush only)
	Spooled int    // Close only: of Failed, the records abandoned at the deadline that stay in the spool for the next Sink on Options.SpoolDir
	Err     error  // the context's error, or the last reason a record was given up on

	spoolDir string
}

// Error says how many records were not stored and why, and how many wait in
// the spool for the next run.
func (e *DeliveryError) Error() string {
	n := e.Failed + e.Pending
	var b strings.Builder
	fmt.Fprintf(&b, "sink: %s: ", e.Op)
	if n > 0 || e.Spooled == 0 {
		what := "records were"
		if n == 1 {
			what = "record was"
		}
		fmt.Fprintf(&b, "%d %s not delivered", n, what)
		switch {
		case e.Failed > 0 && e.Pending > 0:
			fmt.Fprintf(&b, " (%d failed, %d still pending)", e.Failed, e.Pending)
		case e.Pending > 0:
			b.WriteString(" (still pending)")
		}
		if e.Err != nil {
			b.WriteString(": ")
		}
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	if e.Spooled > 0 {
		if b.Len() > len("sink: "+e.Op+": ") {
			b.WriteString("; ")
		}
		what := "records stay"
		if e.Spooled == 1 {
			what = "record stays"
		}
		fmt.Fprintf(&b, "%d %s in the spool", e.Spooled, what)
		if e.spoolDir != "" {
			b.WriteString(" " + e.spoolDir)
		}
		b.WriteString(", not lost: the next Sink opened on it sends them")
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *DeliveryError) Unwrap() error { return e.Err }

// New returns a Sink writing to table (typically an *aztables.Client for the
// logs table) and starts its background goroutines. It returns a nil Sink
// and an error for invalid Options (an invalid Service name above all). It
// does no network I/O: the table is created, unless Options.NoCreateTable,
// before the first write.
//
// With Options.SpoolDir, New opens the spool directory (reading the files
// an earlier run left there, about a second per GiB) and starts sending the
// records they hold that were not stored. If the directory cannot be used,
// New returns both a working Sink, without a spool, and an error wrapping
// ErrSpoolUnavailable that says why: keep the Sink to log with the memory
// policy alone, or Close it to refuse running without the spool.
func New(table Table, opts Options) (*Sink, error) {
	if table == nil {
		return nil, errors.New("sink: table is nil")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Sink{
		table:    table,
		opts:     o,
		gen:      schema.NewGenerator(nil),
		quit:     make(chan struct{}),
		work:     make(chan *batch),
		limit:    newRateLimit(time.Second),
		tableSem: make(chan struct{}, 1),
		shards:   shardSet{max: o.MaxShards, days: map[string]*dayShards{}},
	}
	s.tableReady.Store(o.NoCreateTable)
	s.buf = newBuffer(o, &s.life, &s.c)
	s.pool.New = func() any { return newEncState(s) }
	s.hardCtx, s.hardStop = context.WithCancel(context.Background())
	s.shardCtx, s.shardEnd = context.WithCancel(s.hardCtx)
	var spoolErr error
	if o.SpoolDir != "" {
		spoolErr = s.openSpool()
	}
	s.wg.Add(1 + o.MaxInFlight)
	go s.dispatch()
	for range o.MaxInFlight {
		go s.worker()
	}
	if s.replayDone != nil {
		go s.replay()
	}
	return s, spoolErr
}

// Stats returns a snapshot of the counters. It is safe to call at any time.
func (s *Sink) Stats() Stats {
	var st Stats
	s.buf.stats(&st) // the record counts, a consistent snapshot
	st.Blocked = s.c.blocked.Load()
	st.Repaired = s.c.repaired.Load()
	st.Truncated = s.c.truncated.Load()
	st.Replaced = s.c.replaced.Load()
	st.Retries = s.c.retries.Load()
	st.FailedBatches = s.c.failedBatches.Load()
	st.CatalogWrites = s.c.catalogWrites.Load()
	st.Shards = s.shardCount()
	st.ShardsAdded = s.c.shardsAdded.Load()
	st.SpooledRecords = s.c.spooled.Load()
	st.Spilled = s.c.spilled.Load()
	st.Replayed = s.c.replayed.Load()
	st.SpoolFull = s.c.spoolFull.Load()
	st.SpoolErrors = s.c.spoolErrors.Load()
	st.SpoolCorrupt = s.spoolCorrupt
	st.SpoolCorruptBytes = s.spoolCorruptBytes
	if s.sp != nil {
		st.SpoolBytes = s.sp.Stats().Bytes
	}
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

// Flush sends every record enqueued before the call (including those
// waiting in the spool, and those an earlier run left there that the
// replay has read so far) and waits until each is stored or given up on. It returns nil when all are stored; otherwise a
// *DeliveryError saying how many are not: given up on (rejected and not
// repairable; including those given up on before the call that no earlier
// Flush or Close reported) or, when ctx ends first, still pending (they stay
// buffered and are retried). Flush is safe for concurrent use, also during
// and after Close.
func (s *Sink) Flush(ctx context.Context) error {
	w, prior, last := s.buf.wait()
	if w == nil {
		if prior > 0 {
			return &DeliveryError{Op: "flush", Failed: prior, Err: last}
		}
		return nil
	}
	signal(s.buf.flushNow)
	select {
	case <-w.done:
		if failed, _, last := s.buf.result(w); failed > 0 {
			return &DeliveryError{Op: "flush", Failed: failed, Err: last}
		}
		return nil
	case <-ctx.Done():
		failed, pending, _ := s.buf.result(w)
		if pending == 0 && failed == 0 {
			return nil
		}
		return &DeliveryError{Op: "flush", Failed: failed, Pending: pending, Err: ctx.Err()}
	}
}

// Close refuses further writes (counted in Stats.Rejected), stores
// everything buffered and stops the background goroutines. If ctx ends
// first, Close abandons the records not yet stored and returns a
// *DeliveryError naming how many were not delivered; it returns once the
// goroutines have stopped, shortly after ctx ends. Close also reports
// records given up on while it ran, and earlier ones no Flush reported.
// Calling Close again waits for the first call and returns nil.
//
// With a spool (Options.SpoolDir), Close first lets the replay of an
// earlier run's records finish, and the records it abandons at the
// deadline are not lost: they stay in the spool, and the next Sink opened
// on the directory sends them (the *DeliveryError counts them in Spooled
// and says so). Close then closes the spool, releasing the directory.
func (s *Sink) Close(ctx context.Context) error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.life.atLeast(phaseClosed) {
		return nil
	}
	defer s.life.advance(phaseClosed)

	prior, failedBefore := s.buf.beginClose()
	s.life.advance(phaseClosing)
	s.buf.wake() // blocked writers: refused now

	if s.replayDone != nil {
		select {
		case <-s.replayDone:
		case <-ctx.Done():
		}
	}
	ferr := s.Flush(ctx)
	var ctxErr error
	if de, ok := ferr.(*DeliveryError); ok && de.Pending > 0 {
		ctxErr = de.Err
		s.hardStop() // abort retries and requests in flight
	}
	s.life.advance(phaseStopping)
	s.shardEnd() // nothing is left to spread over shards
	s.buf.wake() // the replay, waiting for room: stop
	if s.replayDone != nil {
		<-s.replayDone
	}
	close(s.quit)
	s.wg.Wait()
	s.hardStop()

	// Whatever the dispatcher never handed out (only after hardStop).
	if left := s.buf.drain(); len(left) > 0 {
		s.finish(left, false, context.Canceled)
	}

	// What stays in the spool: records abandoned here, and records of an
	// earlier run the replay did not reach.
	spooled := 0
	if s.sp != nil {
		spooled = int(s.sp.Stats().Pending)
		if err := s.sp.Close(); err != nil {
			s.c.spoolErrors.Add(1)
			s.opts.ErrorHandler(fmt.Errorf("sink: closing the spool: %w", err))
		}
	}

	s.buf.takeUnreported() // reported here
	failed := prior + int(s.c.failedRecords.Load()-failedBefore)
	if failed == 0 && spooled == 0 {
		return nil
	}
	err := ctxErr
	if err == nil && spooled > 0 {
		err = ctx.Err()
	}
	if err == nil {
		err = s.buf.lastError()
	}
	return &DeliveryError{Op: "close", Failed: failed, Spooled: spooled, Err: err, spoolDir: s.opts.SpoolDir}
}

// enqueue queues a copy of entity under partition pk (rk is its RowKey),
// appending it to the spool first when there is one. It blocks, drops or
// refuses according to Options.Overflow and Close (see buffer.put); only a
// refusal is an error.
func (s *Sink) enqueue(pk, rk string, entity []byte) error {
	var (
		tk      spool.Ticket
		spooled bool
	)
	if s.sp != nil {
		tk, spooled = s.spoolAppend(pk, rk, entity)
	}
	switch s.buf.put(pk, tk, spooled, entity) {
	case putDropped:
		if spooled {
			s.ack([]record{{tk: tk}}, true, nil) // dropped: not for the next run either
		}
		s.reportLimited("drop", errors.New("sink: buffer full (Options.BufferBytes); dropping records (Overflow: DropNewest)"))
	case putRefused:
		if spooled {
			s.ack([]record{{tk: tk}}, true, nil) // refused: not for the next run either
		}
		s.reportLimited("closed", ErrClosed)
		return ErrClosed
	}
	return nil
}

// enqueueDeferred queues z or sl (see deferred.go): it blocks, drops or
// refuses as enqueue does.
func (s *Sink) enqueueDeferred(z *pendingZap, sl *pendingSlog) error {
	switch s.buf.putDeferred(z, sl) {
	case putDropped:
		s.reportLimited("drop", errors.New("sink: buffer full (Options.BufferBytes); dropping records (Overflow: DropNewest)"))
	case putRefused:
		s.reportLimited("closed", ErrClosed)
		return ErrClosed
	}
	return nil
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
	if s.buf.finish(recs, ok, cause) {
		signal(s.buf.kick) // the dispatcher reads spilled records back
	}
}

// reportLimited passes err to the ErrorHandler at most once a second per
// kind, with the number of reports suppressed since.
func (s *Sink) reportLimited(kind string, err error) {
	ok, n := s.limit.allow(kind)
	if !ok {
		return
	}
	if n > 0 {
		err = fmt.Errorf("%w (and %d more like it)", err, n)
	}
	s.opts.ErrorHandler(err)
}
