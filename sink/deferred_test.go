package sink

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
	"weak"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Tests of deferred encoding (deferred.go): which entries are deferred,
// that the dispatcher makes the entity Write would have made, that nothing
// the caller may change afterwards is read late, the order of records, the
// buffer's accounting, and that a deferred entry keeps nothing alive once
// encoded.

// deferrable returns fields of every type an entry may be deferred with,
// including values the encoder repairs, truncates or moves to Extra.
func deferrable() []zapcore.Field {
	ny, _ := time.LoadLocation("America/New_York")
	return []zapcore.Field{
		zap.Bool("ok", true),
		zap.Duration("d", 1500*time.Millisecond),
		zap.Float64("f", 0.25),
		zap.Float64("nan", math.NaN()),
		zap.Float32("f32", 0.1),
		zap.Int64("i64", 1<<40),
		zap.Int32("i32", -7),
		zap.Int16("i16", 300),
		zap.Int8("i8", -8),
		zap.Uint64("u64", 1<<63),
		zap.Uint32("u32", 1<<31),
		zap.Uint16("u16", 65535),
		zap.Uint8("u8", 255),
		zap.Uintptr("uptr", 0xdead),
		zap.Complex128("c128", complex(1, -2)),
		zap.Complex64("c64", complex(0.5, 3)),
		zap.Time("at", time.Date(2026, 11, 25, 8, 30, 0, 123456700, ny)),
		zap.Time("old", time.Date(1500, 1, 2, 3, 4, 5, 0, time.UTC)), // TimeFullType, stored as text
		zap.String("s", "héllo"),
		zap.String("bad", "a\xffb"),
		zap.String("long", strings.Repeat("x", 40_000)), // continues in long_z1
		zap.String("Msg", "a field named like a column"),
		zap.String("dup", "one"),
		zap.String("dup", "two"), // a repeated name goes to Extra
		zap.Error(errors.New("boom")),
		zap.NamedError("cause", errors.New("root cause")),
		zap.Skip(),
		zap.Namespace("http"),
		zap.String("method", "GET"),
		zap.Int("status", 200),
	}
}

// The entity the dispatcher encodes from a deferred entry is, byte for
// byte, the one Write encodes on the logging goroutine, with the same
// repairs and truncations.
func TestDeferredEntityMatchesWrite(t *testing.T) {
	s, _ := newSDKSink(t, newFakeTable(), Options{})
	c := s.Core(zapcore.DebugLevel).With([]zapcore.Field{zap.String("req", "r1"), zap.Namespace("ctx")}).(*core)
	ent := zapcore.Entry{
		Level: zapcore.WarnLevel, Time: time.Date(2026, 12, 6, 23, 59, 59, 999999999, time.UTC),
		LoggerName: "api.orders", Message: "request handled",
		Caller: zapcore.NewEntryCaller(0, "/src/api/orders.go", 42, true), Stack: "goroutine 1 [running]:\nmain.main()",
	}
	fields := deferrable()
	var p pendingZap
	if !c.deferZap(&p, ent, fields) {
		t.Fatal("entry not deferred")
	}

	// Write's encoding of the same entry under the same keys.
	st := newEncState(s)
	st.enc.Reset(p.pk, string(schema.AppendRowKey(nil, p.id)))
	st.writeZap(ent, p.t, c.frag, fields)
	want := bytes.Clone(st.enc.Finish())
	wantRepairs, wantTruncs := st.enc.Repairs(), st.enc.Truncations()

	d := &deferred{fields: make([]zapcore.Field, len(fields))}
	p.fill(d)
	st2 := newEncState(s)
	got := st2.encodeDeferred(d)
	if !bytes.Equal(got, want) {
		t.Fatalf("deferred entity differs from Write's:\n got %.600s\nwant %.600s", got, want)
	}
	if st2.enc.Repairs() != wantRepairs || st2.enc.Truncations() != wantTruncs {
		t.Errorf("repairs/truncations %d/%d, Write's %d/%d", st2.enc.Repairs(), st2.enc.Truncations(), wantRepairs, wantTruncs)
	}
	if wantRepairs == 0 {
		t.Error("the fields were meant to need repairs")
	}
	for _, col := range []string{`"ctx__long_z1":`, `"Extra":`, `"ctx__cause":"root cause"`, `"ctx__error":"boom"`, `"ctx__http__status":"200"`} {
		if !bytes.Contains(got, []byte(col)) {
			t.Errorf("entity lacks %s: …%s", col, got[max(0, len(got)-400):])
		}
	}
}

