package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"
)

func encodeOne(t testing.TB, f func(e *Encoder)) (Entity, *Encoder, []byte) {
	t.Helper()
	var e Encoder
	e.Reset("svc_20261125", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ")
	f(&e)
	js := append([]byte(nil), e.Finish()...)
	if !json.Valid(js) {
		t.Fatalf("invalid JSON: %.300s", js)
	}
	ent, err := Decode(js)
	if err != nil {
		t.Fatal(err)
	}
	return ent, &e, js
}

func TestRoundTripTypes(t *testing.T) {
	ts := time.Date(2026, 11, 25, 12, 0, 0, 123456700, time.UTC)
	ent, e, js := encodeOne(t, func(e *Encoder) {
		e.SetTime(ts)
		e.SetLevel("info", 0)
		e.SetMessage("hello \"world\"\n")
		e.SetLogger("app.http")
		e.SetCaller("main.go:12")
		e.String("user_id", "u-1")
		e.Bool("ok", true)
		e.Int64("n", -42)
		e.Int64("big", math.MaxInt64)
		e.Int32("small", 7)
		e.Uint64("u", 5)
		e.Uint64("umax", math.MaxUint64)
		e.Float64("f", 1.5)
		e.Float64("whole", 3)
		e.Float64("nan", math.NaN())
		e.Time("at", ts)
		e.Time("old", time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC))
		e.Duration("d", 1500*time.Millisecond)
		e.Bytes("b", []byte{0, 1, 2, 255})
		e.RawJSON("arr", []byte(`[1,"a"]`))
		e.Null("nil")
		e.String("http.method", "GET")
		e.String("Msg", "user msg")
		e.String("", "empty key")
		e.OpenGroup("req")
		e.String("path", "/x")
		e.OpenGroup("inner")
		e.Int64("depth", 2)
		e.CloseGroup()
		e.CloseGroup()
		e.String("user_id", "dup")
	})
	want := map[string]any{
		"user_id": "u-1", "ok": true, "n": int64(-42), "big": int64(math.MaxInt64), "small": int64(7),
		"u": int64(5), "umax": "18446744073709551615", "f": 1.5, "whole": 3.0, "nan": "NaN",
		"at": ts, "old": "1500-01-01T00:00:00Z", "d": int64(1500 * time.Millisecond),
		"b": []byte{0, 1, 2, 255}, "arr": `[1,"a"]`, "nil": "<nil>", "http.method": "GET",
		"Msg": "user msg", "": "empty key",
		"req":       map[string]any{"path": "/x", "inner": map[string]any{"depth": int64(2)}},
		"user_id#2": "dup",
	}
	if !reflect.DeepEqual(ent.Fields, want) {
		t.Errorf("fields:\n got %#v\nwant %#v\njson %s", ent.Fields, want, js)
	}
	if ent.Msg != "hello \"world\"\n" || ent.Level != "info" || ent.Severity != 0 || !ent.Time.Equal(ts) || ent.Logger != "app.http" || ent.Caller != "main.go:12" {
		t.Errorf("system columns: %+v", ent)
	}
	if e.Repairs() != 4 { // umax as text, NaN as text, 1500 as text, the duplicate to Extra
		t.Errorf("repairs = %d", e.Repairs())
	}
	if ent.Truncated != 0 {
		t.Errorf("truncated = %d", ent.Truncated)
	}
}

