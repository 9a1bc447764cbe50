package auditlog

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

// Record returns once stored; invalid events are refused
// before anything is sent.
func TestRecordStoresEvent(t *testing.T) {
	t.Parallel()
	tbl := env(t).NewTable(t)
	w := newWriter(t, tbl, Options{})
	ctx := context.Background()
	in := Event{Actor: "alice", Action: "invoice.delete", Target: "inv-42", Outcome: Success,
		Reason: "customer request", SourceIP: "203.0.113.7", RequestID: "req-1",
		Attrs: map[string]any{"amount": 120, "note": "<&>"}}
	got, err := w.Record(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 1 || got.PrevHash != (Hash{}) || got.Hash.IsZero() || got.Service != "billing" || got.Time.IsZero() {
		t.Fatalf("returned event: %+v", got)
	}
	// Stored: read it back with no help from the writer.
	evs := events(t, env(t).DirectTable(t, tableName(t, tbl)))
	if len(evs) != 1 {
		t.Fatalf("%d events stored", len(evs))
	}
	r := evs[0]
	if r.Actor != "alice" || r.Action != "invoice.delete" || r.Target != "inv-42" || r.Outcome != "success" ||
		r.Reason != "customer request" || r.SourceIP != "203.0.113.7" || r.RequestID != "req-1" ||
		r.Attrs != `{"amount":120,"note":"<&>"}` || r.Seq != 1 || r.Hash != got.Hash.String() ||
		r.ID != got.ID.String() || !r.Time.Equal(got.Time) || r.PartitionKey != schema.PartitionKey("billing", got.Time) {
		t.Fatalf("stored %+v\nreturned %+v", r, got)
	}
	// The next event links to it.
	got2, err := w.Record(ctx, Event{Actor: "bob", Action: "login"})
	if err != nil {
		t.Fatal(err)
	}
	if got2.Seq != 2 || got2.PrevHash != got.Hash || got2.Outcome != Unknown {
		t.Fatalf("second event: %+v", got2)
	}
	if rep := verify(t, tbl, VerifyOptions{}); !rep.OK() || rep.Checked != 2 || rep.Head.Seq != 2 || rep.Head.Hash != got2.Hash {
		t.Fatalf("Verify: %+v", rep)
	}
}

func TestRecordRefusesInvalidEvents(t *testing.T) {
	t.Parallel()
	tbl := env(t).NewTable(t)
	now := time.Now()
	w := newWriter(t, tbl, Options{Now: func() time.Time { return now }})
	long := strings.Repeat("x", MaxFieldBytes+1)
	cases := map[string]Event{
		"no actor":        {Action: "a"},
		"no action":       {Actor: "a"},
		"long actor":      {Actor: long, Action: "a"},
		"long target":     {Actor: "a", Action: "a", Target: long},
		"long outcome":    {Actor: "a", Action: "a", Outcome: Outcome(long)},
		"bad utf-8":       {Actor: "a\xff", Action: "a"},
		"bad reason":      {Actor: "a", Action: "a", Reason: "\xc3"},
		"long reason":     {Actor: "a", Action: "a", Reason: strings.Repeat("é", MaxTextChars+1)},
		"attrs nan":       {Actor: "a", Action: "a", Attrs: map[string]any{"x": math.NaN()}},
		"attrs func":      {Actor: "a", Action: "a", Attrs: map[string]any{"x": func() {}}},
		"attrs too long":  {Actor: "a", Action: "a", Attrs: map[string]any{"x": strings.Repeat("y", MaxTextChars)}},
		"time too old":    {Actor: "a", Action: "a", Time: now.Add(-MaxBackdate - time.Second)},
		"time in future":  {Actor: "a", Action: "a", Time: now.Add(MaxClockSkew + time.Second)},
		"surrogate count": {Actor: "a", Action: "a", Reason: strings.Repeat("😀", MaxTextChars/2+1)},
	}
	for name, e := range cases {
		_, err := w.Record(context.Background(), e)
		if !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%s: err = %v; want ErrInvalidEvent", name, err)
		}
	}
	if n := len(entities(t, env(t).DirectTable(t, tableName(t, tbl)))); n != 0 {
		t.Fatalf("%d entities stored after invalid events", n)
	}
	// At the limits it works.
	ok := Event{Actor: strings.Repeat("a", MaxFieldBytes), Action: "a", Reason: strings.Repeat("é", MaxTextChars),
		Time: now.Add(-MaxBackdate + time.Minute)}
	if _, err := w.Record(context.Background(), ok); err != nil {
		t.Fatal(err)
	}
	if rep := verify(t, tbl, VerifyOptions{}); !rep.OK() || rep.Checked != 1 {
		t.Fatalf("Verify: %+v", rep)
	}
}

