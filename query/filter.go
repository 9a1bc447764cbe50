package query

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tablelog/tablelog/internal/schema"
)

// Filter is a server-side condition on log entities, built only by Eq, Ne,
// Gt, Ge, Lt, Le, And, Or and Not: values are always rendered as typed OData
// literals and field names through the writer's name encoding, so no value
// can change the structure of the filter (the Table service has no
// parameterised queries; this builder is the injection barrier).
//
// The zero Filter means "no condition". A Filter whose construction failed
// carries the error (see Err); And, Or and Not propagate it, and Reader
// methods report it from their first iteration (wrapping ErrInvalidFilter)
// without sending a request. Filters are immutable values, safe to share
// and reuse across goroutines.
type Filter struct {
	expr string // OData text; "" for the zero Filter
	cmp  int    // number of comparisons (Azure allows 15 per query)
	op   string // top operator: "and", "or", or "" for a single comparison or a not
	err  error
}

// MaxComparisons is the number of comparisons Azure Table Storage allows in
// one $filter. The Reader's own conditions (PartitionKey, RowKey bounds,
// Severity) count towards it: a Where filter has about 11 left.
const MaxComparisons = 15

// String returns the filter's OData text ("" for the zero Filter or a Filter
// with an error).
func (f Filter) String() string {
	if f.err != nil {
		return ""
	}
	return f.expr
}

// Err returns the error met while building the filter, a *FilterError, or
// nil.
func (f Filter) Err() error { return f.err }

// FilterError is the error of a Filter that could not be built (Filter.Err,
// and the error a Reader reports for it). It wraps ErrInvalidFilter (so
// ErrInvalidQuery too) and Err.
type FilterError struct {
	Field string // the property compared; "" when the field reference itself is bad, or for Not
	Op    string // the comparison ("eq", "lt", ...) or "not"
	Err   error  // what is wrong, in words without a package prefix
}

// Error returns "tablelog/query: invalid query: invalid filter: " and the
// field, the operator and Err.
func (e *FilterError) Error() string {
	var b strings.Builder
	b.WriteString("tablelog/query: ")
	b.WriteString(ErrInvalidFilter.Error())
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteByte(' ')
	}
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns ErrInvalidFilter and Err.
func (e *FilterError) Unwrap() []error { return []error{ErrInvalidFilter, e.Err} }

// IsZero reports whether f is the zero Filter (no condition, no error).
func (f Filter) IsZero() bool { return f.expr == "" && f.err == nil }

// Comparisons returns the number of comparisons in f.
func (f Filter) Comparisons() int { return f.cmp }

// Field references and system columns.
//
// The field argument of Eq, Ne, Gt, Ge, Lt and Le is a FieldName: either
//   - a plain string: the key of a top-level field as the application wrote
//     it ("user_id", "http.method", "Level"), whatever its bytes, mapped
//     through the writer's name encoding (schema.EncodeName). A user field
//     named like a system column ("Level") is the user field, not the
//     column;
//   - a Ref: Field(groups..., key) for a field nested in slog groups or zap
//     namespaces, or Column(name) and the Col* variables for a system
//     column.

// FieldName is what a comparison names its field with: a plain string (a
// top-level key) or a Ref.
type FieldName interface {
	string | Ref
}

// Ref is a typed reference to a field or a system column, made by Field or
// Column. It holds the property name the comparison uses, resolved when it
// is made. The zero Ref refers to nothing: a comparison on it fails with
// ErrInvalidFilter. Refs are comparable values, safe to share.
type Ref struct {
	name   string // the property name
	column bool   // a system column (Column)
	bad    string // why the reference is invalid; "" when it is valid
}

// String returns the property name the reference resolves to ("" for an
// invalid Ref).
func (r Ref) String() string {
	if r.bad != "" {
		return ""
	}
	return r.name
}

// System columns usable in filters (see Column). Do not reassign them.
var (
	ColTime      = Column(schema.ColTime)      // Edm.DateTime: the record's time
	ColLevel     = Column(schema.ColLevel)     // Edm.String: the level's name
	ColSeverity  = Column(schema.ColSeverity)  // Edm.Int32 on slog's scale; any Go integer compares as Edm.Int32
	ColMsg       = Column(schema.ColMsg)       // Edm.String: the message
	ColLogger    = Column(schema.ColLogger)    // Edm.String: zap's logger name
	ColCaller    = Column(schema.ColCaller)    // Edm.String: "file:line"
	ColStack     = Column(schema.ColStack)     // Edm.String: the stack trace
	ColTimestamp = Column(schema.ColTimestamp) // Edm.DateTime: server time of the insert
)

