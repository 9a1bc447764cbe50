package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// decodeCases are entities, well-formed or not, on which Decode must agree
// with decodeRef (the seeds of FuzzDecode as well).
func decodeCases(tb testing.TB) []string {
	tb.Helper()
	ts := time.Date(2026, 11, 25, 12, 0, 0, 123456700, time.UTC)
	enc := func(f func(e *Encoder)) string {
		var e Encoder
		e.Reset("svc_20261125", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ")
		e.SetTime(ts)
		e.SetLevel("warn", SeverityWarn)
		e.SetMessage("hello \"world\"\n\t<&> é 😀")
		f(&e)
		return string(e.Finish())
	}
	cases := []string{
		string(benchEntity(tb)),
		// Keys that collide once decoded, in an order other than sorted:
		// which one gets "#2" must not depend on the order of the members.
		`{"PartitionKey":"svc_20261125","RowKey":"x","b":1,"a":"plain","_x61_":"escaped","g__k":true,"g":"value","Msg":"m"}`,
		`{"g":"value","a":"plain","g__k":true,"_x61_":"escaped","Level":"info"}`,
		enc(func(e *Encoder) {}),
		enc(func(e *Encoder) {
			e.String("user_id", "u-1")
			e.Bool("ok", true)
			e.Int64("n", math.MinInt64)
			e.Int32("i32", -5)
			e.Uint64("umax", math.MaxUint64)
			e.Float64("f", 1.5)
			e.Float64("whole", 3)
			e.Float64("nan", math.NaN())
			e.Time("at", ts)
			e.Time("old", time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC))
			e.Bytes("b", []byte{0, 1, 2, 255})
			e.RawJSON("arr", []byte(`[1,"a",{"x":2.5}]`))
			e.Null("nil")
			e.String("http.method", "GET")
			e.String("Msg", "user msg")
			e.String("", "empty key")
			e.String("ctl", "a\x00b\x1fc\u2028")
			e.String("bad", "x\xffy")
			e.OpenGroup("req")
			e.String("path", "/x")
			e.OpenGroup("inner")
			e.Int64("depth", 2)
			e.CloseGroup()
			e.CloseGroup()
			e.String("user_id", "dup")
			e.String(strings.Repeat("k", 300), "long name")
		}),
		enc(func(e *Encoder) {
			e.SetCaller("main.go:12")
			e.SetLogger("app")
			e.String("long", strings.Repeat("0123456789", 7000))
			e.Bytes("bin", make([]byte, 70_000))
		}),
		`null`, `{}`, ` { } `, "\t{\"a\" : 1 ,\n\"b\":[ ] }\r\n", `[]`, `"x"`, `1`, ``, `{`, `{"a":1,}`, `{"a":1}x`,
		`{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":1e}`, `{"a":.5}`, `{"a":tru}`, `{"a":"\x"}`, `{"a":"\u12"}`,
		"{\"a\":\"\x01\"}", `{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"b":1,"a":2,"b":3}`,
		`{"a\u0062":"x\ud800y\udc00z\ud83d\ude00","c\"d":"\/\b\f\n\r\t\\"}`,
		"{\"bad\xff\":\"\xe2\x82\",\"ok\":\"\xed\xa0\x80\"}",
		`{"n@odata.type":"Edm.Int64","n":"12x","m@odata.type":"Edm.Int64","m":12,"o@odata.type":"Edm.Int64","o":1.5,"p@odata.type":"Edm.Int64","p":"+7"}`,
		`{"a@odata.type":"Edm.Int32","a":2147483648,"b@odata.type":"Edm.Int32","b":"5","c@odata.type":"Edm.Int32","c":-2147483648}`,
		`{"a@odata.type":"Edm.Double","a":"NaN","b@odata.type":"Edm.Double","b":"-Infinity","c@odata.type":"Edm.Double","c":1e400,"d":1e400,"e@odata.type":"Edm.Double","e":null,"f":-0}`,
		`{"a@odata.type":"Edm.Boolean","a":1,"b@odata.type":"Edm.Boolean","b":true,"c@odata.type":"Edm.String","c":5,"d@odata.type":"Edm.Guid","d":"g"}`,
		`{"a@odata.type":"Edm.Binary","a":"AAEC","b@odata.type":"Edm.Binary","b":"AA=E","c@odata.type":"Edm.Binary","c":null}`,
		`{"a@odata.type":"Edm.DateTime","a":"2024-02-29T23:59:59.9999999Z","b@odata.type":"Edm.DateTime","b":"2023-02-29T00:00:00Z","c@odata.type":"Edm.DateTime","c":"2026-11-25T12:00:00+01:00","d@odata.type":"Edm.DateTime","d":"2026-11-25T12:00:00,5Z"}`,
		`{"a@odata.type":5,"a":"x","b@odata.type":"Edm.Nope","b":"y","c":{"d":[1,2.5,"e",null,true]},"d":[[[[]]]],"odata.etag":"e","x@y":1}`,
		`{"Timestamp":"2026-11-25T12:00:00Z","Time":"2026-11-25T12:00:00.1Z","Severity":4.9,"Truncated":"3","PartitionKey":5,"RowKey":null}`,
		`{"Severity@odata.type":"Edm.Int64","Severity":"9223372036854775807","Truncated@odata.type":"Edm.Int32","Truncated":7}`,
		`{"Msg_z2":"c","Msg":"a","Msg_z1":"b","Level_z1":5,"Level":"x","Stack":"s","Stack_z1":"t","Time_z1":"u","Msg_z0":"v"}`,
		`{"s":"a","s_z1":"b","b@odata.type":"Edm.Binary","b":"AQ==","b_z1@odata.type":"Edm.Binary","b_z1":"Ag==","x":1,"x_z1":2}`,
		`{"Names":"{\"a_y0123456789ABCDEF\":[\"g\",\"long\"],\"b\":[\"b\",\"c\"]}","a_y0123456789ABCDEF":1,"b":2,"g__x":3}`,
		`{"Names":"{\"a\":[]}","a":1}`, `{"Names":"{\"a\":5,\"b\":[\"c\"]}","a":1,"b":2}`, `{"Names":"nope","a":1}`,
		`{"Extra":"[{\"k\":[\"a\"],\"v\":1},{\"k\":[\"a\"],\"v\":[1.5,\"x\"]},{\"k\":[],\"v\":2},{\"k\":[\"g\",\"h\"]}]","a":0}`,
		`{"Extra":"[{\"k\":[\"a\"],\"v\":1}","Extra_z1":"]"}`, `{"Extra":"[{\"k\":5}]"}`,
		`{"a__b":1,"a":2,"a__b__c":3,"_x41_":4,"x_y1":5,"a_":6,"_":7,"__":8}`,
		`{"a":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`,
		`{"a":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	}
	var many strings.Builder
	many.WriteString("{")
	for i := range 300 {
		fmt.Fprintf(&many, `"f%d@odata.type":"Edm.Int64","f%d":"%d",`, 299-i, 299-i, i)
	}
	many.WriteString(`"f7":"again"}`)
	cases = append(cases, many.String(), strings.Replace(many.String(), `,"f7":"again"`, "", 1))
	// Up to 64 members, unsorted: a repeated name among many (hasDuplicate's
	// hash slots), and names that are their own keys (plainName) next to
	// others that decode to the same key, in either order.
	var some strings.Builder
	some.WriteString(`{"z":0`)
	for i := range 40 {
		fmt.Fprintf(&some, `,"k_%d":%d`, 39-i, i)
	}
	cases = append(cases, some.String()+`,"k_17":"again"}`, some.String()+`}`,
		`{"ab":1,"a_x62_":2,"a_b":3,"user_id":4,"a_":5,"_a":6}`,
		`{"a_x62_":2,"ab":1,"_a":6,"a_":5,"user_id":4,"a_b":3}`,
		`{"a__b":1,"a":2,"a_b":3}`, `{"a_b":3,"a":2,"a__b":1}`,
		`{"Names":"{\"k\":[\"a_b\"]}","a_b":1,"k":2}`, `{"k":2,"a_b":1,"Names":"{\"k\":[\"a_b\"]}"}`)
	return cases
}

// decodeRefSafe is decodeRef, with a panic reported instead of raised.
func decodeRefSafe(raw []byte) (ent Entity, err error, panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	ent, err = decodeRef(raw)
	return ent, err, false
}

// ambiguous reports whether decodeRef's result for raw depends on map
// order: two properties with the same base name and continuation index
// ("a_z1" and "a_z01"), joined in whatever order sort.Slice leaves them.
func ambiguous(raw []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	seen := map[string]bool{}
	for k := range m {
		if strings.Contains(k, "@") || strings.HasPrefix(k, "odata.") {
			continue
		}
		base, n := splitChunk(k)
		id := base + "\x00" + strconv.Itoa(n)
		if seen[id] {
			return true
		}
		seen[id] = true
	}
	return false
}

// checkDecode fails t unless Decode and decodeRef agree on raw: the same
// error, or the same Entity.
func checkDecode(t *testing.T, raw []byte) {
	t.Helper()
	got, gerr := Decode(raw)
	want, werr, panicked := decodeRefSafe(raw)
	if panicked {
		return // the reference panics (Names maps a column to no path); Decode must not
	}
	if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
		t.Fatalf("Decode(%.200q): error %v, reference %v", raw, gerr, werr)
	}
	if gerr != nil || ambiguous(raw) {
		return
	}
	if !sameEntity(got, want) {
		t.Fatalf("Decode(%.300q):\n got %#v\nwant %#v", raw, got, want)
	}
}

// sameEntity is reflect.DeepEqual with NaN equal to NaN.
func sameEntity(a, b Entity) bool {
	fa, fb := a.Fields, b.Fields
	a.Fields, b.Fields = nil, nil
	return reflect.DeepEqual(a, b) && (fa == nil) == (fb == nil) && sameValue(fa, fb)
}

func sameValue(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && (x == y && math.Signbit(x) == math.Signbit(y) || x != x && y != y)
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) || (x == nil) != (y == nil) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) || (x == nil) != (y == nil) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// asValues wraps data, as a JSON string, in entities that annotate it
// with each EDM type that parses text.
func asValues(data []byte) [][]byte {
	js, _ := json.Marshal(string(data))
	var out [][]byte
	for _, edm := range []string{"Edm.DateTime", "Edm.Int64", "Edm.Double", "Edm.Binary", ""} {
		out = append(out, []byte(`{"v@odata.type":"`+edm+`","v":`+string(js)+`,"Time":`+string(js)+`}`))
	}
	return out
}

func TestDecodeMatchesReference(t *testing.T) {
	for _, c := range decodeCases(t) {
		checkDecode(t, []byte(c))
	}
	for _, s := range []string{
		"2026-11-25T12:00:00Z", "2026-11-25T12:00:00.1234567Z", "2026-11-25T12:00:00.123456789Z",
		"2026-11-25T12:00:00.1234567891Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.9999999Z",
		"2026-13-01T00:00:00Z", "2026-04-31T00:00:00Z", "2026-11-25T24:00:00Z", "2026-11-25T12:60:00Z",
		"2026-11-25T12:00:60Z", "2026-11-25t12:00:00Z", "2026-11-25T12:00:00z", "2026-11-25T12:00:00.Z",
		"2026-11-25T12:00:00.1234567", "+026-11-25T12:00:00Z", "2026-1-25T12:00:00Z", "", "x",
		"1601-01-01T00:00:00Z", "2000-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-11-25T12:00:00-00:00",
	} {
		for _, raw := range asValues([]byte(s)) {
			checkDecode(t, raw)
		}
	}
}

// FuzzDecode checks Decode against the implementation it replaced
// (decodeRef): the same Entity, or the same error, for any input.
func FuzzDecode(f *testing.F) {
	for _, c := range decodeCases(f) {
		f.Add([]byte(c))
	}
	f.Add([]byte("2026-11-25T12:00:00.1234567Z"))
	f.Add([]byte("AQID"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkDecode(t, raw)
		if len(raw) <= 64 {
			for _, v := range asValues(raw) {
				checkDecode(t, v)
			}
		}
	})
}

// TestDecodeRetainsNoText: the entities Decode returns hold their own
// strings, not parts of the entity's whole JSON text, so keeping one costs
// no more memory than one from decodeRef.
func TestDecodeRetainsNoText(t *testing.T) {
	raw := benchEntity(t)
	retained := func(dec func([]byte) (Entity, error)) uint64 {
		keep := make([]Entity, 5000)
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		for i := range keep {
			var err error
			if keep[i], err = dec(bytes.Clone(raw)); err != nil {
				t.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		runtime.KeepAlive(keep)
		return (m1.HeapAlloc - m0.HeapAlloc) / uint64(len(keep))
	}
	got, ref := retained(Decode), retained(decodeRef)
	t.Logf("retained per entity: %d bytes (reference decoder %d; the JSON text is %d)", got, ref, len(raw))
	if got > ref+ref/10 {
		t.Errorf("a decoded entity retains %d bytes, the reference decoder's %d", got, ref)
	}
}
