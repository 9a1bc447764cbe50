package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tablelog/tablelog/internal/fieldtext"
	"github.com/tablelog/tablelog/query"
)

// Output formats of log records.
const (
	formatText   = "text"
	formatJSON   = "json"
	formatLogfmt = "logfmt"
)

// ANSI colours of text output.
const (
	ansiReset   = "\x1b[0m"
	ansiFaint   = "\x1b[2m"
	ansiBold    = "\x1b[1m"
	ansiRed     = "\x1b[31m"
	ansiGreen   = "\x1b[32m"
	ansiYellow  = "\x1b[33m"
	ansiBlue    = "\x1b[34m"
	ansiMagenta = "\x1b[35m"
	ansiCyan    = "\x1b[36m"
	ansiBoldRed = "\x1b[1;31m"
)

// textTimeLayout is the time of a text line: RFC 3339 with milliseconds.
const textTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// formatter renders log records as text, JSON lines or logfmt.
//
// text reads like a good console logger:
//
//	2025-11-25T10:00:00.123Z INFO  checkout: payment accepted  amount=120 user_id=u-1
//	2025-11-25T10:00:01.000Z ERROR checkout http: charge failed  err="card declined"  caller=pay.go:42
//	    <stack trace lines, indented>
//
// time (in loc, or UTC), level, service (padded to the widest service
// shown), the logger name if any, the message, the fields sorted by key
// (groups flattened as group.key), then the caller. Control characters in
// any text are escaped, so a record cannot move the cursor or recolour a
// terminal.
//
// json is one object per line (for jq): time (RFC 3339, UTC, full
// precision), level, severity, service, logger, caller, msg, fields (the
// original nesting), stack, truncated, id. Keys of fields are sorted.
//
// logfmt is one line per record: time level severity service logger caller
// msg, the flattened fields, stack, truncated. Times are UTC.
type formatter struct {
	format       string
	color        bool
	loc          *time.Location // text only; json and logfmt are UTC
	serviceWidth int            // text: pad the service to this width
	buf          []byte
}

// newFormatter returns a formatter for format, or an error naming the
// formats.
func newFormatter(format string, color bool, loc *time.Location) (*formatter, error) {
	switch format {
	case formatText, formatJSON, formatLogfmt:
	default:
		return nil, fmt.Errorf("unknown output format %q (text, json or logfmt)", format)
	}
	if loc == nil {
		loc = time.UTC
	}
	return &formatter{format: format, color: color && format == formatText, loc: loc}, nil
}

// write renders rec and writes it to w.
func (f *formatter) write(w io.Writer, rec *query.Record) error {
	f.buf = f.buf[:0]
	switch f.format {
	case formatJSON:
		f.buf = appendJSONRecord(f.buf, rec)
	case formatLogfmt:
		f.buf = appendLogfmtRecord(f.buf, rec)
	default:
		f.buf = f.appendText(f.buf, rec)
	}
	_, err := w.Write(f.buf)
	return err
}

// paint wraps s in colour c when colour is on.
func (f *formatter) paint(b []byte, c, s string) []byte {
	if !f.color || c == "" {
		return append(b, s...)
	}
	b = append(b, c...)
	b = append(b, s...)
	return append(b, ansiReset...)
}

// levelColor returns the colour of a severity.
func levelColor(sev int) string {
	switch {
	case sev < 0:
		return ansiBlue
	case sev < 4:
		return ansiGreen
	case sev < 8:
		return ansiYellow
	case sev < 12:
		return ansiRed
	default:
		return ansiBoldRed
	}
}

