package azurite

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestTargetsBuckets(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	l := newLimiter(Targets{PartitionRate: 200, AccountRate: 300, Now: clock.Now})
	step := func(pk string, n float64, want string) {
		t.Helper()
		if got := l.take(pk, n); got != want {
			t.Fatalf("take(%q, %v) = %q, want %q", pk, n, got, want)
		}
	}
	step("a", 200, "")                    // a full partition bucket: 1 s of 200/s
	step("a", 1, TargetPartition)         // empty
	step("b", 101, TargetAccount)         // b's bucket is full, the account has 100
	step("b", 100, "")                    // all-or-nothing: the failed 101 took nothing
	step("", 1, TargetAccount)            // account-only requests drain the account too
	clock.Advance(500 * time.Millisecond) // a +100, b +100 (full), account +150
	step("a", 101, TargetPartition)
	step("a", 100, "")
	step("c", 51, TargetAccount)
	step("c", 50, "")
	clock.Advance(time.Hour) // refill never exceeds the capacity
	step("a", 201, TargetPartition)
	step("a", 200, "")

	// A bucket always holds a full batch, however low its rate.
	l = newLimiter(Targets{PartitionRate: 5, AccountRate: 5, Now: clock.Now})
	step("a", MaxBatchOperations, "")
	step("a", 1, TargetPartition)

	// Negative rates are unlimited.
	l = newLimiter(Targets{PartitionRate: -1, AccountRate: -1, Now: clock.Now})
	for range 1000 {
		step("a", MaxBatchOperations, "")
	}
}

func TestTargetsScaled(t *testing.T) {
	t.Parallel()
	got := Targets{Latency: 5 * time.Millisecond}.Scaled(10)
	if got.PartitionRate != 200 || got.AccountRate != 2000 || got.Latency != 5*time.Millisecond {
		t.Fatalf("Targets{}.Scaled(10) = %+v, want 200/s, 2000/s, 5ms", got)
	}
	if got := (Targets{PartitionRate: -1}).Scaled(10); got.PartitionRate != -1 || got.AccountRate != 2000 {
		t.Fatalf("unlimited partition scaled: %+v", got)
	}
}

// targetSetup gives a test its own proxy with targets on a fake clock, a
// no-retry client through it and a direct client.
func targetSetup(t *testing.T, tg Targets) (*Proxy, *fakeClock, *aztables.Client, *aztables.Client) {
	t.Helper()
	p, tbl, direct := faultSetup(t)
	clock := newFakeClock()
	tg.Now = clock.Now
	p.SetTargets(&tg)
	return p, clock, tbl, direct
}

// batchOf builds n inserts into pk, RowKeys prefix000, prefix001, ...
func batchOf(t *testing.T, pk, prefix string, n int) []aztables.TransactionAction {
	var a []aztables.TransactionAction
	for i := range n {
		a = append(a, aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: ent(t, pk, fmt.Sprintf("%s%03d", prefix, i), nil)})
	}
	return a
}

func wantServerBusy(t *testing.T, err error, msg string) {
	t.Helper()
	wantRejected(t, err, http.StatusServiceUnavailable, CodeServerBusy)
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error does not carry Azure's message %q: %v", msg, err)
	}
}

