package main

// The --where language: a small human syntax compiled, through query's
// filter builder only, into a server-side filter. No text of the expression
// ever reaches the service as OData: keys become property names through the
// writer's name encoding and values become typed literals, so no input can
// change the structure of the filter.
//
//	expr       = or
//	or         = and { "or" and }
//	and        = unary { "and" unary }
//	unary      = "not" unary | "(" expr ")" | comparison
//	comparison = key op value
//	op         = "=" | "==" | "!=" | "<>" | ">" | ">=" | "<" | "<="
//	key, value = bare word | 'quoted' | "quoted"
//
// Keywords are case-insensitive. Inside quotes, a backslash escapes the
// next character (\n, \t, \\, \', \" are understood) and a doubled quote
// stands for itself ('it''s').
//
// Keys:
//   - level, severity, msg (or message), logger, caller, stack and time
//     (any case) are the system columns. level compared with a level name
//     (debug, info, warn, error, dpanic, panic, fatal, optionally +N/-N)
//     compares the severity, so level>=warn works for zap and slog alike.
//   - any other bare key is a field; a dotted key (req.method) matches the
//     field of that exact name or the field "method" in group "req"
//     (slog groups, zap namespaces): both are tried.
//   - a quoted key ("msg", "a.b") is exactly that field: no column, no
//     group splitting.
//
// Values: a quoted value is always a string. A bare value is an integer
// (Edm.Int64, as the writer stores every Go integer), a decimal number
// (Edm.Double: write 2.0 to compare with a float field), true or false, an
// RFC 3339 time (2025-11-25T10:00:00Z), or else a string.

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/query"
)

// Limits of the --where language.
const (
	maxWhereLen   = 64 << 10 // bytes of expression
	maxWhereDepth = 64       // nesting of parentheses and "not"
)

// whereError is a syntax or type error in a --where expression, at a byte
// offset of the source.
type whereError struct {
	src string
	pos int
	msg string
}

// Error returns the message, the (shortened) expression and a caret under
// the position.
func (e *whereError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "--where: %s at column %d", e.msg, utf8.RuneCountInString(e.src[:min(e.pos, len(e.src))])+1)
	if !strings.ContainsAny(e.src, "\n\r") && len(e.src) <= 200 {
		line := sanitize(e.src)
		if line == e.src { // caret only lines up on plain text
			fmt.Fprintf(&b, "\n    %s\n    %s^", line, strings.Repeat(" ", utf8.RuneCountInString(e.src[:min(e.pos, len(e.src))])))
		}
	}
	return b.String()
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokWord
	tokString // quoted
	tokOp
	tokLParen
	tokRParen
)

type token struct {
	kind tokKind
	text string // the word, the unquoted string, or the operator
	pos  int
}

func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of expression"
	case tokString:
		return "quoted string"
	case tokLParen:
		return `"("`
	case tokRParen:
		return `")"`
	}
	s := t.text
	if utf8.RuneCountInString(s) > 20 {
		s = string([]rune(s)[:20]) + "…"
	}
	return strconv.Quote(s)
}

// lex splits src into tokens.
func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		r, size := utf8.DecodeRuneInString(src[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return nil, &whereError{src, i, "invalid UTF-8"}
		case unicode.IsSpace(r):
			i += size
		case r == '(':
			toks = append(toks, token{tokLParen, "(", i})
			i++
		case r == ')':
			toks = append(toks, token{tokRParen, ")", i})
			i++
		case r == '\'' || r == '"':
			s, n, err := lexString(src, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{tokString, s, i})
			i += n
		case r == '=' || r == '<' || r == '>' || r == '!' && strings.HasPrefix(src[i:], "!="):
			op := src[i : i+1]
			if i+1 < len(src) {
				two := src[i : i+2]
				switch two {
				case "==", "!=", "<>", ">=", "<=":
					op = two
				}
			}
			toks = append(toks, token{tokOp, op, i})
			i += len(op)
		default:
			start := i
			for i < len(src) {
				r, size := utf8.DecodeRuneInString(src[i:])
				if r == utf8.RuneError && size == 1 {
					return nil, &whereError{src, i, "invalid UTF-8"}
				}
				if unicode.IsSpace(r) || strings.ContainsRune("()'\"=<>", r) || r == '!' && strings.HasPrefix(src[i:], "!=") {
					break
				}
				if unicode.IsControl(r) {
					return nil, &whereError{src, i, fmt.Sprintf("control character %U outside quotes", r)}
				}
				i += size
			}
			toks = append(toks, token{tokWord, src[start:i], start})
		}
	}
	return append(toks, token{tokEOF, "", len(src)}), nil
}

// lexString reads the quoted string starting at src[i] and returns its
// value and length in src.
func lexString(src string, i int) (string, int, error) {
	q := src[i]
	var b strings.Builder
	j := i + 1
	for j < len(src) {
		c := src[j]
		switch {
		case c == q:
			if j+1 < len(src) && src[j+1] == q { // doubled quote
				b.WriteByte(q)
				j += 2
				continue
			}
			return b.String(), j + 1 - i, nil
		case c == '\\':
			if j+1 >= len(src) {
				return "", 0, &whereError{src, j, "backslash at the end of a quoted string"}
			}
			switch e := src[j+1]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '\\', '\'', '"':
				b.WriteByte(e)
			default:
				return "", 0, &whereError{src, j, fmt.Sprintf(`unknown escape \%c in a quoted string (use \\ for a backslash)`, e)}
			}
			j += 2
		default:
			b.WriteByte(c)
			j++
		}
	}
	return "", 0, &whereError{src, i, fmt.Sprintf("unterminated quoted string (no closing %c)", q)}
}

// parser is a recursive-descent parser over the tokens.
type parser struct {
	src   string
	toks  []token
	i     int
	depth int
	audit bool // keys are audit columns (see parseAuditWhere)
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) errorf(t token, format string, args ...any) error {
	return &whereError{p.src, t.pos, fmt.Sprintf(format, args...)}
}

// isKeyword reports whether t is the bare word kw (case-insensitive).
func isKeyword(t token, kw string) bool {
	return t.kind == tokWord && strings.EqualFold(t.text, kw)
}

// parseWhere compiles a --where expression on log records into a
// query.Filter. An empty expression (only spaces) is the zero Filter.
func parseWhere(src string) (query.Filter, error) { return parseWhereFor(src, false) }

// parseAuditWhere compiles a --where expression on audit events: the keys
// are the event's columns (actor, action, target, outcome, reason,
// source_ip, request_id, id, seq, hash, prev_hash, time; any case, with or
// without underscores); values are text except for seq (an integer) and
// time (RFC 3339).
func parseAuditWhere(src string) (query.Filter, error) { return parseWhereFor(src, true) }

func parseWhereFor(src string, audit bool) (query.Filter, error) {
	if strings.TrimSpace(src) == "" {
		return query.Filter{}, nil
	}
	if len(src) > maxWhereLen {
		return query.Filter{}, &whereError{src, maxWhereLen, fmt.Sprintf("expression is longer than %d bytes", maxWhereLen)}
	}
	toks, err := lex(src)
	if err != nil {
		return query.Filter{}, err
	}
	p := &parser{src: src, toks: toks, audit: audit}
	f, err := p.parseOr()
	if err != nil {
		return query.Filter{}, err
	}
	if t := p.peek(); t.kind != tokEOF {
		if t.kind == tokRParen {
			return query.Filter{}, p.errorf(t, `unbalanced ")"`)
		}
		return query.Filter{}, p.errorf(t, `expected "and", "or" or the end, found %s`, t.describe())
	}
	if err := f.Err(); err != nil {
		return query.Filter{}, &whereError{src, 0, err.Error()}
	}
	// The reader adds its own conditions (partition, row-key range,
	// severity, arrival time) to the 15 the service allows.
	if n := f.Comparisons(); n > query.MaxComparisons-5 {
		return query.Filter{}, &whereError{src, 0, fmt.Sprintf("too many comparisons (%d; at most %d, since Azure Table Storage allows %d per query and tablelog needs up to 5; dotted keys count twice)", n, query.MaxComparisons-5, query.MaxComparisons)}
	}
	return f, nil
}

func (p *parser) parseOr() (query.Filter, error) { return p.parseList("or", p.parseAnd, query.Or) }

func (p *parser) parseAnd() (query.Filter, error) { return p.parseList("and", p.parseUnary, query.And) }

// parseList parses operands joined by the keyword and combines them.
func (p *parser) parseList(keyword string, operand func() (query.Filter, error), combine func(...query.Filter) query.Filter) (query.Filter, error) {
	first, err := operand()
	if err != nil {
		return query.Filter{}, err
	}
	parts := []query.Filter{first}
	for isKeyword(p.peek(), keyword) {
		p.next()
		f, err := operand()
		if err != nil {
			return query.Filter{}, err
		}
		parts = append(parts, f)
	}
	return combine(parts...), nil
}

