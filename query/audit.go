package query

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/tablelog/tablelog/internal/schema"
)

// Audit selects events of one service's audit trail (written by package
// auditlog). The zero value of every field but Service means "no
// condition".
type Audit struct {
	// Service is the trail's service name (required).
	Service string
	// Since and Until select events with Since <= Time < Until (Time is
	// when the event happened), on the server. Zero Since: from the
	// trail's first day; zero Until: up to now.
	Since, Until time.Time
	// Actor, Action, Target and Outcome, when not empty, must equal the
	// event's (exact, case-sensitive match on the server).
	Actor, Action, Target, Outcome string
	// Where is a further server-side condition on the event's columns,
	// named as stored: "Actor", "Action", "Target", "Outcome", "Reason",
	// "SourceIP", "RequestID", "ID", "Seq" (compare with int64 values),
	// "Hash", "PrevHash", and Column("Time") for the time. Attrs is one JSON
	// text column: it cannot be filtered on its members.
	Where Filter
	// Limit is the most events to return; 0 means no limit.
	Limit int
}

// AuditEvent is one audit event as stored: every field, its place in the
// hash chain, and where it is, which is what an export or an external
// verification needs.
type AuditEvent struct {
	Service   string
	Seq       int64     // position in the service's chain (1, 2, …)
	PrevSeq   int64     // the Seq of the event before (Seq-1 unless the writer skipped a slot holding a foreign entity)
	ID        ulid.ULID // the event's ID, assigned by the writer
	Time      time.Time // when the event happened (UTC, 100 ns precision)
	Actor     string
	Action    string
	Target    string
	Outcome   string
	Reason    string
	SourceIP  string
	RequestID string
	// Attrs holds the event's attributes decoded from AttrsJSON: JSON
	// types, with integral numbers as int64 and other numbers as float64.
	// Nil when the event has none.
	Attrs map[string]any
	// AttrsJSON is the attributes' JSON text exactly as stored (and
	// hashed); empty when the event has none.
	AttrsJSON string
	// Alg is the chain's hash algorithm: "SHA-256" or "HMAC-SHA-256".
	Alg string
	// Hash and PrevHash are the event's chain hash and its predecessor's,
	// 64 hex digits each.
	Hash, PrevHash string
	// PartitionKey and RowKey locate the entity; Stored is the service's
	// timestamp of its insert.
	PartitionKey, RowKey string
	Stored               time.Time
}

// Audit returns the selected events, newest first (in the chain's order,
// which is the order they were committed), across the day partitions from
// Until back to Since. Every condition runs on the server; requests are
// made lazily, a page at a time, and Limit shrinks each request's $top. The
// days come from the audit table's catalog, which the writer keeps
// complete. Errors are as for Logs: a request error ends the iteration; an
// entity that cannot be decoded is yielded as ErrBadEntity and the
// iteration goes on. Safe for concurrent use; each iterator belongs to one
// goroutine.
func (r *Reader) Audit(ctx context.Context, q Audit) iter.Seq2[AuditEvent, error] {
	return func(yield func(AuditEvent, error) bool) {
		where, err := r.auditFilter(q)
		if err != nil {
			yield(AuditEvent{}, err)
			return
		}
		s := scan{
			Partitions: r.auditPartitions(ctx, q),
			Where:      where,
			Limit:      q.Limit,
			Op:         "read the audit trail",
		}
		for ev, err := range scanEntities(ctx, r.table, s, acceptAudit) {
			if !yield(ev, err) {
				return
			}
		}
	}
}

