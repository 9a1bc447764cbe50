package auditlog

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/schema"
)

// chainPos is the writer's view of where the chain goes on: the open day
// partition, the chain's last event, the lowest slot the next entity may
// take there, and the slots above it known to be taken by entities that are
// not the chain's (skipped).
type chainPos struct {
	known bool      // false: locate the head from the table
	stale bool      // a slot was lost: re-read the window above min
	day   time.Time // the open day partition
	cur   link      // the chain's last event (zero: none yet)
	min   int64     // the lowest slot the next entity may take in day
	taken []int64   // ascending slots >= min holding foreign entities
}

// freeSlots returns the n lowest slots >= min that are not known to be
// taken.
func (p *chainPos) freeSlots(n int) []int64 {
	out := make([]int64, 0, n)
	ti := 0
	for s := p.min; len(out) < n; s++ {
		for ti < len(p.taken) && p.taken[ti] < s {
			ti++
		}
		if ti < len(p.taken) && p.taken[ti] == s {
			continue
		}
		out = append(out, s)
	}
	return out
}

// advance records that entities up to slot last were stored, the last of
// them the event l.
func (p *chainPos) advance(l link, last int64) {
	p.cur, p.min = l, last+1
	i, _ := slices.BinarySearch(p.taken, p.min)
	p.taken = p.taken[i:]
}

// moveTo records that the chain continues on day from slot min (a seal at
// slot min closed the day before).
func (p *chainPos) moveTo(day time.Time, min int64) {
	p.day, p.min, p.taken = day, min, nil
}

const (
	// window is the number of slots one read above the head covers.
	window = 1000
	// maxHops bounds the windows and days one refresh may walk.
	maxHops = 100_000
	// topPages bounds the pages locate reads from the top of one day
	// looking for an authentic entity under foreign ones.
	topPages = 100
)

// ErrClock is wrapped by Record's error when the trail's day would lie more
// than a day after the writer's clock or the service's (the Date of its
// responses): the writer refuses to move the trail to, or follow it into,
// such a day, so one bad clock cannot carry the chain to a far day.
var ErrClock = errors.New("auditlog: clock out of range")

// limitDay returns the latest day the writer may write: the day after the
// earlier of its clock and the service's.
func (w *Writer) limitDay() time.Time {
	now := w.opts.Now()
	w.srvMu.Lock()
	if !w.srvTime.IsZero() {
		if s := w.srvTime.Add(time.Since(w.srvAt)); s.Before(now) {
			now = s
		}
	}
	w.srvMu.Unlock()
	return schema.Day(now).AddDate(0, 0, 1)
}

// withServerTime returns ctx capturing the response of one call; note
// reads its Date header into the writer's view of the service's clock.
func (w *Writer) withServerTime(ctx context.Context) (context.Context, *serverTime) {
	st := &serverTime{w: w}
	return policy.WithCaptureResponse(ctx, &st.resp), st
}

type serverTime struct {
	w    *Writer
	resp *http.Response
}

func (st *serverTime) note() {
	if st.resp == nil {
		return
	}
	t, err := http.ParseTime(st.resp.Header.Get("Date"))
	if err != nil {
		return
	}
	st.w.srvMu.Lock()
	st.w.srvTime, st.w.srvAt = t, time.Now()
	st.w.srvMu.Unlock()
}

func (w *Writer) clockError(day time.Time) error {
	return fmt.Errorf("%w: the trail would continue on day %s, more than a day after this writer's clock (%s) or the service's; check the clock",
		ErrClock, dayString(day), w.opts.Now().UTC().Format(time.RFC3339))
}

// locate finds the chain's head from the table, for a writer that knows
// nothing of it: the newest catalog day whose partition holds an authentic
// entity, then the chain forward from there (refresh). With no such day the
// trail is empty: it starts on the genesis claim's day (claimed for target
// if nobody has).
func (w *Writer) locate(ctx context.Context, target time.Time) error {
	days, err := w.catalogDays(ctx)
	if err != nil {
		return err
	}
	// The catalog is a hint: today's and yesterday's partitions are looked
	// at even if it does not list them.
	for _, d := range []time.Time{target.AddDate(0, 0, -1), target} {
		if i, found := slices.BinarySearchFunc(days, d, func(a, b time.Time) int { return a.Compare(b) }); !found {
			days = slices.Insert(days, i, d)
		}
	}
	pos := chainPos{}
	found := false
	for _, d := range slices.Backward(days) {
		e, ok, err := w.topAuthentic(ctx, d)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if e.seal {
			pos.day, pos.cur, pos.min = e.next, e.prev, e.slot
		} else {
			pos.day, pos.cur, pos.min = d, e.link(), e.slot+1
		}
		found = true
		break
	}
	if !found {
		// An empty trail: it starts on the genesis day, catalogued first.
		g, err := w.genesis(ctx, target)
		if err != nil {
			return err
		}
		if err := w.catalogEntry(ctx, g); err != nil {
			return err
		}
		pos.day, pos.min = g, 1
	}
	if pos.day.After(w.limitDay()) {
		return w.clockError(pos.day)
	}
	pos.known = true
	if err := w.refresh(ctx, &pos); err != nil {
		return err
	}
	w.pos = pos
	return nil
}

