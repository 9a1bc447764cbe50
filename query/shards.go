package query

// Shards. A service that writes more than one partition takes spreads a
// day over the partitions <service>_<yyyyMMdd>_<k> (k >= 1) next to the
// day's own partition (shard 0). Before its first record in shard k, a
// writer inserts the shard's marker into shard 0 (RowKey
// schema.ShardMarkerRowKey(k), which sorts before every record) and its
// catalog entry (schema.AppendCatalogShardEntity). Readers learn a day's
// shards from the markers, at no extra request:
//
//   - a log read of a day's shard 0 (scan.Markers) asks for the marker
//     range too ("... or RowKey lt '\"'"), so the first page of shard 0
//     carries the day's markers ahead of its records; an unsharded day has
//     none and is read with exactly the requests of a read before shards
//     existed;
//   - when shard 0's first page names shards, they join the day's group
//     and the group is read as one newest-first stream (mergePartitions):
//     a k-way merge on RowKey (RowKeys order globally by time), one page
//     per partition in memory, each partition's next page requested only
//     when its current one is used up; a record stored in two shards
//     (which writers never do) is yielded once;
//   - days older than DefaultWindow are found in the catalog, which lists
//     their shards too (catalogGroups);
//   - should the marker condition push a filter past Azure's 15
//     comparisons, the day's shards are read from the catalog instead (one
//     more request), so a Where that fitted before shards still fits.

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

// shardCatalogDays is how many days of the catalog logGroups reads at
// most in one request (one DefaultWindow).
const shardCatalogDays = int(DefaultWindow / (24 * time.Hour))

