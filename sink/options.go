package sink

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tablelog/tablelog/internal/schema"
)

// Overflow says what a write does when the buffer holds BufferBytes of
// records that are not yet stored.
type Overflow int

const (
	// Block makes the writing goroutine wait until the background writer has
	// stored enough records to make room (back-pressure). It never waits
	// after Close: a write blocked at Close is refused and counted in
	// Stats.Rejected. Block is the default.
	Block Overflow = iota
	// DropNewest discards the record being written and counts it in
	// Stats.Dropped. The caller never waits.
	DropNewest
)

// String returns "block" or "drop-newest".
func (o Overflow) String() string {
	switch o {
	case Block:
		return "block"
	case DropNewest:
		return "drop-newest"
	}
	return fmt.Sprintf("Overflow(%d)", int(o))
}

// Defaults of the Options fields, used where a field is zero.
const (
	DefaultFlushInterval    = time.Second
	DefaultBufferBytes      = 64 << 20
	DefaultMaxInFlight      = 4
	DefaultMaxShards        = 16
	DefaultBatchSize        = schema.MaxBatchOps
	DefaultMinRetryInterval = 100 * time.Millisecond
	DefaultMaxRetryInterval = 30 * time.Second
	DefaultRequestTimeout   = 60 * time.Second
	DefaultSyncTimeout      = 10 * time.Second
	DefaultMaxSpoolBytes    = 1 << 30
)

// SpoolSync says when records appended to the spool (Options.SpoolDir) are
// forced to stable storage with fsync. It only matters for a crash of the
// operating system or a power loss: a record whose Write or Handle returned
// survives a crash of the process under either policy.
type SpoolSync int

const (
	// SpoolSyncInterval, the default, fsyncs the spool every 200ms from a
	// background goroutine (and each 4 MiB segment file when it is full,
	// and at Close). An OS crash or power loss loses at most the records
	// written in the last 200ms before it (plus the duration of that
	// fsync); a record torn by the crash is detected and skipped.
	SpoolSyncInterval SpoolSync = iota

	// SpoolSyncEveryRecord fsyncs before Write or Handle returns, so an OS
	// crash or power loss loses nothing that was written (on storage that
	// honours fsync). Concurrent writers share fsyncs, but each write
	// waits for one: expect a few thousand records per second per disk
	// instead of tens of thousands (the README's Benchmarks section has
	// the measured figures).
	SpoolSyncEveryRecord
)

// String returns "interval" or "every-record".
func (p SpoolSync) String() string {
	switch p {
	case SpoolSyncInterval:
		return "interval"
	case SpoolSyncEveryRecord:
		return "every-record"
	}
	return fmt.Sprintf("SpoolSync(%d)", int(p))
}

