package sink

import (
	"math"
	"strconv"
	"time"

	"go.uber.org/zap/zapcore"
)

// fieldEncoder is the zapcore.ObjectEncoder zap fields are added to: each
// field becomes a typed column of the entity; arrays and objects become
// JSON text; OpenNamespace opens a group.
type fieldEncoder struct{ st *encState }

// AddArray stores the array as JSON text.
func (f *fieldEncoder) AddArray(key string, m zapcore.ArrayMarshaler) error {
	js := &f.st.js
	js.reset()
	err := js.AppendArray(m)
	f.st.enc.RawJSON(key, js.b)
	return err
}

// AddObject stores the object as JSON text.
func (f *fieldEncoder) AddObject(key string, m zapcore.ObjectMarshaler) error {
	js := &f.st.js
	js.reset()
	err := js.AppendObject(m)
	f.st.enc.RawJSON(key, js.b)
	return err
}

func (f *fieldEncoder) AddBinary(key string, v []byte) { f.st.enc.Bytes(key, v) }
func (f *fieldEncoder) AddByteString(key string, v []byte) {
	f.st.enc.String(key, unsafeString(v)) // the encoder copies it
}
func (f *fieldEncoder) AddBool(key string, v bool) { f.st.enc.Bool(key, v) }
func (f *fieldEncoder) AddComplex128(key string, v complex128) {
	f.st.scratch = appendComplex(f.st.scratch[:0], v, 64)
	f.st.enc.String(key, unsafeString(f.st.scratch))
}
func (f *fieldEncoder) AddComplex64(key string, v complex64) {
	f.st.scratch = appendComplex(f.st.scratch[:0], complex128(v), 32)
	f.st.enc.String(key, unsafeString(f.st.scratch))
}
func (f *fieldEncoder) AddDuration(key string, v time.Duration) { f.st.enc.Duration(key, v) }
func (f *fieldEncoder) AddFloat64(key string, v float64)        { f.st.enc.Float64(key, v) }

// AddFloat32 stores the float32's shortest decimal form as a double (see
// schema.Encoder.Float32).
func (f *fieldEncoder) AddFloat32(key string, v float32) { f.st.enc.Float32(key, v) }

func (f *fieldEncoder) AddInt(key string, v int)             { f.st.enc.Int64(key, int64(v)) }
func (f *fieldEncoder) AddInt64(key string, v int64)         { f.st.enc.Int64(key, v) }
func (f *fieldEncoder) AddInt32(key string, v int32)         { f.st.enc.Int32(key, v) }
func (f *fieldEncoder) AddInt16(key string, v int16)         { f.st.enc.Int32(key, int32(v)) }
func (f *fieldEncoder) AddInt8(key string, v int8)           { f.st.enc.Int32(key, int32(v)) }
func (f *fieldEncoder) AddString(key, v string)              { f.st.enc.String(key, v) }
func (f *fieldEncoder) AddTime(key string, v time.Time)      { f.st.enc.Time(key, v) }
func (f *fieldEncoder) AddUint(key string, v uint)           { f.st.enc.Uint64(key, uint64(v)) }
func (f *fieldEncoder) AddUint64(key string, v uint64)       { f.st.enc.Uint64(key, v) }
func (f *fieldEncoder) AddUint32(key string, v uint32)       { f.st.enc.Int64(key, int64(v)) }
func (f *fieldEncoder) AddUint16(key string, v uint16)       { f.st.enc.Int32(key, int32(v)) }
func (f *fieldEncoder) AddUint8(key string, v uint8)         { f.st.enc.Int32(key, int32(v)) }
func (f *fieldEncoder) AddUintptr(key string, v uintptr)     { f.st.enc.Uint64(key, uint64(v)) }
func (f *fieldEncoder) AddReflected(key string, v any) error { f.st.enc.Any(key, v); return nil }
func (f *fieldEncoder) OpenNamespace(key string)             { f.st.enc.OpenGroup(key) }

// appendComplex writes c as "re+imi" (zap's form), each part with the
// given float bit size.
func appendComplex(b []byte, c complex128, bits int) []byte {
	r, i := real(c), imag(c)
	b = strconv.AppendFloat(b, r, 'g', -1, bits)
	if i >= 0 || math.IsNaN(i) {
		b = append(b, '+')
	}
	b = strconv.AppendFloat(b, i, 'g', -1, bits)
	return append(b, 'i')
}
