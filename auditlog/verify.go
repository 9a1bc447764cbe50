package auditlog

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/schema"
)

// Kind is the kind of a break Verify reports.
type Kind string

// Kinds of breaks.
const (
	// Modified: the entity's content no longer matches its hash while its
	// hash is vouched for (the next authentic entity links to it, or it is
	// the expected head); or, in a trail without a key, any mismatch; or
	// an event whose successor links to a different hash; or an entity
	// with columns an audit writer never writes; or a day change the
	// day's seal does not vouch for.
	Modified Kind = "modified"
	// Deleted: events are missing inside the trail (Count of them from
	// Seq): an authentic entity links to an event that is not there.
	Deleted Kind = "deleted"
	// Inserted: an entity that is not part of the chain: a RowKey that is
	// not a chain slot, an entity in a slot the chain skipped or above the
	// head that no key vouches for, an entity in a shard or in a partition
	// that is not a day, a catalog entry or genesis claim whose Mac does
	// not check, or an authentic entity the chain links past (a fork).
	Inserted Kind = "inserted"
	// Reordered: an authentic event found in another event's slot (its
	// own Seq differs from its position).
	Reordered Kind = "reordered"
	// Forged: with a Key, an event whose hash is not the key's HMAC of its
	// content and that no later authentic entity vouches for: re-hashed
	// with another key, or hashed without a key.
	Forged Kind = "forged"
	// Truncated: the trail ends before the expected head (Count events
	// missing from Seq).
	Truncated Kind = "truncated"
	// Misdated: an authentic event stored in a day partition that is
	// neither the UTC day of its Time nor the day after (a writer's clock
	// was wrong, or the entity was moved).
	Misdated Kind = "misdated"
	// Unlisted: a day partition holding chain entities has no authentic
	// catalog entry (readers that list days from the catalog, such as
	// query.Audit, miss it), or the trail has no authentic genesis claim,
	// or the claim names another day than the one the chain starts on.
	Unlisted Kind = "unlisted"
)

// Break is one defect Verify found.
type Break struct {
	Kind Kind
	// Seq is the chain position: the slot the entity occupies, or for
	// Deleted and Truncated the first missing sequence number. For an
	// Inserted entity whose RowKey is not a slot, the slot just above it.
	Seq int64
	// Count is the number of missing events for Deleted and Truncated,
	// else 1.
	Count int64
	// PartitionKey and RowKey locate the entity (empty for Deleted and
	// Truncated).
	PartitionKey, RowKey string
	// ID is the stored event's ID, if it has one.
	ID string
	// Detail explains the finding in words.
	Detail string
}

// String renders the break on one line: kind, position, location and
// detail.
func (b Break) String() string {
	loc := ""
	if b.PartitionKey != "" {
		loc = " at " + b.PartitionKey + "/" + b.RowKey
	}
	if b.Kind == Deleted || b.Kind == Truncated {
		return fmt.Sprintf("%s: seq %d..%d (%d)%s: %s", b.Kind, b.Seq, b.Seq+b.Count-1, b.Count, loc, b.Detail)
	}
	return fmt.Sprintf("%s: seq %d%s: %s", b.Kind, b.Seq, loc, b.Detail)
}

// Head identifies the newest event of a trail: record it somewhere the
// table's writers cannot change (a ticket, another account, a signed
// message) and pass it back as VerifyOptions.ExpectedHead to detect a
// truncated tail or a re-hashed chain.
type Head struct {
	Seq  int64
	Hash Hash
	// Day is the UTC day of the partition holding it, Time the event's
	// time (informational; not compared).
	Day  time.Time
	Time time.Time
}

// VerifyOptions select the trail to verify. Service is required.
type VerifyOptions struct {
	// Service names the trail.
	Service string
	// Since and Until select whole UTC days: the day partitions from
	// Since's day through Until's day. Zero Since means from the trail's
	// first day (then the first event must be seq 1 with a zero PrevHash);
	// otherwise the first day's link to the previous day's last event is
	// checked too. Zero Until means to the newest day.
	Since, Until time.Time
	// Key is the HMAC key the writers used; nil for a SHA-256 trail.
	// Verifying a keyed trail without the key fails with ErrKeyRequired.
	Key []byte
	// ExpectedHead, if its Seq is not zero, is a head recorded earlier: the
	// event at that seq must have that hash, and with a zero Until a trail
	// ending before it is reported as Truncated.
	ExpectedHead Head
	// MaxBreaks bounds the breaks listed (default 1000); the rest are
	// counted in Report.Omitted.
	MaxBreaks int
}

