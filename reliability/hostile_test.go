package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/query"
	"github.com/tablelog/tablelog/sink"
)

// Item 5: the hostile-input corpus. Each case is logged through zap and
// through slog (where the input can be expressed there) as the middle of
// three records of one transaction: a good record, the hostile one, a good
// record. For each: the caller does not panic; the transaction the sink
// sends holds all three; both good records are stored intact; the hostile
// record is stored (repaired with a visible marker where needed, which the
// case asserts on the decoded entity) or reported (ErrorHandler, Stats);
// every entity stored passes azurite.ValidateEntity, both on the way in
// (the strict proxy rejects nothing) and as read back.

// recordingTable passes a sink's requests on and records the RowKeys of
// every transaction it was asked to send.
type recordingTable struct {
	sink.Table
	mu  sync.Mutex
	txs [][]string
}

func (r *recordingTable) SubmitTransaction(ctx context.Context, actions []aztables.TransactionAction, o *aztables.SubmitTransactionOptions) (aztables.TransactionResponse, error) {
	var rks []string
	for _, a := range actions {
		var k struct{ RowKey string }
		_ = json.Unmarshal(a.Entity, &k)
		rks = append(rks, k.RowKey)
	}
	r.mu.Lock()
	r.txs = append(r.txs, rks)
	r.mu.Unlock()
	return r.Table.SubmitTransaction(ctx, actions, o)
}

func (r *recordingTable) transactions() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]string(nil), r.txs...)
}

// hostile is one case of the corpus.
type hostile struct {
	name string
	// zap and slog log the hostile record (with message "hostile" unless
	// the case is about the message); nil where the input cannot be
	// expressed through that API.
	zap  func(l *zap.Logger)
	slog func(l *slog.Logger)
	// time, if not zero, is the time of all three records (written through
	// the cores directly).
	time time.Time
	// want checks the stored hostile record and the sink's counters for
	// it. e is nil if the record was not stored.
	want func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error)
}

// Hostile values.
var (
	big5MB     = strings.Repeat("a", 5<<20)
	chars32K1  = strings.Repeat("b", schema.MaxStringChars+1)
	astral32K1 = strings.Repeat("😀", schema.MaxStringChars/2) + "c" // 32,769 UTF-16 units
	bytes64K1  = strings.Repeat("é", (64<<10)/2) + "d"              // 65,537 bytes of UTF-8
	bin64K1    = pattern(64<<10 + 1)
	bin2M      = pattern(2 << 20)
	emojiSplit = strings.Repeat("e", schema.MaxStringChars-1) + "😀" + "tail"
	emojis5MB  = strings.Repeat("😀", (5<<20)/4)
	key1000    = strings.Repeat("k", 1000)
	ints100K   = func() []int {
		s := make([]int, 100_000)
		for i := range s {
			s[i] = i
		}
		return s
	}()
	systemNames = []string{"PartitionKey", "RowKey", "Timestamp", "Time", "Level", "Severity", "Msg", "Logger", "Caller", "Stack", "Extra", "Names", "Truncated"}
)

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

type stringer struct{}

func (stringer) String() string { return "stringer" }

type panicStringer struct{}

func (panicStringer) String() string { panic("stringer boom") }

type nilStringer struct{ s string }

func (n *nilStringer) String() string { return n.s } // panics on nil

type panicError struct{}

func (panicError) Error() string { panic("error boom") }

type panicObject struct{}

func (panicObject) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("partial", "x")
	panic("object boom")
}

type panicArray struct{}

func (panicArray) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	enc.AppendInt(1)
	panic("array boom")
}

type panicValuer struct{}

func (panicValuer) LogValue() slog.Value { panic("valuer boom") }

type panicJSON struct{}

func (panicJSON) MarshalJSON() ([]byte, error) { panic("json boom") }

// field returns the decoded field at path (groups), or nil.
func field(e *schema.Entity, path ...string) any {
	var m any = e.Fields
	for _, p := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[p]
	}
	return m
}

