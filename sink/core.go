package sink

import (
	"context"
	"fmt"
	"strconv"
	"time"
	"unsafe"

	"github.com/tablelog/tablelog/internal/schema"
	"go.uber.org/zap/zapcore"
)

// Core returns a zapcore.Core writing to the Sink the entries level
// enables. Use it with zap.New, alone or under zapcore.NewTee,
// zapcore.NewSamplerWithOptions and the like.
//
// Write queues the entry; it returns ErrClosed after Close and nil
// otherwise (rejections by the service are handled in the background, see
// Sink). It never retains the fields slice, nor anything the caller may
// change afterwards. An entry whose fields are all plain values (numbers,
// strings, bools, durations, times, namespaces, and errors, whose text is
// taken during the call) is copied and encoded by the Sink's background
// dispatcher, off the logging goroutine, into the entity Write would have
// made; its RowKey (its place in the order of records) is fixed during
// the call. Write encodes every other entry on the calling goroutine: one
// with []byte, Stringer, object, array or reflected fields, or an error
// with a verbose form or causes; one estimated over 64 KiB; every entry
// with Options.SpoolDir (it is spooled before Write returns, so it
// survives a crash of the process); and, while 4 MiB of entries already
// wait to be encoded (a logger outrunning the dispatcher), the next ones.
// Stats.Repaired and Stats.Truncated count a deferred entry's repairs when
// it is encoded.
// Entries above ErrorLevel (DPanic, Panic, Fatal) are flushed before Write
// returns, bounded by Options.SyncTimeout, so they are stored before zap
// panics or exits; if that fails, Write returns the flush's
// *DeliveryError. Sync flushes the whole Sink, bounded by SyncTimeout.
//
// Each entry becomes one entity: Time, Level ("info", …), Severity (debug
// -4, info 0, warn 4, error 8, dpanic 12, panic 16, fatal 20), Msg, Logger
// (the logger name), Caller ("file:line"), Stack, and one typed column per
// field; zap.Namespace nests the following fields as a group; arrays and
// objects are stored as JSON text. With encodes its fields once.
func (s *Sink) Core(level zapcore.LevelEnabler) zapcore.Core {
	return &core{LevelEnabler: level, s: s}
}

type core struct {
	zapcore.LevelEnabler
	s    *Sink
	frag schema.Fragment // the fields of With, pre-encoded
}

var (
	_ zapcore.Core          = (*core)(nil)
	_ zapcore.ObjectEncoder = (*fieldEncoder)(nil)
)

// Level reports the minimum enabled level, for zapcore.LevelOf.
func (c *core) Level() zapcore.Level { return zapcore.LevelOf(c.LevelEnabler) }

// With returns a Core that adds fields to every entry; they are encoded
// here, once.
func (c *core) With(fields []zapcore.Field) zapcore.Core {
	if len(fields) == 0 {
		return c
	}
	st := c.s.getState()
	st.enc.ResetFragment()
	st.enc.AppendFragment(c.frag)
	st.addFields(fields)
	clone := &core{LevelEnabler: c.LevelEnabler, s: c.s, frag: st.enc.Fragment()}
	c.s.putState(st)
	return clone
}

// Check adds the core to ce if the entry's level is enabled.
func (c *core) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

// Write queues the entry: encoded here, or by the dispatcher (see Core).
func (c *core) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	s := c.s
	var p pendingZap
	if c.deferZap(&p, ent, fields) {
		return s.enqueueDeferred(&p, nil)
	}
	st := s.getState()
	t := ent.Time
	if t.IsZero() {
		t = s.opts.Now()
	}
	pk := st.begin(t)
	st.writeZap(ent, t, c.frag, fields)
	err := s.put(st, pk)
	if ent.Level > zapcore.ErrorLevel && err == nil {
		// DPanic, Panic and Fatal: store it before zap panics or exits;
		// if that fails, zap prints the error to its ErrorOutput.
		err = c.Sync()
	}
	return err
}

