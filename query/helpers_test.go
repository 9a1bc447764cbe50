package query

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/oklog/ulid/v2"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

func TestMain(m *testing.M) { azurite.Main(m) }

// entry is a record a test writes directly (the sink is not needed).
type entry struct {
	Time   time.Time
	Level  string
	Sev    int
	Msg    string
	Fields map[string]any // written with Encoder.Any, keys sorted
	Groups map[string]map[string]any
	ID     ulid.ULID // set by encode
}

// assignIDs gives the entries without an ID one from e.Time, in time
// order, from a fresh monotonic generator (a shared one would move later
// IDs forward to the newest time it has seen).
func assignIDs(es []*entry) {
	sorted := slices.Clone(es)
	slices.SortStableFunc(sorted, func(a, b *entry) int { return a.Time.Compare(b.Time) })
	gen := schema.NewGenerator(nil)
	for _, e := range sorted {
		if e.ID == (ulid.ULID{}) {
			e.ID = gen.New(e.Time)
		}
	}
}

// encode returns the entity JSON of e (whose ID must be set).
func encode(service string, e *entry) []byte {
	var enc schema.Encoder
	enc.Reset(schema.PartitionKey(service, e.Time), schema.RowKey(e.ID))
	enc.SetTime(e.Time)
	lvl, sev := e.Level, e.Sev
	if lvl == "" {
		lvl = "info"
	}
	enc.SetLevel(lvl, sev)
	enc.SetMessage(e.Msg)
	for _, k := range slices.Sorted(maps.Keys(e.Fields)) {
		enc.Any(k, e.Fields[k])
	}
	for _, g := range slices.Sorted(maps.Keys(e.Groups)) {
		enc.OpenGroup(g)
		for _, k := range slices.Sorted(maps.Keys(e.Groups[g])) {
			enc.Any(k, e.Groups[g][k])
		}
		enc.CloseGroup()
	}
	return slices.Clone(enc.Finish())
}

// put stores entries in 100-entity transactions per partition, inFlight
// transactions at a time (1 if inFlight <= 0).
func put(t testing.TB, tbl *aztables.Client, service string, es []*entry, inFlight int) {
	t.Helper()
	assignIDs(es)
	byPK := map[string][]aztables.TransactionAction{}
	var order []string
	for _, e := range es {
		body := encode(service, e)
		pk := schema.PartitionKey(service, e.Time)
		if _, ok := byPK[pk]; !ok {
			order = append(order, pk)
		}
		byPK[pk] = append(byPK[pk], aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: body})
	}
	var batches [][]aztables.TransactionAction
	for _, pk := range order {
		for acts := range slices.Chunk(byPK[pk], schema.MaxBatchOps) {
			batches = append(batches, acts)
		}
	}
	submit(t, tbl, batches, inFlight)
}

func submit(t testing.TB, tbl *aztables.Client, batches [][]aztables.TransactionAction, inFlight int) {
	t.Helper()
	inFlight = max(inFlight, 1)
	sem := make(chan struct{}, inFlight)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for _, b := range batches {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := tbl.SubmitTransaction(context.Background(), b, nil); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("submit: %v", firstErr)
	}
}

// putCatalog records service/day pairs in the catalog partition.
func putCatalog(t testing.TB, tbl *aztables.Client, service string, days ...time.Time) {
	t.Helper()
	for _, d := range days {
		body := fmt.Sprintf(`{"PartitionKey":%q,"RowKey":%q}`, schema.CatalogPartition, schema.PartitionKey(service, d))
		if _, err := tbl.AddEntity(context.Background(), []byte(body), nil); err != nil {
			t.Fatalf("catalog: %v", err)
		}
	}
}

// spyTable records the options of every request.
type spyTable struct {
	Table
	mu   sync.Mutex
	reqs []aztables.ListEntitiesOptions
}

func (s *spyTable) NewListEntitiesPager(o *aztables.ListEntitiesOptions) *runtime.Pager[aztables.ListEntitiesResponse] {
	s.mu.Lock()
	c := *o
	if o.Top != nil {
		top := *o.Top
		c.Top = &top
	}
	if o.Filter != nil {
		f := *o.Filter
		c.Filter = &f
	}
	s.reqs = append(s.reqs, c)
	s.mu.Unlock()
	return s.Table.NewListEntitiesPager(o)
}

func (s *spyTable) requests() []aztables.ListEntitiesOptions {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

func (s *spyTable) filters() []string {
	var out []string
	for _, r := range s.requests() {
		f := ""
		if r.Filter != nil {
			f = *r.Filter
		}
		out = append(out, f)
	}
	return out
}

// isCatalog reports whether a request reads the catalog partition.
func isCatalog(o aztables.ListEntitiesOptions) bool {
	return o.Filter != nil && strings.HasPrefix(*o.Filter, "PartitionKey eq '"+schema.CatalogPartition+"'")
}

// dataRequests returns the requests that read log partitions (not the
// catalog).
func (s *spyTable) dataRequests() []aztables.ListEntitiesOptions {
	var out []aztables.ListEntitiesOptions
	for _, r := range s.requests() {
		if !isCatalog(r) {
			out = append(out, r)
		}
	}
	return out
}

// dataFilters returns the filters of dataRequests.
func (s *spyTable) dataFilters() []string {
	var out []string
	for _, r := range s.dataRequests() {
		out = append(out, *r.Filter)
	}
	return out
}

// catalogRequests counts the requests that read the catalog.
func (s *spyTable) catalogRequests() int {
	n := 0
	for _, r := range s.requests() {
		if isCatalog(r) {
			n++
		}
	}
	return n
}

func (s *spyTable) reset() {
	s.mu.Lock()
	s.reqs = nil
	s.mu.Unlock()
}

// collect ranges over seq and fails the test on an error.
func collect(t testing.TB, seq func(func(Record, error) bool)) []Record {
	t.Helper()
	var out []Record
	for rec, err := range seq {
		if err != nil {
			t.Fatalf("iteration error: %v", err)
		}
		out = append(out, rec)
	}
	return out
}

type ulidT = ulid.ULID

func ids(recs []Record) []ulid.ULID {
	out := make([]ulid.ULID, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

// newestFirst returns the IDs of es, sorted newest first.
func newestFirst(es []*entry) []ulid.ULID {
	out := make([]ulid.ULID, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	slices.SortFunc(out, func(a, b ulid.ULID) int { return b.Compare(a) })
	return out
}

// day0 is a fixed day in the past used by tests that pin Until.
var day0 = time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)

// twin returns the tablelog.Client twin of a harness-made *aztables.Client
// (same table, endpoint, credential), so the suite reads through
// tablelog.Client; other tables are returned as they are.
func twin(t testing.TB, tbl Table) Table {
	t.Helper()
	if c, ok := tbl.(*aztables.Client); ok {
		if tc, ok := azurite.TryTablelog(t, c); ok {
			return tc
		}
	}
	return tbl
}