// --- expectations ---

// stored asserts the hostile record is stored with message "hostile", no
// truncation, and each path/value pair decoded exactly.
func exact(kv ...any) func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
	return func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
		t.Helper()
		if !mustStored(t, e, d) {
			return
		}
		if e.Msg != "hostile" || e.Truncated != 0 || d.Truncated != 0 {
			t.Errorf("Msg %.40q, Truncated %d (stats %d)", e.Msg, e.Truncated, d.Truncated)
		}
		for i := 0; i < len(kv); i += 2 {
			var path []string
			switch k := kv[i].(type) {
			case string:
				path = []string{k}
			case []string:
				path = k
			}
			if got := field(e, path...); !equal(got, kv[i+1]) {
				t.Errorf("field %q = %s, want %s", path, show(got), show(kv[i+1]))
			}
		}
	}
}

// repaired is exact, and at least one repair was counted.
func repaired(kv ...any) func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
	ex := exact(kv...)
	return func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
		t.Helper()
		ex(t, api, e, d, reports)
		if d.Repaired == 0 {
			t.Errorf("no repair counted: %+v", d)
		}
	}
}

func mustStored(t *testing.T, e *schema.Entity, d sink.Stats) bool {
	t.Helper()
	if e == nil {
		t.Errorf("hostile record not stored; stats %+v", d)
		return false
	}
	if d.Replaced != 0 || d.FailedRecords != 0 {
		t.Errorf("the service rejected the record (stats %+v); the encoder should have made it valid", d)
	}
	return true
}

// truncated asserts the value at path is a prefix of want followed by the
// visible truncation marker, and that the truncation was counted.
func truncated(path []string, want string) func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
	return func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
		t.Helper()
		if !mustStored(t, e, d) {
			return
		}
		var got string
		if path == nil {
			got = e.Msg
		} else {
			got, _ = field(e, path...).(string)
		}
		checkTruncatedText(t, got, want)
		if e.Truncated == 0 || d.Truncated == 0 {
			t.Errorf("Truncated column %d, Stats.Truncated %d", e.Truncated, d.Truncated)
		}
	}
}

func checkTruncatedText(t *testing.T, got, want string) {
	t.Helper()
	marker := fmt.Sprintf("…[tablelog: truncated, %d bytes in all]", len(want))
	prefix, ok := strings.CutSuffix(got, marker)
	switch {
	case !ok:
		t.Errorf("no truncation marker %q at the end of %d bytes: …%q", marker, len(got), got[max(0, len(got)-80):])
	case !strings.HasPrefix(want, prefix):
		t.Errorf("stored text is not a prefix of the original")
	case len(prefix) < 256<<10:
		t.Errorf("only %d bytes kept", len(prefix))
	case !utf8.ValidString(got) || strings.ContainsRune(got, utf8.RuneError):
		t.Errorf("a character was split at the truncation boundary")
	}
}

func equal(a, b any) bool {
	if ab, ok := a.([]byte); ok {
		bb, ok := b.([]byte)
		return ok && bytes.Equal(ab, bb)
	}
	if at, ok := a.(time.Time); ok {
		bt, ok := b.(time.Time)
		return ok && at.Equal(bt)
	}
	if af, ok := a.(float64); ok && math.IsNaN(af) {
		bf, ok := b.(float64)
		return ok && math.IsNaN(bf)
	}
	aj, err1 := json.Marshal(a)
	bj, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(aj, bj) && fmt.Sprintf("%T", a) == fmt.Sprintf("%T", b)
}

