package query

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/tablelog/tablelog/internal/schema"
)

// Logs selects log records of one service. The zero value of every field
// but Service has a documented default.
type Logs struct {
	// Service is the service name the records were written under
	// (required).
	Service string
	// Since and Until select records with Since <= Time < Until, to the
	// nanosecond. The server narrows by the RowKey (the record ULID's
	// millisecond); the exact bounds are applied on the client. (Time is
	// stored at 100 ns precision: a Since taken from a finer in-memory time
	// can exclude the record logged at that very instant.)
	//
	// A record stored without a time (a slog.Record whose Time is zero,
	// which the sink keys by its arrival, to the millisecond) is selected
	// by its key's time, ulid.Time(Record.ID.Time()); its Record.Time stays
	// zero, as slog's contract asks.
	//
	// A zero Until means "now" (and a little after, to tolerate writers
	// whose clocks run ahead). A zero Since means "from the beginning": the
	// last DefaultWindow days before Until are always read, and older days
	// are read when the catalog lists them. With a Since set, days older
	// than DefaultWindow before Until are likewise read only if the catalog
	// lists them, so a long range costs one request per day that has logs.
	Since, Until time.Time
	// MinLevel keeps records with Severity >= MinLevel, filtered on the
	// server. Its zero value is slog.LevelInfo, as in slog, so debug records
	// are left out unless MinLevel is slog.LevelDebug or AllLevels.
	MinLevel slog.Level
	// Where is a server-side filter on fields (see Eq and friends). Zero:
	// no condition.
	Where Filter
	// Contains keeps records whose message or any field value contains
	// this text (case-sensitive substring; non-string values are matched in
	// their fmt.Sprint or RFC 3339 form). It runs on the client. Empty: no
	// condition.
	Contains string
	// Limit is the most records to return; 0 means no limit. Requests ask
	// for no more entities than still needed.
	Limit int
}

// AllLevels as Logs.MinLevel disables the level filter (every Severity).
const AllLevels = slog.Level(math.MinInt32)

// DefaultWindow is how far back before Until day partitions are read
// without consulting the catalog (see Logs.Since).
const DefaultWindow = 7 * 24 * time.Hour

// maxClockSkew is how far past now an open-ended read looks, for writers
// whose clocks run ahead.
const maxClockSkew = time.Minute

// Logs returns the selected records, newest first. It walks the day
// partitions from Until back to Since, each with a RowKey range, one page at
// a time (a day's shards merged, see the package documentation); it stops
// requesting as soon as Limit records were yielded or the caller stops
// ranging. See the package documentation for errors.
func (r *Reader) Logs(ctx context.Context, q Logs) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		s, accept, err := r.logScan(ctx, q, "read logs")
		if err != nil {
			yield(Record{}, err)
			return
		}
		for rec, err := range scanEntities(ctx, r.table, s, accept) {
			if !yield(rec, err) {
				return
			}
		}
	}
}

// validate checks q and returns the effective upper time bound of the walk.
func (r *Reader) validate(q Logs) error {
	if err := r.check(); err != nil {
		return err
	}
	if err := schema.ValidateService(q.Service); err != nil {
		return fmt.Errorf("tablelog/query: %w: %w", ErrInvalidQuery, err)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return invalid("Since (%s) is not before Until (%s)", q.Since.UTC().Format(time.RFC3339Nano), q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit < 0 {
		return invalid("Limit is negative (%d)", q.Limit)
	}
	return q.Where.Err()
}

// serverFilter returns the level condition ANDed with q.Where.
func serverFilter(q Logs) Filter {
	var lvl Filter
	if q.MinLevel > AllLevels {
		lvl = Ge(ColSeverity, int32(min(q.MinLevel, math.MaxInt32)))
	}
	return And(lvl, q.Where)
}

// logScan turns q into a scan and its accept function.
func (r *Reader) logScan(ctx context.Context, q Logs, op string) (scan, acceptFunc[Record], error) {
	if err := r.validate(q); err != nil {
		return scan{}, nil, err
	}
	lo, hi := rowKeyBounds(q.Since, q.Until)
	s := scan{
		Groups:         r.logGroups(ctx, q.Service, q.Since, q.Until),
		Markers:        true,
		CatalogShards:  func(ctx context.Context, pk string) ([]string, error) { return r.dayShards(ctx, q.Service, pk) },
		Lo:             lo,
		Hi:             hi,
		Where:          serverFilter(q),
		Limit:          q.Limit,
		ClientFiltered: q.Contains != "",
		Op:             op,
	}
	return s, recordAccepter(q), nil
}

// rowKeyBounds is schema.RowKeyRange with open ends as empty strings (no
// condition sent), selecting every record with since <= ULID time < until.
func rowKeyBounds(since, until time.Time) (lo, hi string) {
	// RowKeyRange truncates until to the millisecond; round it up instead
	// so that records in until's own millisecond but before until stay in
	// range (the exact bound is applied on the client).
	if t := until.Truncate(time.Millisecond); !until.IsZero() && !t.Equal(until) {
		until = t.Add(time.Millisecond)
	}
	lo, hi = schema.RowKeyRange(since, until)
	if until.IsZero() {
		lo = ""
	}
	if since.IsZero() {
		hi = ""
	}
	return lo, hi
}

// recordAccepter decodes entities and applies the client-side conditions of
// q: the exact time bounds and Contains.
func recordAccepter(q Logs) acceptFunc[Record] {
	return func(raw []byte) (Record, bool, error) {
		rec, _, err := decodeRecord(raw)
		if err != nil {
			return Record{}, false, err
		}
		return rec, clientMatch(&q, &rec), nil
	}
}

// clientMatch applies the conditions of q that run on the client: the exact
// time bounds and Contains. A record without a time (see Logs.Since) is
// bounded by its key's.
func clientMatch(q *Logs, rec *Record) bool {
	t := rec.Time
	if t.IsZero() {
		t = ulid.Time(rec.ID.Time())
	}
	if !q.Since.IsZero() && t.Before(q.Since) || !q.Until.IsZero() && !t.Before(q.Until) {
		return false
	}
	return q.Contains == "" || recordContains(rec, q.Contains)
}

// recordContains reports whether the message or a field value contains s.
func recordContains(rec *Record, s string) bool {
	return strings.Contains(rec.Message, s) || valueContains(rec.Fields, s)
}

func valueContains(v any, s string) bool {
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return strings.Contains(v, s)
	case map[string]any:
		for _, x := range v {
			if valueContains(x, s) {
				return true
			}
		}
		return false
	case []any:
		for _, x := range v {
			if valueContains(x, s) {
				return true
			}
		}
		return false
	case int64:
		return strings.Contains(strconv.FormatInt(v, 10), s)
	case int32:
		return strings.Contains(strconv.FormatInt(int64(v), 10), s)
	case float64:
		return strings.Contains(strconv.FormatFloat(v, 'g', -1, 64), s)
	case bool:
		return strings.Contains(strconv.FormatBool(v), s)
	case time.Time:
		return strings.Contains(v.Format(time.RFC3339Nano), s)
	case []byte:
		return strings.Contains(string(v), s)
	default:
		return strings.Contains(fmt.Sprint(v), s)
	}
}
