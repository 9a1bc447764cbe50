package query

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/sink"
)

// A slog record with a zero Time ("no time", as slog has it) is keyed by
// its arrival and stored without a Time column. Time-bounded queries apply
// their exact bounds to its key's time instead, so it is found; Record.Time
// stays zero.
func TestZeroTimeRecordInTimeBoundedQueries(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	s, err := sink.New(tbl, sink.Options{Service: "zerotime", ErrorHandler: func(err error) { t.Errorf("sink: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	h := s.Handler(nil)
	before := time.Now().Add(-time.Second)
	if err := h.Handle(t.Context(), slog.NewRecord(time.Time{}, slog.LevelInfo, "no time", 0)); err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(t.Context(), slog.NewRecord(time.Now(), slog.LevelInfo, "with time", 0)); err != nil {
		t.Fatal(err)
	}
	after := time.Now().Add(time.Second)
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	r := New(tbl)
	find := func(q Logs) (Record, bool) {
		q.Service = "zerotime"
		for _, rec := range collect(t, r.Logs(t.Context(), q)) {
			if rec.Message == "no time" {
				return rec, true
			}
		}
		return Record{}, false
	}
	rec, ok := find(Logs{})
	if !ok {
		t.Fatal("the record without a time is not read at all")
	}
	if !rec.Time.IsZero() {
		t.Errorf("Record.Time = %v, want zero (the record had no time)", rec.Time)
	}
	keyTime := ulid.Time(rec.ID.Time())
	if keyTime.Before(before) || keyTime.After(after) {
		t.Fatalf("key time %v outside [%v, %v]", keyTime, before, after)
	}
	for _, c := range []struct {
		name string
		q    Logs
		want bool
	}{
		{"since and until around it", Logs{Since: before, Until: after}, true},
		{"since only", Logs{Since: before}, true},
		{"until only", Logs{Until: after}, true},
		{"since at its key time", Logs{Since: keyTime}, true},
		{"until at its key time", Logs{Until: keyTime}, false},
		{"since after it", Logs{Since: keyTime.Add(time.Millisecond)}, false},
		{"until before it", Logs{Until: before}, false},
	} {
		if _, got := find(c.q); got != c.want {
			t.Errorf("%s: found %v, want %v", c.name, got, c.want)
		}
	}
	if got, err := r.Tail(t.Context(), Logs{Service: "zerotime", Since: before}, 10); err != nil || len(got) != 2 {
		t.Errorf("Tail since before: %d records, %v; want both", len(got), err)
	}
}
