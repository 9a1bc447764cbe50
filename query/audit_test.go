package query

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/auditlog"
	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

// auditTrail writes 30 events of service "billing" with auditlog: seqs
// 1..10 on 2026-11-23, 11..20 on 11-24 (the last two committed after
// midnight of 11-25 but backdated into 11-24), 21..30 on 11-25; Actor
// alternates alice/bob, Outcome is "denied" for every fifth.
func auditTrail(t *testing.T) (*aztables.Client, []auditlog.Event) {
	t.Helper()
	tbl := azurite.Get(t).NewTable(t)
	var clock atomic.Int64
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	w, err := auditlog.New(azurite.Tablelog(t, tbl), auditlog.Options{Service: "billing", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var out []auditlog.Event
	for i := 1; i <= 30; i++ {
		var evTime time.Time
		switch {
		case i <= 10:
			clock.Store(day.Add(time.Duration(i) * time.Minute).UnixNano())
		case i <= 18:
			clock.Store(day.Add(24*time.Hour + time.Duration(i)*time.Minute).UnixNano())
		case i <= 20:
			// Recorded at 00:00:0x on the 25th for an action at 23:59:5x
			// on the 24th: stored on the 25th.
			clock.Store(time.Date(2026, 11, 25, 0, 0, i, 0, time.UTC).UnixNano())
			evTime = time.Date(2026, 11, 24, 23, 59, 30+i, 0, time.UTC)
		default:
			clock.Store(day.Add(48*time.Hour + time.Duration(i)*time.Minute).UnixNano())
		}
		e := auditlog.Event{Actor: "alice", Action: "invoice.update", Target: fmt.Sprintf("inv-%d", i),
			Outcome: auditlog.Success, Reason: "r", SourceIP: "203.0.113.7", RequestID: fmt.Sprintf("req-%d", i),
			Attrs: map[string]any{"n": i, "amount": 12.5, "tags": []any{"a", 1}}, Time: evTime}
		if i%2 == 0 {
			e.Actor = "bob"
		}
		if i%5 == 0 {
			e.Outcome = auditlog.Denied
		}
		ev, err := w.Record(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return tbl, out
}

func collectAudit(t *testing.T, r *Reader, q Audit) []AuditEvent {
	t.Helper()
	var out []AuditEvent
	for ev, err := range r.Audit(context.Background(), q) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func seqs(evs []AuditEvent) []int64 {
	var s []int64
	for _, e := range evs {
		s = append(s, e.Seq)
	}
	return s
}

func seqRange(hi, lo int64, keep func(int64) bool) []int64 {
	var s []int64
	for i := hi; i >= lo; i-- {
		if keep == nil || keep(i) {
			s = append(s, i)
		}
	}
	return s
}

func TestAudit(t *testing.T) {
	t.Parallel()
	tbl, written := auditTrail(t)
	r := New(twin(t, tbl))
	r.now = func() time.Time { return time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC) }

	// Everything, newest first across days, every field carried.
	all := collectAudit(t, r, Audit{Service: "billing"})
	if fmt.Sprint(seqs(all)) != fmt.Sprint(seqRange(30, 1, nil)) {
		t.Fatalf("order %v", seqs(all))
	}
	for i, ev := range all {
		w := written[len(written)-1-i]
		if ev.ID != w.ID || !ev.Time.Equal(w.Time) || ev.Actor != w.Actor || ev.Action != w.Action ||
			ev.Target != w.Target || ev.Outcome != string(w.Outcome) || ev.Reason != w.Reason ||
			ev.SourceIP != w.SourceIP || ev.RequestID != w.RequestID || ev.Hash != w.Hash.String() ||
			ev.PrevHash != w.PrevHash.String() || ev.Service != "billing" || ev.Alg != "SHA-256" || ev.Stored.IsZero() {
			t.Fatalf("event %d: got %+v\nwritten %+v", ev.Seq, ev, w)
		}
		if ev.Attrs["n"] != int64(ev.Seq) || ev.Attrs["amount"] != 12.5 || fmt.Sprint(ev.Attrs["tags"]) != "[a 1]" ||
			ev.AttrsJSON != fmt.Sprintf(`{"amount":12.5,"n":%d,"tags":["a",1]}`, ev.Seq) {
			t.Fatalf("event %d attrs %#v %s", ev.Seq, ev.Attrs, ev.AttrsJSON)
		}
		if i+1 < len(all) && ev.PrevHash != all[i+1].Hash {
			t.Fatalf("event %d does not link to %d", ev.Seq, all[i+1].Seq)
		}
	}

	cases := []struct {
		name string
		q    Audit
		want []int64
	}{
		{"actor", Audit{Actor: "bob"}, seqRange(30, 1, func(i int64) bool { return i%2 == 0 })},
		{"actor and outcome", Audit{Actor: "alice", Outcome: "denied"}, []int64{25, 15, 5}},
		{"target", Audit{Target: "inv-17"}, []int64{17}},
		{"action, no match", Audit{Action: "invoice.delete"}, nil},
		{"limit", Audit{Limit: 4}, []int64{30, 29, 28, 27}},
		{"limit with filter across days", Audit{Outcome: "denied", Limit: 3}, []int64{30, 25, 20}},
		{"where", Audit{Where: And(Eq("RequestID", "req-3"), Eq("SourceIP", "203.0.113.7"))}, []int64{3}},
		{"where on seq", Audit{Where: Gt("Seq", int64(26))}, []int64{30, 29, 28, 27}},
		// The 24th by Time includes 19 and 20, stored on the 25th.
		{"one day by time", Audit{Since: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)},
			seqRange(20, 11, nil)},
		{"since", Audit{Since: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)}, seqRange(30, 21, nil)},
		{"until", Audit{Until: time.Date(2026, 11, 23, 10, 5, 0, 0, time.UTC)}, seqRange(4, 1, nil)},
		{"other service", Audit{Service: "other"}, nil},
	}
	for _, tc := range cases {
		if tc.q.Service == "" {
			tc.q.Service = "billing"
		}
		if got := seqs(collectAudit(t, r, tc.q)); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %v; want %v", tc.name, got, tc.want)
		}
	}
}

func TestAuditInvalid(t *testing.T) {
	t.Parallel()
	r := New(azurite.Get(t).NewTable(t))
	t0 := time.Now()
	for name, q := range map[string]Audit{
		"service":     {Service: "bad name"},
		"since>until": {Service: "s", Since: t0, Until: t0.Add(-time.Second)},
		"limit":       {Service: "s", Limit: -1},
		"where":       {Service: "s", Where: Eq("Actor", func() {})},
	} {
		for _, err := range r.Audit(context.Background(), q) {
			if !errors.Is(err, ErrInvalidQuery) {
				t.Errorf("%s: %v", name, err)
			}
			break
		}
	}
}

// An event whose Time ran ahead of its writer's clock across midnight sits
// in the partition of the day before its Time (a trail written before the
// writer opened the Time's day, or by an older writer): a query from that
// Time's day still finds it. And a catalog row naming a far day (which no
// writer writes) is not read with an open Until.
func TestAuditReadsTheDayBeforeSince(t *testing.T) {
	t.Parallel()
	e := azurite.Get(t)
	tbl := e.NewTable(t)
	direct := e.DirectTable(t, azurite.TableName(tbl))
	ctx := context.Background()
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	far := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	put := func(raw []byte) {
		t.Helper()
		if _, err := direct.AddEntity(ctx, raw, nil); err != nil {
			t.Fatal(err)
		}
	}
	put(schema.AppendCatalogEntity(nil, "billing", day))
	put(schema.AppendCatalogEntity(nil, "billing", far))
	for i, d := range []time.Time{day, far} {
		r := schema.AuditRecord{PartitionKey: schema.PartitionKey("billing", d), RowKey: schema.AuditRowKey(int64(i + 1)), Seq: int64(i + 1),
			ID: "01JDAAAAAAAAAAAAAAAAAAAAAA", Time: time.Date(2026, 11, 25, 0, 0, 30, 0, time.UTC),
			Actor: "alice", Action: "a", Alg: "SHA-256", PrevHash: strings.Repeat("0", 64), Hash: strings.Repeat("1", 64)}
		put(schema.AppendAuditEntity(nil, &r))
	}
	r := New(tbl)
	r.now = func() time.Time { return day.Add(36 * time.Hour) }
	got := collectAudit(t, r, Audit{Service: "billing", Since: day.AddDate(0, 0, 1)})
	if len(got) != 1 || got[0].PartitionKey != schema.PartitionKey("billing", day) {
		t.Fatalf("Since the 25th: %d events %+v", len(got), got)
	}
}
