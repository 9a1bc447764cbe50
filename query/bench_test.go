package query

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

// The Tail benchmark: the last 100 records of a 200,000-entity partition vs
// the same from a 10,000-entity partition (target <= 1.3x), and vs a
// hand-written single aztables $top=100 query on the big partition (target
// <= 1.2x). All are measured interleaved in the same loop, so machine
// load affects them alike. Both partitions are in one table (so the
// emulator's per-query table scan is the same for all three).
//
//	go test ./query -run '^$' -bench BenchmarkTail -benchtime 200x
//
// Loading 210,000 entities into Azurite takes about a minute; it happens
// once per test binary, only when this benchmark runs.

const (
	benchBig   = 200_000
	benchSmall = 10_000
)

var bench struct {
	once       sync.Once
	tbl        *aztables.Client
	big, small string // services
	bigPK      string
	smallPK    string
	err        error
	load       time.Duration
}

func benchSetup(b *testing.B) {
	bench.once.Do(func() {
		env := azurite.Get(b)
		// The table must outlive the sub-benchmark that creates it, so it is
		// created here and not through NewTable (whose cleanup is per b).
		name := azurite.NewTableName()
		svc, err := aztables.NewServiceClientFromConnectionString(env.ConnectionString, nil)
		if err != nil {
			bench.err = err
			return
		}
		if _, err := svc.CreateTable(context.Background(), name, nil); err != nil {
			bench.err = err
			return
		}
		bench.tbl = env.Table(b, name)
		bench.big, bench.small = "bench-big", "bench-small"
		start := time.Now()
		// Records end 2 s ago, 1 ms apart; all in today's partition unless
		// the benchmark runs in the first minutes after midnight UTC.
		end := time.Now().Add(-2 * time.Second)
		for _, p := range []struct {
			service string
			n       int
		}{{bench.small, benchSmall}, {bench.big, benchBig}} {
			gen := schema.NewGenerator(nil)
			var enc schema.Encoder
			acts := make([]aztables.TransactionAction, 0, p.n)
			first := end.Add(-time.Duration(p.n) * time.Millisecond)
			for i := range p.n {
				ts := first.Add(time.Duration(i) * time.Millisecond)
				enc.Reset(schema.PartitionKey(p.service, ts), schema.RowKey(gen.New(ts)))
				enc.SetTime(ts)
				enc.SetLevel("info", schema.SeverityInfo)
				enc.SetMessage("request handled")
				enc.String("user_id", fmt.Sprintf("u-%d", i%1000))
				enc.String("path", "/api/v1/orders")
				enc.Int64("status", 200)
				enc.Duration("elapsed", time.Duration(i)*time.Microsecond)
				enc.Bool("cached", i%3 == 0)
				acts = append(acts, aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: slices.Clone(enc.Finish())})
			}
			// One transaction per partition: split where the day changes.
			var batches [][]aztables.TransactionAction
			var cur []aztables.TransactionAction
			curPK := ""
			for i, a := range acts {
				pk := schema.PartitionKey(p.service, first.Add(time.Duration(i)*time.Millisecond))
				if len(cur) == schema.MaxBatchOps || (pk != curPK && len(cur) > 0) {
					batches = append(batches, cur)
					cur = nil
				}
				curPK = pk
				cur = append(cur, a)
			}
			batches = append(batches, cur)
			submit(b, bench.tbl, batches, 8)
		}
		bench.bigPK = schema.PartitionKey(bench.big, end)
		bench.smallPK = schema.PartitionKey(bench.small, end)
		bench.load = time.Since(start)
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
}

func BenchmarkTail(b *testing.B) {
	benchSetup(b)
	b.Logf("loaded %d + %d entities in %v", benchBig, benchSmall, bench.load.Round(time.Millisecond))
	ctx := context.Background()
	r := New(twin(b, bench.tbl))
	top := int32(100)
	bigFilter := "PartitionKey eq '" + bench.bigPK + "'"
	smallFilter := "PartitionKey eq '" + bench.smallPK + "'"
	hand := func(filter *string) int {
		p := bench.tbl.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: filter, Top: &top})
		resp, err := p.NextPage(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return len(resp.Entities)
	}
	tail := func(service string) int {
		recs, err := r.Tail(ctx, Logs{Service: service}, 100)
		if err != nil {
			b.Fatal(err)
		}
		return len(recs)
	}
	// Warm up (connections, JIT in the emulator) and check the results.
	for range 3 {
		if n1, n2, n3, n4 := tail(bench.big), tail(bench.small), hand(&bigFilter), hand(&smallFilter); n1 != 100 || n2 != 100 || n3 != 100 || n4 != 100 {
			b.Fatalf("got %d, %d, %d, %d records, want 100 each", n1, n2, n3, n4)
		}
	}
	var tBig, tSmall, tHand, tHandSmall time.Duration
	b.ResetTimer()
	for range b.N {
		s := time.Now()
		tail(bench.big)
		tBig += time.Since(s)
		s = time.Now()
		tail(bench.small)
		tSmall += time.Since(s)
		s = time.Now()
		hand(&bigFilter)
		tHand += time.Since(s)
		s = time.Now()
		hand(&smallFilter)
		tHandSmall += time.Since(s)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(tBig.Nanoseconds())/n, "tail200k-ns/op")
	b.ReportMetric(float64(tSmall.Nanoseconds())/n, "tail10k-ns/op")
	b.ReportMetric(float64(tHand.Nanoseconds())/n, "hand200k-ns/op")
	b.ReportMetric(float64(tHandSmall.Nanoseconds())/n, "hand10k-ns/op")
	// The emulator's own cost ratio for the same two partitions: Azurite
	// filters every entity of the table and sorts every match before
	// applying $top, so even the hand-written query is not O(100) there.
	b.ReportMetric(float64(tHand)/float64(tHandSmall), "hand200k/hand10k")
	b.ReportMetric(float64(tBig)/float64(tSmall), "200k/10k")
	b.ReportMetric(float64(tBig)/float64(tHand), "tail/hand")
}

