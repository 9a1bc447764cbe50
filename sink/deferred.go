package sink

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/oklog/ulid/v2"
	"github.com/tablelog/tablelog/internal/schema"
	"go.uber.org/zap/zapcore"
)

// Deferred encoding: a zap entry whose fields are all values that cannot
// change after the call (numbers, strings, times, durations, and errors,
// whose text is taken at the call) is not encoded on the logging
// goroutine. Write fixes its keys (the ULID, so the order of records is the
// order of the calls), copies the entry and the fields, and queues them; the
// dispatcher encodes them before it cuts transactions, exactly as Write
// would have. Anything else (a []byte, a Stringer, an ObjectMarshaler, a
// reflected value, an error with causes or a verbose form) is encoded
// before Write returns, since the caller may change it afterwards. So is
// every entry with a spool (it is spooled encoded) and every entry above
// ErrorLevel (it is flushed at once).

// deferred is a zap entry waiting for the dispatcher to encode it. It
// lives in a defChunk.
type deferred struct {
	pk     string
	id     ulid.ULID
	t      time.Time
	ent    zapcore.Entry
	frag   schema.Fragment
	fields []zapcore.Field // copies in chunk.fields; errors replaced by their text
	est    int             // the entity size the buffer counts until it is encoded
	chunk  *defChunk
}

// defChunk holds deferred records and their fields, so deferring does not
// allocate per record. The buffer hands out its slots under its mutex and
// reuses it once every record in it is encoded.
type defChunk struct {
	defs   []deferred
	fields []zapcore.Field
	refs   int // records in it not yet encoded, plus one while it is the current chunk
}

const (
	chunkDefs   = 256
	chunkFields = 16 * chunkDefs
	// maxDeferredFields: an entry with more fields is encoded at once.
	maxDeferredFields = 64
	// maxDeferredErrors: likewise with more error fields.
	maxDeferredErrors = 4
	// maxDeferredBytes bounds the memory of the entries waiting to be
	// encoded (deferredSize each): past it, Write encodes on the logging
	// goroutine again. A logger that outruns the dispatcher so shares the
	// encoding with it, and the entries waiting (memory the garbage
	// collector scans, unlike encoded entities) stay small.
	maxDeferredBytes = 4 << 20
	// encodeGroup is how many deferred records the dispatcher encodes
	// before it stores them in the buffer under one lock.
	encodeGroup = 256
)

// deferredSize is the memory a deferred entry with n fields takes in its
// chunk.
func deferredSize(n int) int64 {
	return int64(unsafe.Sizeof(deferred{})) + int64(n)*int64(unsafe.Sizeof(zapcore.Field{}))
}

// pendingZap is an entry Write defers: its keys are fixed, the error
// fields' text taken; putDeferred copies it into a defChunk.
type pendingZap struct {
	pk     string
	id     ulid.ULID
	t      time.Time
	ent    zapcore.Entry
	frag   schema.Fragment
	fields []zapcore.Field
	errs   [maxDeferredErrors]string // the text of the error fields, in order
	est    int
}

// deferZap fills p for the entry and reports whether it may be deferred
// (false: Write encodes it now).
func (c *core) deferZap(p *pendingZap, ent zapcore.Entry, fields []zapcore.Field) bool {
	s := c.s
	if s.sp != nil || ent.Level > zapcore.ErrorLevel || len(fields) > maxDeferredFields || s.buf.deferredBytes.Load() >= maxDeferredBytes {
		return false
	}
	est := 256 + len(ent.Message) + len(ent.LoggerName) + len(ent.Caller.File) + len(ent.Stack)
	nerr := 0
	for i := range fields {
		f := &fields[i]
		switch f.Type {
		case zapcore.BoolType, zapcore.DurationType, zapcore.Float64Type, zapcore.Float32Type,
			zapcore.Int64Type, zapcore.Int32Type, zapcore.Int16Type, zapcore.Int8Type,
			zapcore.Uint64Type, zapcore.Uint32Type, zapcore.Uint16Type, zapcore.Uint8Type, zapcore.UintptrType,
			zapcore.Complex128Type, zapcore.Complex64Type,
			zapcore.TimeType, zapcore.TimeFullType, zapcore.StringType,
			zapcore.NamespaceType, zapcore.SkipType:
		case zapcore.ErrorType:
			if nerr == maxDeferredErrors || !plainError(f.Interface) {
				return false
			}
			text, ok := errorText(f.Interface.(error))
			if !ok {
				return false
			}
			p.errs[nerr] = text
			nerr++
			est += len(text)
		default:
			return false
		}
		est += 2*len(f.Key) + len(f.String) + 48
	}
	p.ent, p.frag, p.fields, p.est = ent, c.frag, fields, est
	p.t = ent.Time
	if p.t.IsZero() {
		p.t = s.opts.Now()
	}
	p.pk = s.partitionKey(p.t)
	p.id = s.gen.New(p.t)
	return true
}

// fill copies p into d, whose fields have room for p's.
func (p *pendingZap) fill(d *deferred) {
	d.pk, d.id, d.t, d.ent, d.frag, d.est = p.pk, p.id, p.t, p.ent, p.frag, p.est
	copy(d.fields, p.fields)
	nerr := 0
	for i := range d.fields {
		f := &d.fields[i]
		if f.Type == zapcore.ErrorType {
			*f = zapcore.Field{Key: f.Key, Type: zapcore.StringType, String: p.errs[nerr]}
			nerr++
		}
	}
}

// plainError reports whether v is an error that zap encodes as its text
// alone: not an error group (…Causes) and not a fmt.Formatter (…Verbose).
func plainError(v any) bool {
	switch v.(type) {
	case interface{ Errors() []error }, fmt.Formatter:
		return false
	case error:
		return true
	}
	return false
}

// errorText returns err.Error(), or false if it panics (Write then encodes
// the entry itself, as zap does).
func errorText(err error) (text string, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return err.Error(), true
}

// encodeDeferred encodes d into st.enc and returns the entity.
func (st *encState) encodeDeferred(d *deferred) []byte {
	rk := schema.AppendRowKey(st.rk[:0], d.id)
	st.enc.Reset(d.pk, unsafeString(rk))
	st.writeZap(d.ent, d.t, d.frag, d.fields)
	return st.enc.Finish()
}
