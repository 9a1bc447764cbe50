package sink

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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

// BenchmarkClientCore: the logging goroutine's cost through Sink.Core with
// a real client to the instant endpoint, vs zap's JSON core to io.Discard
// (target tablelog <= 1.25x), and the same with an *aztables.Client.
func BenchmarkClientCore(b *testing.B) {
	cs := instantEndpoint(b)
	var res [3][]benchResult
	run := func(b *testing.B, core zapcore.Core, r *[]benchResult) {
		l := zap.New(core)
		b.ReportAllocs()
		m := startMeasure()
		for b.Loop() {
			l.Info("request handled", benchFields(42)...)
		}
		m.stop(b, r)
	}
	b.Run("zap-json", func(b *testing.B) {
		enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
		run(b, zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zapcore.DebugLevel), &res[0])
	})
	b.Run("tablelog.Client", func(b *testing.B) {
		tl, _ := benchClients(b, cs)
		run(b, clientSink(b, tl).Core(zapcore.DebugLevel), &res[1])
	})
	b.Run("aztables.Client", func(b *testing.B) {
		_, sdk := benchClients(b, cs)
		run(b, clientSink(b, sdk).Core(zapcore.DebugLevel), &res[2])
	})
	compare("ClientCore (tablelog.Client)", "zap-json", [2][]benchResult{res[0], res[1]}, 1.25)
	compare("ClientCore (aztables.Client)", "zap-json", [2][]benchResult{res[0], res[2]}, 1.25)
}

// BenchmarkClientHandler: as BenchmarkClientCore for Sink.Handler vs
// slog's JSONHandler to io.Discard (target tablelog <= 1.0x).
func BenchmarkClientHandler(b *testing.B) {
	cs := instantEndpoint(b)
	var res [3][]benchResult
	run := func(b *testing.B, h slog.Handler, r *[]benchResult) {
		l := slog.New(h)
		ctx := context.Background()
		b.ReportAllocs()
		m := startMeasure()
		for b.Loop() {
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
		m.stop(b, r)
	}
	b.Run("slog-json", func(b *testing.B) {
		run(b, slog.NewJSONHandler(io.Discard, nil), &res[0])
	})
	b.Run("tablelog.Client", func(b *testing.B) {
		tl, _ := benchClients(b, cs)
		run(b, clientSink(b, tl).Handler(nil), &res[1])
	})
	b.Run("aztables.Client", func(b *testing.B) {
		_, sdk := benchClients(b, cs)
		run(b, clientSink(b, sdk).Handler(nil), &res[2])
	})
	compare("ClientHandler (tablelog.Client)", "slog-json", [2][]benchResult{res[0], res[1]}, 1.0)
	compare("ClientHandler (aztables.Client)", "slog-json", [2][]benchResult{res[0], res[2]}, 1.0)
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
	var res [2]result
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
			res[i] = result{rps: float64(n*runs) / wall.Seconds(), cpu: float64(cpu.Microseconds()) / float64(n*runs)}
			b.ReportMetric(res[i].rps, "records/s")
			b.ReportMetric(res[i].cpu, "cpu-µs/record")
		})
	}
	if res[0].rps > 0 && res[1].rps > 0 {
		fmt.Printf("ClientThroughput: tablelog.Client %.0f records/s (target >= 150000), %.2f µs CPU/record (target <= 5); aztables.Client %.0f records/s, %.2f µs CPU/record; %.2fx the records/s, %.2fx less CPU\n",
			res[0].rps, res[0].cpu, res[1].rps, res[1].cpu, res[0].rps/res[1].rps, res[1].cpu/res[0].cpu)
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
