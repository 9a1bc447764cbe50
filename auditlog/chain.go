package auditlog

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/tablelog/tablelog/internal/schema"
)

// chainPos is where the next event goes, as read from the table.
type chainPos struct {
	open    time.Time // the day partition to write
	seq     int64     // the head's seq (0: no event yet)
	hash    Hash      // the head's hash
	newDay  bool      // open has no event yet: add its catalog entry first
	genesis bool      // no event and no genesis claim yet: claim it first
	sealDay time.Time // non-zero: seal this day, at slot seq+1, first
}

// maxHops bounds the seals and empty days resolve follows.
const maxHops = 64

// resolve reads the chain's head for writing on day target (or later, if
// the chain has moved on to a later day).
func (w *Writer) resolve(ctx context.Context, target time.Time) (chainPos, error) {
	cur := target
	hint := w.head.day // the last day this writer wrote, if any
	if hint.After(cur) {
		cur = hint
	}
	for range maxHops {
		top, err := w.top(ctx, cur)
		if err != nil {
			return chainPos{}, err
		}
		if len(top) > 0 {
			if top[0].IsSeal() {
				next, err := w.sealNext(&top[0], cur)
				if err != nil {
					return chainPos{}, err
				}
				cur = next
				continue
			}
			seq, h, err := headOf(&top[0])
			if err != nil {
				return chainPos{}, err
			}
			return chainPos{open: cur, seq: seq, hash: h}, nil
		}

		// cur has no events: the head is in the latest earlier day that
		// has some, or nowhere (a new trail).
		prev, ptop, err := w.previousDay(ctx, cur, hint)
		if err != nil {
			return chainPos{}, err
		}
		if prev.IsZero() {
			g, ok, err := w.genesisDay(ctx)
			if err != nil {
				return chainPos{}, err
			}
			switch {
			case !ok:
				return chainPos{open: cur, newDay: true, genesis: true}, nil
			case g.Equal(cur):
				return chainPos{open: cur, newDay: true}, nil
			default:
				// The trail starts on another day, still empty (its first
				// writer stopped before writing): start it there.
				cur = g
				continue
			}
		}
		if ptop[0].IsSeal() {
			next, err := w.sealNext(&ptop[0], prev)
			if err != nil {
				return chainPos{}, err
			}
			if !next.Equal(cur) {
				cur = next // the chain continues on the day the seal names
				continue
			}
			if len(ptop) < 2 || ptop[1].IsSeal() {
				return chainPos{}, fmt.Errorf("%w: partition %s holds a seal but no event", ErrCorruptTrail, ptop[0].PartitionKey)
			}
			seq, h, err := headOf(&ptop[1])
			if err != nil {
				return chainPos{}, err
			}
			if seq+1 != ptop[0].Seq {
				return chainPos{}, fmt.Errorf("%w: seal %s/%s does not follow the day's last event", ErrCorruptTrail, ptop[0].PartitionKey, ptop[0].RowKey)
			}
			return chainPos{open: cur, seq: seq, hash: h, newDay: true}, nil
		}
		seq, h, err := headOf(&ptop[0])
		if err != nil {
			return chainPos{}, err
		}
		return chainPos{open: cur, seq: seq, hash: h, newDay: true, sealDay: prev}, nil
	}
	return chainPos{}, fmt.Errorf("%w: more than %d seals or empty days to follow", ErrCorruptTrail, maxHops)
}