// Report is Verify's result.
type Report struct {
	Service string
	// Checked is the number of events examined (seals not counted).
	Checked int
	// Head is the newest event examined (zero if none).
	Head Head
	// Breaks lists the defects in chain order (ascending Seq).
	Breaks []Break
	// Omitted counts breaks beyond VerifyOptions.MaxBreaks.
	Omitted int
}

// OK reports whether Verify found no break.
func (r Report) OK() bool { return len(r.Breaks) == 0 && r.Omitted == 0 }

// ErrKeyRequired is returned by Verify for a trail hashed with a key
// (HMAC-SHA-256) when VerifyOptions.Key is nil.
var ErrKeyRequired = errors.New("auditlog: the trail is keyed (HMAC-SHA-256); VerifyOptions.Key is required")

// Verify reads the trail of one service and checks every entity: its hash
// against its content (with Key, an HMAC that also binds the entity to its
// partition and slot), its link to the event before, the seals that close
// each day, that no event is missing or off the chain, that each event's
// partition is the day of its Time or the next, and the catalog entries and
// genesis claims. It returns a Report of every break it found; breaks are
// findings, not errors. The error is for a trail that could not be read
// (after the SDK's retries), bad options, or ErrKeyRequired; the Report then
// holds what was checked so far.
//
// Verify does not trust the catalog to find the days: it reads every
// partition of the service in the range with one query over the
// PartitionKey range "<service>_<day>" (ascending days; within a day newest
// first), so a partition nobody catalogued is read too. The cost is one
// read of every entity in the range (1,000 per page, and on Azure at least
// one request per day partition), plus one query of the catalog; memory
// does not grow with the trail (only the breaks list, up to MaxBreaks).
//
// Without ExpectedHead nothing can tell a trail whose newest events were
// cut off from a shorter one, with a key or without: record Report.Head
// somewhere the table's writers cannot change and pass it back.
//
// Verify needs read permission only. It is safe to run while writers
// append: it checks the days as they are when read (an event appended
// during the run may show as the head, or not at all).
func Verify(ctx context.Context, table ReadTable, opts VerifyOptions) (Report, error) {
	rep := Report{Service: opts.Service}
	if table == nil {
		return rep, errors.New("auditlog: nil table")
	}
	if err := schema.ValidateService(opts.Service); err != nil {
		return rep, fmt.Errorf("auditlog: %w", err)
	}
	if opts.MaxBreaks <= 0 {
		opts.MaxBreaks = 1000
	}
	v := &verifier{opts: opts, rep: &rep, hasher: newHasher(opts.Key), keyed: len(opts.Key) > 0, table: table, ctx: ctx}
	if !opts.Since.IsZero() {
		v.from = schema.Day(opts.Since)
	}
	if !opts.Until.IsZero() {
		v.to = schema.Day(opts.Until).AddDate(0, 0, 1)
	}
	fail := func(err error) (Report, error) {
		v.finish()
		return rep, err
	}
	if err := v.readCatalog(); err != nil {
		return fail(fmt.Errorf("auditlog: reading the catalog: %w", describeErr(err)))
	}
	lo, hi := opts.Service+"_0", opts.Service+"_:"
	if !v.from.IsZero() {
		lo = schema.PartitionKey(opts.Service, v.from)
	}
	if !v.to.IsZero() {
		hi = schema.PartitionKey(opts.Service, v.to)
	}
	f := "PartitionKey ge " + quote(lo) + " and PartitionKey lt " + quote(hi)
	err := listAll(ctx, table, &aztables.ListEntitiesOptions{Filter: &f}, func(raw []byte) (bool, error) {
		return true, v.entity(raw)
	})
	if err != nil {
		if errors.Is(err, ErrKeyRequired) {
			return fail(err)
		}
		return fail(fmt.Errorf("auditlog: reading %s's trail: %w", opts.Service, describeErr(err)))
	}
	if err := v.endDay(); err != nil {
		return fail(err)
	}
	v.end()
	v.finish()
	return rep, nil
}

