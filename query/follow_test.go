package query

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/oklog/ulid/v2"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

// fakeClock runs at real speed from a chosen start.
func fakeClock(start time.Time) func() time.Time {
	real0 := time.Now()
	return func() time.Time { return start.Add(time.Since(real0)) }
}

// writer is a process writing records with its own ULID generator and a
// delayed, buffered flush, like a sink.
type writer struct {
	t       *testing.T
	tbl     *aztables.Client
	service string
	now     func() time.Time
	gen     *schema.Generator
	mu      sync.Mutex
	buf     []*entry
	written []ulid.ULID
}

func (w *writer) log(msg string) {
	e := &entry{Time: w.now(), Msg: msg}
	e.ID = w.gen.New(e.Time)
	w.mu.Lock()
	w.buf = append(w.buf, e)
	w.mu.Unlock()
}

func (w *writer) flush() {
	w.mu.Lock()
	buf := w.buf
	w.buf = nil
	w.mu.Unlock()
	if len(buf) == 0 {
		return
	}
	put(w.t, w.tbl, w.service, buf, 1)
	w.mu.Lock()
	for _, e := range buf {
		w.written = append(w.written, e.ID)
	}
	w.mu.Unlock()
}

// Follow emits new records oldest first as they arrive, across
// a day rollover, including records flushed late (after newer ones), with no
// duplicates and no gaps. Two writers: one flushes every 50 ms, the other
// every 700 ms and once holds a batch for 2 s.
func TestFollowTwoWritersDelayedFlushesDayRollover(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	midnight := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	now := fakeClock(midnight.Add(-1500 * time.Millisecond))
	const service = "follow"

	// Records stored before Follow starts are not emitted.
	old := &writer{t: t, tbl: tbl, service: service, now: now, gen: schema.NewGenerator(nil)}
	for range 5 {
		old.log("before")
	}
	old.flush()

	r := New(twin(t, tbl))
	r.now = now
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type got struct {
		rec Record
		at  time.Time
	}
	var mu sync.Mutex
	var emitted []got
	followDone := make(chan error, 1)
	ready := make(chan struct{})
	first := true
	r.afterPoll = func() { // runs on the Follow goroutine
		if first {
			first = false
			close(ready)
		}
	}
	go func() {
		var ferr error
		for rec, err := range r.Follow(ctx, Logs{Service: service}, FollowOptions{Poll: 100 * time.Millisecond, Lookback: 5 * time.Second}) {
			if err != nil {
				ferr = err
				break
			}
			mu.Lock()
			emitted = append(emitted, got{rec, time.Now()})
			mu.Unlock()
		}
		followDone <- ferr
	}()
	<-ready // the baseline poll is done

	fast := &writer{t: t, tbl: tbl, service: service, now: now, gen: schema.NewGenerator(nil)}
	slow := &writer{t: t, tbl: tbl, service: service, now: now, gen: schema.NewGenerator(nil)}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, w := range []struct {
		w     *writer
		every time.Duration
	}{{fast, 50 * time.Millisecond}, {slow, 700 * time.Millisecond}} {
		wg.Add(2)
		go func() { // logging
			defer wg.Done()
			tick := time.NewTicker(7 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					w.w.log("m")
				}
			}
		}()
		go func() { // flushing
			defer wg.Done()
			tick := time.NewTicker(w.every)
			defer tick.Stop()
			held := 0
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if w.w == slow && held < 2 && now().After(midnight.Add(-500*time.Millisecond)) {
						held++ // hold the batch across the rollover: lands ~2 s late
						continue
					}
					w.w.flush()
				}
			}
		}()
	}
	time.Sleep(3500 * time.Millisecond) // crosses midnight at 1.5 s
	close(stop)
	wg.Wait()
	fast.flush()
	slow.flush()
	all := append(slices.Clone(fast.written), slow.written...)

	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(emitted)
		mu.Unlock()
		if n >= len(all) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a few more polls: nothing more may come
	cancel()
	if err := <-followDone; err != nil && err != context.Canceled {
		t.Fatalf("follow: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	seen := map[ulid.ULID]int{}
	days := map[string]bool{}
	outOfOrder := 0
	for i, g := range emitted {
		seen[g.rec.ID]++
		days[schema.PartitionKey(service, g.rec.Time)] = true
		if i > 0 && g.rec.ID.Compare(emitted[i-1].rec.ID) < 0 {
			outOfOrder++ // a late record, emitted after newer ones
		}
	}
	for _, id := range old.written {
		if seen[id] > 0 {
			t.Errorf("record stored before Follow started was emitted")
		}
	}
	missing, dups := 0, 0
	for _, id := range all {
		switch seen[id] {
		case 0:
			missing++
		case 1:
		default:
			dups++
		}
	}
	t.Logf("written %d (fast %d, slow %d), emitted %d, late arrivals emitted out of order %d, day partitions %d",
		len(all), len(fast.written), len(slow.written), len(emitted), outOfOrder, len(days))
	if missing > 0 || dups > 0 || len(emitted) != len(all) {
		t.Fatalf("missing %d, duplicated %d, emitted %d of %d", missing, dups, len(emitted), len(all))
	}
	if len(days) != 2 {
		t.Errorf("records of %d days, want 2 (the rollover)", len(days))
	}
	if outOfOrder == 0 {
		t.Errorf("no late arrival was exercised")
	}
}

func TestFollowSinceLimitUntil(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	now := fakeClock(day0.Add(12 * time.Hour))
	r := New(twin(t, tbl))
	r.now = now
	var es []*entry
	for i := range 10 {
		es = append(es, &entry{Time: now().Add(-time.Duration(10-i) * time.Minute).Truncate(time.Microsecond), Msg: "old"})
	}
	put(t, tbl, "fsince", es, 1)

	// Since in the past: the stored records from Since on come first,
	// oldest first; Limit ends the iteration.
	var got []Record
	for rec, err := range r.Follow(t.Context(), Logs{Service: "fsince", Since: es[4].Time, Limit: 6}, FollowOptions{Poll: 20 * time.Millisecond}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rec)
	}
	if !slices.Equal(ids(got), idsOf(es[4:])) {
		t.Fatalf("since: got %v, want %v", ids(got), idsOf(es[4:]))
	}
	// Until in the past: Follow ends once the lookback window passed it.
	start := time.Now()
	n := 0
	for _, err := range r.Follow(t.Context(), Logs{Service: "fsince", Since: es[0].Time, Until: es[3].Time}, FollowOptions{Poll: 20 * time.Millisecond}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 || time.Since(start) > 5*time.Second {
		t.Fatalf("until: %d records in %v", n, time.Since(start))
	}
}

func TestFollowPruneBoundsMemory(t *testing.T) {
	t.Parallel()
	base := day0.Add(time.Hour)
	f := &follower{seen: map[ulid.ULID]time.Time{}, horizon: base, maxTS: base.Add(10 * time.Second)}
	mk := func(at time.Time) ulid.ULID { return ulid.MustNew(ulid.Timestamp(at), nil) }
	keep := mk(base.Add(time.Second))
	f.seen[keep] = base.Add(9 * time.Second)                            // in the window, stamped recently
	f.seen[mk(base.Add(-time.Millisecond))] = base.Add(9 * time.Second) // older than the horizon
	f.seen[mk(base.Add(2*time.Second))] = base.Add(time.Second)         // stamped before the arrival margin
	f.prune()
	if len(f.seen) != 1 || f.seen[keep].IsZero() {
		t.Fatalf("after prune: %v", f.seen)
	}
}