// columns lists the names Column accepts.
var columns = map[string]bool{
	schema.ColPartitionKey: true, schema.ColRowKey: true, schema.ColTimestamp: true,
	schema.ColTime: true, schema.ColLevel: true, schema.ColSeverity: true,
	schema.ColMsg: true, schema.ColLogger: true, schema.ColCaller: true,
	schema.ColStack: true, schema.ColTruncated: true,
}

// Column returns the reference of the system column name: one of
// PartitionKey, RowKey, Timestamp, Time, Level, Severity, Msg, Logger,
// Caller, Stack or Truncated (exact case). Any other name makes the
// comparison using it fail with ErrInvalidFilter.
func Column(name string) Ref {
	if !columns[name] {
		return Ref{name: name, column: true, bad: fmt.Sprintf("%q is not a system column", name)}
	}
	return Ref{name: name, column: true}
}

// Field returns the reference to a field nested in groups: Field("req",
// "method") is the attribute "method" of slog group "req" (or of zap
// namespace "req"). Field("user_id") is the same as "user_id". Keys may
// hold any bytes. Field() of no key makes the comparison using it fail with
// ErrInvalidFilter.
func Field(path ...string) Ref {
	if len(path) == 0 {
		return Ref{bad: "Field() needs at least one key"}
	}
	return Ref{name: schema.EncodeName(path...)}
}

// refOf returns the reference a comparison's field names.
func refOf[F FieldName](field F) Ref {
	switch f := any(field).(type) {
	case string:
		return Ref{name: schema.EncodeName(f)}
	case Ref:
		if f == (Ref{}) {
			return Ref{bad: "the zero Ref refers to no field"}
		}
		return f
	}
	panic("unreachable")
}

// Eq matches entities whose field equals value. See Field for field and
// Literal for the accepted value types and the EDM type each becomes. The
// Table service compares only values of the same EDM type: a field written
// as a string never equals an integer value, and an entity without the
// field never matches.
func Eq[F FieldName](field F, value any) Filter { return compare(refOf(field), "eq", value) }

// Ne matches entities whose field is present and differs from value. (An
// entity without the field never matches a comparison on it.)
func Ne[F FieldName](field F, value any) Filter { return compare(refOf(field), "ne", value) }

// Gt matches entities whose field is greater than value.
func Gt[F FieldName](field F, value any) Filter { return compare(refOf(field), "gt", value) }

// Ge matches entities whose field is greater than or equal to value.
func Ge[F FieldName](field F, value any) Filter { return compare(refOf(field), "ge", value) }

// Lt matches entities whose field is less than value.
func Lt[F FieldName](field F, value any) Filter { return compare(refOf(field), "lt", value) }

// Le matches entities whose field is less than or equal to value.
func Le[F FieldName](field F, value any) Filter { return compare(refOf(field), "le", value) }

func compare(field Ref, op string, value any) Filter {
	if field.bad != "" {
		return Filter{err: &FilterError{Op: op, Err: errors.New(field.bad)}}
	}
	name := field.name
	int32Col := field.column && (name == schema.ColSeverity || name == schema.ColTruncated)
	lit, err := literal(value, op == "eq" || op == "ne", int32Col)
	if err != nil {
		return Filter{err: &FilterError{Field: name, Op: op, Err: err}}
	}
	return Filter{expr: name + " " + op + " " + lit, cmp: 1}
}

// And matches entities that match every operand. Zero operands are ignored;
// And() of nothing (or only zero Filters) is the zero Filter.
func And(filters ...Filter) Filter { return join("and", filters) }

// Or matches entities that match at least one operand. Zero operands are
// ignored (they do not make Or match everything); Or() of nothing is the
// zero Filter.
func Or(filters ...Filter) Filter { return join("or", filters) }

