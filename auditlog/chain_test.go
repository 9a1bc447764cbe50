package auditlog

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog"
	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

// checkChain asserts that the table holds exactly the events of want
// (by ID), once each, with seqs 1..n, and that Verify finds no break.
func checkChain(t *testing.T, tbl *aztables.Client, want []Event, key []byte) {
	t.Helper()
	evs := events(t, env(t).DirectTable(t, tableName(t, tbl)))
	if len(evs) != len(want) {
		t.Fatalf("%d events stored; want %d", len(evs), len(want))
	}
	seen := map[string]bool{}
	seqs := make([]bool, len(evs)+1)
	for _, r := range evs {
		if seen[r.ID] {
			t.Fatalf("event %s stored twice", r.ID)
		}
		seen[r.ID] = true
		if r.Seq < 1 || r.Seq > int64(len(evs)) || seqs[r.Seq] {
			t.Fatalf("seq %d out of range or taken twice", r.Seq)
		}
		seqs[r.Seq] = true
	}
	for _, e := range want {
		if !seen[e.ID.String()] {
			t.Fatalf("event %s (seq %d) returned but not stored", e.ID, e.Seq)
		}
	}
	rep := verify(t, tbl, VerifyOptions{Key: key})
	if !rep.OK() || rep.Checked != len(want) || rep.Head.Seq != int64(len(want)) {
		t.Fatalf("Verify: checked %d, head %d, breaks %v", rep.Checked, rep.Head.Seq, rep.Breaks)
	}
}

// Concurrent Record calls share transactions.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	tbl := env(t).NewTable(t)
	w := newWriter(t, tbl, Options{})
	got := record(t, w, 2000, 64, ev)
	st := w.Stats()
	if st.Events != 2000 || st.Transactions >= 2000/4 {
		t.Fatalf("stats %+v: expected far fewer transactions than events", st)
	}
	t.Logf("2000 events in %d transactions", st.Transactions)
	// Seqs returned are exactly 1..2000.
	seen := make([]bool, 2001)
	for _, e := range got {
		if e.Seq < 1 || e.Seq > 2000 || seen[e.Seq] {
			t.Fatalf("bad seq %d", e.Seq)
		}
		seen[e.Seq] = true
	}
	checkChain(t, tbl, got, nil)
}

// An untouched trail of 10,000 events written by four
// Writers at once (as four processes would) is one linear chain that
// verifies clean.
func TestFourWritersTenThousandEvents(t *testing.T) {
	t.Parallel()
	tbl := env(t).NewTable(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	const n, writers, perWriter = 10000, 4, 32
	var ws []*Writer
	for range writers {
		// Each writer gets its own client, like a separate process; straight
		// to Azurite, to spare the race detector the proxy's parsing of 10,000
		// entities (the other tests go through the strict proxy).
		ws = append(ws, newWriter(t, env(t).DirectTable(t, tableName(t, tbl)), Options{Key: key}))
	}
	all := make([][]Event, writers)
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			all[i] = record(t, w, n/writers, perWriter, func(j int) Event { return ev(i*n + j) })
		}()
	}
	wg.Wait()
	var got []Event
	var conflicts int64
	for i, w := range ws {
		got = append(got, all[i]...)
		conflicts += w.Stats().Conflicts
		t.Logf("writer %d: %+v", i, w.Stats())
	}
	if conflicts == 0 {
		t.Error("no conflicts between four writers: the test does not exercise the claims")
	}
	// The events Record returned form one chain 1..n …
	bySeq := make([]*Event, n+1)
	for i := range got {
		e := &got[i]
		if e.Seq < 1 || e.Seq > n || bySeq[e.Seq] != nil {
			t.Fatalf("seq %d returned twice or out of range", e.Seq)
		}
		bySeq[e.Seq] = e
	}
	for s := 2; s <= n; s++ {
		if bySeq[s].PrevHash != bySeq[s-1].Hash {
			t.Fatalf("returned event %d does not link to %d", s, s-1)
		}
	}
	// … and the stored trail verifies clean with that chain's head, so it
	// holds exactly these events (a different event anywhere would change
	// every later hash).
	rep := verify(t, tbl, VerifyOptions{Key: key, ExpectedHead: Head{Seq: n, Hash: bySeq[n].Hash}})
	if !rep.OK() || rep.Checked != n || rep.Head.Seq != n {
		t.Fatalf("Verify: checked %d, head %d, breaks %v", rep.Checked, rep.Head.Seq, rep.Breaks)
	}
}

