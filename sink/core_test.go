package sink

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Integration tests of the zap core against Azurite through the strict
// proxy: entities, day rollover and transaction limits, the zap Core
// contract, flush triggers, Tee and sampling.

// stepClock is a zap clock that advances by step on every call.
type stepClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.step)
	return t
}
func (c *stepClock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }

// Entity shape, day rollover, transactions within Azure's limits
// (the strict proxy rejects more than 100 operations, several partitions
// or more than 4 MiB in a transaction).
func TestEntitiesRolloverAndTransactionLimits(t *testing.T) {
	env := azurite.Get(t)
	p := env.NewProxy(t)
	name := azurite.TableName(env.NewTable(t))
	tbl := p.Table(t, name)
	s, errs := newSink(t, tbl, Options{Service: "shop", FlushInterval: time.Hour})

	clock := &stepClock{t: time.Date(2026, 11, 25, 23, 59, 59, 900_000_000, time.UTC), step: time.Millisecond}
	l := zap.New(s.Core(zapcore.DebugLevel), zap.WithClock(clock))
	for i := range 150 { // 100 on the 25th, 50 on the 26th
		l.Info(fmt.Sprintf("m%03d", i), zap.Int("i", i))
	}
	big := strings.Repeat("x", 500_000) // ~1 MB in Azure's accounting: 7 to a transaction
	for i := range 10 {
		l.Warn(fmt.Sprintf("big%d", i), zap.String("blob", big))
	}
	// aztables re-encodes entities with encoding/json, which writes '<' as
	// \u003c: 200K of them are 1.2 MB on the wire, 3 to a transaction.
	lt := strings.Repeat("<", 200_000)
	for i := range 5 {
		l.Warn(fmt.Sprintf("lt%d", i), zap.String("html", lt))
	}
	if err := s.Flush(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Written != 165 || st.FailedBatches != 0 || st.FailedRecords != 0 || len(errs.all()) != 0 {
		t.Fatalf("stats %+v, errors %v", st, errs.all())
	}
	if ps := p.Stats(); len(ps.Rejected) != 0 || ps.Batches < 5 { // 100 | 50 small + 7 big | 3 big + 2 lt | 3 lt
		t.Fatalf("proxy: %+v", ps)
	}

	logs, catalog := readAll(t, tbl)
	if len(logs) != 165 {
		t.Fatalf("%d entities, want 165", len(logs))
	}
	parts := map[string]int{}
	for _, e := range logs {
		parts[e.PartitionKey]++
		if want := schema.PartitionKey("shop", e.Time); e.PartitionKey != want {
			t.Errorf("%s at %v is in partition %s, want %s", e.Msg, e.Time, e.PartitionKey, want)
		}
		if rt, err := schema.RowKeyTime(e.RowKey); err != nil || !rt.Equal(e.Time.Truncate(time.Millisecond)) {
			t.Errorf("%s: RowKey time %v, Time %v (%v)", e.Msg, rt, e.Time, err)
		}
	}
	if parts["shop_20261125"] != 100 || parts["shop_20261126"] != 65 {
		t.Errorf("partitions %v", parts)
	}
	if len(catalog) != 2 {
		t.Errorf("catalog %v", catalog)
	}
	m := byMsg(logs)
	if e := m["big3"]; e.Level != "warn" || e.Severity != 4 || e.Fields["blob"] != big || e.Truncated != 0 {
		t.Errorf("big3: level %q severity %d truncated %d, blob of %d chars", e.Level, e.Severity, e.Truncated, len(fmt.Sprint(e.Fields["blob"])))
	}
	// Newest first within a partition.
	var prev string
	for _, e := range logs {
		if e.PartitionKey == "shop_20261125" {
			if prev != "" && e.Msg > prev {
				t.Fatalf("RowKey order: %s after %s", e.Msg, prev)
			}
			prev = e.Msg
		}
	}
}

// Field types, logger name, caller, stack, namespaces, With.
func TestCoreFieldsAndContract(t *testing.T) {
	tbl := azurite.Get(t).NewTable(t)
	s, _ := newSink(t, tbl, Options{})
	at := time.Date(2026, 11, 25, 8, 30, 0, 123456700, time.UTC)
	l := zap.New(s.Core(zapcore.InfoLevel), zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel)).Named("api").Named("orders")
	l.Debug("disabled")
	if ce := l.Check(zapcore.DebugLevel, "checked"); ce != nil {
		t.Error("Check returned an entry for a disabled level")
	}
	l.With(zap.String("req", "r1")).
		Info("typed",
			zap.Int("int", -42),
			zap.Int64("i64", 1<<40),
			zap.Int32("i32", 7),
			zap.Uint64("u64", 1<<63),
			zap.String("s", "héllo"),
			zap.Bool("ok", true),
			zap.Float64("f", 0.25),
			zap.Float32("f32", 0.1),
			zap.Duration("d", 1500*time.Millisecond),
			zap.Time("at", at),
			zap.Error(errors.New("boom")),
			zap.Binary("bin", []byte{0, 1, 2}),
			zap.Ints("ints", []int{1, 2, 3}),
			zap.Object("obj", zapcore.ObjectMarshalerFunc(func(e zapcore.ObjectEncoder) error {
				e.AddString("a", "b")
				e.OpenNamespace("n")
				e.AddInt("c", 1)
				return nil
			})),
			zap.Namespace("http"),
			zap.String("method", "GET"),
			zap.Namespace("inner"),
			zap.String("deep", "yes"),
		)
	// A namespace in With holds the entry's fields too.
	l.With(zap.Namespace("ctx"), zap.String("a", "b")).Info("ns", zap.String("c", "d"))
	l.Error("failed")
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	logs, _ := readAll(t, tbl)
	m := byMsg(logs)
	if len(logs) != 3 {
		t.Fatalf("%d entities: %v", len(logs), m)
	}
	e := m["typed"]
	if e.Logger != "api.orders" || e.Level != "info" || e.Severity != 0 || !strings.Contains(e.Caller, "core_test.go:") {
		t.Errorf("system columns: %+v", e)
	}
	f := e.Fields
	want := map[string]any{
		"req": "r1", "int": int64(-42), "i64": int64(1 << 40), "i32": int32(7), "s": "héllo", "ok": true,
		"f": 0.25, "f32": 0.1, "d": int64(1500 * time.Millisecond), "at": at, "error": "boom",
		"bin": []byte{0, 1, 2}, "ints": "[1,2,3]", "obj": `{"a":"b","n":{"c":1}}`,
	}
	for k, v := range want {
		if got := f[k]; fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", v) {
			t.Errorf("field %s = %#v, want %#v", k, got, v)
		}
	}
	if got := fmt.Sprint(f["u64"]); got != "9223372036854775808" {
		t.Errorf("u64 = %v", got)
	}
	httpG, _ := f["http"].(map[string]any)
	inner, _ := httpG["inner"].(map[string]any)
	if httpG["method"] != "GET" || inner["deep"] != "yes" {
		t.Errorf("namespaces: %#v", f["http"])
	}
	if g, _ := m["ns"].Fields["ctx"].(map[string]any); g["a"] != "b" || g["c"] != "d" || len(m["ns"].Fields) != 1 {
		t.Errorf("With namespace: %#v", m["ns"].Fields)
	}
	if e := m["failed"]; e.Severity != 8 || !strings.Contains(e.Stack, "TestCoreFieldsAndContract") {
		t.Errorf("error entry: severity %d, stack %q", e.Severity, e.Stack)
	}
}

