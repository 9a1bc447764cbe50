package query

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"maps"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/tablelog/tablelog/internal/schema"
)

// FollowOptions tune Follow. The zero value means the defaults.
type FollowOptions struct {
	// Poll is the time between two polls of the table (default
	// DefaultPoll).
	Poll time.Duration
	// Lookback is how late a record may land, after the time it carries,
	// and still be emitted (default DefaultLookback). Writers flush on an
	// interval and retry through outages, so records arrive out of order;
	// a record that lands more than Lookback after its time is not seen.
	// Memory grows with the number of records in this window.
	Lookback time.Duration
}

// Defaults of FollowOptions.
const (
	DefaultPoll     = time.Second
	DefaultLookback = time.Minute
)

// arrivalMargin is how far back from the newest server Timestamp seen each
// poll looks again. The service stamps an entity when it processes the write;
// a write stamped earlier than one already seen may become visible a little
// later. Records seen again in the margin are recognised and not repeated.
const arrivalMargin = 5 * time.Second

// Follow emits the records selected by q as they are stored, like tail -f,
// until ctx is done, q.Limit records were emitted, or (with q.Until set)
// the Lookback window has passed Until.
//
// With a zero q.Since it emits only records stored after Follow starts;
// with q.Since set it first emits the stored records from Since on (all of
// them are held in memory, oldest first), then the new ones.
//
// Each poll reads, across the days it spans (so a day rollover is
// seamless), each day's partition and its shards (learnt from the markers
// on the first page of the day's partition, so a shard another writer
// starts mid-follow is polled from then on; an unsharded day costs one
// request a poll), the records whose time is within Lookback of now and that the
// server stamped since shortly before the newest one already seen. Records
// not seen before are emitted oldest first (by ULID); a record that lands
// late is emitted when it lands, after newer ones emitted earlier. No record
// is emitted twice, and none that lands within Lookback is missed; memory is
// bounded by the records of that window.
//
// Errors: a table-not-found, authorization or invalid-query error ends the
// iteration; other request errors (throttling, outages) are yielded and
// polling goes on if the caller keeps ranging (nothing is lost while the
// outage is shorter than Lookback). A done ctx yields ctx.Err() and ends it.
func (r *Reader) Follow(ctx context.Context, q Logs, opts FollowOptions) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		if err := r.validate(q); err != nil {
			yield(Record{}, err)
			return
		}
		if opts.Poll < 0 || opts.Lookback < 0 {
			yield(Record{}, invalid("negative Poll or Lookback"))
			return
		}
		f := follower{
			r:        r,
			q:        q,
			poll:     cmpOr(opts.Poll, DefaultPoll),
			lookback: cmpOr(opts.Lookback, DefaultLookback),
			seen:     make(map[ulid.ULID]time.Time),
			bad:      make(map[string]bool),
		}
		f.run(ctx, yield)
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// follower is the state of one Follow iteration.
type follower struct {
	r              *Reader
	q              Logs
	poll, lookback time.Duration

	horizon time.Time               // oldest record time still polled; never decreases
	maxTS   time.Time               // the oldest of partTS: prune's Timestamp bound
	partTS  map[string]time.Time    // per partition, the newest server Timestamp seen
	seen    map[ulid.ULID]time.Time // records seen in the window → server Timestamp
	bad     map[string]bool         // RowKeys of undecodable entities already reported
	emitted int
}

type arrival struct {
	rec Record
	ts  time.Time
}

func (f *follower) run(ctx context.Context, yield func(Record, error) bool) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	baseline := true // the first successful poll only marks what exists
	for {
		select {
		case <-ctx.Done():
			yield(Record{}, ctx.Err())
			return
		case <-timer.C:
		}
		now := f.r.clock()
		h := now.Add(-f.lookback)
		if baseline && !f.q.Since.IsZero() && f.q.Since.Before(h) {
			h = f.q.Since
		}
		if h.After(f.horizon) {
			f.horizon = h
		}
		batch, complete, errs := f.pollOnce(ctx, now)
		for _, err := range errs {
			if ctx.Err() != nil {
				yield(Record{}, ctx.Err())
				return
			}
			if !yield(Record{}, err) || fatal(err) {
				return
			}
		}
		// Records of an incomplete poll were marked seen: emit them now.
		emit := !baseline || !f.q.Since.IsZero()
		for _, a := range batch {
			if !emit || !clientMatch(&f.q, &a.rec) {
				continue
			}
			if !yield(a.rec, nil) {
				return
			}
			f.emitted++
			if f.q.Limit > 0 && f.emitted >= f.q.Limit {
				return
			}
		}
		if complete {
			baseline = false
		}
		f.prune()
		if f.r.afterPoll != nil {
			f.r.afterPoll()
		}
		if !f.q.Until.IsZero() && !f.horizon.Before(f.q.Until) {
			return
		}
		timer.Reset(f.poll)
	}
}

