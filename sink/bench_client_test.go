package sink

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog"
)

// The client benchmarks put a real client between the sink and an instant
// in-process endpoint: an httptest server that reads each request and
// answers at once (202 with a success changeset for a $batch, 204 for an
// insert, 201 for table creation). They show what the client costs the
// application: the logging goroutine's ns/op under sustained load (the
// sink's background writers running on the same 2 cores), and records/s
// and process CPU per record from the first record to Close returning.
//
//	go test ./sink -run '^$' -bench 'BenchmarkClient' -benchmem

// instantEndpoint starts the server and returns a connection string for it.
func instantEndpoint(b *testing.B) string {
	const ok = "--batchresponse_i\r\nContent-Type: multipart/mixed; boundary=changesetresponse_i\r\n\r\n" +
		"--changesetresponse_i\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n" +
		"HTTP/1.1 204 No Content\r\nX-Content-Type-Options: nosniff\r\nDataServiceVersion: 1.0;\r\n\r\n\r\n" +
		"--changesetresponse_i--\r\n--batchresponse_i--\r\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch {
		case strings.HasSuffix(r.URL.Path, "/$batch"):
			w.Header().Set("Content-Type", "multipart/mixed; boundary=batchresponse_i")
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, ok)
		case strings.HasSuffix(r.URL.Path, "/Tables"):
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	b.Cleanup(srv.Close)
	return "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + tablelog.DevelopmentAccountKey +
		";TableEndpoint=" + srv.URL + "/devstoreaccount1;"
}

// benchClients returns the two clients for table "logs" at cs.
func benchClients(b *testing.B, cs string) (tl *tablelog.Client, sdk *aztables.Client) {
	tl, err := tablelog.NewClientFromConnectionString(cs, "logs", nil)
	if err != nil {
		b.Fatal(err)
	}
	svc, err := aztables.NewServiceClientFromConnectionString(cs, &aztables.ClientOptions{ClientOptions: policy.ClientOptions{}})
	if err != nil {
		b.Fatal(err)
	}
	return tl, svc.NewClient("logs")
}

// clientSink is a Sink on tbl with the default options (buffer, batching,
// workers), closed at cleanup.
func clientSink(b *testing.B, tbl Table) *Sink {
	s, err := New(tbl, Options{Service: "bench", ErrorHandler: func(err error) { b.Errorf("sink: %v", err) }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// offeredRate is the load the client benchmarks offer: 100,000 records/s,
// five times what one Azure storage account accepts (20,000 entities/s)
// and about a fifth of what a Sink with a tablelog.Client drains on a
// 2-core machine (BenchmarkClientThroughput), so the background writers
// run all the time beside the logging goroutine without the buffer
// filling. At saturation (rate 0: as fast as the loop goes) the buffer
// fills and a logging call waits for the writers: its cost is then the
// drain rate's, which BenchmarkClientThroughput measures.
const offeredRate = 100_000

// pacedLoop calls log once per b.Loop iteration, offering rate calls/s in
// bursts of 50 (as fast as it goes when rate is 0), and returns the mean
// wall time a call took: the time spent between bursts is not counted.
func pacedLoop(b *testing.B, rate int, log func()) (callNs float64) {
	const burst = 50
	var inCalls time.Duration
	var t0 time.Time
	start := time.Now()
	i := 0
	for b.Loop() {
		if i%burst == 0 {
			if i > 0 {
				inCalls += time.Since(t0)
			}
			if rate > 0 {
				if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
					time.Sleep(d)
				}
			}
			t0 = time.Now()
		}
		log()
		i++
	}
	inCalls += time.Since(t0)
	return float64(inCalls.Nanoseconds()) / float64(b.N)
}

// clientBench runs one sub-benchmark of BenchmarkClientCore or
// BenchmarkClientHandler: log through each of the three back ends at rate,
// and prints the two comparisons against the baseline (res[0]).
func clientBench(b *testing.B, name, baseline string, target float64, rate int, base func() func(), sink func(Table) func()) {
	cs := instantEndpoint(b)
	var res [4][]benchResult
	run := func(b *testing.B, log func(), r *[]benchResult) {
		b.ReportAllocs()
		m := startMeasure()
		ns := pacedLoop(b, rate, log)
		m.stop(b, r)
		(*r)[len(*r)-1].ns = ns
		b.ReportMetric(ns, "call-ns/op")
	}
	b.Run(baseline, func(b *testing.B) { run(b, base(), &res[0]) })
	b.Run("tablelog.Client", func(b *testing.B) {
		tl, _ := benchClients(b, cs)
		run(b, sink(tl), &res[1])
	})
	// The control: the same sink and load with a table that discards
	// (no client, no network): what the logging call costs without the
	// writers' background work.
	b.Run("discard", func(b *testing.B) { run(b, sink(nopTable{}), &res[3]) })
	b.Run("aztables.Client", func(b *testing.B) {
		_, sdk := benchClients(b, cs)
		run(b, sink(sdk), &res[2])
	})
	load := "saturated"
	if rate > 0 {
		load = fmt.Sprintf("%d records/s", rate)
	}
	compare(name+" (tablelog.Client, "+load+")", baseline, [2][]benchResult{res[0], res[1]}, target)
	compare(name+" (aztables.Client, "+load+")", baseline, [2][]benchResult{res[0], res[2]}, target)
	compare(name+" (control: a table that discards, "+load+")", baseline, [2][]benchResult{res[0], res[3]}, target)
}

// BenchmarkClientCore: the logging goroutine's cost through Sink.Core with
// a real client to the instant endpoint, its background writers running,
// vs zap's JSON core to io.Discard (target tablelog <= 1.25x), and the same
// with an *aztables.Client and, as a control, with a table that discards: at offeredRate (the target's measure) and
// saturated. ns/op counts the pauses between bursts; call-ns/op, which the
// comparison uses, does not.
func BenchmarkClientCore(b *testing.B) {
	base := func() func() {
		enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
		l := zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zapcore.DebugLevel))
		return func() { l.Info("request handled", benchFields(42)...) }
	}
	sinkLog := func(b *testing.B) func(Table) func() {
		return func(tbl Table) func() {
			l := zap.New(clientSink(b, tbl).Core(zapcore.DebugLevel))
			return func() { l.Info("request handled", benchFields(42)...) }
		}
	}
	for _, rate := range []int{offeredRate, 0} {
		b.Run(rateName(rate), func(b *testing.B) {
			clientBench(b, "ClientCore", "zap-json", 1.25, rate, base, sinkLog(b))
		})
	}
}

