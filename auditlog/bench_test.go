package auditlog

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/schema"
)

// Benchmarks of behaviour 2, against the server's own limits in the same
// run with the same entity size: one op is one event stored.
//
//	go test -run '^$' -bench . -benchtime 3000x ./auditlog
//
// Compare RecordSerial with AddEntity (>= 0.7x) and RecordParallel64 with
// Transaction100 (>= 0.6x), in events/s.

// benchTable returns a fresh table straight to Azurite (no proxy), the
// same for the baselines and the writer.
func benchTable(b *testing.B) *aztables.Client {
	b.Helper()
	e := env(b)
	return e.DirectTable(b, tableName(b, e.NewTable(b)))
}

// benchEvent is the event every benchmark stores (about 400 bytes).
func benchEvent(i int) Event {
	return Event{Actor: "alice@example.com", Action: "invoice.update", Target: "inv-" + itoa(i), Outcome: Success,
		Reason: "customer request", SourceIP: "203.0.113.7", RequestID: "req-0123456789abcdef",
		Attrs: map[string]any{"amount": 120, "currency": "EUR"}}
}

// baselineEntity encodes benchEvent(i) exactly as the writer would, with
// keys of its own (so the baselines store the same bytes).
func baselineEntity(b *testing.B, w *Writer, pk string, seq int64) []byte {
	p, err := w.prepare(benchEvent(int(seq)), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	r := p.rec
	r.PartitionKey, r.Seq, r.RowKey = pk, seq, schema.AuditRowKey(seq)
	h := w.hasher.sum("billing", &r, Hash{}, true)
	r.PrevHash, r.Hash = Hash{}.String(), h.String()
	return schema.AppendAuditEntity(nil, &r)
}

func reportRate(b *testing.B, start time.Time) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

func BenchmarkAddEntity(b *testing.B) {
	tbl := benchTable(b)
	w := newWriter(b, tbl, Options{})
	pk := schema.PartitionKey("billing", time.Now())
	ents := make([][]byte, b.N)
	for i := range ents {
		ents[i] = baselineEntity(b, w, pk, int64(i+1))
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := tbl.AddEntity(ctx, ents[i], nil); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, start)
}

func BenchmarkTransaction100(b *testing.B) {
	tbl := benchTable(b)
	w := newWriter(b, tbl, Options{})
	pk := schema.PartitionKey("billing", time.Now())
	acts := make([]aztables.TransactionAction, b.N)
	for i := range acts {
		acts[i] = aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: baselineEntity(b, w, pk, int64(i+1))}
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += 100 {
		if _, err := tbl.SubmitTransaction(ctx, acts[i:min(i+100, b.N)], nil); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, start)
}

func BenchmarkRecordSerial(b *testing.B) {
	w := newWriter(b, benchTable(b), Options{})
	ctx := context.Background()
	if _, err := w.Record(ctx, benchEvent(0)); err != nil { // reads the head
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := w.Record(ctx, benchEvent(i)); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, start)
}

func BenchmarkRecordParallel64(b *testing.B) {
	w := newWriter(b, benchTable(b), Options{})
	ctx := context.Background()
	if _, err := w.Record(ctx, benchEvent(0)); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.ResetTimer()
	start := time.Now()
	runGoroutines(64, b.N, func(i int) {
		if _, err := w.Record(ctx, benchEvent(i)); err != nil {
			b.Error(err)
		}
		n.Add(1)
	})
	reportRate(b, start)
	b.ReportMetric(float64(w.Stats().Events)/float64(w.Stats().Transactions), "events/tx")
}

// runGoroutines runs fn(0..n-1) on g goroutines.
func runGoroutines(g, n int, fn func(i int)) {
	var next atomic.Int64
	done := make(chan struct{})
	for range g {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	for range g {
		<-done
	}
}
