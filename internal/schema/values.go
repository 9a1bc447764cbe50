package schema

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
	"unsafe"
)

// begin prepares e.name for key under the open groups. It reports false
// when the field cannot be a column (a duplicate name, or no property slot
// left): the caller then stores it in Extra.
func (e *Encoder) begin(key string, follow bool) bool {
	// The key's encoded segment comes from the cache when it can: the
	// name is the open groups' prefix and the segment, its hash continues
	// the prefix's.
	top := len(e.prefix) == 0
	e.name = e.name[:0]
	if !top {
		e.name = append(e.name, e.prefix...)
	}
	var (
		h   uint64
		hit bool
	)
	if !follow && e.nc != nil {
		var seg []byte
		if seg, h, hit = e.nc.lookup(key, top); hit && len(e.prefix)+len(seg) <= maxColumnName {
			e.name = append(e.name, seg...)
			if !top {
				h = fnv64From(e.phash, seg)
			}
		} else {
			hit = false
		}
	}
	if !hit {
		start := len(e.prefix)
		e.name = appendSegment(e.name, key, top, follow)
		if top {
			e.name = escapeReserved(e.name, 0)
		}
		if !follow {
			if e.nc == nil {
				e.nc = new(nameCache)
			}
			e.nc.store(key, top, e.name[start:], fnv64(e.name[start:]))
		}
		if len(e.name) > maxColumnName {
			e.name = shortenName(e.name, chunkSuffixRoom)
			e.addName(e.name, key)
		}
		h = fnv64(e.name)
	}
	if e.nprops >= MaxProperties-metaProps {
		return false
	}
	if e.seen(h) {
		return false
	}
	e.addHash(h)
	return true
}

// addHash records a property name's hash for seen.
func (e *Encoder) addHash(h uint64) {
	e.hashes = append(e.hashes, h)
	e.bloom |= 1 << (h & 63)
}

// seen reports whether a property name with hash h was written.
func (e *Encoder) seen(h uint64) bool {
	if e.bloom&(1<<(h&63)) == 0 {
		return false
	}
	for _, x := range e.hashes {
		if x == h {
			return true
		}
	}
	return false
}

// addName records a shortened property name's original path in Names.
func (e *Encoder) addName(prop []byte, key string) {
	if len(e.names) > 0 {
		e.names = append(e.names, ',')
	}
	e.names = append(e.names, '"')
	e.names = append(e.names, prop...)
	e.names = append(e.names, '"', ':')
	e.names = e.appendPath(e.names, key)
	e.nnames++
}

// column starts a column named e.name with the given value size and type
// annotation ("" for none). It reports false when the entity is full (the
// value is then left out and counted).
func (e *Encoder) column(valueSize int, edm string) bool {
	sz := 8 + 2*len(e.name) + valueSize
	if e.size+sz > budget {
		e.truncs++
		return false
	}
	b, name := e.buf, e.name
	start := len(b)
	if edm != "" {
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, `@odata.type":"`...)
		b = append(b, edm...)
		b = append(b, '"')
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	e.setBuf(b)
	e.nprops++
	e.size += sz
	if !e.keyed {
		e.cols = append(e.cols, fragCol{start: start, hash: e.hashes[len(e.hashes)-1], props: 1, at: e.size - sz})
	}
	return true
}

// endColumn closes the fragment bookkeeping of the last column.
func (e *Encoder) endColumn() {
	if !e.keyed && len(e.cols) > 0 {
		c := &e.cols[len(e.cols)-1]
		c.end = len(e.buf)
		c.size = e.size - c.at
	}
}

// String writes a text field. Text over 32K UTF-16 units continues in
// chunk columns; invalid UTF-8 is replaced with U+FFFD (a repair).
func (e *Encoder) String(key, v string) {
	if !e.begin(key, len(v) > MaxStringChars) {
		e.extraString(key, v)
		return
	}
	e.writeString(v)
}

