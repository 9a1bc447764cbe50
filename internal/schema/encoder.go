package schema

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// budget is how much of MaxEntityBytes (Azure's accounting) the encoder
// fills with columns; the rest is headroom for the Truncated and Names
// columns and the Extra column's overhead.
const budget = MaxEntityBytes - 4<<10

// maxExtraBytes bounds the Extra column: at most extraChunks columns.
const (
	extraChunks   = 4
	maxExtraBytes = extraChunks * MaxStringChars
	// metaProps is how many property slots are kept free for Extra (and
	// its chunks), Names and Truncated.
	metaProps = extraChunks + 2
)

// timeLayout is Edm.DateTime's wire form: seven fractional digits, UTC.
const timeLayout = "2006-01-02T15:04:05.0000000Z"

// Encoder builds the OData JSON of one entity straight into a reusable byte
// buffer. It is not safe for concurrent use: give each goroutine its own,
// or pool them with sync.Pool. The zero value is ready to use.
//
// A record is encoded as Reset, the Set* system columns, AppendFragment,
// the field methods (inside OpenGroup/CloseGroup as needed), then Finish.
// Field methods take the field's own key; the open groups are its path, and
// EncodeName gives the property name. No method panics on any input: values
// a column cannot hold are repaired and counted (Repairs), values that do not
// fit the entity limits are cut short with a visible marker or left out and
// counted (Truncations, also stored in the Truncated column). The entity
// Finish returns is one Azure accepts: under 1 MiB, at most 252 properties,
// valid names and values.
//
// Repairs (see the package comment for the whole list):
//   - a string longer than 32K UTF-16 units continues in "<name>_z1", …;
//     []byte over 64 KiB likewise; Decode joins them again;
//   - a field whose name repeats one already in the entity, or that comes
//     after the property limit, goes to the Extra column (a JSON array of
//     {"k": path, "v": value});
//   - uint64 above MaxInt64, NaN and ±Inf, and times outside 1601..9999
//     are stored as text; invalid UTF-8 becomes U+FFFD;
//   - nil is stored as the text "<nil>";
//   - every integer is Edm.Int64, whatever its Go width.
type Encoder struct {
	buf    []byte   // the entity's JSON
	keyed  bool     // Reset (entity) rather than ResetFragment
	prefix []byte   // encoded open groups, each followed by "__"
	phash  uint64   // fnv64(prefix)
	plens  []int    // len(prefix) before each open group
	groups []string // the open groups' raw names
	hashes []uint64 // property names written, for duplicate detection
	nprops int      // custom properties written
	size   int      // Azure's size accounting
	extra  []byte   // Extra items, comma separated
	names  []byte   // Names members, comma separated
	nnames int
	cols   []fragCol // when building a fragment: one per column
	name   []byte    // scratch: the current property name
	tmp    []byte    // scratch
	nc     *nameCache
	day    dayCache
	lastPK string // the PartitionKey of the last Reset
	pkJSON []byte // and the entity's opening up to its value

	repairs, truncs int
}

// Fragment is a pre-encoded run of fields, with the groups left open after
// them, made once (by With or WithAttrs) and appended to many entities. It
// is immutable and safe for concurrent use. The zero Fragment is empty.
type Fragment struct{ f *fragment }

type fragment struct {
	body    []byte
	cols    []fragCol
	extra   []byte
	names   []byte
	nnames  int
	groups  []string
	repairs int
	truncs  int
}

type fragCol struct {
	start, end int // body[start:end] is the column's JSON, with its leading comma
	hash       uint64
	size       int
	props      int
	at         int // entity size before the column (while building)
}

// Reset starts a new entity with the given keys, dropping all earlier state.
// The keys must be valid (PartitionKey and RowKey from this package).
func (e *Encoder) Reset(partitionKey, rowKey string) {
	e.reset()
	e.keyed = true
	if partitionKey != e.lastPK || len(e.pkJSON) == 0 {
		// Records of one day share their PartitionKey: its JSON is kept.
		e.pkJSON = append(e.pkJSON[:0], `{"PartitionKey":`...)
		e.pkJSON, _, _, _ = appendJSONString(e.pkJSON, partitionKey, MaxKeyChars)
		e.lastPK = partitionKey
	}
	e.buf = append(e.buf, e.pkJSON...)
	e.buf = append(e.buf, `,"RowKey":`...)
	e.buf, _, _, _ = appendJSONString(e.buf, rowKey, MaxKeyChars)
	e.size = 4 + 2*len(partitionKey) + 2*len(rowKey)
}

