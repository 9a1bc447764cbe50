package schema

import (
	"crypto/rand"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
)

// DayLayout is the Go time layout of the day suffix of a PartitionKey.
const DayLayout = "20060102"

// MaxServiceLen is the longest service name accepted. Keys may be 1 KiB; the cap
// leaves room for the day and shard suffixes and for the catalog's keys.
const MaxServiceLen = 200

// ServiceError is ValidateService's error. Its message says what is wrong
// with Name and carries no package prefix: each package that returns it to a
// user wraps it with its own ("sink: ", "auditlog: ", "tablelog/query: "),
// and the CLI and the web view show it as it is.
type ServiceError struct {
	Name    string // the name refused
	Problem string // e.g. `service name "a b" has the character ' ' (U+0020) at byte 1; ...`
}

// Error returns Problem.
func (e *ServiceError) Error() string { return e.Problem }

// ValidateService reports whether name can be used as a service name. A valid
// name is 1..MaxServiceLen characters of ASCII letters, digits, '-', '_' and
// '.', so that it is safe in a PartitionKey, a filter and a file name. The
// error, a *ServiceError, names the first bad character and its position.
func ValidateService(name string) error {
	bad := func(format string, args ...any) error {
		return &ServiceError{Name: name, Problem: fmt.Sprintf(format, args...)}
	}
	if name == "" {
		return bad("service name is empty")
	}
	if len(name) > MaxServiceLen {
		return bad("service name is %d bytes long; the limit is %d", len(name), MaxServiceLen)
	}
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			if r == utf8.RuneError {
				return bad("service name %q has invalid UTF-8 at byte %d", name, i)
			}
			return bad("service name %q has the character %q (U+%04X) at byte %d; use letters, digits, '-', '_' or '.'", name, r, r, i)
		}
	}
	return nil
}

// Day truncates t to its UTC day.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// PartitionKey returns "<service>_<yyyyMMdd>" for the UTC day of t. The
// service must have passed ValidateService.
func PartitionKey(service string, t time.Time) string {
	return string(AppendPartitionKey(make([]byte, 0, len(service)+9), service, t))
}

// AppendPartitionKey appends PartitionKey(service, t) to dst. A time
// outside what keys can express is clamped first (see KeyTime), so a record
// stamped in the year 10000 lands in the day 9999-12-31, not in a key no
// reader can parse.
func AppendPartitionKey(dst []byte, service string, t time.Time) []byte {
	dst = append(dst, service...)
	dst = append(dst, '_')
	return KeyTime(t).UTC().AppendFormat(dst, DayLayout)
}

// Key time bounds: ULIDs start at the Unix epoch, and a yyyyMMdd day ends
// with 9999-12-31.
var (
	minKeyTime = time.Unix(0, 0).UTC()
	maxKeyTime = time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC)
)

// KeyTime clamps t to the times keys can express, 1970-01-01 through
// 9999-12-31T23:59:59.999Z. PartitionKey, Generator and RowKeyRange all
// clamp the same way, so a record's partition and RowKey always agree.
func KeyTime(t time.Time) time.Time {
	switch {
	case t.Before(minKeyTime):
		return minKeyTime
	case t.After(maxKeyTime):
		return maxKeyTime
	}
	return t
}

// MaxShard is the highest shard number a PartitionKey may carry. Shard
// suffixes are 1 to 3 digits, so they can never be mistaken for a day.
const MaxShard = 999

// ShardPartitionKey returns "<service>_<yyyyMMdd>_<shard>" for the UTC day
// of t; shard 0 is the plain PartitionKey, so unsharded days and their
// readers are unchanged. A service that writes more than one partition takes
// (about 2,000 entities/s on Azure) spreads a day over shards 0..k, each
// announced in the catalog (AppendCatalogShardEntity) before its first
// record; readers merge a day's shards newest first (RowKeys order globally
// by time). The service must have passed ValidateService; shard outside
// [0, MaxShard] panics (a programming error).
func ShardPartitionKey(service string, t time.Time, shard int) string {
	return string(AppendShardPartitionKey(make([]byte, 0, len(service)+13), service, t, shard))
}

