package query

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/oklog/ulid/v2"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

// putShards stores entries like put, each in the shard shardOf gives it
// (of its day), in 100-entity transactions per partition. It does not
// touch the catalog (see announce).
func putShards(t testing.TB, tbl *aztables.Client, service string, es []*entry, shardOf func(i int) int) {
	t.Helper()
	assignIDs(es)
	byPK := map[string][]aztables.TransactionAction{}
	var order []string
	for i, e := range es {
		pk0 := schema.PartitionKey(service, e.Time)
		pk := schema.ShardPartitionKey(service, e.Time, shardOf(i))
		body := bytes.Replace(encode(service, e), []byte(`"PartitionKey":"`+pk0+`"`), []byte(`"PartitionKey":"`+pk+`"`), 1)
		if _, ok := byPK[pk]; !ok {
			order = append(order, pk)
		}
		byPK[pk] = append(byPK[pk], aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: body})
	}
	var batches [][]aztables.TransactionAction
	for _, pk := range order {
		for acts := range slices.Chunk(byPK[pk], schema.MaxBatchOps) {
			batches = append(batches, acts)
		}
	}
	submit(t, tbl, batches, 4)
}

// partitionsRead returns the partitions the spy's data requests read.
func partitionsRead(spy *spyTable) map[string]bool {
	out := map[string]bool{}
	for _, f := range spy.dataFilters() {
		rest, ok := strings.CutPrefix(f, "PartitionKey eq '")
		if pk, _, ok2 := strings.Cut(rest, "'"); ok && ok2 {
			out[pk] = true
		}
	}
	return out
}

// announce does what the sink does before the first record of a shard:
// it inserts the catalog entries of service's shards of day (shard 0 is
// the day's own entry) and, for shards k >= 1, their markers in the day's
// shard-0 partition.
func announce(t testing.TB, tbl *aztables.Client, service string, day time.Time, shards ...int) {
	t.Helper()
	for _, k := range shards {
		if _, err := tbl.AddEntity(context.Background(), schema.AppendCatalogShardEntity(nil, service, day, k), nil); err != nil {
			t.Fatalf("announce shard %d: %v", k, err)
		}
		if k == 0 {
			continue
		}
		if _, err := tbl.AddEntity(context.Background(), schema.AppendShardMarkerEntity(nil, service, day, k), nil); err != nil {
			t.Fatalf("shard %d's marker: %v", k, err)
		}
	}
}

// TestLogsMergesShards: a day spread over four shards is read newest first,
// every record exactly once, with one page per shard in memory; Limit,
// Since/Until, Tail and stopping early keep their costs per shard; an
// unsharded day next to it is one request as before.
func TestLogsMergesShards(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	const svc = "shd"
	var sharded, plain []*entry
	for i := range 400 {
		sharded = append(sharded, &entry{Time: day0.Add(time.Duration(i) * 3 * time.Minute), Msg: "s"})
	}
	for i := range 20 {
		plain = append(plain, &entry{Time: day0.AddDate(0, 0, -1).Add(time.Duration(i) * time.Hour), Msg: "p"})
	}
	all := append(slices.Clone(sharded), plain...)
	// Two writer processes, each with its own generator, spreading over
	// the shards in different patterns.
	assignIDs(sharded[:200])
	assignIDs(sharded[200:])
	putShards(t, tbl, svc, sharded, func(i int) int { return (i * 7 / 3) % 4 })
	put(t, tbl, svc, plain, 2)
	announce(t, tbl, svc, day0, 0, 1, 2, 3)
	announce(t, tbl, svc, day0.AddDate(0, 0, -1), 0)
	// Another service's shards are not read.
	putShards(t, tbl, svc+"_x", []*entry{{Time: day0.Add(time.Hour), Msg: "other"}}, func(int) int { return 1 })
	announce(t, tbl, svc+"_x", day0, 0, 1)

	spy := &spyTable{Table: tbl}
	r := New(spy)
	q := Logs{Service: svc, Since: day0.AddDate(0, 0, -1), Until: day0.AddDate(0, 0, 1)}
	want := newestFirst(all)
	got := collect(t, r.Logs(t.Context(), q))
	if !slices.Equal(ids(got), want) {
		t.Fatalf("got %d records, want %d newest first", len(got), len(want))
	}
	// One page from each of the four shards (shard 0's names the other
	// three in its markers), one from the plain day, no catalog read.
	if n, c := len(spy.dataRequests()), spy.catalogRequests(); n != 5 || c != 0 {
		t.Fatalf("want 5 data requests and no catalog read, got %d and %d: %q", n, c, spy.filters())
	}
	read := partitionsRead(spy)
	for k := range 4 {
		if pk := schema.ShardPartitionKey(svc, day0, k); !read[pk] {
			t.Errorf("shard %s not read: %q", pk, spy.dataFilters())
		}
	}

	// Limit: each shard is asked for no more than still needed.
	for _, limit := range []int{1, 7, 150, 410} {
		spy.reset()
		q := q
		q.Limit = limit
		got := collect(t, r.Logs(t.Context(), q))
		if !slices.Equal(ids(got), want[:limit]) {
			t.Fatalf("limit %d: got %d records, or out of order", limit, len(got))
		}
		for _, req := range spy.dataRequests() {
			if req.Top == nil || int(*req.Top) > limit {
				t.Fatalf("limit %d: a request asked for $top %v", limit, req.Top)
			}
		}
	}

	// Tail(100): the newest 100, oldest first.
	tail, err := r.Tail(t.Context(), Logs{Service: svc, Until: day0.AddDate(0, 0, 1)}, 100)
	if err != nil {
		t.Fatal(err)
	}
	wantTail := slices.Clone(want[:100])
	slices.Reverse(wantTail)
	if !slices.Equal(ids(tail), wantTail) {
		t.Fatalf("tail 100: got %d records, not the newest 100 oldest first", len(tail))
	}

	// A time range inside the sharded day.
	since, until := sharded[100].Time, sharded[250].Time
	got = collect(t, r.Logs(t.Context(), Logs{Service: svc, Since: since, Until: until}))
	if !slices.Equal(ids(got), newestFirst(sharded[100:250])) {
		t.Fatalf("range: got %d records, want 150", len(got))
	}

	// Stopping early requests no further pages.
	spy.reset()
	for range r.Logs(t.Context(), q) {
		break
	}
	if n := len(spy.dataRequests()); n != 4 {
		t.Fatalf("break after the first record: %d data requests, want the 4 first pages", n)
	}
}