// ResetFragment starts a keyless run of fields, to be captured by Fragment.
func (e *Encoder) ResetFragment() {
	e.reset()
	e.keyed = false
}

func (e *Encoder) reset() {
	e.buf = e.buf[:0]
	e.prefix = e.prefix[:0]
	e.phash = fnvOffset
	e.plens = e.plens[:0]
	e.groups = e.groups[:0]
	e.hashes = e.hashes[:0]
	e.nprops, e.size = 0, 0
	e.extra = e.extra[:0]
	e.names = e.names[:0]
	e.nnames = 0
	e.cols = e.cols[:0]
	e.repairs, e.truncs = 0, 0
}

// Fragment returns the fields encoded since ResetFragment, and the groups
// open now, as an immutable Fragment.
func (e *Encoder) Fragment() Fragment {
	f := &fragment{
		body:    append([]byte(nil), e.buf...),
		cols:    append([]fragCol(nil), e.cols...),
		extra:   append([]byte(nil), e.extra...),
		names:   append([]byte(nil), e.names...),
		nnames:  e.nnames,
		groups:  append([]string(nil), e.groups...),
		repairs: e.repairs,
		truncs:  e.truncs,
	}
	return Fragment{f}
}

// AppendFragment appends f's fields and then opens f's groups. Columns that
// no longer fit (the entity is full) are left out and counted.
func (e *Encoder) AppendFragment(f Fragment) {
	if f.f == nil {
		return
	}
	fr := f.f
	for _, c := range fr.cols {
		if e.nprops+c.props > MaxProperties-metaProps || e.size+c.size > budget || e.seen(c.hash) {
			e.truncs++
			continue
		}
		e.buf = append(e.buf, fr.body[c.start:c.end]...)
		if !e.keyed {
			e.cols = append(e.cols, fragCol{start: len(e.buf) - (c.end - c.start), end: len(e.buf), hash: c.hash, size: c.size, props: c.props})
		}
		e.hashes = append(e.hashes, c.hash)
		e.nprops += c.props
		e.size += c.size
	}
	if len(fr.extra) > 0 {
		if len(e.extra)+len(fr.extra)+1 <= maxExtraBytes {
			if len(e.extra) > 0 {
				e.extra = append(e.extra, ',')
			}
			e.extra = append(e.extra, fr.extra...)
		} else {
			e.truncs++
		}
	}
	if fr.nnames > 0 {
		if len(e.names) > 0 {
			e.names = append(e.names, ',')
		}
		e.names = append(e.names, fr.names...)
		e.nnames += fr.nnames
	}
	e.repairs += fr.repairs
	e.truncs += fr.truncs
	for _, g := range fr.groups {
		e.OpenGroup(g)
	}
}

// OpenGroup nests the fields that follow under name (a slog group, a zap
// namespace) until the matching CloseGroup.
func (e *Encoder) OpenGroup(name string) {
	e.plens = append(e.plens, len(e.prefix))
	e.groups = append(e.groups, name)
	start := len(e.prefix)
	e.prefix = appendSegment(e.prefix, name, start == 0, true)
	e.prefix = append(e.prefix, '_', '_')
	e.phash = fnv64(e.prefix)
}

// CloseGroup closes the innermost open group; it does nothing when none is open.
func (e *Encoder) CloseGroup() {
	n := len(e.plens)
	if n == 0 {
		return
	}
	e.prefix = e.prefix[:e.plens[n-1]]
	e.phash = fnv64(e.prefix)
	e.plens = e.plens[:n-1]
	e.groups = e.groups[:n-1]
}

// Repairs returns how many values of this entity are stored in another form
// than they were given (see Encoder).
func (e *Encoder) Repairs() int { return e.repairs }

// Truncations returns how many values of this entity were cut short or left
// out to fit the entity limits.
func (e *Encoder) Truncations() int { return e.truncs }

// Size returns the entity's size so far in Azure's accounting.
func (e *Encoder) Size() int { return e.size }

// ---- system columns ----