func show(v any) string {
	s := fmt.Sprintf("%T %#v", v, v)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func groupPath(depth int) []string {
	p := make([]string, 0, depth+1)
	for i := range depth {
		p = append(p, fmt.Sprintf("group%02d", i))
	}
	return append(p, "v")
}

var hostileCases = []hostile{}

func init() {
	add := func(h hostile) { hostileCases = append(hostileCases, h) }
	s := func(k string, v any) (func(*zap.Logger), func(*slog.Logger)) {
		return func(l *zap.Logger) { l.Info("hostile", zap.Any(k, v)) },
			func(l *slog.Logger) { l.Info("hostile", k, v) }
	}
	str := func(name, k, v string) {
		z, sl := s(k, v)
		add(hostile{name: name, zap: z, slog: sl, want: exact(k, v)})
	}

	add(hostile{name: "message 5 MB",
		zap:  func(l *zap.Logger) { l.Info(big5MB) },
		slog: func(l *slog.Logger) { l.Info(big5MB) },
		want: truncated(nil, big5MB)})
	add(hostile{name: "message 5 MB of emoji",
		zap:  func(l *zap.Logger) { l.Info(emojis5MB) },
		slog: func(l *slog.Logger) { l.Info(emojis5MB) },
		want: truncated(nil, emojis5MB)})
	str("value of 32K+1 chars", "v", chars32K1)
	str("value of 32K+1 UTF-16 units (astral)", "v", astral32K1)
	str("value of 64 KiB+1 bytes", "v", bytes64K1)
	str("emoji split at the 32K chunk boundary", "v", emojiSplit)
	add(hostile{name: "binary of 64 KiB+1",
		zap:  func(l *zap.Logger) { l.Info("hostile", zap.Binary("v", bin64K1)) },
		slog: func(l *slog.Logger) { l.Info("hostile", "v", bin64K1) },
		want: exact("v", bin64K1)})
	add(hostile{name: "binary of 2 MiB",
		zap:  func(l *zap.Logger) { l.Info("hostile", zap.Binary("v", bin2M)) },
		slog: func(l *slog.Logger) { l.Info("hostile", "v", bin2M) },
		want: func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
			if !mustStored(t, e, d) {
				return
			}
			b, _ := field(e, "v").([]byte)
			if len(b) < 512<<10 || !bytes.HasPrefix(bin2M, b) || e.Truncated == 0 || d.Truncated == 0 {
				t.Errorf("stored %d bytes (a prefix: %v), Truncated %d, stats %+v", len(b), bytes.HasPrefix(bin2M, b), e.Truncated, d)
			}
		}})
	{
		var zf []zap.Field
		var sa []any
		var want []any
		for i := range 300 {
			k := fmt.Sprintf("f%03d", i)
			zf = append(zf, zap.Int(k, i))
			sa = append(sa, k, i)
			want = append(want, k, int64(i))
		}
		add(hostile{name: "300 fields",
			zap:  func(l *zap.Logger) { l.Info("hostile", zf...) },
			slog: func(l *slog.Logger) { l.Info("hostile", sa...) },
			want: repaired(want...)})
	}
	str("key of 1,000 chars", key1000, "v")
	for _, k := range []string{"http.method", "user-id", "1st", "ünïcode", "a b", "a/b\\c#d?e", "k@odata.type", "odata.etag", "x__y", "__", "_", "v_z1"} {
		str("key "+k, k, "val")
	}
	for _, k := range systemNames {
		str("reserved key "+k, k, "user "+k)
	}
	str("reserved key msg (lower case)", "msg", "user msg")
	str("reserved key eq (OData keyword)", "eq", "user eq")
	add(hostile{name: "chunk suffix collision",
		zap:  func(l *zap.Logger) { l.Info("hostile", zap.String("v", chars32K1), zap.String("v_z1", "user")) },
		slog: func(l *slog.Logger) { l.Info("hostile", "v", chars32K1, "v_z1", "user") },
		want: exact("v", chars32K1, "v_z1", "user")})
	add(hostile{name: "group separator collision",
		zap: func(l *zap.Logger) {
			l.Info("hostile", zap.String("a__b", "flat"), zap.Namespace("a"), zap.String("b", "grouped"))
		},
		slog: func(l *slog.Logger) { l.Info("hostile", "a__b", "flat", slog.Group("a", "b", "grouped")) },
		want: exact("a__b", "flat", []string{"a", "b"}, "grouped")})
	add(hostile{name: "duplicate keys",
		zap: func(l *zap.Logger) {
			l.Info("hostile", zap.Int("dup", 1), zap.Int("dup", 2), zap.String("dup", "three"))
		},
		slog: func(l *slog.Logger) { l.Info("hostile", "dup", 1, "dup", 2, "dup", "three") },
		want: repaired("dup", int64(1), "dup#2", int64(2), "dup#3", "three")})
	str("empty key", "", "empty")
	str("NUL and control characters in a value", "v", "a\x00b\x01c\x1f\x7f\u0085\n\r\t\"\\end")
	str("NUL and control characters in a key", "k\x00\x01\n", "v")
	add(hostile{name: "NUL and control characters in the message",
		zap:  func(l *zap.Logger) { l.Info("hos\x00tile\x1b[31m") },
		slog: func(l *slog.Logger) { l.Info("hos\x00tile\x1b[31m") },
		want: func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
			if mustStored(t, e, d) && e.Msg != "hos\x00tile\x1b[31m" {
				t.Errorf("Msg %q", e.Msg)
			}
		}})
	{
		z, sl := s("v", "a\xffb\xc0\xafc")
		add(hostile{name: "invalid UTF-8 value", zap: z, slog: sl, want: repaired("v", "a\uFFFDb\uFFFD\uFFFDc")})
		z, sl = s("k\xff", "v")
		add(hostile{name: "invalid UTF-8 key", zap: z, slog: sl, want: exact("k\xff", "v")}) // names are escaped losslessly
		z, sl = s("v", "\xed\xa0\x80")                                                       // U+D800 encoded as UTF-8: a lone surrogate
		add(hostile{name: "lone surrogate (UTF-8 encoded)", zap: z, slog: sl, want: repaired("v", "\uFFFD\uFFFD\uFFFD")})
	}
	add(hostile{name: "invalid UTF-8 message",
		zap:  func(l *zap.Logger) { l.Info("host\xffile") },
		slog: func(l *slog.Logger) { l.Info("host\xffile") },
		want: func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
			if mustStored(t, e, d) && (e.Msg != "host\uFFFDile" || d.Repaired == 0) {
				t.Errorf("Msg %q, stats %+v", e.Msg, d)
			}
		}})
	add(hostile{name: "lone surrogate (JSON escape)",
		zap:  func(l *zap.Logger) { l.Info("hostile", zap.Any("v", json.RawMessage(`"\ud800"`))) },
		slog: func(l *slog.Logger) { l.Info("hostile", "v", json.RawMessage(`"\ud800"`)) },
		want: exact("v", `"\ud800"`)})
	add(hostile{name: "NaN and ±Inf",
		zap: func(l *zap.Logger) {
			l.Info("hostile", zap.Float64("nan", math.NaN()), zap.Float64("pinf", math.Inf(1)), zap.Float64("ninf", math.Inf(-1)), zap.Float32("nan32", float32(math.NaN())))
		},
		slog: func(l *slog.Logger) {
			l.Info("hostile", "nan", math.NaN(), "pinf", math.Inf(1), "ninf", math.Inf(-1), "nan32", float32(math.NaN()))
		},
		want: repaired("nan", "NaN", "pinf", "+Inf", "ninf", "-Inf", "nan32", "NaN")})
	add(hostile{name: "uint64 max",
		zap: func(l *zap.Logger) {
			l.Info("hostile", zap.Uint64("v", math.MaxUint64), zap.Int64("min", math.MinInt64))
		},
		slog: func(l *slog.Logger) { l.Info("hostile", "v", uint64(math.MaxUint64), "min", int64(math.MinInt64)) },
		want: repaired("v", "18446744073709551615", "min", int64(math.MinInt64))})
	old, future := time.Date(1600, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	{
		z, sl := s("v", old)
		add(hostile{name: "time before 1601", zap: z, slog: sl, want: repaired("v", "1600-12-31T23:59:59Z")})
		z, sl = s("v", future)
		add(hostile{name: "time after 9999", zap: z, slog: sl, want: repaired("v", "10000-01-01T00:00:00Z")})
		z, sl = s("v", time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC))
		add(hostile{name: "time 1601-01-01 (the first valid)", zap: z, slog: sl, want: exact("v", time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC))})
	}
	// Records (not fields) with such times; their good neighbours have the
	// same time, so the three share a partition and a transaction. (A
	// record after 9999 is a sink bug, see sinkbugs_test.go.)
	for _, tm := range []time.Time{old, time.Unix(0, 0).Add(-time.Hour)} {
		add(recordTime(tm))
	}
	add(hostile{name: "nil value",
		zap:  func(l *zap.Logger) { l.Info("hostile", zap.Any("v", nil), zap.Error(nil), zap.Stringer("s", nil)) },
		slog: func(l *slog.Logger) { l.Info("hostile", "v", nil, slog.Any("e", error(nil))) },
		want: func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
			exact("v", "<nil>")(t, api, e, d, reports)
		}})
	add(hostile{name: "typed nil values",
		zap: func(l *zap.Logger) {
			l.Info("hostile", zap.Stringer("s", (*nilStringer)(nil)), zap.Any("p", (*int)(nil)), zap.Any("m", map[string]int(nil)), zap.Any("sl", []string(nil)))
		},
		slog: func(l *slog.Logger) {
			l.Info("hostile", "s", (*nilStringer)(nil), "p", (*int)(nil), "m", map[string]int(nil), "sl", []string(nil))
		},
		want: exact("s", "<nil>", "p", "<nil>", "m", "<nil>")})
	add(hostile{name: "Stringer",
		zap:  func(l *zap.Logger) { l.Info("hostile", zap.Stringer("s", stringer{})) },
		slog: func(l *slog.Logger) { l.Info("hostile", "s", stringer{}) },
		want: exact("s", "stringer")})
	add(hostile{name: "Stringer that panics",
		zap:  func(l *zap.Logger) { l.Info("hostile", zap.Stringer("s", panicStringer{})) },
		slog: func(l *slog.Logger) { l.Info("hostile", "s", panicStringer{}) },
		want: func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
			if api == "zap" { // zap reports it in a "<key>Error" field
				exact("sError", "PANIC=stringer boom")(t, api, e, d, reports)
			} else {
				repaired("s", "<panic: stringer boom>")(t, api, e, d, reports)
			}
		}})
	add(hostile{name: "error that panics",
		zap:  func(l *zap.Logger) { l.Info("hostile", zap.Error(panicError{})) },
		slog: func(l *slog.Logger) { l.Info("hostile", "error", panicError{}) },
		want: func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
			if api == "zap" {
				exact("errorError", "PANIC=error boom")(t, api, e, d, reports)
			} else {
				repaired("error", "<panic: error boom>")(t, api, e, d, reports)
			}
		}})
	add(hostile{name: "MarshalJSON that panics",
		zap:  func(l *zap.Logger) { l.Info("hostile", zap.Reflect("v", panicJSON{})) },
		slog: func(l *slog.Logger) { l.Info("hostile", "v", panicJSON{}) },
		want: repaired("v", "<panic: json boom>")})
	add(hostile{name: "LogValuer that panics",
		slog: func(l *slog.Logger) { l.Info("hostile", "v", panicValuer{}) },
		want: func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
			if !mustStored(t, e, d) {
				return
			}
			// slog.Value.Resolve recovers the panic into an error value
			// whose text is "LogValue panicked" and a stack.
			if v, _ := field(e, "v").(string); !strings.HasPrefix(v, "LogValue panicked\n") {
				t.Errorf("v = %s", show(field(e, "v")))
			}
		}})
	add(hostile{name: "groups nested 50 deep",
		zap: func(l *zap.Logger) {
			var f []zap.Field
			for i := range 50 {
				f = append(f, zap.Namespace(fmt.Sprintf("group%02d", i)))
			}
			l.Info("hostile", append(f, zap.Int("v", 50))...)
		},
		slog: func(l *slog.Logger) {
			a := slog.Int("v", 50)
			for i := 49; i >= 0; i-- {
				a = slog.Group(fmt.Sprintf("group%02d", i), a)
			}
			l.Info("hostile", a)
		},
		want: exact(groupPath(50), int64(50))})
	add(hostile{name: "WithGroup 50 deep",
		slog: func(l *slog.Logger) {
			for i := range 50 {
				l = l.WithGroup(fmt.Sprintf("group%02d", i))
			}
			l.Info("hostile", "v", 50)
		},
		want: exact(groupPath(50), int64(50))})
	{
		js, _ := json.Marshal(ints100K)
		add(hostile{name: "array of 100,000 elements",
			zap:  func(l *zap.Logger) { l.Info("hostile", zap.Ints("v", ints100K)) },
			slog: func(l *slog.Logger) { l.Info("hostile", "v", ints100K) },
			want: truncated([]string{"v"}, string(js))})
	}
	add(hostile{name: "20 values of 60,000 chars (over 1 MiB in all)",
		zap: func(l *zap.Logger) {
			var f []zap.Field
			for i := range 20 {
				f = append(f, zap.String(fmt.Sprintf("v%02d", i), strings.Repeat(string(rune('A'+i)), 60_000)))
			}
			l.Info("hostile", f...)
		},
		slog: func(l *slog.Logger) {
			var a []any
			for i := range 20 {
				a = append(a, fmt.Sprintf("v%02d", i), strings.Repeat(string(rune('A'+i)), 60_000))
			}
			l.Info("hostile", a...)
		},
		want: func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
			if !mustStored(t, e, d) {
				return
			}
			if e.Truncated == 0 || d.Truncated == 0 || field(e, "v00") != strings.Repeat("A", 60_000) {
				t.Errorf("Truncated %d, stats %+v, v00 %d chars", e.Truncated, d, len(fmt.Sprint(field(e, "v00"))))
			}
		}})
	add(hostile{name: "map with NaN (not JSON-encodable)",
		zap:  func(l *zap.Logger) { l.Info("hostile", zap.Any("v", map[string]float64{"x": math.NaN()})) },
		slog: func(l *slog.Logger) { l.Info("hostile", "v", map[string]float64{"x": math.NaN()}) },
		want: repaired("v", "map[x:NaN]")})
	add(hostile{name: "complex numbers",
		zap:  func(l *zap.Logger) { l.Info("hostile", zap.Complex128("v", complex(1, -2))) },
		slog: func(l *slog.Logger) { l.Info("hostile", "v", complex(1, -2)) },
		want: func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
			if mustStored(t, e, d) && field(e, "v") == nil {
				t.Errorf("v missing")
			}
		}})
	add(hostile{name: "logger name with control characters",
		zap: func(l *zap.Logger) { l.Named("a\x00b\n" + key1000).Info("hostile") },
		want: func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
			if mustStored(t, e, d) && e.Logger != "rel.a\x00b\n"+key1000 {
				t.Errorf("Logger %.40q", e.Logger)
			}
		}})
}

