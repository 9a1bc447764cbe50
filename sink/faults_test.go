package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Integration tests of failures against Azurite through a strict proxy of
// the test's own: exactly once under faults, a bad record in a full
// transaction, outages under Block and DropNewest, Close, add-only SAS.

// faultyTable returns a fresh table and a client for it through a new
// proxy, with the SDK's own retries off so the sink sees every fault.
func faultyTable(t *testing.T) (*azurite.Proxy, *aztables.Client) {
	t.Helper()
	env := azurite.Get(t)
	p := env.NewProxy(t)
	name := azurite.TableName(env.NewTable(t))
	noRetry := &aztables.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}}
	return p, p.Table(t, name, noRetry)
}

// fastRetry keeps the backoff short so fault tests stay quick.
var fastRetry = Options{MinRetryInterval: 5 * time.Millisecond, MaxRetryInterval: 100 * time.Millisecond, RequestTimeout: 10 * time.Second}

// Every kind of transient fault; exactly N entities stored.
// TestExactlyOnceUnderFaults runs against tablelog.Client and, for
// compatibility, *aztables.Client.
func TestExactlyOnceUnderFaults(t *testing.T) {
	t.Run("tablelog", func(t *testing.T) { testExactlyOnceUnderFaults(t, newSink) })
	t.Run("aztables", func(t *testing.T) { testExactlyOnceUnderFaults(t, newSDKSink) })
}

