package schema

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"
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

// member is one member of the entity's JSON object: its name (unquoted) and
// its value as JSON text.
type member struct {
	key string
	val string
}

// column is one property that is part of a text system column or of a
// field: its base name, continuation index and value: text for a system
// column (no boxing), any for a field.
type column struct {
	base   string
	sys    int // index in sysColumns + 1; 0 for a field
	chunk  int
	isText bool   // the value is text (always for a system column)
	text   string // then: the text, not yet copied out of the entity's JSON
	val    any    // else: the field's value
}

// arena holds the copies of one entity's strings in one allocation, sized
// up front, so the strings it hands out never move; a string that does not
// fit gets memory of its own. The strings of one Entity share it: keeping
// one of them keeps the entity's strings (never its JSON text) alive.
type arena struct{ b []byte }

func (a *arena) clone(s string) string {
	if len(s) == 0 {
		return ""
	}
	if len(a.b)+len(s) > cap(a.b) {
		return strings.Clone(s)
	}
	start := len(a.b)
	a.b = append(a.b, s...)
	return unsafe.String(&a.b[start], len(s))
}

// sysColumns are the text system columns, which may have continuation
// columns.
var sysColumns = [...]string{ColLevel, ColMsg, ColLogger, ColCaller, ColStack, ColExtra, ColNames}

const odataType = "@odata.type"

// Decode parses one entity as the Table service returns it (JSON with
// minimal or full metadata, as aztables passes it on). It returns an error
// only for input that is not a JSON object.
//
// The entity is split into its members by a single pass over the text (see
// scanObject); input that pass does not take (not a well-formed object, a
// repeated member name, deep nesting) is left to encoding/json, with the
// same result.
func Decode(raw []byte) (Entity, error) {
	var buf [64]member
	// src is raw itself, not a copy: every string the Entity holds is
	// copied out of it (arena.clone, DecodeName, encoding/json), so
	// nothing of raw is retained (TestDecodeRetainsNoText).
	src := unsafe.String(unsafe.SliceData(raw), len(raw))
	ms, ok := scanObject(src, buf[:0])
	if ok {
		ok = !hasDuplicate(ms)
	}
	if !ok {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return Entity{}, fmt.Errorf("tablelog: decode entity: %w", err)
		}
		ms = ms[:0]
		for k, v := range m {
			ms = append(ms, member{key: k, val: string(bytes.TrimSpace(v))})
		}
	}
	return assemble(ms), nil
}

// assemble builds the Entity from the members of its JSON object, which
// are well-formed JSON values under distinct names: the scalar system
// columns go straight into it, the text system columns and the fields are
// collected, sorted (system columns first, then fields by base name, each
// name's columns by continuation index) and joined.
func assemble(ms []member) Entity {
	var ent Entity
	var tbuf [64]string
	types := annotations(ms, tbuf[:0])
	var cbuf [64]column
	cols, nfields, size, chunked := columns(&ent, ms, types, cbuf[:0])
	// Without continuation columns every name is a column of its own and
	// the order only matters where two fields' keys collide: the system
	// columns are moved to the front, the fields taken as they come, and
	// sorted only when fields finds a collision.
	ordered := slices.IsSortedFunc(cols, compareColumns)
	switch {
	case ordered:
	case chunked:
		slices.SortFunc(cols, compareColumns)
		ordered = true
	default:
		systemFirst(cols)
	}
	a := arena{b: make([]byte, 0, size)}
	ent.PartitionKey, ent.RowKey = a.clone(ent.PartitionKey), a.clone(ent.RowKey)
	nsys, extra, names := systemText(&ent, cols, &a)
	if nfields > 0 {
		ent.Fields = make(map[string]any, nfields)
		if !fields(ent.Fields, cols[nsys:], names, &a, ordered) {
			clear(ent.Fields)
			slices.SortFunc(cols[nsys:], compareColumns)
			fields(ent.Fields, cols[nsys:], names, &a, true)
		}
	}
	if extra != "" {
		ent.Fields = extraFields(ent.Fields, extra)
	}
	if len(ent.Fields) == 0 {
		ent.Fields = nil
	}
	return ent
}