// verifier is Verify's state: the day being read (entities arrive newest
// slot first) and what it needs of the days before it.
type verifier struct {
	ctx      context.Context
	table    ReadTable
	opts     VerifyOptions
	rep      *Report
	hasher   *hasher
	keyed    bool
	from, to time.Time // the range's days [from, to); zero: open

	catalog map[time.Time]bool // days with an authentic catalog entry
	genesis time.Time          // the lowest authentic genesis claim's day
	hasGen  bool

	// The chain so far, over the days before the current one.
	tail      *link     // the last authentic event (nil: none yet)
	tailSlot  int64     // the highest slot of the chain so far (its last event, or a seal above it)
	tailSeal  *elem     // the seal that closed the last day holding chain entities
	tailDay   time.Time // that day
	started   bool      // an entity linking to the start of the trail was seen
	anchorged bool      // the link before the range was checked

	// The current day.
	pk       string
	day      time.Time
	daySeal  *elem
	dayTop   *link     // the newest event of the day on the chain (authentic, or damaged in place)
	topTime  time.Time // its Time
	want     *link     // what the last chain entity above links to
	wantBy   int64     // the slot of the entity that links so
	lastSlot int64     // the slot of the entity read before (0: none yet)
	lost     bool      // the link below a damaged entity is unknown
	dayChain bool      // the day holds authentic chain entities
	other    bool      // the partition is another service's: skipped
}

func (v *verifier) add(b Break) {
	if b.Count == 0 {
		b.Count = 1
	}
	if len(v.rep.Breaks) >= v.opts.MaxBreaks {
		v.rep.Omitted++
		return
	}
	v.rep.Breaks = append(v.rep.Breaks, b)
}

// finish sorts the breaks into chain order and merges adjacent ranges of
// deleted events (a range can be seen in two pieces across a day).
func (v *verifier) finish() {
	slices.SortStableFunc(v.rep.Breaks, func(a, b Break) int { return cmp.Compare(a.Seq, b.Seq) })
	out := v.rep.Breaks[:0]
	for _, b := range v.rep.Breaks {
		if n := len(out); n > 0 && b.Kind == Deleted && out[n-1].Kind == Deleted && out[n-1].Seq+out[n-1].Count >= b.Seq {
			out[n-1].Count = max(out[n-1].Count, b.Seq+b.Count-out[n-1].Seq)
			out[n-1].Detail = fmt.Sprintf("seq %d..%d are missing", out[n-1].Seq, out[n-1].Seq+out[n-1].Count-1)
			continue
		}
		out = append(out, b)
	}
	v.rep.Breaks = out
}

// readCatalog reads the service's catalog entries in the range and its
// genesis claims, reporting every one whose Mac does not check.
func (v *verifier) readCatalog() error {
	v.catalog = map[time.Time]bool{}
	svc := v.opts.Service
	err := listAll(v.ctx, v.table, catalogOptions(svc), func(raw []byte) (bool, error) {
		rk := rowKeyOf(raw)
		s, day, shard, err := schema.ParsePartitionKey(rk)
		if err == nil && s != svc {
			return true, nil // another service whose name continues with '_'
		}
		if (!v.from.IsZero() && day.Before(v.from)) || (!v.to.IsZero() && !day.Before(v.to)) {
			return true, nil
		}
		c, cerr := schema.ParseAuditCatalog(raw)
		if err != nil || shard != 0 || cerr != nil || c.Service != svc || c.Day != dayString(day) || !catalogAuthentic(v.hasher, svc, c) {
			v.add(Break{Kind: Inserted, PartitionKey: schema.CatalogPartition, RowKey: rk, Detail: "a catalog entry whose Mac does not check"})
			return true, nil
		}
		v.catalog[day] = true
		return true, nil
	})
	if err != nil {
		return err
	}
	g, err := readGenesis(v.ctx, v.table, v.hasher, svc, 0)
	if err != nil {
		return err
	}
	for _, rk := range g.foreign {
		v.add(Break{Kind: Inserted, PartitionKey: schema.CatalogPartition, RowKey: rk, Detail: "a genesis claim whose Mac does not check"})
	}
	v.genesis, v.hasGen = g.first()
	return nil
}

