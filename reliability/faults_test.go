package reliability

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/sink"
)

// Item 1: 100,000 records through the sink (half zap, half slog, from four
// goroutines) while the proxy injects 10% 503, 2% 429 with Retry-After, 1%
// connection resets, 1% responses dropped after Azurite committed the
// write, and 50 ms latency spikes. Exactly 100,000 distinct records must be
// read back (distinct RowKeys and distinct seq fields 0..99,999), each with
// its content intact.
func TestHundredThousandUnderFaults(t *testing.T) {
	t.Parallel()
	const (
		n         = 100_000
		producers = 4 // even: zap, slog, zap, slog
	)
	// An Azurite of its own: the test's 100,000 records do not queue
	// behind the other tests' requests in the shared (single-threaded)
	// emulator, nor theirs behind these.
	srv := azurite.StartServer(t, azurite.ServerOptions{})
	name := azurite.NewTableName()
	if _, err := srv.Table(t, name).CreateTable(ctxT(t, time.Minute), nil); err != nil {
		t.Fatal(err)
	}
	p := srv.NewProxy(t)
	s, errs := newSink(t, p.Table(t, name, noRetry), fastRetry(sink.Options{}))
	p.SetFaults(azurite.Faults{
		Seed:                1,
		StatusRate:          0.10, // 503 ServerBusy
		ThrottleRate:        0.02, // 429 with Retry-After: 1
		RetryAfter:          time.Second,
		ResetRate:           0.01,
		DropAfterCommitRate: 0.01, // stored, but the client sees a reset
		LatencyRate:         0.05,
		Latency:             50 * time.Millisecond,
	})

	start := time.Now()
	zl := zap.New(s.Core(zapcore.DebugLevel)).Named("rel")
	sl := slog.New(s.Handler(&slog.HandlerOptions{Level: slog.LevelDebug}))
	var wg sync.WaitGroup
	for g := range producers {
		wg.Go(func() {
			for seq := g; seq < n; seq += producers {
				if g%2 == 0 {
					writeZap(zl, seq)
				} else {
					writeSlog(sl, seq)
				}
			}
		})
	}
	wg.Wait()
	produced := time.Since(start)
	if err := s.Close(ctxT(t, 3*time.Minute)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	stored := time.Since(start)
	ps := p.Stats()
	p.Reset()
	st := s.Stats()
	if err := accounting(st); err != nil {
		t.Error(err)
	}
	if st.Enqueued != n || st.Written != n || st.FailedRecords != 0 || st.Dropped != 0 || st.Rejected != 0 || st.Replaced != 0 {
		t.Errorf("sink stats %+v", st)
	}
	for _, k := range []string{azurite.FaultStatus, azurite.FaultThrottle, azurite.FaultReset, azurite.FaultDropAfterCommit, azurite.FaultLatency} {
		if ps.Faults[k] == 0 {
			t.Errorf("no %s fault was injected: %v", k, ps.Faults)
		}
	}
	if len(ps.Rejected) != 0 {
		t.Errorf("the strict proxy rejected requests: %v", ps.Rejected)
	}

	// Read back: pages are fetched on one goroutine and decoded and checked
	// on this one, so that the two overlap.
	readStart := time.Now()
	pages := make(chan [][]byte, 8)
	var listErr error
	direct := srv.Table(t, name)
	ctx := ctxT(t, 5*time.Minute)
	go func() {
		defer close(pages)
		pager := direct.NewListEntitiesPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				listErr = err
				return
			}
			pages <- page.Entities
		}
	}()
	var ents []schema.Entity
	for page := range pages {
		ents = append(ents, decodeAll(t, page)...)
	}
	if listErr != nil {
		t.Fatalf("listing entities: %v", listErr)
	}
	rks := make(map[string]bool, n)
	seqs := make([]bool, n)
	bad := 0
	for _, e := range ents {
		if rks[e.RowKey] {
			t.Errorf("RowKey %s stored twice", e.RowKey)
		}
		rks[e.RowKey] = true
		seq, err := checkRecord(e)
		if err != nil {
			if bad++; bad <= 10 {
				t.Errorf("record %s/%s: %v", e.PartitionKey, e.RowKey, err)
			}
			continue
		}
		if seqs[seq] {
			t.Errorf("seq %d stored twice", seq)
		}
		seqs[seq] = true
	}
	missing := 0
	for _, ok := range seqs {
		if !ok {
			missing++
		}
	}
	readDur := time.Since(readStart)
	if len(ents) != n || len(rks) != n || missing != 0 || bad != 0 {
		t.Fatalf("read back %d records, %d distinct RowKeys, %d of %d seqs missing, %d damaged", len(ents), len(rks), missing, n, bad)
	}
	t.Logf("item 1: %d records (zap+slog) stored exactly once under faults in %v (%s end to end; producers done after %v, %s); read back and checked in %v",
		n, stored.Round(time.Millisecond), rate(n, stored), produced.Round(time.Millisecond), rate(n, produced), readDur.Round(time.Millisecond))
	t.Logf("item 1: sink retries %d, failed batches %d; proxy requests %d (batches %d, forwarded %d), faults %v; error reports %d",
		st.Retries, st.FailedBatches, ps.Requests, ps.Batches, ps.Forwarded, ps.Faults, len(errs.all()))
}

