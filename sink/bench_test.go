package sink

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// nopTable accepts everything at once: the benchmarks of Core and Handler
// measure the logging goroutine's work (encode and enqueue), not the
// network.
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

func zapFields() []zap.Field {
	return []zap.Field{
		zap.Int("int", 42),
		zap.String("user", "alice@example.com"),
		zap.String("method", "GET"),
		zap.String("path", "/api/v1/orders/12345"),
		zap.Duration("elapsed", 1234567*time.Nanosecond),
		zap.Int64("bytes", 1<<40),
		zap.Bool("cached", true),
		zap.Float64("ratio", 0.8125),
		zap.Time("at", benchTime),
		zap.Error(benchErr),
	}
}

func slogAttrs() []slog.Attr {
	return []slog.Attr{
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
	}
}

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
	run := func(b *testing.B, core zapcore.Core) {
		l := zap.New(core)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			l.Info("request handled",
				zap.Int("int", 42),
				zap.String("user", "alice@example.com"),
				zap.String("method", "GET"),
				zap.String("path", "/api/v1/orders/12345"),
				zap.Duration("elapsed", 1234567*time.Nanosecond),
				zap.Int64("bytes", 1<<40),
				zap.Bool("cached", true),
				zap.Float64("ratio", 0.8125),
				zap.Time("at", benchTime),
				zap.Error(benchErr),
			)
		}
	}
	b.Run("zap-json", func(b *testing.B) {
		enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
		run(b, zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zapcore.DebugLevel))
	})
	b.Run("tablelog", func(b *testing.B) {
		run(b, benchSink(b).Core(zapcore.DebugLevel))
	})
}

// BenchmarkHandler compares Sink.Handler with slog.NewJSONHandler writing
// to io.Discard, for a message with 10 attributes.
func BenchmarkHandler(b *testing.B) {
	run := func(b *testing.B, h slog.Handler) {
		l := slog.New(h)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
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
	}
	b.Run("slog-json", func(b *testing.B) {
		run(b, slog.NewJSONHandler(io.Discard, nil))
	})
	b.Run("tablelog", func(b *testing.B) {
		run(b, benchSink(b).Handler(nil))
	})
}
