package sink

import (
	"context"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/tablelog/tablelog/internal/schema"
)

type slogAttr = slog.Attr

// Handler returns a slog.Handler writing to the Sink. opts may be nil; its
// Level (default Info), AddSource and ReplaceAttr are honoured as
// slog.JSONHandler honours them.
//
// Handle queues the record; it returns ErrClosed after Close and nil
// otherwise. It never retains the record, nor anything the caller may
// change afterwards. A record of at most 16 attributes that are all plain
// values (strings, numbers, bools, durations, times, and errors, whose
// text is taken during the call; LogValuers are resolved during the call)
// is copied and encoded by the Sink's background dispatcher, off the
// logging goroutine, into the entity Handle would have made; its RowKey
// (its place in the order of records) is fixed during the call. Handle
// encodes every other record on the calling goroutine: one with a group or
// another slog.KindAny value, one estimated over 64 KiB, every record of a Handler with ReplaceAttr,
// every record with Options.SpoolDir (it is spooled before Handle returns,
// so it survives a crash of the process), and, while 4 MiB of entries
// already wait to be encoded, the next ones. WithAttrs encodes its attributes once;
// WithGroup and group attributes nest the attributes that follow (stored as
// columns named by schema.EncodeName and read back as nested maps).
// LogValuers are resolved (a panicking LogValue is stored as an error
// text).
//
// Each record becomes one entity: Time (absent when the record has no
// time: its keys then carry its arrival time, to the millisecond, which
// query's time bounds use for it), Level ("debug", "info", "warn", "error" or, for other levels,
// slog's name in lower case such as "info+2"), Severity (the slog.Level),
// Msg, Caller ("file:line", with AddSource) and one typed column per
// attribute. ReplaceAttr sees the built-in attributes as
// slog.JSONHandler passes them; one it removes is left out, one it renames
// becomes an ordinary column.
func (s *Sink) Handler(opts *slog.HandlerOptions) slog.Handler {
	h := &handler{s: s}
	if opts != nil {
		h.level = opts.Level
		h.addSource = opts.AddSource
		h.replace = opts.ReplaceAttr
	}
	return h
}

type handler struct {
	s         *Sink
	level     slog.Leveler
	addSource bool
	replace   func(groups []string, a slog.Attr) slog.Attr
	frag      schema.Fragment // WithAttrs and WithGroup, pre-encoded
	groups    []string        // open groups, for ReplaceAttr
}

var _ slog.Handler = (*handler)(nil)

// Enabled reports whether level is at least the handler's Level.
func (h *handler) Enabled(_ context.Context, level slog.Level) bool {
	min := slog.LevelInfo
	if h.level != nil {
		min = h.level.Level()
	}
	return level >= min
}

// WithAttrs returns a handler that adds attrs to every record; they are
// encoded here, once.
func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	st := h.s.getState()
	st.h = h
	st.enc.ResetFragment()
	st.enc.AppendFragment(h.frag)
	for _, a := range attrs {
		st.attr(a, h.groups)
	}
	h2 := *h
	h2.frag = st.enc.Fragment()
	h.s.putState(st)
	return &h2
}

// WithGroup returns a handler that nests what follows under name; an
// empty name returns h.
func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	st := h.s.getState()
	st.enc.ResetFragment()
	st.enc.AppendFragment(h.frag)
	st.enc.OpenGroup(name)
	h2 := *h
	h2.frag = st.enc.Fragment()
	h.s.putState(st)
	if h.replace != nil {
		h2.groups = append(h.groups[:len(h.groups):len(h.groups)], name)
	}
	return &h2
}

// Handle queues r: encoded here, or by the dispatcher (see Sink.Handler).
func (h *handler) Handle(_ context.Context, r slog.Record) error {
	s := h.s
	var p pendingSlog
	if h.deferSlog(&p, &r) {
		return s.enqueueDeferred(nil, &p)
	}
	st := s.getState()
	st.h = h
	t := r.Time
	var pk string
	if t.IsZero() {
		pk = st.begin(s.opts.Now()) // keys need a time; the entity gets no Time
	} else {
		pk = st.begin(t)
	}
	if h.replace == nil {
		st.writeSlogHead(t, r.Level, r.Message, r.PC)
	} else {
		st.replacedBuiltins(&r)
	}
	st.enc.AppendFragment(h.frag)
	if p.resolved {
		// deferSlog resolved the LogValuers already: encode its copies.
		for _, a := range p.attrs[:p.n] {
			st.attr(a, h.groups)
		}
	} else {
		r.Attrs(st.attrFn)
	}
	return s.put(st, pk)
}

// writeSlogHead writes the built-in attributes of a record (at t; zero: no
// Time column) of st.h, which has no ReplaceAttr.
func (st *encState) writeSlogHead(t time.Time, level slog.Level, msg string, pc uintptr) {
	enc := &st.enc
	if !t.IsZero() {
		enc.SetTime(t)
	}
	enc.SetLevel(slogLevelName(level), int(level))
	enc.SetMessage(msg)
	if st.h.addSource && pc != 0 {
		st.setCaller(pc)
	}
}