// payload is seq's deterministic text field: ASCII, Latin-1, BMP and an
// astral character, a length varying with seq, and the characters JSON and
// OData escape.
func payload(seq int) string {
	return fmt.Sprintf("p%06d ünï€😀 <&>\"\\ \t", seq) + strings.Repeat("x", seq%97)
}

func writeZap(l *zap.Logger, seq int) {
	l.Info(fmt.Sprintf("rec %d", seq),
		zap.Int("seq", seq),
		zap.String("api", "zap"),
		zap.String("payload", payload(seq)),
		zap.Float64("f", float64(seq)/7),
		zap.Bool("odd", seq%2 == 1),
		zap.Time("at", time.Unix(int64(seq), 0)),
		zap.Namespace("g"),
		zap.Int("inner", -seq),
	)
}

func writeSlog(l *slog.Logger, seq int) {
	l.Info(fmt.Sprintf("rec %d", seq),
		"seq", seq,
		"api", "slog",
		"payload", payload(seq),
		"f", float64(seq)/7,
		"odd", seq%2 == 1,
		"at", time.Unix(int64(seq), 0),
		slog.Group("g", "inner", -seq),
	)
}

// checkRecord checks that e is record seq as writeZap or writeSlog wrote
// it, and returns seq.
func checkRecord(e schema.Entity) (int, error) {
	seq64, ok := e.Fields["seq"].(int64)
	if !ok {
		return 0, fmt.Errorf("no seq: %v", e.Fields)
	}
	seq := int(seq64)
	if seq < 0 || seq >= 100_000 {
		return 0, fmt.Errorf("seq %d out of range", seq)
	}
	api := "slog"
	logger := ""
	if seq%2 == 0 {
		api, logger = "zap", "rel"
	}
	g, _ := e.Fields["g"].(map[string]any)
	switch {
	case e.Msg != fmt.Sprintf("rec %d", seq):
		return 0, fmt.Errorf("seq %d: Msg %q", seq, e.Msg)
	case e.Level != "info" || e.Severity != 0 || e.Logger != logger || e.Time.IsZero() || e.Truncated != 0:
		return 0, fmt.Errorf("seq %d: Level %q Severity %d Logger %q Time %v Truncated %d", seq, e.Level, e.Severity, e.Logger, e.Time, e.Truncated)
	case e.Fields["api"] != api:
		return 0, fmt.Errorf("seq %d: api %v", seq, e.Fields["api"])
	case e.Fields["payload"] != payload(seq):
		return 0, fmt.Errorf("seq %d: payload %q", seq, e.Fields["payload"])
	case e.Fields["odd"] != (seq%2 == 1):
		return 0, fmt.Errorf("seq %d: odd %v", seq, e.Fields["odd"])
	case g == nil || g["inner"] != int64(-seq):
		return 0, fmt.Errorf("seq %d: g %v", seq, e.Fields["g"])
	case len(e.Fields) != 7:
		return 0, fmt.Errorf("seq %d: fields %v", seq, e.Fields)
	}
	if f, ok := e.Fields["f"].(float64); !ok || f != float64(seq)/7 {
		return 0, fmt.Errorf("seq %d: f %v (%T)", seq, e.Fields["f"], e.Fields["f"])
	}
	if at, ok := e.Fields["at"].(time.Time); !ok || !at.Equal(time.Unix(int64(seq), 0)) {
		return 0, fmt.Errorf("seq %d: at %v", seq, e.Fields["at"])
	}
	return seq, nil
}