// entity checks one entity of the range.
func (v *verifier) entity(raw []byte) error {
	pk := stringProp(raw, schema.ColPartitionKey)
	if pk != v.pk {
		if err := v.endDay(); err != nil {
			return err
		}
		v.pk = pk
		svc, day, shard, err := schema.ParsePartitionKey(pk)
		v.other = err == nil && svc != v.opts.Service // a service whose name continues with '_'
		v.day = time.Time{}
		if err == nil && shard == 0 {
			v.day = day
		}
	}
	if v.other {
		return nil
	}
	if v.day.IsZero() {
		v.add(Break{Kind: Inserted, PartitionKey: pk, RowKey: rowKeyOf(raw), Detail: "a partition that is not one of the trail's days (audit trails have no shards)"})
		return nil
	}
	e := inspect(v.hasher, v.keyed, v.opts.Service, pk, v.day, raw)
	if e.derr == nil && e.rec.Alg == schema.AuditAlgHMAC && !v.keyed && !e.seal {
		return fmt.Errorf("%w (event %s/%s)", ErrKeyRequired, pk, e.rk)
	}
	b := Break{Seq: e.slot, PartitionKey: pk, RowKey: e.rk, ID: e.rec.ID}
	if !e.slotOK {
		b.Seq, b.Kind, b.Detail = v.lastSlot, Inserted, "the RowKey is not a chain slot"
		v.add(b)
		return nil
	}
	v.lastSlot = e.slot
	switch {
	case e.auth && e.seal:
		v.seal(&e, b)
	case e.auth:
		v.event(&e, b)
	default:
		v.foreign(&e, b)
	}
	return nil
}

// seal checks an authentic seal: it must be the newest chain entity of its
// day; the day's last event must be the one it links to.
func (v *verifier) seal(e *elem, b Break) {
	if v.daySeal != nil || v.dayTop != nil || v.lost {
		b.Kind, b.Detail = Inserted, "an authentic seal below other chain entities of its day"
		v.add(b)
		return
	}
	if v.want != nil && (e.slot > v.want.seq) {
		b.Kind, b.Detail = Inserted, "an authentic seal the chain links past"
		v.add(b)
		return
	}
	v.daySeal, v.dayChain = e, true
	v.follow(e)
}

// follow makes e's link the one the next chain entity below must satisfy.
func (v *verifier) follow(e *elem) {
	w := e.prev
	v.want, v.wantBy, v.lost = &w, e.slot, false
}

// onChain records e as an event on the chain (authentic, or damaged in its
// place): the day's newest, if it is the first.
func (v *verifier) onChain(e *elem) {
	v.dayChain = true
	v.rep.Checked++
	if v.dayTop == nil {
		v.dayTop, v.topTime = &link{seq: e.slot, hash: e.hash}, e.rec.Time
	}
}

// event checks an authentic event against the chain above it.
func (v *verifier) event(e *elem, b Break) {
	eh := v.opts.ExpectedHead
	if v.want != nil && !v.lost {
		switch {
		case e.slot > v.want.seq:
			b.Kind, b.Detail = Inserted, fmt.Sprintf("an authentic event the chain links past (the next entity links to seq %d)", v.want.seq)
			v.add(b)
			return
		case e.slot == v.want.seq && e.hash != v.want.hash:
			b.Kind, b.Detail = Modified, "the next entity links to a different hash (this event was replaced)"
			v.add(b)
		case e.slot < v.want.seq:
			v.add(Break{Kind: Deleted, Seq: e.slot + 1, Count: v.want.seq - e.slot,
				Detail: fmt.Sprintf("seq %d links to seq %d, which is missing", v.wantBy, v.want.seq)})
		}
	}
	v.follow(e)
	v.onChain(e)
	if eh.Seq == e.slot && eh.Hash != e.hash {
		b.Kind, b.Detail = Modified, "the hash differs from the expected head's"
		v.add(b)
	}
	if d := schema.Day(e.rec.Time); v.day.Before(d) || v.day.After(d.AddDate(0, 0, 1)) {
		b.Kind, b.Detail = Misdated, fmt.Sprintf("Time %s, in the partition of %s", e.rec.Time.Format(time.RFC3339), dayString(v.day))
		v.add(b)
	}
}

