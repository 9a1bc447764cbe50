package reliability

import (
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/query"
	"github.com/tablelog/tablelog/sink"
)

// TestShardsUnderFaults: the faults of TestHundredThousandUnderFaults with
// sharding on. Two writer processes of one service (two Sinks, each with
// its own RowKey generator and an add-only credential, one logging through
// zap and one through slog) offer more than a partition takes, so both
// spread the day over shards, while the proxy also answers 503s and 429s,
// resets connections and drops responses after Azurite committed the
// write. A retried transaction must go to the partition it was first sent
// to (a retry into another shard would store its records twice); every
// record must be read back through query.Logs exactly once, newest first,
// with its content intact.
func TestShardsUnderFaults(t *testing.T) {
	t.Parallel()
	const n = 12_000 // seqs 0..n-1: the zap writer the even ones, the slog writer the odd
	env := azurite.Get(t)
	if env.Real {
		t.Fatalf("this test needs the local Azurite and strict proxy; unset %s to run it", azurite.EnvConnectionString)
	}
	srv := azurite.StartServer(t, azurite.ServerOptions{})
	name := azurite.NewTableName()
	if _, err := srv.Table(t, name).CreateTable(ctxT(t, time.Minute), nil); err != nil {
		t.Fatal(err)
	}
	p := srv.NewProxy(t)
	// 400 entities/s per partition: one partition would need 30 s for
	// these records, so the writers must shard to finish in time.
	p.SetTargets(&azurite.Targets{PartitionRate: 400, AccountRate: -1})
	p.SetFaults(azurite.Faults{
		Seed:                7,
		StatusRate:          0.05, // 503 ServerBusy, as a throttled partition answers
		ThrottleRate:        0.02, // 429 with Retry-After
		RetryAfter:          200 * time.Millisecond,
		ResetRate:           0.02,
		DropAfterCommitRate: 0.03, // stored, but the client sees a reset
		LatencyRate:         0.05,
		Latency:             30 * time.Millisecond,
	})
	opts := fastRetry(sink.Options{Service: "hotrel", NoCreateTable: true, FlushInterval: 50 * time.Millisecond})
	zs, zerrs := newSink(t, p.AddOnlyTable(t, name), opts)
	ss, serrs := newSink(t, p.AddOnlyTable(t, name), opts)

	start := time.Now()
	zl := zap.New(zs.Core(zapcore.DebugLevel)).Named("rel")
	sl := slog.New(ss.Handler(&slog.HandlerOptions{Level: slog.LevelDebug}))
	var wg sync.WaitGroup
	wg.Go(func() {
		for seq := 0; seq < n; seq += 2 {
			writeZap(zl, seq)
		}
	})
	wg.Go(func() {
		for seq := 1; seq < n; seq += 2 {
			writeSlog(sl, seq)
		}
	})
	wg.Wait()
	for i, s := range []*sink.Sink{zs, ss} {
		if err := s.Close(ctxT(t, 3*time.Minute)); err != nil {
			t.Fatalf("writer %d Close: %v", i, err)
		}
	}
	stored := time.Since(start)
	ps := p.Stats()
	p.Reset()

	shards := 0
	for i, s := range []*sink.Sink{zs, ss} {
		st := s.Stats()
		if err := accounting(st); err != nil {
			t.Error(err)
		}
		if st.Enqueued != n/2 || st.Written != n/2 || st.FailedRecords != 0 || st.Dropped != 0 || st.Replaced != 0 {
			t.Errorf("writer %d stats %+v", i, st)
		}
		if st.Shards < 2 {
			t.Errorf("writer %d used %d shard(s): the test did not shard", i, st.Shards)
		}
		shards = max(shards, st.Shards)
		t.Logf("writer %d: written %d, shards %d (added %d), retries %d, failed batches %d", i, st.Written, st.Shards, st.ShardsAdded, st.Retries, st.FailedBatches)
	}
	if ps.Throttled[azurite.TargetPartition] == 0 {
		t.Error("the partition limit was never reached: the test shows nothing about sharding")
	}
	for _, k := range []string{azurite.FaultStatus, azurite.FaultThrottle, azurite.FaultReset, azurite.FaultDropAfterCommit} {
		if ps.Faults[k] == 0 {
			t.Errorf("no %s fault was injected: %v", k, ps.Faults)
		}
	}
	if len(ps.Rejected) != 0 {
		t.Errorf("the strict proxy rejected requests: %v", ps.Rejected)
	}

	// Read back through query (every shard merged), straight from Azurite.
	seqs := make([]bool, n)
	partitions := map[string]bool{}
	var prev query.Record
	got, bad := 0, 0
	r := query.New(srv.Table(t, name))
	for rec, err := range r.Logs(ctxT(t, 5*time.Minute), query.Logs{Service: "hotrel", MinLevel: query.AllLevels}) {
		if err != nil {
			t.Fatal(err)
		}
		if got > 0 && rec.ID.Compare(prev.ID) >= 0 {
			t.Fatalf("record %d (%s) is not older than the one before (%s)", got, rec.ID, prev.ID)
		}
		prev = rec
		got++
		seq, err := checkRecord(schema.Entity{Time: rec.Time, Level: rec.Level, Severity: rec.Severity, Msg: rec.Message,
			Logger: rec.Logger, Fields: rec.Fields, Truncated: rec.Truncated})
		if err != nil {
			if bad++; bad <= 10 {
				t.Errorf("record %s: %v", rec.ID, err)
			}
			continue
		}
		if seq >= n || seqs[seq] {
			t.Errorf("seq %d read twice or out of range", seq)
			continue
		}
		seqs[seq] = true
	}
	missing := 0
	for _, ok := range seqs {
		if !ok {
			missing++
		}
	}
	if got != n || missing != 0 || bad != 0 {
		t.Fatalf("read back %d records, %d of %d seqs missing, %d damaged", got, missing, n, bad)
	}
	sel := "PartitionKey"
	for _, raw := range readRawFrom(t, srv.Table(t, name), &aztables.ListEntitiesOptions{Select: &sel}) {
		var e struct{ PartitionKey string }
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		if e.PartitionKey != schema.CatalogPartition {
			partitions[e.PartitionKey] = true
		}
	}
	if len(partitions) < 2 {
		t.Errorf("records in %d partition(s)", len(partitions))
	}
	for pk := range partitions {
		if svc, _, k, err := schema.ParsePartitionKey(pk); err != nil || svc != "hotrel" || k >= sink.DefaultMaxShards {
			t.Errorf("partition %q: service %q shard %d, %v", pk, svc, k, err)
		}
	}
	t.Logf("%d records from two writers stored exactly once in %d partitions under faults and throttling in %v (%s); proxy: %d requests, throttled %v, faults %v; error reports %d+%d",
		n, len(partitions), stored.Round(time.Millisecond), rate(n, stored), ps.Requests, ps.Throttled, ps.Faults, len(zerrs.all()), len(serrs.all()))
}
