package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/sink"
)

func init() {
	e2eTests["shards"] = testShards
}

// testShards: a sink writing past a partition's rate (the strict proxy's
// scalability targets) spreads a day over shards; query, tail and services
// read them as one day, each record once, and prune deletes every shard.
func testShards(t *testing.T, bin string) {
	env := azurite.Get(t)
	tbl := env.NewTable(t)
	name := azurite.TableName(tbl)
	p := env.NewProxy(t)
	p.SetTargets(&azurite.Targets{PartitionRate: 100, AccountRate: -1})
	s, err := sink.New(p.Table(t, name), sink.Options{Service: "hot", NoCreateTable: true, MaxShards: 4,
		FlushInterval: 20 * time.Millisecond, MinRetryInterval: 20 * time.Millisecond, MaxRetryInterval: 200 * time.Millisecond,
		ErrorHandler: func(error) {}})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2025, 10, 1, 12, 0, 0, 0, time.UTC)
	const n = 800
	core := s.Core(zapcore.DebugLevel)
	for i := range n {
		if i == n/2 {
			// Once the day has a second shard, the rest: they spread.
			for deadline := time.Now().Add(time.Minute); s.Stats().ShardsAdded == 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the sink added no shard")
				}
			}
		}
		ent := zapcore.Entry{Level: zapcore.InfoLevel, Time: day.Add(time.Duration(i) * time.Second), Message: "r"}
		if err := core.Write(ent, []zap.Field{zap.Int("i", i)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Shards < 2 || st.Written != n {
		t.Fatalf("the sink did not shard (the test would show nothing): %+v", st)
	}

	c := newCLI(t, bin, tbl, nil)
	r := c.mustRun(0, "query", "-s", "hot", "--limit", "0", "-o", "json")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != n {
		t.Fatalf("query: %d records, want %d", len(lines), n)
	}
	for k, line := range lines { // newest first: i = n-1 … 0, each once
		var rec struct{ Fields struct{ I int64 } }
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Fields.I != int64(n-1-k) {
			t.Fatalf("query line %d: %s (%v), want i=%d", k, line, err, n-1-k)
		}
	}
	r = c.mustRun(0, "tail", "-s", "hot", "-n", "3", "-o", "json")
	if got := strings.Count(r.stdout, "\n"); got != 3 || !strings.Contains(r.stdout, `"i":799`) || !strings.Contains(r.stdout, `"i":797`) {
		t.Errorf("tail -n 3:\n%s", r.stdout)
	}
	r = c.mustRun(0, "services", "--days")
	if r.stdout != "hot  2025-10-01\n" {
		t.Errorf("services --days:\n%s", r.stdout)
	}
	r = c.mustRun(0, "prune", "--before", "2025-10-02", "--yes")
	if want := "day partitions of 1 service, 800 records, before 2025-10-02\n"; !strings.HasSuffix(r.stdout, want) || !strings.Contains(r.stdout, "hot_20251001_1 ") {
		t.Errorf("prune:\n%s", r.stdout)
	}
	r = c.mustRun(0, "query", "-s", "hot", "--limit", "0", "-o", "json")
	if r.stdout != "" {
		t.Errorf("records left after prune:\n%s", r.stdout)
	}
	r = c.mustRun(0, "services")
	if r.stdout != "SERVICE  DAYS  FIRST  LAST\n" {
		t.Errorf("catalog after prune:\n%s", r.stdout)
	}
}