// recordTime is the case of records stamped tm: stored with Time clamped
// into 1601..9999 (a repair) and found by the reader.
func recordTime(tm time.Time) hostile {
	return hostile{name: "record time " + tm.Format(time.RFC3339), time: tm,
		zap:  func(l *zap.Logger) { l.Info("hostile") },
		slog: func(l *slog.Logger) { l.Info("hostile") },
		want: func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
			if !mustStored(t, e, d) {
				return
			}
			want := tm
			if lo := time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC); want.Before(lo) {
				want = lo
			}
			if hi := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC); want.After(hi) {
				want = hi
			}
			if e.Msg != "hostile" || !e.Time.Equal(want) {
				t.Errorf("Msg %q, Time %v, want %v", e.Msg, e.Time, want)
			}
		}}
}

// markerContains asserts the record is stored with the field at key
// holding a text that mentions what went wrong.
func markerContains(key, text string) func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
	return func(t *testing.T, api string, e *schema.Entity, d sink.Stats, reports []error) {
		if !mustStored(t, e, d) {
			return
		}
		found := false
		for k, v := range e.Fields {
			if strings.HasPrefix(k, key) && strings.Contains(fmt.Sprint(v), text) {
				found = true
			}
		}
		if !found {
			t.Errorf("no field %q mentions %q: %s", key, text, show(e.Fields))
		}
	}
}

