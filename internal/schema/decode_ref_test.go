package schema

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

type columnRef struct {
	path  []string
	chunk int
	val   any
}

// decodeRef is Decode as it was before the single-pass scanner: a
// map[string]json.RawMessage and one json.Unmarshal per value. It is kept,
// unchanged but for the names, as the oracle of FuzzDecode and
// TestDecodeMatchesReference.
func decodeRef(raw []byte) (Entity, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return Entity{}, fmt.Errorf("tablelog: decode entity: %w", err)
	}
	types := map[string]string{}
	for k, v := range m {
		if name, ok := strings.CutSuffix(k, "@odata.type"); ok {
			var t string
			_ = json.Unmarshal(v, &t)
			types[name] = t
		}
	}
	var ent Entity
	sys := map[string][]columnRef{}    // system text columns and their chunks
	groups := map[string][]columnRef{} // field columns keyed by base property name
	var names map[string][]string
	for k, rawv := range m {
		if strings.Contains(k, "@") || strings.HasPrefix(k, "odata.") {
			continue
		}
		v := decodeValueRef(rawv, types[k])
		switch k {
		case ColPartitionKey:
			ent.PartitionKey, _ = v.(string)
			continue
		case ColRowKey:
			ent.RowKey, _ = v.(string)
			continue
		case ColTimestamp:
			ent.Timestamp = asTimeRef(v)
			continue
		case ColTime:
			ent.Time = asTimeRef(v)
			continue
		case ColSeverity:
			ent.Severity = int(asIntRef(v))
			continue
		case ColTruncated:
			ent.Truncated = int(asIntRef(v))
			continue
		}
		base, n := splitChunk(k)
		switch base {
		case ColLevel, ColMsg, ColLogger, ColCaller, ColStack, ColExtra, ColNames:
			sys[base] = append(sys[base], columnRef{chunk: n, val: v})
			continue
		}
		groups[base] = append(groups[base], columnRef{chunk: n, val: v})
	}
	text := func(col string) string {
		cs := sys[col]
		sort.Slice(cs, func(i, j int) bool { return cs[i].chunk < cs[j].chunk })
		var b strings.Builder
		for _, c := range cs {
			s, _ := c.val.(string)
			b.WriteString(s)
		}
		return b.String()
	}
	ent.Level, ent.Msg, ent.Logger = text(ColLevel), text(ColMsg), text(ColLogger)
	ent.Caller, ent.Stack = text(ColCaller), text(ColStack)
	if s := text(ColNames); s != "" {
		_ = json.Unmarshal([]byte(s), &names)
	}
	ent.Fields = map[string]any{}
	bases := make([]string, 0, len(groups))
	for b := range groups {
		bases = append(bases, b)
	}
	sort.Strings(bases)
	for _, base := range bases {
		cs := groups[base]
		sort.Slice(cs, func(i, j int) bool { return cs[i].chunk < cs[j].chunk })
		path, ok := names[base]
		if !ok {
			path, ok = DecodeName(base)
		}
		if !ok {
			path = []string{base}
		}
		setPathRef(ent.Fields, path, joinChunksRef(cs), false)
	}
	if s := text(ColExtra); s != "" {
		var items []struct {
			K []string        `json:"k"`
			V json.RawMessage `json:"v"`
		}
		if err := json.Unmarshal([]byte(s), &items); err == nil {
			for _, it := range items {
				if len(it.K) == 0 {
					continue
				}
				setPathRef(ent.Fields, it.K, decodeJSONValueRef(it.V), true)
			}
		}
	}
	if len(ent.Fields) == 0 {
		ent.Fields = nil
	}
	return ent, nil
}