// formatterErr is an error zap writes with a …Verbose field.
type formatterErr struct{}

func (formatterErr) Error() string                 { return "short" }
func (formatterErr) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte("short\nwith a stack")) }

// groupErr is an error zap writes with a …Causes array.
type groupErr struct{}

func (groupErr) Error() string   { return "two errors" }
func (groupErr) Errors() []error { return []error{errors.New("a"), errors.New("b")} }

// panicErr panics in Error, as a nil pointer with a value receiver would.
type panicErr struct{ p *string }

func (e panicErr) Error() string { return *e.p }

// stringer's text is whatever s holds when zap asks.
type stringer struct{ s *string }

func (x stringer) String() string { return *x.s }

// Only entries whose fields cannot change after the call are deferred;
// everything else, and every entry with a spool or above ErrorLevel, is
// encoded by Write.
func TestDeferZapDecides(t *testing.T) {
	s, _ := newSDKSink(t, newFakeTable(), Options{})
	c := s.Core(zapcore.DebugLevel).(*core)
	info := zapcore.Entry{Level: zapcore.InfoLevel, Message: "m"}
	text := "text"
	many := func(n int, f func(i int) zapcore.Field) []zapcore.Field {
		var fs []zapcore.Field
		for i := range n {
			fs = append(fs, f(i))
		}
		return fs
	}
	for _, tc := range []struct {
		name   string
		ent    zapcore.Entry
		fields []zapcore.Field
		want   bool
	}{
		{"no fields", info, nil, true},
		{"every plain type", info, deferrable(), true},
		{"64 fields", info, many(64, func(i int) zapcore.Field { return zap.Int(fmt.Sprint("k", i), i) }), true},
		{"65 fields", info, many(65, func(i int) zapcore.Field { return zap.Int(fmt.Sprint("k", i), i) }), false},
		{"4 errors", info, many(4, func(i int) zapcore.Field { return zap.NamedError(fmt.Sprint("e", i), errors.New("x")) }), true},
		{"5 errors", info, many(5, func(i int) zapcore.Field { return zap.NamedError(fmt.Sprint("e", i), errors.New("x")) }), false},
		{"60 KB", info, []zapcore.Field{zap.String("s", strings.Repeat("x", 60_000))}, true},
		{"70 KB", info, []zapcore.Field{zap.String("s", strings.Repeat("x", 70_000))}, false},
		{"70 KB message", zapcore.Entry{Level: zapcore.InfoLevel, Message: strings.Repeat("x", 70_000)}, nil, false},
		{"error level", zapcore.Entry{Level: zapcore.ErrorLevel}, []zapcore.Field{zap.Int("i", 1)}, true},
		{"dpanic level", zapcore.Entry{Level: zapcore.DPanicLevel}, []zapcore.Field{zap.Int("i", 1)}, false},
		{"binary", info, []zapcore.Field{zap.Binary("b", []byte{1})}, false},
		{"byte string", info, []zapcore.Field{zap.ByteString("b", []byte("x"))}, false},
		{"stringer", info, []zapcore.Field{zap.Stringer("s", stringer{&text})}, false},
		{"array", info, []zapcore.Field{zap.Ints("a", []int{1})}, false},
		{"object", info, []zapcore.Field{zap.Object("o", zapcore.ObjectMarshalerFunc(func(zapcore.ObjectEncoder) error { return nil }))}, false},
		{"inline", info, []zapcore.Field{zap.Inline(zapcore.ObjectMarshalerFunc(func(zapcore.ObjectEncoder) error { return nil }))}, false},
		{"reflected", info, []zapcore.Field{zap.Reflect("r", struct{ A int }{1})}, false},
		{"formatter error", info, []zapcore.Field{zap.Error(formatterErr{})}, false},
		{"error group", info, []zapcore.Field{zap.Error(groupErr{})}, false},
		{"panicking error", info, []zapcore.Field{zap.Error(panicErr{})}, false},
	} {
		var p pendingZap
		if got := c.deferZap(&p, tc.ent, tc.fields); got != tc.want {
			t.Errorf("%s: deferred %v, want %v", tc.name, got, tc.want)
		}
	}

	spooled, _ := newSDKSink(t, newFakeTable(), Options{SpoolDir: t.TempDir()})
	var p pendingZap
	if spooled.Core(zapcore.DebugLevel).(*core).deferZap(&p, info, []zapcore.Field{zap.Int("i", 1)}) {
		t.Error("an entry was deferred with a spool")
	}
}