func TestNewOptions(t *testing.T) {
	t.Parallel()
	tbl := env(t).NewTable(t)
	for _, o := range []Options{{}, {Service: "bad name"}, {Service: "s", Key: []byte("short")}, {Service: "s", MaxBatch: 101}} {
		if _, err := New(tbl, o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
	if _, err := New(nil, Options{Service: "s"}); err == nil {
		t.Error("New(nil) succeeded")
	}
	// A bad service name: schema's *ServiceError in the chain, under the
	// package's prefix once.
	_, err := New(tbl, Options{Service: "a b"})
	var se *schema.ServiceError
	if !errors.As(err, &se) || se.Name != "a b" || !strings.HasPrefix(err.Error(), `auditlog: service name "a b" has the character ' '`) {
		t.Errorf("bad service: %v", err)
	}
	// A negative value is refused with an error naming the field, never
	// taken as the default (the same rule as sink.New).
	for name, o := range map[string]Options{
		"MaxBatch":       {MaxBatch: -1},
		"RequestTimeout": {RequestTimeout: -time.Second},
		"CommitTimeout":  {CommitTimeout: -time.Second},
	} {
		o.Service = "s"
		_, err := New(tbl, o)
		if err == nil || !strings.Contains(err.Error(), "Options."+name) {
			t.Errorf("%s negative: err = %v, want one naming Options.%s", name, err, name)
		}
	}
}

func TestRecordContextDone(t *testing.T) {
	t.Parallel()
	tbl := env(t).NewTable(t)
	w := newWriter(t, tbl, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Record(ctx, Event{Actor: "a", Action: "b"}); !errors.Is(err, context.Canceled) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("err = %v", err)
	}
	if n := len(events(t, tbl)); n != 0 {
		t.Fatalf("%d events stored", n)
	}
}

// Attrs survive as JSON text, keys sorted.
func TestAttrsJSON(t *testing.T) {
	t.Parallel()
	tbl := env(t).NewTable(t)
	w := newWriter(t, tbl, Options{})
	_, err := w.Record(context.Background(), Event{Actor: "a", Action: "b", Attrs: map[string]any{"z": []int{1, 2}, "a": map[string]any{"k": true}}})
	if err != nil {
		t.Fatal(err)
	}
	evs := events(t, tbl)
	var m map[string]any
	if err := json.Unmarshal([]byte(evs[0].Attrs), &m); err != nil || evs[0].Attrs != `{"a":{"k":true},"z":[1,2]}` {
		t.Fatalf("Attrs %q: %v", evs[0].Attrs, err)
	}
}

// Large events: batches stay under the 4 MiB transaction limit (the strict
// proxy rejects larger ones), counting the SDK's re-encoding of '<' as
// "\u003c".
func TestLargeEventsSplitBatches(t *testing.T) {
	t.Parallel()
	tbl := env(t).NewTable(t)
	w := newWriter(t, tbl, Options{})
	big := strings.Repeat("<", MaxTextChars) // 32 KiB here, 192 KiB on the wire
	record(t, w, 24, 24, func(i int) Event {
		e := ev(i)
		e.Reason = big
		e.Attrs = map[string]any{"blob": strings.Repeat("&", MaxTextChars-20)}
		return e
	})
	st := w.Stats()
	if st.Events != 24 || st.Transactions < 3 {
		t.Fatalf("stats %+v: 24 events of ~400 KiB need at least 3 transactions", st)
	}
	if rep := verify(t, tbl, VerifyOptions{}); !rep.OK() || rep.Checked != 24 {
		t.Fatalf("Verify: %+v", rep)
	}
}

// TestCreatesTable: a Writer creates its table before the first commit,
// unless NoCreateTable says not to.
func TestCreatesTable(t *testing.T) {
	env := azurite.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	name := azurite.NewTableName()
	tbl := env.Table(t, name)
	t.Cleanup(func() { _, _ = tbl.Delete(context.Background(), nil) })
	off := newWriter(t, tbl, Options{NoCreateTable: true})
	if _, err := off.Record(ctx, Event{Actor: "a", Action: "x"}); err == nil {
		t.Fatal("Record into a missing table with NoCreateTable succeeded")
	}
	w := newWriter(t, tbl, Options{})
	if _, err := w.Record(ctx, Event{Actor: "a", Action: "x"}); err != nil {
		t.Fatalf("Record did not create the table: %v", err)
	}
	// A second writer finds it existing: "already exists" is fine.
	w2 := newWriter(t, tbl, Options{})
	if _, err := w2.Record(ctx, Event{Actor: "b", Action: "y"}); err != nil {
		t.Fatal(err)
	}
	if got := len(entities(t, tbl)); got < 2 {
		t.Fatalf("%d entities, want the 2 events", got)
	}
}
