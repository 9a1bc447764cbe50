package reliability

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/sink"
)

// Item 7: 32 goroutines log through shared zap loggers made with With and
// shared slog handlers made with WithAttrs and WithGroup (and derive more
// of them as they go), while Flush, Sync, Stats and finally Close race with
// them, and the proxy injects transient faults. Under -race: no race, no
// panic; Enqueued == Written + FailedRecords + BufferedRecords in every
// Stats snapshot; Close returns nil; every record whose Write (or Handle)
// returned nil is stored, intact, and no record refused with ErrClosed is.
//
// Three rounds, each with a fresh sink, close after a quarter, a half and
// three quarters of the writes.
func TestConcurrentLoggersFlushClose(t *testing.T) {
	t.Parallel()
	for _, frac := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("close-after-%d-quarters", frac), func(t *testing.T) { concurrentRound(t, frac) })
	}
}

func concurrentRound(t *testing.T, quarters int) {
	const (
		goroutines = 32
		perG       = 400
		total      = goroutines * perG
	)
	name, p, tbl := faultyTable(t)
	p.SetFaults(azurite.Faults{Seed: int64(quarters), StatusRate: 0.05, ResetRate: 0.01, DropAfterCommitRate: 0.01, LatencyRate: 0.05, Latency: 20 * time.Millisecond})
	s, errs := newSink(t, tbl, fastRetry(sink.Options{BatchSize: 50, BufferBytes: 2 << 20, FlushInterval: 50 * time.Millisecond}))

	base := zap.New(s.Core(zapcore.DebugLevel))
	zapShared := []*zap.Logger{
		base.With(zap.String("shared", "z0")),
		base.With(zap.String("shared", "z1"), zap.Int("n", 1)).Named("named"),
		base.With(zap.Namespace("ns"), zap.String("shared", "z2")),
	}
	h := s.Handler(&slog.HandlerOptions{Level: slog.LevelDebug})
	slogShared := []slog.Handler{
		h.WithAttrs([]slog.Attr{slog.String("shared", "s0")}),
		h.WithGroup("grp").WithAttrs([]slog.Attr{slog.String("shared", "s1")}),
		h.WithAttrs([]slog.Attr{slog.String("shared", "s2")}).WithGroup("g2"),
	}

	// outcome[seq]: 0 not written, 1 Write returned nil, 2 ErrClosed.
	var outcome [total]atomic.Int32
	var writes, closedAt atomic.Int64
	closedAt.Store(-1)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				seq := g*perG + i
				var err error
				msg := fmt.Sprintf("rec %d", seq)
				if seq%2 == 0 {
					l := zapShared[seq%len(zapShared)]
					if i%50 == 0 { // derive a logger from a shared one, concurrently
						l = l.With(zap.Int("derived", i))
					}
					err = l.Core().Write(zapcore.Entry{Level: zapcore.InfoLevel, Time: time.Now(), Message: msg, LoggerName: l.Name()},
						[]zapcore.Field{zap.Int("seq", seq), zap.Int("g", g)})
				} else {
					hh := slogShared[seq%len(slogShared)]
					if i%50 == 1 {
						hh = hh.WithAttrs([]slog.Attr{slog.Int("derived", i)}).WithGroup("d")
					}
					r := slog.NewRecord(time.Now(), slog.LevelInfo, msg, 0)
					r.AddAttrs(slog.Int("seq", seq), slog.Int("g", g))
					err = hh.Handle(context.Background(), r)
				}
				switch {
				case err == nil:
					outcome[seq].Store(1)
				case errors.Is(err, sink.ErrClosed):
					outcome[seq].Store(2)
				default:
					t.Errorf("write %d: %v", seq, err)
				}
				writes.Add(1)
			}
		})
	}

	// Flushers, a syncer and a Stats checker race with the writers.
	stop := make(chan struct{})
	var bg sync.WaitGroup
	var flushes, snapshots atomic.Int64
	for range 2 {
		bg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				err := s.Flush(ctx)
				cancel()
				var de *sink.DeliveryError
				if err != nil && !(errors.As(err, &de) && de.Failed == 0 && errors.Is(err, context.DeadlineExceeded)) {
					t.Errorf("Flush: %v", err)
				}
				flushes.Add(1)
			}
		})
	}
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			if err := zapShared[1].Sync(); err != nil {
				var de *sink.DeliveryError
				if !errors.As(err, &de) || de.Failed != 0 {
					t.Errorf("Sync: %v", err)
				}
			}
		}
	})
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := accounting(s.Stats()); err != nil {
				t.Error(err)
			}
			snapshots.Add(1)
			time.Sleep(time.Millisecond)
		}
	})

	// Close when the given share of the records is written; writers go on.
	start := time.Now()
	for writes.Load() < int64(total*quarters/4) {
		time.Sleep(time.Millisecond)
	}
	closedAt.Store(writes.Load())
	if err := s.Close(ctxT(t, 2*time.Minute)); err != nil {
		t.Errorf("Close: %v", err)
	}
	closeDur := time.Since(start)
	wg.Wait()
	close(stop)
	bg.Wait()
	ps := p.Stats()
	p.Reset()

	st := s.Stats()
	var ok, refused int
	for i := range outcome {
		switch outcome[i].Load() {
		case 1:
			ok++
		case 2:
			refused++
		}
	}
	if err := accounting(st); err != nil {
		t.Error(err)
	}
	if st.Enqueued != uint64(ok) || st.Rejected != uint64(refused) || ok+refused != total ||
		st.Written != st.Enqueued || st.FailedRecords != 0 || st.BufferedRecords != 0 || refused == 0 {
		t.Fatalf("%d writes returned nil, %d ErrClosed; stats %+v", ok, refused, st)
	}

	stored := map[int]bool{}
	for _, e := range decodeAll(t, readRaw(t, name, nil)) {
		seq64, _ := findInt(e.Fields, "seq")
		seq := int(seq64)
		if e.Msg != fmt.Sprintf("rec %d", seq) || seq < 0 || seq >= total || stored[seq] {
			t.Fatalf("bad or duplicate record %q: %v", e.Msg, e.Fields)
		}
		if g, _ := findInt(e.Fields, "g"); int(g) != seq/perG {
			t.Errorf("record %d: g = %v", seq, g)
		}
		if shared, _ := findString(e.Fields, "shared"); shared == "" {
			t.Errorf("record %d lost its shared With fields: %v", seq, e.Fields)
		}
		stored[seq] = true
	}
	for seq := range total {
		switch o := outcome[seq].Load(); {
		case o == 1 && !stored[seq]:
			t.Errorf("record %d: Write returned nil, not stored", seq)
		case o == 2 && stored[seq]:
			t.Errorf("record %d: refused with ErrClosed, yet stored", seq)
		}
	}
	t.Logf("item 7: %d goroutines, %d writes: %d accepted and stored, %d refused after Close (Close at write %d, returned after %v); %d Flush calls, %d Stats snapshots, accounting held; retries %d; faults %v; error reports %d",
		goroutines, total, ok, refused, closedAt.Load(), closeDur.Round(time.Millisecond), flushes.Load(), snapshots.Load(), st.Retries, ps.Faults, len(errs.all()))
}

// findInt finds the integer field key anywhere in the nested fields (the
// shared loggers put the record's fields under groups).
func findInt(m map[string]any, key string) (int64, bool) {
	if v, ok := m[key].(int64); ok {
		return v, true
	}
	for _, v := range m {
		if sub, ok := v.(map[string]any); ok {
			if x, ok := findInt(sub, key); ok {
				return x, true
			}
		}
	}
	return 0, false
}

func findString(m map[string]any, key string) (string, bool) {
	if v, ok := m[key].(string); ok {
		return v, true
	}
	for _, v := range m {
		if sub, ok := v.(map[string]any); ok {
			if x, ok := findString(sub, key); ok {
				return x, true
			}
		}
	}
	return "", false
}