func testExactlyOnceUnderFaults(t *testing.T, mk func(testing.TB, Table, Options) (*Sink, *errs)) {
	p, tbl := faultyTable(t)
	o := fastRetry
	o.BatchSize = 10
	s, _ := mk(t, tbl, o)
	p.SetFaults(azurite.Faults{
		Seed:                7,
		StatusRate:          0.08, // 503
		ThrottleRate:        0.08, // 429 + Retry-After
		RetryAfter:          time.Second,
		ResetRate:           0.08,
		DropAfterCommitRate: 0.15, // stored, response lost
		LatencyRate:         0.1,
		Latency:             20 * time.Millisecond,
	})
	const n = 1000
	zl := zap.New(s.Core(zapcore.InfoLevel))
	sl := slog.New(s.Handler(nil))
	for i := range n {
		if i%2 == 0 {
			zl.Info(fmt.Sprintf("r%04d", i))
		} else {
			sl.Info(fmt.Sprintf("r%04d", i))
		}
	}
	if err := s.Flush(ctxT(t, 2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	ps := p.Stats()
	p.Reset()
	logs, _ := readAll(t, tbl)
	seen := map[string]int{}
	for _, e := range logs {
		seen[e.Msg]++
	}
	if len(logs) != n || len(seen) != n {
		t.Fatalf("%d entities, %d distinct, want %d", len(logs), len(seen), n)
	}
	st := s.Stats()
	if st.Written != n || st.FailedRecords != 0 || st.Replaced != 0 || st.Retries == 0 {
		t.Errorf("stats %+v", st)
	}
	for _, k := range []string{azurite.FaultStatus, azurite.FaultThrottle, azurite.FaultReset, azurite.FaultDropAfterCommit} {
		if ps.Faults[k] == 0 {
			t.Errorf("no %s fault was injected: %v", k, ps.Faults)
		}
	}
	t.Logf("proxy %+v; sink %+v", ps, st)
}

// One unstorable record in a full transaction: the other 99
// are stored, the bad one is replaced by a repair entity; a record that
// cannot even be repaired is counted and reported.
func TestBadRecordInFullTransaction(t *testing.T) {
	tbl := azurite.Get(t).NewTable(t)
	s, errs := newSink(t, tbl, Options{FlushInterval: time.Hour})
	now := time.Now()
	pk := schema.PartitionKey("svc", now)
	l := zap.New(s.Core(zapcore.InfoLevel))
	var badRK string
	for i := range 100 {
		switch i {
		case 40: // a property name Azure rejects (the proxy enforces it)
			badRK = schema.RowKey(s.gen.New(now))
			enqueueRaw(t, s, pk, badRK, `,"http.method":"GET"`)
		case 70: // a key Azure rejects: not even a repair entity can be stored
			enqueueRaw(t, s, pk, "bad#key", "")
		default:
			l.Info("good", zap.Int("i", i))
		}
	}
	err := s.Flush(ctxT(t, time.Minute))
	var de *DeliveryError
	if !errors.As(err, &de) || de.Failed != 1 || !strings.Contains(err.Error(), "1 record was not delivered") {
		t.Fatalf("Flush: %v", err)
	}
	st := s.Stats()
	if st.Written != 99 || st.Replaced != 1 || st.FailedRecords != 1 || st.FailedBatches == 0 {
		t.Fatalf("stats %+v", st)
	}
	logs, _ := readAll(t, tbl)
	if len(logs) != 99 {
		t.Fatalf("%d stored, want 98 good + 1 repair", len(logs))
	}
	var repaired *schema.Entity
	for i, e := range logs {
		if e.RowKey == badRK {
			repaired = &logs[i]
		}
	}
	if repaired == nil {
		t.Fatal("no repair entity")
	}
	g, _ := repaired.Fields[RepairGroup].(map[string]any)
	if repaired.Msg != "raw" || repaired.Level != "warn" ||
		!strings.Contains(fmt.Sprint(g[RepairKeyError]), "PropertyNameInvalid") ||
		!strings.Contains(fmt.Sprint(g[RepairKeyJSON]), `"http.method":"GET"`) {
		t.Errorf("repair entity %+v", repaired)
	}
	var reported []string
	for _, e := range errs.all() {
		reported = append(reported, e.Error())
	}
	all := strings.Join(reported, "\n")
	if !strings.Contains(all, badRK) || !strings.Contains(all, "bad#key") {
		t.Errorf("ErrorHandler got:\n%s", all)
	}
}

// Under an outage the buffer stays within BufferBytes; Block
// holds the writer back, DropNewest counts every drop; writing resumes when
// the service returns.
func TestOutageBlockAndDropNewest(t *testing.T) {
	const budget = 64 << 10
	const n = 1000
	for _, policy := range []Overflow{Block, DropNewest} {
		t.Run(policy.String(), func(t *testing.T) {
			p, tbl := faultyTable(t)
			o := fastRetry
			o.BufferBytes = budget
			o.Overflow = policy
			s, _ := newSink(t, tbl, o)
			p.Outage(time.Hour)
			var done atomic.Bool
			go func() {
				writeN(t, s, n, "m")
				done.Store(true)
			}()
			for range 50 {
				if st := s.Stats(); st.BufferedBytes > budget {
					t.Fatalf("buffered %d bytes, budget %d", st.BufferedBytes, budget)
				}
				time.Sleep(10 * time.Millisecond)
			}
			st := s.Stats()
			switch policy {
			case Block:
				if done.Load() || st.Dropped != 0 || st.BufferedBytes < budget/2 {
					t.Fatalf("writer done=%v; stats %+v", done.Load(), st)
				}
			case DropNewest:
				if !done.Load() || st.Dropped == 0 || st.Enqueued+st.Dropped != n {
					t.Fatalf("writer done=%v; stats %+v", done.Load(), st)
				}
			}
			p.Reset() // the service is back
			for !done.Load() {
				time.Sleep(10 * time.Millisecond)
			}
			if err := s.Flush(ctxT(t, time.Minute)); err != nil {
				t.Fatal(err)
			}
			st = s.Stats()
			logs, _ := readAll(t, tbl)
			if uint64(len(logs)) != st.Written || st.Written != st.Enqueued || st.Enqueued+st.Dropped != n {
				t.Fatalf("stored %d; stats %+v", len(logs), st)
			}
			if policy == Block && len(logs) != n {
				t.Fatalf("Block stored %d of %d", len(logs), n)
			}
		})
	}
}

// Close drains; later writes are refused and counted; a
// deadline names the records not delivered.
func TestCloseDrainsRefusesAndReports(t *testing.T) {
	p, tbl := faultyTable(t)
	s, _ := newSink(t, tbl, fastRetry)
	writeN(t, s, 300, "m")
	if err := s.Close(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if logs, _ := readAll(t, tbl); len(logs) != 300 {
		t.Fatalf("%d stored after Close", len(logs))
	}
	if err := zap.New(s.Core(zapcore.InfoLevel)).Core().Write(zapcore.Entry{Message: "late", Time: time.Now()}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: %v", err)
	}
	slog.New(s.Handler(nil)).Info("late too")
	if st := s.Stats(); st.Rejected != 2 || st.Written != 300 {
		t.Errorf("stats %+v", st)
	}

	s2, _ := newSink(t, tbl, fastRetry)
	p.Outage(time.Hour)
	defer p.Reset()
	writeN(t, s2, 50, "n")
	start := time.Now()
	err := s2.Close(ctxT(t, 500*time.Millisecond))
	var de *DeliveryError
	if !errors.As(err, &de) || de.Failed != 50 || !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "50 records were not delivered") {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v with a 500ms deadline", d)
	}
	if st := s2.Stats(); st.FailedRecords != 50 || st.BufferedRecords != 0 {
		t.Errorf("stats %+v", st)
	}
}

// An add-only SAS (no read, update, delete or create) is
// enough, with NoCreateTable; without it the failed creation is reported and
// writing goes on.
func TestAddOnlySAS(t *testing.T) {
	env := azurite.Get(t)
	tbl := env.NewTable(t)
	name := azurite.TableName(tbl)
	ao := env.AddOnlyTable(t, name)
	ctx := ctxT(t, time.Minute)
	if _, err := ao.CreateTable(ctx, nil); err == nil {
		t.Fatal("the add-only SAS can create tables")
	}
	pager := ao.NewListEntitiesPager(nil)
	if _, err := pager.NextPage(ctx); err == nil {
		t.Fatal("the add-only SAS can read")
	}

	s, errs := newSink(t, ao, Options{NoCreateTable: true, BatchSize: 50})
	writeN(t, s, 120, "z")
	sl := slog.New(s.Handler(nil))
	for i := range 30 {
		sl.Info("s", "i", i)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(errs.all()) != 0 {
		t.Errorf("errors: %v", errs.all())
	}

	s2, errs2 := newSink(t, ao, Options{Service: "other"})
	writeN(t, s2, 10, "y")
	if err := s2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if all := errs2.all(); len(all) != 1 || !strings.Contains(all[0].Error(), "cannot create the table") {
		t.Errorf("errors: %v", all)
	}
	logs, catalog := readAll(t, tbl)
	if len(logs) != 160 || len(catalog) != 2 {
		t.Fatalf("%d stored, catalog %v", len(logs), catalog)
	}
}