// writeString writes s as column e.name, continuing in chunk columns
// "<name>_z1", … while the entity has room, and cutting the last one short
// with a visible marker when it has not.
func (e *Encoder) writeString(s string) {
	total := len(s)
	base := len(e.name)
	limit := MaxProperties - metaProps
	for chunk := 0; ; chunk++ {
		if chunk > 0 {
			e.name = append(e.name[:base], '_', 'z')
			e.name = strconv.AppendInt(e.name, int64(chunk), 10)
		}
		room := (budget - e.size - 8 - 2*len(e.name) - 4) / 2
		if room > MaxStringChars {
			room = MaxStringChars
		}
		if room < 64 || e.nprops >= limit {
			e.truncs++
			return
		}
		mark, markSize, markProps, markCols := len(e.buf), e.size, e.nprops, len(e.cols)
		e.openColumn()
		var units, used int
		var bad bool
		var b []byte
		b, units, used, bad = appendJSONString(e.buf, s, room)
		e.setBuf(b)
		if bad && chunk == 0 {
			e.repairs++
		}
		rest := s[used:]
		if rest == "" {
			e.size += 4 + 2*units
			e.endColumn()
			return
		}
		after := e.size + 4 + 2*units
		if chunk+1 < 64 && e.nprops < limit && budget-after > 8+2*(len(e.name)+4)+4+256 {
			e.size = after
			e.endColumn()
			s = rest
			continue
		}
		// No room for another chunk: cut this one short, with a marker.
		e.buf, e.size, e.nprops, e.cols = e.buf[:mark], markSize, markProps, e.cols[:markCols]
		e.openColumn()
		marker := truncMarker(total)
		mu := utf16Len(marker)
		e.buf, units, _, _ = appendJSONString(e.buf, s, room-mu)
		e.buf = append(e.buf[:len(e.buf)-1], marker...)
		e.buf = append(e.buf, '"')
		e.size += 4 + 2*(units+mu)
		e.endColumn()
		e.truncs++
		return
	}
}

// openColumn writes the name of a string or meta column, e.name; the value
// (and its size, 4 + 2*units) follows.
func (e *Encoder) openColumn() {
	if !e.keyed {
		e.cols = append(e.cols, fragCol{start: len(e.buf), hash: fnv64(e.name), props: 1, at: e.size})
	}
	e.buf = append(e.buf, ',', '"')
	e.buf = append(e.buf, e.name...)
	e.buf = append(e.buf, '"', ':')
	e.nprops++
	e.size += 8 + 2*len(e.name)
}

func truncMarker(total int) string {
	return "…[tablelog: truncated, " + strconv.Itoa(total) + " bytes in all]"
}

// Bool writes an Edm.Boolean field.
func (e *Encoder) Bool(key string, v bool) {
	if !e.begin(key, false) {
		e.extraRaw(key, strconv.AppendBool(e.tmp[:0], v))
		return
	}
	if e.column(1, "") {
		e.setBuf(strconv.AppendBool(e.buf, v))
		e.endColumn()
	}
}

// Int64 writes an Edm.Int64 field. Every Go int is stored this way, so a
// field keeps one type across records and filters on it stay simple.
func (e *Encoder) Int64(key string, v int64) {
	if !e.begin(key, false) {
		e.extraRaw(key, strconv.AppendInt(e.tmp[:0], v, 10))
		return
	}
	if e.column(8, "Edm.Int64") {
		e.buf = append(e.buf, '"')
		e.setBuf(strconv.AppendInt(e.buf, v, 10))
		e.buf = append(e.buf, '"')
		e.endColumn()
	}
}

// Int32 writes an Edm.Int64 field too: every integer, whatever its Go
// width, is stored as Edm.Int64, so a field keeps one type across records
// (and filters on it match them all), and reading back never confuses an
// integer with an integral Edm.Double (which the service returns unannotated).
func (e *Encoder) Int32(key string, v int32) { e.Int64(key, int64(v)) }

// Uint64 writes an Edm.Int64 field, or decimal text (a repair) when v is
// above MaxInt64.
func (e *Encoder) Uint64(key string, v uint64) {
	if v <= math.MaxInt64 {
		e.Int64(key, int64(v))
		return
	}
	e.repairs++
	e.String(key, strconv.FormatUint(v, 10))
}