// Options configure a Sink. The zero value of every field but Service means
// the documented default, so Options{Service: "checkout"} is a complete
// configuration. A negative size, count or duration is refused by New with
// an error naming the field (as auditlog.Options refuses its negative
// values), never taken as the default. Options are read once, by New.
type Options struct {
	// Service names the logging service; it is the first part of every
	// PartitionKey ("<service>_<yyyyMMdd>"). Required: 1..200 ASCII letters,
	// digits, '-', '_' or '.'. New rejects an invalid name.
	Service string

	// FlushInterval is the longest a record waits in the buffer before the
	// background writer sends it, when fewer than BatchSize records are
	// waiting. Default 1s. A full transaction is sent at once (under
	// sustained load, within 2 ms: the writer then looks for full
	// transactions on its own rather than be woken for each).
	FlushInterval time.Duration

	// BufferBytes bounds the memory held by records that are written but
	// not yet stored: the bytes of their encoded entities, including those
	// in transactions being sent or retried, plus 512 bytes per record for
	// its bookkeeping. A record encoded in the background (see Sink.Core
	// and Sink.Handler) counts, for its whole stay, an estimate made during
	// the call: about the memory it holds while it waits, usually more than
	// its entity (903 bytes for an entity of 569 with 10 fields). Default
	// 64 MiB. A single record larger than BufferBytes is accepted when the
	// buffer is empty. Beyond it the sink holds a fixed amount: up to 4 MiB
	// of blocks kept for reuse, about as much again of slots for records
	// waiting to be encoded, and the request bodies of the transactions in
	// flight.
	BufferBytes int

	// Overflow is the policy when the buffer is full: Block (default) or
	// DropNewest.
	Overflow Overflow

	// MaxInFlight is the number of transactions sent concurrently.
	// Default 4.
	MaxInFlight int

	// MaxShards is the most partitions a day's records are spread over
	// when the day's partition is throttled (503 ServerBusy: Azure takes
	// about 2,000 entities/s per partition): 1..1000, default
	// DefaultMaxShards; 1 turns sharding off. See the package
	// documentation's "Shards".
	MaxShards int

	// BatchSize is the most records in one transaction, 1..100 (Azure's
	// limit). Default 100. A transaction also holds at most 4 MiB and only
	// records of one PartitionKey.
	BatchSize int

	// NoCreateTable turns off creating the table before the first write.
	// By default the sink creates it and treats "already exists" as
	// success; set NoCreateTable for credentials without the right to
	// create tables (an add-only SAS).
	NoCreateTable bool

	// ErrorHandler receives the errors the sink cannot return to a caller:
	// records the service rejected (and how they were handled), transient
	// failures while they are being retried, records dropped or refused.
	// It is called from the sink's goroutines, and for drops and refusals
	// from the logging goroutine, never with a lock held; it must be safe
	// for concurrent use and must not log through this Sink nor call its
	// Flush or Close (it may run while a transaction is pending). Reports of
	// transient failures, drops and refusals are rate-limited (one a
	// second per kind, with a count of those left out); the error wraps an
	// *OpError where a request failed. Default: one line on os.Stderr, at most one per
	// second (the count of suppressed reports is printed with the next).
	ErrorHandler func(error)

	// Now is the clock; tests replace it. Default time.Now. It stamps
	// records whose entry has no time and drives nothing else: timers use
	// the runtime's clock (use testing/synctest to fake them).
	Now func() time.Time

	// MinRetryInterval and MaxRetryInterval bound the exponential backoff
	// between attempts of a transaction that failed transiently (network
	// error, 408, 429, 5xx): attempt n waits a random time between half and
	// all of min(MinRetryInterval*2^n, MaxRetryInterval), or longer if the
	// service sent Retry-After. Transient failures are retried until they
	// succeed or Close gives up. Defaults 100ms and 30s.
	MinRetryInterval time.Duration
	MaxRetryInterval time.Duration

	// RequestTimeout bounds one attempt of one request. Default 60s.
	RequestTimeout time.Duration

	// SyncTimeout bounds the flush done by the zap core's Sync and by
	// writes of zap levels above Error (DPanic, Panic, Fatal), which have
	// no context. Default 10s.
	SyncTimeout time.Duration

	// SpoolDir, if not empty, turns on the durable spool: a directory of
	// segment files (created with mode 0700 if missing; one Sink at a time
	// may use it) where every record is appended, on the writing
	// goroutine, before Write or Handle returns, and from which it is
	// removed once stored (or given up on and reported: a record the
	// service rejects for good, repair entity included, is never
	// replayed; a denied request, 401/403/404, keeps its records on disk
	// and retries them). New over a directory
	// left by an earlier run first sends the records that run had not
	// stored. What each failure can lose:
	//
	//   - a crash of the process (SIGKILL, panic, os.Exit, OOM kill):
	//     nothing whose Write or Handle returned, under either SpoolSync
	//     policy: the record was handed to the kernel (the page cache
	//     outlives the process);
	//   - a crash of the operating system or a power loss: with
	//     SpoolSyncInterval (the default), the records written in the last
	//     200ms before it; with SpoolSyncEveryRecord, nothing;
	//   - Close(ctx) reaching its deadline: nothing; the records not yet
	//     stored stay in the spool for the next New on the directory, and
	//     the *DeliveryError says so.
	//
	// Records are stored exactly once across a replay: their keys are fixed
	// before they are spooled, and an "already exists" answer for a
	// replayed record means it was stored before the crash.
	//
	// The spool also extends the buffer: records kept in memory take at
	// most half of BufferBytes, and beyond that records are kept on disk
	// only and read back when their turn comes, instead of blocking or
	// being dropped. Each of them still takes 40 bytes of memory (its place
	// in the queue), counted against BufferBytes, so the memory bound holds
	// however long an outage lasts: a BufferBytes of B lets at least B/80
	// records wait on disk (the default 64 MiB: about 840,000). Overflow
	// applies once the spool holds MaxSpoolBytes or BufferBytes holds the
	// records in memory and the places of those on disk.
	//
	// If the directory cannot be used (not creatable, read-only, not a
	// directory, held by another Sink), New returns a working Sink without
	// a spool together with an error wrapping ErrSpoolUnavailable; if
	// appending fails later (disk full, I/O error), that record is kept in
	// memory only, the error goes to ErrorHandler and Stats.SpoolErrors
	// counts it. Either way the memory policy (BufferBytes, Overflow)
	// applies to such records, and a process crash loses them.
	//
	// A spool directory belongs to one Service and table: replayed records
	// keep the keys they were written with and go to the table the new
	// Sink writes to.
	SpoolDir string

	// MaxSpoolBytes bounds the size of the spool's files on disk (records
	// not yet stored, plus up to one segment of stored ones). Beyond it a
	// record is not spooled: it is buffered in memory if BufferBytes
	// allows, or else Overflow applies to it (counted in Stats.SpoolFull
	// and Dropped). Default 1 GiB. Ignored without SpoolDir.
	MaxSpoolBytes int64

	// SpoolSync is the spool's fsync policy: SpoolSyncInterval (default)
	// or SpoolSyncEveryRecord; see SpoolDir for what each can lose.
	// Ignored without SpoolDir.
	SpoolSync SpoolSync
}