// foreign reports an entity that is not authentic: damaged in its place
// (vouched for), or not the chain's at all.
func (v *verifier) foreign(e *elem, b Break) {
	eh := v.opts.ExpectedHead
	inPlace := v.want != nil && !v.lost && e.slot == v.want.seq
	switch {
	case v.tail != nil && e.slot < v.floor():
		b.Kind, b.Detail = Inserted, fmt.Sprintf("slot %d belongs to an earlier day, which ends at slot %d", e.slot, v.tailSlot)
		v.add(b)
		return
	case e.contentOK && e.derr == nil && e.rec.Seq != e.slot:
		b.Kind, b.Detail = Reordered, fmt.Sprintf("slot %d holds the event of seq %d", e.slot, e.rec.Seq)
		if inPlace {
			v.lost = true
		}
		v.add(b)
		return
	case inPlace && e.hashOK && e.hash == v.want.hash:
		b.Kind, b.Detail = Modified, "the content does not match its hash (the hash itself is vouched for by the next entity)"
	case inPlace:
		b.Kind, b.Detail = Modified, "the next entity links to a different hash (this entity was replaced)"
	case eh.Seq == e.slot && e.hashOK && e.hash == eh.Hash:
		b.Kind, b.Detail = Modified, "the content does not match its hash (the hash is the expected head's)"
	case !v.keyed && e.derr == nil && e.hashOK && !e.seal:
		b.Kind, b.Detail = Modified, "the content does not match its hash"
	case v.keyed && e.plainOK:
		b.Kind, b.Detail = Forged, "hashed with plain SHA-256 instead of the key's HMAC"
	case v.keyed && e.derr == nil && e.hashOK && !e.seal && e.rec.HasPrevSeq:
		b.Kind, b.Detail = Forged, "the hash is not the key's HMAC of the content, and no authentic later entity vouches for it"
	default:
		b.Kind, b.Detail = Inserted, foreignDetail(e)
		v.add(b)
		return
	}
	v.add(b)
	if inPlace || b.Kind == Modified {
		// Damaged in its place: go on from its own link if it can be read.
		v.onChain(e)
		if e.prevOK {
			v.follow(e)
		} else {
			v.lost = true
		}
	}
}

// floor is the lowest slot the chain can use in the current day: the slot
// of the seal that closed the day before (the day's first event takes it),
// or the slot after the chain's last event.
func (v *verifier) floor() int64 {
	if v.tailSeal != nil {
		return v.tailSeal.slot
	}
	return v.tailSlot + 1
}

func foreignDetail(e *elem) string {
	switch {
	case e.derr != nil:
		return "an entity that is not an audit event: " + e.derr.Error()
	case e.seal:
		return fmt.Sprintf("a seal (naming %q) that does not verify", e.rec.Seal)
	case !e.rec.HasPrevSeq:
		return "an entity without PrevSeq (not of this chain format)"
	default:
		return "an entity whose hash does not verify, in a slot the chain does not use"
	}
}

// endDay checks the day just read against the days before it: its lowest
// chain entity must link to the chain's last event, through the seal that
// closed the day before.
func (v *verifier) endDay() error {
	defer func() {
		v.daySeal, v.dayTop, v.want, v.lost, v.dayChain, v.lastSlot = nil, nil, nil, false, false, 0
	}()
	if !v.dayChain || v.day.IsZero() {
		return nil
	}
	if !v.catalog[v.day] {
		v.add(Break{Kind: Unlisted, PartitionKey: v.pk, Detail: fmt.Sprintf("day %s holds chain entities but has no authentic catalog entry", dayString(v.day))})
	}
	if v.want != nil && !v.lost {
		if err := v.linkBack(*v.want); err != nil {
			return err
		}
	}
	if v.dayTop != nil {
		v.tail = v.dayTop
		v.rep.Head = Head{Seq: v.dayTop.seq, Hash: v.dayTop.hash, Day: v.day, Time: v.topTime}
		v.tailSlot = v.dayTop.seq
	}
	if v.daySeal != nil {
		v.tailSlot = v.daySeal.slot
		if v.tail == nil && v.started {
			v.tail = &link{}
		}
	}
	v.tailSeal, v.tailDay = v.daySeal, v.day
	return nil
}

