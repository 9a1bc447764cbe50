package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tablelog/tablelog/internal/schema"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Tests of the buffer and the background writer against fakeTable, in
// testing/synctest bubbles: timers are fake, so they take no time.

func writeN(t testing.TB, s *Sink, n int, prefix string) {
	t.Helper()
	l := zap.New(s.Core(zapcore.DebugLevel))
	for i := range n {
		l.Info(fmt.Sprintf("%s %d", prefix, i), zap.Int("i", i))
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{
		{},
		{Service: "bad service"},
		{Service: "a/b"},
		{Service: "ok", BatchSize: 101},
		{Service: "ok", BufferBytes: -1},
		{Service: "ok", Overflow: 7},
	} {
		if _, err := New(newFakeTable(), o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
	if _, err := New(nil, Options{Service: "ok"}); err == nil {
		t.Error("New(nil table) succeeded")
	}
	// A bad service name: schema's *ServiceError in the chain, under the
	// package's prefix once.
	_, err := New(newFakeTable(), Options{Service: "a b"})
	var se *schema.ServiceError
	if !errors.As(err, &se) || se.Name != "a b" || !strings.HasPrefix(err.Error(), `sink: service name "a b" has the character ' '`) {
		t.Errorf("bad service: %v", err)
	}
}

// A negative value is refused with an error naming the field, never taken as
// the default (the same rule as auditlog.New).
func TestOptionsNegativeRefused(t *testing.T) {
	for name, o := range map[string]Options{
		"FlushInterval":    {FlushInterval: -1},
		"BufferBytes":      {BufferBytes: -1},
		"MaxInFlight":      {MaxInFlight: -1},
		"BatchSize":        {BatchSize: -1},
		"MaxShards":        {MaxShards: -1},
		"MinRetryInterval": {MinRetryInterval: -time.Second},
		"MaxRetryInterval": {MaxRetryInterval: -time.Second},
		"RequestTimeout":   {RequestTimeout: -time.Second},
		"SyncTimeout":      {SyncTimeout: -time.Second},
		"MaxSpoolBytes":    {MaxSpoolBytes: -1},
	} {
		o.Service = "ok"
		_, err := New(newFakeTable(), o)
		if err == nil || !strings.Contains(err.Error(), "Options."+name+" is negative") {
			t.Errorf("%s negative: err = %v, want one naming Options.%s", name, err, name)
		}
	}
}

func TestFlushOnInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeTable()
		s, _ := newSink(t, f, Options{FlushInterval: time.Second})
		writeN(t, s, 5, "m")
		time.Sleep(900 * time.Millisecond)
		synctest.Wait()
		if n := f.count(); n != 0 {
			t.Fatalf("%d stored before the interval", n)
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if n := f.count(); n != 5 {
			t.Fatalf("%d stored after the interval, want 5", n)
		}
	})
}

// Full transactions go as they fill, without waiting for FlushInterval;
// under sustained load (the dispatcher polling) as well as from idle.
func TestFlushOnSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeTable()
		s, _ := newSink(t, f, Options{FlushInterval: time.Hour, BatchSize: 10})
		writeN(t, s, 25, "m")
		// A full transaction goes at once, or, while the dispatcher polls
		// under load, within fullPoll; the partial one waits for the interval.
		time.Sleep(fullPoll)
		synctest.Wait()
		if n := f.count(); n != 20 {
			t.Fatalf("%d stored, want the 2 full transactions (20)", n)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := f.count(); n != 20 {
			t.Fatalf("%d stored a minute later, want 20 (the partial transaction waits for FlushInterval)", n)
		}
		for _, c := range f.callsOf("SubmitTransaction") {
			if c.N != 10 {
				t.Errorf("transaction of %d, want 10", c.N)
			}
		}
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := f.count(); n != 25 {
			t.Fatalf("%d stored after Flush, want 25", n)
		}
	})
}