// TestLogsMergeShardPages: shards of more than a page are merged page by
// page, each shard's next page requested only when its current one is used
// up.
func TestLogsMergeShardPages(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	const svc = "shdpages"
	var es []*entry
	for i := range 2300 {
		es = append(es, &entry{Time: day0.Add(time.Duration(i) * 10 * time.Millisecond), Msg: "m"})
	}
	putShards(t, tbl, svc, es, func(i int) int {
		if i%5 == 0 {
			return 2
		}
		return i % 2 // shards 0 and 1: ~920 each; shard 2: 460
	})
	announce(t, tbl, svc, day0, 0, 1, 2)
	spy := &spyTable{Table: tbl}
	r := New(spy)
	got := collect(t, r.Logs(t.Context(), Logs{Service: svc, Since: day0, Until: day0.AddDate(0, 0, 1)}))
	if !slices.Equal(ids(got), newestFirst(es)) {
		t.Fatalf("got %d records, want %d newest first", len(got), len(es))
	}
	for _, req := range spy.dataRequests() {
		if req.Top != nil {
			t.Fatalf("a request without Limit asked for $top %d", *req.Top)
		}
	}
	t.Logf("requests: %d data, %d catalog", len(spy.dataRequests()), spy.catalogRequests())
}

// TestLogsMergeShardPagesLarge: two shards of more than one page each.
func TestLogsMergeShardPagesLarge(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	const svc = "shdlarge"
	var es []*entry
	for i := range 2400 {
		es = append(es, &entry{Time: day0.Add(time.Duration(i) * time.Second), Msg: "m"})
	}
	putShards(t, tbl, svc, es, func(i int) int { return (i / 3) % 2 }) // runs of 3 per shard
	announce(t, tbl, svc, day0, 0, 1)
	spy := &spyTable{Table: tbl}
	r := New(spy)
	got := collect(t, r.Logs(t.Context(), Logs{Service: svc, Since: day0, Until: day0.AddDate(0, 0, 1)}))
	if !slices.Equal(ids(got), newestFirst(es)) {
		t.Fatalf("got %d records, want %d newest first", len(got), len(es))
	}
	// 1,200 per shard: two pages each.
	if n := len(spy.dataRequests()); n != 4 {
		t.Fatalf("want 4 data requests (two pages per shard), got %d", n)
	}
}