// SetTime writes the Time column (Edm.DateTime, 100 ns precision). A time
// outside 1601..9999 is clamped into range and counted as a repair.
func (e *Encoder) SetTime(t time.Time) {
	if !dateTimeInRange(t) {
		e.repairs++
		if t.Unix() < minDateTimeUnix {
			t = time.Unix(minDateTimeUnix, 0)
		} else {
			t = time.Unix(maxDateTimeUnix, 0)
		}
	}
	e.sysColumn(ColTime, 8)
	e.buf = append(e.buf, `,"`+ColTime+`@odata.type":"Edm.DateTime","`+ColTime+`":"`...)
	e.buf = e.day.appendTime7(e.buf, t)
	e.buf = append(e.buf, '"')
}

// SetLevel writes the Level (text) and Severity (Edm.Int32) columns.
func (e *Encoder) SetLevel(name string, severity int) {
	e.sysString(ColLevel, name)
	e.sysColumn(ColSeverity, 4)
	e.buf = append(e.buf, `,"Severity":`...)
	e.buf = strconv.AppendInt(e.buf, int64(int32(severity)), 10)
}

// SetMessage writes the Msg column; a message over 32K characters continues
// in Msg_z1, Msg_z2, … up to the entity limit.
func (e *Encoder) SetMessage(msg string) { e.sysString(ColMsg, msg) }

// SetLogger writes the Logger column (zap's logger name).
func (e *Encoder) SetLogger(name string) { e.sysString(ColLogger, name) }

// SetCaller writes the Caller column ("file:line").
func (e *Encoder) SetCaller(caller string) { e.sysString(ColCaller, caller) }

// SetStack writes the Stack column.
func (e *Encoder) SetStack(stack string) { e.sysString(ColStack, stack) }

func (e *Encoder) sysColumn(name string, valueSize int) {
	e.nprops++
	e.size += 8 + 2*len(name) + valueSize
}

func (e *Encoder) sysString(col, s string) {
	e.name = append(e.name[:0], col...)
	e.writeString(s)
}

// ---- fields ----

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
	e.hashes = append(e.hashes, h)
	return true
}

func (e *Encoder) seen(h uint64) bool {
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
	e.buf = b
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
		e.buf, units, used, bad = appendJSONString(e.buf, s, room)
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
		e.buf = strconv.AppendBool(e.buf, v)
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
		e.buf = strconv.AppendInt(e.buf, v, 10)
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
		e.buf = appendFloat(e.buf, v)
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
		e.buf = e.day.appendTime7(e.buf, t)
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
				e.hashes = append(e.hashes, fnv64(e.name))
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
		if isNilPointer(v) {
			e.Null(key)
			return
		}
		e.String(key, x.Error())
	case fmt.Stringer:
		if isNilPointer(v) {
			e.Null(key)
			return
		}
		e.String(key, x.String())
	default:
		if isNilPointer(v) {
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

func isNilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface, reflect.Func, reflect.Chan:
		return rv.IsNil()
	}
	return false
}

// ---- Extra ----

// extraString stores a text value in Extra, cut short if Extra is full.
func (e *Encoder) extraString(key, v string) {
	e.repairs++
	room := maxExtraBytes - len(e.extra) - 64 - 8*len(key)
	if room < 64 {
		e.truncs++
		return
	}
	e.tmp, _, _, _ = appendJSONString(e.tmp[:0], v, room/6)
	if len(e.tmp)-2 < len(v) {
		e.truncs++
	}
	e.appendExtra(key, e.tmp)
}

// extraRaw stores a JSON value in Extra.
func (e *Encoder) extraRaw(key string, js []byte) {
	e.repairs++
	if len(e.extra)+len(js)+64+8*len(key) > maxExtraBytes {
		e.truncs++
		return
	}
	e.appendExtra(key, js)
}

func (e *Encoder) appendExtra(key string, js []byte) {
	if len(e.extra) > 0 {
		e.extra = append(e.extra, ',')
	}
	e.extra = append(e.extra, `{"k":`...)
	e.extra = e.appendPath(e.extra, key)
	e.extra = append(e.extra, `,"v":`...)
	e.extra = append(e.extra, js...)
	e.extra = append(e.extra, '}')
}

// appendPath appends the JSON array of the open groups and key.
func (e *Encoder) appendPath(dst []byte, key string) []byte {
	dst = append(dst, '[')
	for _, g := range e.groups {
		dst, _, _, _ = appendJSONString(dst, g, MaxStringChars)
		dst = append(dst, ',')
	}
	dst, _, _, _ = appendJSONString(dst, key, MaxStringChars)
	return append(dst, ']')
}