func TestRetryAfterHonoured(t *testing.T) {
	for _, h := range []http.Header{
		{"Retry-After": {"5"}},
		{"Retry-After-Ms": {"5000"}},
		{"Retry-After": {time.Date(2000, 1, 1, 0, 0, 5, 0, time.UTC).Format(http.TimeFormat)}}, // synctest's clock starts at 2000-01-01
	} {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeTable()
			var calls atomic.Int32
			f.fail = func(c fakeCall) error {
				if c.Op == "SubmitTransaction" && calls.Add(1) == 1 {
					return respError(http.StatusTooManyRequests, "TooManyRequests", h)
				}
				return nil
			}
			s, _ := newSink(t, f, Options{MinRetryInterval: 10 * time.Millisecond})
			start := time.Now()
			writeN(t, s, 10, "m")
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d < 5*time.Second || d > 6*time.Second {
				t.Errorf("stored after %v; Retry-After was 5s (header %v)", d, h)
			}
			if st := s.Stats(); st.Retries != 1 || st.Written != 10 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestBackoffExponentialWithJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeTable()
		var times []time.Time
		var mu sync.Mutex
		f.fail = func(c fakeCall) error {
			if c.Op != "SubmitTransaction" {
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			times = append(times, time.Now())
			if len(times) <= 6 {
				return respError(http.StatusServiceUnavailable, "ServerBusy", nil)
			}
			return nil
		}
		s, _ := newSink(t, f, Options{MinRetryInterval: 100 * time.Millisecond, MaxRetryInterval: time.Second})
		writeN(t, s, 10, "m")
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(times); i++ {
			ceil := min(100*time.Millisecond<<(i-1), time.Second)
			if d := times[i].Sub(times[i-1]); d < ceil/2 || d > ceil {
				t.Errorf("wait before attempt %d: %v, want [%v, %v]", i+1, d, ceil/2, ceil)
			}
		}
		if st := s.Stats(); st.Retries != 6 || st.Written != 10 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestLostResponseDoesNotDuplicate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeTable()
		var drops atomic.Int32
		f.dropResp = func(c fakeCall) bool { return c.Op != "CreateTable" && drops.Add(1) <= 3 }
		s, errs := newSink(t, f, Options{BatchSize: 10})
		writeN(t, s, 25, "m") // transactions of 10 and 10, then 5
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		st := s.Stats()
		if n := f.count(); n != 25 || st.Written != 25 || st.FailedRecords != 0 || st.Replaced != 0 {
			t.Fatalf("stored %d, stats %+v", n, st)
		}
		// Each lost response costs one retry answered "already exists",
		// which the atomicity of transactions makes a success: no bisection.
		if st.FailedBatches != 0 || st.Retries != 3 {
			t.Errorf("stats %+v", st)
		}
		_ = errs
	})
}

// badKey marks the entity fakeTable rejects in the tests below.
const badKey = "bad_x2E_field"

func enqueueRaw(t testing.TB, s *Sink, pk, rk, extra string) {
	t.Helper()
	e := fmt.Sprintf(`{"PartitionKey":%q,"RowKey":%q,"Time@odata.type":"Edm.DateTime","Time":"2026-11-25T10:00:00.0000000Z","Level":"warn","Severity":4,"Msg":"raw"%s}`, pk, rk, extra)
	if err := s.enqueue(pk, rk, []byte(e)); err != nil {
		t.Fatal(err)
	}
}

