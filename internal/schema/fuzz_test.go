package schema

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// checkLimits checks an encoded entity against Azure's rules independently
// of the encoder's own accounting: valid names, at most 252 properties,
// strings within 32K UTF-16 units, binary within 64 KiB, size under 1 MiB.
func checkLimits(t *testing.T, js []byte) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	size := 4
	props := 0
	for k, v := range m {
		if strings.HasSuffix(k, "@odata.type") {
			continue
		}
		edm, _ := m[k+"@odata.type"].(string)
		switch k {
		case "PartitionKey", "RowKey":
			size += 2 * len(v.(string))
			continue
		}
		props++
		if !validIdent(k) && !IsSystemColumn(strings.Split(k, "_z")[0]) {
			t.Fatalf("invalid property name %q", k)
		}
		size += 8 + 2*len(k)
		switch x := v.(type) {
		case string:
			switch edm {
			case "Edm.Binary":
				b, err := base64.StdEncoding.DecodeString(x)
				if err != nil || len(b) > MaxBinaryBytes {
					t.Fatalf("%s: binary of %d bytes (%v)", k, len(b), err)
				}
				size += 4 + len(b)
			case "Edm.Int64", "Edm.DateTime":
				size += 8
				if edm == "Edm.DateTime" {
					ts, err := time.Parse(time.RFC3339Nano, x)
					if err != nil || ts.Year() < 1601 {
						t.Fatalf("%s: bad DateTime %q", k, x)
					}
				}
			default:
				n := len(utf16.Encode([]rune(x)))
				if n > MaxStringChars {
					t.Fatalf("%s: string of %d UTF-16 units", k, n)
				}
				size += 4 + 2*n
			}
		case bool:
			size++
		case float64:
			if edm == "Edm.Double" || edm == "Edm.Int64" {
				size += 8
			} else {
				size += 4
			}
		}
	}
	if props > MaxProperties {
		t.Fatalf("%d properties", props)
	}
	if size > MaxEntityBytes {
		t.Fatalf("entity size %d", size)
	}
}

// validateEntity is the strict proxy's entity validator (set by an external
// test file, which may import the harness).
var validateEntity func([]byte) error

// FuzzEncoder drives the encoder with arbitrary keys and values: every entity
// must be valid for Azure, and decode back to the input or its documented repair.
func FuzzEncoder(f *testing.F) {
	f.Add([]byte("\x00key\x00value"), uint16(1))
	f.Add([]byte("\x03http.method\x00\x7f\xff\x00\x00"), uint16(300))
	f.Add([]byte("\x01Msg\x00x\x05g\x00\x02n\x00"), uint16(2))
	f.Fuzz(func(t *testing.T, data []byte, repeat uint16) {
		var e Encoder
		e.Reset("svc_20261125", "0000000000000000000000000A")
		e.SetMessage(string(data))
		type want struct {
			path []string
			val  any
		}
		var wants []want
		var groups []string
		seen := map[string]bool{}
		groupPaths := map[string]bool{}
		collide := false
		n := int(repeat%400) + 1
		for i := 0; i < n && len(data) > 0; i++ {
			op := data[0] % 8
			data = data[1:]
			j := 0
			for j < len(data) && data[j] != 0 {
				j++
			}
			key := string(data[:j])
			if j < len(data) {
				data = data[j+1:]
			} else {
				data = nil
			}
			var v uint64
			if len(data) >= 8 {
				v = binary.LittleEndian.Uint64(data)
			}
			// One value may be huge (to reach chunking and truncation);
			// the rest stay small so the fuzzer runs many inputs.
			big := uint64(300)
			if i == 0 {
				big = 50000
			}
			path := append(append([]string(nil), groups...), key)
			pk := strings.Join(path, "\x00")
			track := func(val any) {
				// A group named like a value field is stored under "name#2"
				// (documented): such inputs are checked for limits only.
				for k := 1; k < len(path); k++ {
					if seen[strings.Join(path[:k], "\x00")] {
						collide = true
					}
				}
				groupPaths[strings.Join(path[:len(path)-1], "\x00")] = true
				if groupPaths[pk] {
					collide = true
				}
				if !seen[pk] {
					wants = append(wants, want{path, val})
				}
				seen[pk] = true
			}
			switch op {
			case 0:
				s := key + strings.Repeat("é", int(v%big))
				e.String(key, s)
				if utf8.ValidString(s) {
					track(s)
				} else {
					track(nil)
				}
			case 1:
				e.Int64(key, int64(v))
				track(int64(v))
			case 2:
				f := math.Float64frombits(v)
				e.Float64(key, f)
				if math.IsNaN(f) || math.IsInf(f, 0) {
					track(nil)
				} else {
					track(f)
				}
			case 3:
				b := make([]byte, v%(2*big))
				e.Bytes(key, b)
				track(b)
			case 4:
				e.Uint64(key, v)
				track(nil)
			case 5:
				e.OpenGroup(key)
				groups = append(groups, key)
			case 6:
				e.CloseGroup()
				if len(groups) > 0 {
					groups = groups[:len(groups)-1]
				}
			case 7:
				ts := time.Unix(int64(v%(1<<40))-(1<<39), 0).UTC()
				e.Time(key, ts)
				if ts.Year() >= 1601 && ts.Year() <= 9999 {
					track(ts)
				} else {
					track(nil)
				}
			}
		}
		js := e.Finish()
		checkLimits(t, js)
		if validateEntity != nil {
			if err := validateEntity(js); err != nil {
				t.Fatalf("the strict proxy rejects the entity: %v", err)
			}
		}
		ent, err := Decode(js)
		if err != nil {
			t.Fatal(err)
		}
		if e.Truncations() > 0 || e.Repairs() > 0 || collide {
			return // values were repaired or cut: limits checked above
		}
		for _, w := range wants {
			if w.val == nil {
				continue
			}
			var cur any = ent.Fields
			for _, p := range w.path {
				m, ok := cur.(map[string]any)
				if !ok {
					cur = nil
					break
				}
				cur = m[p]
			}
			if !reflect.DeepEqual(cur, w.val) {
				t.Fatalf("path %q: got %v (%T), want %v (%T)", w.path, cur, cur, w.val, w.val)
			}
		}
	})
}