func TestLongValuesChunkAndTruncate(t *testing.T) {
	long := strings.Repeat("abcdefghij", 10_000) // 100,000 chars: 4 columns
	ent, e, _ := encodeOne(t, func(e *Encoder) { e.String("s", long) })
	if ent.Fields["s"] != long || e.Truncations() != 0 {
		t.Fatalf("100K string did not round-trip (truncs %d, len %d)", e.Truncations(), len(ent.Fields["s"].(string)))
	}
	huge := strings.Repeat("x", 5<<20)
	ent, e, js := encodeOne(t, func(e *Encoder) { e.SetMessage(huge); e.String("after", "still here?") })
	if e.Size() > MaxEntityBytes {
		t.Fatalf("entity size %d > limit", e.Size())
	}
	if !strings.HasPrefix(huge, strings.Split(ent.Msg, "…")[0]) || !strings.Contains(ent.Msg, "truncated, 5242880 bytes in all") {
		t.Fatalf("msg not truncated with marker: ...%s", ent.Msg[len(ent.Msg)-80:])
	}
	if ent.Truncated < 1 || len(ent.Msg) < 400_000 {
		t.Fatalf("truncated=%d msg len=%d (should keep ~500K chars)", ent.Truncated, len(ent.Msg))
	}
	if len(js) > MaxBatchBytes {
		t.Fatalf("json %d bytes", len(js))
	}
	bin := bytes.Repeat([]byte{7}, 200_000)
	ent, _, _ = encodeOne(t, func(e *Encoder) { e.Bytes("bin", bin) })
	if !bytes.Equal(ent.Fields["bin"].([]byte), bin) {
		t.Fatal("binary chunks did not round-trip")
	}
}

func TestManyFieldsGoToExtra(t *testing.T) {
	ent, e, _ := encodeOne(t, func(e *Encoder) {
		e.SetMessage("m")
		for i := 0; i < 300; i++ {
			e.Int64("f"+strings.Repeat("x", i%3)+string(rune('a'+i%26))+itoa(i), int64(i))
		}
	})
	n := 0
	for range ent.Fields {
		n++
	}
	if n != 300 {
		t.Fatalf("got %d fields back, want 300", n)
	}
	if e.nprops > MaxProperties {
		t.Fatalf("%d properties", e.nprops)
	}
}

func itoa(i int) string {
	return strings.TrimSpace(strings.Repeat(" ", 0) + string(rune('0'+i/100)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10)))
}

func TestFragment(t *testing.T) {
	var e Encoder
	e.ResetFragment()
	e.String("svc", "a")
	e.OpenGroup("g")
	e.Int64("x", 1)
	parent := e.Fragment()
	e.ResetFragment()
	e.AppendFragment(parent)
	e.Bool("y", true)
	child := e.Fragment()
	ent, _, js := encodeOne(t, func(e *Encoder) {
		e.SetMessage("m")
		e.AppendFragment(child)
		e.String("z", "zz")
		e.CloseGroup()
		e.String("top", "t")
	})
	want := map[string]any{"svc": "a", "g": map[string]any{"x": int64(1), "y": true, "z": "zz"}, "top": "t"}
	if !reflect.DeepEqual(ent.Fields, want) {
		t.Fatalf("got %#v want %#v\n%s", ent.Fields, want, js)
	}
}

func TestNamesRoundTrip(t *testing.T) {
	cases := [][]string{
		{"user_id"}, {"http.method"}, {"user-id"}, {"1st"}, {"ünïcode"}, {"a b"}, {""}, {"_"}, {"__"},
		{"a_"}, {"_x"}, {"a_x5F_"}, {"PartitionKey"}, {"rowkey"}, {"Time"}, {"a", "b"}, {"a_", "_b"},
		{"", ""}, {"x_y_z"}, {"\x00\xff"}, {"a_z1"}, {"emoji😀"}, {"Msg", "Msg"},
	}
	seen := map[string][]string{}
	for _, p := range cases {
		n := EncodeName(p...)
		if !validIdent(n) {
			t.Errorf("%q -> %q: not a valid property name", p, n)
		}
		back, ok := DecodeName(n)
		if !ok || !reflect.DeepEqual(back, p) {
			t.Errorf("%q -> %q -> %q (%v)", p, n, back, ok)
		}
		if o, dup := seen[n]; dup {
			t.Errorf("%q and %q both -> %q", o, p, n)
		}
		seen[n] = p
	}
	if EncodeName("user_id") != "user_id" || EncodeName("status") != "status" {
		t.Error("plain names must stay as they are")
	}
}

