package auditlog

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/azure"
	"github.com/tablelog/tablelog/internal/schema"
)

// Options configure a Writer. Only Service is required; every other zero
// value means the documented default.
type Options struct {
	// Service names the trail (required; letters, digits, '-', '_', '.';
	// see schema.ValidateService). Each service has its own hash chain.
	Service string
	// Key, if set, makes every event's hash an HMAC-SHA-256 under Key
	// instead of a plain SHA-256, so that nobody without the key can forge
	// or re-hash events. At least 16 bytes. Keep it outside the table's
	// account (for example in a key vault); Verify needs the same key.
	Key []byte
	// Now is the clock (default time.Now). It stamps events whose Time is
	// zero and chooses the day partition.
	Now func() time.Time
	// ReadTable, if set, is used for the writer's reads instead of the
	// table given to New: reading the chain head (at the first Record, after
	// another writer appended, when the day changes) and resolving a batch
	// whose outcome was unknown. Give it a read-only credential when the
	// table's credential only allows adding (an account SAS with sp=a):
	// then the writer holds no permission to update or delete anything.
	ReadTable ReadTable
	// MaxBatch is the most events committed in one entity-group transaction
	// (default and maximum 100).
	MaxBatch int
	// RequestTimeout bounds one request to the service (default 30 s).
	RequestTimeout time.Duration
	// CommitTimeout bounds how long a batch is retried after transient
	// errors before its Record calls fail (default 2 min).
	CommitTimeout time.Duration
	// NoCreateTable turns off creating the table before the first commit.
	// By default, when the table given to New can create tables (an
	// *aztables.Client can), the writer creates it once and treats "already
	// exists" as success; a refused creation (a credential without that
	// right) is ignored, and the inserts then say whether the table exists.
	NoCreateTable bool
}

// tableCreator is the optional part of a Table that creates it.
type tableCreator interface {
	CreateTable(ctx context.Context, options *aztables.CreateTableOptions) (aztables.CreateTableResponse, error)
}

// ErrOutcomeUnknown is wrapped by Record's error when the event may or may
// not have been stored: the context ended while its transaction was in
// flight, or the service stayed unreachable after a request whose response
// was lost. The Event returned with it carries the ID to look it up (for
// example with query.Audit and a Where on "ID").
var ErrOutcomeUnknown = errors.New("auditlog: outcome unknown")

// ErrCorruptTrail is wrapped by errors from a Writer that finds the trail's
// head in a state its protocol never produces (for example a seal naming
// an earlier day). Verify tells what happened.
var ErrCorruptTrail = errors.New("auditlog: corrupt trail")

// Writer records audit events of one service synchronously, grouping
// concurrent calls into shared transactions. It is safe for concurrent use;
// several Writers, in one process or many, may write the same service in
// the same table: they keep one linear chain (see the package
// documentation). A Writer needs no Close: its background goroutine runs
// only while events are waiting. Create it with New; the zero Writer is not
// usable.
type Writer struct {
	tableCreated atomic.Bool
	table        Table
	read         ReadTable
	opts         Options
	alg          string
	gen          *schema.Generator

	mu      sync.Mutex
	queue   []*pending
	running bool

	stats struct {
		events, batches, conflicts, retries, failed atomic.Int64
	}

	// Chain state, owned by the committing goroutine.
	hasher *hasher
	keyed  bool
	pos    chainPos
	buf    []byte

	// The service's clock, from the Date of its last response.
	srvMu   sync.Mutex
	srvTime time.Time
	srvAt   time.Time
}

type pendingState int

const (
	queued pendingState = iota
	inflight
	finished
)

// pending is one Record call waiting for its event to be stored.
type pending struct {
	p     *prepared
	state pendingState // guarded by Writer.mu
	done  chan struct{}
	ev    Event // result, valid after done is closed
	err   error
}