// openDay prepares the day pos.open for its first event: its catalog
// entry, then the genesis claim or the seal of the day before. A conflict
// on the claim or the seal is returned (classify: kindConflict), and the
// caller resolves the head again.
func (w *Writer) openDay(ctx context.Context, pos chainPos) error {
	if !pos.newDay {
		return nil
	}
	now := w.opts.Now().UTC()
	if err := w.add(ctx, schema.AppendCatalogEntity(nil, w.opts.Service, pos.open)); err != nil {
		if k, _ := classify(err); k != kindConflict {
			return err
		}
	}
	if pos.genesis {
		return w.add(ctx, schema.AppendAuditGenesisEntity(nil, w.opts.Service, pos.open))
	}
	if !pos.sealDay.IsZero() {
		seal := schema.AuditRecord{
			PartitionKey: schema.PartitionKey(w.opts.Service, pos.sealDay),
			RowKey:       schema.AuditRowKey(pos.seq + 1),
			Seq:          pos.seq + 1,
			Time:         now.Truncate(100 * time.Nanosecond),
			Seal:         dayString(pos.open),
		}
		return w.add(ctx, schema.AppendAuditEntity(nil, &seal))
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

// top returns the first (newest) two entities of day's partition.
func (w *Writer) top(ctx context.Context, day time.Time) ([]schema.AuditRecord, error) {
	ctx, cancel := context.WithTimeout(noRetry(ctx), w.opts.RequestTimeout)
	defer cancel()
	return readTop(ctx, w.read, schema.PartitionKey(w.opts.Service, day), 2)
}

// readTop returns the first n entities of partition pk (ascending RowKey:
// newest first).
func readTop(ctx context.Context, t ReadTable, pk string, n int) ([]schema.AuditRecord, error) {
	var out []schema.AuditRecord
	err := listAll(ctx, t, listOptions(pk, "", "", int32(n)), func(raw []byte) (bool, error) {
		r, err := schema.DecodeAudit(raw)
		if err != nil {
			return false, fmt.Errorf("%w: %v", ErrCorruptTrail, err)
		}
		out = append(out, r)
		return len(out) < n, nil
	})
	return out, err
}

// previousDay returns the latest day before cur whose partition holds
// entities, with its top two, from the catalog. It looks from hint on
// first (if set), then, finding nothing, at the whole catalog.
func (w *Writer) previousDay(ctx context.Context, cur, hint time.Time) (time.Time, []schema.AuditRecord, error) {
	for _, from := range []time.Time{hint, {}} {
		if !from.IsZero() && !from.Before(cur) {
			continue
		}
		lctx, cancel := context.WithTimeout(noRetry(ctx), w.opts.RequestTimeout)
		days, err := catalogDays(lctx, w.read, w.opts.Service, from, cur)
		cancel()
		if err != nil {
			return time.Time{}, nil, err
		}
		for i := len(days) - 1; i >= 0; i-- {
			top, err := w.top(ctx, days[i])
			if err != nil {
				return time.Time{}, nil, err
			}
			if len(top) > 0 {
				return days[i], top, nil
			}
		}
		if from.IsZero() {
			break
		}
	}
	return time.Time{}, nil, nil
}

// genesisDay reads the service's genesis claim: the day its trail starts.
func (w *Writer) genesisDay(ctx context.Context) (time.Time, bool, error) {
	ctx, cancel := context.WithTimeout(noRetry(ctx), w.opts.RequestTimeout)
	defer cancel()
	return readGenesis(ctx, w.read, w.opts.Service)
}

func readGenesis(ctx context.Context, t ReadTable, service string) (time.Time, bool, error) {
	resp, err := t.GetEntity(ctx, schema.CatalogPartition, genesisKey(service), nil)
	if err != nil {
		if isNotFound(err) {
			return time.Time{}, false, nil
		}
		return time.Time{}, false, err
	}
	d, err := schema.ParseAuditGenesis(resp.Value)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%w: %v", ErrCorruptTrail, err)
	}
	return d, true, nil
}

// sealNext returns the day a seal in day's partition names, which must be
// later.
func (w *Writer) sealNext(seal *schema.AuditRecord, day time.Time) (time.Time, error) {
	next, err := parseDay(seal.Seal)
	if err != nil || !next.After(day) {
		return time.Time{}, fmt.Errorf("%w: seal %s/%s names day %q", ErrCorruptTrail, seal.PartitionKey, seal.RowKey, seal.Seal)
	}
	return next, nil
}

// headOf returns the seq (from the RowKey, checked against the Seq column)
// and hash of an event entity.
func headOf(r *schema.AuditRecord) (int64, Hash, error) {
	seq, err := schema.ParseAuditRowKey(r.RowKey)
	if err != nil || seq != r.Seq {
		return 0, Hash{}, fmt.Errorf("%w: head entity %s/%s has seq %d", ErrCorruptTrail, r.PartitionKey, r.RowKey, r.Seq)
	}
	h, err := ParseHash(r.Hash)
	if err != nil {
		return 0, Hash{}, fmt.Errorf("%w: head entity %s/%s: %v", ErrCorruptTrail, r.PartitionKey, r.RowKey, err)
	}
	return seq, h, nil
}

// isNotFound reports a 404 from the service.
func isNotFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}
