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
//   - (*Reader).logGroups (shards.go): the log walk's partitions, a group
//     per day: every day of DefaultWindow, then older days from the
//     catalog (with their shards), lazily.
//   - scan.Groups / scan.Markers / mergePartitions (shards.go): a group of
//     partitions read as one newest-first stream (k-way merge on RowKey),
//     a day's shards learnt from the markers in its shard 0.
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
	"sync"
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
	// Groups, if not nil, is read instead of Partitions: each item is the
	// set of partitions of one span of time (a day's shards, see
	// shards.go), newest group first. A group of one partition is read
	// exactly as Partitions would read it; a larger group is merged in
	// RowKey order (mergePartitions).
	Groups iter.Seq2[[]string, error]
	// Markers says the first partition of each group is a day's shard 0
	// of a logs table: its reads include the shard marker range, and the
	// shards the markers name join the group (see shards.go). Markers are
	// never passed to the accept function.
	Markers bool
	// CatalogShards, with Markers, returns the shards the catalog lists
	// for the day of shard-0 partition pk; it is called only when the
	// marker condition would take a filter past Azure's comparison limit.
	CatalogShards func(ctx context.Context, pk string) ([]string, error)
	// Lo and Hi bound RowKeys in every partition: Lo <= RowKey < Hi. An
	// empty bound is open (no condition is sent).
	Lo, Hi string
	// Where is ANDed to the key conditions and runs on the server.
	Where Filter
	// PartitionWhere, if not nil, returns a further condition for one
	// partition, ANDed to Where.
	PartitionWhere func(pk string) Filter
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
		// Check the filter before any request (a catalog read included):
		// its size does not depend on the partition.
		if _, err := rowKeyFilter(schema.CatalogPartition, s.Lo, s.Hi, s.Where); err != nil {
			yield(zero, err)
			return
		}
		accepted := 0
		groups := s.Groups
		if groups == nil {
			groups = func(yield func([]string, error) bool) {
				for pk, err := range s.Partitions {
					if !yield([]string{pk}, err) {
						return
					}
				}
			}
		}
		for pks, err := range groups {
			if err != nil {
				yield(zero, err)
				return
			}
			var more bool
			if len(pks) == 1 && !s.Markers {
				more = scanPartition(ctx, table, s, pks[0], accept, yield, &accepted)
			} else {
				more = mergePartitions(ctx, table, s, pks, accept, yield, &accepted)
			}
			if !more {
				return
			}
		}
	}
}

// top returns the $top of the next request of s when accepted records were
// yielded so far (nil: no limit).
func (s *scan) top(accepted int) *int32 {
	if s.Limit <= 0 {
		return nil
	}
	top := s.Limit - accepted
	if s.ClientFiltered {
		top = max(top, minClientFilteredPage)
	}
	top32 := int32(min(top, maxPageSize))
	return &top32
}

// listOptions returns the first request's options for partition pk.
func (s *scan) listOptions(pk string) (aztables.ListEntitiesOptions, error) {
	where := s.Where
	if s.PartitionWhere != nil {
		where = And(where, s.PartitionWhere(pk))
	}
	filter, err := rowKeyFilter(pk, s.Lo, s.Hi, where)
	if err != nil {
		return aztables.ListEntitiesOptions{}, err
	}
	opts := aztables.ListEntitiesOptions{Filter: &filter}
	if s.Select != "" {
		opts.Select = &s.Select
	}
	return opts, nil
}

// pageLister is a Table that reads a query page into memory of the
// caller's (*tablelog.Client): see pages.
type pageLister interface {
	ListEntitiesPage(ctx context.Context, opts *aztables.ListEntitiesOptions, buf []byte) (aztables.ListEntitiesResponse, []byte, error)
}

// pages fetches the pages of one partition's read. With a pageLister
// table, every page is read into the same memory (taken from pageBufs on
// the first page): the entities of a page are valid only until the next
// call of next or release, by which time the accept function must be done
// with them (the decoders copy what they keep). Other tables hand out new
// memory per page.
type pages struct {
	buf *[]byte // the body memory, nil until the first page is read into it
}

// pageBufs holds page memory between reads.
var pageBufs sync.Pool // of *[]byte

// next fetches the page opts selects.
func (p *pages) next(ctx context.Context, table Table, opts *aztables.ListEntitiesOptions) (aztables.ListEntitiesResponse, error) {
	pl, ok := table.(pageLister)
	if !ok {
		return table.NewListEntitiesPager(opts).NextPage(ctx)
	}
	if p.buf == nil {
		p.buf, _ = pageBufs.Get().(*[]byte)
		if p.buf == nil {
			p.buf = new([]byte)
		}
	}
	resp, buf, err := pl.ListEntitiesPage(ctx, opts, *p.buf)
	*p.buf = buf
	return resp, err
}

// release ends the read: the memory goes back to pageBufs, and the last
// page's entities must not be used any more.
func (p *pages) release() {
	if p.buf != nil && cap(*p.buf) > 0 {
		pageBufs.Put(p.buf)
	}
	p.buf = nil
}

// scanPartition reads partition pk page by page for scanEntities, counting
// accepted records in *accepted. It reports whether the scan goes on.
func scanPartition[T any](ctx context.Context, table Table, s scan, pk string, accept acceptFunc[T], yield func(T, error) bool, accepted *int) bool {
	var zero T
	opts, err := s.listOptions(pk)
	if err != nil {
		yield(zero, err)
		return false
	}
	var pg pages
	defer pg.release()
	for {
		if err := ctx.Err(); err != nil {
			yield(zero, err)
			return false
		}
		opts.Top = s.top(*accepted)
		resp, err := pg.next(ctx, table, &opts)
		if err != nil {
			yield(zero, mapError(ctx, s.Op+" ("+pk+")", err))
			return false
		}
		for _, raw := range resp.Entities {
			if !emit(ctx, s, raw, accept, yield, accepted) {
				return false
			}
		}
		if empty(resp.NextPartitionKey) && empty(resp.NextRowKey) {
			return true
		}
		opts.NextPartitionKey, opts.NextRowKey = resp.NextPartitionKey, resp.NextRowKey
	}
}

// emit accepts one raw entity and yields the result. It reports whether the
// scan goes on (false: the caller stopped, ctx is done, or Limit is met).
func emit[T any](ctx context.Context, s scan, raw []byte, accept acceptFunc[T], yield func(T, error) bool, accepted *int) bool {
	var zero T
	v, keep, err := accept(raw)
	if err != nil {
		return yield(zero, err)
	}
	if !keep {
		return true
	}
	if err := ctx.Err(); err != nil {
		yield(zero, err)
		return false
	}
	if !yield(v, nil) {
		return false
	}
	*accepted++
	return s.Limit <= 0 || *accepted < s.Limit
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
