package sink

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/query"
)

func TestInShard(t *testing.T) {
	var enc schema.Encoder
	enc.Reset("svc_20260101", "RK")
	enc.SetMessage("m")
	entity := append([]byte(nil), enc.Finish()...)
	buf, got := inShard(nil, entity, "svc_20260101", "svc_20260101_12")
	var m map[string]any
	if err := json.Unmarshal(got, &m); err != nil || m["PartitionKey"] != "svc_20260101_12" || m["RowKey"] != "RK" || m["Msg"] != "m" {
		t.Fatalf("rewritten entity %s: %v", got, err)
	}
	if len(buf) != len(got) {
		t.Errorf("buffer holds %d bytes, the entity %d", len(buf), len(got))
	}
	// Shard 0, no shard, or an entity of another shape: sent as it is.
	for _, c := range []struct{ entity, pk0, pk string }{
		{string(entity), "svc_20260101", "svc_20260101"},
		{string(entity), "svc_20260101", ""},
		{string(entity), "svc_20260102", "svc_20260102_1"},
		{`{"RowKey":"x","PartitionKey":"svc_20260101"}`, "svc_20260101", "svc_20260101_1"},
		{`{"PartitionKey":"svc_20260101`, "svc_20260101", "svc_20260101_1"},
	} {
		if _, got := inShard(nil, []byte(c.entity), c.pk0, c.pk); string(got) != c.entity {
			t.Errorf("inShard(%s, %s, %s) = %s, want it unchanged", c.entity, c.pk0, c.pk, got)
		}
	}
}

func TestIsBusy(t *testing.T) {
	for _, c := range []struct {
		e    *OpError
		want bool
	}{
		{&OpError{StatusCode: 503, Code: "ServerBusy", class: transient}, true},
		{&OpError{StatusCode: 500, Code: "OperationTimedOut", class: transient}, true},
		{&OpError{StatusCode: 503, class: transient}, true},
		{&OpError{StatusCode: 500, Code: "InternalError", class: transient}, false},
		{&OpError{StatusCode: 429, class: transient}, false},
		{&OpError{StatusCode: 0, class: transient}, false},
		{&OpError{StatusCode: 409, Code: "EntityAlreadyExists", class: exists}, false},
		{nil, false},
	} {
		if got := isBusy(c.e); got != c.want {
			t.Errorf("isBusy(%+v) = %v, want %v", c.e, got, c.want)
		}
	}
}

func TestMaxShardsValidation(t *testing.T) {
	for _, n := range []int{-1, schema.MaxShard + 2} {
		if _, err := New(&fakeTable{}, Options{Service: "ok", MaxShards: n}); err == nil || !strings.Contains(err.Error(), "MaxShards") {
			t.Errorf("MaxShards %d: %v", n, err)
		}
	}
	o, err := Options{Service: "ok"}.withDefaults()
	if err != nil || o.MaxShards != DefaultMaxShards {
		t.Fatalf("default MaxShards %d, %v", o.MaxShards, err)
	}
}

// throttledProxy is a proxy of the test's own enforcing a partition rate of
// perPartition entities/s (wall clock), no account limit.
func throttledProxy(t *testing.T, perPartition float64) (*azurite.Proxy, string) {
	t.Helper()
	env := azurite.Get(t)
	if env.Real {
		t.Fatalf("this test needs the local Azurite and strict proxy; unset %s to run it", azurite.EnvConnectionString)
	}
	name := azurite.TableName(env.NewTable(t))
	p := env.NewProxy(t)
	p.SetTargets(&azurite.Targets{PartitionRate: perPartition, AccountRate: -1})
	return p, name
}

// storedEntity is an entity as listed straight from Azurite.
type storedEntity struct {
	PartitionKey, RowKey string
	Timestamp            time.Time
}