func (f *formatter) appendText(b []byte, rec *query.Record) []byte {
	start := len(b)
	b = f.paint(b, ansiFaint, rec.Time.In(f.loc).Format(textTimeLayout))
	b = append(b, ' ')
	lvl := fieldtext.Level(sanitize(rec.Level), rec.Severity)
	b = f.paint(b, levelColor(rec.Severity), lvl)
	b = appendPad(b, 5-utf8.RuneCountInString(lvl))
	b = append(b, ' ')
	b = f.paint(b, ansiCyan, rec.Service)
	if rec.Logger != "" {
		b = append(b, ' ')
		b = f.paint(b, ansiMagenta, sanitize(rec.Logger))
		b = append(b, ':')
	} else {
		b = append(b, ':')
		b = appendPad(b, f.serviceWidth-len(rec.Service))
	}
	if rec.Message != "" {
		b = append(b, ' ')
		b = f.paint(b, "", sanitize(rec.Message))
	}
	first := true
	walkFields(rec.Fields, "", func(key string, v any) {
		if first {
			b = append(b, "  "...)
			first = false
		} else {
			b = append(b, ' ')
		}
		b = f.paint(b, ansiFaint, quoteKey(key)+"=")
		b = appendTextValue(b, v)
	})
	if rec.Truncated > 0 {
		b = append(b, "  "...)
		b = f.paint(b, ansiYellow, fmt.Sprintf("[%d truncated]", rec.Truncated))
	}
	if rec.Caller != "" {
		b = append(b, "  "...)
		b = f.paint(b, ansiFaint, "caller="+sanitize(rec.Caller))
	}
	for len(b) > start && b[len(b)-1] == ' ' { // padding before an empty message
		b = b[:len(b)-1]
	}
	b = append(b, '\n')
	if rec.Stack != "" {
		for _, line := range strings.Split(strings.TrimRight(rec.Stack, "\n"), "\n") {
			b = append(b, "    "...)
			b = f.paint(b, ansiFaint, sanitizeLine(line))
			b = append(b, '\n')
		}
	}
	return b
}

func appendPad(b []byte, n int) []byte {
	for ; n > 0; n-- {
		b = append(b, ' ')
	}
	return b
}

// walkFields calls fn for every field, sorted by key; groups (nested maps)
// are flattened as "group.key".
func walkFields(fields map[string]any, prefix string, fn func(key string, v any)) {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := fields[k]
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			walkFields(m, prefix+k+".", fn)
			continue
		}
		fn(prefix+k, v)
	}
}

// appendTextValue appends a field value for text output: as in logfmt,
// except that arrays and objects are written as bare JSON, easier to read.
func appendTextValue(b []byte, v any) []byte {
	switch v.(type) {
	case []any, map[string]any:
		return append(b, sanitize(fieldtext.Value(v))...)
	}
	return appendLogfmtValue(b, v)
}

// appendLogfmtRecord renders rec as one logfmt line.
func appendLogfmtRecord(b []byte, rec *query.Record) []byte {
	b = append(b, "time="...)
	b = rec.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, " level="...)
	b = appendLogfmtValue(b, rec.Level)
	b = append(b, " severity="...)
	b = strconv.AppendInt(b, int64(rec.Severity), 10)
	b = append(b, " service="...)
	b = appendLogfmtValue(b, rec.Service)
	if rec.Logger != "" {
		b = append(b, " logger="...)
		b = appendLogfmtValue(b, rec.Logger)
	}
	if rec.Caller != "" {
		b = append(b, " caller="...)
		b = appendLogfmtValue(b, rec.Caller)
	}
	b = append(b, " msg="...)
	b = appendLogfmtValue(b, rec.Message)
	walkFields(rec.Fields, "", func(key string, v any) {
		b = append(b, ' ')
		b = append(b, quoteKey(key)...)
		b = append(b, '=')
		b = appendLogfmtValue(b, v)
	})
	if rec.Stack != "" {
		b = append(b, " stack="...)
		b = appendLogfmtValue(b, rec.Stack)
	}
	if rec.Truncated > 0 {
		b = append(b, " truncated="...)
		b = strconv.AppendInt(b, int64(rec.Truncated), 10)
	}
	return append(b, '\n')
}