// Insert-only, with an add-only SAS for inserts and a
// separate read-only client for the writer's reads.
func TestAddOnlySAS(t *testing.T) {
	t.Parallel()
	e := env(t)
	tbl := e.NewTable(t)
	name := tableName(t, tbl)
	addOnly := e.AddOnlyTable(t, name)
	ctx := context.Background()

	// The add-only client really cannot read, update or delete.
	if _, err := addOnly.GetEntity(ctx, "x", "y", nil); err == nil || isNotFound(err) {
		t.Fatalf("add-only client could read: %v", err)
	}

	// Without a reading client the writer says what is missing.
	w0 := newWriter(t, addOnly, Options{})
	_, err := w0.Record(ctx, Event{Actor: "a", Action: "b"})
	if err == nil || !strings.Contains(err.Error(), "ReadTable") {
		t.Fatalf("Record with an add-only client and no ReadTable: %v", err)
	}
	// The error keeps its chain: the service's answer is there to inspect,
	// while the message carries no URL (and so no SAS).
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || strings.Contains(err.Error(), "sig=") || strings.Contains(err.Error(), "http") {
		t.Fatalf("Record's error chain: %v (%T)", err, errors.Unwrap(err))
	}

	readOnly := readOnlyTable(t, e, name)
	if _, err := readOnly.AddEntity(ctx, []byte(`{"PartitionKey":"x","RowKey":"y"}`), nil); err == nil {
		t.Fatal("read-only client could add")
	}
	w := newWriter(t, addOnly, Options{ReadTable: readOnly})
	got := record(t, w, 300, 16, ev)
	// A second writer continues the same chain through add-only clients.
	w2 := newWriter(t, e.AddOnlyTable(t, name), Options{ReadTable: readOnlyTable(t, e, name)})
	got = append(got, record(t, w2, 50, 4, ev)...)
	checkChain(t, tbl, got, nil)
}

// readCounter counts the requests a writer sends, by method, to show it
// never updates or deletes.
type methodCounter struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *methodCounter) Do(req *policy.Request) (*httpResponse, error) {
	c.mu.Lock()
	c.m[req.Raw().Method]++
	c.mu.Unlock()
	return req.Next()
}

// The writer only sends POST (inserts and batches of inserts)
// and GET (reads); no PUT, MERGE, PATCH or DELETE.
func TestInsertOnlyRequests(t *testing.T) {
	t.Parallel()
	e := env(t)
	tbl := e.NewTable(t)
	mc := &methodCounter{m: map[string]int{}}
	svc, err := aztables.NewServiceClientFromConnectionString(e.ConnectionString, &aztables.ClientOptions{
		ClientOptions: policy.ClientOptions{PerCallPolicies: []policy.Policy{mc}}})
	if err != nil {
		t.Fatal(err)
	}
	c := svc.NewClient(tableName(t, tbl))
	w1 := newWriter(t, c, Options{})
	w2 := newWriter(t, c, Options{})
	var wg sync.WaitGroup
	for _, w := range []*Writer{w1, w2} {
		wg.Add(1)
		go func() { defer wg.Done(); record(t, w, 300, 16, ev) }()
	}
	wg.Wait()
	for m := range mc.m {
		if m != "POST" && m != "GET" {
			t.Errorf("writer sent %s requests", m)
		}
	}
	t.Logf("requests: %v", mc.m)
}

// Responses lost after the service committed (and other
// faults) never duplicate or lose an event.
func TestUnknownOutcomeRetries(t *testing.T) {
	t.Parallel()
	e := env(t)
	tbl := e.NewTable(t)
	name := tableName(t, tbl)
	p := e.NewProxy(t)
	writeOnly := func(r *httpRequest) bool { return r.Method == "POST" }
	p.SetFaults(azurite.Faults{Seed: 7, DropAfterCommitRate: 0.3, StatusRate: 0.05, ResetRate: 0.05, Match: writeOnly})
	key := []byte("0123456789abcdef")
	var ws []*Writer
	for range 2 {
		ws = append(ws, newWriter(t, p.Table(t, name), Options{Key: key}))
	}
	got := recordEach(t, ws, 400)
	st := p.Stats()
	t.Logf("proxy faults %v; writers %+v %+v", st.Faults, ws[0].Stats(), ws[1].Stats())
	if st.Faults[azurite.FaultDropAfterCommit] == 0 {
		t.Fatal("no response was dropped")
	}
	checkChain(t, tbl, got, key)
}

