package sink

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

func TestMain(m *testing.M) { azurite.Main(m) }

// errs collects the errors a Sink reports.
type errs struct {
	mu   sync.Mutex
	list []error
}

func (e *errs) handle(err error) {
	e.mu.Lock()
	e.list = append(e.list, err)
	e.mu.Unlock()
}

func (e *errs) all() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.list...)
}

// newSink returns a Sink on tbl closed in t.Cleanup, with errors collected
// (and logged). An *aztables.Client made by the harness is replaced by its
// tablelog.Client twin (same table, endpoint and credential): the suite
// runs against tablelog.Client; newSDKSink keeps the SDK client for the
// compatibility tests.
func newSink(t testing.TB, tbl Table, opts Options) (*Sink, *errs) {
	t.Helper()
	if c, ok := tbl.(*aztables.Client); ok && azurite.TableName(c) != "" {
		tbl = azurite.Tablelog(t, c)
	}
	return newSDKSink(t, tbl, opts)
}

// newSDKSink is newSink without replacing an *aztables.Client.
func newSDKSink(t testing.TB, tbl Table, opts Options) (*Sink, *errs) {
	t.Helper()
	if opts.Service == "" {
		opts.Service = "svc"
	}
	e := &errs{}
	if opts.ErrorHandler == nil {
		opts.ErrorHandler = func(err error) { e.handle(err); t.Logf("ErrorHandler: %v", err) }
	}
	s, err := New(tbl, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s, e
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// readAll returns every entity of client's table, read straight from Azurite
// (no faults), decoded, sorted by PartitionKey then RowKey. Catalog entities
// are returned separately.
func readAll(t testing.TB, client *aztables.Client) (logs []schema.Entity, catalog []map[string]any) {
	t.Helper()
	env := azurite.Get(t)
	name := azurite.TableName(client)
	if name == "" {
		t.Fatal("readAll: unknown table")
	}
	direct := env.DirectTable(t, name)
	ctx := ctxT(t, 60*time.Second)
	pager := direct.NewListEntitiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("listing entities: %v", err)
		}
		for _, raw := range page.Entities {
			e, err := schema.Decode(raw)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if e.PartitionKey == schema.CatalogPartition {
				var m map[string]any
				m = map[string]any{"RowKey": e.RowKey}
				for k, v := range e.Fields {
					m[k] = v
				}
				catalog = append(catalog, m)
				continue
			}
			if schema.IsReservedRowKey(e.RowKey) {
				continue // a shard marker (see shard.go), not a record
			}
			logs = append(logs, e)
		}
	}
	sort.Slice(logs, func(i, j int) bool {
		if logs[i].PartitionKey != logs[j].PartitionKey {
			return logs[i].PartitionKey < logs[j].PartitionKey
		}
		return logs[i].RowKey < logs[j].RowKey
	})
	return logs, catalog
}

// byMsg indexes entities by message.
func byMsg(es []schema.Entity) map[string]schema.Entity {
	m := make(map[string]schema.Entity, len(es))
	for _, e := range es {
		m[e.Msg] = e
	}
	return m
}
