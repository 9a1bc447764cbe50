package auditlog

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/schema"
)

// Benchmarks of the writer, against the server's own limits in the same
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

// BenchmarkVerify verifies a keyed trail of n events over 10 days: one op
// is one whole Verify. It reports the requests per day verified and the
// peak of the live heap (as of each GC, sampled every millisecond) above
// the live heap before the run. Verify streams: what it holds is one page
// of up to 1,000 entities in flight, not the trail.
//
//	go test -run '^$' -bench Verify -benchtime 3x ./auditlog
func BenchmarkVerify(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			e := env(b)
			name := tableName(b, e.NewTable(b))
			var clock atomic.Int64
			day0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
			w := newWriter(b, e.DirectTable(b, name), Options{Key: testKey, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
			const days = 10
			for d := range days {
				clock.Store(day0.AddDate(0, 0, d).UnixNano())
				runGoroutines(64, n/days, func(i int) {
					if _, err := w.Record(context.Background(), benchEvent(i)); err != nil {
						b.Error(err)
					}
				})
			}
			rc := &requestCounter{}
			svc, err := aztables.NewServiceClientFromConnectionString(e.DirectConnectionString, &aztables.ClientOptions{
				ClientOptions: policy.ClientOptions{PerCallPolicies: []policy.Policy{rc}}})
			if err != nil {
				b.Fatal(err)
			}
			tbl := svc.NewClient(name)
			runtime.GC()
			live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
			metrics.Read(live)
			base := live[0].Value.Uint64()
			var peak atomic.Uint64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
				for {
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
					}
					metrics.Read(s)
					if v := s[0].Value.Uint64(); v > peak.Load() {
						peak.Store(v)
					}
				}
			}()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				rep, err := Verify(context.Background(), tbl, VerifyOptions{Service: "billing", Key: testKey})
				if err != nil || !rep.OK() || rep.Checked != n {
					b.Fatalf("Verify: %v, checked %d, %v", err, rep.Checked, rep.Breaks)
				}
			}
			elapsed := time.Since(start)
			close(stop)
			<-sampled
			b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(rc.n.Load())/float64(b.N*days), "requests/day")
			b.ReportMetric(float64(peak.Load()-min(peak.Load(), base))/(1<<20), "peak-live-heap-MiB")
		})
	}
}

// requestCounter counts the requests a client sends.
type requestCounter struct{ n atomic.Int64 }

func (c *requestCounter) Do(req *policy.Request) (*http.Response, error) {
	c.n.Add(1)
	return req.Next()
}
