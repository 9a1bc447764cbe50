package query

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

// Newest first across days, RowKey-bounded queries per day
// partition, page by page, Limit stops early, Since/Until to the ms.
func TestLogsNewestFirstAcrossDays(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	var es, other []*entry
	for d := -2; d <= 0; d++ {
		for i := range 5 {
			ts := day0.AddDate(0, 0, d).Add(10*time.Hour + time.Duration(i)*time.Second)
			es = append(es, &entry{Time: ts, Msg: "m"})
			other = append(other, &entry{Time: ts, Msg: "other service"})
		}
	}
	put(t, tbl, "svc-a", es, 4)
	put(t, tbl, "svc-a-b", other, 4) // a service whose name extends svc-a

	spy := &spyTable{Table: twin(t, tbl)}
	r := New(spy)
	got := collect(t, r.Logs(t.Context(), Logs{Service: "svc-a", Since: day0.AddDate(0, 0, -2), Until: day0.AddDate(0, 0, 1)}))
	if want := newestFirst(es); !slices.Equal(ids(got), want) {
		t.Fatalf("got %d records %v\nwant %d %v", len(got), ids(got), len(want), want)
	}
	for _, rec := range got {
		if rec.Service != "svc-a" || rec.Message != "m" || rec.Level != "info" {
			t.Fatalf("bad record %+v", rec)
		}
	}
	fs := spy.dataFilters()
	if len(fs) != 3 || spy.catalogRequests() != 0 {
		t.Fatalf("want 3 requests (one per day), no catalog read (unsharded days cost what they did before shards), got %q", spy.filters())
	}
	for i, f := range fs {
		pk := schema.PartitionKey("svc-a", day0.AddDate(0, 0, -i))
		lo, hi := schema.RowKeyRange(day0.AddDate(0, 0, -2), day0.AddDate(0, 0, 1))
		// The record conditions, or the shard markers' range (see shards.go).
		want := "PartitionKey eq '" + pk + "' and ((RowKey ge '" + lo + "' and RowKey lt '" + hi + "' and Severity ge 0) or RowKey lt '\"')"
		if f != want {
			t.Errorf("request %d filter\n got %s\nwant %s", i, f, want)
		}
	}
}

func TestLogsMillisecondBounds(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	base := day0.Add(12 * time.Hour)
	offsets := []time.Duration{
		0,
		time.Millisecond,
		time.Millisecond + 500*time.Microsecond,
		2*time.Millisecond - 100*time.Nanosecond,
		2 * time.Millisecond,
		3*time.Millisecond - 100*time.Nanosecond,
		3 * time.Millisecond,
		4 * time.Millisecond,
	}
	var es []*entry
	for _, off := range offsets {
		es = append(es, &entry{Time: base.Add(off), Msg: off.String()})
	}
	put(t, tbl, "ms", es, 1)
	r := New(twin(t, tbl))
	cases := []struct {
		since, until time.Duration
		want         []string
	}{
		{time.Millisecond, 3 * time.Millisecond, []string{"2.9999ms", "2ms", "1.9999ms", "1.5ms", "1ms"}},
		{time.Millisecond + 250*time.Microsecond, 3 * time.Millisecond, []string{"2.9999ms", "2ms", "1.9999ms", "1.5ms"}},
		{time.Millisecond + 500*time.Microsecond, 2 * time.Millisecond, []string{"1.9999ms", "1.5ms"}},
		{2 * time.Millisecond, 2*time.Millisecond + time.Nanosecond, []string{"2ms"}},
		{0, 100 * time.Microsecond, []string{"0s"}},
		{3*time.Millisecond - 100*time.Nanosecond, 4 * time.Millisecond, []string{"3ms", "2.9999ms"}},
	}
	for _, c := range cases {
		var msgs []string
		for _, rec := range collect(t, r.Logs(t.Context(), Logs{Service: "ms", Since: base.Add(c.since), Until: base.Add(c.until)})) {
			msgs = append(msgs, rec.Message)
		}
		if !slices.Equal(msgs, c.want) {
			t.Errorf("[%v, %v): got %q, want %q", c.since, c.until, msgs, c.want)
		}
	}
}

