// Package query is the read path of tablelog: newest-first log reads across
// day partitions, the last N records, a follow mode, the catalog of services
// and days, and a safe builder for server-side filters.
//
//	r := query.New(logsTable) // *aztables.Client
//	for rec, err := range r.Logs(ctx, query.Logs{Service: "checkout", MinLevel: slog.LevelWarn,
//		Where: query.Eq("user_id", "u-1"), Limit: 100}) {
//		if err != nil { ... }
//		fmt.Println(rec.Time, rec.Level, rec.Message, rec.Fields)
//	}
//
// # How reads are made
//
// Logs live in partitions "<service>_<yyyyMMdd>" (one per UTC day) with
// RowKeys that sort newest first (see internal/schema). Every read is a
// series of queries with "PartitionKey eq" plus a RowKey range, one day
// partition at a time from the newest day back; never a table scan. Results
// are streamed page by page (at most 1,000 entities per page are in memory),
// and a Limit shrinks each request's $top to what is still needed, so the
// last 100 records of a busy day cost one request.
//
// A busy service may spread a day over shard partitions
// "<service>_<yyyyMMdd>_<k>". Before a shard's first record, its writer
// stores a marker in the day's own partition, with a RowKey that sorts
// before every record; every read of a day's partition asks for that
// marker range too, so its first page names the day's shards at no extra
// request. A day without shards is read exactly as above (no catalog
// read); a sharded day is read as a k-way merge on RowKey: newest first,
// each record once, one page per shard in memory, each shard's $top
// shrunk by the Limit. Days older than DefaultWindow come from the
// catalog, which lists their shards too.
//
// # Errors
//
// Iterators yield (Record{}, err) for errors. A request error ends the
// iteration; an entity that cannot be decoded (ErrBadEntity) is reported and
// the iteration goes on if the caller keeps ranging. Errors from the service
// are *Error values wrapping ErrTableNotFound, ErrAuth, ErrThrottled,
// ErrUnavailable or ErrInvalidQuery, without secrets in their text; a done
// context is reported as ctx.Err() and ends the iteration promptly.
package query

import (
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/oklog/ulid/v2"

	"github.com/tablelog/tablelog/internal/schema"
)

// Table is the part of *aztables.Client the Reader uses: listing entities
// (queries). Only read permission on the table is needed. A table that also
// has tablelog.Client's ListEntitiesPage method (a *tablelog.Client) is
// read through it: each partition's pages are read into one reused buffer
// instead of new memory per page.
type Table interface {
	NewListEntitiesPager(options *aztables.ListEntitiesOptions) *runtime.Pager[aztables.ListEntitiesResponse]
}

var _ Table = (*aztables.Client)(nil)

// Reader reads logs from one table. It holds no state besides the table
// client, so it is safe for concurrent use; every iterator it returns is
// independent (an iterator itself must be ranged by one goroutine at a time).
// Create it with New; the zero Reader is not usable.
type Reader struct {
	table Table
	now   func() time.Time // clock, replaceable by tests

	afterPoll func() // test hook: called by Follow after each poll
}

// New returns a Reader over table, usually an *aztables.Client for the logs
// table the sink writes.
func New(table Table) *Reader {
	return &Reader{table: table, now: time.Now}
}

// Record is one log record as read back from the table.
type Record struct {
	Time     time.Time // the record's time, full precision, UTC; zero if it was written without one (ID's time is then its arrival, which time bounds use)
	Level    string    // the level's name as written: "info", "warn", zap's "dpanic", slog's "INFO+2", ...
	Severity int       // the level on slog's scale: debug -4, info 0, warn 4, error 8, dpanic 12, panic 16, fatal 20
	Message  string
	Logger   string // zap's logger name; empty for slog
	Caller   string // "file:line" when the writer recorded it
	Stack    string // stack trace, when recorded
	Service  string // the service the record was written under
	ID       ulid.ULID
	// Fields holds the record's fields by their original keys; slog groups
	// and zap namespaces are nested map[string]any. Values by column type:
	// string, bool, int64 (every integer), float64, time.Time (UTC),
	// []byte; arrays and objects, which the writer stores as JSON text,
	// come back as that text. Fields the writer had to put in its overflow
	// column (past the property limit, or a repeated name) carry JSON
	// types ([]any, map[string]any, float64, int64), and a repeated key
	// gets "#2", "#3", … appended. Nil when the record has no fields.
	Fields map[string]any
	// Truncated counts the values the writer had to cut short or leave out
	// to fit the entity limit (0 normally).
	Truncated int
}

// decodeRecord decodes one entity as returned by the aztables client. It
// also returns the entity's server Timestamp.
func decodeRecord(raw []byte) (Record, time.Time, error) {
	e, err := schema.Decode(raw)
	if err != nil {
		return Record{}, time.Time{}, fmt.Errorf("tablelog/query: %w: %w", ErrBadEntity, err)
	}
	service, _, _, err := schema.ParsePartitionKey(e.PartitionKey)
	if err != nil {
		return Record{}, time.Time{}, fmt.Errorf("tablelog/query: %w: %w", ErrBadEntity, err)
	}
	id, err := schema.ParseRowKey(e.RowKey)
	if err != nil {
		return Record{}, time.Time{}, fmt.Errorf("tablelog/query: %w: partition %s: %w", ErrBadEntity, e.PartitionKey, err)
	}
	return Record{
		Time:      e.Time,
		Level:     e.Level,
		Severity:  e.Severity,
		Message:   e.Msg,
		Logger:    e.Logger,
		Caller:    e.Caller,
		Stack:     e.Stack,
		Service:   service,
		ID:        id,
		Fields:    e.Fields,
		Truncated: e.Truncated,
	}, e.Timestamp, nil
}

// clock returns the Reader's current time.
func (r *Reader) clock() time.Time {
	if r.now == nil {
		return time.Now()
	}
	return r.now()
}

// checkReader reports a nil or zero Reader as an error rather than a panic
// deep inside an iterator.
func (r *Reader) check() error {
	if r == nil || r.table == nil {
		return fmt.Errorf("tablelog/query: %w: the Reader has no table (use query.New)", ErrInvalidQuery)
	}
	return nil
}