// topAuthentic returns the newest authentic entity of day's partition,
// reading past foreign entities above it.
func (w *Writer) topAuthentic(ctx context.Context, day time.Time) (elem, bool, error) {
	pk := schema.PartitionKey(w.opts.Service, day)
	var out elem
	found := false
	pages := 0
	err := w.list(ctx, listOptions(pk, "", "", 0), func(raw []byte) (bool, error) {
		e := inspect(w.hasher, w.keyed, w.opts.Service, pk, day, raw)
		if e.auth {
			out, found = e, true
			return false, nil
		}
		return true, nil
	}, func() bool { pages++; return pages < topPages })
	return out, found, err
}

// refresh reads the slots above pos.min in pos.day, window by window, and
// follows the chain: an authentic event linking to pos.cur becomes the new
// last event; an authentic seal linking to it moves the chain to the day
// it names; anything else in a slot is foreign and its slot is skipped. It
// stops once a window leaves room for a full batch and a seal.
func (w *Writer) refresh(ctx context.Context, pos *chainPos) error {
	limit := w.limitDay()
	for hops := 0; hops < maxHops; hops++ {
		lo := pos.min
		pos.taken = pos.taken[:0]
		moved := false
		for !moved && hops < maxHops {
			hops++
			ents, err := w.window(ctx, pos.day, lo, lo+window)
			if err != nil {
				return err
			}
			for i := range ents {
				e := &ents[i]
				switch {
				case e.auth && e.prev == pos.cur && e.slot >= pos.min && !e.seal:
					pos.advance(e.link(), e.slot)
				case e.auth && e.prev == pos.cur && e.slot >= pos.min && e.seal:
					if e.next.After(limit) {
						return w.clockError(e.next)
					}
					pos.moveTo(e.next, e.slot)
					moved = true
				default:
					pos.taken = append(pos.taken, e.slot)
				}
				if moved {
					break
				}
			}
			if moved {
				break
			}
			hi := lo + window
			if free := hi - pos.min - int64(len(pos.taken)); free > int64(w.opts.MaxBatch) {
				pos.stale = false
				return nil
			}
			lo = hi
		}
	}
	return fmt.Errorf("%w: more than %d windows or days to follow above the head", ErrCorruptTrail, maxHops)
}

// window returns the entities of day's partition in slots [lo, hi),
// ascending.
func (w *Writer) window(ctx context.Context, day time.Time, lo, hi int64) ([]elem, error) {
	pk := schema.PartitionKey(w.opts.Service, day)
	o := listOptions(pk, schema.AuditRowKey(hi-1), "", 0)
	f := *o.Filter + " and RowKey le " + quote(schema.AuditRowKey(lo))
	o.Filter = &f
	var out []elem
	err := w.list(ctx, o, func(raw []byte) (bool, error) {
		e := inspect(w.hasher, w.keyed, w.opts.Service, pk, day, raw)
		if e.slotOK {
			out = append(out, e)
		}
		return true, nil
	}, nil)
	slices.Reverse(out)
	return out, err
}

// list runs one query with the writer's request timeout, noting the
// service's clock; more, if set, is asked before each further page.
func (w *Writer) list(ctx context.Context, o *aztables.ListEntitiesOptions, fn func(raw []byte) (bool, error), more func() bool) error {
	ctx, cancel := context.WithTimeout(noRetry(ctx), w.opts.RequestTimeout)
	defer cancel()
	p := w.read.NewListEntitiesPager(o)
	for p.More() {
		cctx, st := w.withServerTime(ctx)
		resp, err := p.NextPage(cctx)
		if err != nil {
			return err
		}
		st.note()
		for _, raw := range resp.Entities {
			goOn, err := fn(raw)
			if err != nil || !goOn {
				return err
			}
		}
		if more != nil && !more() {
			return nil
		}
	}
	return nil
}

// catalogDays returns the days the catalog lists for the writer's service,
// ascending, whether their entries are authentic or not (the partitions'
// entities are checked instead).
func (w *Writer) catalogDays(ctx context.Context) ([]time.Time, error) {
	var days []time.Time
	err := w.list(ctx, catalogOptions(w.opts.Service), func(raw []byte) (bool, error) {
		svc, day, shard, err := schema.ParsePartitionKey(rowKeyOf(raw))
		if err == nil && svc == w.opts.Service && shard == 0 {
			days = append(days, day)
		}
		return true, nil
	}, nil)
	return days, err
}