// writeZap encodes the entry (at t), the With fields and fields after the
// keys.
func (st *encState) writeZap(ent zapcore.Entry, t time.Time, frag schema.Fragment, fields []zapcore.Field) {
	enc := &st.enc
	enc.SetTime(t)
	enc.SetLevel(ent.Level.String(), zapSeverity(ent.Level))
	enc.SetMessage(ent.Message)
	if ent.LoggerName != "" {
		enc.SetLogger(ent.LoggerName)
	}
	if ent.Caller.Defined {
		st.scratch = append(st.scratch[:0], ent.Caller.File...)
		st.scratch = append(st.scratch, ':')
		st.scratch = strconv.AppendInt(st.scratch, int64(ent.Caller.Line), 10)
		enc.SetCaller(unsafeString(st.scratch))
	}
	if ent.Stack != "" {
		enc.SetStack(ent.Stack)
	}
	enc.AppendFragment(frag)
	st.addFields(fields)
}

// Sync flushes the Sink, waiting at most Options.SyncTimeout.
func (c *core) Sync() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.s.opts.SyncTimeout)
	defer cancel()
	return c.s.Flush(ctx)
}

// addFields encodes zap fields. A MarshalLogObject, MarshalLogArray (or
// a nested one) that panics does not reach the caller: that field is stored
// as the text "<panic: …>" instead and the next ones are encoded as usual
// (zap's own encoders already recover Stringer and error panics).
func (st *encState) addFields(fields []zapcore.Field) {
	for i := 0; i < len(fields); {
		i = st.addFieldsFrom(fields, i)
	}
}

// addFieldsFrom encodes fields[i:] and returns len(fields), or, if a field
// panics, stores it as text and returns the index after it. One deferred
// recover serves the whole record.
func (st *encState) addFieldsFrom(fields []zapcore.Field, i int) (next int) {
	defer func() {
		if r := recover(); r != nil {
			st.enc.String(fields[next].Key, fmt.Sprintf("<panic: %v>", r))
			next++
		}
	}()
	for next = i; next < len(fields); next++ {
		fields[next].AddTo(&st.fields)
	}
	return next
}

// zapSeverity maps a zap level to slog's scale: debug -4, info 0, warn 4,
// error 8, dpanic 12, panic 16, fatal 20.
func zapSeverity(l zapcore.Level) int { return 4 * int(l) }

// ---- the pooled encoding state ----

// encState is what one Write or Handle needs, pooled per Sink.
type encState struct {
	s       *Sink
	enc     schema.Encoder
	fields  fieldEncoder // zapcore.ObjectEncoder over enc
	js      jsonEncoder  // JSON text of zap arrays and objects
	rk      [schema.RowKeyLen]byte
	scratch []byte

	// slog
	h      *handler
	attrFn func(a slogAttr) bool
}

func newEncState(s *Sink) *encState {
	st := &encState{s: s}
	st.fields.st = st
	st.attrFn = st.recordAttr
	return st
}

func (s *Sink) getState() *encState { return s.pool.Get().(*encState) }

// maxPooledBytes: states whose entity grew past this are not pooled, so a
// rare huge record does not pin memory.
const maxPooledBytes = 256 << 10

func (s *Sink) putState(st *encState) {
	st.h = nil
	if cap(st.js.b) > maxPooledBytes {
		st.js.b = nil
	}
	s.pool.Put(st)
}

// begin starts an entity for a record at t: its keys are fixed here. It
// returns the PartitionKey.
func (st *encState) begin(t time.Time) string {
	pk := st.s.partitionKey(t)
	id := st.s.gen.New(t)
	rk := schema.AppendRowKey(st.rk[:0], id)
	st.enc.Reset(pk, unsafeString(rk)) // Reset copies the keys
	return pk
}

// put finishes the entity, queues a copy and returns the state to the pool.
func (s *Sink) put(st *encState, pk string) error {
	data := st.enc.Finish()
	s.countRepairs(&st.enc)
	err := s.enqueue(pk, unsafeString(st.rk[:]), data)
	if cap(data) > maxPooledBytes {
		st.h = nil
		return err // drop the state with its big buffer
	}
	s.putState(st)
	return err
}

// countRepairs adds the repairs and truncations of the entity enc just
// finished to the Sink's counters.
func (s *Sink) countRepairs(enc *schema.Encoder) {
	if n := enc.Repairs(); n > 0 {
		s.c.repaired.Add(uint64(n))
	}
	if n := enc.Truncations(); n > 0 {
		s.c.truncated.Add(uint64(n))
	}
}

func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
