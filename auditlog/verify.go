package auditlog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tablelog/tablelog/internal/schema"
)

// Kind is the kind of a break Verify reports.
type Kind string

// Kinds of breaks.
const (
	// Modified: the event's content no longer matches its hash while its
	// hash is vouched for (the next authentic event links to it, or it is
	// the expected head); or, in a trail without a key, any mismatch; or
	// an event whose successor links to a different hash; or an entity
	// with columns an audit writer never writes.
	Modified Kind = "modified"
	// Deleted: sequence numbers are missing inside the trail (Count of
	// them from Seq).
	Deleted Kind = "deleted"
	// Inserted: an entity that cannot be part of the chain: a RowKey that
	// is not a chain slot, a slot that is taken twice or out of order
	// across days, an entity above a day's seal.
	Inserted Kind = "inserted"
	// Reordered: an authentic event found in another event's slot (its
	// own Seq differs from its position).
	Reordered Kind = "reordered"
	// Forged: with a Key, an event whose hash is not the key's HMAC of its
	// content and that no later authentic event vouches for: re-hashed
	// with another key, or hashed without a key.
	Forged Kind = "forged"
	// Truncated: the trail ends before the expected head (Count events
	// missing from Seq).
	Truncated Kind = "truncated"
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

// Verify reads the trail of one service, newest day first, page by page
// (memory does not grow with the trail), and checks every event: its hash
// against its content (with Key, an HMAC), its position against its
// sequence number, its link to the event before, and that no sequence
// number is missing or taken twice. It returns a Report of every break it
// found; breaks are findings, not errors. The error is for a trail that
// could not be read (after the SDK's retries), bad options, or
// ErrKeyRequired; the Report then holds what was checked so far.
//
// Verify needs read permission only. It is safe to run while writers
// append: it checks the days as they are when read.
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
	var from, to time.Time
	if !opts.Since.IsZero() {
		from = schema.Day(opts.Since)
	}
	if !opts.Until.IsZero() {
		to = schema.Day(opts.Until).AddDate(0, 0, 1)
	}
	days, err := catalogDays(ctx, table, opts.Service, from, to)
	if err != nil {
		return rep, fmt.Errorf("auditlog: reading the catalog: %s", describe(err))
	}
	v := &verifier{opts: opts, rep: &rep, hasher: newHasher(opts.Key)}
	fail := func(err error) (Report, error) {
		v.finish()
		return rep, err
	}
	// The anchor: the last event before the range (none from the start).
	var anchor *schema.AuditRecord
	if !opts.Since.IsZero() {
		before, err := catalogDays(ctx, table, opts.Service, time.Time{}, from)
		if err != nil {
			return fail(fmt.Errorf("auditlog: reading the catalog: %s", describe(err)))
		}
		for i := len(before) - 1; i >= 0 && anchor == nil; i-- {
			if anchor, err = lastEvent(ctx, table, opts.Service, before[i]); err != nil {
				return fail(err)
			}
		}
	}
	for i := len(days) - 1; i >= 0; i-- {
		// Every slot of this day must lie above the last slot of the day
		// before: an entity below it was copied here from an earlier day.
		v.floor = 0
		if i > 0 {
			last, err := lastEvent(ctx, table, opts.Service, days[i-1])
			if err != nil {
				return fail(err)
			}
			if last != nil {
				v.floor = last.Seq
			}
		} else if anchor != nil {
			v.floor = anchor.Seq
		}
		pk := schema.PartitionKey(opts.Service, days[i])
		v.first = true
		err := listAll(ctx, table, listOptions(pk, "", "", 0), func(raw []byte) (bool, error) {
			return true, v.entity(days[i], pk, raw)
		})
		if err != nil {
			if errors.Is(err, ErrKeyRequired) {
				return fail(err)
			}
			return fail(fmt.Errorf("auditlog: reading %s: %s", pk, describe(err)))
		}
	}
	v.start(anchor)
	if !v.headSeen && opts.ExpectedHead.Seq > 0 && opts.Until.IsZero() {
		low := int64(0)
		if v.later != nil {
			low = v.later.slot - 1 // a lone seal
		}
		v.add(Break{Kind: Truncated, Seq: low + 1, Count: opts.ExpectedHead.Seq - low, Detail: "the range holds no event"})
	}
	v.finish()
	return rep, nil
}

