package query

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/sink"
)

// End to end with the real writer: what the sink stores (records, groups,
// zap names, the catalog), query reads back; Follow sees its flushes.
func TestEndToEndWithSink(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	s, err := sink.New(tbl, sink.Options{Service: "e2e", FlushInterval: 50 * time.Millisecond, ErrorHandler: func(err error) { t.Errorf("sink: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	sl := slog.New(s.Handler(&slog.HandlerOptions{Level: slog.LevelDebug}))
	zl := zap.New(s.Core(zapcore.DebugLevel)).Named("worker")

	sl.Debug("slog debug", "user_id", "u-1")
	sl.Info("slog info", "user_id", "u-2", slog.Group("req", "method", "POST", "status", 201))
	zl.Warn("zap warn", zap.String("user_id", "u-1"), zap.Int("attempt", 3))
	zl.Error("zap error", zap.Namespace("db"), zap.String("table", "orders"))
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	r := New(twin(t, tbl))
	recs := collect(t, r.Logs(t.Context(), Logs{Service: "e2e", MinLevel: AllLevels}))
	var msgs []string
	for _, rec := range recs {
		msgs = append(msgs, rec.Message)
	}
	if want := []string{"zap error", "zap warn", "slog info", "slog debug"}; !slices.Equal(msgs, want) {
		t.Fatalf("messages %q, want %q", msgs, want)
	}
	if recs[0].Logger != "worker" || recs[0].Severity != schema.SeverityError || !equalFields(recs[0].Fields, map[string]any{"db": map[string]any{"table": "orders"}}) {
		t.Errorf("zap error record: %+v", recs[0])
	}
	if !equalFields(recs[2].Fields, map[string]any{"user_id": "u-2", "req": map[string]any{"method": "POST", "status": int64(201)}}) {
		t.Errorf("slog info fields: %#v", recs[2].Fields)
	}
	// Server-side filters on what the sink wrote.
	for _, c := range []struct {
		w    Filter
		want []string
	}{
		{Eq("user_id", "u-1"), []string{"zap warn", "slog debug"}},
		{Eq(Field("req", "status"), 201), []string{"slog info"}},
		{Eq(Field("db", "table"), "orders"), []string{"zap error"}},
		{And(Eq("attempt", 3), Eq(ColLogger, "worker")), []string{"zap warn"}},
	} {
		var got []string
		for _, rec := range collect(t, r.Logs(t.Context(), Logs{Service: "e2e", MinLevel: AllLevels, Where: c.w})) {
			got = append(got, rec.Message)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.w, got, c.want)
		}
	}
	if got, err := r.Tail(t.Context(), Logs{Service: "e2e"}, 2); err != nil || len(got) != 2 || got[1].Message != "zap error" {
		t.Errorf("tail: %v %v", got, err)
	}
	services, err := r.Services(t.Context())
	if err != nil || !slices.Equal(services, []string{"e2e"}) {
		t.Errorf("services from the sink's catalog: %q %v", services, err)
	}
	days, err := r.Days(t.Context(), "e2e")
	if err != nil || len(days) != 1 || !days[0].Equal(schema.Day(time.Now())) {
		t.Errorf("days: %v %v", days, err)
	}

	// Follow picks up what the sink flushes afterwards.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	var followed []string
	done := make(chan struct{})
	first := true
	ready := make(chan struct{})
	r.afterPoll = func() {
		if first {
			first = false
			close(ready)
		}
	}
	go func() {
		defer close(done)
		for rec, err := range r.Follow(ctx, Logs{Service: "e2e"}, FollowOptions{Poll: 50 * time.Millisecond}) {
			if err != nil {
				return
			}
			mu.Lock()
			followed = append(followed, rec.Message)
			mu.Unlock()
		}
	}()
	<-ready
	for i := range 20 {
		sl.Info("live", "i", i)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(followed)
		mu.Unlock()
		if n >= 20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if len(followed) != 20 {
		t.Fatalf("followed %d records, want 20: %q", len(followed), followed)
	}
}