func validIdent(s string) bool {
	if s == "" || len(s) > MaxPropertyNameLen || IsSystemColumn(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func TestEncodeNameMatchesEncoderColumns(t *testing.T) {
	long := strings.Repeat("k", 400)
	for _, key := range []string{long, "eq", "AND", "null", "user_id", "x_", "a.b"} {
		var e Encoder
		e.Reset("p", "r")
		e.String(key, "v")
		js := e.Finish()
		var m map[string]any
		if err := json.Unmarshal(js, &m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m[EncodeName(key)]; !ok {
			t.Errorf("EncodeName(%.20q) = %q is not a column of %s", key, EncodeName(key), js)
		}
	}
	if n := EncodeName("eq"); n == "eq" || !validIdent(n) {
		t.Errorf("OData keyword not escaped: %q", n)
	}
}

func TestEncodeNameLinear(t *testing.T) {
	// Quadratic escaping would take seconds here; linear takes microseconds.
	key := strings.Repeat("é_", 16000)
	var e Encoder
	e.Reset("p", "r")
	e.String(key, "v")
	ent, err := Decode(e.Finish())
	if err != nil || ent.Fields[key] != "v" {
		t.Fatalf("long key did not round-trip: %v", err)
	}
}

func TestAppendTime7MatchesLayout(t *testing.T) {
	for _, ts := range []time.Time{
		time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2026, 11, 25, 12, 3, 4, 123456789, time.FixedZone("x", 5*3600)),
		time.Unix(0, 0),
	} {
		if got, want := string(appendTime7(nil, ts)), ts.UTC().Format(timeLayout); got != want {
			t.Errorf("appendTime7(%v) = %s, want %s", ts, got, want)
		}
	}
}

// The day cache formats every time as appendTime7 does, across day
// boundaries in both directions and before 1970.
func TestDayCacheAppendTime7(t *testing.T) {
	var d dayCache
	base := time.Date(2026, 11, 25, 23, 59, 59, 999_999_900, time.UTC)
	for _, ts := range []time.Time{
		base, base.Add(100 * time.Nanosecond), base.Add(-24 * time.Hour), base.Add(time.Hour),
		time.Date(1969, 12, 31, 23, 59, 59, 500, time.UTC), time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		base.In(time.FixedZone("x", -7*3600)), base.Add(-48 * time.Hour),
		// Two days alternating (both cached), then a third (evicting one).
		base, base.Add(-48 * time.Hour), base.Add(-time.Hour), base.Add(-47 * time.Hour),
		base.Add(24 * time.Hour), base.Add(-48 * time.Hour), base, base.Add(25 * time.Hour),
	} {
		if got, want := string(d.appendTime7(nil, ts)), ts.UTC().Format(timeLayout); got != want {
			t.Errorf("dayCache.appendTime7(%v) = %s, want %s", ts, got, want)
		}
	}
}

// The name cache gives every key the name EncodeName gives it, whichever
// keys share a slot, and the duplicate check still sees cached names.
func TestNameCache(t *testing.T) {
	var e Encoder
	keys := []string{"a", "b", "user_id", "Time", "PartitionKey", "and", "x_y", "_", "é", "a.b", "k1", "k2",
		"a_", "ab", "ba", strings.Repeat("k", 32), strings.Repeat("k", 33), strings.Repeat("é", 20)}
	for i := range 100 {
		keys = append(keys, fmt.Sprintf("field%d", i))
	}
	groups := [][]string{{"g"}, {"1", "Time"}, {strings.Repeat("g", 230)}}
	for round := range 3 {
		e.Reset("p", "r")
		for _, k := range keys {
			e.Int64(k, 1)
			if got, want := string(e.name), EncodeName(k); got != want {
				t.Fatalf("round %d: name of %q = %q, want %q", round, k, got, want)
			}
		}
		// The same keys in groups (whose names differ from the top-level
		// ones: digits and reserved names need no escape there; a long
		// prefix makes the name shortened), then at the top level again.
		for _, g := range groups {
			e.Reset("p", "r")
			for _, name := range g {
				e.OpenGroup(name)
			}
			for _, k := range keys[:40] {
				e.Int64(k, 1)
				if got, want := string(e.name), EncodeName(append(slices.Clone(g), k)...); got != want {
					t.Fatalf("round %d: name of %q in %q = %q, want %q", round, k, g, got, want)
				}
				if got, want := e.hashes[len(e.hashes)-1], fnv64(e.name); got != want {
					t.Fatalf("round %d: hash of %q in %q = %x, want %x", round, k, g, got, want)
				}
			}
			for range g {
				e.CloseGroup()
			}
			e.Int64("1", 1)
			if got, want := string(e.name), EncodeName("1"); got != want {
				t.Fatalf("round %d: after closing %q: name of \"1\" = %q, want %q", round, g, got, want)
			}
		}
		e.Reset("p", "r")
		for _, k := range keys {
			e.Int64(k, 1)
		}
		e.Int64("user_id", 2) // a duplicate: goes to Extra
		var m map[string]any
		if err := json.Unmarshal(e.Finish(), &m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m[ColExtra]; !ok {
			t.Fatalf("round %d: duplicate key not in Extra", round)
		}
	}
}

// Two keys that share a set both stay cached, so a record whose keys
// collide does not encode them afresh every time.
func TestNameCacheSharedSet(t *testing.T) {
	var c nameCache
	byset := map[int]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		k := fmt.Sprintf("key%d", i)
		if o, ok := byset[c.set(k, true)]; ok {
			a, b = o, k
		}
		byset[c.set(k, true)] = k
	}
	for range 3 {
		for _, k := range []string{a, b} {
			if _, _, ok := c.lookup(k, true); !ok {
				c.store(k, true, []byte(EncodeName(k)), 1)
			}
		}
	}
	for _, k := range []string{a, b} {
		if name, _, ok := c.lookup(k, true); !ok || string(name) != EncodeName(k) {
			t.Errorf("%q (shares a set with the other of %q, %q): cached %v, name %q", k, a, b, ok, name)
		}
	}
}

// The cache finds keys by address, but a key's text decides its name: two
// keys at one address (a reused buffer) get their own names.
func TestNameCacheSameAddress(t *testing.T) {
	var e Encoder
	buf := []byte("alpha")
	for round := range 3 {
		for _, text := range []string{"alpha", "Time_", "gamma"} {
			copy(buf, text)
			key := unsafe.String(&buf[0], len(buf))
			e.Reset("p", "r")
			e.Int64(key, 1)
			if got, want := string(e.name), EncodeName(text); got != want {
				t.Fatalf("round %d: name of %q = %q, want %q", round, text, got, want)
			}
		}
	}
}

// A float32 is stored as its shortest decimal, whether it comes through
// Float32 (zap's AddFloat32) or Any (slog's Any), without allocating.
func TestFloat32ShortestDecimal(t *testing.T) {
	ent, _, _ := encodeOne(t, func(e *Encoder) {
		e.Float32("a", 0.1)
		e.Any("b", float32(0.1))
		e.Float32("nan", float32(math.NaN()))
	})
	if ent.Fields["a"] != 0.1 || ent.Fields["b"] != 0.1 {
		t.Errorf("a = %v, b = %v, want 0.1", ent.Fields["a"], ent.Fields["b"])
	}
	if ent.Fields["nan"] != "NaN" {
		t.Errorf("nan = %#v, want \"NaN\"", ent.Fields["nan"])
	}
	var e Encoder
	if n := testing.AllocsPerRun(100, func() { e.Reset("p", "r"); e.Float32("a", 0.1) }); n != 0 {
		t.Errorf("Float32 allocates %v times", n)
	}
}

// U+2028 and U+2029 are written escaped, as encoding/json writes them:
// JavaScript reads them as line breaks, and the emulator's $batch parser
// answers 500 to a body holding them raw. They read back unchanged.
func TestLineSeparatorsEscaped(t *testing.T) {
	s := "a\u2028b\u2029c"
	got, units, n, bad := appendJSONString(nil, s, 1<<20)
	if string(got) != `"a\u2028b\u2029c"` || units != 5 || n != len(s) || bad {
		t.Fatalf("appendJSONString(%q) = %s, %d, %d, %v", s, got, units, n, bad)
	}
	var back string
	if err := json.Unmarshal(got, &back); err != nil || back != s {
		t.Fatalf("read back %q, %v", back, err)
	}
}