// mutableErr's text changes when msg does.
type mutableErr struct{ msg *string }

func (e mutableErr) Error() string { return *e.msg }

// Against Azurite: deferred entries are stored as Write would have stored
// them, with the values they had at the call: the caller's field slice
// reused, an error's text changed, a Stringer and a []byte changed (those
// entries are not deferred). Records keep the order of the calls, deferred
// or not, and the buffer's accounting ends at zero.
func TestDeferredEndToEnd(t *testing.T) {
	tbl := azurite.Get(t).NewTable(t)
	// No tick and fewer records than a transaction: nothing is taken
	// before Flush, so the deferred entries wait unencoded meanwhile.
	s, _ := newSink(t, tbl, Options{FlushInterval: time.Hour})
	l := zap.New(s.Core(zapcore.DebugLevel)).With(zap.String("svc", "orders"))

	errText, strText := "error at the call", "stringer at the call"
	buf := []byte("bytes at the call")
	fields := []zapcore.Field{zap.Int("n", 1), zap.String("s", "string at the call"), zap.Error(mutableErr{&errText})}
	l.Info("deferred", fields...)
	l.Info("not deferred", zap.Stringer("str", stringer{&strText}), zap.ByteString("b", buf))
	const mixed = 40 // alternately deferred and not
	for i := range mixed {
		if i%2 == 0 {
			l.Info("mixed", zap.Int("i", i))
		} else {
			l.Info("mixed", zap.Int("i", i), zap.Stringer("str", stringer{&strText}))
		}
	}
	if n := s.buf.deferredCount(); n != 1+mixed/2 {
		t.Fatalf("%d entries wait to be encoded, want %d", n, 1+mixed/2)
	}

	// The caller reuses its slice and changes what it logged.
	for i := range fields {
		fields[i] = zap.String(fields[i].Key, "CHANGED")
	}
	errText, strText = "CHANGED", "CHANGED"
	copy(buf, "CHANGED")

	if err := s.Flush(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.BufferedRecords != 0 || st.BufferedBytes != 0 || st.Written != st.Enqueued || st.Written != 2+mixed {
		t.Errorf("stats after Flush: %+v", st)
	}
	if n := s.buf.deferredCount(); n != 0 {
		t.Errorf("%d deferred entries left", n)
	}

	logs, _ := readAll(t, tbl)
	m := byMsg(logs)
	d := m["deferred"].Fields
	if d["n"] != int64(1) || d["s"] != "string at the call" || d["error"] != "error at the call" || d["svc"] != "orders" {
		t.Errorf("deferred entry stored %v", d)
	}
	if nd := m["not deferred"].Fields; nd["str"] != "stringer at the call" || nd["b"] != "bytes at the call" {
		t.Errorf("entry encoded at the call stored %v", nd)
	}
	checkCallOrder(t, logs, mixed)
}

// blockingTable is a fakeTable whose calls wait until release is closed.
func blockingTable() (*fakeTable, func()) {
	f := newFakeTable()
	release := make(chan struct{})
	f.fail = func(fakeCall) error { <-release; return nil }
	var once sync.Once
	return f, func() { once.Do(func() { close(release) }) }
}

// While the table does not answer, deferred entries count in BufferBytes
// (by estimate until encoded), the buffer drops past it (DropNewest), at
// most maxDeferredBytes of entries wait unencoded (Write encodes the rest
// itself),
// and repairs made by the dispatcher are counted. Afterwards the accounting
// ends at zero.
func TestDeferredAccounting(t *testing.T) {
	tbl, release := blockingTable()
	defer release()
	const limit, n = 16 << 20, 40_000
	s, _ := newSDKSink(t, tbl, Options{BufferBytes: limit, Overflow: DropNewest, ErrorHandler: func(error) {}})
	l := zap.New(s.Core(zapcore.DebugLevel))
	l.Info("repaired", zap.String("bad", "a\xffb"))
	maxWaiting := int64(0)
	for i := range n - 1 {
		l.Info("record", zap.Int("i", i), zap.String("pad", strings.Repeat("p", 200)))
		if n := s.buf.deferredBytes.Load(); n > maxWaiting {
			maxWaiting = n
		}
	}
	st := s.Stats()
	if st.Dropped == 0 {
		t.Errorf("nothing dropped with %d records of ~1,000 bytes in a %d-byte buffer", n, limit)
	}
	if st.BufferedBytes > limit+64<<10 {
		t.Errorf("buffer holds %d bytes, limit %d", st.BufferedBytes, limit)
	}
	if maxWaiting > maxDeferredBytes+deferredSize(2, 0) || maxWaiting < maxDeferredBytes/2 {
		t.Errorf("up to %d bytes of entries waited unencoded, want about %d", maxWaiting, maxDeferredBytes)
	}
	release()
	if err := s.Flush(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	st = s.Stats()
	if st.BufferedBytes != 0 || st.BufferedRecords != 0 || st.Written != st.Enqueued || st.Written+st.Dropped != n {
		t.Errorf("stats after Flush: %+v", st)
	}
	if st.Repaired != 1 {
		t.Errorf("Repaired = %d, want 1 (the invalid UTF-8)", st.Repaired)
	}
	if got := tbl.count(); uint64(got) != st.Written {
		t.Errorf("table holds %d, Written %d", got, st.Written)
	}
}

// Once encoded, a deferred entry holds nothing of what it was given: a big
// string logged once can be collected while the sink runs on.
func TestDeferredKeepsNothingAlive(t *testing.T) {
	s, _ := newSDKSink(t, newFakeTable(), Options{})
	l := zap.New(s.Core(zapcore.DebugLevel))
	wp := func() weak.Pointer[byte] {
		big := strings.Repeat("y", 32<<10)
		l.Info("big", zap.String("big", big))
		return weak.Make(unsafe.StringData(big))
	}()
	if s.buf.deferredCount() != 1 {
		t.Fatal("the entry was not deferred")
	}
	if err := s.Flush(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		runtime.GC()
	}
	if wp.Value() != nil {
		t.Error("the logged string is still reachable after its entry was encoded and stored")
	}
}

// logValuer's LogValue counts its calls and returns n.
type logValuer struct{ calls *int }

func (v logValuer) LogValue() slog.Value { *v.calls++; return slog.IntValue(*v.calls) }

// deferrableAttrs returns attributes of every kind a slog record may be
// deferred with, including values the encoder repairs, truncates or moves
// to Extra.
func deferrableAttrs(calls *int) []slog.Attr {
	var nilErr *os.PathError
	return []slog.Attr{
		slog.String("s", "héllo"),
		slog.String("bad", "a\xffb"),
		slog.String("long", strings.Repeat("x", 40_000)),
		slog.Int("i", -42),
		slog.Uint64("u", 1<<63),
		slog.Float64("f", math.Inf(1)),
		slog.Bool("ok", true),
		slog.Duration("d", time.Second),
		slog.Time("at", time.Date(1500, 1, 2, 3, 4, 5, 0, time.UTC)),
		slog.Any("error", errors.New("boom")),
		slog.Any("nilerr", nilErr),
		slog.Any("lv", logValuer{calls}),
		slog.String("dup", "one"),
		slog.String("dup", "two"),
		slog.String("Level", "a field named like a column"),
	}
}

// The entity the dispatcher encodes from a deferred slog record is, byte
// for byte, the one Handle encodes on the logging goroutine.
func TestDeferredSlogMatchesHandle(t *testing.T) {
	s, _ := newSDKSink(t, newFakeTable(), Options{})
	h := s.Handler(&slog.HandlerOptions{Level: slog.LevelDebug, AddSource: true}).
		WithAttrs([]slog.Attr{slog.String("req", "r1")}).WithGroup("ctx").(*handler)
	var pcs [1]uintptr
	runtime.Callers(1, pcs[:])
	for _, at := range []time.Time{time.Date(2026, 12, 6, 23, 59, 59, 999999999, time.UTC), {}} {
		calls := 0
		r := slog.NewRecord(at, slog.LevelWarn+2, "request handled", pcs[0])
		r.AddAttrs(deferrableAttrs(&calls)...)
		var p pendingSlog
		if !h.deferSlog(&p, &r) {
			t.Fatal("record not deferred")
		}
		if calls != 1 {
			t.Fatalf("LogValue called %d times during the call, want 1", calls)
		}

		// Handle's encoding of the same record under the same keys.
		calls = 0
		st := newEncState(s)
		st.h = h
		st.enc.Reset(p.pk, string(schema.AppendRowKey(nil, p.id)))
		st.writeSlogHead(r.Time, r.Level, r.Message, r.PC)
		st.enc.AppendFragment(h.frag)
		r.Attrs(st.attrFn)
		want := bytes.Clone(st.enc.Finish())

		d := &deferred{attrs: make([]slog.Attr, p.n)}
		p.fill(d)
		got := newEncState(s).encodeDeferred(d)
		if !bytes.Equal(got, want) {
			t.Fatalf("time %v: deferred entity differs from Handle's:\n got %.600s\nwant %.600s", at, got, want)
		}
		for _, col := range []string{`"ctx__long_z1":`, `"Extra":`, `"ctx__error":"boom"`, `"ctx__nilerr":"<nil>"`, `"Caller":`, `"Level":"warn+2"`} {
			if !bytes.Contains(got, []byte(col)) {
				t.Errorf("entity lacks %s: …%s", col, got[max(0, len(got)-400):])
			}
		}
		if hasTime := bytes.Contains(got, []byte(`"Time":`)); hasTime == at.IsZero() {
			t.Errorf("time %v: Time column present %v", at, hasTime)
		}
	}
}

// Only records whose attributes cannot change after the call are deferred,
// and none of a Handler with ReplaceAttr or of a Sink with a spool.
func TestDeferSlogDecides(t *testing.T) {
	s, _ := newSDKSink(t, newFakeTable(), Options{})
	h := s.Handler(nil).(*handler)
	calls := 0
	many := func(n int) []slog.Attr {
		var as []slog.Attr
		for i := range n {
			as = append(as, slog.Int(fmt.Sprint("k", i), i))
		}
		return as
	}
	for _, tc := range []struct {
		name  string
		attrs []slog.Attr
		want  bool
	}{
		{"no attributes", nil, true},
		{"every plain kind", deferrableAttrs(&calls), true},
		{"16 attributes", many(16), true},
		{"17 attributes", many(17), false},
		{"60 KB", []slog.Attr{slog.String("s", strings.Repeat("x", 60_000))}, true},
		{"70 KB", []slog.Attr{slog.String("s", strings.Repeat("x", 70_000))}, false},
		{"group", []slog.Attr{slog.Group("g", slog.Int("a", 1))}, false},
		{"bytes", []slog.Attr{slog.Any("b", []byte("x"))}, false},
		{"struct", []slog.Attr{slog.Any("v", struct{ A int }{1})}, false},
		{"stringer", []slog.Attr{slog.Any("s", stringer{new(string)})}, false},
		{"panicking error", []slog.Attr{slog.Any("e", panicErr{})}, false},
		{"valuer of a group", []slog.Attr{slog.Any("lv", slog.GroupValue(slog.Int("a", 1)))}, false},
	} {
		r := slog.NewRecord(time.Now(), slog.LevelInfo, "m", 0)
		r.AddAttrs(tc.attrs...)
		var p pendingSlog
		if got := h.deferSlog(&p, &r); got != tc.want {
			t.Errorf("%s: deferred %v, want %v", tc.name, got, tc.want)
		}
	}
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "m", 0)
	r.AddAttrs(slog.Int("i", 1))
	replacing := s.Handler(&slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return a }}).(*handler)
	var p pendingSlog
	if replacing.deferSlog(&p, &r) {
		t.Error("a record was deferred with ReplaceAttr")
	}
	spooled, _ := newSDKSink(t, newFakeTable(), Options{SpoolDir: t.TempDir()})
	if spooled.Handler(nil).(*handler).deferSlog(&p, &r) {
		t.Error("a record was deferred with a spool")
	}
}