// countingObject counts how often zap asks it to encode itself.
type countingObject struct{ n atomic.Int32 }

func (c *countingObject) MarshalLogObject(e zapcore.ObjectEncoder) error {
	c.n.Add(1)
	e.AddString("k", "v")
	return nil
}

// The logging goroutine only encodes and enqueues (it does not
// wait for the network even when the service is down), fields are not
// retained, With encodes once.
func TestCoreEncodesOnCallerAndRetainsNothing(t *testing.T) {
	env := azurite.Get(t)
	p := env.NewProxy(t)
	name := azurite.TableName(env.NewTable(t))
	tbl := p.Table(t, name)
	s, _ := newSink(t, tbl, Options{MaxRetryInterval: 50 * time.Millisecond})

	p.Outage(time.Hour)
	obj := &countingObject{}
	l := zap.New(s.Core(zapcore.InfoLevel)).With(zap.Object("with", obj))
	buf := []byte("original")
	start := time.Now()
	for i := range 1000 {
		l.Info("during outage", zap.Int("i", i), zap.ByteString("b", buf))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("1000 writes during an outage took %v", d)
	}
	copy(buf, "MUTATED!")
	if n := obj.n.Load(); n != 1 {
		t.Errorf("With's object encoded %d times, want 1", n)
	}
	p.Reset()
	if err := s.Flush(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	logs, _ := readAll(t, tbl)
	if len(logs) != 1000 {
		t.Fatalf("%d stored", len(logs))
	}
	for _, e := range logs {
		if e.Fields["b"] != "original" || e.Fields["with"] != `{"k":"v"}` {
			t.Fatalf("fields %v", e.Fields)
		}
	}
}

// Flush on interval, on size, on Sync and Close; DPanic,
// Panic and Fatal entries are stored before Write returns.
func TestFlushTriggers(t *testing.T) {
	env := azurite.Get(t)
	t.Run("interval", func(t *testing.T) {
		tbl := env.NewTable(t)
		s, _ := newSink(t, tbl, Options{FlushInterval: 100 * time.Millisecond})
		zap.New(s.Core(zapcore.InfoLevel)).Info("tick")
		deadline := time.Now().Add(10 * time.Second)
		for {
			if logs, _ := readAll(t, tbl); len(logs) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("not stored within 10s")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	t.Run("size", func(t *testing.T) {
		tbl := env.NewTable(t)
		s, _ := newSink(t, tbl, Options{FlushInterval: time.Hour, BatchSize: 20})
		writeN(t, s, 45, "m")
		deadline := time.Now().Add(10 * time.Second)
		for {
			logs, _ := readAll(t, tbl)
			if len(logs) == 40 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d stored within 10s, want the two full transactions (40)", len(logs))
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	t.Run("sync-and-close", func(t *testing.T) {
		tbl := env.NewTable(t)
		s, _ := newSink(t, tbl, Options{FlushInterval: time.Hour})
		l := zap.New(s.Core(zapcore.InfoLevel))
		l.Info("one")
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		if logs, _ := readAll(t, tbl); len(logs) != 1 {
			t.Fatalf("%d stored after Sync", len(logs))
		}
		l.Info("two")
		if err := s.Close(ctxT(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		if logs, _ := readAll(t, tbl); len(logs) != 2 {
			t.Fatalf("%d stored after Close", len(logs))
		}
	})
	t.Run("fatal", func(t *testing.T) {
		tbl := env.NewTable(t)
		s, _ := newSink(t, tbl, Options{FlushInterval: time.Hour})
		hook := &storedHook{t: t, tbl: tbl}
		l := zap.New(s.Core(zapcore.InfoLevel), zap.WithFatalHook(hook))
		l.Info("before")
		l.Fatal("fatal!", zap.String("why", "test"))
		if !hook.called || !hook.stored {
			t.Fatalf("Fatal: hook called %v, entry stored before the exit hook ran: %v", hook.called, hook.stored)
		}
	})
	t.Run("panic", func(t *testing.T) {
		tbl := env.NewTable(t)
		s, _ := newSink(t, tbl, Options{FlushInterval: time.Hour})
		l := zap.New(s.Core(zapcore.InfoLevel), zap.WithPanicHook(zapcore.WriteThenPanic))
		func() {
			defer func() { _ = recover() }()
			l.Panic("panic!")
		}()
		logs, _ := readAll(t, tbl)
		if len(logs) != 1 || logs[0].Level != "panic" || logs[0].Severity != 16 {
			t.Fatalf("after Panic: %+v", logs)
		}
		l.DPanic("dpanic!") // production logger: no panic, still flushed
		logs, _ = readAll(t, tbl)
		if len(logs) != 2 || byMsg(logs)["dpanic!"].Severity != 12 {
			t.Fatalf("after DPanic: %+v", logs)
		}
	})
}

// storedHook is a Fatal hook that, instead of exiting, checks that the
// fatal entry is already in the table.
type storedHook struct {
	t      *testing.T
	tbl    *aztables.Client
	called bool
	stored bool
}

func (h *storedHook) OnWrite(ce *zapcore.CheckedEntry, _ []zapcore.Field) {
	h.called = true
	logs, _ := readAll(h.t, h.tbl)
	for _, e := range logs {
		if e.Msg == ce.Message && e.Level == "fatal" && e.Severity == 20 && e.Fields["why"] == "test" {
			h.stored = true
		}
	}
}

// The core under zapcore.NewTee and NewSamplerWithOptions.
func TestCoreTeeAndSampler(t *testing.T) {
	tbl := azurite.Get(t).NewTable(t)
	s, _ := newSink(t, tbl, Options{})
	var other countingCore
	core := zapcore.NewTee(
		zapcore.NewSamplerWithOptions(s.Core(zapcore.InfoLevel), time.Minute, 3, 0),
		&other,
	)
	l := zap.New(core)
	for range 10 {
		l.Info("repeated")
	}
	l.Warn("once")
	l.Debug("disabled everywhere")
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	logs, _ := readAll(t, tbl)
	m := map[string]int{}
	for _, e := range logs {
		m[e.Msg]++
	}
	if m["repeated"] != 3 || m["once"] != 1 || len(m) != 2 {
		t.Errorf("stored %v, want 3 sampled + 1", m)
	}
	if other.n.Load() != 11 {
		t.Errorf("the other core got %d entries", other.n.Load())
	}
}

type countingCore struct{ n atomic.Int32 }

func (c *countingCore) Enabled(l zapcore.Level) bool      { return l >= zapcore.InfoLevel }
func (c *countingCore) With([]zapcore.Field) zapcore.Core { return c }
func (c *countingCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}
func (c *countingCore) Write(zapcore.Entry, []zapcore.Field) error { c.n.Add(1); return nil }
func (c *countingCore) Sync() error                                { return nil }

type panickyObject struct{}

func (panickyObject) MarshalLogObject(zapcore.ObjectEncoder) error { panic("object boom") }

// A field whose marshaler panics is stored as "<panic: …>" and the fields
// after it are encoded as usual, in Write and in With.
func TestCorePanickingFieldKeepsTheRest(t *testing.T) {
	tbl := azurite.Get(t).NewTable(t)
	s, _ := newSink(t, tbl, Options{})
	l := zap.New(s.Core(zapcore.InfoLevel)).With(zap.Object("w1", panickyObject{}), zap.Int("w2", 2))
	l.Info("m", zap.Int("a", 1), zap.Object("p1", panickyObject{}), zap.Int("b", 2), zap.Object("p2", panickyObject{}), zap.Int("c", 3))
	if err := s.Flush(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	logs, _ := readAll(t, tbl)
	if len(logs) != 1 {
		t.Fatalf("%d stored", len(logs))
	}
	f := logs[0].Fields
	for k, want := range map[string]any{"a": int64(1), "b": int64(2), "c": int64(3), "w2": int64(2),
		"p1": "<panic: object boom>", "p2": "<panic: object boom>", "w1": "<panic: object boom>"} {
		if f[k] != want {
			t.Errorf("field %s = %#v, want %#v (all: %v)", k, f[k], want, f)
		}
	}
}
