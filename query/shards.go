package query

// Shards. A service that writes more than one partition takes spreads a
// day over the partitions <service>_<yyyyMMdd>_<k> (k >= 1) next to the
// day's own partition (shard 0), and announces each shard in the catalog
// before its first record (see schema.AppendCatalogShardEntity). Readers
// learn a day's shards from the catalog and read them as one group:
//
//   - shardGroups turns a walk over days (the shard-0 partition of each)
//     into a walk over groups, reading the catalog once per span of up to
//     shardCatalogDays days (one small RowKey-only request covers a read's
//     whole DefaultWindow); a day without shards is a group of one,
//     read exactly as before;
//   - mergePartitions reads a group of several partitions as one
//     newest-first stream: a k-way merge on RowKey (RowKeys order globally
//     by time), one page per partition in memory, each partition's next
//     page requested only when its current one is used up; a record stored
//     in two shards (which writers never do) is yielded once.

import (
	"bytes"
	"context"
	"encoding/json"
	"iter"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/schema"
)

// shardCatalogDays is how many days one catalog read of shardGroups covers.
const shardCatalogDays = int(DefaultWindow / (24 * time.Hour))

// shardGroups yields, for each partition days yields (the shard-0
// partitions of service's days, newest first), that partition and the
// shards the catalog lists for its day. lowest, if not zero, is the oldest
// day the walk can reach (the catalog is not read below it). The catalog
// is read when the walk reaches a day not covered by the previous read,
// for that day and up to shardCatalogDays-1 days before it.
func (r *Reader) shardGroups(ctx context.Context, service string, lowest time.Time, days iter.Seq2[string, error]) iter.Seq2[[]string, error] {
	return func(yield func([]string, error) bool) {
		var from, to time.Time // the days the last catalog read covered
		shards := map[string][]string{}
		for pk, err := range days {
			if err != nil {
				yield(nil, err)
				return
			}
			_, day, _, perr := schema.ParsePartitionKey(pk)
			if perr != nil {
				if !yield([]string{pk}, nil) {
					return
				}
				continue
			}
			if from.IsZero() || day.Before(from) || day.After(to) {
				first := day.AddDate(0, 0, 1-shardCatalogDays)
				if !lowest.IsZero() && first.Before(schema.Day(lowest)) {
					first = schema.Day(lowest)
				}
				if err := r.catalogShards(ctx, service, first, day, shards); err != nil {
					yield(nil, err)
					return
				}
				from, to = first, day
			}
			group := append([]string{pk}, shards[pk]...)
			if !yield(group, nil) {
				return
			}
		}
	}
}

// logGroups yields the groups of partitions of service to read for
// [since, until), newest first: every day of the DefaultWindow before until
// (or now), each with the shards the catalog lists for it (one catalog
// read covers the window), then the older days the catalog lists, with
// their shards (one more catalog read, made only if the walk gets that
// far, down to since if set).
func (r *Reader) logGroups(ctx context.Context, service string, since, until time.Time) iter.Seq2[[]string, error] {
	return func(yield func([]string, error) bool) {
		upper := until
		if upper.IsZero() {
			upper = r.clock().Add(maxClockSkew)
		} else {
			// until is exclusive: a record at exactly midnight belongs to
			// the next day, which then holds nothing in range.
			upper = upper.Add(-time.Nanosecond)
		}
		newest := schema.Day(upper)
		recent := newest.AddDate(0, 0, 1-shardCatalogDays)
		lowest := time.Time{}
		if !since.IsZero() {
			lowest = schema.Day(since)
		}
		first := recent
		if first.Before(lowest) {
			first = lowest
		}
		shards := map[string][]string{}
		if err := r.catalogShards(ctx, service, first, newest, shards); err != nil {
			yield(nil, err)
			return
		}
		for d := newest; !d.Before(first); d = d.AddDate(0, 0, -1) {
			pk := schema.PartitionKey(service, d)
			if !yield(append([]string{pk}, shards[pk]...), nil) {
				return
			}
		}
		if !lowest.IsZero() && !lowest.Before(recent) {
			return
		}
		old, err := r.catalogGroups(ctx, service, lowest, recent)
		if err != nil {
			yield(nil, err)
			return
		}
		for _, g := range slices.Backward(old) {
			if !yield(g, nil) {
				return
			}
		}
	}
}

// catalogGroups returns the partitions the catalog lists for service's
// days from <= day < to (zero: open), one group per day (its shard-0
// partition first), oldest day first.
func (r *Reader) catalogGroups(ctx context.Context, service string, from, to time.Time) ([][]string, error) {
	lo, hi := service+"_", service+"_~"
	if !from.IsZero() {
		lo = schema.PartitionKey(service, from)
	}
	if !to.IsZero() {
		hi = schema.PartitionKey(service, to)
	}
	byDay := map[time.Time][]string{}
	for rk, err := range r.catalog(ctx, lo, hi) {
		if err != nil {
			return nil, err
		}
		svc, day, k, err := schema.ParsePartitionKey(rk)
		if err != nil || svc != service {
			continue
		}
		if k > 0 {
			byDay[day] = append(byDay[day], rk)
		} else if _, ok := byDay[day]; !ok {
			byDay[day] = nil
		}
	}
	days := slices.SortedFunc(maps.Keys(byDay), time.Time.Compare)
	groups := make([][]string, len(days))
	for i, d := range days {
		groups[i] = append([]string{schema.PartitionKey(service, d)}, slices.Sorted(slices.Values(byDay[d]))...)
	}
	return groups, nil
}