// Against Azurite: deferred slog records are stored with the values they
// had at the call (an error's text changed afterwards, a LogValuer
// resolved once, during the call), in the order of the calls, deferred or
// not.
func TestDeferredSlogEndToEnd(t *testing.T) {
	tbl := azurite.Get(t).NewTable(t)
	s, _ := newSink(t, tbl, Options{FlushInterval: time.Hour})
	l := slog.New(s.Handler(nil)).With("svc", "orders")

	errText := "error at the call"
	calls := 0
	l.Info("deferred", "n", 1, "err", mutableErr{&errText}, "lv", logValuer{&calls})
	l.Info("not deferred", "list", []int{1, 2})
	const mixed = 40
	for i := range mixed {
		if i%2 == 0 {
			l.Info("mixed", "i", i)
		} else {
			l.Info("mixed", "i", i, slog.Group("g", "a", 1))
		}
	}
	if n := s.buf.deferredCount(); n != 1+mixed/2 {
		t.Fatalf("%d records wait to be encoded, want %d", n, 1+mixed/2)
	}
	errText = "CHANGED"
	if err := s.Flush(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("LogValue called %d times, want once (during the call)", calls)
	}
	if st := s.Stats(); st.BufferedRecords != 0 || st.BufferedBytes != 0 || st.Written != 2+mixed {
		t.Errorf("stats after Flush: %+v", st)
	}
	logs, _ := readAll(t, tbl)
	m := byMsg(logs)
	if d := m["deferred"].Fields; d["n"] != int64(1) || d["err"] != "error at the call" || d["lv"] != int64(1) || d["svc"] != "orders" {
		t.Errorf("deferred record stored %v", d)
	}
	if nd := m["not deferred"].Fields; nd["list"] != "[1,2]" {
		t.Errorf("record encoded at the call stored %v", nd)
	}
	checkCallOrder(t, logs, mixed)
}

