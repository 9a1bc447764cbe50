package sink

import (
	"errors"
	"fmt"
	"os"
	"sync"
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
	DefaultBatchSize        = schema.MaxBatchOps
	DefaultMinRetryInterval = 100 * time.Millisecond
	DefaultMaxRetryInterval = 30 * time.Second
	DefaultRequestTimeout   = 60 * time.Second
	DefaultSyncTimeout      = 10 * time.Second
)

// Options configure a Sink. The zero value of every field but Service means
// the documented default, so Options{Service: "checkout"} is a complete
// configuration. Options are read once, by New.
//
// The field names SpoolDir and MaxSpoolBytes are reserved for an on-disk
// spool that keeps records across an outage longer than the buffer covers.
type Options struct {
	// Service names the logging service; it is the first part of every
	// PartitionKey ("<service>_<yyyyMMdd>"). Required: 1..200 ASCII letters,
	// digits, '-', '_' or '.'. New rejects an invalid name.
	Service string

	// FlushInterval is the longest a record waits in the buffer before the
	// background writer sends it, when fewer than BatchSize records are
	// waiting. Default 1s.
	FlushInterval time.Duration

	// BufferBytes bounds the memory held by records that are written but
	// not yet stored (the bytes of their encoded entities, including those
	// in transactions being sent or retried). Default 64 MiB. A single
	// record larger than BufferBytes is accepted when the buffer is empty.
	// Beyond it the sink holds a fixed amount: up to 2 MiB of blocks kept
	// for reuse and the request bodies of the transactions in flight.
	BufferBytes int

	// Overflow is the policy when the buffer is full: Block (default) or
	// DropNewest.
	Overflow Overflow

	// MaxInFlight is the number of transactions sent concurrently.
	// Default 4.
	MaxInFlight int

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
	neg("MinRetryInterval", int64(o.MinRetryInterval))
	neg("MaxRetryInterval", int64(o.MaxRetryInterval))
	neg("RequestTimeout", int64(o.RequestTimeout))
	neg("SyncTimeout", int64(o.SyncTimeout))
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
	var (
		mu         sync.Mutex
		last       time.Time
		suppressed int
	)
	return func(err error) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if !last.IsZero() && now.Sub(last) < time.Second {
			suppressed++
			return
		}
		last = now
		if suppressed > 0 {
			fmt.Fprintf(os.Stderr, "tablelog: %v (%d more errors suppressed)\n", err, suppressed)
			suppressed = 0
			return
		}
		fmt.Fprintf(os.Stderr, "tablelog: %v\n", err)
	}
}