// catalogShards replaces the contents of shards with the shard partitions
// (k >= 1) the catalog lists for service's days first..last, by the day's
// shard-0 partition.
func (r *Reader) catalogShards(ctx context.Context, service string, first, last time.Time, shards map[string][]string) error {
	clear(shards)
	if last.Before(first) {
		return nil
	}
	lo, hi := schema.CatalogRange(service, first, last)
	for rk, err := range r.catalog(ctx, lo, hi) {
		if err != nil {
			return err
		}
		svc, day, k, err := schema.ParsePartitionKey(rk)
		if err != nil || svc != service || k == 0 {
			continue
		}
		base := schema.PartitionKey(service, day)
		shards[base] = append(shards[base], rk)
	}
	for _, s := range shards {
		slices.Sort(s) // a stable request order; the merge does not need it
	}
	return nil
}

// cursor is one partition of a merge: its current page and where the next
// one starts.
type cursor struct {
	pk   string
	opts aztables.ListEntitiesOptions
	page [][]byte
	keys []string // RowKeys of page
	i    int      // next entity of page
	more bool     // the partition has pages after page
	err  error
}

// fetch requests the cursor's next page, skipping empty pages that carry a
// continuation.
func (c *cursor) fetch(ctx context.Context, table Table, s *scan, accepted int) {
	c.page, c.keys, c.i = c.page[:0], c.keys[:0], 0
	for {
		c.opts.Top = s.top(accepted)
		resp, err := table.NewListEntitiesPager(&c.opts).NextPage(ctx)
		if err != nil {
			c.err, c.more = mapError(ctx, s.Op+" ("+c.pk+")", err), false
			return
		}
		c.more = !empty(resp.NextPartitionKey) || !empty(resp.NextRowKey)
		c.opts.NextPartitionKey, c.opts.NextRowKey = resp.NextPartitionKey, resp.NextRowKey
		c.page = resp.Entities
		for _, raw := range c.page {
			c.keys = append(c.keys, keyOfRaw(raw, "RowKey"))
		}
		if len(c.page) > 0 || !c.more {
			return
		}
	}
}

// mergePartitions reads a group of partitions for scanEntities as one
// stream in RowKey order (newest first), counting accepted records in
// *accepted. The first page of every partition is requested concurrently;
// afterwards a partition's next page is requested when its current page is
// used up and its next record may be the newest. It reports whether the
// scan goes on.
func mergePartitions[T any](ctx context.Context, table Table, s scan, pks []string, accept acceptFunc[T], yield func(T, error) bool, accepted *int) bool {
	var zero T
	cs := make([]*cursor, len(pks))
	for i, pk := range pks {
		opts, err := s.listOptions(pk)
		if err != nil {
			yield(zero, err)
			return false
		}
		cs[i] = &cursor{pk: pk, opts: opts}
	}
	if err := ctx.Err(); err != nil {
		yield(zero, err)
		return false
	}
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { c.fetch(ctx, table, &s, *accepted) })
	}
	wg.Wait()
	last := "" // RowKey of the last entity taken
	taken := false
	for {
		var best *cursor
		for _, c := range cs {
			for c.err == nil && c.i == len(c.page) && c.more {
				if err := ctx.Err(); err != nil {
					yield(zero, err)
					return false
				}
				c.fetch(ctx, table, &s, *accepted)
			}
			if c.err != nil {
				yield(zero, c.err)
				return false
			}
			if c.i < len(c.page) && (best == nil || c.keys[c.i] < best.keys[best.i]) {
				best = c
			}
		}
		if best == nil {
			return true
		}
		raw, rk := best.page[best.i], best.keys[best.i]
		best.page[best.i] = nil // let the page's entities go as they are used
		best.i++
		if taken && rk == last {
			continue // the same record in two shards: once
		}
		last, taken = rk, true
		if !emit(ctx, s, raw, accept, yield, accepted) {
			return false
		}
	}
}

// keyOfRaw returns the RowKey or PartitionKey (name) of an entity as the
// aztables client returns it (compact JSON). Inside a JSON string a quote
// is escaped, so `"RowKey":"` can only be the key itself; a key with escapes
// (never a tablelog key) is decoded properly. An entity without one yields
// "" (it sorts first and its decoding reports the error).
func keyOfRaw(raw []byte, name string) string {
	key := `"` + name + `":"`
	i := bytes.Index(raw, []byte(key))
	if i < 0 {
		return ""
	}
	v := raw[i+len(key):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return ""
	}
	if bytes.IndexByte(v[:j], '\\') < 0 {
		return string(v[:j])
	}
	var k map[string]any
	_ = json.Unmarshal(raw, &k)
	key2, _ := k[name].(string)
	return key2
}