func (p *parser) parseUnary() (query.Filter, error) {
	t := p.peek()
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxWhereDepth {
		return query.Filter{}, p.errorf(t, "nested more than %d levels deep", maxWhereDepth)
	}
	// "not" is the keyword unless it is a key being compared ("not=1").
	if isKeyword(t, "not") && p.toks[p.i+1].kind != tokOp {
		p.next()
		f, err := p.parseUnary()
		if err != nil {
			return query.Filter{}, err
		}
		return query.Not(f), nil
	}
	if t.kind == tokLParen {
		p.next()
		f, err := p.parseOr()
		if err != nil {
			return query.Filter{}, err
		}
		if c := p.peek(); c.kind != tokRParen {
			if c.kind == tokEOF {
				return query.Filter{}, p.errorf(t, `unbalanced "(": no matching ")"`)
			}
			return query.Filter{}, p.errorf(c, `expected ")", "and" or "or", found %s`, c.describe())
		}
		p.next()
		return f, nil
	}
	return p.parseComparison()
}

func (p *parser) parseComparison() (query.Filter, error) {
	k := p.next()
	switch k.kind {
	case tokWord, tokString:
	case tokEOF:
		return query.Filter{}, p.errorf(k, "expected a comparison (key=value)")
	case tokRParen:
		return query.Filter{}, p.errorf(k, `unbalanced ")" (or an empty pair of parentheses)`)
	default:
		return query.Filter{}, p.errorf(k, "expected a key, found %s", k.describe())
	}
	if k.text == "" {
		return query.Filter{}, p.errorf(k, "empty key")
	}
	op := p.next()
	if op.kind != tokOp {
		if op.kind == tokEOF {
			return query.Filter{}, p.errorf(op, "expected an operator (=, !=, >, >=, <, <=) after the key %s", k.describe())
		}
		return query.Filter{}, p.errorf(op, "expected an operator (=, !=, >, >=, <, <=) after the key %s, found %s", k.describe(), op.describe())
	}
	v := p.next()
	if v.kind != tokWord && v.kind != tokString {
		return query.Filter{}, p.errorf(v, "expected a value after %q, found %s", op.text, v.describe())
	}
	return p.compile(k, op, v)
}

// cmpFunc is one of query's comparison builders.
type cmpFunc func(field query.Ref, value any) query.Filter

var ops = map[string]cmpFunc{
	"=": query.Eq[query.Ref], "==": query.Eq[query.Ref], "!=": query.Ne[query.Ref], "<>": query.Ne[query.Ref],
	">": query.Gt[query.Ref], ">=": query.Ge[query.Ref], "<": query.Lt[query.Ref], "<=": query.Le[query.Ref],
}

// systemKeys maps the bare keys of system columns (lower case) to the
// columns.
var systemKeys = map[string]query.Ref{
	"level":    query.ColLevel,
	"severity": query.ColSeverity,
	"msg":      query.ColMsg,
	"message":  query.ColMsg,
	"logger":   query.ColLogger,
	"caller":   query.ColCaller,
	"stack":    query.ColStack,
	"time":     query.ColTime,
}

// compile builds the comparison key op value.
func (p *parser) compile(k, op, v token) (query.Filter, error) {
	cmp := ops[op.text]
	if p.audit {
		return p.compileAudit(k, cmp, v)
	}
	if k.kind == tokString {
		return p.check(cmp(query.Field(k.text), p.value(v)), v)
	}
	if col, ok := systemKeys[strings.ToLower(k.text)]; ok {
		return p.compileColumn(col, cmp, op, v)
	}
	val := p.value(v)
	if strings.Contains(k.text, ".") {
		segs := strings.Split(k.text, ".")
		if !slicesContainEmpty(segs) {
			// The literal key (zap's "http.method") or the same path
			// through groups (slog's group "req", key "method").
			return p.check(query.Or(cmp(query.Field(k.text), val), cmp(query.Field(segs...), val)), v)
		}
	}
	return p.check(cmp(query.Field(k.text), val), v)
}

func slicesContainEmpty(s []string) bool {
	for _, x := range s {
		if x == "" {
			return true
		}
	}
	return false
}

// check turns a Filter's build error into a positioned error.
func (p *parser) check(f query.Filter, at token) (query.Filter, error) {
	if err := f.Err(); err != nil {
		var fe *query.FilterError
		if errors.As(err, &fe) {
			err = fe.Err // the words; the position says where
		}
		return query.Filter{}, p.errorf(at, "%v", err)
	}
	return f, nil
}

