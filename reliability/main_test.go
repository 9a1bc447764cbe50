package reliability

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/sink"
)

func TestMain(m *testing.M) { azurite.Main(m) }

// noRetry turns the SDK's own retries off, so the code under test sees every
// injected fault and has to deal with it itself.
var noRetry = &aztables.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}}

// fastRetry keeps the sink's backoff short so recovery after a fault or an
// outage is quick.
func fastRetry(o sink.Options) sink.Options {
	o.MinRetryInterval = 10 * time.Millisecond
	o.MaxRetryInterval = 250 * time.Millisecond
	o.RequestTimeout = 10 * time.Second
	return o
}

// faultyTable creates a fresh table and returns its name, a proxy of the
// test's own and a client for the table through that proxy with the SDK's
// retries off.
func faultyTable(t *testing.T) (string, *azurite.Proxy, *aztables.Client) {
	t.Helper()
	env := azurite.Get(t)
	name := azurite.TableName(env.NewTable(t))
	p := env.NewProxy(t)
	return name, p, p.Table(t, name, noRetry)
}

// errLog collects what a Sink reports to its ErrorHandler.
type errLog struct {
	mu   sync.Mutex
	list []error
}

func (e *errLog) handle(err error) {
	e.mu.Lock()
	e.list = append(e.list, err)
	e.mu.Unlock()
}

func (e *errLog) all() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.list...)
}

func (e *errLog) String() string {
	var b strings.Builder
	for _, err := range e.all() {
		b.WriteString(err.Error())
		b.WriteByte('\n')
	}
	return b.String()
}

// newSink returns a Sink on tbl whose errors go to the returned errLog; it
// is closed in t.Cleanup if the test did not close it. An *aztables.Client
// made by the harness is replaced by its tablelog.Client twin (same table,
// endpoint, credential and retry options): the suite runs against
// tablelog.Client.
func newSink(t testing.TB, tbl sink.Table, o sink.Options) (*sink.Sink, *errLog) {
	t.Helper()
	if c, ok := tbl.(*aztables.Client); ok {
		if tc, ok := azurite.TryTablelog(t, c); ok {
			tbl = tc
		}
	}
	if o.Service == "" {
		o.Service = "rel"
	}
	el := &errLog{}
	if o.ErrorHandler == nil {
		o.ErrorHandler = el.handle
	}
	s, err := sink.New(tbl, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s, el
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// readRaw returns every entity of table name (catalog entities included),
// read straight from Azurite (no proxy, no faults), as the service returns
// them. opts may filter and select columns.
func readRaw(t testing.TB, name string, opts *aztables.ListEntitiesOptions) [][]byte {
	t.Helper()
	direct := azurite.Get(t).DirectTable(t, name)
	return readRawFrom(t, direct, opts)
}

func readRawFrom(t testing.TB, tbl *aztables.Client, opts *aztables.ListEntitiesOptions) [][]byte {
	t.Helper()
	ctx := ctxT(t, 5*time.Minute)
	var out [][]byte
	pager := tbl.NewListEntitiesPager(opts)
	for pager.More() {
		var page aztables.ListEntitiesResponse
		var err error
		for attempt := 0; ; attempt++ { // Azurite may be busy under -race: retry a page
			page, err = pager.NextPage(ctx)
			if err == nil || attempt == 3 {
				break
			}
		}
		if err != nil {
			t.Fatalf("listing entities: %v", err)
		}
		out = append(out, page.Entities...)
	}
	return out
}

// decodeAll decodes raw entities, leaving catalog entities and shard
// markers (entities of shard 0 announcing a shard, not records) out.
func decodeAll(t testing.TB, raws [][]byte) []schema.Entity {
	t.Helper()
	out := make([]schema.Entity, 0, len(raws))
	for _, raw := range raws {
		e, err := schema.Decode(raw)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if e.PartitionKey == schema.CatalogPartition || schema.IsReservedRowKey(e.RowKey) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// rate formats n per d.
func rate(n int, d time.Duration) string {
	return fmt.Sprintf("%.0f/s", float64(n)/d.Seconds())
}

// accounting checks Enqueued == Written + FailedRecords + BufferedRecords.
func accounting(st sink.Stats) error {
	if st.Enqueued != st.Written+st.FailedRecords+uint64(st.BufferedRecords) {
		return fmt.Errorf("accounting broken: Enqueued %d != Written %d + FailedRecords %d + BufferedRecords %d",
			st.Enqueued, st.Written, st.FailedRecords, st.BufferedRecords)
	}
	return nil
}

func mib(n uint64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }
