package sink

import (
	"fmt"
	"log/slog"
	"time"
	"unsafe"

	"github.com/oklog/ulid/v2"
	"github.com/tablelog/tablelog/internal/schema"
	"go.uber.org/zap/zapcore"
)

// Deferred encoding: a zap entry or slog record whose fields are all
// values that cannot change after the call (numbers, strings, times,
// durations, and errors, whose text is taken at the call) is not encoded on
// the logging goroutine. Write or Handle fixes its keys (the ULID, so the
// order of records is the order of the calls), copies the entry and the
// fields, and queues them; the dispatcher encodes them before it cuts
// transactions, exactly as Write or Handle would have. Anything else (a
// []byte, a Stringer, an ObjectMarshaler, a reflected value, a slog group
// or any other slog.KindAny value, a zap error with causes or a verbose
// form) is encoded before the call returns, since the caller may change it
// afterwards. So is every entry with a spool (it is spooled encoded), every
// entry estimated over 64 KiB, every zap entry above ErrorLevel (it is
// flushed at once) and every slog record of a Handler with ReplaceAttr (the
// caller's function runs during the call).

// deferred is a zap entry or a slog record waiting for the dispatcher to
// encode it. It lives in a defChunk.
type deferred struct {
	pk    string
	id    ulid.ULID
	t     time.Time // the Time column (zero: none, a slog record without a time)
	frag  schema.Fragment
	chunk *defChunk

	// A zap entry (h is nil):
	ent    zapcore.Entry
	fields []zapcore.Field // copies in chunk.fields; errors replaced by their text

	// A slog record:
	h     *handler
	level slog.Level
	msg   string
	pc    uintptr
	attrs []slog.Attr // copies in chunk.attrs; LogValuers resolved, errors replaced by their text
}

// defChunk holds deferred records and their fields, so deferring does not
// allocate per record. The buffer hands out its slots under its mutex and
// reuses it once every record in it is encoded. fields and attrs are
// allocated when first needed.
type defChunk struct {
	defs   []deferred
	fields []zapcore.Field
	attrs  []slog.Attr
	refs   int // records in it not yet encoded, plus one while it is the current chunk
}