// compileColumn builds a comparison on a system column.
func (p *parser) compileColumn(col query.Ref, cmp cmpFunc, op, v token) (query.Filter, error) {
	switch col {
	case query.ColLevel:
		sev, err := schema.ParseLevel(v.text)
		if err == nil {
			return p.check(cmp(query.ColSeverity, int32(sev)), v)
		}
		if op.text != "=" && op.text != "==" && op.text != "!=" && op.text != "<>" {
			return query.Filter{}, p.errorf(v, "%v", err)
		}
		return p.check(cmp(col, v.text), v)
	case query.ColSeverity:
		sev, err := schema.ParseLevel(v.text)
		if err != nil {
			return query.Filter{}, p.errorf(v, "severity must be a number or a level name: %v", err)
		}
		return p.check(cmp(col, int32(sev)), v)
	case query.ColTime:
		return p.compileTime(col, cmp, v)
	}
	// Text columns: the value is text whatever it looks like.
	return p.check(cmp(col, v.text), v)
}

// auditColumns maps the normalized keys of audit --where expressions to
// the columns of audit events.
var auditColumns = map[string]query.Ref{
	"actor": query.Field(schema.AuditColActor), "action": query.Field(schema.AuditColAction),
	"target": query.Field(schema.AuditColTarget), "outcome": query.Field(schema.AuditColOutcome),
	"reason": query.Field(schema.AuditColReason), "sourceip": query.Field(schema.AuditColSourceIP),
	"requestid": query.Field(schema.AuditColRequestID), "id": query.Field(schema.AuditColID),
	"seq": query.Field(schema.AuditColSeq), "hash": query.Field(schema.AuditColHash),
	"prevhash": query.Field(schema.AuditColPrevHash), "time": query.ColTime,
}

// compileAudit builds a comparison on an audit column.
func (p *parser) compileAudit(k token, cmp cmpFunc, v token) (query.Filter, error) {
	col, ok := auditColumns[strings.ToLower(strings.ReplaceAll(k.text, "_", ""))]
	if !ok {
		return query.Filter{}, p.errorf(k, "%s is not an audit column (actor, action, target, outcome, reason, source_ip, request_id, id, seq, hash, prev_hash, time)", k.describe())
	}
	switch col {
	case auditColumns["seq"]:
		n, err := strconv.ParseInt(v.text, 10, 64)
		if err != nil || v.kind != tokWord {
			return query.Filter{}, p.errorf(v, "seq must be an integer, found %s", v.describe())
		}
		return p.check(cmp(col, n), v)
	case query.ColTime:
		return p.compileTime(col, cmp, v)
	}
	return p.check(cmp(col, v.text), v)
}

// compileTime builds a comparison on a time column: the value is an RFC
// 3339 time.
func (p *parser) compileTime(col query.Ref, cmp cmpFunc, v token) (query.Filter, error) {
	t, err := time.Parse(time.RFC3339Nano, v.text)
	if err != nil {
		return query.Filter{}, p.errorf(v, "time must be an RFC 3339 time (2025-11-25T10:00:00Z), found %s", v.describe())
	}
	return p.check(cmp(col, t), v)
}

// numberRE matches the decimal numbers the language accepts (no NaN, Inf,
// hex or underscores).
var (
	intRE   = regexp.MustCompile(`^[+-]?[0-9]+$`)
	floatRE = regexp.MustCompile(`^[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?$`)
)

// value converts a value token to the Go value whose literal type the
// writer uses.
func (p *parser) value(t token) any {
	if t.kind == tokString {
		return t.text
	}
	s := t.text
	switch {
	case s == "true":
		return true
	case s == "false":
		return false
	case intRE.MatchString(s):
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
		if n, err := strconv.ParseUint(strings.TrimPrefix(s, "+"), 10, 64); err == nil {
			return n // the writer stores integers above MaxInt64 as text
		}
		return s
	case floatRE.MatchString(s):
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) {
			return f
		}
		return s
	}
	if looksLikeTime(s) {
		if tm, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return tm
		}
	}
	return s
}

// looksLikeTime is a cheap pre-check for RFC 3339: "dddd-dd-ddT".
func looksLikeTime(s string) bool {
	return len(s) >= 20 && s[4] == '-' && s[7] == '-' && (s[10] == 'T' || s[10] == 't')
}