// TestTargetsPartition: past a partition's rate the proxy answers 503
// ServerBusy and stores nothing, a $batch counts its entities, other
// partitions are not affected, the bucket refills with time; raw Azurite
// takes the same load.
func TestTargetsPartition(t *testing.T) {
	t.Parallel()
	p, clock, tbl, direct := targetSetup(t, Targets{PartitionRate: 200, AccountRate: -1})
	c := ctx(t)
	for i := range 2 {
		if _, err := tbl.SubmitTransaction(c, batchOf(t, "a", fmt.Sprint("b", i), 100), nil); err != nil {
			t.Fatalf("batch %d within the partition's burst: %v", i, err)
		}
	}
	_, err := tbl.AddEntity(c, ent(t, "a", "over", nil), nil)
	wantServerBusy(t, err, msgPartitionBusy)
	wantAbsent(t, direct, "a", "over")
	if _, err := tbl.AddEntity(c, ent(t, "b", "1", nil), nil); err != nil {
		t.Fatalf("another partition: %v", err)
	}
	// Updates, deletes and point reads count against the partition too.
	for name, op := range map[string]func() error{
		"get":    func() error { _, err := tbl.GetEntity(c, "a", "b0000", nil); return err },
		"delete": func() error { _, err := tbl.DeleteEntity(c, "a", "b0000", nil); return err },
		"update": func() error {
			_, err := tbl.UpdateEntity(c, ent(t, "a", "b0000", map[string]any{"X": 1}), nil)
			return err
		},
	} {
		if err := op(); err == nil {
			t.Errorf("%s on the drained partition succeeded", name)
		} else {
			wantServerBusy(t, err, msgPartitionBusy)
		}
	}

	// A quarter second refills 50 entities: a batch of 51 is refused whole,
	// one of 50 passes.
	clock.Advance(250 * time.Millisecond)
	_, err = tbl.SubmitTransaction(c, batchOf(t, "a", "c", 51), nil)
	wantServerBusy(t, err, msgPartitionBusy)
	wantAbsent(t, direct, "a", "c000")
	if _, err := tbl.SubmitTransaction(c, batchOf(t, "a", "c", 50), nil); err != nil {
		t.Fatalf("batch of 50 after refilling 50: %v", err)
	}
	if got := countEntities(t, direct, "a"); got != 250 {
		t.Errorf("partition a holds %d entities, want 250", got)
	}
	if got := p.Stats().Throttled[TargetPartition]; got != 5 {
		t.Errorf("Stats().Throttled[partition] = %d, want 5", got)
	}

	// Raw Azurite has no such limit: the same load passes at once.
	for i := range 3 {
		if _, err := direct.SubmitTransaction(c, batchOf(t, "raw", fmt.Sprint("b", i), 100), nil); err != nil {
			t.Fatalf("raw Azurite refused batch %d: %v", i, err)
		}
	}

	// Targets off: everything passes again.
	p.SetTargets(nil)
	if _, err := tbl.SubmitTransaction(c, batchOf(t, "a", "d", 100), nil); err != nil {
		t.Fatalf("targets off: %v", err)
	}
}

// TestTargetsAccount: the account's rate caps the sum over partitions, and
// queries count against it.
func TestTargetsAccount(t *testing.T) {
	t.Parallel()
	p, clock, tbl, direct := targetSetup(t, Targets{PartitionRate: 200, AccountRate: 300})
	c := ctx(t)
	if _, err := tbl.SubmitTransaction(c, batchOf(t, "a", "", 100), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.SubmitTransaction(c, batchOf(t, "b", "", 100), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.SubmitTransaction(c, batchOf(t, "c", "", 99), nil); err != nil {
		t.Fatal(err)
	}
	_, err := tbl.SubmitTransaction(c, batchOf(t, "d", "", 2), nil)
	wantServerBusy(t, err, msgAccountBusy)
	wantAbsent(t, direct, "d", "000")
	if _, err := tbl.AddEntity(c, ent(t, "d", "x", nil), nil); err != nil {
		t.Fatalf("the account's last entity: %v", err)
	}
	_, err = tbl.NewListEntitiesPager(nil).NextPage(c)
	wantServerBusy(t, err, msgAccountBusy)
	if s := p.Stats(); s.Throttled[TargetAccount] != 2 || s.Throttled[TargetPartition] != 0 {
		t.Errorf("Stats().Throttled = %v, want 2 account, 0 partition", s.Throttled)
	}
	clock.Advance(time.Second)
	if _, err := tbl.NewListEntitiesPager(nil).NextPage(c); err != nil {
		t.Fatalf("query after the account refilled: %v", err)
	}
	// Reset turns the targets off.
	p.Reset()
	for i := range 5 {
		if _, err := tbl.SubmitTransaction(c, batchOf(t, "e", fmt.Sprint(i), 100), nil); err != nil {
			t.Fatalf("after Reset: %v", err)
		}
	}
}

// TestTargetsLatency: every request waits the latency (a lower bound only).
func TestTargetsLatency(t *testing.T) {
	t.Parallel()
	p, tbl, _ := faultSetup(t)
	p.SetTargets(&Targets{Latency: 30 * time.Millisecond})
	c := ctx(t)
	start := time.Now()
	for i := range 3 {
		if _, err := tbl.AddEntity(c, ent(t, "p", fmt.Sprint(i), nil), nil); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 90*time.Millisecond {
		t.Errorf("3 requests took %v, want at least 3 × 30 ms", el)
	}
}

// TestTargetsStrictRejectionsFree: a request the strict rules reject costs
// nothing.
func TestTargetsStrictRejectionsFree(t *testing.T) {
	t.Parallel()
	_, _, tbl, _ := targetSetup(t, Targets{PartitionRate: 100, AccountRate: -1})
	c := ctx(t)
	for range 3 {
		_, err := tbl.AddEntity(c, ent(t, "a", "bad", map[string]any{"http.method": "GET"}), nil)
		wantRejected(t, err, http.StatusBadRequest, CodePropertyNameInvalid)
	}
	if _, err := tbl.SubmitTransaction(c, batchOf(t, "a", "", 100), nil); err != nil {
		t.Fatalf("full bucket after rejected requests: %v", err)
	}
}
