package auditlog

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

func TestMain(m *testing.M) { azurite.Main(m) }

// tableName returns the name of a table client made by the harness.
func tableName(t testing.TB, c *aztables.Client) string { return azurite.TableName(c) }

// newWriter returns a Writer on tbl with test defaults. A harness-made
// *aztables.Client, as tbl or as opts.ReadTable, is replaced by its
// tablelog.Client twin (same table, endpoint and credential): the suite
// runs against tablelog.Client; newSDKWriter keeps the SDK clients for the
// compatibility test (compat_test.go).
func newWriter(t testing.TB, tbl Table, opts Options) *Writer {
	t.Helper()
	opts.ReadTable = twinRead(t, opts.ReadTable)
	return newSDKWriter(t, twin(t, tbl), opts)
}

// twin returns the tablelog.Client twin of tbl when it is an
// *aztables.Client the harness made, else tbl.
func twin(t testing.TB, tbl Table) Table {
	t.Helper()
	if c, ok := tbl.(*aztables.Client); ok && azurite.TableName(c) != "" {
		return azurite.Tablelog(t, c)
	}
	return tbl
}

// twinRead is twin for a ReadTable.
func twinRead(t testing.TB, tbl ReadTable) ReadTable {
	t.Helper()
	if c, ok := tbl.(*aztables.Client); ok && azurite.TableName(c) != "" {
		return azurite.Tablelog(t, c)
	}
	return tbl
}

// newSDKWriter is newWriter without replacing *aztables.Clients.
func newSDKWriter(t testing.TB, tbl Table, opts Options) *Writer {
	t.Helper()
	if opts.Service == "" {
		opts.Service = "billing"
	}
	w, err := New(tbl, opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// entities reads every entity of the table (directly), sorted by
// PartitionKey then RowKey.
func entities(t testing.TB, c *aztables.Client) []schema.AuditRecord {
	t.Helper()
	var out []schema.AuditRecord
	p := c.NewListEntitiesPager(nil)
	for p.More() {
		resp, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range resp.Entities {
			r, _ := schema.DecodeAudit(raw)
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PartitionKey != out[j].PartitionKey {
			return out[i].PartitionKey < out[j].PartitionKey
		}
		return out[i].RowKey < out[j].RowKey
	})
	return out
}

// events returns the audit events (not seals, not the catalog) of the
// table.
func events(t testing.TB, c *aztables.Client) []schema.AuditRecord {
	t.Helper()
	var out []schema.AuditRecord
	for _, r := range entities(t, c) {
		if r.PartitionKey != schema.CatalogPartition && !r.IsSeal() {
			out = append(out, r)
		}
	}
	return out
}

// record calls Record n times from g goroutines; an error fails the test
// (with t.Error: record may run outside the test's goroutine).
// recordEach records n events through each writer at once (16 goroutines
// each; writer i's events are ev(i*1000+j)) and returns all of them.
func recordEach(t testing.TB, ws []*Writer, n int) []Event {
	t.Helper()
	var got []Event
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() {
			evs := record(t, w, n, 16, func(j int) Event { return ev(i*1000 + j) })
			mu.Lock()
			got = append(got, evs...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return got
}

func record(t testing.TB, w *Writer, n, g int, mk func(i int) Event) []Event {
	t.Helper()
	out := make([]Event, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := 0
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				ev, err := w.Record(context.Background(), mk(i))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				out[i] = ev
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Errorf("Record: %v", firstErr)
	}
	return out
}

func ev(i int) Event {
	return Event{
		Actor: "user-" + string(rune('a'+i%26)), Action: "invoice.update", Target: "inv-" + itoa(i),
		Outcome: Success, Reason: "test", SourceIP: "203.0.113.7", RequestID: "req-" + itoa(i),
		Attrs: map[string]any{"i": i, "amount": 12.5},
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	if i == 0 {
		return "0"
	}
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}

// verify runs Verify and fails the test on an error. A harness-made
// *aztables.Client is replaced by its tablelog.Client twin (see newWriter).
func verify(t testing.TB, c ReadTable, o VerifyOptions) Report {
	t.Helper()
	return verifySDK(t, twinRead(t, c), o)
}

// verifySDK is verify without replacing an *aztables.Client.
func verifySDK(t testing.TB, c ReadTable, o VerifyOptions) Report {
	t.Helper()
	if o.Service == "" {
		o.Service = "billing"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Verify(ctx, c, o)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

func env(t testing.TB) *azurite.Env { return azurite.Get(t) }

type (
	httpRequest  = http.Request
	httpResponse = http.Response
)

func badRequest() error {
	return &azcore.ResponseError{StatusCode: http.StatusBadRequest, ErrorCode: "PropertyValueTooLarge"}
}