// AppendShardPartitionKey appends ShardPartitionKey(service, t, shard) to
// dst.
func AppendShardPartitionKey(dst []byte, service string, t time.Time, shard int) []byte {
	if shard < 0 || shard > MaxShard {
		panic(fmt.Sprintf("tablelog: shard %d outside [0, %d]", shard, MaxShard))
	}
	dst = AppendPartitionKey(dst, service, t)
	if shard == 0 {
		return dst
	}
	dst = append(dst, '_')
	return strconv.AppendInt(dst, int64(shard), 10)
}

// ParsePartitionKey splits a PartitionKey written by PartitionKey or
// ShardPartitionKey. It parses from the right, so service names may contain
// '_'. It returns an error for keys of any other shape, including shard
// suffixes ShardPartitionKey never writes ("_0", leading zeros, above
// MaxShard), so every partition has exactly one key.
func ParsePartitionKey(pk string) (service string, day time.Time, shard int, err error) {
	rest := pk
	// Optional shard suffix: "_<digits>" after the day (a day has 8).
	if i := lastUnderscore(rest); i >= 0 && i+1 < len(rest) && len(rest)-i-1 != 8 && allDigits(rest[i+1:]) {
		digits := rest[i+1:]
		shard, err = strconv.Atoi(digits)
		if err != nil || digits[0] == '0' || shard > MaxShard {
			return "", time.Time{}, 0, fmt.Errorf("tablelog: bad shard %q in partition key %q (shards are 1..%d, written without leading zeros)", digits, pk, MaxShard)
		}
		rest = rest[:i]
	}
	if len(rest) < 10 || rest[len(rest)-9] != '_' {
		return "", time.Time{}, 0, fmt.Errorf("tablelog: %q is not a <service>_<yyyyMMdd> partition key", pk)
	}
	day, ok := parseDay(rest[len(rest)-8:])
	if !ok {
		return "", time.Time{}, 0, fmt.Errorf("tablelog: %q is not a <service>_<yyyyMMdd> partition key", pk)
	}
	return rest[:len(rest)-9], day, shard, nil
}

// parseDay parses a day as time.Parse(DayLayout, s) does (UTC), without
// its cost: readers parse the PartitionKey of every entity.
func parseDay(s string) (time.Time, bool) {
	if len(s) != 8 {
		return time.Time{}, false
	}
	y, ok1 := digits(s[:4])
	m, ok2 := digits(s[4:6])
	d, ok3 := digits(s[6:])
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > daysIn(time.Month(m), y) {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC), true
}

func lastUnderscore(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '_' {
			return i
		}
	}
	return -1
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}

// RowKeyLen is the length of every RowKey: a 26-character Crockford base32 ULID.
const RowKeyLen = ulid.EncodedSize

// invert returns the bitwise complement of id.
func invert(id ulid.ULID) ulid.ULID {
	for i := range id {
		id[i] = ^id[i]
	}
	return id
}

// RowKey returns the inverted-ULID RowKey of id: the Crockford base32 text of
// the bitwise complement of id. Ascending RowKey order is descending ULID
// order, so the newest record sorts first.
func RowKey(id ulid.ULID) string {
	return invert(id).String()
}

// AppendRowKey appends RowKey(id) to dst without allocating.
func AppendRowKey(dst []byte, id ulid.ULID) []byte {
	n := len(dst)
	dst = slices.Grow(dst, ulid.EncodedSize)[:n+ulid.EncodedSize]
	_ = invert(id).MarshalTextTo(dst[n:])
	return dst
}

// ParseRowKey returns the ULID whose RowKey is rk.
func ParseRowKey(rk string) (ulid.ULID, error) {
	id, err := ulid.ParseStrict(rk)
	if err != nil {
		return ulid.ULID{}, fmt.Errorf("tablelog: row key %q is not an inverted ULID: %w", rk, err)
	}
	return invert(id), nil
}

// RowKeyTime returns the millisecond timestamp carried by a RowKey.
func RowKeyTime(rk string) (time.Time, error) {
	id, err := ParseRowKey(rk)
	if err != nil {
		return time.Time{}, err
	}
	return ulid.Time(id.Time()).UTC(), nil
}

