package schema

import (
	"strconv"
	"time"
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
	bloom  uint64   // bit h%64 set for every h in hashes: most misses skip the scan
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
	b, _, _, _ := appendJSONString(e.buf, rowKey, MaxKeyChars)
	e.setBuf(b)
	e.size = 4 + 2*len(partitionKey) + 2*len(rowKey)
}

// ResetFragment starts a keyless run of fields, to be captured by Fragment.
func (e *Encoder) ResetFragment() {
	e.reset()
	e.keyed = false
}

// setBuf stores b, an extension of e.buf (or its replacement after
// growth), as e.buf, storing the array pointer only when it changed: a
// pointer store costs a write barrier while the garbage collector marks,
// which in a busy logger's process is much of the time.
func (e *Encoder) setBuf(b []byte) {
	if unsafe.SliceData(b) == unsafe.SliceData(e.buf) && cap(b) == cap(e.buf) {
		e.buf = e.buf[:len(b)]
		return
	}
	e.buf = b
}

func (e *Encoder) reset() {
	e.buf = e.buf[:0]
	e.prefix = e.prefix[:0]
	e.phash = fnvOffset
	e.plens = e.plens[:0]
	e.groups = e.groups[:0]
	e.hashes = e.hashes[:0]
	e.bloom = 0
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
		e.addHash(c.hash)
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
	e.setBuf(e.day.appendTime7(e.buf, t))
	e.buf = append(e.buf, '"')
}

// SetLevel writes the Level (text) and Severity (Edm.Int32) columns.
func (e *Encoder) SetLevel(name string, severity int) {
	e.sysString(ColLevel, name)
	e.sysColumn(ColSeverity, 4)
	e.buf = append(e.buf, `,"Severity":`...)
	e.setBuf(strconv.AppendInt(e.buf, int64(int32(severity)), 10))
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
	e.name = e.name[:0]
	e.name = append(e.name, col...)
	e.writeString(s)
}