// joinChunksRef joins a column and its continuation columns.
func joinChunksRef(cs []columnRef) any {
	if len(cs) == 1 {
		return cs[0].val
	}
	switch cs[0].val.(type) {
	case string:
		var b strings.Builder
		for _, c := range cs {
			s, _ := c.val.(string)
			b.WriteString(s)
		}
		return b.String()
	case []byte:
		var b []byte
		for _, c := range cs {
			p, _ := c.val.([]byte)
			b = append(b, p...)
		}
		return b
	}
	return cs[0].val
}

// setPathRef stores v at path in m, creating group maps. When the key is taken
// (dup true) or a group name collides with a value, the key gets "#2", "#3"….
func setPathRef(m map[string]any, path []string, v any, dup bool) {
	for _, g := range path[:len(path)-1] {
		sub, ok := m[g].(map[string]any)
		if !ok {
			if _, taken := m[g]; taken {
				g = freeKeyRef(m, g)
			}
			sub = map[string]any{}
			m[g] = sub
		}
		m = sub
	}
	k := path[len(path)-1]
	if _, taken := m[k]; taken {
		k = freeKeyRef(m, k)
	}
	m[k] = v
}

func freeKeyRef(m map[string]any, k string) string {
	for i := 2; ; i++ {
		c := k + "#" + strconv.Itoa(i)
		if _, taken := m[c]; !taken {
			return c
		}
	}
}

// decodeValueRef converts one property value by its EDM type annotation.
func decodeValueRef(raw json.RawMessage, edm string) any {
	raw = bytes.TrimSpace(raw)
	switch edm {
	case "Edm.Int64":
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				return n
			}
		}
		var n int64
		_ = json.Unmarshal(raw, &n)
		return n
	case "Edm.Int32":
		var n int32
		_ = json.Unmarshal(raw, &n)
		return n
	case "Edm.Double":
		var f float64
		if json.Unmarshal(raw, &f) == nil {
			return f
		}
		var s string
		_ = json.Unmarshal(raw, &s)
		f, _ = strconv.ParseFloat(s, 64)
		return f
	case "Edm.DateTime":
		var s string
		_ = json.Unmarshal(raw, &s)
		t, _ := time.Parse(time.RFC3339Nano, s)
		return t.UTC()
	case "Edm.Binary":
		var s string
		_ = json.Unmarshal(raw, &s)
		b, _ := base64.StdEncoding.DecodeString(s)
		if b == nil {
			b = []byte{}
		}
		return b
	case "Edm.Boolean":
		var b bool
		_ = json.Unmarshal(raw, &b)
		return b
	case "Edm.Guid", "Edm.String":
		var s string
		_ = json.Unmarshal(raw, &s)
		return s
	}
	if len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		// An unannotated number is an Edm.Double or an Edm.Int32; the
		// service may write an integral double without a decimal point, so
		// the two cannot be told apart. tablelog writes every integer as
		// Edm.Int64 (annotated), so a bare number is a double; the Int32
		// system columns (Severity, Truncated) are read by name.
		f, _ := strconv.ParseFloat(string(raw), 64)
		return f
	}
	return decodeJSONValueRef(raw)
}

// decodeJSONValueRef decodes plain JSON, integral numbers as int64.
func decodeJSONValueRef(raw json.RawMessage) any {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return string(raw)
	}
	return numbersRef(v)
}

func numbersRef(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = numbersRef(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = numbersRef(x[k])
		}
	}
	return v
}

func asTimeRef(v any) time.Time {
	switch x := v.(type) {
	case time.Time:
		return x
	case string:
		t, _ := time.Parse(time.RFC3339Nano, x)
		return t.UTC()
	}
	return time.Time{}
}

func asIntRef(v any) int64 {
	switch x := v.(type) {
	case int32:
		return int64(x)
	case int64:
		return x
	case float64:
		return int64(x)
	}
	return 0
}

// BenchmarkDecodeRef is BenchmarkDecode with the reference decoder, for a
// comparison in the same run.
func BenchmarkDecodeRef(b *testing.B) {
	raw := benchEntity(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeRef(raw); err != nil {
			b.Fatal(err)
		}
	}
}