func TestLogsPagingAndLimit(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	var es []*entry
	for i := range 2500 {
		es = append(es, &entry{Time: day0.Add(time.Duration(i) * time.Millisecond), Msg: "p"})
	}
	put(t, tbl, "pages", es, 4)
	want := newestFirst(es)
	spy := &spyTable{Table: twin(t, tbl)}
	r := New(spy)
	q := Logs{Service: "pages", Since: day0, Until: day0.Add(time.Hour)}

	// Everything: three pages of at most 1,000, no $top.
	got := collect(t, r.Logs(t.Context(), q))
	if !slices.Equal(ids(got), want) {
		t.Fatalf("full read: got %d records, want %d (or wrong order)", len(got), len(want))
	}
	if reqs := spy.dataRequests(); len(reqs) != 3 || reqs[0].Top != nil || reqs[1].NextRowKey == nil {
		t.Fatalf("full read: want 3 paged requests, got %d", len(reqs))
	}

	// Stopping early sends no further request.
	spy.reset()
	n := 0
	for _, err := range r.Logs(t.Context(), q) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 10 {
			break
		}
	}
	if len(spy.dataRequests()) != 1 {
		t.Fatalf("break after 10: want 1 request, got %d", len(spy.dataRequests()))
	}

	// Limit shrinks $top to what is still needed.
	for _, c := range []struct {
		limit int
		tops  []int32
	}{{5, []int32{5}}, {1000, []int32{1000}}, {1500, []int32{1000, 500}}} {
		spy.reset()
		q.Limit = c.limit
		got := collect(t, r.Logs(t.Context(), q))
		if !slices.Equal(ids(got), want[:c.limit]) {
			t.Fatalf("limit %d: got %d records", c.limit, len(got))
		}
		var tops []int32
		for _, req := range spy.dataRequests() {
			tops = append(tops, *req.Top)
		}
		if !slices.Equal(tops, c.tops) {
			t.Fatalf("limit %d: $top per request %v, want %v", c.limit, tops, c.tops)
		}
	}
}

func TestLogsDefaultWindowAndCatalog(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	recent := &entry{Time: day0.AddDate(0, 0, -6).Add(time.Hour), Msg: "6 days before"}
	listed := &entry{Time: day0.AddDate(0, 0, -20).Add(time.Hour), Msg: "20 days before, in the catalog"}
	unlisted := &entry{Time: day0.AddDate(0, 0, -30).Add(time.Hour), Msg: "30 days before, not in the catalog"}
	newest := &entry{Time: day0.Add(time.Hour), Msg: "today"}
	put(t, tbl, "win", []*entry{recent, listed, unlisted, newest}, 1)
	putCatalog(t, tbl, "win", day0.AddDate(0, 0, -20), day0)
	putCatalog(t, tbl, "win-other", day0.AddDate(0, 0, -25))

	spy := &spyTable{Table: twin(t, tbl)}
	r := New(spy)
	until := day0.AddDate(0, 0, 1)
	got := collect(t, r.Logs(t.Context(), Logs{Service: "win", Until: until}))
	if want := []ulid.ULID{newest.ID, recent.ID, listed.ID}; !slices.Equal(ids(got), want) {
		t.Fatalf("got %v, want %v", ids(got), want)
	}
	// 7 day partitions, the catalog for older days, the one listed older
	// day (the window's days have no shards: their first pages say so).
	if n := len(spy.requests()); n != 9 || spy.catalogRequests() != 1 {
		t.Errorf("want 9 requests (1 of the catalog), got %d: %q", n, spy.filters())
	}
	// With a Limit met by the newest day, neither older days nor the
	// catalog's older days are read.
	spy.reset()
	got = collect(t, r.Logs(t.Context(), Logs{Service: "win", Until: until, Limit: 1}))
	if len(got) != 1 || got[0].ID != newest.ID || len(spy.dataRequests()) != 1 || spy.catalogRequests() != 0 {
		t.Fatalf("limit 1: got %d records in %d requests: %q", len(got), len(spy.requests()), spy.filters())
	}
	// An explicit Since inside the window reads only its days.
	spy.reset()
	got = collect(t, r.Logs(t.Context(), Logs{Service: "win", Since: day0.AddDate(0, 0, -6), Until: until}))
	if len(got) != 2 || len(spy.dataRequests()) != 7 || spy.catalogRequests() != 0 {
		t.Fatalf("since 6 days: got %d records in %d requests", len(got), len(spy.requests()))
	}
}

