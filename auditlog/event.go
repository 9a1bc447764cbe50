package auditlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/tablelog/tablelog/internal/schema"
)

// Outcome is how an audited action ended. The constants cover the usual
// cases; an application may use its own short words (at most MaxFieldBytes
// bytes). The zero value is recorded as Unknown.
type Outcome string

// Outcomes.
const (
	Success Outcome = "success" // the action was performed
	Failure Outcome = "failure" // the action was attempted and failed
	Denied  Outcome = "denied"  // the action was refused (authorization, policy)
	Error   Outcome = "error"   // the action could not be completed because of an error
	Unknown Outcome = "unknown" // the outcome is not known (the zero Outcome)
)

// Limits checked by Record before anything is stored.
const (
	// MaxFieldBytes bounds Actor, Action, Target, Outcome, SourceIP and
	// RequestID (bytes of UTF-8).
	MaxFieldBytes = 1024
	// MaxTextChars bounds Reason and the JSON text of Attrs, in UTF-16 code
	// units: the Table service's limit for one string property.
	MaxTextChars = schema.MaxStringChars
	// MaxBackdate is how far before now an Event.Time may lie.
	MaxBackdate = 24 * time.Hour
	// MaxClockSkew is how far after now an Event.Time may lie.
	MaxClockSkew = time.Minute
)

// ErrInvalidEvent is wrapped by the errors Record returns for events it
// refuses before storing anything: a missing Actor or Action, a field over
// its limit or not valid UTF-8, Attrs that cannot be encoded as JSON, or a
// Time too far from now.
var ErrInvalidEvent = errors.New("auditlog: invalid event")

// Event is one audit event: who (Actor) did what (Action) to which resource
// (Target), with what Outcome, why, from where, and when.
//
// The caller fills the first group of fields; Record fills the rest and
// returns the event as stored. A stored event is never changed.
type Event struct {
	// Actor is who acted: a user, service account or system (required).
	Actor string
	// Action is what was done, e.g. "invoice.delete" (required).
	Action string
	// Target is the resource acted on, e.g. "inv-42".
	Target string
	// Outcome is how it ended; zero means Unknown.
	Outcome Outcome
	// Reason is why (free text, up to MaxTextChars).
	Reason string
	// SourceIP is where the request came from.
	SourceIP string
	// RequestID correlates the event with logs and traces.
	RequestID string
	// Attrs holds further attributes; it is stored as one JSON object
	// (keys sorted), so its values must be encodable by encoding/json.
	// Read back, numbers are float64 or int64 (see query.AuditEvent).
	Attrs map[string]any
	// Time is when the action happened. Zero means now (Options.Now);
	// otherwise it must lie within MaxBackdate before and MaxClockSkew
	// after now. It is stored with 100 ns precision, in UTC.
	Time time.Time

	// Set by Record:

	// Service is the writer's service.
	Service string
	// ID identifies the event; it is assigned before the first attempt to
	// store it, so it can be looked up after an ErrOutcomeUnknown.
	ID ulid.ULID
	// Seq is the event's position in the service's hash chain (1, 2, …,
	// continuing across days; a slot holding a foreign entity is skipped).
	Seq int64
	// PrevSeq is the Seq of the event before in the chain (0 for the
	// first). It is Seq-1 unless the writer skipped slots that held
	// foreign entities (see the package documentation).
	PrevSeq int64
	// PrevHash is the Hash of the event before (zero for the first).
	PrevHash Hash
	// Hash is the event's chain hash (see the package documentation).
	Hash Hash
}

// prepared is a validated event, ready to be chained.
type prepared struct {
	ev    Event
	attrs string // Attrs as JSON text
	rec   schema.AuditRecord
	size  int // wire size bound of the entity
}

// prepare validates ev and fills Time, Outcome, Service and ID.
func (w *Writer) prepare(ev Event, now time.Time) (*prepared, error) {
	if ev.Actor == "" {
		return nil, fmt.Errorf("%w: Actor is required", ErrInvalidEvent)
	}
	if ev.Action == "" {
		return nil, fmt.Errorf("%w: Action is required", ErrInvalidEvent)
	}
	if ev.Outcome == "" {
		ev.Outcome = Unknown
	}
	for _, f := range [...]struct{ name, v string }{
		{"Actor", ev.Actor}, {"Action", ev.Action}, {"Target", ev.Target},
		{"Outcome", string(ev.Outcome)}, {"SourceIP", ev.SourceIP}, {"RequestID", ev.RequestID},
	} {
		if len(f.v) > MaxFieldBytes {
			return nil, fmt.Errorf("%w: %s is %d bytes long; the limit is %d", ErrInvalidEvent, f.name, len(f.v), MaxFieldBytes)
		}
		if !utf8.ValidString(f.v) {
			return nil, fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidEvent, f.name)
		}
	}
	if !utf8.ValidString(ev.Reason) {
		return nil, fmt.Errorf("%w: Reason is not valid UTF-8", ErrInvalidEvent)
	}
	if n := utf16Len(ev.Reason); n > MaxTextChars {
		return nil, fmt.Errorf("%w: Reason is %d UTF-16 code units long; the limit is %d", ErrInvalidEvent, n, MaxTextChars)
	}
	var attrs string
	if len(ev.Attrs) > 0 {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := encodeAttrs(enc, ev.Attrs); err != nil {
			return nil, fmt.Errorf("%w: Attrs: %w", ErrInvalidEvent, err)
		}
		attrs = string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
		if n := utf16Len(attrs); n > MaxTextChars {
			return nil, fmt.Errorf("%w: Attrs is %d UTF-16 code units long as JSON; the limit is %d", ErrInvalidEvent, n, MaxTextChars)
		}
	}
	if ev.Time.IsZero() {
		ev.Time = now
	} else if d := now.Sub(ev.Time); d > MaxBackdate || d < -MaxClockSkew {
		return nil, fmt.Errorf("%w: Time %s is too far from now (%s); allowed: %s before to %s after",
			ErrInvalidEvent, ev.Time.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano), MaxBackdate, MaxClockSkew)
	}
	ev.Time = ev.Time.Round(0).UTC().Truncate(100 * time.Nanosecond)
	ev.Service = w.opts.Service
	ev.ID = w.gen.New(ev.Time)
	ev.Seq, ev.PrevSeq, ev.Hash, ev.PrevHash = 0, 0, Hash{}, Hash{}
	p := &prepared{ev: ev, attrs: attrs}
	p.rec = schema.AuditRecord{
		ID:        ev.ID.String(),
		Time:      ev.Time,
		Actor:     ev.Actor,
		Action:    ev.Action,
		Target:    ev.Target,
		Outcome:   string(ev.Outcome),
		Reason:    ev.Reason,
		SourceIP:  ev.SourceIP,
		RequestID: ev.RequestID,
		Attrs:     attrs,
		Alg:       w.alg,
		// Placeholders of the final sizes, for the size bound.
		PartitionKey: schema.PartitionKey(w.opts.Service, ev.Time),
		RowKey:       schema.AuditRowKey(1),
		PrevHash:     Hash{}.String(),
		Hash:         Hash{}.String(),
	}
	p.size = schema.AuditEntitySize(&p.rec) + 32
	return p, nil
}

// utf16Len returns the length of s in UTF-16 code units (s is valid UTF-8).
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// encodeAttrs encodes attrs, turning a panic of a MarshalJSON or
// MarshalText method into an error: an invalid event, not a crash of the
// caller.
func encodeAttrs(enc *json.Encoder, attrs map[string]any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("encoding panicked: %v", r)
		}
	}()
	return enc.Encode(attrs)
}
