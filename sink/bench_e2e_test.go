package sink

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// BenchmarkEndToEnd stores records in Azurite (directly, not through the
// strict proxy, so the proxy's CPU does not weigh on either side) five
// ways and prints records/s and the ratios:
//
//   - sink:        100,000 zap records with 10 fields through Sink.Core on a
//     tablelog.Client, then Close;
//   - sink-spool:  the same with Options.SpoolDir (interval fsync, the default);
//   - sink-spool-every-record: the same with SpoolSyncEveryRecord, fewer
//     records (TABLELOG_BENCH_SYNC, default 3,000; records/s scales);
//   - submit-loop: the same number of pre-encoded entities of the same shape
//     sent by a hand-written loop of 100-entity SubmitTransaction calls of
//     an *aztables.Client (the baseline: what an application got before);
//   - add-entity:  one AddEntity per pre-encoded entity (fewer records,
//     TABLELOG_BENCH_ADD, default 2,000; records/s scales).
//
// TABLELOG_BENCH_RECORDS overrides the 100,000. The spool directory is
// TABLELOG_BENCH_SPOOL_DIR if set (to measure a given disk), else under
// the temporary directory.
func BenchmarkEndToEnd(b *testing.B) {
	n := envInt("TABLELOG_BENCH_RECORDS", 100_000)
	nAdd := envInt("TABLELOG_BENCH_ADD", 2_000)
	nSync := envInt("TABLELOG_BENCH_SYNC", 3_000)
	env := azurite.Get(b)
	direct := func(b *testing.B) *aztables.Client {
		return env.DirectTable(b, azurite.TableName(env.NewTable(b)))
	}
	spoolDir := func(b *testing.B) string {
		if d := os.Getenv("TABLELOG_BENCH_SPOOL_DIR"); d != "" {
			d, err := os.MkdirTemp(d, "spool")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
		return b.TempDir()
	}
	rate := map[string]float64{}
	// Warm the emulator up first (untimed): Node.js compiles its hot paths
	// as they run, so without this the first variant measured (the sink)
	// runs on a cold emulator and the last (add-entity) on a warm one.
	warm := direct(b)
	fill(b, warm, 20_000)
	for _, e := range benchEntities(1_000) {
		if _, err := warm.AddEntity(context.Background(), e, nil); err != nil {
			b.Fatal(err)
		}
	}

	runSink := func(name string, n int, o Options) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				tbl := direct(b)
				o := o
				o.Service = "bench"
				o.ErrorHandler = func(err error) { b.Error(err) }
				if o.SpoolDir != "" {
					o.SpoolDir = spoolDir(b)
				}
				s, err := New(azurite.Tablelog(b, tbl), o)
				if err != nil {
					b.Fatal(err)
				}
				l := zap.New(s.Core(zapcore.InfoLevel))
				start := time.Now()
				for i := range n {
					l.Info("request handled", benchFields(i)...)
				}
				if err := s.Close(context.Background()); err != nil {
					b.Fatal(err)
				}
				el := time.Since(start)
				if st := s.Stats(); st.Written != uint64(n) || (o.SpoolDir != "" && (st.SpooledRecords != uint64(n) || st.SpoolBytes != 0)) {
					b.Fatalf("stats %+v", st)
				}
				rate[name] = float64(n) / el.Seconds()
			}
			b.ReportMetric(rate[name], "records/s")
		})
	}
	runSink("sink", n, Options{})
	runSink("sink-spool", n, Options{SpoolDir: "yes"})
	runSink("sink-spool-every-record", nSync, Options{SpoolDir: "yes", SpoolSync: SpoolSyncEveryRecord})

	b.Run("submit-loop", func(b *testing.B) {
		for b.Loop() {
			tbl := direct(b)
			b.StopTimer()
			entities := benchEntities(n)
			b.StartTimer()
			start := time.Now()
			submitAll(b, tbl, entities)
			rate["submit-loop"] = float64(n) / time.Since(start).Seconds()
		}
		b.ReportMetric(rate["submit-loop"], "records/s")
	})

	b.Run("add-entity", func(b *testing.B) {
		for b.Loop() {
			tbl := direct(b)
			b.StopTimer()
			entities := benchEntities(nAdd)
			b.StartTimer()
			ctx := context.Background()
			start := time.Now()
			for _, e := range entities {
				if _, err := tbl.AddEntity(ctx, e, nil); err != nil {
					b.Fatal(err)
				}
			}
			rate["add-entity"] = float64(nAdd) / time.Since(start).Seconds()
		}
		b.ReportMetric(rate["add-entity"], "records/s")
	})

	if rate["sink"] > 0 && rate["submit-loop"] > 0 && rate["add-entity"] > 0 {
		fmt.Printf("EndToEnd: sink %.0f records/s = %.2fx submit-loop (%.0f/s, target >= 0.9x), %.1fx add-entity (%.0f/s, target >= 8x; submit-loop itself is %.1fx)\n",
			rate["sink"], rate["sink"]/rate["submit-loop"], rate["submit-loop"],
			rate["sink"]/rate["add-entity"], rate["add-entity"], rate["submit-loop"]/rate["add-entity"])
	}
	if rate["sink"] > 0 && rate["sink-spool"] > 0 {
		fmt.Printf("EndToEnd: sink with spool (interval fsync) %.0f records/s = %.2fx without (target >= 0.7x); every-record fsync %.0f records/s = %.2fx\n",
			rate["sink-spool"], rate["sink-spool"]/rate["sink"], rate["sink-spool-every-record"], rate["sink-spool-every-record"]/rate["sink"])
	}
}

func benchFields(i int) []zap.Field {
	return []zap.Field{
		zap.Int("int", i),
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

// benchEntities encodes n entities exactly as the sink's core would.
func benchEntities(n int) [][]byte {
	gen := schema.NewGenerator(nil)
	st := &encState{}
	st.fields.st = st
	enc := &st.enc
	out := make([][]byte, n)
	now := time.Now()
	pk := schema.PartitionKey("bench", now)
	for i := range out {
		enc.Reset(pk, schema.RowKey(gen.New(now)))
		enc.SetTime(now)
		enc.SetLevel("info", 0)
		enc.SetMessage("request handled")
		for _, f := range benchFields(i) {
			f.AddTo(&st.fields)
		}
		out[i] = append([]byte(nil), enc.Finish()...)
	}
	return out
}

// submitAll stores entities in 100-entity transactions, one after another:
// the hand-written loop.
func submitAll(b *testing.B, tbl *aztables.Client, entities [][]byte) {
	actions := make([]aztables.TransactionAction, 0, 100)
	for i := 0; i < len(entities); i += 100 {
		actions = actions[:0]
		for _, e := range entities[i:min(i+100, len(entities))] {
			actions = append(actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: e})
		}
		if _, err := tbl.SubmitTransaction(context.Background(), actions, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// fill stores n entities in tbl.
func fill(b *testing.B, tbl *aztables.Client, n int) { submitAll(b, tbl, benchEntities(n)) }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
