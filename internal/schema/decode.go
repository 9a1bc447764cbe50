package schema

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Entity is a log entity read back: the system columns and the fields under
// their original names, groups as nested maps.
type Entity struct {
	PartitionKey string
	RowKey       string
	Timestamp    time.Time // the server's last-modified time

	Time     time.Time
	Level    string
	Severity int
	Msg      string
	Logger   string
	Caller   string
	Stack    string

	// Fields holds the fields under their original keys; a group is a nested
	// map[string]any. Values by EDM type: Edm.String string, Edm.Boolean
	// bool, Edm.Int64 int64, Edm.Double and Edm.Int32 float64 (the service
	// does not tell an integral double from an Int32; tablelog writes every
	// integer as Edm.Int64),
	// Edm.DateTime time.Time (UTC), Edm.Binary []byte, Edm.Guid string.
	// Fields from the Extra column carry JSON types (string, bool, float64,
	// int64 for integral numbers, []any, map[string]any); a key that is
	// already taken gets "#2", "#3", … appended. Nil when the entity has
	// no fields.
	Fields map[string]any

	// Truncated counts values cut short or left out when the entity was written.
	Truncated int
}

type column struct {
	path  []string
	chunk int
	val   any
}

// Decode parses one entity as the Table service returns it (JSON with
// minimal or full metadata, as aztables passes it on). It returns an error
// only for input that is not a JSON object.
func Decode(raw []byte) (Entity, error) {
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
	sys := map[string][]column{}    // system text columns and their chunks
	groups := map[string][]column{} // field columns keyed by base property name
	var names map[string][]string
	for k, rawv := range m {
		if strings.Contains(k, "@") || strings.HasPrefix(k, "odata.") {
			continue
		}
		v := decodeValue(rawv, types[k])
		switch k {
		case ColPartitionKey:
			ent.PartitionKey, _ = v.(string)
			continue
		case ColRowKey:
			ent.RowKey, _ = v.(string)
			continue
		case ColTimestamp:
			ent.Timestamp = asTime(v)
			continue
		case ColTime:
			ent.Time = asTime(v)
			continue
		case ColSeverity:
			ent.Severity = int(asInt(v))
			continue
		case ColTruncated:
			ent.Truncated = int(asInt(v))
			continue
		}
		base, n := splitChunk(k)
		switch base {
		case ColLevel, ColMsg, ColLogger, ColCaller, ColStack, ColExtra, ColNames:
			sys[base] = append(sys[base], column{chunk: n, val: v})
			continue
		}
		groups[base] = append(groups[base], column{chunk: n, val: v})
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
		setPath(ent.Fields, path, joinChunks(cs), false)
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
				setPath(ent.Fields, it.K, decodeJSONValue(it.V), true)
			}
		}
	}
	if len(ent.Fields) == 0 {
		ent.Fields = nil
	}
	return ent, nil
}

// joinChunks joins a column and its continuation columns.
func joinChunks(cs []column) any {
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

// setPath stores v at path in m, creating group maps. When the key is taken
// (dup true) or a group name collides with a value, the key gets "#2", "#3"….
func setPath(m map[string]any, path []string, v any, dup bool) {
	for _, g := range path[:len(path)-1] {
		sub, ok := m[g].(map[string]any)
		if !ok {
			if _, taken := m[g]; taken {
				g = freeKey(m, g)
			}
			sub = map[string]any{}
			m[g] = sub
		}
		m = sub
	}
	k := path[len(path)-1]
	if _, taken := m[k]; taken {
		k = freeKey(m, k)
	}
	m[k] = v
}

func freeKey(m map[string]any, k string) string {
	for i := 2; ; i++ {
		c := k + "#" + strconv.Itoa(i)
		if _, taken := m[c]; !taken {
			return c
		}
	}
}

// decodeValue converts one property value by its EDM type annotation.
func decodeValue(raw json.RawMessage, edm string) any {
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
	return decodeJSONValue(raw)
}

// decodeJSONValue decodes plain JSON, integral numbers as int64.
func decodeJSONValue(raw json.RawMessage) any {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return string(raw)
	}
	return numbers(v)
}

func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = numbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = numbers(x[k])
		}
	}
	return v
}

func asTime(v any) time.Time {
	switch x := v.(type) {
	case time.Time:
		return x
	case string:
		t, _ := time.Parse(time.RFC3339Nano, x)
		return t.UTC()
	}
	return time.Time{}
}

func asInt(v any) int64 {
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