// New returns a Writer for the service trail in table (usually a
// *tablelog.Client for the audit table; the writer creates the table before
// its first commit unless Options.NoCreateTable). It validates the options
// and does not touch the network; the first Record reads the chain's head. Errors: an invalid service name, a Key shorter than 16
// bytes, a nil table, MaxBatch out of 1..100.
func New(table Table, opts Options) (*Writer, error) {
	if table == nil {
		return nil, errors.New("auditlog: nil table")
	}
	if err := schema.ValidateService(opts.Service); err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	if opts.Key != nil && len(opts.Key) < 16 {
		return nil, fmt.Errorf("auditlog: Key is %d bytes; use at least 16", len(opts.Key))
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = schema.MaxBatchOps
	}
	if opts.MaxBatch < 1 || opts.MaxBatch > schema.MaxBatchOps {
		return nil, fmt.Errorf("auditlog: MaxBatch %d is outside 1..%d", opts.MaxBatch, schema.MaxBatchOps)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.CommitTimeout <= 0 {
		opts.CommitTimeout = 2 * time.Minute
	}
	opts.Key = slices.Clone(opts.Key)
	w := &Writer{table: table, opts: opts, gen: schema.NewGenerator(nil), hasher: newHasher(opts.Key), keyed: len(opts.Key) > 0}
	w.alg = w.hasher.alg()
	w.read = opts.ReadTable
	if w.read == nil {
		rt, ok := table.(ReadTable)
		if !ok {
			return nil, errors.New("auditlog: the table cannot read; set Options.ReadTable")
		}
		w.read = rt
	}
	return w, nil
}

// Record stores ev and returns it as stored (with Service, ID, Time, Seq,
// PrevHash and Hash set). It returns only once the event is stored: a nil
// error means it is in the table, chained. Concurrent calls share
// transactions (group commit), so Record is cheap to call from many
// goroutines.
//
// Errors: ErrInvalidEvent (nothing was sent; see Event for the rules);
// ctx.Err() if ctx ended before the event was sent (not stored);
// ErrOutcomeUnknown, wrapping ctx.Err() or the last storage error, if it
// may have been stored; otherwise the storage error (not stored).
func (w *Writer) Record(ctx context.Context, ev Event) (Event, error) {
	p, err := w.prepare(ev, w.opts.Now())
	if err != nil {
		return ev, err
	}
	// base is what a failed call returns: the event with its ID (the
	// committer owns p from here on).
	base := p.ev
	if err := ctx.Err(); err != nil {
		return base, err
	}
	pd := &pending{p: p, done: make(chan struct{})}
	w.mu.Lock()
	w.queue = append(w.queue, pd)
	if !w.running {
		w.running = true
		go w.run()
	}
	w.mu.Unlock()

	select {
	case <-pd.done:
		return pd.ev, pd.err
	case <-ctx.Done():
	}
	w.mu.Lock()
	if pd.state == queued {
		if i := slices.Index(w.queue, pd); i >= 0 {
			w.queue = slices.Delete(w.queue, i, i+1)
		}
		pd.state = finished
		w.mu.Unlock()
		return base, ctx.Err()
	}
	w.mu.Unlock()
	select {
	case <-pd.done: // finished meanwhile
		return pd.ev, pd.err
	default:
	}
	return base, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
}

// run commits batches while events are queued.
func (w *Writer) run() {
	for {
		w.mu.Lock()
		batch := w.take()
		if len(batch) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		w.createTable()
		w.commit(batch)
	}
}

// createTable creates the table once, before the first commit (see
// Options.NoCreateTable). Its errors are not fatal: the inserts report a
// missing table precisely.
func (w *Writer) createTable() {
	c, ok := w.table.(tableCreator)
	if !ok || w.opts.NoCreateTable || w.tableCreated.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.RequestTimeout)
	defer cancel()
	if _, err := c.CreateTable(ctx, nil); err == nil || isTableExists(err) {
		w.tableCreated.Store(true)
	}
}

func isTableExists(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && (re.ErrorCode == string(aztables.TableAlreadyExists) || re.StatusCode == http.StatusConflict)
}

// maxBatchBytes is the payload budget of one transaction: the service's
// 4 MiB less room for the multipart framing of every operation.
const (
	maxBatchBytes = schema.MaxBatchBytes - 64<<10
	opOverhead    = 1 << 10
)

// take removes the next batch from the queue (w.mu held).
func (w *Writer) take() []*pending {
	n, size := 0, 0
	for n < len(w.queue) && n < w.opts.MaxBatch {
		s := w.queue[n].p.size + opOverhead
		if n > 0 && size+s > maxBatchBytes {
			break
		}
		size += s
		n++
	}
	batch := slices.Clone(w.queue[:n])
	w.queue = slices.Delete(w.queue, 0, n)
	for _, pd := range batch {
		pd.state = inflight
	}
	return batch
}

