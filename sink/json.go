package sink

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/internal/schema"
)

// jsonEncoder writes zap arrays and objects as JSON text, which the entity
// stores in one string column. Times are RFC 3339 strings, durations
// nanoseconds, []byte base64, NaN and ±Inf the strings "NaN", "+Inf",
// "-Inf", complex numbers strings; zap.Namespace inside an object opens a
// nested object.
type jsonEncoder struct {
	b      []byte
	nsOpen int // namespaces opened in the current object
}

var (
	_ zapcore.ObjectEncoder = (*jsonEncoder)(nil)
	_ zapcore.ArrayEncoder  = (*jsonEncoder)(nil)
)

func (j *jsonEncoder) reset() { j.b, j.nsOpen = j.b[:0], 0 }

// sep writes the comma before an element or key, when one is due.
func (j *jsonEncoder) sep() {
	if n := len(j.b); n > 0 {
		switch j.b[n-1] {
		case '{', '[', ':':
		default:
			j.b = append(j.b, ',')
		}
	}
}

func (j *jsonEncoder) key(k string) {
	j.sep()
	j.b = schema.AppendJSONString(j.b, k)
	j.b = append(j.b, ':')
}

// ---- ArrayEncoder ----

func (j *jsonEncoder) AppendArray(m zapcore.ArrayMarshaler) error {
	j.sep()
	j.b = append(j.b, '[')
	err := m.MarshalLogArray(j)
	j.b = append(j.b, ']')
	return err
}

func (j *jsonEncoder) AppendObject(m zapcore.ObjectMarshaler) error {
	j.sep()
	saved := j.nsOpen
	j.nsOpen = 0
	j.b = append(j.b, '{')
	err := m.MarshalLogObject(j)
	for ; j.nsOpen > 0; j.nsOpen-- {
		j.b = append(j.b, '}')
	}
	j.b = append(j.b, '}')
	j.nsOpen = saved
	return err
}

func (j *jsonEncoder) AppendReflected(v any) error {
	js, err := json.Marshal(v)
	j.sep()
	if err != nil {
		j.b = schema.AppendJSONString(j.b, err.Error())
		return err
	}
	j.b = append(j.b, js...)
	return nil
}

func (j *jsonEncoder) AppendBool(v bool) { j.sep(); j.b = strconv.AppendBool(j.b, v) }
func (j *jsonEncoder) AppendByteString(v []byte) {
	j.sep()
	j.b = schema.AppendJSONString(j.b, unsafeString(v))
}
func (j *jsonEncoder) AppendComplex128(v complex128) {
	j.sep()
	j.b = append(j.b, '"')
	j.b = appendComplex(j.b, v, 64)
	j.b = append(j.b, '"')
}
func (j *jsonEncoder) AppendComplex64(v complex64) {
	j.sep()
	j.b = append(j.b, '"')
	j.b = appendComplex(j.b, complex128(v), 32)
	j.b = append(j.b, '"')
}
func (j *jsonEncoder) AppendFloat64(v float64) { j.sep(); j.b = appendJSONFloat(j.b, v, 64) }
func (j *jsonEncoder) AppendFloat32(v float32) { j.sep(); j.b = appendJSONFloat(j.b, float64(v), 32) }
func (j *jsonEncoder) AppendInt(v int)         { j.AppendInt64(int64(v)) }
func (j *jsonEncoder) AppendInt64(v int64)     { j.sep(); j.b = strconv.AppendInt(j.b, v, 10) }
func (j *jsonEncoder) AppendInt32(v int32)     { j.AppendInt64(int64(v)) }
func (j *jsonEncoder) AppendInt16(v int16)     { j.AppendInt64(int64(v)) }
func (j *jsonEncoder) AppendInt8(v int8)       { j.AppendInt64(int64(v)) }
func (j *jsonEncoder) AppendString(v string)   { j.sep(); j.b = schema.AppendJSONString(j.b, v) }
func (j *jsonEncoder) AppendUint(v uint)       { j.AppendUint64(uint64(v)) }
func (j *jsonEncoder) AppendUint64(v uint64)   { j.sep(); j.b = strconv.AppendUint(j.b, v, 10) }
func (j *jsonEncoder) AppendUint32(v uint32)   { j.AppendUint64(uint64(v)) }
func (j *jsonEncoder) AppendUint16(v uint16)   { j.AppendUint64(uint64(v)) }
func (j *jsonEncoder) AppendUint8(v uint8)     { j.AppendUint64(uint64(v)) }
func (j *jsonEncoder) AppendUintptr(v uintptr) { j.AppendUint64(uint64(v)) }
func (j *jsonEncoder) AppendDuration(v time.Duration) {
	j.AppendInt64(int64(v))
}
func (j *jsonEncoder) AppendTime(v time.Time) {
	j.sep()
	j.b = append(j.b, '"')
	j.b = v.AppendFormat(j.b, time.RFC3339Nano)
	j.b = append(j.b, '"')
}