// TestLogsShardDuplicateOnce: a record stored in two shards (a writer bug
// or a hand-made copy) is read once.
func TestLogsShardDuplicateOnce(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	const svc = "shddup"
	es := []*entry{
		{Time: day0.Add(time.Hour), Msg: "a"},
		{Time: day0.Add(2 * time.Hour), Msg: "b"},
		{Time: day0.Add(3 * time.Hour), Msg: "c"},
	}
	putShards(t, tbl, svc, es, func(int) int { return 0 })
	putShards(t, tbl, svc, es[1:2], func(int) int { return 1 }) // b again, same ID
	putShards(t, tbl, svc, es[1:2], func(int) int { return 3 })
	announce(t, tbl, svc, day0, 0, 1, 3)
	got := collect(t, New(tbl).Logs(t.Context(), Logs{Service: svc, Since: day0, Until: day0.AddDate(0, 0, 1)}))
	if !slices.Equal(ids(got), newestFirst(es)) {
		t.Fatalf("got %v, want %v", ids(got), newestFirst(es))
	}
}

// TestFollowShards: Follow polls every shard, including shards announced
// after it started, and emits each record once.
func TestFollowShards(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	const svc = "shdfollow"
	spy := &spyTable{Table: tbl}
	r := New(spy)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	var emitted []ulid.ULID
	polls := make(chan struct{}, 1000)
	r.afterPoll = func() { polls <- struct{}{} }
	done := make(chan error, 1)
	go func() {
		var ferr error
		for rec, err := range r.Follow(ctx, Logs{Service: svc}, FollowOptions{Poll: 30 * time.Millisecond}) {
			if err != nil {
				ferr = err
				break
			}
			mu.Lock()
			emitted = append(emitted, rec.ID)
			mu.Unlock()
		}
		done <- ferr
	}()
	<-polls // the baseline poll
	gen := schema.NewGenerator(nil)
	var written []ulid.ULID
	write := func(shard, n int) {
		var es []*entry
		for range n {
			e := &entry{Time: time.Now(), Msg: "f"}
			e.ID = gen.New(e.Time)
			es = append(es, e)
			written = append(written, e.ID)
		}
		putShards(t, tbl, svc, es, func(int) int { return shard })
	}
	waitPoll := func() {
		for range 2 { // a poll that started after the write
			<-polls
		}
	}
	today := time.Now()
	announce(t, tbl, svc, today, 0)
	write(0, 5)
	waitPoll()
	announce(t, tbl, svc, today, 1) // a second writer's shard, mid-follow
	write(1, 5)
	write(0, 3)
	waitPoll()
	announce(t, tbl, svc, today, 2)
	write(2, 4)
	write(1, 2)
	waitPoll()
	waitPoll()
	cancel()
	if err := <-done; err != nil && err != context.Canceled {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	seen := map[ulid.ULID]int{}
	for _, id := range emitted {
		seen[id]++
	}
	for _, id := range written {
		if seen[id] != 1 {
			t.Errorf("record %s emitted %d times, want once", id, seen[id])
		}
	}
	if len(emitted) != len(written) {
		t.Fatalf("emitted %d records, wrote %d", len(emitted), len(written))
	}
	read := partitionsRead(spy)
	for k := range 3 {
		if pk := schema.ShardPartitionKey(svc, today, k); !read[pk] {
			t.Errorf("shard %s never polled", pk)
		}
	}
}

// TestServicesDaysWithShards: shard entries fold into their service and day.
func TestServicesDaysWithShards(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	r := New(tbl)
	announce(t, tbl, "hot", day0, 0, 1, 2, 10, 11)
	announce(t, tbl, "hot", day0.AddDate(0, 0, 1), 0, 3)
	announce(t, tbl, "hot_2", day0, 0, 1)
	services, err := r.Services(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(services, []string{"hot", "hot_2"}) {
		t.Fatalf("services %q", services)
	}
	days, err := r.Days(t.Context(), "hot")
	if err != nil {
		t.Fatal(err)
	}
	if want := []time.Time{day0, day0.AddDate(0, 0, 1)}; !slices.EqualFunc(days, want, time.Time.Equal) {
		t.Fatalf("days %v, want %v", days, want)
	}
}

// trapTable runs hooks around the data requests of two partitions.
type trapTable struct {
	Table
	mu     sync.Mutex
	before map[string]func() // by PartitionKey, run once before the request
	after  map[string]func() // run once after it
}

func (tt *trapTable) NewListEntitiesPager(o *aztables.ListEntitiesOptions) *runtime.Pager[aztables.ListEntitiesResponse] {
	inner := tt.Table.NewListEntitiesPager(o)
	pk := ""
	if o != nil && o.Filter != nil {
		rest, _ := strings.CutPrefix(*o.Filter, "PartitionKey eq '")
		pk, _, _ = strings.Cut(rest, "'")
	}
	take := func(m map[string]func()) func() {
		tt.mu.Lock()
		defer tt.mu.Unlock()
		f := m[pk]
		delete(m, pk)
		return f
	}
	return runtime.NewPager(runtime.PagingHandler[aztables.ListEntitiesResponse]{
		More: func(aztables.ListEntitiesResponse) bool { return inner.More() },
		Fetcher: func(ctx context.Context, _ *aztables.ListEntitiesResponse) (aztables.ListEntitiesResponse, error) {
			if f := take(tt.before); f != nil {
				f()
			}
			resp, err := inner.NextPage(ctx)
			if f := take(tt.after); f != nil {
				f()
			}
			return resp, err
		},
	})
}

// TestFollowPartitionFloors: one partition's newer Timestamps must not hide
// a record that lands in another partition after that one was read. A poll
// reads shard 0, then a record lands in shard 0, then (more than the
// arrival margin later) shard 1 is read with a newer record: the next polls
// must still find shard 0's record.
func TestFollowPartitionFloors(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	const svc = "shdfloor"
	today := time.Now()
	announce(t, tbl, svc, today, 0, 1)
	gen := schema.NewGenerator(nil)
	write := func(shard int, msg string) ulid.ULID {
		e := &entry{Time: time.Now(), Msg: msg}
		e.ID = gen.New(e.Time)
		putShards(t, tbl, svc, []*entry{e}, func(int) int { return shard })
		return e.ID
	}
	tt := &trapTable{Table: tbl, before: map[string]func(){}, after: map[string]func(){}}
	r := New(tt)
	polls := make(chan struct{}, 1000)
	r.afterPoll = func() { polls <- struct{}{} }
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got := make(chan ulid.ULID, 100)
	go func() {
		for rec, err := range r.Follow(ctx, Logs{Service: svc}, FollowOptions{Poll: 20 * time.Millisecond}) {
			if err != nil {
				return
			}
			got <- rec.ID
		}
	}()
	<-polls // baseline
	want := map[ulid.ULID]bool{write(0, "first"): true}
	wait := func() {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for len(want) > 0 {
			select {
			case id := <-got:
				if !want[id] {
					t.Fatalf("unexpected or repeated record %s", id)
				}
				delete(want, id)
			case <-deadline:
				t.Fatalf("%d records never emitted", len(want))
			}
		}
	}
	wait() // shard 0 now has a Timestamp floor

	pk0, pk1 := schema.ShardPartitionKey(svc, today, 0), schema.ShardPartitionKey(svc, today, 1)
	read0 := make(chan struct{})
	var late, newer ulid.ULID
	tt.mu.Lock()
	tt.after[pk0] = func() { close(read0) }
	tt.before[pk1] = func() {
		<-read0
		late = write(0, "lands in shard 0 after it was read")
		time.Sleep(arrivalMargin + 500*time.Millisecond)
		newer = write(1, "newer, in shard 1")
	}
	tt.mu.Unlock()
	for range 3 {
		<-polls
	}
	want[late], want[newer] = true, true
	wait()
}

// TestReadCostAtProxy counts the requests the strict proxy receives. An
// unsharded day costs what it did before shards existed: Logs one request
// per day (and the catalog only for days older than the window, as
// always), Tail(n) one $top=n request, a Follow poll one request per day
// it spans; no catalog read. A sharded day (announced the way the sink
// does it: catalog entries, markers in shard 0) costs one request per
// shard, and its shards are learnt from shard 0's first page. A Where at
// the comparison limit, with no room for the marker condition, falls back
// to the catalog and still finds every shard.
func TestReadCostAtProxy(t *testing.T) {
	t.Parallel()
	env := azurite.Get(t)
	if env.Real {
		t.Skip("counts requests at the local strict proxy")
	}
	direct := env.NewTable(t)
	p := env.NewProxy(t)
	r := New(p.Table(t, azurite.TableName(direct)))
	cost := func(f func()) int {
		before := p.Stats().Requests
		f()
		return p.Stats().Requests - before
	}
	day := func(i int) (since, until time.Time) { return day0.AddDate(0, 0, i), day0.AddDate(0, 0, i+1) }

	// Unsharded: three days of records, in the catalog.
	const plain = "plain"
	var es []*entry
	for d := -2; d <= 0; d++ {
		for i := range 5 {
			es = append(es, &entry{Time: day0.AddDate(0, 0, d).Add(time.Duration(i) * time.Hour), Msg: "m"})
		}
		putCatalog(t, direct, plain, day0.AddDate(0, 0, d))
	}
	put(t, direct, plain, es, 2)
	since, until := day(0)
	var got []Record
	if n := cost(func() { got = collect(t, r.Logs(t.Context(), Logs{Service: plain, Since: since, Until: until})) }); n != 1 || len(got) != 5 {
		t.Errorf("Logs of one unsharded day: %d requests, %d records; want 1 and 5", n, len(got))
	}
	if n := cost(func() {
		got = collect(t, r.Logs(t.Context(), Logs{Service: plain, Since: day0.AddDate(0, 0, -2), Until: until}))
	}); n != 3 || len(got) != 15 {
		t.Errorf("Logs of three unsharded days: %d requests, %d records; want 3 and 15", n, len(got))
	}
	// No Since: the window's 7 days, then the catalog for older days.
	if n := cost(func() { got = collect(t, r.Logs(t.Context(), Logs{Service: plain, Until: until})) }); n != 8 || len(got) != 15 {
		t.Errorf("Logs without Since: %d requests, %d records; want 8 (7 days and the catalog) and 15", n, len(got))
	}
	var tail []Record
	if n := cost(func() {
		var err error
		if tail, err = r.Tail(t.Context(), Logs{Service: plain, Until: until}, 3); err != nil {
			t.Fatal(err)
		}
	}); n != 1 || len(tail) != 3 {
		t.Errorf("Tail(3) of an unsharded day: %d requests, %d records; want 1 and 3", n, len(tail))
	}
	// Follow: one request per poll (a day at noon spans one partition).
	followCost := func(service string, polls int) int {
		fr := New(p.Table(t, azurite.TableName(direct)))
		fr.now = func() time.Time { return day0.Add(12 * time.Hour) }
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan struct{})
		n := 0
		fr.afterPoll = func() {
			if n++; n == polls {
				cancel()
			}
		}
		before := p.Stats().Requests
		go func() {
			defer close(done)
			for range fr.Follow(ctx, Logs{Service: service}, FollowOptions{Poll: 10 * time.Millisecond}) {
			}
		}()
		<-done
		return p.Stats().Requests - before
	}
	if n := followCost(plain, 5); n != 5 {
		t.Errorf("5 Follow polls of an unsharded day: %d requests, want 5", n)
	}

	// Sharded: shard 0 names shards 1 and 2 in its markers.
	const hot = "hot"
	var hs []*entry
	for i := range 30 {
		hs = append(hs, &entry{Time: day0.Add(time.Duration(i) * time.Minute), Msg: "h"})
	}
	announce(t, direct, hot, day0, 0, 1, 2)
	putShards(t, direct, hot, hs, func(i int) int { return i % 3 })
	want := newestFirst(hs)
	if n := cost(func() { got = collect(t, r.Logs(t.Context(), Logs{Service: hot, Since: since, Until: until})) }); n != 3 || !slices.Equal(ids(got), want) {
		t.Errorf("Logs of a day of 3 shards: %d requests, %d records; want 3 and 30 newest first", n, len(got))
	}
	if n := cost(func() {
		got = collect(t, r.Logs(t.Context(), Logs{Service: hot, Since: since, Until: until, MinLevel: AllLevels}))
	}); n != 3 || !slices.Equal(ids(got), want) {
		t.Errorf("AllLevels (no condition but the keys'): %d requests, %d records; want 3 and 30: no marker is a record", n, len(got))
	}
	if n := followCost(hot, 4); n != 12 {
		t.Errorf("4 Follow polls of a day of 3 shards: %d requests, want 12", n)
	}

	// A Where of 11 comparisons: with the keys' 3 and the level's 1, the
	// limit of 15; the marker condition does not fit, so the day's shards
	// come from the catalog (one request more).
	var conds []Filter
	for i := range 11 {
		conds = append(conds, Ge(ColSeverity, i-20)) // every record
	}
	q := Logs{Service: hot, Since: since, Until: until, Where: And(conds...)}
	spy := &spyTable{Table: p.Table(t, azurite.TableName(direct))}
	if n := cost(func() { got = collect(t, New(spy).Logs(t.Context(), q)) }); n != 4 || spy.catalogRequests() != 1 || !slices.Equal(ids(got), want) {
		t.Errorf("Where at the comparison limit: %d requests (%d of the catalog), %d records; want 4 (1) and 30: %q", n, spy.catalogRequests(), len(got), spy.filters())
	}
}