// setCaller writes the Caller column for the program counter pc.
func (st *encState) setCaller(pc uintptr) {
	fs := runtime.CallersFrames([]uintptr{pc})
	f, _ := fs.Next()
	if f.File == "" {
		return
	}
	st.scratch = append(st.scratch[:0], f.File...)
	st.scratch = append(st.scratch, ':')
	st.scratch = strconv.AppendInt(st.scratch, int64(f.Line), 10)
	st.enc.SetCaller(unsafeString(st.scratch))
}

// replacedBuiltins writes the built-in attributes through ReplaceAttr.
func (st *encState) replacedBuiltins(r *slog.Record) {
	h, enc := st.h, &st.enc
	var extra []slog.Attr // built-ins ReplaceAttr renamed or retyped
	if !r.Time.IsZero() {
		a := h.replace(nil, slog.Time(slog.TimeKey, r.Time))
		a.Value = a.Value.Resolve()
		switch {
		case a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime:
			enc.SetTime(a.Value.Time())
		case a.Key != "":
			extra = append(extra, a)
		}
	}
	a := h.replace(nil, slog.Any(slog.LevelKey, r.Level))
	a.Value = a.Value.Resolve()
	switch {
	case a.Key == slog.LevelKey:
		if l, ok := a.Value.Any().(slog.Level); ok {
			enc.SetLevel(slogLevelName(l), int(l))
		} else {
			enc.SetLevel(a.Value.String(), int(r.Level))
		}
	case a.Key != "":
		extra = append(extra, a)
	}
	a = h.replace(nil, slog.String(slog.MessageKey, r.Message))
	a.Value = a.Value.Resolve()
	switch {
	case a.Key == slog.MessageKey:
		enc.SetMessage(a.Value.String())
	case a.Key != "":
		extra = append(extra, a)
	}
	if h.addSource && r.PC != 0 {
		fs := runtime.CallersFrames([]uintptr{r.PC})
		f, _ := fs.Next()
		src := &slog.Source{Function: f.Function, File: f.File, Line: f.Line}
		a = h.replace(nil, slog.Any(slog.SourceKey, src))
		a.Value = a.Value.Resolve()
		switch {
		case a.Key == slog.SourceKey:
			if src, ok := a.Value.Any().(*slog.Source); ok && src != nil {
				st.scratch = append(st.scratch[:0], src.File...)
				st.scratch = append(st.scratch, ':')
				st.scratch = strconv.AppendInt(st.scratch, int64(src.Line), 10)
				enc.SetCaller(unsafeString(st.scratch))
			} else {
				extra = append(extra, a)
			}
		case a.Key != "":
			extra = append(extra, a)
		}
	}
	for _, a := range extra {
		st.value(a.Key, a.Value)
	}
}

// recordAttr is r.Attrs's callback (made once per pooled state, so Handle
// does not allocate a closure).
func (st *encState) recordAttr(a slog.Attr) bool {
	st.attr(a, st.h.groups)
	return true
}

// attr writes one attribute under the open groups (whose names, for
// ReplaceAttr, are groups).
func (st *encState) attr(a slog.Attr, groups []string) {
	h := st.h
	if a.Value.Kind() == slog.KindLogValuer {
		a.Value = a.Value.Resolve()
	}
	if h != nil && h.replace != nil && a.Value.Kind() != slog.KindGroup {
		a = h.replace(groups, a)
		a.Value = a.Value.Resolve()
	}
	if a.Key == "" && a.Value.Kind() == slog.KindAny && a.Value.Any() == nil {
		return // the empty Attr
	}
	if a.Value.Kind() == slog.KindGroup {
		attrs := a.Value.Group()
		if len(attrs) == 0 {
			return
		}
		if a.Key == "" {
			for _, g := range attrs {
				st.attr(g, groups)
			}
			return
		}
		st.enc.OpenGroup(a.Key)
		if h != nil && h.replace != nil {
			groups = append(groups[:len(groups):len(groups)], a.Key)
		}
		for _, g := range attrs {
			st.attr(g, groups)
		}
		st.enc.CloseGroup()
		return
	}
	st.value(a.Key, a.Value)
}

// value writes a resolved, non-group value.
func (st *encState) value(key string, v slog.Value) {
	enc := &st.enc
	switch v.Kind() {
	case slog.KindString:
		enc.String(key, v.String())
	case slog.KindInt64:
		enc.Int64(key, v.Int64())
	case slog.KindUint64:
		enc.Uint64(key, v.Uint64())
	case slog.KindFloat64:
		enc.Float64(key, v.Float64())
	case slog.KindBool:
		enc.Bool(key, v.Bool())
	case slog.KindDuration:
		enc.Duration(key, v.Duration())
	case slog.KindTime:
		enc.Time(key, v.Time())
	case slog.KindGroup:
		st.attr(slog.Attr{Key: key, Value: v}, nil)
	default:
		enc.Any(key, v.Any())
	}
}

// slogLevelName is "debug", "info", "warn", "error", or slog's name of
// another level in lower case ("info+2").
func slogLevelName(l slog.Level) string {
	switch l {
	case slog.LevelDebug:
		return "debug"
	case slog.LevelInfo:
		return "info"
	case slog.LevelWarn:
		return "warn"
	case slog.LevelError:
		return "error"
	}
	return strings.ToLower(l.String())
}
