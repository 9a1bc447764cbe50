package reliability

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/auditlog"
	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/query"
)

// auditRecorder passes an audit writer's requests on and records the
// RowKeys of every transaction.
type auditRecorder struct {
	*aztables.Client
	mu  sync.Mutex
	txs [][]string
}

func (r *auditRecorder) SubmitTransaction(ctx context.Context, actions []aztables.TransactionAction, o *aztables.SubmitTransactionOptions) (aztables.TransactionResponse, error) {
	var rks []string
	for _, a := range actions {
		var k struct{ RowKey string }
		_ = json.Unmarshal(a.Entity, &k)
		rks = append(rks, k.RowKey)
	}
	r.mu.Lock()
	r.txs = append(r.txs, rks)
	r.mu.Unlock()
	return r.Client.SubmitTransaction(ctx, actions, o)
}

// inSameTx reports whether one recorded transaction holds all of rks.
func (r *auditRecorder) inSameTx(rks ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, tx := range r.txs {
		all := true
		for _, rk := range rks {
			found := false
			for _, x := range tx {
				found = found || x == rk
			}
			all = all && found
		}
		if all {
			return true
		}
	}
	return false
}

// hostileAudit is one audit case: the event, and whether Record must
// refuse it (ErrInvalidEvent) or store it.
type hostileAudit struct {
	name    string
	ev      auditlog.Event
	invalid bool
}

func hostileAuditCases() []hostileAudit {
	base := func(mod func(*auditlog.Event)) auditlog.Event {
		ev := auditlog.Event{Actor: "alice", Action: "invoice.delete", Target: "inv-42", Outcome: auditlog.Success}
		mod(&ev)
		return ev
	}
	attrs := func(m map[string]any) auditlog.Event { return base(func(e *auditlog.Event) { e.Attrs = m }) }
	many := map[string]any{}
	for i := range 300 {
		many[fmt.Sprintf("f%03d", i)] = i
	}
	reserved := map[string]any{}
	for _, k := range systemNames {
		reserved[k] = "user " + k
	}
	for _, k := range []string{"Seq", "ID", "Hash", "PrevHash", "Alg", "Actor", "Attrs", "odata.etag", "k@odata.type"} {
		reserved[k] = "user " + k
	}
	deep := map[string]any{"v": 50}
	for i := 49; i >= 0; i-- {
		deep = map[string]any{fmt.Sprintf("group%02d", i): deep}
	}
	ints := make([]int, 100_000)
	return append([]hostileAudit{
		{name: "reason of 5 MB", ev: base(func(e *auditlog.Event) { e.Reason = big5MB }), invalid: true},
		{name: "reason of 32K+1 chars", ev: base(func(e *auditlog.Event) { e.Reason = chars32K1 }), invalid: true},
		{name: "reason of 32K+1 UTF-16 units (astral)", ev: base(func(e *auditlog.Event) { e.Reason = astral32K1 }), invalid: true},
		{name: "reason of 32K chars with an emoji at the end", ev: base(func(e *auditlog.Event) { e.Reason = chars32K1[:schema.MaxStringChars-2] + "😀" })},
		{name: "actor of 1,000 chars", ev: base(func(e *auditlog.Event) { e.Actor = key1000 })},
		{name: "actor of 1,025 bytes", ev: base(func(e *auditlog.Event) { e.Actor = key1000 + strings.Repeat("x", 25) }), invalid: true},
		{name: "NUL and control characters", ev: base(func(e *auditlog.Event) {
			e.Actor, e.Action, e.Target, e.Reason, e.SourceIP, e.RequestID = "a\x00b", "act\x01ion", "t\x1f\x7f", "r\x00\n\r\t\u0085", "::1\x00", "req\x1b[31m"
		})},
		{name: "invalid UTF-8 actor", ev: base(func(e *auditlog.Event) { e.Actor = "al\xffice" }), invalid: true},
		{name: "invalid UTF-8 reason", ev: base(func(e *auditlog.Event) { e.Reason = "r\xc0\xaf" }), invalid: true},
		{name: "lone surrogate in the target", ev: base(func(e *auditlog.Event) { e.Target = "\xed\xa0\x80" }), invalid: true},
		{name: "lone surrogate in attrs (JSON escape)", ev: attrs(map[string]any{"v": json.RawMessage(`"\ud800"`)})},
		{name: "empty actor", ev: base(func(e *auditlog.Event) { e.Actor = "" }), invalid: true},
		{name: "control characters in the outcome", ev: base(func(e *auditlog.Event) { e.Outcome = "ok\x00\n" })},
		{name: "attrs with 300 keys", ev: attrs(many)},
		{name: "attrs with reserved and system names", ev: attrs(reserved)},
		{name: "attrs with non-identifier, empty and 1,000-char keys", ev: attrs(map[string]any{"http.method": "GET", "user-id": 1, "1st": true, "ünïcode": "ü", "a b": nil, "": "empty", key1000: "long"})},
		{name: "attrs with NaN", ev: attrs(map[string]any{"v": math.NaN()}), invalid: true},
		{name: "attrs with +Inf", ev: attrs(map[string]any{"v": math.Inf(1)}), invalid: true},
		{name: "attrs with uint64 max", ev: attrs(map[string]any{"v": uint64(math.MaxUint64)})},
		{name: "attrs with a time before 1601", ev: attrs(map[string]any{"v": time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)})},
		{name: "attrs with a time after 9999", ev: attrs(map[string]any{"v": time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}), invalid: true},
		{name: "attrs with nil and typed nil", ev: attrs(map[string]any{"nil": nil, "ptr": (*int)(nil), "map": map[string]int(nil), "err": error(nil)})},
		{name: "attrs nested 50 deep", ev: attrs(deep)},
		{name: "attrs with a 100,000-element array", ev: attrs(map[string]any{"v": ints}), invalid: true},
		{name: "attrs with binary over 64 KiB", ev: attrs(map[string]any{"v": bin64K1}), invalid: true},
		{name: "time before 1601", ev: base(func(e *auditlog.Event) { e.Time = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC) }), invalid: true},
		{name: "time after 9999", ev: base(func(e *auditlog.Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }), invalid: true},
	}, extraAuditCases...)
}