// Severity and Where run on the server, Contains on the client.
func TestLogsServerAndClientFilters(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	base := day0.Add(8 * time.Hour)
	es := []*entry{
		{Msg: "debug u-1", Level: "debug", Sev: schema.SeverityDebug, Fields: map[string]any{"user_id": "u-1"}},
		{Msg: "info u-1 timeout", Level: "info", Sev: schema.SeverityInfo, Fields: map[string]any{"user_id": "u-1"}},
		{Msg: "warn u-1 timeout", Level: "warn", Sev: schema.SeverityWarn, Fields: map[string]any{"user_id": "u-1"}},
		{Msg: "warn u-2 timeout", Level: "warn", Sev: schema.SeverityWarn, Fields: map[string]any{"user_id": "u-2"}},
		{Msg: "error u-1", Level: "error", Sev: schema.SeverityError, Fields: map[string]any{"user_id": "u-1", "err": "read: timeout"}},
		{Msg: "error u-1 nested", Level: "error", Sev: schema.SeverityError, Fields: map[string]any{"user_id": "u-1"},
			Groups: map[string]map[string]any{"req": {"path": "/api/timeout"}}},
		{Msg: "fatal u-1", Level: "fatal", Sev: schema.SeverityFatal, Fields: map[string]any{"user_id": "u-1", "n": 42}},
	}
	for i, e := range es {
		e.Time = base.Add(time.Duration(i) * time.Second)
	}
	put(t, tbl, "flt", es, 1)
	spy := &spyTable{Table: twin(t, tbl)}
	r := New(spy)
	q := Logs{Service: "flt", Since: day0, Until: day0.Add(24 * time.Hour)}
	msgs := func(q Logs) []string {
		var out []string
		for _, rec := range collect(t, r.Logs(t.Context(), q)) {
			out = append(out, rec.Message)
		}
		return out
	}

	if got, want := msgs(q), []string{"fatal u-1", "error u-1 nested", "error u-1", "warn u-2 timeout", "warn u-1 timeout", "info u-1 timeout"}; !slices.Equal(got, want) {
		t.Errorf("default MinLevel (info): got %q, want %q", got, want)
	}
	q.MinLevel = AllLevels
	if got := msgs(q); len(got) != len(es) {
		t.Errorf("AllLevels: got %d records, want %d", len(got), len(es))
	}
	if f := spy.dataFilters(); strings.Contains(f[len(f)-1], "Severity") {
		t.Errorf("AllLevels still sends a Severity condition: %s", f[len(f)-1])
	}

	spy.reset()
	q.MinLevel = slog.LevelWarn
	q.Where = Eq("user_id", "u-1")
	if got, want := msgs(q), []string{"fatal u-1", "error u-1 nested", "error u-1", "warn u-1 timeout"}; !slices.Equal(got, want) {
		t.Errorf("warn+ u-1: got %q, want %q", got, want)
	}
	f := spy.dataFilters()[0]
	if !strings.Contains(f, " and Severity ge 4 and user_id eq 'u-1')") {
		t.Errorf("level and Where are not sent to the server: %s", f)
	}

	// Contains: message, field values, nested field values; client side.
	spy.reset()
	q.Contains = "timeout"
	if got, want := msgs(q), []string{"error u-1 nested", "error u-1", "warn u-1 timeout"}; !slices.Equal(got, want) {
		t.Errorf("contains timeout: got %q, want %q", got, want)
	}
	if strings.Contains(spy.dataFilters()[0], "timeout") {
		t.Errorf("Contains was sent to the server")
	}
	q.Contains = "42"
	if got, want := msgs(q), []string{"fatal u-1"}; !slices.Equal(got, want) {
		t.Errorf("contains 42 (an int field): got %q, want %q", got, want)
	}
	// Limit with Contains still returns the matching records.
	q.Contains, q.Where, q.Limit, q.MinLevel = "u-1", Filter{}, 2, AllLevels
	if got, want := msgs(q), []string{"fatal u-1", "error u-1 nested"}; !slices.Equal(got, want) {
		t.Errorf("contains u-1 limit 2: got %q, want %q", got, want)
	}
}

