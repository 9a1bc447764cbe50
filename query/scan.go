package query

// The scan engine shared by Logs, Tail, Follow and (in audit.go) Audit.
//
// Helpers meant for reuse inside the package:
//
//   - scanEntities: newest-first, page-by-page read of a sequence of
//     partitions with RowKey bounds, a server filter, $select, a Limit that
//     shrinks $top, prompt cancellation and error mapping.
//   - dayPartitions: pk(day) for every UTC day from until back to since.
//   - (*Reader).catalogDays (services.go): the days the catalog partition
//     lists for a service in [from, to), ascending.
//   - (*Reader).logPartitions (logs.go): the log walk's partitions: every
//     day of DefaultWindow, then older days from the catalog, lazily.
//   - rowKeyBounds (logs.go): schema.RowKeyRange with open ends left out
//     and a sub-millisecond until rounded up.
//   - rowKeyFilter (filter.go): "PartitionKey eq … and RowKey ge … and
//     RowKey lt … and extra", with the 15-comparison check.
//   - mapError (errors.go): *azcore.ResponseError → *Error with a sentinel;
//     invalid (errors.go): an ErrInvalidQuery error.
//
// The signatures of scanEntities, scan, acceptFunc, dayPartitions and
// catalogDays are relied on by audit.go: change them only together.
//
// An audit reader whose partitions are "<service>_<yyyyMMdd>" and whose
// RowKeys sort newest first can be written as
//
//	lo, hi := schema.RowKeyRange(since, until)
//	s := scan{
//		Partitions: dayPartitions(since, until, func(d time.Time) string { return schema.PartitionKey(svc, d) }),
//		Lo: lo, Hi: hi, Where: And(Eq("Actor", actor), where), Limit: limit, Op: "audit",
//	}
//	for ev, err := range scanEntities(ctx, r.table, s, decodeAuditEvent) { ... }

import (
	"context"
	"iter"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/schema"
)

// maxPageSize is the most entities the service returns per page.
const maxPageSize = 1000

// minClientFilteredPage is the smallest $top used when records may be
// rejected on the client (Contains): asking for exactly the remaining count
// would then cost many tiny requests.
const minClientFilteredPage = 200

// scan describes a newest-first read over partitions.
type scan struct {
	// Partitions yields the partition keys to read, newest first. An error
	// ends the scan (it is yielded to the caller).
	Partitions iter.Seq2[string, error]
	// Lo and Hi bound RowKeys in every partition: Lo <= RowKey < Hi. An
	// empty bound is open (no condition is sent).
	Lo, Hi string
	// Where is ANDed to the key conditions and runs on the server.
	Where Filter
	// Select, if not empty, is the $select list ("PartitionKey,RowKey,Time").
	Select string
	// Limit is the most records the scan yields (accepted records count);
	// 0 means no limit. Each request asks for $top = what is still needed.
	Limit int
	// ClientFiltered means the accept function may reject records, so
	// requests ask for at least minClientFilteredPage entities.
	ClientFiltered bool
	// Op names the operation in error messages ("read logs").
	Op string
}

// accept decodes a raw entity. keep=false drops it silently; an error is
// yielded to the caller (as (zero, err)) and the scan goes on.
type acceptFunc[T any] func(raw []byte) (v T, keep bool, err error)

// scanEntities runs s against table and yields the accepted values, newest
// partition first and, within a partition, in RowKey order. Requests are
// made lazily, one page at a time, as the caller ranges. A request error is
// mapped with mapError, yielded, and ends the scan; a done ctx yields
// ctx.Err() and ends it.
func scanEntities[T any](ctx context.Context, table Table, s scan, accept acceptFunc[T]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		if err := s.Where.Err(); err != nil {
			yield(zero, err)
			return
		}
		accepted := 0
		for pk, err := range s.Partitions {
			if err != nil {
				yield(zero, err)
				return
			}
			filter, err := rowKeyFilter(pk, s.Lo, s.Hi, s.Where)
			if err != nil {
				yield(zero, err)
				return
			}
			opts := aztables.ListEntitiesOptions{Filter: &filter}
			if s.Select != "" {
				opts.Select = &s.Select
			}
			for {
				if err := ctx.Err(); err != nil {
					yield(zero, err)
					return
				}
				if s.Limit > 0 {
					top := s.Limit - accepted
					if s.ClientFiltered {
						top = max(top, minClientFilteredPage)
					}
					top32 := int32(min(top, maxPageSize))
					opts.Top = &top32
				}
				resp, err := table.NewListEntitiesPager(&opts).NextPage(ctx)
				if err != nil {
					yield(zero, mapError(ctx, s.Op+" ("+pk+")", err))
					return
				}
				for _, raw := range resp.Entities {
					v, keep, err := accept(raw)
					if err != nil {
						if !yield(zero, err) {
							return
						}
						continue
					}
					if !keep {
						continue
					}
					if err := ctx.Err(); err != nil {
						yield(zero, err)
						return
					}
					if !yield(v, nil) {
						return
					}
					accepted++
					if s.Limit > 0 && accepted >= s.Limit {
						return
					}
				}
				if empty(resp.NextPartitionKey) && empty(resp.NextRowKey) {
					break
				}
				opts.NextPartitionKey, opts.NextRowKey = resp.NextPartitionKey, resp.NextRowKey
			}
		}
	}
}

func empty(s *string) bool { return s == nil || *s == "" }

// dayPartitions yields pk(day) for every UTC day from until's day back to
// since's day, newest first. A zero since is not allowed here (callers
// resolve it first).
func dayPartitions(since, until time.Time, pk func(day time.Time) string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		first := schema.Day(since)
		for d := schema.Day(until); !d.Before(first); d = d.AddDate(0, 0, -1) {
			if !yield(pk(d), nil) {
				return
			}
		}
	}
}