// columns sets ent's scalar system columns (keys, times, Severity,
// Truncated) from ms and appends the other properties to cols: the text
// system columns and their continuations, decoded as text, and the fields,
// decoded by type. Texts, the keys included, are not copied yet: size is
// what their copies take at the most, with the fields' names. nfields
// counts the fields' columns.
func columns(ent *Entity, ms []member, types []string, cols []column) (_ []column, nfields, size int, chunked bool) {
	for i := range ms {
		k, raw, edm := ms[i].key, ms[i].val, types[i]
		if strings.IndexByte(k, '@') >= 0 || strings.HasPrefix(k, "odata.") {
			continue
		}
		switch k {
		case ColPartitionKey:
			ent.PartitionKey, _ = decodeText(raw, edm)
			size += len(ent.PartitionKey)
			continue
		case ColRowKey:
			ent.RowKey, _ = decodeText(raw, edm)
			size += len(ent.RowKey)
			continue
		case ColTimestamp:
			ent.Timestamp = decodeTime(raw, edm)
			continue
		case ColTime:
			ent.Time = decodeTime(raw, edm)
			continue
		case ColSeverity:
			ent.Severity = int(decodeInt(raw, edm))
			continue
		case ColTruncated:
			ent.Truncated = int(decodeInt(raw, edm))
			continue
		}
		base, n := splitChunk(k)
		chunked = chunked || n != 0
		sys := 0
		for j, c := range sysColumns {
			if base == c {
				sys = j + 1
				break
			}
		}
		if sys != 0 {
			t, _ := decodeText(raw, edm)
			if base != ColExtra && base != ColNames { // parsed, not kept
				size += len(t)
			}
			cols = append(cols, column{base: base, sys: sys, chunk: n, isText: true, text: t})
			continue
		}
		nfields++
		size += len(base)
		if t, ok := decodeText(raw, edm); ok {
			size += len(t)
			cols = append(cols, column{base: base, chunk: n, isText: true, text: t})
			continue
		}
		cols = append(cols, column{base: base, chunk: n, val: decodeValue(raw, edm)})
	}
	return cols, nfields, size, chunked
}

// systemFirst moves the system columns to the front of cols.
func systemFirst(cols []column) {
	n := 0
	for i := range cols {
		if cols[i].sys != 0 {
			cols[n], cols[i] = cols[i], cols[n]
			n++
		}
	}
}

// compareColumns orders system columns first (in sysColumns' order), then
// fields by base name, each name's columns by continuation index.
func compareColumns(a, b column) int {
	if a.sys != b.sys {
		if a.sys == 0 || b.sys == 0 {
			return b.sys - a.sys
		}
		return a.sys - b.sys
	}
	if c := strings.Compare(a.base, b.base); c != 0 {
		return c
	}
	return a.chunk - b.chunk
}

// systemText sets ent's text system columns from the sorted cols, each
// joined with its continuations (copied into a), and returns how many
// columns they took, the Extra column's text (not copied: it is parsed
// only) and the Names column's map.
func systemText(ent *Entity, cols []column, a *arena) (n int, extra string, names map[string][]string) {
	for n < len(cols) && cols[n].sys != 0 {
		j := n + 1
		for j < len(cols) && cols[j].sys == cols[n].sys {
			j++
		}
		s := text(cols[n:j])
		switch cols[n].base {
		case ColLevel, ColMsg, ColLogger, ColCaller, ColStack:
			if j == n+1 {
				s = a.clone(s) // else text made a copy
			}
		}
		switch cols[n].base {
		case ColLevel:
			ent.Level = s
		case ColMsg:
			ent.Msg = s
		case ColLogger:
			ent.Logger = s
		case ColCaller:
			ent.Caller = s
		case ColStack:
			ent.Stack = s
		case ColExtra:
			extra = s
		case ColNames:
			names = parseNames(s)
		}
		n = j
	}
	return n, extra, names
}

// parseNames parses the Names column (shortened property name → original
// path); nil for an empty or malformed one.
func parseNames(s string) map[string][]string {
	if s == "" {
		return nil
	}
	var names map[string][]string
	_ = json.Unmarshal([]byte(s), &names)
	return names
}

