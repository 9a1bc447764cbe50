package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// nopTable accepts everything at once: the benchmarks of Core and Handler
// measure the logging goroutine's work (encode and enqueue), not the
// network. As fast as the loop goes, the dispatcher does not keep up with
// encoding the deferred records (deferred.go), so past 4 MiB of them the
// logging goroutine encodes the next ones itself: BenchmarkCore and
// BenchmarkHandler measure a mix of the two, close to encoding on the
// logging goroutine; the paced load of BenchmarkClientCore and
// BenchmarkClientHandler shows deferral.
type nopTable struct{}

func (nopTable) SubmitTransaction(context.Context, []aztables.TransactionAction, *aztables.SubmitTransactionOptions) (aztables.TransactionResponse, error) {
	return aztables.TransactionResponse{}, nil
}
func (nopTable) AddEntity(context.Context, []byte, *aztables.AddEntityOptions) (aztables.AddEntityResponse, error) {
	return aztables.AddEntityResponse{}, nil
}
func (nopTable) CreateTable(context.Context, *aztables.CreateTableOptions) (aztables.CreateTableResponse, error) {
	return aztables.CreateTableResponse{}, nil
}

var (
	benchErr  = errors.New("connection refused")
	benchTime = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
)

// benchSink is a Sink on nopTable that never blocks the benchmark.
func benchSink(b *testing.B) *Sink {
	s, err := New(nopTable{}, Options{Service: "bench", BufferBytes: 256 << 20, ErrorHandler: func(error) {}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// BenchmarkCore compares Sink.Core with zap's JSON core writing to
// io.Discard, for a message with 10 fields.
func BenchmarkCore(b *testing.B) {
	var res [2][]benchResult
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
	b.Run("tablelog", func(b *testing.B) {
		run(b, benchSink(b).Core(zapcore.DebugLevel), &res[1])
	})
	compare("Core", "zap-json", res, 1.25)
}

// BenchmarkHandler compares Sink.Handler with slog.NewJSONHandler writing
// to io.Discard, for a message with 10 attributes.
func BenchmarkHandler(b *testing.B) {
	var res [2][]benchResult
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
	b.Run("tablelog", func(b *testing.B) {
		run(b, benchSink(b).Handler(nil), &res[1])
	})
	compare("Handler", "slog-json", res, 1.0)
}

// benchResult is one run of a sub-benchmark (b.Loop runs the function once
// per -count), for the comparison line.
type benchResult struct{ ns, allocs float64 }

type measure struct{ m runtime.MemStats }

func startMeasure() *measure {
	m := &measure{}
	runtime.ReadMemStats(&m.m)
	return m
}

func (m *measure) stop(b *testing.B, r *[]benchResult) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	*r = append(*r, benchResult{
		ns:     float64(b.Elapsed().Nanoseconds()) / float64(b.N),
		allocs: float64(after.Mallocs-m.m.Mallocs) / float64(b.N),
	})
}

// median returns the median ns/op and allocs/op of rs.
func median(rs []benchResult) benchResult {
	ns := make([]float64, len(rs))
	allocs := make([]float64, len(rs))
	for i, r := range rs {
		ns[i], allocs[i] = r.ns, r.allocs
	}
	slices.Sort(ns)
	slices.Sort(allocs)
	return benchResult{ns: ns[len(ns)/2], allocs: allocs[len(allocs)/2]}
}

// compare prints tablelog's median result (res[1]) against the baseline's
// (res[0]), from the same run: with -count N, the median of N runs each.
func compare(name, baseline string, res [2][]benchResult, target float64) {
	if len(res[0]) == 0 || len(res[1]) == 0 {
		return
	}
	base, ours := median(res[0]), median(res[1])
	fmt.Printf("%s: tablelog %.0f ns/op = %.2fx %s (%.0f ns/op, target <= %.2fx); %.1f allocs/op vs %.1f (medians of %d runs)\n",
		name, ours.ns, ours.ns/base.ns, baseline, base.ns, target, ours.allocs, base.allocs, min(len(res[0]), len(res[1])))
}