// linkBack checks w, the link of the day's lowest chain entity, against
// the chain's last event before the day.
func (v *verifier) linkBack(w link) error {
	if w.seq == 0 {
		switch {
		case !w.hash.IsZero():
			v.add(Break{Kind: Modified, Seq: 1, Detail: "the first event does not link to the zero hash"})
		case v.tail != nil || v.started:
			v.add(Break{Kind: Inserted, PartitionKey: v.pk, Detail: "a second start of the trail (an entity linking to seq 0 after earlier days)"})
		default:
			v.started = true
			v.tail = &link{}
			if v.from.IsZero() && (!v.hasGen || !v.genesis.Equal(v.day)) {
				d := "the trail has no authentic genesis claim"
				if v.hasGen {
					d = fmt.Sprintf("the genesis claim names day %s; the trail starts on %s", dayString(v.genesis), dayString(v.day))
				}
				v.add(Break{Kind: Unlisted, PartitionKey: v.pk, Detail: d})
			}
		}
		return nil
	}
	tail := v.tail
	if tail == nil {
		if v.from.IsZero() || v.anchorged {
			v.add(Break{Kind: Deleted, Seq: 1, Count: w.seq, Detail: "the trail does not start at seq 1"})
			return nil
		}
		v.anchorged = true
		return v.anchor(w)
	}
	switch {
	case w.seq > tail.seq:
		v.add(Break{Kind: Deleted, Seq: tail.seq + 1, Count: w.seq - tail.seq,
			Detail: fmt.Sprintf("day %s links to seq %d; the chain before it ends at seq %d", dayString(v.day), w.seq, tail.seq)})
		return nil
	case w.seq < tail.seq:
		v.add(Break{Kind: Inserted, Seq: tail.seq, PartitionKey: schema.PartitionKey(v.opts.Service, v.tailDay),
			Detail: fmt.Sprintf("day %s links to seq %d, but the chain before it goes on to seq %d (a fork)", dayString(v.day), w.seq, tail.seq)})
		return nil
	case w.hash != tail.hash:
		v.add(Break{Kind: Modified, Seq: tail.seq, Detail: fmt.Sprintf("day %s links to a different hash of seq %d", dayString(v.day), tail.seq)})
		return nil
	}
	switch s := v.tailSeal; {
	case s == nil:
		v.add(Break{Kind: Modified, Seq: tail.seq, PartitionKey: schema.PartitionKey(v.opts.Service, v.tailDay),
			Detail: fmt.Sprintf("day %s ends without a seal, but the chain continues on day %s", dayString(v.tailDay), dayString(v.day))})
	case !s.next.Equal(v.day):
		v.add(Break{Kind: Modified, Seq: s.slot, PartitionKey: s.rec.PartitionKey, RowKey: s.rk,
			Detail: fmt.Sprintf("the seal names day %s but the chain continues on %s", s.rec.Seal, dayString(v.day))})
	}
	return nil
}

// anchor checks the link of the range's first day to the event before the
// range: found through the catalog's earlier days, else by a query over the
// earlier partitions.
func (v *verifier) anchor(w link) error {
	svc := v.opts.Service
	rk := schema.AuditRowKey(w.seq)
	var found *elem
	try := func(raw []byte) {
		pk := stringProp(raw, schema.ColPartitionKey)
		s, day, shard, err := schema.ParsePartitionKey(pk)
		if err != nil || s != svc || shard != 0 || found != nil {
			return
		}
		e := inspect(v.hasher, v.keyed, svc, pk, day, raw)
		if e.auth && !e.seal {
			found = &e
		}
	}
	f := "PartitionKey ge " + quote(svc+"_0") + " and PartitionKey lt " + quote(schema.PartitionKey(svc, v.from)) + " and RowKey eq " + quote(rk)
	err := listAll(v.ctx, v.table, &aztables.ListEntitiesOptions{Filter: &f}, func(raw []byte) (bool, error) {
		try(raw)
		return found == nil, nil
	})
	if err != nil {
		return fmt.Errorf("auditlog: reading the event before the range: %w", describeErr(err))
	}
	switch {
	case found == nil:
		v.add(Break{Kind: Deleted, Seq: w.seq, Detail: fmt.Sprintf("the range links to seq %d before it, which is missing", w.seq)})
	case found.hash != w.hash:
		v.add(Break{Kind: Modified, Seq: w.seq, PartitionKey: found.rec.PartitionKey, RowKey: found.rk, ID: found.rec.ID,
			Detail: "the first event of the range links to a different hash than the event before it"})
	}
	v.tail = &w
	return nil
}

// end checks the newest end of the trail against the expected head.
func (v *verifier) end() {
	eh := v.opts.ExpectedHead
	if eh.Seq <= 0 || !v.opts.Until.IsZero() {
		return
	}
	low := int64(0)
	if v.tail != nil {
		low = v.tail.seq
	}
	if eh.Seq > low {
		d := fmt.Sprintf("the trail ends at seq %d; the expected head is seq %d", low, eh.Seq)
		if v.tail == nil {
			d = "the range holds no event"
		}
		v.add(Break{Kind: Truncated, Seq: low + 1, Count: eh.Seq - low, Detail: d})
	}
}

// stringProp returns the string property name of an entity's JSON (empty
// if it has none), without decoding the rest.
func stringProp(raw []byte, name string) string {
	k := []byte(`"` + name + `":"`)
	i := bytes.Index(raw, k)
	if i < 0 {
		return ""
	}
	rest := raw[i+len(k):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}