// fields stores the field columns in m under their original paths: from
// names for a shortened name, else DecodeName's. Texts and names are
// copied into a. The columns are sorted by base name when ordered; when
// not (each base then has a single column), fields stops and reports false
// at the first key that collides, for the caller to sort and start again.
func fields(m map[string]any, cols []column, names map[string][]string, a *arena, ordered bool) bool {
	// Every base name is taken once here, and a name that is its own key
	// (plainName) is no other such name's key: while m holds only those,
	// such a key cannot be taken.
	onlyPlain := len(m) == 0
	for i := 0; i < len(cols); {
		j := i + 1
		for j < len(cols) && cols[j].base == cols[i].base {
			j++
		}
		base := cols[i].base
		var v any
		if j == i+1 && cols[i].isText {
			v = a.clone(cols[i].text)
		} else {
			v = joinChunks(cols[i:j])
		}
		i = j
		var collided bool
		if path, ok := names[base]; ok && len(path) > 0 {
			onlyPlain = false
			collided = setPath(m, path, v, false)
		} else if plainName(base) {
			// The name is its key (DecodeName's result, without its
			// allocations).
			if onlyPlain {
				m[a.clone(base)] = v
			} else {
				collided = setKey(m, a.clone(base), v)
			}
		} else if path, ok := DecodeName(base); ok {
			onlyPlain = false
			collided = setPath(m, path, v, false)
		} else {
			onlyPlain = false
			collided = setKey(m, a.clone(base), v)
		}
		if collided && !ordered {
			return false
		}
	}
	return true
}