// extraAuditCases are cases kept out of the default build (knownbugs_test.go).
var extraAuditCases []hostileAudit

// Item 5, audit events: each hostile event is recorded concurrently with
// two good ones while a fourth is in flight (the proxy delays writes), so
// the writer's group commit puts the three in one transaction. The caller
// never panics; an event Record refuses is refused with ErrInvalidEvent
// before anything is sent; a stored one reads back through query.Audit
// exactly as Record returned it; the good events are always stored; the
// chain verifies; every entity passes azurite.ValidateEntity as read back.
func TestHostileAuditEvents(t *testing.T) {
	t.Parallel()
	env := azurite.Get(t)
	name := azurite.TableName(env.NewTable(t))
	p := env.NewProxy(t)
	p.SetFaults(azurite.Faults{LatencyRate: 1, Latency: 150 * time.Millisecond,
		Match: func(r *http.Request) bool { return r.Method == http.MethodPost }})
	client := p.Table(t, name)
	rec := &auditRecorder{Client: client}
	const service = "audit-hostile"
	w, err := auditlog.New(rec, auditlog.Options{Service: service, ReadTable: client})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 5*time.Minute)
	if _, err := w.Record(ctx, auditlog.Event{Actor: "setup", Action: "start"}); err != nil {
		t.Fatal(err)
	}
	stored := map[string]auditlog.Event{} // good and hostile events Record stored, by ID
	cases := hostileAuditCases()
	sameTx := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			primer := make(chan error, 1)
			go func() {
				_, err := w.Record(ctx, auditlog.Event{Actor: "primer", Action: "in.flight"})
				primer <- err
			}()
			time.Sleep(30 * time.Millisecond) // the primer's transaction is in flight
			var (
				wg      sync.WaitGroup
				results [3]auditlog.Event
				errs    [3]error
			)
			for i := range 3 {
				wg.Go(func() {
					defer func() {
						if r := recover(); r != nil {
							errs[i] = fmt.Errorf("the caller panicked: %v\n%s", r, debug.Stack())
						}
					}()
					ev := auditlog.Event{Actor: "good", Action: fmt.Sprintf("good.%d", i), Target: c.name}
					if i == 1 {
						ev = c.ev
					}
					results[i], errs[i] = w.Record(ctx, ev)
				})
			}
			wg.Wait()
			if err := <-primer; err != nil {
				t.Fatalf("primer: %v", err)
			}
			for _, i := range []int{0, 2} {
				if errs[i] != nil {
					t.Fatalf("good event %d: %v", i, errs[i])
				}
				stored[results[i].ID.String()] = results[i]
			}
			switch {
			case c.invalid && !errors.Is(errs[1], auditlog.ErrInvalidEvent):
				t.Fatalf("hostile event: got %v, want ErrInvalidEvent", errs[1])
			case !c.invalid && errs[1] != nil:
				t.Fatalf("hostile event: %v", errs[1])
			case !c.invalid:
				stored[results[1].ID.String()] = results[1]
				if rec.inSameTx(schema.AuditRowKey(results[0].Seq), schema.AuditRowKey(results[1].Seq), schema.AuditRowKey(results[2].Seq)) {
					sameTx++
				}
			}
		})
	}
	ps := p.Stats()
	p.Reset()
	if len(ps.Rejected) != 0 {
		t.Errorf("the strict proxy rejected requests: %v", ps.Rejected)
	}

	// Read everything back: every entity valid, every stored event as
	// Record returned it, nothing else.
	for _, raw := range readRaw(t, name, nil) {
		if err := azurite.ValidateEntity(raw); err != nil {
			t.Errorf("stored entity fails validation: %v", err)
		}
	}
	got := 0
	for ev, err := range query.New(azurite.Tablelog(t, client)).Audit(ctx, query.Audit{Service: service}) {
		if err != nil {
			t.Fatalf("query.Audit: %v", err)
		}
		got++
		if ev.Actor == "setup" || ev.Actor == "primer" {
			continue
		}
		want, ok := stored[ev.ID.String()]
		if !ok {
			t.Errorf("event %s (%q) stored but Record did not return it", ev.ID, ev.Action)
			continue
		}
		attrs := ""
		if len(want.Attrs) > 0 {
			b, _ := json.Marshal(want.Attrs)
			var m1, m2 any
			_ = json.Unmarshal(b, &m1)
			_ = json.Unmarshal([]byte(ev.AttrsJSON), &m2)
			if !equal(m1, m2) {
				attrs = fmt.Sprintf("attrs %.200s, want %.200s", ev.AttrsJSON, b)
			}
		}
		if ev.Actor != want.Actor || ev.Action != want.Action || ev.Target != want.Target || ev.Outcome != string(want.Outcome) ||
			ev.Reason != want.Reason || ev.SourceIP != want.SourceIP || ev.RequestID != want.RequestID || ev.Seq != want.Seq ||
			ev.Hash != want.Hash.String() || attrs != "" {
			t.Errorf("event %d read back differs: %+.300v %s", ev.Seq, ev, attrs)
		}
	}
	primers := len(cases) + 1 // and the setup event
	if got != len(stored)+primers {
		t.Errorf("query.Audit returned %d events, want %d", got, len(stored)+primers)
	}
	rep, err := auditlog.Verify(ctx, client, auditlog.VerifyOptions{Service: service})
	if err != nil || !rep.OK() || rep.Checked != got {
		t.Errorf("Verify: %v, %+v", err, rep)
	}
	valid := 0
	for _, c := range cases {
		if !c.invalid {
			valid++
		}
	}
	if sameTx < valid/2 {
		t.Errorf("only %d of %d stored hostile events shared a transaction with both good neighbours", sameTx, valid)
	}
	t.Logf("item 5 (auditlog): %d cases (%d stored, %d refused with ErrInvalidEvent); %d stored hostile events in one transaction with both good neighbours; %d events verified; writer %+v; strict proxy rejections %v",
		len(cases), valid, len(cases)-valid, sameTx, rep.Checked, w.Stats(), ps.Rejected)
}