// topUp adds queued events to batch, within the batch limits.
func (w *Writer) topUp(batch []*pending) []*pending {
	size := 0
	for _, pd := range batch {
		size += pd.p.size + opOverhead
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for n < len(w.queue) && len(batch) < w.opts.MaxBatch {
		s := w.queue[n].p.size + opOverhead
		if size+s > maxBatchBytes {
			break
		}
		size += s
		w.queue[n].state = inflight
		batch = append(batch, w.queue[n])
		n++
	}
	w.queue = slices.Delete(w.queue, 0, n)
	return batch
}

// finish delivers the outcome of a batch.
func (w *Writer) finish(batch []*pending, err error) {
	if err != nil {
		w.stats.failed.Add(int64(len(batch)))
	}
	w.mu.Lock()
	for _, pd := range batch {
		pd.ev = pd.p.ev
		pd.err = err
		pd.state = finished
		close(pd.done)
	}
	w.mu.Unlock()
}

// commit stores batch as the next events of the chain, retrying transient
// errors until CommitTimeout, re-chaining when another writer (or a foreign
// entity) took a slot, and splitting the batch when the service rejects it
// as bad.
func (w *Writer) commit(batch []*pending) {
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.CommitTimeout)
	defer cancel()
	unknown := false // an attempt with the current slots may have been stored
	var lastErr error
	for attempt := 0; ; attempt++ {
		if attempt > 0 && ctx.Err() != nil {
			w.pos.known = false
			err := fmt.Errorf("auditlog: storing %d event(s) gave up after %s: %w", len(batch), w.opts.CommitTimeout, describeErr(lastErr))
			if unknown {
				err = fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
			}
			w.finish(batch, err)
			return
		}
		if !unknown {
			if err := w.position(ctx, w.target(batch)); err != nil {
				kind, after := classify(err)
				if errors.Is(err, ErrCorruptTrail) || errors.Is(err, ErrClock) {
					kind = kindPermanent
				}
				if kind == kindTransient || kind == kindConflict {
					lastErr = err
					_ = azure.Sleep(ctx, backoff(attempt, after))
					continue
				}
				w.finish(batch, fmt.Errorf("auditlog: reading the chain head: %w%s", errDescribed(err), readHint(err)))
				return
			}
			if batch = w.dropMisdated(batch); len(batch) == 0 {
				return
			}
			w.chain(batch)
		}
		err := w.insert(ctx, batch)
		kind, after := classify(err)
		if kind == kindConflict && unknown {
			// Maybe our own earlier attempt: the first slot tells.
			ours, rerr := w.owns(ctx, &batch[0].p.rec)
			if errors.Is(rerr, ErrCorruptTrail) {
				w.pos.known = false
				w.finish(batch, fmt.Errorf("%w: %w", ErrOutcomeUnknown, rerr))
				return
			}
			if rerr != nil {
				lastErr = rerr
				_ = azure.Sleep(ctx, backoff(attempt, 0))
				continue
			}
			if ours {
				kind = kindOK
			}
		}
		switch kind {
		case kindOK:
			w.stats.events.Add(int64(len(batch)))
			w.stats.batches.Add(1)
			last := &batch[len(batch)-1].p.ev
			w.pos.advance(link{seq: last.Seq, hash: last.Hash}, last.Seq)
			w.finish(batch, nil)
			return
		case kindConflict:
			// Another writer appended (or sealed the day), or a foreign
			// entity sits in a slot: read the slots above the head again
			// and re-chain. The slots we tried are taken, so no earlier
			// attempt of ours can ever land in them.
			w.stats.conflicts.Add(1)
			w.pos.stale = true
			unknown = false
			lastErr = err
			_ = azure.Sleep(ctx, conflictBackoff(attempt))
			// The events get new slots anyway: let those that queued
			// meanwhile join them.
			batch = w.topUp(batch)
		case kindTransient:
			// Retry the same slots and content (unknown stays set).
			w.stats.retries.Add(1)
			unknown = true
			lastErr = err
			_ = azure.Sleep(ctx, backoff(attempt, after))
		case kindBadEntity:
			if len(batch) > 1 {
				// Isolate the event the service refuses: commit one by one
				// (each re-chained after the previous).
				for _, pd := range batch {
					w.commit([]*pending{pd})
				}
				return
			}
			w.finish(batch, fmt.Errorf("auditlog: the service refused the event: %w", describeErr(err)))
			return
		default:
			if unknown {
				w.pos.known = false
				w.finish(batch, fmt.Errorf("%w: auditlog: storing events: %w", ErrOutcomeUnknown, describeErr(err)))
				return
			}
			w.finish(batch, fmt.Errorf("auditlog: storing events: %w", describeErr(err)))
			return
		}
	}
}

// target returns the day the batch should be stored in: today by the
// writer's clock, or the day of an event's Time if later (Time may run up
// to MaxClockSkew ahead).
func (w *Writer) target(batch []*pending) time.Time {
	t := schema.Day(w.opts.Now())
	for _, pd := range batch {
		if d := schema.Day(pd.p.ev.Time); d.After(t) {
			t = d
		}
	}
	return t
}

// position brings the writer's view of the chain up to date and opens
// target if the chain is on an earlier day.
func (w *Writer) position(ctx context.Context, target time.Time) error {
	if !w.pos.known {
		if err := w.locate(ctx, target); err != nil {
			return err
		}
	}
	if w.pos.stale {
		if err := w.refresh(ctx, &w.pos); err != nil {
			return err
		}
	}
	if w.pos.day.Before(target) {
		return w.openDay(ctx, target)
	}
	return nil
}