// A writer that cannot reach the service for longer than CommitTimeout
// fails Record with ErrOutcomeUnknown when a write may have landed, and
// the next Record continues the chain correctly.
func TestCommitTimeout(t *testing.T) {
	t.Parallel()
	e := env(t)
	tbl := e.NewTable(t)
	p := e.NewProxy(t)
	// CommitTimeout leaves room for the third Record (the ownership check
	// of the unknown write, the head's position, the insert) under -race
	// beside the other tests: 300 ms failed it on a loaded CI machine.
	w := newWriter(t, p.Table(t, tableName(t, tbl)), Options{CommitTimeout: 3 * time.Second, RequestTimeout: time.Second})
	ctx := context.Background()
	first, err := w.Record(ctx, Event{Actor: "a", Action: "one"})
	if err != nil {
		t.Fatal(err)
	}
	// Every write is committed, and every response lost.
	p.SetFaults(azurite.Faults{DropAfterCommitRate: 1, Match: func(r *httpRequest) bool { return r.Method == "POST" }})
	lost, err := w.Record(ctx, Event{Actor: "a", Action: "two"})
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("err = %v; want ErrOutcomeUnknown", err)
	}
	if lost.ID == first.ID || lost.ID.Time() == 0 {
		t.Fatalf("the failed event carries no ID: %+v", lost)
	}
	p.SetFaults(azurite.Faults{})
	third, err := w.Record(ctx, Event{Actor: "a", Action: "three"})
	if err != nil {
		t.Fatal(err)
	}
	// "two" was in fact stored (once); "three" follows it.
	evs := events(t, tbl)
	if len(evs) != 3 || third.Seq != 3 {
		t.Fatalf("%d events, third at seq %d", len(evs), third.Seq)
	}
	if rep := verify(t, tbl, VerifyOptions{}); !rep.OK() {
		t.Fatalf("Verify: %v", rep.Breaks)
	}
}