// RowKeyRange returns RowKey bounds selecting the records whose ULID time t
// satisfies since <= t < until, at millisecond precision (ULIDs carry
// milliseconds; sub-millisecond parts of since and until are truncated).
// The bounds are used as: lo <= RowKey < hi. Since newer records have
// smaller RowKeys, lo comes from until and hi from since. A zero since means
// "from the beginning of time", a zero until "up to the end of time".
func RowKeyRange(since, until time.Time) (lo, hi string) {
	// Newest record allowed: time until-1ms with the largest entropy; its
	// RowKey is the smallest. Every ULID with ms < untilMs has RowKey >= lo.
	// Past the last key time (clamped, see KeyTime) the range is open: the
	// records stamped then carry maxKeyTime and must stay inside it.
	if until.IsZero() || until.After(maxKeyTime) {
		lo = RowKey(ulid.ULID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	} else {
		u := msOf(until)
		if u == 0 {
			return "0", "0" // empty range
		}
		lo = rowKeyMs(u - 1)
	}
	// Oldest record allowed: time since with entropy 0 has the largest
	// RowKey among ms == sinceMs; everything older is larger still.
	if since.IsZero() || msOf(since) == 0 {
		hi = "~" // sorts after every Crockford character
	} else {
		hi = rowKeyMs(msOf(since) - 1)
	}
	return lo, hi
}

// rowKeyMs returns the smallest RowKey of any ULID at millisecond ms: that of
// (ms, all-ones entropy). Every ULID at ms has a RowKey >= it, and every ULID
// after ms has a RowKey < it.
func rowKeyMs(ms uint64) string {
	var id ulid.ULID
	_ = id.SetTime(ms)
	for i := 6; i < 16; i++ {
		id[i] = 0xff
	}
	return RowKey(id)
}

func msOf(t time.Time) uint64 {
	return uint64(KeyTime(t).UnixMilli())
}

// Generator makes ULIDs that increase strictly, even within one millisecond
// and across goroutines. It is safe for concurrent use. The zero value is not
// usable; call NewGenerator.
//
// The first ULID of each millisecond has 80 random bits; the next ones in
// the same millisecond add one to the previous (the ULID specification's
// monotonic mode), so two Generators, in one process or several, collide
// only if their random starts in one millisecond lie within as many
// records of each other: about n/2^80.
type Generator struct {
	mu   sync.Mutex
	r    io.Reader
	last ulid.ULID
	ent  [160]byte // random bytes read ahead: 10 per new millisecond
	used int       // bytes of ent consumed
}

// NewGenerator returns a Generator seeded from r. A nil reader means
// crypto/rand.
func NewGenerator(r io.Reader) *Generator {
	if r == nil {
		r = rand.Reader
	}
	return &Generator{r: r, used: len(Generator{}.ent)}
}

// maxStepBack is how far (ms) a time may lie before the previous ULID's and
// still be moved forward to it.
const maxStepBack = 1000

// New returns a ULID for time t (clamped by KeyTime). Within a millisecond
// and across a small clock step back (up to a second, as when goroutines
// stamp records just before taking the lock), it is strictly greater than
// every ULID this Generator returned before: the previous time is reused.
// A time further back (a record stamped with an old time on purpose) gets
// a ULID of its own time, so its RowKey stays in its day's partition; it is
// still unique (80 random bits).
func (g *Generator) New(t time.Time) ulid.ULID {
	ms := msOf(t)
	g.mu.Lock()
	defer g.mu.Unlock()
	lastMs := g.last.Time()
	if ms < lastMs && lastMs-ms <= maxStepBack {
		ms = lastMs
	}
	var id ulid.ULID
	if ms == lastMs {
		// The next ULID of the millisecond; on the (2^-80) overflow of its
		// random part, the first of the next millisecond.
		id = g.last
		incr(&id)
	} else {
		_ = id.SetTime(ms)
		g.random(id[6:])
	}
	g.last = id
	return id
}

// random fills b (at most len(g.ent) bytes) from the read-ahead buffer. If
// the reader fails (crypto/rand does not), the previous bytes are used
// again: ULIDs stay unique within the Generator, since each new one has a
// new millisecond or adds one to the previous.
func (g *Generator) random(b []byte) {
	if g.used+len(b) > len(g.ent) {
		_, _ = io.ReadFull(g.r, g.ent[:])
		g.used = 0
	}
	g.used += copy(b, g.ent[g.used:])
}

// incr adds one to id as a 128-bit big-endian integer.
func incr(id *ulid.ULID) {
	for i := len(id) - 1; i >= 0; i-- {
		id[i]++
		if id[i] != 0 {
			return
		}
	}
}