// dropMisdated fails the events whose Time lies more than a day before
// the chain's open day (Verify would flag them as misdated) and returns
// the rest.
func (w *Writer) dropMisdated(batch []*pending) []*pending {
	out := batch[:0]
	for _, pd := range batch {
		if d := schema.Day(pd.p.ev.Time); d.AddDate(0, 0, 1).Before(w.pos.day) {
			w.finish([]*pending{pd}, fmt.Errorf("%w: Time %s is more than a day before the trail's current day %s (is this writer's clock behind?)",
				ErrInvalidEvent, pd.p.ev.Time.Format(time.RFC3339Nano), dayString(w.pos.day)))
			continue
		}
		out = append(out, pd)
	}
	return out
}

// chain gives the batch's events the next free slots of the open day,
// each linked to the one before (the first to the chain's last event).
func (w *Writer) chain(batch []*pending) {
	pk := schema.PartitionKey(w.opts.Service, w.pos.day)
	slots := w.pos.freeSlots(len(batch))
	prev := w.pos.cur
	for i, pd := range batch {
		r := &pd.p.rec
		r.PartitionKey = pk
		r.Seq = slots[i]
		r.RowKey = schema.AuditRowKey(r.Seq)
		r.PrevSeq = prev.seq
		r.PrevHash = prev.hash.String()
		h := w.hasher.sum(w.opts.Service, r, prev.hash, true)
		r.Hash = h.String()
		pd.p.ev.Seq, pd.p.ev.PrevSeq, pd.p.ev.PrevHash, pd.p.ev.Hash = r.Seq, prev.seq, prev.hash, h
		prev = link{seq: r.Seq, hash: h}
	}
}

// conflictBackoff spreads writers that keep colliding on one partition:
// nothing after the first conflicts, then a few random milliseconds.
func conflictBackoff(attempt int) time.Duration {
	if attempt < 2 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(min(attempt, 10)) * int64(5*time.Millisecond)))
}

// readHint explains a refused read: the usual cause is an add-only table
// client without Options.ReadTable.
func readHint(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
		return " (the writer reads the chain head: with an add-only credential, set Options.ReadTable to a client that can read)"
	}
	return ""
}

// errDescribed wraps err's description, keeping sentinel errors.
func errDescribed(err error) error {
	if errors.Is(err, ErrCorruptTrail) || errors.Is(err, ErrClock) {
		return err
	}
	return describeErr(err)
}

// insert sends the batch: a single AddEntity for one event (cheaper for the
// service than a one-operation transaction), else one transaction.
func (w *Writer) insert(ctx context.Context, batch []*pending) error {
	ctx, cancel := context.WithTimeout(noRetry(ctx), w.opts.RequestTimeout)
	defer cancel()
	if len(batch) == 1 {
		w.buf = schema.AppendAuditEntity(w.buf[:0], &batch[0].p.rec)
		_, err := w.table.AddEntity(ctx, w.buf, nil)
		return err
	}
	actions := make([]aztables.TransactionAction, len(batch))
	for i, pd := range batch {
		actions[i] = aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: schema.AppendAuditEntity(nil, &pd.p.rec)}
	}
	_, err := w.table.SubmitTransaction(ctx, actions, nil)
	return err
}

// owns reports whether the slot of r holds r itself (same ID and hash):
// then an earlier attempt whose response was lost stored the batch.
func (w *Writer) owns(ctx context.Context, r *schema.AuditRecord) (bool, error) {
	ctx, cancel := context.WithTimeout(noRetry(ctx), w.opts.RequestTimeout)
	defer cancel()
	resp, err := w.read.GetEntity(ctx, r.PartitionKey, r.RowKey, nil)
	if err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, err
	}
	got, err := schema.DecodeAudit(resp.Value)
	if err != nil {
		return false, nil
	}
	if got.ID != r.ID {
		return false, nil
	}
	if got.Hash != r.Hash {
		return false, fmt.Errorf("%w: %s/%s holds our event %s with a different hash", ErrCorruptTrail, r.PartitionKey, r.RowKey, r.ID)
	}
	return true, nil
}

// Stats counts what a Writer did since New. All counters only grow.
type Stats struct {
	Events       int64 // events stored
	Transactions int64 // successful inserts (a transaction or a single insert), each of one or more events
	Conflicts    int64 // inserts that lost a slot to another writer (then re-chained)
	Retries      int64 // inserts retried after a transient error
	Failed       int64 // events whose Record returned a storage error
}

// Stats returns the Writer's counters. Safe for concurrent use.
func (w *Writer) Stats() Stats {
	return Stats{
		Events:       w.stats.events.Load(),
		Transactions: w.stats.batches.Load(),
		Conflicts:    w.stats.conflicts.Load(),
		Retries:      w.stats.retries.Load(),
		Failed:       w.stats.failed.Load(),
	}
}