// ---- ObjectEncoder ----

func (j *jsonEncoder) AddArray(k string, m zapcore.ArrayMarshaler) error {
	j.key(k)
	return j.AppendArray(m)
}
func (j *jsonEncoder) AddObject(k string, m zapcore.ObjectMarshaler) error {
	j.key(k)
	return j.AppendObject(m)
}
func (j *jsonEncoder) AddBinary(k string, v []byte) {
	j.key(k)
	j.b = append(j.b, '"')
	j.b = base64.StdEncoding.AppendEncode(j.b, v)
	j.b = append(j.b, '"')
}
func (j *jsonEncoder) AddByteString(k string, v []byte)      { j.key(k); j.AppendByteString(v) }
func (j *jsonEncoder) AddBool(k string, v bool)              { j.key(k); j.AppendBool(v) }
func (j *jsonEncoder) AddComplex128(k string, v complex128)  { j.key(k); j.AppendComplex128(v) }
func (j *jsonEncoder) AddComplex64(k string, v complex64)    { j.key(k); j.AppendComplex64(v) }
func (j *jsonEncoder) AddDuration(k string, v time.Duration) { j.key(k); j.AppendDuration(v) }
func (j *jsonEncoder) AddFloat64(k string, v float64)        { j.key(k); j.AppendFloat64(v) }
func (j *jsonEncoder) AddFloat32(k string, v float32)        { j.key(k); j.AppendFloat32(v) }
func (j *jsonEncoder) AddInt(k string, v int)                { j.key(k); j.AppendInt(v) }
func (j *jsonEncoder) AddInt64(k string, v int64)            { j.key(k); j.AppendInt64(v) }
func (j *jsonEncoder) AddInt32(k string, v int32)            { j.key(k); j.AppendInt32(v) }
func (j *jsonEncoder) AddInt16(k string, v int16)            { j.key(k); j.AppendInt16(v) }
func (j *jsonEncoder) AddInt8(k string, v int8)              { j.key(k); j.AppendInt8(v) }
func (j *jsonEncoder) AddString(k, v string)                 { j.key(k); j.AppendString(v) }
func (j *jsonEncoder) AddTime(k string, v time.Time)         { j.key(k); j.AppendTime(v) }
func (j *jsonEncoder) AddUint(k string, v uint)              { j.key(k); j.AppendUint(v) }
func (j *jsonEncoder) AddUint64(k string, v uint64)          { j.key(k); j.AppendUint64(v) }
func (j *jsonEncoder) AddUint32(k string, v uint32)          { j.key(k); j.AppendUint32(v) }
func (j *jsonEncoder) AddUint16(k string, v uint16)          { j.key(k); j.AppendUint16(v) }
func (j *jsonEncoder) AddUint8(k string, v uint8)            { j.key(k); j.AppendUint8(v) }
func (j *jsonEncoder) AddUintptr(k string, v uintptr)        { j.key(k); j.AppendUintptr(v) }
func (j *jsonEncoder) AddReflected(k string, v any) error    { j.key(k); return j.AppendReflected(v) }
func (j *jsonEncoder) OpenNamespace(k string) {
	j.key(k)
	j.b = append(j.b, '{')
	j.nsOpen++
}

// appendJSONFloat writes a JSON number, or a string for NaN and ±Inf.
func appendJSONFloat(b []byte, v float64, bits int) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, `"NaN"`...)
	case math.IsInf(v, 1):
		return append(b, `"+Inf"`...)
	case math.IsInf(v, -1):
		return append(b, `"-Inf"`...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, bits)
}