// Float64 writes an Edm.Double field; NaN and ±Inf are stored as the text
// "NaN", "+Inf", "-Inf" (a repair).
func (e *Encoder) Float64(key string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		e.repairs++
		switch {
		case math.IsNaN(v):
			e.String(key, "NaN")
		case v > 0:
			e.String(key, "+Inf")
		default:
			e.String(key, "-Inf")
		}
		return
	}
	if !e.begin(key, false) {
		e.extraRaw(key, appendFloat(e.tmp[:0], v))
		return
	}
	if e.column(8, "Edm.Double") {
		e.setBuf(appendFloat(e.buf, v))
		e.endColumn()
	}
}

// Float32 writes an Edm.Double field holding v's shortest decimal form, so
// 0.1 stays 0.1 rather than 0.10000000149011612; NaN and ±Inf as Float64.
func (e *Encoder) Float32(key string, v float32) {
	var b [32]byte
	x, err := strconv.ParseFloat(string(strconv.AppendFloat(b[:0], float64(v), 'g', -1, 32)), 64)
	if err != nil {
		x = float64(v) // NaN, ±Inf
	}
	e.Float64(key, x)
}

func appendFloat(dst []byte, v float64) []byte {
	dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
	return dst
}

// Time writes an Edm.DateTime field (100 ns precision, UTC); a time outside
// 1601..9999 is stored as RFC 3339 text (a repair).
func (e *Encoder) Time(key string, t time.Time) {
	if !dateTimeInRange(t) {
		e.repairs++
		e.String(key, t.Format(time.RFC3339Nano))
		return
	}
	if !e.begin(key, false) {
		e.tmp = append(e.tmp[:0], '"')
		e.tmp = e.day.appendTime7(e.tmp, t)
		e.extraRaw(key, append(e.tmp, '"'))
		return
	}
	if e.column(8, "Edm.DateTime") {
		e.buf = append(e.buf, '"')
		e.setBuf(e.day.appendTime7(e.buf, t))
		e.buf = append(e.buf, '"')
		e.endColumn()
	}
}

func appendDateTime(dst []byte, col string, t time.Time) []byte {
	dst = append(dst, `,"`...)
	dst = append(dst, col...)
	dst = append(dst, `@odata.type":"Edm.DateTime","`...)
	dst = append(dst, col...)
	dst = append(dst, `":"`...)
	dst = appendTime7(dst, t)
	return append(dst, '"')
}