// appendLogfmtValue appends v as a logfmt value: bare when it is a plain
// token, else a Go-quoted string (which escapes every control character).
func appendLogfmtValue(b []byte, v any) []byte {
	s := fieldtext.Value(v)
	if needsQuote(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// needsQuote reports whether a logfmt value or key must be quoted.
func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if r <= ' ' || r == '=' || r == '"' || r == '\\' || r == utf8.RuneError || !unicode.IsPrint(r) || isBidi(r) {
			return true
		}
	}
	return false
}

// quoteKey returns a field key as written in text and logfmt: quoted when
// it is not a plain token.
func quoteKey(k string) string {
	if needsQuote(k) {
		return strconv.Quote(k)
	}
	return k
}

// isBidi reports the Unicode bidirectional controls, which can make text
// display in another order than it is stored.
func isBidi(r rune) bool {
	return r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069 || r == 0x200E || r == 0x200F || r == 0x061C
}

// sanitize escapes control characters (including newlines and ESC),
// invalid UTF-8 and bidirectional controls in s, so that printed text is
// one line and cannot drive the terminal.
func sanitize(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || isBidi(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteByte('\t')
		case r == '\r':
			b.WriteString(`\r`)
		case unicode.IsControl(r) || isBidi(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// sanitizeLine is sanitize for one line of a multi-line text (a stack
// trace): tabs are kept.
func sanitizeLine(s string) string { return sanitize(s) }

// jsonRecord is the JSON form of a record. Field order is fixed.
type jsonRecord struct {
	Time      string         `json:"time"`
	Level     string         `json:"level"`
	Severity  int            `json:"severity"`
	Service   string         `json:"service"`
	Logger    string         `json:"logger,omitempty"`
	Caller    string         `json:"caller,omitempty"`
	Msg       string         `json:"msg"`
	Fields    map[string]any `json:"fields,omitempty"`
	Stack     string         `json:"stack,omitempty"`
	Truncated int            `json:"truncated,omitempty"`
	ID        string         `json:"id"`
}

// appendJSONRecord renders rec as one JSON line.
func appendJSONRecord(b []byte, rec *query.Record) []byte {
	jr := jsonRecord{
		Time:      rec.Time.UTC().Format(time.RFC3339Nano),
		Level:     rec.Level,
		Severity:  rec.Severity,
		Service:   rec.Service,
		Logger:    rec.Logger,
		Caller:    rec.Caller,
		Msg:       rec.Message,
		Stack:     rec.Stack,
		Truncated: rec.Truncated,
		ID:        rec.ID.String(),
	}
	if len(rec.Fields) > 0 {
		jr.Fields, _ = fieldtext.JSONSafe(rec.Fields).(map[string]any)
	}
	js, err := fieldtext.Marshal(jr)
	if err != nil {
		// Cannot happen with jsonSafe values; keep the line parseable.
		js, _ = fieldtext.Marshal(map[string]string{"error": err.Error(), "id": jr.ID})
	}
	b = appendEscapingBidi(b, js)
	return append(b, '\n')
}

// appendEscapingBidi appends JSON text with the bidirectional controls
// (which encoding/json leaves as they are) written as \u escapes, so a
// terminal shows JSON lines in stored order.
func appendEscapingBidi(b, js []byte) []byte {
	for i := 0; i < len(js); {
		r, size := utf8.DecodeRune(js[i:])
		if isBidi(r) {
			b = fmt.Appendf(b, `\u%04x`, r)
		} else {
			b = append(b, js[i:i+size]...)
		}
		i += size
	}
	return b
}

// colorMode resolves --color: always, never, or auto (stdout is a terminal
// and NO_COLOR is unset or empty, and TERM is not "dumb").
func (a *app) colorMode(mode string) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto", "":
		if a.env("NO_COLOR") != "" || a.env("TERM") == "dumb" {
			return false, nil
		}
		return a.isTerminal(a.stdout), nil
	}
	return false, fmt.Errorf("--color must be auto, always or never, not %q", mode)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