// A batch the service refuses is split so that only the bad event fails.
func TestBadEventIsolated(t *testing.T) {
	t.Parallel()
	tbl := env(t).NewTable(t)
	tl := azurite.Tablelog(t, tbl)
	bad := &rejectingTable{Table: tl, ReadTable: tl}
	w := newWriter(t, bad, Options{})
	var wg sync.WaitGroup
	var failed, ok atomic.Int32
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := ev(i)
			if i == 17 {
				e.Actor = "poison"
			}
			_, err := w.Record(context.Background(), e)
			switch {
			case err == nil && e.Actor != "poison":
				ok.Add(1)
			case err != nil && e.Actor == "poison":
				failed.Add(1)
			default:
				t.Errorf("event %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 39 || failed.Load() != 1 {
		t.Fatalf("ok %d failed %d", ok.Load(), failed.Load())
	}
	if rep := verify(t, tbl, VerifyOptions{}); !rep.OK() || rep.Checked != 39 {
		t.Fatalf("Verify: %+v", rep)
	}
}

// rejectingTable answers 400 to any insert holding Actor "poison", like
// the service refusing an entity.
type rejectingTable struct {
	Table
	ReadTable
}

func (r *rejectingTable) AddEntity(ctx context.Context, entity []byte, o *aztables.AddEntityOptions) (aztables.AddEntityResponse, error) {
	if strings.Contains(string(entity), `"poison"`) {
		return aztables.AddEntityResponse{}, badRequest()
	}
	return r.Table.AddEntity(ctx, entity, o)
}

func (r *rejectingTable) SubmitTransaction(ctx context.Context, a []aztables.TransactionAction, o *aztables.SubmitTransactionOptions) (aztables.TransactionResponse, error) {
	for _, x := range a {
		if strings.Contains(string(x.Entity), `"poison"`) {
			return aztables.TransactionResponse{}, badRequest()
		}
	}
	return r.Table.SubmitTransaction(ctx, a, o)
}

// Days: the chain moves to the next day through a seal, and links across.
func TestDayRollover(t *testing.T) {
	t.Parallel()
	tbl := env(t).NewTable(t)
	var clock atomic.Int64
	day1 := time.Date(2026, 11, 24, 23, 59, 0, 0, time.UTC)
	clock.Store(day1.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	w1 := newWriter(t, tbl, Options{Now: now})
	w2 := newWriter(t, tbl, Options{Now: now})
	got := record(t, w1, 30, 4, ev)
	got = append(got, record(t, w2, 30, 4, ev)...)
	clock.Store(day1.Add(2 * time.Minute).UnixNano()) // next day
	got = append(got, record(t, w1, 30, 4, ev)...)
	got = append(got, record(t, w2, 30, 4, ev)...)
	clock.Store(day1.Add(72 * time.Hour).UnixNano()) // two idle days later
	got = append(got, record(t, w2, 10, 2, ev)...)
	// A third writer starting cold finds the head through the catalog.
	w3 := newWriter(t, tbl, Options{Now: now})
	got = append(got, record(t, w3, 10, 2, ev)...)
	checkChain(t, tbl, got, nil)

	all := entities(t, tbl)
	var seals, catalog []string
	for _, r := range all {
		switch {
		case r.PartitionKey == schema.CatalogPartition:
			catalog = append(catalog, r.RowKey)
		case r.IsSeal():
			seals = append(seals, r.PartitionKey+"->"+r.Seal)
		}
	}
	if strings.Join(seals, ",") != "billing_20261124->20261125,billing_20261125->20261127" {
		t.Fatalf("seals %v", seals)
	}
	if strings.Join(catalog, ",") != "billing_20261124,billing_20261125,billing_20261127,billing~genesis~0000000000" {
		t.Fatalf("catalog %v", catalog)
	}
	// Verifying a range in the middle checks its link to the day before.
	rep := verify(t, tbl, VerifyOptions{Since: day1.Add(time.Hour), Until: day1.Add(time.Hour)})
	if !rep.OK() || rep.Checked != 60 {
		t.Fatalf("Verify of day 2: %+v", rep)
	}
}

// A writer whose clock is behind follows the seal to the day the chain
// moved on to; one whose clock is ahead seals for everyone.
func TestDayRolloverSkewedClocks(t *testing.T) {
	t.Parallel()
	tbl := env(t).NewTable(t)
	base := time.Date(2026, 11, 24, 23, 59, 59, 0, time.UTC)
	behind := newWriter(t, tbl, Options{Now: func() time.Time { return base }})
	got := record(t, behind, 20, 4, ev)
	ahead := newWriter(t, tbl, Options{Now: func() time.Time { return base.Add(2 * time.Second) }})
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, w := range []*Writer{behind, ahead} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs := record(t, w, 100, 8, ev)
			mu.Lock()
			got = append(got, evs...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	checkChain(t, tbl, got, nil)
}

// A context that ends while the event's transaction is in flight gives
// ErrOutcomeUnknown with the event's ID; the event is then stored (once).
// One that ends while the event waits behind another transaction removes
// it: not stored.
func TestRecordContextEndsInFlight(t *testing.T) {
	t.Parallel()
	e := env(t)
	tbl := e.NewTable(t)
	p := e.NewProxy(t)
	w := newWriter(t, p.Table(t, tableName(t, tbl)), Options{})
	if _, err := w.Record(context.Background(), Event{Actor: "a", Action: "warm-up"}); err != nil {
		t.Fatal(err)
	}
	p.SetFaults(azurite.Faults{LatencyRate: 1, Latency: 400 * time.Millisecond, Match: func(r *httpRequest) bool { return r.Method == "POST" }})
	slow := make(chan error, 1)
	go func() {
		_, err := w.Record(context.Background(), Event{Actor: "a", Action: "slow"})
		slow <- err
	}()
	time.Sleep(100 * time.Millisecond) // "slow" is in flight
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := w.Record(ctx, Event{Actor: "a", Action: "queued"})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("queued event: %v", err)
	}
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	inflight, err := w.Record(ctx2, Event{Actor: "a", Action: "in flight"})
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("in-flight event: %v", err)
	}
	// The writer finishes the transaction; the event is stored.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var found bool
		for _, r := range events(t, tbl) {
			found = found || r.ID == inflight.ID.String()
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the in-flight event was not stored")
		}
		time.Sleep(50 * time.Millisecond)
	}
	actions := map[string]int{}
	for _, r := range events(t, tbl) {
		actions[r.Action]++
	}
	if actions["queued"] != 0 || actions["in flight"] != 1 || actions["slow"] != 1 {
		t.Fatalf("stored %v", actions)
	}
}

// readOnlyTable returns a client for table name through the shared proxy
// with an account SAS that only allows reading (ss=t, srt=co, sp=r); against
// a real account without a key, the harness's client.
func readOnlyTable(t *testing.T, e *azurite.Env, name string) *tablelog.Client {
	t.Helper()
	if e.Real {
		return azurite.Tablelog(t, e.Table(t, name))
	}
	cred, err := aztables.NewSharedKeyCredential(azurite.AccountName, azurite.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := aztables.AccountSASSignatureValues{
		Protocol:      aztables.SASProtocolHTTPSandHTTP,
		StartTime:     time.Now().Add(-time.Hour).UTC(),
		ExpiryTime:    time.Now().Add(time.Hour).UTC(),
		Permissions:   aztables.AccountSASPermissions{Read: true}.String(),
		Services:      "t",
		ResourceTypes: aztables.AccountSASResourceTypes{Container: true, Object: true}.String(),
	}.Sign(cred)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tablelog.NewClientWithNoCredential(strings.TrimSuffix(e.Proxy.ServiceURL, "/")+"/"+name+"?"+qp.Encode(), azurite.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	return c
}