func TestLogsRecordFields(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	ts := day0.Add(time.Hour + 123456700*time.Nanosecond)
	e := &entry{Time: ts, Level: "warn", Sev: 4, Msg: "hello",
		Fields: map[string]any{"user_id": "u-1", "n": 7, "ok": true, "ratio": 0.5, "http.method": "GET"},
		Groups: map[string]map[string]any{"req": {"id": "r-1"}}}
	put(t, tbl, "rec", []*entry{e}, 1)
	got := collect(t, New(twin(t, tbl)).Logs(t.Context(), Logs{Service: "rec", Until: day0.AddDate(0, 0, 1)}))
	if len(got) != 1 {
		t.Fatalf("got %d records", len(got))
	}
	rec := got[0]
	if !rec.Time.Equal(ts) || rec.Level != "warn" || rec.Severity != 4 || rec.Message != "hello" || rec.Service != "rec" || rec.ID != e.ID {
		t.Fatalf("record %+v", rec)
	}
	want := map[string]any{"user_id": "u-1", "n": int64(7), "ok": true, "ratio": 0.5, "http.method": "GET", "req": map[string]any{"id": "r-1"}}
	if !equalFields(rec.Fields, want) {
		t.Fatalf("fields %#v, want %#v", rec.Fields, want)
	}
}

func equalFields(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok {
			return false
		}
		if m, ok := v.(map[string]any); ok {
			n, ok := w.(map[string]any)
			if !ok || !equalFields(m, n) {
				return false
			}
			continue
		}
		if v != w {
			return false
		}
	}
	return true
}

func TestLogsInvalidQueries(t *testing.T) {
	t.Parallel()
	r := New(&spyTable{}) // never called
	for name, q := range map[string]Logs{
		"no service":     {},
		"bad service":    {Service: "a/b"},
		"since >= until": {Service: "s", Since: day0, Until: day0},
		"negative limit": {Service: "s", Limit: -1},
		"bad filter":     {Service: "s", Where: Eq("x", struct{}{})},
		"15 comparisons": {Service: "s", Where: And(Eq("a", 1), Eq("b", 1), Eq("c", 1), Eq("d", 1), Eq("e", 1), Eq("f", 1),
			Eq("g", 1), Eq("h", 1), Eq("i", 1), Eq("j", 1), Eq("k", 1), Eq("l", 1), Eq("m", 1), Eq("n", 1))},
	} {
		n := 0
		for _, err := range r.Logs(context.Background(), q) {
			n++
			if !errors.Is(err, ErrInvalidQuery) {
				t.Errorf("%s: got %v, want ErrInvalidQuery", name, err)
			}
		}
		if n != 1 {
			t.Errorf("%s: %d yields, want 1", name, n)
		}
	}
	if _, err := r.Tail(context.Background(), Logs{}, 5); !errors.Is(err, ErrInvalidQuery) {
		t.Errorf("Tail without service: %v", err)
	}
	// A bad service name keeps schema's *ServiceError in the chain, under
	// the package's prefix once.
	_, err := r.Tail(context.Background(), Logs{Service: "a b"}, 5)
	var se *schema.ServiceError
	if !errors.Is(err, ErrInvalidQuery) || !errors.As(err, &se) || se.Name != "a b" ||
		!strings.HasPrefix(err.Error(), `tablelog/query: invalid query: service name "a b"`) {
		t.Errorf("Tail with a bad service: %v", err)
	}
	var zero Reader
	for _, err := range zero.Logs(context.Background(), Logs{Service: "s"}) {
		if !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("zero Reader: %v", err)
		}
	}
}