func join(op string, filters []Filter) Filter {
	var parts []Filter
	for _, f := range filters {
		if f.err != nil {
			return Filter{err: f.err}
		}
		if f.expr != "" {
			parts = append(parts, f)
		}
	}
	switch len(parts) {
	case 0:
		return Filter{}
	case 1:
		return parts[0]
	}
	var b strings.Builder
	n := 0
	for i, f := range parts {
		if i > 0 {
			b.WriteString(" " + op + " ")
		}
		if f.op == "" || f.op == op {
			// A comparison, a not (...), or the same associative
			// operator: no parentheses needed.
			b.WriteString(f.expr)
		} else {
			b.WriteString("(" + f.expr + ")")
		}
		n += f.cmp
	}
	return Filter{expr: b.String(), cmp: n, op: op}
}

// Not matches entities that do not match f. Not of the zero Filter is an
// error (it would match nothing).
func Not(f Filter) Filter {
	if f.err != nil {
		return f
	}
	if f.expr == "" {
		return Filter{err: &FilterError{Op: "not", Err: errors.New("the operand is the zero Filter, which would match nothing")}}
	}
	return Filter{expr: "not " + "(" + f.expr + ")", cmp: f.cmp}
}

// GUID is a 16-byte Edm.Guid value for filters, in the byte order of its
// text form (RFC 4122 / RFC 9562, like github.com/google/uuid's UUID, which
// converts with GUID(u)).
type GUID [16]byte

// String returns the canonical lower-case 8-4-4-4-12 form.
func (g GUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], g[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], g[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], g[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], g[8:10])
	b[23] = '-'
	hex.Encode(b[24:], g[10:])
	return string(b[:])
}

// ParseGUID parses the 8-4-4-4-12 hexadecimal form (either case).
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("tablelog/query: %q is not a GUID", s)
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(g[:], []byte(h)); err != nil {
		return GUID{}, fmt.Errorf("tablelog/query: %q is not a GUID", s)
	}
	return g, nil
}

// Int32 forces an Edm.Int32 literal for a user field: the writer stores
// every Go integer as Edm.Int64, but a table written by other tools may hold
// Edm.Int32 columns, and the service compares only values of the same type.
type Int32 int32

// Literal renders value as an OData literal of the EDM type the writer uses
// for it. It is what Eq and the other comparisons use on user fields; it is
// exported for tools that show or log filters.
//
//	string              Edm.String   'it''s' (quotes doubled; must be valid UTF-8)
//	bool                Edm.Boolean  true, false
//	every Go integer    Edm.Int64    42L (the writer stores every integer as Edm.Int64)
//	Int32               Edm.Int32    42
//	float32, float64    Edm.Double   2.5, 3.0 (always with a decimal point; NaN and ±Inf are errors)
//	time.Time           Edm.DateTime datetime'2025-11-25T10:00:00.1234567Z' (years 1601..9999)
//	time.Duration       Edm.Int64    nanoseconds, 1500000000L
//	GUID                Edm.Guid     guid'...'
//	[]byte              Edm.Binary   X'0a1b'
//
// Comparisons on the Edm.Int32 system columns (ColSeverity,
// Column("Truncated")) render any Go integer as Edm.Int32 instead
// (Ge(ColSeverity, 4) is "Severity ge 4"); a value outside int32 is an
// error.
//
// A uint or uint64 above math.MaxInt64 is stored by the writer as text; for
// Eq and Ne it is rendered as that text ('18446744073709551615'), for the
// ordering comparisons it is an error. Any other type is an error: convert
// it first (fmt.Sprint for a Stringer, int64 for a named integer type).
func Literal(value any) (string, error) { return literal(value, true, false) }