// Finish writes the Extra, Names and Truncated columns, closes the entity
// and returns its JSON. The slice is valid until the next Reset.
func (e *Encoder) Finish() []byte {
	if len(e.extra) > 0 {
		e.tmp = append(e.tmp[:0], '[')
		e.tmp = append(e.tmp, e.extra...)
		e.tmp = append(e.tmp, ']')
		e.name = append(e.name[:0], ColExtra...)
		e.writeMeta(string(e.tmp))
	}
	if e.nnames > 0 {
		e.tmp = append(e.tmp[:0], '{')
		e.tmp = append(e.tmp, e.names...)
		e.tmp = append(e.tmp, '}')
		e.name = append(e.name[:0], ColNames...)
		e.writeMeta(string(e.tmp))
	}
	if e.truncs > 0 {
		e.buf = append(e.buf, `,"Truncated":`...)
		e.buf = strconv.AppendInt(e.buf, int64(e.truncs), 10)
		e.nprops++
		e.size += 8 + 2*len(ColTruncated) + 4
	}
	e.buf = append(e.buf, '}')
	return e.buf
}

// writeMeta writes a meta column (Extra, Names) in as many chunk columns as
// it needs; their property slots and budget were reserved.
func (e *Encoder) writeMeta(s string) {
	base := len(e.name)
	for chunk := 0; s != ""; chunk++ {
		if chunk > 0 {
			e.name = append(e.name[:base], '_', 'z')
			e.name = strconv.AppendInt(e.name, int64(chunk), 10)
		}
		e.buf = append(e.buf, ',', '"')
		e.buf = append(e.buf, e.name...)
		e.buf = append(e.buf, '"', ':')
		var units, used int
		e.buf, units, used, _ = appendJSONString(e.buf, s, MaxStringChars)
		e.nprops++
		e.size += 8 + 2*len(e.name) + 4 + 2*units
		s = s[used:]
	}
}

// ---- JSON strings ----

// appendJSONString appends s as a JSON string of at most maxUnits UTF-16
// code units of content, never splitting a character. It returns the units
// written, the bytes of s consumed, and whether invalid UTF-8 was replaced.
func appendJSONString(dst []byte, s string, maxUnits int) ([]byte, int, int, bool) {
	dst = append(dst, '"')
	units, bad := 0, false
	i, run := 0, 0
	// Fast path: a run of plain ASCII that fits entirely.
	if len(s) <= maxUnits {
		for i < len(s) && jsonSafe[s[i]] {
			i++
		}
		units = i
	}
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if units >= maxUnits {
				break
			}
			if jsonSafe[c] {
				i++
				units++
				continue
			}
			dst = append(dst, s[run:i]...)
			switch c {
			case '"':
				dst = append(dst, '\\', '"')
			case '\\':
				dst = append(dst, '\\', '\\')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			units++
			run = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		n := 1
		if r >= 0x10000 {
			n = 2
		}
		if units+n > maxUnits {
			break
		}
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[run:i]...)
			dst = append(dst, `\ufffd`...)
			bad = true
			i++
			units++
			run = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			// Escaped as encoding/json does: JavaScript reads them as line
			// breaks, and the emulator's $batch parser answers 500 to them.
			dst = append(dst, s[run:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			units++
			run = i
			continue
		}
		i += size
		units += n
	}
	dst = append(dst, s[run:i]...)
	return append(dst, '"'), units, i, bad
}

// jsonSafe marks the ASCII bytes a JSON string holds unescaped.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// utf16Len returns the UTF-16 length of s (invalid bytes count one each).
func utf16Len(s string) int {
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			n++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n += utf16.RuneLen(r)
		if r == utf8.RuneError && size == 1 {
			n = n - utf16.RuneLen(r) + 1
		}
	}
	return n
}

var errNotEntity = errors.New("tablelog: not an entity")

// AppendJSONString appends s to dst as a JSON string, escaping what JSON
// requires and replacing invalid UTF-8 with U+FFFD. It is the one JSON
// string writer of the module: the sink's JSON for zap arrays and objects
// uses it too.
func AppendJSONString(dst []byte, s string) []byte {
	dst, _, _, _ = appendJSONString(dst, s, math.MaxInt)
	return dst
}