// withDefaults validates o and fills in the defaults.
func (o Options) withDefaults() (Options, error) {
	if err := schema.ValidateService(o.Service); err != nil {
		return o, fmt.Errorf("sink: %w", err)
	}
	var errs []error
	neg := func(name string, v int64) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("sink: Options.%s is negative (%d)", name, v))
		}
	}
	neg("FlushInterval", int64(o.FlushInterval))
	neg("BufferBytes", int64(o.BufferBytes))
	neg("MaxInFlight", int64(o.MaxInFlight))
	neg("BatchSize", int64(o.BatchSize))
	neg("MaxShards", int64(o.MaxShards))
	if o.MaxShards > schema.MaxShard+1 {
		errs = append(errs, fmt.Errorf("sink: Options.MaxShards is %d; the limit is %d", o.MaxShards, schema.MaxShard+1))
	}
	neg("MinRetryInterval", int64(o.MinRetryInterval))
	neg("MaxRetryInterval", int64(o.MaxRetryInterval))
	neg("RequestTimeout", int64(o.RequestTimeout))
	neg("SyncTimeout", int64(o.SyncTimeout))
	neg("MaxSpoolBytes", o.MaxSpoolBytes)
	if o.SpoolSync != SpoolSyncInterval && o.SpoolSync != SpoolSyncEveryRecord {
		errs = append(errs, fmt.Errorf("sink: unknown Options.SpoolSync %d", int(o.SpoolSync)))
	}
	if o.BatchSize > schema.MaxBatchOps {
		errs = append(errs, fmt.Errorf("sink: Options.BatchSize is %d; the limit is %d", o.BatchSize, schema.MaxBatchOps))
	}
	if o.Overflow != Block && o.Overflow != DropNewest {
		errs = append(errs, fmt.Errorf("sink: unknown Options.Overflow %d", int(o.Overflow)))
	}
	if err := errors.Join(errs...); err != nil {
		return o, err
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.FlushInterval, DefaultFlushInterval)
	def(&o.MinRetryInterval, DefaultMinRetryInterval)
	def(&o.MaxRetryInterval, DefaultMaxRetryInterval)
	def(&o.RequestTimeout, DefaultRequestTimeout)
	def(&o.SyncTimeout, DefaultSyncTimeout)
	if o.MaxRetryInterval < o.MinRetryInterval {
		o.MaxRetryInterval = o.MinRetryInterval
	}
	if o.BufferBytes == 0 {
		o.BufferBytes = DefaultBufferBytes
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.MaxShards == 0 {
		o.MaxShards = DefaultMaxShards
	}
	if o.MaxSpoolBytes == 0 {
		o.MaxSpoolBytes = DefaultMaxSpoolBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ErrorHandler == nil {
		o.ErrorHandler = stderrHandler()
	}
	return o, nil
}

// stderrHandler returns the default ErrorHandler: one line per error on
// os.Stderr, at most one a second; the number suppressed in between is
// printed with the next line.
func stderrHandler() func(error) {
	limit := newRateLimit(time.Second)
	return func(err error) {
		ok, suppressed := limit.allow("")
		switch {
		case !ok:
		case suppressed > 0:
			fmt.Fprintf(os.Stderr, "tablelog: %v (%d more errors suppressed)\n", err, suppressed)
		default:
			fmt.Fprintf(os.Stderr, "tablelog: %v\n", err)
		}
	}
}