// fatal reports whether polling again cannot help.
func fatal(err error) bool {
	return errors.Is(err, ErrTableNotFound) || errors.Is(err, ErrAuth) || errors.Is(err, ErrInvalidQuery)
}

// pollOnce reads the window and returns the records not seen before, oldest
// first, marking them seen, and whether the whole window was read.
// Undecodable entities are reported once each.
func (f *follower) pollOnce(ctx context.Context, now time.Time) (batch []arrival, complete bool, errs []error) {
	lo, hi := rowKeyBounds(f.horizon, f.q.Until)
	where := serverFilter(f.q)
	upper := now.Add(maxClockSkew)
	if !f.q.Until.IsZero() && f.q.Until.Before(upper) {
		upper = f.q.Until.Add(-time.Nanosecond)
	}
	service := f.q.Service
	s := scan{
		Groups:        dayGroups(dayPartitions(f.horizon, upper, func(d time.Time) string { return schema.PartitionKey(service, d) })),
		Markers:       true, // every poll learns the days' shards from shard 0's first page
		CatalogShards: func(ctx context.Context, pk string) ([]string, error) { return f.r.dayShards(ctx, service, pk) },
		Lo:            lo,
		Hi:            hi,
		Where:         where,
		// Each partition is read from its own Timestamp floor: a poll reads
		// its partitions one after another (and a day's shards side by
		// side), so another partition's newer Timestamps say nothing about
		// what may still land in this one.
		PartitionWhere: func(pk string) Filter {
			if ts, ok := f.partTS[pk]; ok {
				return Ge(ColTimestamp, floorOf(ts))
			}
			return Filter{}
		},
		Op: "follow logs",
	}
	complete = true
	pollMax := maps.Clone(f.partTS)
	if pollMax == nil {
		pollMax = map[string]time.Time{}
	}
	accept := func(raw []byte) (arrival, bool, error) {
		rec, ts, err := decodeRecord(raw)
		if err != nil {
			var k struct{ PartitionKey, RowKey string }
			_ = json.Unmarshal(raw, &k)
			key := k.PartitionKey + "/" + k.RowKey
			if f.bad[key] {
				return arrival{}, false, nil
			}
			if len(f.bad) > 10000 {
				clear(f.bad)
			}
			f.bad[key] = true
			return arrival{}, false, err
		}
		if pk := keyOfRaw(raw, "PartitionKey"); ts.After(pollMax[pk]) {
			pollMax[pk] = ts
		}
		if _, ok := f.seen[rec.ID]; ok {
			return arrival{}, false, nil
		}
		f.seen[rec.ID] = ts
		return arrival{rec, ts}, true, nil
	}
	for a, err := range scanEntities(ctx, f.r.table, s, accept) {
		if err != nil {
			errs = append(errs, err)
			if !errors.Is(err, ErrBadEntity) {
				complete = false
				break
			}
			continue
		}
		batch = append(batch, a)
	}
	if complete {
		// Only a complete poll moves the Timestamp floors: an entity in a
		// partition the failed poll did not reach may be older.
		f.partTS = pollMax
		f.maxTS = time.Time{}
		for pk, ts := range f.partTS {
			if !inSpan(pk, f.horizon) {
				delete(f.partTS, pk) // a day behind the horizon: never polled again
				continue
			}
			if f.maxTS.IsZero() || ts.Before(f.maxTS) {
				f.maxTS = ts
			}
		}
	}
	slices.SortFunc(batch, func(a, b arrival) int { return a.rec.ID.Compare(b.rec.ID) })
	return batch, complete, errs
}

// prune forgets records that no later poll can return: older than the
// horizon (RowKey bound) or stamped before the arrival margin (Timestamp
// bound).
func (f *follower) prune() {
	minMs := uint64(max(f.horizon.UnixMilli(), 0))
	floor, ok := f.floor()
	for id, ts := range f.seen {
		if id.Time() < minMs || ok && ts.Before(floor) {
			delete(f.seen, id)
		}
	}
}

// floor is the server Timestamp from which the next poll reads: the arrival
// margin before the newest Timestamp seen, truncated to the millisecond
// (Azurite compares DateTimes at millisecond precision).
func (f *follower) floor() (time.Time, bool) {
	if f.maxTS.IsZero() {
		return time.Time{}, false
	}
	return floorOf(f.maxTS), true
}

// floorOf is the Timestamp floor below the newest Timestamp ts seen in a
// partition: the arrival margin before it, truncated to the millisecond
// (Azurite compares DateTimes at millisecond precision).
func floorOf(ts time.Time) time.Time {
	return ts.Add(-arrivalMargin).Truncate(time.Millisecond)
}

// inSpan reports whether partition pk's day is not before horizon's day.
func inSpan(pk string, horizon time.Time) bool {
	_, day, _, err := schema.ParsePartitionKey(pk)
	return err == nil && !day.Before(schema.Day(horizon))
}