// literal renders value; equality allows the text form of huge unsigned
// values, int32Col renders integers as Edm.Int32.
func literal(value any, equality, int32Col bool) (string, error) {
	if i, ok := integer(value); ok {
		switch {
		case int32Col && (i.neg && i.mag > -math.MinInt32 || !i.neg && i.mag > math.MaxInt32):
			return "", fmt.Errorf("%s is out of range for an Edm.Int32 column", i)
		case int32Col:
			return i.String(), nil
		case !i.neg && i.mag > math.MaxInt64:
			if equality {
				return "'" + i.String() + "'", nil
			}
			return "", fmt.Errorf("%s is beyond Edm.Int64; the writer stores it as text, which only eq and ne can compare", i)
		}
		return i.String() + "L", nil
	}
	switch v := value.(type) {
	case string:
		return quote(v)
	case bool:
		if v {
			return "true", nil
		}
		return "false", nil
	case Int32:
		return strconv.FormatInt(int64(v), 10), nil
	case float32:
		return floatLiteral(float64(v))
	case float64:
		return floatLiteral(v)
	case time.Time:
		return timeLiteral(v)
	case GUID:
		return "guid'" + v.String() + "'", nil
	case []byte:
		if len(v) > schema.MaxBinaryBytes {
			return "", fmt.Errorf("binary value of %d bytes is over the %d-byte Edm.Binary limit", len(v), schema.MaxBinaryBytes)
		}
		return "X'" + hex.EncodeToString(v) + "'", nil
	case nil:
		return "", fmt.Errorf("nil value: the Table service cannot compare with null")
	default:
		return "", fmt.Errorf("unsupported value type %T", value)
	}
}

// intValue is an integer of any Go width as sign and magnitude.
type intValue struct {
	neg bool
	mag uint64
}

func (i intValue) String() string {
	s := strconv.FormatUint(i.mag, 10)
	if i.neg {
		return "-" + s
	}
	return s
}

func signed(v int64) intValue {
	if v < 0 {
		return intValue{true, uint64(-(v + 1)) + 1}
	}
	return intValue{false, uint64(v)}
}

// integer returns value as an intValue if it is a Go integer (or a
// time.Duration, stored as Edm.Int64 nanoseconds).
func integer(value any) (intValue, bool) {
	switch v := value.(type) {
	case int:
		return signed(int64(v)), true
	case int8:
		return signed(int64(v)), true
	case int16:
		return signed(int64(v)), true
	case int32:
		return signed(int64(v)), true
	case int64:
		return signed(v), true
	case time.Duration:
		return signed(int64(v)), true
	case uint:
		return intValue{false, uint64(v)}, true
	case uint8:
		return intValue{false, uint64(v)}, true
	case uint16:
		return intValue{false, uint64(v)}, true
	case uint32:
		return intValue{false, uint64(v)}, true
	case uint64:
		return intValue{false, v}, true
	case uintptr:
		return intValue{false, uint64(v)}, true
	}
	return intValue{}, false
}

func quote(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("string value is not valid UTF-8")
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			b.WriteByte('\'')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('\'')
	return b.String(), nil
}

func floatLiteral(v float64) (string, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "", fmt.Errorf("%v cannot be used in a filter", v)
	}
	// Plain decimal notation: the service's and Azurite's grammar for
	// numbers has no exponent.
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	if s == "-0.0" {
		s = "0.0"
	}
	return s, nil
}

var (
	minDateTime = time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC)
	maxDateTime = time.Date(9999, 12, 31, 23, 59, 59, 999999900, time.UTC)
)

func timeLiteral(t time.Time) (string, error) {
	t = t.UTC()
	if t.Before(minDateTime) || t.After(maxDateTime) {
		return "", fmt.Errorf("time %s is outside Edm.DateTime's range (1601..9999)", t.Format(time.RFC3339))
	}
	return "datetime'" + t.Format("2006-01-02T15:04:05.0000000Z") + "'", nil
}

// rowKeyFilter returns the server conditions "PartitionKey eq pk" and, when
// set, "RowKey ge lo" and "RowKey lt hi", joined with extra (which may be
// empty) by "and". Keys are quoted like any string. It is the one place a
// query's filter string is assembled; the audit reader uses it too.
func rowKeyFilter(pk, lo, hi string, extra Filter) (string, error) {
	parts := []Filter{Eq(Column(schema.ColPartitionKey), pk)}
	if lo != "" {
		parts = append(parts, Ge(Column(schema.ColRowKey), lo))
	}
	if hi != "" {
		parts = append(parts, Lt(Column(schema.ColRowKey), hi))
	}
	f := And(append(parts, extra)...)
	if f.err != nil {
		return "", f.err
	}
	if f.cmp > MaxComparisons {
		return "", fmt.Errorf("tablelog/query: %w: the filter has %d comparisons (%d of them the reader's key conditions); Azure Table Storage allows %d per query",
			ErrInvalidQuery, f.cmp, len(parts), MaxComparisons)
	}
	return f.expr, nil
}