// listStored lists the table: log records by partition, catalog entries by
// RowKey, and shard markers by the shard partition they announce.
func listStored(t *testing.T, name string) (logs map[string][]storedEntity, catalog, markers map[string]storedEntity) {
	t.Helper()
	direct := azurite.Get(t).DirectTable(t, name)
	sel := "PartitionKey,RowKey,Timestamp"
	pager := direct.NewListEntitiesPager(&aztables.ListEntitiesOptions{Select: &sel})
	logs, catalog, markers = map[string][]storedEntity{}, map[string]storedEntity{}, map[string]storedEntity{}
	ctx := ctxT(t, time.Minute)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range page.Entities {
			var e storedEntity
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			if e.PartitionKey == schema.CatalogPartition {
				catalog[e.RowKey] = e
			} else if k, ok := schema.ParseShardMarkerRowKey(e.RowKey); ok {
				markers[e.PartitionKey+"_"+strconv.Itoa(k)] = e
			} else {
				logs[e.PartitionKey] = append(logs[e.PartitionKey], e)
			}
		}
	}
	return logs, catalog, markers
}

// TestShardsWhenThrottled: two processes of one service, each with an
// add-only credential, log more than a throttled partition takes. Both
// spread over shards (at most MaxShards), store every record exactly once
// without a failed transaction (a transaction mixing partitions would be
// refused by the strict proxy), announce each shard in the catalog before
// its first record, and query reads everything back once, newest first.
func TestShardsWhenThrottled(t *testing.T) {
	t.Parallel()
	p, name := throttledProxy(t, 100)
	const perSink = 1000
	opts := Options{Service: "hot", NoCreateTable: true, MaxShards: 4, FlushInterval: 50 * time.Millisecond,
		MinRetryInterval: 20 * time.Millisecond, MaxRetryInterval: 200 * time.Millisecond}
	var sinks []*Sink
	var errLists []*errs
	for range 2 {
		s, e := newSink(t, p.AddOnlyTable(t, name), opts)
		sinks, errLists = append(sinks, s), append(errLists, e)
	}
	var wg sync.WaitGroup
	for i, s := range sinks {
		wg.Go(func() {
			writeN(t, s, perSink/2, string(rune('a'+i)))
			// The rest once this writer has a second shard, so that they
			// spread however fast the first half was dispatched.
			for deadline := time.Now().Add(time.Minute); s.Stats().ShardsAdded == 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Errorf("sink %d added no shard", i)
					return
				}
			}
			writeN(t, s, perSink/2, string(rune('A'+i)))
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for i, s := range sinks {
		if err := s.Close(ctxT(t, 2*time.Minute)); err != nil {
			t.Fatalf("sink %d Close: %v", i, err)
		}
		st := s.Stats()
		t.Logf("sink %d: written %d, shards %d (added %d), retries %d, catalog writes %d", i, st.Written, st.Shards, st.ShardsAdded, st.Retries, st.CatalogWrites)
		if st.Written != perSink || st.FailedRecords != 0 || st.FailedBatches != 0 {
			t.Errorf("sink %d stats %+v", i, st)
		}
		if st.Shards > opts.MaxShards {
			t.Errorf("sink %d uses %d shards, MaxShards %d", i, st.Shards, opts.MaxShards)
		}
	}
	if got := p.Stats().Throttled[azurite.TargetPartition]; got == 0 {
		t.Fatal("the partition limit was never reached: the test shows nothing")
	}

	logs, catalog, markers := listStored(t, name)
	seen := map[string]bool{}
	total := 0
	for pk, es := range logs {
		svc, day, shard, err := schema.ParsePartitionKey(pk)
		if err != nil || svc != "hot" || shard >= opts.MaxShards {
			t.Fatalf("partition %q: %v", pk, err)
		}
		first := es[0].Timestamp
		for _, e := range es {
			if seen[e.RowKey] {
				t.Errorf("record %s stored twice", e.RowKey)
			}
			seen[e.RowKey] = true
			if e.Timestamp.Before(first) {
				first = e.Timestamp
			}
		}
		total += len(es)
		entry, ok := catalog[pk]
		if !ok {
			t.Errorf("partition %s has %d records and no catalog entry", pk, len(es))
		} else if entry.Timestamp.After(first) {
			t.Errorf("shard %s was announced at %v, after its first record (%v)", pk, entry.Timestamp, first)
		}
		if shard == 0 {
			continue
		}
		if m, ok := markers[pk]; !ok {
			t.Errorf("shard %s has %d records and no marker in %s", pk, len(es), schema.PartitionKey(svc, day))
		} else if m.Timestamp.After(first) {
			t.Errorf("shard %s's marker was stored at %v, after its first record (%v)", pk, m.Timestamp, first)
		}
	}
	for pk := range markers {
		if _, ok := catalog[pk]; !ok {
			t.Errorf("marker of shard %s without its catalog entry", pk)
		}
	}
	if total != 2*perSink {
		t.Errorf("%d records stored, want %d", total, 2*perSink)
	}
	if len(logs) < 2 {
		t.Errorf("records in %d partition(s): the writers did not shard", len(logs))
	}
	t.Logf("partitions used: %d; catalog entries: %d", len(logs), len(catalog))

	// Read back through the query package: every record once, newest first.
	recs := 0
	var prev query.Record
	ids := map[string]bool{}
	for rec, err := range query.New(azurite.Get(t).DirectTable(t, name)).Logs(ctxT(t, time.Minute), query.Logs{Service: "hot", MinLevel: query.AllLevels}) {
		if err != nil {
			t.Fatal(err)
		}
		if recs > 0 && rec.ID.Compare(prev.ID) >= 0 {
			t.Fatalf("record %d is not older than the one before", recs)
		}
		if ids[rec.ID.String()] {
			t.Fatalf("record %s read twice", rec.ID)
		}
		ids[rec.ID.String()] = true
		prev = rec
		recs++
	}
	if recs != 2*perSink {
		t.Fatalf("query read %d records, want %d", recs, 2*perSink)
	}
}

// TestShardsOff: with MaxShards 1 a throttled partition stays one
// partition: the records are stored, slowly, and no shard is announced.
func TestShardsOff(t *testing.T) {
	t.Parallel()
	p, name := throttledProxy(t, 100)
	s, _ := newSink(t, p.Table(t, name), Options{Service: "cold", MaxShards: 1, FlushInterval: 50 * time.Millisecond,
		MinRetryInterval: 20 * time.Millisecond, MaxRetryInterval: 200 * time.Millisecond})
	writeN(t, s, 400, "x")
	if err := s.Close(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Written != 400 || st.Shards != 1 || st.ShardsAdded != 0 {
		t.Errorf("stats %+v", st)
	}
	if got := p.Stats().Throttled[azurite.TargetPartition]; got == 0 {
		t.Fatal("the partition limit was never reached: the test shows nothing")
	}
	logs, catalog, markers := listStored(t, name)
	if len(logs) != 1 || len(catalog) != 1 || len(markers) != 0 {
		t.Fatalf("partitions %d, catalog entries %d, shard markers %d; want 1, 1 and 0", len(logs), len(catalog), len(markers))
	}
}

// TestShardsAnnounceRefused: a shard whose catalog entry cannot be stored is
// not used; its records go to the shards already announced.
func TestShardsAnnounceRefused(t *testing.T) {
	t.Parallel()
	p, name := throttledProxy(t, 100)
	s, e := newSink(t, denyShardCatalog{p.Table(t, name)}, Options{Service: "deny", MaxShards: 4, FlushInterval: 50 * time.Millisecond,
		MinRetryInterval: 20 * time.Millisecond, MaxRetryInterval: 200 * time.Millisecond})
	writeN(t, s, 300, "x")
	// Then, once the day has more than one shard, more records, which
	// would go to the new shard.
	for deadline := time.Now().Add(20 * time.Second); s.Stats().ShardsAdded == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no shard was added")
		}
	}
	writeN(t, s, 300, "y")
	if err := s.Close(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Written != 600 || st.FailedRecords != 0 {
		t.Errorf("stats %+v", st)
	}
	logs, _, markers := listStored(t, name)
	if len(logs) != 1 || len(markers) != 0 {
		t.Errorf("records in %d partitions; the refused shards were used", len(logs))
	}
	reported := false
	for _, err := range e.all() {
		if strings.Contains(err.Error(), "cannot announce shard") {
			reported = true
		}
	}
	if !reported {
		t.Error("the refused announcement was not reported")
	}
}

// denyShardCatalog refuses (403) single inserts of shard catalog entries.
type denyShardCatalog struct{ Table }

func (d denyShardCatalog) AddEntity(ctx context.Context, entity []byte, opts *aztables.AddEntityOptions) (aztables.AddEntityResponse, error) {
	var k struct{ PartitionKey, RowKey string }
	_ = json.Unmarshal(entity, &k)
	if _, _, shard, err := schema.ParsePartitionKey(k.RowKey); k.PartitionKey == schema.CatalogPartition && err == nil && shard > 0 {
		return aztables.AddEntityResponse{}, respError(http.StatusForbidden, "AuthorizationPermissionMismatch", nil)
	}
	return d.Table.AddEntity(ctx, entity, opts)
}

// TestShardChoice drives the shard state directly (fake table, fake time):
// one shard until a throttle, a shard added at most every
// shardGrowInterval, only by a transaction sent while the day had as many
// shards as now, and used only once its catalog entry and its marker are
// stored (announced in the background: no pick waits); round-robin, a
// throttled shard passed over for shardCoolDown, MaxShards respected.
func TestShardChoice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeTable()
		s, _ := newSink(t, f, Options{Service: "svc", MaxShards: 3})
		pk := s.partitionKey(time.Now())
		busy := &OpError{StatusCode: 503, Code: "ServerBusy", class: transient}
		picks := func(n int) []string {
			var out []string
			for range n {
				spk, _ := s.shard(pk)
				out = append(out, strings.TrimPrefix(spk, pk))
			}
			return out
		}
		if got := picks(3); !slices.Equal(got, []string{"", "", ""}) {
			t.Fatalf("before any throttle: %q", got)
		}
		s.throttled(pk, pk, 1, &OpError{StatusCode: 500, Code: "InternalError", class: transient})
		if st := s.Stats(); st.Shards != 1 {
			t.Fatalf("a 500 InternalError added a shard")
		}
		// Hold the announcement's inserts until the picks are made: the
		// announcing goroutine may otherwise run on another CPU at once.
		gate := make(chan struct{})
		f.mu.Lock()
		f.fail = func(c fakeCall) error {
			if c.Op == "AddEntity" {
				<-gate
			}
			return nil
		}
		f.mu.Unlock()
		s.throttled(pk, pk, 1, busy) // shard 0 busy; a second shard
		if got := picks(2); !slices.Equal(got, []string{"", ""}) {
			t.Fatalf("shard 1 picked before it was announced: %q", got)
		}
		close(gate)
		synctest.Wait() // the announcement
		marker := pk + "/" + schema.ShardMarkerRowKey(1)
		if _, ok := f.rows[schema.CatalogPartition+"/"+pk+"_1"]; !ok {
			t.Fatal("shard 1 announced without its catalog entry")
		}
		if _, ok := f.rows[marker]; !ok {
			t.Fatalf("shard 1 announced without its marker %s", marker)
		}
		time.Sleep(shardGrowInterval)
		s.throttled(pk, pk, 1, busy) // sent when the day had one shard: no third
		if st := s.Stats(); st.Shards != 2 || st.ShardsAdded != 1 {
			t.Fatalf("after a throttle of a transaction sent before shard 1: %+v", st)
		}
		if got := picks(3); !slices.Equal(got, []string{"_1", "_1", "_1"}) {
			t.Fatalf("shard 0 cooling down: %q", got)
		}
		time.Sleep(shardCoolDown)
		if got := picks(4); !slices.Equal(got, []string{"", "_1", "", "_1"}) {
			t.Fatalf("round-robin: %q", got)
		}
		s.throttled(pk, pk+"_1", 2, busy)
		s.throttled(pk, pk+"_1", 3, busy) // too soon after the third
		synctest.Wait()
		time.Sleep(shardGrowInterval)
		s.throttled(pk, pk+"_1", 3, busy) // MaxShards 3: no fourth
		synctest.Wait()
		if st := s.Stats(); st.Shards != 3 || st.ShardsAdded != 2 {
			t.Fatalf("MaxShards 3: %+v", st)
		}
		got := picks(4)
		if slices.Contains(got, "_1") || !slices.Contains(got, "_2") {
			t.Fatalf("shard 1 cooling down, shard 2 new: %q", got)
		}
		if st := s.Stats(); st.CatalogWrites != 2 {
			t.Errorf("catalog writes %d, want 2 (shards 1 and 2)", st.CatalogWrites)
		}
	})
}