func TestBadRecordIsolatedAndRepaired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeTable()
		f.fail = func(c fakeCall) error {
			for _, d := range c.Data {
				if strings.Contains(string(d), `"`+badKey+`"`) {
					if c.Op == "SubmitTransaction" {
						return batchError(http.StatusBadRequest, "PropertyNameInvalid")
					}
					return respError(http.StatusBadRequest, "PropertyNameInvalid", nil)
				}
			}
			return nil
		}
		s, errs := newSink(t, f, Options{FlushInterval: time.Hour})
		now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		pk := schema.PartitionKey("svc", now)
		l := zap.New(s.Core(zapcore.DebugLevel), zap.WithClock(fixedClock{now}))
		var badRK string
		for i := range 100 {
			if i == 37 {
				badRK = schema.RowKey(s.gen.New(now))
				enqueueRaw(t, s, pk, badRK, `,"`+badKey+`":"v"`)
				continue
			}
			l.Info("good", zap.Int("i", i))
		}
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		st := s.Stats()
		if st.Written != 100 || st.Replaced != 1 || st.FailedRecords != 0 || st.FailedBatches == 0 {
			t.Fatalf("stats %+v", st)
		}
		if n := f.count(); n != 100 {
			t.Fatalf("%d stored, want 100", n)
		}
		f.mu.Lock()
		raw := f.rows[pk+"/"+badRK]
		f.mu.Unlock()
		e, err := schema.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		g, _ := e.Fields[RepairGroup].(map[string]any)
		if e.Msg != "raw" || e.Level != "warn" || e.Severity != 4 || e.Time.IsZero() ||
			!strings.Contains(fmt.Sprint(g[RepairKeyError]), "PropertyNameInvalid") ||
			!strings.Contains(fmt.Sprint(g[RepairKeyJSON]), badKey) {
			t.Errorf("repair entity %+v", e)
		}
		if len(errs.all()) != 1 || !strings.Contains(errs.all()[0].Error(), "repair entity") {
			t.Errorf("ErrorHandler got %v", errs.all())
		}
	})
}

func TestUnrepairableRecordCountedAndReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeTable()
		f.fail = func(c fakeCall) error {
			for _, k := range c.Keys {
				if strings.HasSuffix(k, "/BADKEY") {
					if c.Op == "AddEntity" {
						return respError(http.StatusBadRequest, "InvalidInput", nil)
					}
					return batchError(http.StatusBadRequest, "InvalidInput")
				}
			}
			return nil
		}
		s, errs := newSink(t, f, Options{FlushInterval: time.Hour})
		now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		pk := schema.PartitionKey("svc", now)
		writeN(t, s, 10, "m")
		enqueueRaw(t, s, pk, "BADKEY", "")
		writeN(t, s, 10, "n")
		err := s.Flush(context.Background())
		var de *DeliveryError
		if !errors.As(err, &de) || de.Failed != 1 || de.Pending != 0 {
			t.Fatalf("Flush: %v", err)
		}
		if !strings.Contains(err.Error(), "1 record was not delivered") {
			t.Errorf("message %q", err)
		}
		st := s.Stats()
		if st.Written != 20 || st.FailedRecords != 1 || st.Enqueued != 21 || st.BufferedRecords != 0 {
			t.Fatalf("stats %+v", st)
		}
		if len(errs.all()) != 1 || !strings.Contains(errs.all()[0].Error(), "BADKEY") {
			t.Errorf("ErrorHandler got %v", errs.all())
		}
	})
}

func TestDeniedIsNotBisected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeTable()
		f.fail = func(c fakeCall) error {
			if c.Op == "CreateTable" {
				return nil
			}
			return respError(http.StatusForbidden, "AuthorizationPermissionMismatch", nil)
		}
		s, errs := newSink(t, f, Options{})
		writeN(t, s, 100, "m")
		err := s.Flush(context.Background())
		var de *DeliveryError
		if !errors.As(err, &de) || de.Failed != 100 {
			t.Fatalf("Flush: %v", err)
		}
		// One transaction and the catalog insert; no bisection.
		if n := len(f.callsOf("SubmitTransaction")); n != 1 {
			t.Errorf("%d transactions", n)
		}
		if len(errs.all()) == 0 {
			t.Error("nothing reported")
		}
	})
}

// outage makes every call fail with 503 until it is turned off.
type outage struct{ on atomic.Bool }

func (o *outage) fail(c fakeCall) error {
	if o.on.Load() {
		return respError(http.StatusServiceUnavailable, "ServerBusy", nil)
	}
	return nil
}