// logGroups yields the groups of partitions of service to read for
// [since, until), newest first: every day of the DefaultWindow before until
// (or now), each as its shard-0 partition alone (the scan learns its
// shards from the markers, see scan.Markers), then the older days the
// catalog lists, with their shards (one catalog read, made only if the
// walk gets that far, down to since if set).
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
		for d := newest; !d.Before(first); d = d.AddDate(0, 0, -1) {
			if !yield([]string{schema.PartitionKey(service, d)}, nil) {
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

// dayGroups turns a walk over partitions into groups of one.
func dayGroups(pks iter.Seq2[string, error]) iter.Seq2[[]string, error] {
	return func(yield func([]string, error) bool) {
		for pk, err := range pks {
			if !yield([]string{pk}, err) || err != nil {
				return
			}
		}
	}
}

// dayShards returns the shard partitions (k >= 1) the catalog lists for
// the day of shard-0 partition pk of service (one catalog request): the
// fallback of a read whose filter has no room for the marker condition.
func (r *Reader) dayShards(ctx context.Context, service, pk string) ([]string, error) {
	_, day, _, err := schema.ParsePartitionKey(pk)
	if err != nil {
		return nil, nil
	}
	shards := map[string][]string{}
	if err := r.catalogShards(ctx, service, day, day, shards); err != nil {
		return nil, err
	}
	return shards[pk], nil
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

// markerFilter returns the filter of a read of shard-0 partition pk that
// also returns the day's shard markers: "PartitionKey eq pk and ((the
// record conditions) or RowKey lt ShardMarkerEnd)", one comparison more
// than rowKeyFilter.
func markerFilter(pk, lo, hi string, where Filter) (string, error) {
	var parts []Filter
	if lo != "" {
		parts = append(parts, Ge(Column(schema.ColRowKey), lo))
	}
	if hi != "" {
		parts = append(parts, Lt(Column(schema.ColRowKey), hi))
	}
	records := And(append(parts, where)...)
	if records.IsZero() {
		return rowKeyFilter(pk, "", "", Filter{}) // every entity: the markers too
	}
	return rowKeyFilter(pk, "", "", Or(records, Lt(Column(schema.ColRowKey), schema.ShardMarkerEnd)))
}

// cursor is one partition of a merge: its current page and where the next
// one starts.
type cursor struct {
	pk      string
	opts    aztables.ListEntitiesOptions
	markers bool  // the reads include the marker range (shard 0 of a day)
	shards  []int // the shards the markers named
	// pastMarkers: a record was seen; in RowKey order no marker follows.
	pastMarkers bool
	pages       pages // the memory of page (see pages)
	page        [][]byte
	i           int    // next entity of page
	key         string // RowKey of page[keyAt], for the merge (see rowKey)
	keyAt       int    // -1: key not taken yet
	more        bool   // the partition has pages after page
	err         error
}

// rowKey returns the RowKey of the cursor's next entity, page[i] (a copy:
// it outlives the page). Only a merge of several partitions needs it: a
// read of one partition takes its entities in their order.
func (c *cursor) rowKey() string {
	if c.keyAt != c.i {
		c.key, c.keyAt = keyOfRaw(c.page[c.i], "RowKey"), c.i
	}
	return c.key
}

// fetch requests the cursor's next page, skipping pages that hold only
// markers (taken out of the page, their shards noted) or nothing but carry
// a continuation.
func (c *cursor) fetch(ctx context.Context, table Table, s *scan, accepted int) {
	c.page, c.i, c.keyAt = c.page[:0], 0, -1
	for {
		c.opts.Top = s.top(accepted)
		resp, err := c.pages.next(ctx, table, &c.opts)
		if err != nil {
			c.err, c.more = mapError(ctx, s.Op+" ("+c.pk+")", err), false
			return
		}
		c.more = !empty(resp.NextPartitionKey) || !empty(resp.NextRowKey)
		c.opts.NextPartitionKey, c.opts.NextRowKey = resp.NextPartitionKey, resp.NextRowKey
		for _, raw := range resp.Entities {
			// The markers sort first: look for them up to the first
			// record.
			if c.markers && !c.pastMarkers {
				rk := keyOfRaw(raw, "RowKey")
				if rk != "" && schema.IsReservedRowKey(rk) {
					if k, ok := schema.ParseShardMarkerRowKey(rk); ok {
						c.shards = append(c.shards, k)
					}
					continue // never a record
				}
				c.pastMarkers = rk != ""
			}
			c.page = append(c.page, raw)
		}
		if len(c.page) > 0 || !c.more {
			return
		}
	}
}

// newCursor returns a cursor over partition pk for s. With s.Markers and
// first (the day's shard 0), its reads include the marker range, unless
// that would take the filter past Azure's comparison limit: then fallback
// is true and the caller asks the catalog for the day's shards.
func newCursor(s *scan, pk string, first bool) (c *cursor, fallback bool, err error) {
	opts, err := s.listOptions(pk)
	if err != nil {
		return nil, false, err
	}
	c = &cursor{pk: pk, opts: opts, keyAt: -1}
	if !s.Markers || !first {
		return c, false, nil
	}
	where := s.Where
	if s.PartitionWhere != nil {
		where = And(where, s.PartitionWhere(pk))
	}
	f, err := markerFilter(pk, s.Lo, s.Hi, where)
	if err != nil {
		return c, true, nil
	}
	c.opts.Filter, c.markers = &f, true
	return c, false, nil
}

// fetchAll requests the first page of every cursor, concurrently.
func fetchAll(ctx context.Context, table Table, s *scan, cs []*cursor, accepted int) {
	if len(cs) == 1 {
		cs[0].fetch(ctx, table, s, accepted)
		return
	}
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { c.fetch(ctx, table, s, accepted) })
	}
	wg.Wait()
}

// mergePartitions reads a group of partitions for scanEntities as one
// stream in RowKey order (newest first), counting accepted records in
// *accepted. With s.Markers, pks[0] is a day's shard 0: its first page is
// requested first, and the shards its markers name (or, see newCursor, the
// catalog lists) join the group. The first page of every other partition
// is requested concurrently; afterwards a partition's next page is
// requested when its current page is used up and its next record may be
// the newest. A group of one partition without markers costs the requests
// of a plain read of it. It reports whether the scan goes on.
func mergePartitions[T any](ctx context.Context, table Table, s scan, pks []string, accept acceptFunc[T], yield func(T, error) bool, accepted *int) bool {
	var zero T
	cs := make([]*cursor, 0, len(pks))
	defer func() {
		for _, c := range cs {
			c.pages.release()
		}
	}()
	fallback := false
	for i, pk := range pks {
		c, fb, err := newCursor(&s, pk, i == 0)
		if err != nil {
			yield(zero, err)
			return false
		}
		cs = append(cs, c)
		fallback = fallback || fb
	}
	if err := ctx.Err(); err != nil {
		yield(zero, err)
		return false
	}
	if s.Markers {
		// Shard 0 first: its markers name the day's shards.
		cs[0].fetch(ctx, table, &s, *accepted)
		if cs[0].err != nil {
			yield(zero, cs[0].err)
			return false
		}
		extra := make([]string, 0, len(cs[0].shards))
		for _, k := range cs[0].shards {
			extra = append(extra, shardKey(pks[0], k))
		}
		if fallback && s.CatalogShards != nil {
			more, err := s.CatalogShards(ctx, pks[0])
			if err != nil {
				yield(zero, err)
				return false
			}
			extra = append(extra, more...)
		}
		var added []*cursor
		for _, pk := range extra {
			if pk == "" || slices.Contains(pks, pk) {
				continue
			}
			pks = append(pks, pk)
			c, _, err := newCursor(&s, pk, false)
			if err != nil {
				yield(zero, err)
				return false
			}
			added = append(added, c)
		}
		rest := append(cs[1:len(cs):len(cs)], added...)
		fetchAll(ctx, table, &s, rest, *accepted)
		cs = append(cs[:1], rest...)
	} else {
		fetchAll(ctx, table, &s, cs, *accepted)
	}
	last := "" // RowKey of the last entity taken, when merging
	taken := false
	merge := len(cs) > 1
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
			if c.i < len(c.page) && (best == nil || c.rowKey() < best.rowKey()) {
				best = c
			}
		}
		if best == nil {
			return true
		}
		rk := ""
		if merge {
			rk = best.rowKey()
		}
		raw := best.page[best.i]
		best.page[best.i] = nil // let the page's entities go as they are used
		best.i++
		if merge {
			if taken && rk == last {
				continue // the same record in two shards: once
			}
			last, taken = rk, true
		}
		if !emit(ctx, s, raw, accept, yield, accepted) {
			return false
		}
	}
}

// shardKey returns the PartitionKey of shard k of the day of shard-0
// partition pk0, or "" if pk0 is not a day partition.
func shardKey(pk0 string, k int) string {
	service, day, shard, err := schema.ParsePartitionKey(pk0)
	if err != nil || shard != 0 || k < 1 || k > schema.MaxShard {
		return ""
	}
	return schema.ShardPartitionKey(service, day, k)
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