// genesis returns the trail's first day: the day of the lowest-numbered
// authentic genesis claim. With none, it claims target, in the number after
// the highest taken, and reads the claims again (another writer may have
// claimed a lower number meanwhile).
func (w *Writer) genesis(ctx context.Context, target time.Time) (time.Time, error) {
	for range 16 {
		claims, err := readGenesis(ctx, w.read, w.hasher, w.opts.Service, w.opts.RequestTimeout)
		if err != nil {
			return time.Time{}, err
		}
		if d, ok := claims.first(); ok {
			return d, nil
		}
		if target.After(w.limitDay()) {
			return time.Time{}, w.clockError(target)
		}
		rk := schema.AuditGenesisRowKey(w.opts.Service, claims.next)
		day := dayString(target)
		mac := w.hasher.catalogMac(w.opts.Service, rk, day).String()
		err = w.add(ctx, schema.AppendAuditCatalogEntity(nil, rk, w.opts.Service, target, mac))
		if k, _ := classify(err); k != kindOK && k != kindConflict {
			return time.Time{}, err
		}
	}
	return time.Time{}, fmt.Errorf("%w: could not claim the trail's genesis", ErrCorruptTrail)
}

// genesisClaims is what readGenesis found.
type genesisClaims struct {
	day     time.Time // the lowest-numbered authentic claim's day
	ok      bool
	next    int64    // the number after the highest taken
	foreign []string // RowKeys of claims that are not authentic
}

func (g genesisClaims) first() (time.Time, bool) { return g.day, g.ok }

// readGenesis reads the genesis claims of service.
func readGenesis(ctx context.Context, t ReadTable, h *hasher, service string, timeout time.Duration) (genesisClaims, error) {
	var g genesisClaims
	p := schema.AuditGenesisPrefix(service)
	o := listOptions(schema.CatalogPartition, p, p+"~", 0)
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(noRetry(ctx), timeout)
		defer cancel()
	}
	err := listAll(ctx, t, o, func(raw []byte) (bool, error) {
		c, err := schema.ParseAuditCatalog(raw)
		n, isClaim := schema.ParseAuditGenesisRowKey(service, rowKeyOf(raw))
		if !isClaim {
			g.foreign = append(g.foreign, rowKeyOf(raw))
			return true, nil
		}
		g.next = max(g.next, n+1)
		day, derr := parseDay(c.Day)
		if err != nil || derr != nil || c.Service != service || !catalogAuthentic(h, service, c) {
			g.foreign = append(g.foreign, c.RowKey)
			return true, nil
		}
		if !g.ok {
			g.day, g.ok = day, true
		}
		return true, nil
	})
	return g, err
}

// catalogAuthentic reports whether a catalog entry's Mac checks (without a
// key, anyone can compute it: it only catches accidents).
func catalogAuthentic(h *hasher, service string, c schema.AuditCatalogEntry) bool {
	m, err := ParseHash(c.Mac)
	if err != nil {
		return false
	}
	return h.catalogMac(service, c.RowKey, c.Day) == m
}

// openDay moves the chain from pos.day to day: the day's catalog entry
// (a foreign entity already in its place is left, and reported by Verify),
// then a seal in the first free slot of pos.day naming day and linking to
// the chain's last event. A lost slot is returned as a conflict (the
// caller refreshes and tries again).
func (w *Writer) openDay(ctx context.Context, day time.Time) error {
	if day.After(w.limitDay()) {
		return w.clockError(day)
	}
	if err := w.catalogEntry(ctx, day); err != nil {
		return err
	}
	slot := w.pos.freeSlots(1)[0]
	seal := schema.AuditRecord{
		PartitionKey: schema.PartitionKey(w.opts.Service, w.pos.day),
		RowKey:       schema.AuditRowKey(slot),
		Seq:          slot,
		PrevSeq:      w.pos.cur.seq,
		PrevHash:     w.pos.cur.hash.String(),
		Time:         w.opts.Now().UTC().Truncate(100 * time.Nanosecond),
		Alg:          w.alg,
		Seal:         dayString(day),
	}
	seal.Hash = w.hasher.sum(w.opts.Service, &seal, w.pos.cur.hash, true).String()
	if err := w.add(ctx, schema.AppendAuditEntity(nil, &seal)); err != nil {
		if k, _ := classify(err); k == kindConflict {
			// Our own seal from an attempt whose response was lost is
			// found by the refresh like anyone else's.
			w.pos.stale = true
		}
		return err
	}
	w.pos.moveTo(day, slot)
	return nil
}

// catalogEntry inserts the authentic catalog entry of day. An entity
// already in its place (ours, or a foreign one Verify reports) is left.
func (w *Writer) catalogEntry(ctx context.Context, day time.Time) error {
	rk := schema.PartitionKey(w.opts.Service, day)
	mac := w.hasher.catalogMac(w.opts.Service, rk, dayString(day)).String()
	err := w.add(ctx, schema.AppendAuditCatalogEntity(nil, rk, w.opts.Service, day, mac))
	if k, _ := classify(err); k != kindOK && k != kindConflict {
		return err
	}
	return nil
}

// add inserts one entity, without the SDK's retries.
func (w *Writer) add(ctx context.Context, entity []byte) error {
	ctx, cancel := context.WithTimeout(noRetry(ctx), w.opts.RequestTimeout)
	defer cancel()
	_, err := w.table.AddEntity(ctx, entity, nil)
	return err
}

// isNotFound reports a 404 from the service.
func isNotFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}