func TestCloseDeadlineCountsUndelivered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeTable()
		var o outage
		o.on.Store(true)
		f.fail = o.fail
		s, _ := newSink(t, f, Options{MaxRetryInterval: 200 * time.Millisecond})
		writeN(t, s, 30, "m")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := s.Close(ctx)
		var de *DeliveryError
		if !errors.As(err, &de) || de.Failed != 30 || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close: %v", err)
		}
		if !strings.Contains(err.Error(), "30 records were not delivered") {
			t.Errorf("message %q", err)
		}
		st := s.Stats()
		if st.FailedRecords != 30 || st.BufferedRecords != 0 || st.BufferedBytes != 0 {
			t.Errorf("stats %+v", st)
		}
		// Refused afterwards, by both front ends, and counted.
		if err := zap.New(s.Core(zapcore.InfoLevel)).Core().Write(zapcore.Entry{Message: "late"}, nil); !errors.Is(err, ErrClosed) {
			t.Errorf("core Write after Close: %v", err)
		}
		if err := s.Handler(nil).Handle(context.Background(), slogRecord("late")); !errors.Is(err, ErrClosed) {
			t.Errorf("Handle after Close: %v", err)
		}
		if st := s.Stats(); st.Rejected != 2 {
			t.Errorf("Rejected = %d", st.Rejected)
		}
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

func TestFlushDeadlineReportsPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeTable()
		var o outage
		o.on.Store(true)
		f.fail = o.fail
		s, _ := newSink(t, f, Options{MaxRetryInterval: 200 * time.Millisecond})
		writeN(t, s, 7, "m")
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := s.Flush(ctx)
		cancel()
		var de *DeliveryError
		if !errors.As(err, &de) || de.Pending != 7 || de.Failed != 0 {
			t.Fatalf("Flush: %v", err)
		}
		o.on.Store(false)
		if err := s.Flush(context.Background()); err != nil {
			t.Fatalf("Flush after the outage: %v", err)
		}
		if n := f.count(); n != 7 {
			t.Fatalf("%d stored", n)
		}
	})
}

func TestDropNewestUnderOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeTable()
		var o outage
		o.on.Store(true)
		f.fail = o.fail
		const budget = 16 << 10
		s, _ := newSink(t, f, Options{BufferBytes: budget, Overflow: DropNewest, MaxRetryInterval: 100 * time.Millisecond})
		writeN(t, s, 500, "m") // never blocks
		st := s.Stats()
		if st.Dropped == 0 || st.Enqueued+st.Dropped != 500 || st.BufferedBytes > budget {
			t.Fatalf("stats %+v", st)
		}
		o.on.Store(false)
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		st = s.Stats()
		if n := f.count(); uint64(n) != st.Enqueued || st.Written != st.Enqueued {
			t.Fatalf("stored %d, stats %+v", n, st)
		}
	})
}

func TestBlockUnderOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeTable()
		var o outage
		o.on.Store(true)
		f.fail = o.fail
		const budget = 16 << 10
		s, _ := newSink(t, f, Options{BufferBytes: budget, MaxRetryInterval: 100 * time.Millisecond})
		var done atomic.Bool
		go func() {
			writeN(t, s, 500, "m")
			done.Store(true)
		}()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		st := s.Stats()
		if done.Load() || st.BufferedBytes > budget || st.Dropped != 0 {
			t.Fatalf("writer done=%v, stats %+v", done.Load(), st)
		}
		o.on.Store(false)
		for !done.Load() {
			time.Sleep(100 * time.Millisecond)
		}
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := f.count(); n != 500 {
			t.Fatalf("%d stored", n)
		}
	})
}

func TestCloseReleasesBlockedWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeTable()
		var o outage
		o.on.Store(true)
		f.fail = o.fail
		s, _ := newSink(t, f, Options{BufferBytes: 4 << 10, MaxRetryInterval: 100 * time.Millisecond})
		var werr error
		var done atomic.Bool
		go func() {
			c := s.Core(zapcore.InfoLevel)
			for i := 0; ; i++ {
				if werr = c.Write(zapcore.Entry{Message: "m", Time: time.Now()}, nil); werr != nil {
					break
				}
			}
			done.Store(true)
		}()
		time.Sleep(time.Second)
		synctest.Wait()
		if done.Load() {
			t.Fatal("writer not blocked")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := s.Close(ctx)
		synctest.Wait()
		if !done.Load() || !errors.Is(werr, ErrClosed) {
			t.Fatalf("blocked writer: done=%v err=%v", done.Load(), werr)
		}
		st := s.Stats()
		var de *DeliveryError
		if !errors.As(err, &de) || uint64(de.Failed) != st.Enqueued || st.Rejected != 1 {
			t.Fatalf("Close: %v; stats %+v", err, st)
		}
	})
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                         { return c.t }
func (c fixedClock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }

func slogRecord(msg string) slog.Record { return slog.NewRecord(time.Now(), slog.LevelInfo, msg, 0) }

func TestFatalFlushFailureReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeTable()
		var o outage
		o.on.Store(true)
		f.fail = o.fail
		s, _ := newSink(t, f, Options{SyncTimeout: 2 * time.Second, MaxRetryInterval: 100 * time.Millisecond})
		c := s.Core(zapcore.InfoLevel)
		start := time.Now()
		err := c.Write(zapcore.Entry{Level: zapcore.FatalLevel, Message: "fatal", Time: time.Now()}, nil)
		var de *DeliveryError
		if !errors.As(err, &de) || de.Pending != 1 || time.Since(start) != 2*time.Second {
			t.Fatalf("Write: %v after %v", err, time.Since(start))
		}
		if err := c.Write(zapcore.Entry{Level: zapcore.ErrorLevel, Message: "error", Time: time.Now()}, nil); err != nil {
			t.Fatalf("Error-level Write waited for the network: %v", err)
		}
		o.on.Store(false)
	})
}

func TestFlushReportsEarlierFailuresOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeTable()
		f.fail = func(c fakeCall) error {
			if c.Op == "SubmitTransaction" {
				return respError(http.StatusForbidden, "AuthorizationPermissionMismatch", nil)
			}
			return nil
		}
		s, _ := newSink(t, f, Options{BatchSize: 10})
		writeN(t, s, 10, "m")
		synctest.Wait() // given up on before any Flush
		if st := s.Stats(); st.FailedRecords != 10 || st.BufferedRecords != 0 {
			t.Fatalf("stats %+v", st)
		}
		var de *DeliveryError
		if err := s.Flush(context.Background()); !errors.As(err, &de) || de.Failed != 10 {
			t.Fatalf("first Flush: %v", err)
		}
		if err := s.Flush(context.Background()); err != nil {
			t.Fatalf("second Flush reported again: %v", err)
		}
	})
}

// Under sustained load the dispatcher polls every fullPoll instead of being
// woken per transaction, and stops polling when the load stops: a full
// transaction written afterwards still goes at once.
func TestFlushOnSizeAfterLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeTable()
		s, _ := newSink(t, f, Options{FlushInterval: time.Hour, BatchSize: 10})
		for round := range 50 {
			writeN(t, s, 30, "m")
			time.Sleep(fullPoll)
			synctest.Wait()
			if n, want := f.count(), 30*(round+1); n != want {
				t.Fatalf("round %d: %d stored, want %d", round, n, want)
			}
		}
		time.Sleep(time.Second) // idle: polling stops
		synctest.Wait()
		if s.buf.isPolling() {
			t.Fatal("still polling after a second without records")
		}
		writeN(t, s, 10, "m")
		synctest.Wait()
		if n := f.count(); n != 1510 {
			t.Fatalf("%d stored, want 1510: the full transaction after the load went without a wake-up", n)
		}
	})
}