// BenchmarkReadOverhead splits what BenchmarkTail's tail200k costs over
// hand200k, on the 200,000-entity partition, measured interleaved:
//
//	go test ./query -run '^$' -bench BenchmarkReadOverhead -benchtime 30x
//
// tail is Tail(100) as in BenchmarkTail. Its filter is "PartitionKey eq …
// and Severity ge 0": the default MinLevel is info, and with Since and
// Until zero the RowKey range is open, so no RowKey condition is sent.
// same is a hand-written $top=100 query with that same filter, so
// tail/same is the client's share (the scan, decoding 100 records). all is
// Tail(100) with MinLevel AllLevels (no level condition) and pk
// BenchmarkTail's hand-written "PartitionKey eq …" query. level-ns/op,
// same − pk, is the cost of the level condition, which Azurite evaluates
// on every entity of the partition.
func BenchmarkReadOverhead(b *testing.B) {
	benchSetup(b)
	ctx := context.Background()
	r := New(twin(b, bench.tbl))
	top := int32(100)
	pkFilter := "PartitionKey eq '" + bench.bigPK + "'"
	sameFilter := pkFilter + " and Severity ge 0"
	hand := func(filter *string) {
		p := bench.tbl.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: filter, Top: &top})
		if resp, err := p.NextPage(ctx); err != nil || len(resp.Entities) != 100 {
			b.Fatalf("hand-written query: %d entities, %v", len(resp.Entities), err)
		}
	}
	tail := func(q Logs) {
		if recs, err := r.Tail(ctx, q, 100); err != nil || len(recs) != 100 {
			b.Fatalf("Tail: %d records, %v", len(recs), err)
		}
	}
	runs := []struct {
		name string
		f    func()
		d    time.Duration
	}{
		{name: "tail", f: func() { tail(Logs{Service: bench.big}) }},
		{name: "same", f: func() { hand(&sameFilter) }},
		{name: "all", f: func() { tail(Logs{Service: bench.big, MinLevel: AllLevels}) }},
		{name: "pk", f: func() { hand(&pkFilter) }},
	}
	for i := range runs { // warm up
		runs[i].f()
	}
	b.ResetTimer()
	for range b.N {
		for i := range runs {
			s := time.Now()
			runs[i].f()
			runs[i].d += time.Since(s)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	for _, x := range runs {
		b.ReportMetric(float64(x.d.Nanoseconds())/n, x.name+"-ns/op")
	}
	b.ReportMetric(float64(runs[0].d)/float64(runs[1].d), "tail/same")
	b.ReportMetric(float64(runs[2].d)/float64(runs[3].d), "all/pk")
	b.ReportMetric(float64((runs[1].d-runs[3].d).Nanoseconds())/n, "level-ns/op")
}