// lastEvent returns the newest event of day's partition as the slot
// structure says: the slot below a seal, else the top entity (nil if the
// partition is empty or its top is not a slot).
func lastEvent(ctx context.Context, table ReadTable, service string, day time.Time) (*schema.AuditRecord, error) {
	pk := schema.PartitionKey(service, day)
	top, err := readTop(ctx, table, pk, 2)
	if err != nil && !errors.Is(err, ErrCorruptTrail) {
		return nil, fmt.Errorf("auditlog: reading %s: %s", pk, describe(err))
	}
	for _, r := range top {
		slot, err := schema.ParseAuditRowKey(r.RowKey)
		if err != nil {
			return nil, nil
		}
		if r.IsSeal() {
			continue
		}
		r.Seq = slot
		return &r, nil
	}
	return nil, nil
}

// slotInfo is what the verifier remembers of the entity above the current
// one (the next higher slot).
type slotInfo struct {
	slot   int64
	day    time.Time
	prev   Hash // its PrevHash
	hasPrv bool
	auth   bool // its content matches its hash under the expected algorithm, at its own slot
	seal   bool // a seal at the top of the range (no event above)
}

type verifier struct {
	opts     VerifyOptions
	rep      *Report
	hasher   *hasher
	later    *slotInfo
	first    bool  // the next entity is the first of its partition
	floor    int64 // the last slot of the day before the current one
	headSeen bool  // an event was seen (the first one is the head)
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
		if n := len(out); n > 0 && b.Kind == Deleted && out[n-1].Kind == Deleted && out[n-1].Seq+out[n-1].Count == b.Seq {
			out[n-1].Count += b.Count
			out[n-1].Detail = fmt.Sprintf("seq %d..%d are missing", out[n-1].Seq, out[n-1].Seq+out[n-1].Count-1)
			continue
		}
		out = append(out, b)
	}
	v.rep.Breaks = out
}