// plainName reports whether DecodeName(name) is name itself: a name whose
// every '_' is a literal one (not followed by '_', 'x', 'y' or 'z'), which
// covers the ordinary keys "status", "user_id", ….
func plainName(name string) bool {
	for i := strings.IndexByte(name, '_'); i >= 0; {
		if i+1 < len(name) && needsEscapeBefore(name[i+1]) {
			return false
		}
		j := strings.IndexByte(name[i+1:], '_')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return true
}

// extraFields adds the fields of the Extra column (a JSON array of
// {"k": path, "v": value}) to m, creating it if needed, and returns it. A
// malformed Extra column adds nothing.
func extraFields(m map[string]any, extra string) map[string]any {
	var items []struct {
		K []string        `json:"k"`
		V json.RawMessage `json:"v"`
	}
	if err := json.Unmarshal([]byte(extra), &items); err != nil {
		return m
	}
	for _, it := range items {
		if len(it.K) == 0 {
			continue
		}
		if m == nil {
			m = map[string]any{}
		}
		setPath(m, it.K, decodeJSONValue(it.V), true)
	}
	return m
}

// annotations returns the EDM type annotation of each member ("" when
// none): for member i, the value of the member named
// ms[i].key+"@odata.type", usually next to it.
func annotations(ms []member, types []string) []string {
	for range ms {
		types = append(types, "")
	}
	for j := range ms {
		a := ms[j].key
		name, ok := strings.CutSuffix(a, odataType)
		if !ok || ms[j].val[0] != '"' {
			continue
		}
		i := -1
		switch {
		case j+1 < len(ms) && ms[j+1].key == name:
			i = j + 1
		case j > 0 && ms[j-1].key == name:
			i = j - 1
		default:
			for n := range ms {
				if ms[n].key == name {
					i = n
					break
				}
			}
		}
		if i >= 0 {
			types[i] = unquote(ms[j].val)
		}
	}
	return types
}

// hasDuplicate reports whether two members have the same name.
func hasDuplicate(ms []member) bool {
	sorted := true
	for i := 1; i < len(ms); i++ {
		if ms[i-1].key >= ms[i].key {
			sorted = false
			break
		}
	}
	if sorted { // as aztables passes entities on: it marshals a map
		return false
	}
	if len(ms) <= 64 {
		// A name is compared only with the earlier names of the same
		// hash, found through a 1,024-bit set of hash slots.
		var hs [64]uint32
		var set [16]uint64
		for i := range ms {
			h := nameHash(ms[i].key)
			slot := h >> 22
			if set[slot>>6]&(1<<(slot&63)) != 0 {
				for j := range i {
					if hs[j] == h && ms[j].key == ms[i].key {
						return true
					}
				}
			}
			set[slot>>6] |= 1 << (slot & 63)
			hs[i] = h
		}
		return false
	}
	keys := make([]string, len(ms))
	for i := range ms {
		keys[i] = ms[i].key
	}
	slices.Sort(keys)
	for i := 1; i < len(keys); i++ {
		if keys[i-1] == keys[i] {
			return true
		}
	}
	return false
}

// nameHash hashes a member name by its length and three of its bytes.
func nameHash(k string) uint32 {
	h := uint32(len(k))
	if len(k) > 0 {
		h = h*0x9E3779B1 ^ uint32(k[0])<<16 ^ uint32(k[len(k)/2])<<8 ^ uint32(k[len(k)-1])
	}
	return h * 0x9E3779B1
}

// text joins the string values of a system column and its continuation
// columns, in order.
func text(cs []column) string {
	if len(cs) == 1 {
		return cs[0].text
	}
	var b strings.Builder
	for _, c := range cs {
		b.WriteString(c.text)
	}
	return b.String()
}

// joinChunks joins a column and its continuation columns, in memory of
// its own; a single column that is not text is returned as it is.
func joinChunks(cs []column) any {
	if cs[0].isText {
		if len(cs) == 1 {
			return strings.Clone(cs[0].text)
		}
		return text(cs) // a copy already
	}
	if len(cs) == 1 {
		return cs[0].val
	}
	switch cs[0].val.(type) {
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
// It reports whether a key collided.
func setPath(m map[string]any, path []string, v any, dup bool) (collided bool) {
	for _, g := range path[:len(path)-1] {
		sub, ok := m[g].(map[string]any)
		if !ok {
			if _, taken := m[g]; taken {
				g = freeKey(m, g)
				collided = true
			}
			sub = map[string]any{}
			m[g] = sub
		}
		m = sub
	}
	return setKey(m, path[len(path)-1], v) || collided
}

// setKey stores v under k in m, or under k+"#2", "#3"… when k is taken
// (and then reports true).
func setKey(m map[string]any, k string, v any) bool {
	_, taken := m[k]
	if taken {
		k = freeKey(m, k)
	}
	m[k] = v
	return taken
}

func freeKey(m map[string]any, k string) string {
	for i := 2; ; i++ {
		c := k + "#" + strconv.Itoa(i)
		if _, taken := m[c]; !taken {
			return c
		}
	}
}

// decodeValue converts one property value, well-formed JSON text, by its
// EDM type annotation. The conversions are encoding/json's: a value of
// another JSON type than the annotation's is the type's zero value.
func decodeValue(raw string, edm string) any {
	c := raw[0]
	switch edm {
	case "Edm.Int64":
		return decodeInt64(raw)
	case "Edm.Int32":
		return decodeInt32(raw)
	case "Edm.Double":
		return decodeDouble(raw)
	case "Edm.DateTime":
		return parseTime(stringValue(raw))
	case "Edm.Binary":
		b, _ := base64.StdEncoding.DecodeString(stringValue(raw))
		if b == nil {
			b = []byte{}
		}
		return b
	case "Edm.Boolean":
		return raw == "true"
	case "Edm.Guid", "Edm.String":
		if c == '"' {
			return unquoteCopy(raw)
		}
		return ""
	}
	switch {
	case isNumber(c):
		// An unannotated number is an Edm.Double or an Edm.Int32; the
		// service may write an integral double without a decimal point, so
		// the two cannot be told apart. tablelog writes every integer as
		// Edm.Int64 (annotated), so a bare number is a double; the Int32
		// system columns (Severity, Truncated) are read by name.
		f, _ := strconv.ParseFloat(raw, 64)
		return f
	case c == '"':
		return unquoteCopy(raw)
	case raw == "true":
		return true
	case raw == "false":
		return false
	case raw == "null":
		return nil
	}
	return decodeJSONValue([]byte(raw))
}

// isNumber reports whether c starts a JSON number.
func isNumber(c byte) bool { return c == '-' || c >= '0' && c <= '9' }

// decodeInt64 is decodeValue for Edm.Int64: a number or a decimal string.
func decodeInt64(raw string) int64 {
	var n int64
	var err error
	switch c := raw[0]; {
	case c == '"':
		n, err = strconv.ParseInt(unquote(raw), 10, 64)
	case isNumber(c):
		n, err = strconv.ParseInt(raw, 10, 64)
	}
	if err != nil {
		n = 0
	}
	return n
}

// decodeInt32 is decodeValue for Edm.Int32.
func decodeInt32(raw string) int32 {
	if isNumber(raw[0]) {
		if n, err := strconv.ParseInt(raw, 10, 64); err == nil && n >= math.MinInt32 && n <= math.MaxInt32 {
			return int32(n)
		}
	}
	return 0
}

// decodeDouble is decodeValue for Edm.Double: a number or a string
// ("NaN", "Infinity", …).
func decodeDouble(raw string) float64 {
	switch c := raw[0]; {
	case isNumber(c):
		if f, err := strconv.ParseFloat(raw, 64); err == nil {
			return f
		}
	case c == '"':
		f, _ := strconv.ParseFloat(unquote(raw), 64)
		return f
	}
	return 0
}

// decodeText returns the string decodeValue would, and ok true, when
// decodeValue returns a string; else "" and false (what a key or a text
// system column then holds). The string may be part of raw: copy it to
// keep it.
func decodeText(raw, edm string) (_ string, ok bool) {
	switch edm {
	case "Edm.Int64", "Edm.Int32", "Edm.Double", "Edm.DateTime", "Edm.Binary", "Edm.Boolean":
		return "", false
	case "Edm.Guid", "Edm.String":
		if raw[0] != '"' {
			return "", true
		}
	}
	if raw[0] != '"' {
		return "", false
	}
	return unquote(raw), true
}

// decodeTime is what decodeValue's result becomes as the Time or Timestamp
// column: an Edm.DateTime or text parsed as a time, the zero time for
// anything else.
func decodeTime(raw, edm string) time.Time {
	switch edm {
	case "Edm.DateTime":
		return parseTime(stringValue(raw))
	case "Edm.Int64", "Edm.Int32", "Edm.Double", "Edm.Binary", "Edm.Boolean":
		return time.Time{}
	}
	if raw[0] != '"' {
		return time.Time{}
	}
	return parseTime(unquote(raw))
}

// decodeInt is what decodeValue's result becomes as the Severity or
// Truncated column: an integer or a double's integer part, 0 for anything
// else.
func decodeInt(raw, edm string) int64 {
	switch edm {
	case "Edm.Int64":
		return decodeInt64(raw)
	case "Edm.Int32":
		return int64(decodeInt32(raw))
	case "Edm.Double":
		return int64(decodeDouble(raw))
	case "Edm.DateTime", "Edm.Binary", "Edm.Boolean", "Edm.Guid", "Edm.String":
		return 0
	}
	if isNumber(raw[0]) { // unannotated (or an unknown annotation): a double
		f, _ := strconv.ParseFloat(raw, 64)
		return int64(f)
	}
	return 0
}

// stringValue is the string a JSON string value holds, "" for any other value.
func stringValue(raw string) string {
	if raw[0] != '"' {
		return ""
	}
	return unquote(raw)
}

// parseTime parses an Edm.DateTime value as time.Parse with
// time.RFC3339Nano does (the zero time for anything else), in UTC. The
// service's form, "2006-01-02T15:04:05.9999999Z", is parsed here; any other
// is left to time.Parse.
func parseTime(s string) time.Time {
	if len(s) >= 20 && len(s) <= 30 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' && s[len(s)-1] == 'Z' {
		year, ok1 := digits(s[0:4])
		month, ok2 := digits(s[5:7])
		day, ok3 := digits(s[8:10])
		hour, ok4 := digits(s[11:13])
		minute, ok5 := digits(s[14:16])
		sec, ok6 := digits(s[17:19])
		frac := s[19 : len(s)-1]
		nsec, ok7 := 0, true
		if frac != "" {
			if frac[0] != '.' || len(frac) < 2 {
				ok7 = false
			} else {
				nsec, ok7 = digits(frac[1:])
				for range 10 - len(frac) {
					nsec *= 10
				}
			}
		}
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && month >= 1 && month <= 12 && day >= 1 &&
			day <= daysIn(time.Month(month), year) && hour < 24 && minute < 60 && sec < 60 {
			return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
		}
	}
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t.UTC()
}

// digits parses s, 1 to 9 ASCII digits.
func digits(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(m time.Month, year int) int {
	if m == time.February {
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	}
	return 30 + int((m+m>>3)&1)
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