func TestHostileInputs(t *testing.T) {
	t.Parallel()
	env := azurite.Get(t)
	name := azurite.TableName(env.NewTable(t))
	p := env.NewProxy(t)
	client := p.Table(t, name, noRetry)
	n := 0
	for i, h := range hostileCases {
		for _, api := range []string{"zap", "slog"} {
			if api == "zap" && h.zap == nil || api == "slog" && h.slog == nil {
				continue
			}
			n++
			t.Run(api+"/"+h.name, func(t *testing.T) {
				runHostile(t, client, fmt.Sprintf("h%02d-%s", i, api), api, h)
			})
		}
	}
	t.Cleanup(func() {
		ps := p.Stats()
		if len(ps.Rejected) != 0 {
			t.Errorf("the strict proxy rejected requests: %v", ps.Rejected)
		}
		t.Logf("item 5: %d cases, %d subtests (zap and slog); strict proxy: %d requests, rejections %v", len(hostileCases), n, ps.Requests, ps.Rejected)
	})
}

func runHostile(t *testing.T, client *aztables.Client, service, api string, h hostile) {
	rec := &recordingTable{Table: client}
	s, errs := newSink(t, rec, sink.Options{Service: service, FlushInterval: time.Hour, MaxInFlight: 1})
	zl := zap.New(s.Core(zapcore.DebugLevel)).Named("rel")
	sl := slog.New(s.Handler(&slog.HandlerOptions{Level: slog.LevelDebug}))
	if !h.time.IsZero() {
		zl = zap.New(fixedTime{s.Core(zapcore.DebugLevel), h.time}).Named("rel")
		sl = slog.New(fixedTimeHandler{s.Handler(&slog.HandlerOptions{Level: slog.LevelDebug}), h.time})
	}
	good := func(i int) {
		if api == "zap" {
			zl.Info("good", zap.Int("good", i), zap.String("text", "neighbour"))
		} else {
			sl.Info("good", "good", i, "text", "neighbour")
		}
	}
	good(1)
	before := s.Stats()
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("the caller panicked: %v\n%s", r, debug.Stack())
			}
		}()
		if api == "zap" {
			h.zap(zl)
		} else {
			h.slog(sl)
		}
	}()
	after := s.Stats()
	good(2)
	flushErr := s.Flush(ctxT(t, 2*time.Minute))
	st := s.Stats()
	d := sink.Stats{
		// Repairs and truncations are counted when a record is encoded:
		// during the call, or by the dispatcher (a deferred record) before
		// Flush returns. The good records have none.
		Enqueued: after.Enqueued - before.Enqueued, Repaired: st.Repaired - before.Repaired, Truncated: st.Truncated - before.Truncated,
		Dropped: st.Dropped, Rejected: st.Rejected, Replaced: st.Replaced, FailedRecords: st.FailedRecords, FailedBatches: st.FailedBatches,
	}

	// One transaction held the three records.
	txs := rec.transactions()
	if st.Enqueued == 3 && (len(txs) == 0 || len(txs[0]) != 3) {
		t.Errorf("the three records were not sent in one transaction: %v", txs)
	}
	if st.Written+st.FailedRecords != st.Enqueued {
		t.Errorf("stats %+v", st)
	}
	if st.FailedRecords > 0 {
		var de *sink.DeliveryError
		if !errors.As(flushErr, &de) || de.Failed != int(st.FailedRecords) {
			t.Errorf("Flush: %v with %d records failed", flushErr, st.FailedRecords)
		}
	} else if flushErr != nil {
		t.Errorf("Flush: %v", flushErr)
	}

	// Read the service's partition(s) back, straight from Azurite.
	filter := fmt.Sprintf("PartitionKey ge '%s_' and PartitionKey lt '%s`'", service, service)
	raws := readRaw(t, azuriteName(t, client), &aztables.ListEntitiesOptions{Filter: &filter})
	var hostileEnt *schema.Entity
	goods := 0
	for _, raw := range raws {
		if err := azurite.ValidateEntity(raw); err != nil {
			t.Errorf("stored entity fails validation: %v", err)
		}
		e, err := schema.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case e.Msg == "good":
			g, _ := e.Fields["good"].(int64)
			if (g != 1 && g != 2) || e.Fields["text"] != "neighbour" || len(e.Fields) != 2 || e.Truncated != 0 {
				t.Errorf("good record damaged: %s", show(e.Fields))
			}
			goods++
		case hostileEnt == nil:
			hostileEnt = &e
		default:
			t.Errorf("unexpected extra entity %s/%s", e.PartitionKey, e.RowKey)
		}
	}
	if goods != 2 {
		t.Errorf("%d good records stored, want 2 (stats %+v)", goods, st)
	}
	if st.Enqueued == 3 && hostileEnt == nil && st.FailedRecords != 1 {
		t.Errorf("the hostile record is neither stored nor counted as failed: %+v", st)
	}
	if st.Enqueued == 2 && d.Rejected+d.Dropped == 0 {
		t.Errorf("the hostile record was not enqueued and not counted: %+v", st)
	}
	// The reader finds every stored record (records stamped in the future
	// with a query reaching that far).
	q := query.Logs{Service: service, MinLevel: query.AllLevels}
	if h.time.After(time.Now()) {
		q.Until = time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)
	}
	found := 0
	for _, err := range query.New(azurite.Tablelog(t, azurite.Get(t).DirectTable(t, azuriteName(t, client)))).Logs(ctxT(t, time.Minute), q) {
		if err != nil {
			t.Errorf("query: %v", err)
			break
		}
		found++
	}
	if found != len(raws) {
		t.Errorf("query.Logs found %d of the %d records stored", found, len(raws))
	}
	if os.Getenv("HOSTILE_DUMP") != "" && hostileEnt != nil {
		t.Logf("stored: PK %s Time %v Msg %.60q Logger %.40q Truncated %d; stats delta %+v; fields %s", hostileEnt.PartitionKey, hostileEnt.Time, hostileEnt.Msg, hostileEnt.Logger, hostileEnt.Truncated, d, show(hostileEnt.Fields))
	}
	if h.want != nil {
		h.want(t, api, hostileEnt, d, errs.all())
	}
}

func azuriteName(t *testing.T, c *aztables.Client) string {
	n := azurite.TableName(c)
	if n == "" {
		t.Fatal("unknown table")
	}
	return n
}

// fixedTime is a zap core that stamps every entry with a fixed time.
type fixedTime struct {
	zapcore.Core
	t time.Time
}

func (f fixedTime) With(fs []zapcore.Field) zapcore.Core { return fixedTime{f.Core.With(fs), f.t} }
func (f fixedTime) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if f.Enabled(e.Level) {
		return ce.AddCore(e, f)
	}
	return ce
}
func (f fixedTime) Write(e zapcore.Entry, fs []zapcore.Field) error {
	e.Time = f.t
	return f.Core.Write(e, fs)
}

// fixedTimeHandler is a slog handler that stamps every record with a fixed
// time.
type fixedTimeHandler struct {
	slog.Handler
	t time.Time
}

func (f fixedTimeHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Time = f.t
	return f.Handler.Handle(ctx, r)
}
func (f fixedTimeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return fixedTimeHandler{f.Handler.WithAttrs(as), f.t}
}
func (f fixedTimeHandler) WithGroup(g string) slog.Handler {
	return fixedTimeHandler{f.Handler.WithGroup(g), f.t}
}