// entity checks one entity of day's partition pk; entities arrive newest
// slot first.
func (v *verifier) entity(day time.Time, pk string, raw []byte) error {
	first := v.first
	v.first = false
	rec, derr := schema.DecodeAudit(raw)
	rk := rec.RowKey
	if rk == "" {
		rk = rowKeyOf(raw)
	}
	above := int64(0)
	if v.later != nil {
		above = v.later.slot
	}
	slot, err := schema.ParseAuditRowKey(rk)
	if err != nil {
		v.add(Break{Kind: Inserted, Seq: above, PartitionKey: pk, RowKey: rk, ID: rec.ID, Detail: "the RowKey is not a chain slot"})
		return nil
	}
	isSeal := derr == nil && rec.IsSeal()
	if slot <= v.floor {
		v.add(Break{Kind: Inserted, Seq: slot, PartitionKey: pk, RowKey: rk, ID: rec.ID,
			Detail: fmt.Sprintf("slot %d belongs to an earlier day, which ends at slot %d", slot, v.floor)})
		return nil
	}
	if v.later != nil && (slot > v.later.slot || slot == v.later.slot && !isSeal) {
		v.add(Break{Kind: Inserted, Seq: slot, PartitionKey: pk, RowKey: rk, ID: rec.ID,
			Detail: fmt.Sprintf("slot %d appears again below slot %d (a fork or a copied entity)", slot, v.later.slot)})
		return nil
	}
	if isSeal {
		next, perr := parseDay(rec.Seal)
		switch {
		case !first:
			v.add(Break{Kind: Inserted, Seq: slot, PartitionKey: pk, RowKey: rk, Detail: "a seal below the top of its day"})
		case perr != nil || !next.After(day):
			v.add(Break{Kind: Modified, Seq: slot, PartitionKey: pk, RowKey: rk, Detail: fmt.Sprintf("a seal naming day %q", rec.Seal)})
		case v.later == nil:
			v.later = &slotInfo{slot: slot, day: day, seal: true}
		case v.later.slot != slot:
			// The next day's first event must take the seal's slot.
			v.add(Break{Kind: Deleted, Seq: slot, Count: v.later.slot - slot, Detail: fmt.Sprintf("the day sealed at slot %d; the next day starts at %d", slot, v.later.slot)})
			v.later = &slotInfo{slot: slot, day: day, seal: true}
		case !next.Equal(v.later.day):
			v.add(Break{Kind: Modified, Seq: slot, PartitionKey: pk, RowKey: rk, Detail: fmt.Sprintf("the seal names day %s but the chain continues on %s", rec.Seal, dayString(v.later.day))})
		}
		return nil
	}

	// An event.
	v.rep.Checked++
	if !v.headSeen {
		v.headSeen = true
		v.rep.Head = Head{Seq: slot, Day: day, Time: rec.Time}
		v.rep.Head.Hash, _ = ParseHash(rec.Hash)
		if eh := v.opts.ExpectedHead; eh.Seq > slot && v.opts.Until.IsZero() {
			v.add(Break{Kind: Truncated, Seq: slot + 1, Count: eh.Seq - slot,
				Detail: fmt.Sprintf("the trail ends at seq %d; the expected head is seq %d", slot, eh.Seq)})
			if v.later != nil && v.later.seal {
				v.later = nil // the seal's slot is part of the truncation
			}
		}
	}
	if v.later != nil && slot < v.later.slot-1 {
		v.add(Break{Kind: Deleted, Seq: slot + 1, Count: v.later.slot - 1 - slot,
			Detail: fmt.Sprintf("seq %d is followed by seq %d", slot, v.later.slot)})
	}
	info := &slotInfo{slot: slot, day: day}
	defer func() { v.later = info }()
	b := Break{Seq: slot, PartitionKey: pk, RowKey: rk, ID: rec.ID}
	if derr != nil {
		b.Kind, b.Detail = Modified, derr.Error()
		v.add(b)
		return nil
	}
	stored, herr := ParseHash(rec.Hash)
	prev, perr := ParseHash(rec.PrevHash)
	if herr != nil || perr != nil {
		b.Kind, b.Detail = Modified, "Hash or PrevHash is not a 64-digit hex hash"
		v.add(b)
		return nil
	}
	info.prev, info.hasPrv = prev, true
	keyed := v.opts.Key != nil
	var ok, plainOK bool
	switch rec.Alg {
	case schema.AuditAlgHMAC:
		if !keyed {
			return fmt.Errorf("%w (event %s/%s)", ErrKeyRequired, pk, rk)
		}
		ok = v.hasher.sum(v.opts.Service, &rec, prev, true) == stored
	case schema.AuditAlgSHA256:
		plainOK = v.hasher.sum(v.opts.Service, &rec, prev, false) == stored
		ok = plainOK && !keyed
	default:
		b.Kind, b.Detail = Modified, fmt.Sprintf("unknown hash algorithm %q", rec.Alg)
		v.add(b)
		return nil
	}
	eh := v.opts.ExpectedHead
	switch {
	case ok && rec.Seq != slot:
		b.Kind, b.Detail = Reordered, fmt.Sprintf("slot %d holds the event of seq %d", slot, rec.Seq)
		v.add(b)
	case ok:
		info.auth = true
		l := v.later
		switch {
		case l != nil && !l.seal && l.slot == slot+1 && l.auth && l.hasPrv && l.prev != stored:
			b.Kind, b.Detail = Modified, "the next event links to a different hash (this event was replaced)"
			v.add(b)
		case eh.Seq == slot && eh.Hash != stored:
			b.Kind, b.Detail = Modified, "the hash differs from the expected head's"
			v.add(b)
		case len(rec.Unknown) > 0:
			b.Kind, b.Detail = Modified, fmt.Sprintf("unexpected column(s) %v", rec.Unknown)
			v.add(b)
		}
	default:
		l := v.later
		vouched := (l != nil && !l.seal && l.slot == slot+1 && l.auth && l.hasPrv && l.prev == stored) ||
			(eh.Seq == slot && eh.Hash == stored)
		switch {
		case keyed && plainOK:
			b.Kind, b.Detail = Forged, "hashed with plain SHA-256 instead of the key's HMAC"
		case !keyed:
			b.Kind, b.Detail = Modified, "the content does not match its hash"
		case vouched:
			b.Kind, b.Detail = Modified, "the content does not match its hash (the hash itself is vouched for by the next event)"
		default:
			b.Kind, b.Detail = Forged, "the hash is not the key's HMAC of the content, and no authentic later event vouches for it"
		}
		v.add(b)
	}
	return nil
}

// start checks the low end of the range against anchor, the last event
// before it (nil: the range starts the trail, at seq 1 from the zero hash).
func (v *verifier) start(anchor *schema.AuditRecord) {
	low := v.later
	if low == nil || low.seal {
		return
	}
	anchorSlot, anchorHash := int64(0), Hash{}
	if anchor != nil {
		anchorSlot = anchor.Seq
		anchorHash, _ = ParseHash(anchor.Hash)
	}
	switch {
	case low.slot-1 > anchorSlot:
		detail := "the trail does not start at seq 1"
		if anchor != nil {
			detail = fmt.Sprintf("the day before the range ends at seq %d", anchorSlot)
		}
		v.add(Break{Kind: Deleted, Seq: anchorSlot + 1, Count: low.slot - 1 - anchorSlot, Detail: detail})
	case low.auth && low.hasPrv && low.prev != anchorHash:
		if anchor != nil {
			v.add(Break{Kind: Modified, Seq: anchorSlot, PartitionKey: anchor.PartitionKey, RowKey: anchor.RowKey, ID: anchor.ID,
				Detail: "the first event of the range links to a different hash than the previous day's last event"})
		} else {
			v.add(Break{Kind: Modified, Seq: 1, Detail: "the first event does not link to the zero hash"})
		}
	}
}