// BenchmarkClientHandler: as BenchmarkClientCore for Sink.Handler vs
// slog's JSONHandler to io.Discard (target tablelog <= 1.0x).
func BenchmarkClientHandler(b *testing.B) {
	ctx := context.Background()
	logWith := func(h slog.Handler) func() {
		l := slog.New(h)
		return func() {
			l.LogAttrs(ctx, slog.LevelInfo, "request handled",
				slog.Int("int", 42),
				slog.String("user", "alice@example.com"),
				slog.String("method", "GET"),
				slog.String("path", "/api/v1/orders/12345"),
				slog.Duration("elapsed", 1234567*time.Nanosecond),
				slog.Int64("bytes", 1<<40),
				slog.Bool("cached", true),
				slog.Float64("ratio", 0.8125),
				slog.Time("at", benchTime),
				slog.Any("error", benchErr),
			)
		}
	}
	base := func() func() { return logWith(slog.NewJSONHandler(io.Discard, nil)) }
	sinkLog := func(b *testing.B) func(Table) func() {
		return func(tbl Table) func() { return logWith(clientSink(b, tbl).Handler(nil)) }
	}
	for _, rate := range []int{offeredRate, 0} {
		b.Run(rateName(rate), func(b *testing.B) {
			clientBench(b, "ClientHandler", "slog-json", 1.0, rate, base, sinkLog(b))
		})
	}
}

// rateName names a sub-benchmark by the load it offers.
func rateName(rate int) string {
	if rate == 0 {
		return "saturated"
	}
	return fmt.Sprintf("rate=%d", rate)
}

// BenchmarkClientThroughput: sustained records/s from the first record to
// Close returning, and process CPU (user+system, getrusage, the endpoint's
// share included) per record, one goroutine logging through Sink.Core
// with each client to the instant endpoint. Targets for tablelog.Client:
// >= 150,000 records/s and <= 5 µs CPU per record.
func BenchmarkClientThroughput(b *testing.B) {
	const n = 200_000
	cs := instantEndpoint(b)
	type result struct{ rps, cpu float64 }
	var res [2][]result // one per run (-count)
	for i, name := range []string{"tablelog.Client", "aztables.Client"} {
		b.Run(name, func(b *testing.B) {
			var wall, cpu time.Duration
			runs := 0
			for b.Loop() {
				tl, sdk := benchClients(b, cs)
				var tbl Table = tl
				if i == 1 {
					tbl = sdk
				}
				s, err := New(tbl, Options{Service: "bench", ErrorHandler: func(err error) { b.Errorf("sink: %v", err) }})
				if err != nil {
					b.Fatal(err)
				}
				l := zap.New(s.Core(zapcore.DebugLevel))
				c0, t0 := processCPU(), time.Now()
				for range n {
					l.Info("request handled", benchFields(42)...)
				}
				if err := s.Close(context.Background()); err != nil {
					b.Fatal(err)
				}
				wall += time.Since(t0)
				cpu += processCPU() - c0
				runs++
				if st := s.Stats(); st.Written != n {
					b.Fatalf("written %d of %d", st.Written, n)
				}
			}
			x := result{rps: float64(n*runs) / wall.Seconds(), cpu: float64(cpu.Microseconds()) / float64(n*runs)}
			res[i] = append(res[i], x)
			b.ReportMetric(x.rps, "records/s")
			b.ReportMetric(x.cpu, "cpu-µs/record")
		})
	}
	if len(res[0]) > 0 && len(res[1]) > 0 {
		// Medians over the runs, each figure on its own.
		med := func(rs []result, f func(result) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		rps := func(r result) float64 { return r.rps }
		cpu := func(r result) float64 { return r.cpu }
		tlR, tlC, sdkR, sdkC := med(res[0], rps), med(res[0], cpu), med(res[1], rps), med(res[1], cpu)
		fmt.Printf("ClientThroughput: tablelog.Client %.0f records/s (target >= 150000), %.2f µs CPU/record (target <= 5); aztables.Client %.0f records/s, %.2f µs CPU/record; %.2fx the records/s, %.2fx less CPU (medians of %d runs)\n",
			tlR, tlC, sdkR, sdkC, tlR/sdkR, sdkC/tlC, min(len(res[0]), len(res[1])))
	}
}

// processCPU returns the process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