// checkCallOrder checks that the n records with message "mixed" (field i
// counting the calls) are stored in the order of the calls: readAll sorts
// by RowKey, newest first.
func checkCallOrder(t *testing.T, logs []schema.Entity, n int) {
	t.Helper()
	var order []int64
	for _, e := range logs {
		if e.Msg == "mixed" {
			order = append(order, e.Fields["i"].(int64))
		}
	}
	if len(order) != n {
		t.Fatalf("%d mixed records stored, want %d", len(order), n)
	}
	for k, i := range order {
		if i != int64(n-1-k) {
			t.Fatalf("records out of call order (newest first): %v", order)
		}
	}
}

// countingErr counts its Error calls.
type countingErr struct{ n *int }

func (e countingErr) Error() string { *e.n++; return "counted" }

// A record that turns out not to be deferrable (a later field or
// attribute is not plain) is encoded by the call without asking the
// caller's values again: a LogValuer's LogValue and an error's Error run
// once per call, deferred or not.
func TestDeferralAsksValuesOnce(t *testing.T) {
	s, _ := newSDKSink(t, newFakeTable(), Options{})
	errCalls, lvCalls := 0, 0
	zap.New(s.Core(zapcore.DebugLevel)).Info("mixed", zap.Error(countingErr{&errCalls}), zap.Binary("b", []byte{1}))
	slog.New(s.Handler(nil)).Info("mixed", "lv", logValuer{&lvCalls}, "err", countingErr{&errCalls}, slog.Group("g", "a", 1))
	if err := s.Flush(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if errCalls != 2 || lvCalls != 1 {
		t.Errorf("Error called %d times for two records, LogValue %d times for one; want 2 and 1", errCalls, lvCalls)
	}
	if st := s.Stats(); st.Written != 2 {
		t.Errorf("stats %+v", st)
	}
}