// auditFilter validates q and builds its server-side filter.
func (r *Reader) auditFilter(q Audit) (Filter, error) {
	if err := r.check(); err != nil {
		return Filter{}, err
	}
	if err := schema.ValidateService(q.Service); err != nil {
		return Filter{}, fmt.Errorf("tablelog/query: %w: %w", ErrInvalidQuery, err)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return Filter{}, invalid("Since (%s) is not before Until (%s)", q.Since.UTC().Format(time.RFC3339Nano), q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit < 0 {
		return Filter{}, invalid("Limit is negative (%d)", q.Limit)
	}
	parts := []Filter{}
	if !q.Since.IsZero() {
		parts = append(parts, Ge(Column(schema.ColTime), q.Since))
	}
	if !q.Until.IsZero() {
		parts = append(parts, Lt(Column(schema.ColTime), q.Until))
	}
	for _, c := range [...]struct{ col, v string }{
		{schema.AuditColActor, q.Actor},
		{schema.AuditColAction, q.Action},
		{schema.AuditColTarget, q.Target},
		{schema.AuditColOutcome, q.Outcome},
	} {
		if c.v != "" {
			parts = append(parts, Eq(c.col, c.v))
		}
	}
	f := And(append(parts, q.Where)...)
	return f, f.Err()
}

// auditPartitions yields the day partitions of the trail that can hold
// events of [Since, Until), newest first: the catalog's days from the day
// before Since's (an event whose Time ran up to a minute ahead of its
// writer's clock sits in the day before its Time) through the day after
// Until's (an event committed just after midnight, or backdated, sits in a
// later day than its Time). With a zero Until, days after tomorrow are left
// out: no writer writes them, so a catalog row naming one was not written
// by a writer (auditlog.Verify reports it).
func (r *Reader) auditPartitions(ctx context.Context, q Audit) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		var from, to time.Time
		if !q.Since.IsZero() {
			from = schema.Day(q.Since).AddDate(0, 0, -1)
		}
		if !q.Until.IsZero() {
			to = schema.Day(q.Until.Add(-time.Nanosecond)).AddDate(0, 0, 2)
		} else {
			to = schema.Day(r.clock()).AddDate(0, 0, 2)
		}
		days, err := r.catalogDays(ctx, q.Service, from, to)
		if err != nil {
			yield("", err)
			return
		}
		for _, d := range slices.Backward(days) {
			if !yield(schema.PartitionKey(q.Service, d), nil) {
				return
			}
		}
	}
}

// acceptAudit decodes one audit entity; seals (day markers, not events)
// are skipped.
func acceptAudit(raw []byte) (AuditEvent, bool, error) {
	rec, err := schema.DecodeAudit(raw)
	if err != nil {
		return AuditEvent{}, false, fmt.Errorf("tablelog/query: %w: %w", ErrBadEntity, err)
	}
	if rec.IsSeal() {
		return AuditEvent{}, false, nil
	}
	ev, err := auditEvent(&rec)
	if err != nil {
		return AuditEvent{}, false, fmt.Errorf("tablelog/query: %w: %s/%s: %w", ErrBadEntity, rec.PartitionKey, rec.RowKey, err)
	}
	return ev, true, nil
}

func auditEvent(rec *schema.AuditRecord) (AuditEvent, error) {
	service, _, _, err := schema.ParsePartitionKey(rec.PartitionKey)
	if err != nil {
		return AuditEvent{}, err
	}
	id, err := ulid.ParseStrict(rec.ID)
	if err != nil {
		return AuditEvent{}, fmt.Errorf("ID %q: %w", rec.ID, err)
	}
	ev := AuditEvent{
		Service: service, Seq: rec.Seq, PrevSeq: rec.PrevSeq, ID: id, Time: rec.Time,
		Actor: rec.Actor, Action: rec.Action, Target: rec.Target, Outcome: rec.Outcome,
		Reason: rec.Reason, SourceIP: rec.SourceIP, RequestID: rec.RequestID,
		AttrsJSON: rec.Attrs, Alg: rec.Alg, Hash: rec.Hash, PrevHash: rec.PrevHash,
		PartitionKey: rec.PartitionKey, RowKey: rec.RowKey, Stored: rec.Timestamp,
	}
	if rec.Attrs != "" {
		dec := json.NewDecoder(bytes.NewReader([]byte(rec.Attrs)))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return AuditEvent{}, fmt.Errorf("Attrs: %w", err)
		}
		ev.Attrs = jsonNumbers(m).(map[string]any)
	}
	return ev, nil
}

// jsonNumbers replaces json.Number values by int64 (integral and in range)
// or float64.
func jsonNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for k, x := range v {
			v[k] = jsonNumbers(x)
		}
		return v
	case []any:
		for i, x := range v {
			v[i] = jsonNumbers(x)
		}
		return v
	default:
		return v
	}
}
