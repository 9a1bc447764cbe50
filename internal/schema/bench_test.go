package schema

import (
	"errors"
	"testing"
	"time"
)

// BenchmarkEncoder encodes the sink benchmark's record: a message and ten
// fields (int, three strings, duration, int64, bool, float64, time, error).
func BenchmarkEncoder(b *testing.B) {
	var e Encoder
	g := NewGenerator(nil)
	now := time.Now()
	err := errors.New("connection reset by peer")
	var rk [RowKeyLen]byte
	b.ReportAllocs()
	for b.Loop() {
		id := g.New(now)
		e.Reset("checkout_20261125", string(AppendRowKey(rk[:0], id)))
		e.SetTime(now)
		e.SetLevel("info", SeverityInfo)
		e.SetMessage("request served")
		e.Int64("status", 200)
		e.String("method", "POST")
		e.String("path", "/api/v1/orders")
		e.String("user_id", "u-1042")
		e.Duration("took", 12*time.Millisecond)
		e.Int64("bytes", 5120)
		e.Bool("cached", false)
		e.Float64("ratio", 0.75)
		e.Time("started", now)
		e.String("error", err.Error())
		_ = e.Finish()
	}
}

func BenchmarkGenerator(b *testing.B) {
	g := NewGenerator(nil)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_ = g.New(now)
	}
}