// appendTime7 appends t in UTC as Edm.DateTime's wire form,
// "2006-01-02T15:04:05.0000000Z" (timeLayout), several times faster than
// time.AppendFormat. The year must be 1..9999 (see dateTimeInRange).
func appendTime7(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, min, sec := t.Clock()
	frac := t.Nanosecond() / 100
	var b [28]byte
	put := func(i, v, n int) {
		for j := i + n - 1; j >= i; j-- {
			b[j] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, year, 4)
	b[4] = '-'
	put(5, int(month), 2)
	b[7] = '-'
	put(8, day, 2)
	b[10] = 'T'
	put(11, hour, 2)
	b[13] = ':'
	put(14, min, 2)
	b[16] = ':'
	put(17, sec, 2)
	b[19] = '.'
	put(20, frac, 7)
	b[27] = 'Z'
	return append(dst, b[:]...)
}

func dateTimeInRange(t time.Time) bool {
	s := t.Unix()
	return s >= minDateTimeUnix && s <= maxDateTimeUnix
}

// Duration writes an Edm.Int64 field holding nanoseconds.
func (e *Encoder) Duration(key string, d time.Duration) { e.Int64(key, int64(d)) }

// Bytes writes an Edm.Binary field; over 64 KiB it continues in chunk
// columns, up to the entity limit.
func (e *Encoder) Bytes(key string, b []byte) {
	if !e.begin(key, len(b) > MaxBinaryBytes) {
		e.tmp = append(e.tmp[:0], '"')
		n := base64.StdEncoding.EncodedLen(len(b))
		if len(e.extra)+n+64 > maxExtraBytes {
			e.truncs++
			return
		}
		e.tmp = base64.StdEncoding.AppendEncode(e.tmp, b)
		e.extraRaw(key, append(e.tmp, '"'))
		return
	}
	base := len(e.name)
	for chunk := 0; ; chunk++ {
		if chunk > 0 {
			e.name = append(e.name[:base], '_', 'z')
			e.name = strconv.AppendInt(e.name, int64(chunk), 10)
			if e.nprops >= MaxProperties-metaProps {
				e.truncs++
				return
			}
			if !e.keyed {
				e.addHash(fnv64(e.name))
			}
		}
		n := len(b)
		if n > MaxBinaryBytes {
			n = MaxBinaryBytes
		}
		if room := budget - e.size - 8 - 2*len(e.name) - 4; n > room {
			n = room
			if n <= 0 {
				e.truncs++
				return
			}
		}
		if !e.column(4+n, "Edm.Binary") {
			return
		}
		e.buf = append(e.buf, '"')
		e.buf = base64.StdEncoding.AppendEncode(e.buf, b[:n])
		e.buf = append(e.buf, '"')
		e.endColumn()
		b = b[n:]
		if len(b) == 0 {
			return
		}
		if budget-e.size < 256 {
			e.truncs++
			return
		}
	}
}

// RawJSON writes a field whose value is already JSON (an array or object)
// as an Edm.String column holding that JSON text.
func (e *Encoder) RawJSON(key string, js []byte) {
	if !e.begin(key, len(js) > MaxStringChars) {
		if json.Valid(js) {
			e.extraRaw(key, js)
		} else {
			e.extraString(key, string(js))
		}
		return
	}
	// The bytes are only read during this call, never retained.
	e.writeString(unsafe.String(unsafe.SliceData(js), len(js)))
}

// Null writes a nil value, as the text "<nil>".
func (e *Encoder) Null(key string) { e.String(key, "<nil>") }

// Any writes v by its dynamic type: the typed methods for basic types,
// Error() for errors, String() for fmt.Stringers, JSON text for the rest.
// A panicking Error, String or MarshalJSON method is recovered and its
// panic stored as text (a repair).
func (e *Encoder) Any(key string, v any) {
	defer func() {
		if r := recover(); r != nil {
			e.repairs++
			e.String(key, fmt.Sprintf("<panic: %v>", r))
		}
	}()
	switch x := v.(type) {
	case nil:
		e.Null(key)
	case string:
		e.String(key, x)
	case bool:
		e.Bool(key, x)
	case int:
		e.Int64(key, int64(x))
	case int64:
		e.Int64(key, x)
	case int32:
		e.Int32(key, x)
	case int16:
		e.Int32(key, int32(x))
	case int8:
		e.Int32(key, int32(x))
	case uint:
		e.Uint64(key, uint64(x))
	case uint64:
		e.Uint64(key, x)
	case uint32:
		e.Int64(key, int64(x))
	case uint16:
		e.Int32(key, int32(x))
	case uint8:
		e.Int32(key, int32(x))
	case uintptr:
		e.Uint64(key, uint64(x))
	case float64:
		e.Float64(key, x)
	case float32:
		e.Float32(key, x)
	case time.Time:
		e.Time(key, x)
	case time.Duration:
		e.Duration(key, x)
	case []byte:
		e.Bytes(key, x)
	case json.RawMessage:
		e.RawJSON(key, x)
	case error:
		if IsNilPointer(v) {
			e.Null(key)
			return
		}
		e.String(key, x.Error())
	case fmt.Stringer:
		if IsNilPointer(v) {
			e.Null(key)
			return
		}
		e.String(key, x.String())
	default:
		if IsNilPointer(v) {
			e.Null(key)
			return
		}
		js, err := json.Marshal(v)
		if err != nil {
			e.repairs++
			e.String(key, fmt.Sprintf("%+v", v))
			return
		}
		e.RawJSON(key, js)
	}
}

// IsNilPointer reports whether v is a nil pointer, map, slice, interface,
// func or chan (which Any stores as "<nil>", whatever its methods).
func IsNilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface, reflect.Func, reflect.Chan:
		return rv.IsNil()
	}
	return false
}
