package reliability

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/sink"
)

// pacedProducer writes records 0..n-1 alternately through zap (even seq)
// and slog (odd seq), record i not before start + i*pace (it catches up at
// full speed when it fell behind, e.g. after being blocked). hook, if not
// nil, runs before record i is written. It returns the longest single write.
func pacedProducer(s *sink.Sink, n int, pace time.Duration, hook func(i int)) (longest time.Duration) {
	zl := zap.New(s.Core(zapcore.DebugLevel)).Named("rel")
	sl := slog.New(s.Handler(&slog.HandlerOptions{Level: slog.LevelDebug}))
	start := time.Now()
	for i := range n {
		if hook != nil {
			hook(i)
		}
		if d := time.Until(start.Add(time.Duration(i) * pace)); d > 0 {
			time.Sleep(d)
		}
		t0 := time.Now()
		if i%2 == 0 {
			writeZap(zl, i)
		} else {
			writeSlog(sl, i)
		}
		longest = max(longest, time.Since(t0))
	}
	return longest
}

// storedSeqs reads table name back and returns which seqs are stored;
// every record must be intact and stored at most once.
func storedSeqs(t *testing.T, ents []schema.Entity, n int) (present []bool, count int) {
	t.Helper()
	present = make([]bool, n)
	rks := map[string]bool{}
	for _, e := range ents {
		if rks[e.RowKey] {
			t.Fatalf("RowKey %s stored twice", e.RowKey)
		}
		rks[e.RowKey] = true
		seq, err := checkRecord(e)
		if err != nil {
			t.Fatalf("record %s/%s: %v", e.PartitionKey, e.RowKey, err)
		}
		if seq >= n || present[seq] {
			t.Fatalf("seq %d stored twice or out of range", seq)
		}
		present[seq] = true
		count++
	}
	return present, count
}

// Item 2: a 20 s full outage (every connection reset) in the middle of a
// stream of 12,000 records written at 500/s, then recovery. With Block
// nothing is lost (the producer is held back while the 1 MiB buffer is
// full); with DropNewest the drop counter equals exactly the number of
// records missing from the table, and every record the sink accepted is
// stored.
func TestOutageMidStream(t *testing.T) {
	t.Parallel()
	const (
		n        = 12_000
		pace     = 2 * time.Millisecond // 500 records/s
		outageAt = 1_000                // records written before the outage starts
		outage   = 20 * time.Second
		budget   = 1 << 20
	)
	for _, policy := range []sink.Overflow{sink.Block, sink.DropNewest} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			name, p, tbl := faultyTable(t)
			s, errs := newSink(t, tbl, fastRetry(sink.Options{Overflow: policy, BufferBytes: budget}))
			var outageStart time.Time
			var peak atomic.Int64       // buffered bytes high-water during the outage
			var firstWrite atomic.Int64 // ns after the outage's end of the first record stored after it
			stopWatch := make(chan struct{})
			watchDone := make(chan struct{})
			start := time.Now()
			longest := pacedProducer(s, n, pace, func(i int) {
				if i != outageAt {
					return
				}
				if err := s.Flush(ctxT(t, time.Minute)); err != nil { // the stream is flowing
					t.Errorf("Flush before the outage: %v", err)
				}
				outageStart = time.Now()
				p.Outage(outage)
				go func() {
					defer close(watchDone)
					end := outageStart.Add(outage)
					var writtenAtEnd uint64
					ended := false
					for {
						st := s.Stats()
						if now := time.Now(); !ended && now.After(end) {
							ended, writtenAtEnd = true, st.Written
						} else if ended && firstWrite.Load() == 0 && st.Written > writtenAtEnd {
							firstWrite.Store(int64(now.Sub(end)))
						}
						if int64(st.BufferedBytes) > peak.Load() {
							peak.Store(int64(st.BufferedBytes))
						}
						if st.BufferedBytes > budget {
							t.Errorf("buffered %d bytes, budget %d", st.BufferedBytes, budget)
						}
						if err := accounting(st); err != nil {
							t.Error(err)
						}
						select {
						case <-stopWatch:
							return
						case <-time.After(20 * time.Millisecond):
						}
					}
				}()
			})
			produced := time.Since(start)
			if err := s.Close(ctxT(t, 2*time.Minute)); err != nil {
				t.Fatalf("Close: %v", err)
			}
			closed := time.Since(start)
			close(stopWatch)
			<-watchDone
			st := s.Stats()
			ps := p.Stats()
			present, count := storedSeqs(t, decodeAll(t, readRaw(t, name, nil)), n)
			missing := n - count
			if err := accounting(st); err != nil {
				t.Error(err)
			}
			if st.Enqueued+st.Dropped != n || st.Written != st.Enqueued || st.FailedRecords != 0 || st.Rejected != 0 || uint64(count) != st.Written {
				t.Fatalf("stored %d of %d; stats %+v", count, n, st)
			}
			if uint64(missing) != st.Dropped {
				t.Fatalf("%d records missing, Dropped = %d", missing, st.Dropped)
			}
			for i := range outageAt {
				if !present[i] {
					t.Fatalf("record %d, written before the outage, is missing", i)
				}
			}
			switch policy {
			case sink.Block:
				if missing != 0 || longest < outage/2 {
					t.Fatalf("Block: %d missing, longest write %v (the producer was never held back?)", missing, longest)
				}
			case sink.DropNewest:
				if missing == 0 || longest > time.Second {
					t.Fatalf("DropNewest: nothing dropped, or a write waited %v", longest)
				}
			}
			t.Logf("item 2 (%s): %d records at 500/s, 20 s outage after %d; stored %d, dropped %d (= missing %d); longest write %v; buffer peak %s of %s; retries %d; outage resets %d; first record stored %v after the outage ended; producer done after %v, Close after %v; error reports %d",
				policy, n, outageAt, count, st.Dropped, missing, longest.Round(time.Millisecond), mib(uint64(peak.Load())), mib(budget),
				st.Retries, ps.Faults["outage"], time.Duration(firstWrite.Load()).Round(time.Millisecond), produced.Round(time.Millisecond), closed.Round(time.Millisecond), len(errs.all()))
		})
	}
}