const (
	chunkDefs   = 256
	chunkFields = 16 * chunkDefs
	// maxDeferredFields: an entry with more fields is encoded at once.
	maxDeferredFields = 64
	// maxDeferredAttrs: a slog record with more attributes is encoded at
	// once.
	maxDeferredAttrs = 16
	// maxDeferredEntity: an entry estimated larger is encoded at once. Its
	// entity may be much smaller (values are cut to fit 1 MiB), and the
	// buffer decides when a transaction is full by the bytes it counts.
	maxDeferredEntity = 64 << 10
	// maxDeferredErrors: a zap entry with more error fields is encoded at
	// once.
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

// deferredSize is the memory a deferred entry with nf zap fields or na
// slog attributes takes in its chunk.
func deferredSize(nf, na int) int64 {
	return int64(unsafe.Sizeof(deferred{})) + int64(nf)*int64(unsafe.Sizeof(zapcore.Field{})) + int64(na)*int64(unsafe.Sizeof(slog.Attr{}))
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
	// First the types, then the errors' text: an entry that is not
	// deferred is encoded by Write, which asks each error once more.
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
			nerr++
		default:
			return false
		}
		est += 2*len(f.Key) + len(f.String) + 48
	}
	if est > maxDeferredEntity {
		return false
	}
	nerr = 0
	for i := range fields {
		if f := &fields[i]; f.Type == zapcore.ErrorType {
			text, ok := errorText(f.Interface.(error))
			if !ok {
				return false // a panicking Error: Write stores the panic
			}
			p.errs[nerr] = text
			nerr++
			est += len(text)
		}
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
	d.pk, d.id, d.t, d.ent, d.frag = p.pk, p.id, p.t, p.ent, p.frag
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

// pendingSlog is a record Handle defers: its keys are fixed, its
// attributes copied (LogValuers resolved, errors replaced by their text);
// putDeferred copies it into a defChunk.
type pendingSlog struct {
	pk    string
	id    ulid.ULID
	t     time.Time
	level slog.Level
	msg   string
	pc    uintptr
	h     *handler
	est   int
	n     int
	attrs [maxDeferredAttrs]slog.Attr
	// resolved: attrs[:n] are all of the record's attributes, LogValuers
	// resolved (errors too, unless the record is deferred).
	resolved bool
}

// deferSlog fills p for r and reports whether it may be deferred (false:
// Handle encodes it now).
func (h *handler) deferSlog(p *pendingSlog, r *slog.Record) bool {
	s := h.s
	if s.sp != nil || h.replace != nil || r.NumAttrs() > maxDeferredAttrs || s.buf.deferredBytes.Load() >= maxDeferredBytes {
		return false
	}
	// The attributes are copied with their LogValuers resolved, as attr
	// would resolve them. If the record is not deferred after all, Handle
	// encodes these copies (resolved says so), so that no LogValue runs
	// twice; an error's text is taken only once the record is known to be
	// deferrable.
	p.est = 256 + len(r.Message)
	ok := true
	r.Attrs(func(a slog.Attr) bool {
		if a.Value.Kind() == slog.KindLogValuer {
			a.Value = a.Value.Resolve()
		}
		switch a.Value.Kind() {
		case slog.KindString:
			p.est += len(a.Value.String())
		case slog.KindInt64, slog.KindUint64, slog.KindFloat64, slog.KindBool, slog.KindDuration, slog.KindTime:
		case slog.KindAny:
			// Errors only: the encoder stores an error as its text
			// (schema.Encoder.Any).
			if _, isErr := a.Value.Any().(error); !isErr {
				ok = false
			}
		default:
			ok = false
		}
		p.est += 2*len(a.Key) + 48
		p.attrs[p.n] = a
		p.n++
		return true
	})
	p.resolved = true
	if !ok || p.est > maxDeferredEntity {
		return false
	}
	for i := range p.attrs[:p.n] {
		a := &p.attrs[i]
		if a.Value.Kind() != slog.KindAny {
			continue
		}
		err := a.Value.Any().(error)
		text := "<nil>" // a nil pointer, as Any stores it
		if !schema.IsNilPointer(err) {
			if text, ok = errorText(err); !ok {
				return false // a panicking Error: Any stores the panic
			}
		}
		a.Value = slog.StringValue(text)
		p.est += len(text)
	}
	p.h, p.level, p.msg, p.pc, p.t = h, r.Level, r.Message, r.PC, r.Time
	kt := r.Time
	if kt.IsZero() {
		kt = s.opts.Now() // keys need a time; the entity gets no Time
	}
	p.pk = s.partitionKey(kt)
	p.id = s.gen.New(kt)
	return true
}

// fill copies p into d, whose attrs have room for p's.
func (p *pendingSlog) fill(d *deferred) {
	d.pk, d.id, d.t = p.pk, p.id, p.t
	d.h, d.frag, d.level, d.msg, d.pc = p.h, p.h.frag, p.level, p.msg, p.pc
	copy(d.attrs, p.attrs[:p.n])
}

// encodeDeferred encodes d into st.enc and returns the entity.
func (st *encState) encodeDeferred(d *deferred) []byte {
	rk := schema.AppendRowKey(st.rk[:0], d.id)
	st.enc.Reset(d.pk, unsafeString(rk))
	if d.h == nil {
		st.writeZap(d.ent, d.t, d.frag, d.fields)
		return st.enc.Finish()
	}
	st.h = d.h
	st.writeSlogHead(d.t, d.level, d.msg, d.pc)
	st.enc.AppendFragment(d.frag)
	for _, a := range d.attrs {
		st.attr(a, d.h.groups)
	}
	st.h = nil
	return st.enc.Finish()
}
