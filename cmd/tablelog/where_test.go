package main

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tablelog/tablelog/query"
)

// mustWhere parses src or fails.
func mustWhere(t *testing.T, src string) query.Filter {
	t.Helper()
	f, err := parseWhere(src)
	if err != nil {
		t.Fatalf("parseWhere(%q): %v", src, err)
	}
	return f
}

func TestWhereCompiles(t *testing.T) {
	tm := time.Date(2025, 11, 25, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		src  string
		want query.Filter
	}{
		{`user_id=u-1`, query.Eq("user_id", "u-1")},
		{`user_id == u-1`, query.Eq("user_id", "u-1")},
		{`user_id=u-1 and status>=500`, query.And(query.Eq("user_id", "u-1"), query.Ge("status", int64(500)))},
		{`a=1 or b=2 and c=3`, query.Or(query.Eq("a", int64(1)), query.And(query.Eq("b", int64(2)), query.Eq("c", int64(3))))},
		{`(a=1 or b=2) and c=3`, query.And(query.Or(query.Eq("a", int64(1)), query.Eq("b", int64(2))), query.Eq("c", int64(3)))},
		{`a=1 AND b!=2 Or c<>3`, query.Or(query.And(query.Eq("a", int64(1)), query.Ne("b", int64(2))), query.Ne("c", int64(3)))},
		{`not a=1`, query.Not(query.Eq("a", int64(1)))},
		{`NOT (a=1 or b=2)`, query.Not(query.Or(query.Eq("a", int64(1)), query.Eq("b", int64(2))))},
		{`nothing=1`, query.Eq("nothing", int64(1))},
		// Keys named like keywords are fields (the writer escapes their names).
		{`not=1`, query.Eq("not", int64(1))},
		{`and=1`, query.Eq("and", int64(1))},
		{`x=and`, query.Eq("x", "and")},
		{`a>1 and a<10 and a<=9 and a>=2`, query.And(query.Gt("a", int64(1)), query.Lt("a", int64(10)), query.Le("a", int64(9)), query.Ge("a", int64(2)))},
		// Value types.
		{`n=-5`, query.Eq("n", int64(-5))},
		{`n=+5`, query.Eq("n", int64(5))},
		{`f=2.5`, query.Eq("f", 2.5)},
		{`f=2.0`, query.Eq("f", 2.0)},
		{`f=1e3`, query.Eq("f", 1000.0)},
		{`b=true`, query.Eq("b", true)},
		{`b=false`, query.Eq("b", false)},
		{`b=True`, query.Eq("b", "True")},
		{`s="true"`, query.Eq("s", "true")},
		{`s='500'`, query.Eq("s", "500")},
		{`at=2025-11-25T10:00:00Z`, query.Eq("at", tm)},
		{`at>2025-11-25T11:00:00+01:00`, query.Gt("at", tm)},
		{`day=2025-11-25`, query.Eq("day", "2025-11-25")},
		{`big=18446744073709551615`, query.Eq("big", uint64(18446744073709551615))},
		{`huge=99999999999999999999999`, query.Eq("huge", "99999999999999999999999")},
		{`x=NaN`, query.Eq("x", "NaN")},
		{`x=Inf`, query.Eq("x", "Inf")},
		{`x=0x10`, query.Eq("x", "0x10")},
		{`x=1_000`, query.Eq("x", "1_000")},
		// System columns.
		{`level>=warn`, query.Ge(query.ColSeverity, int32(4))},
		{`LEVEL=ERROR`, query.Eq(query.ColSeverity, int32(8))},
		{`level=info+2`, query.Eq(query.ColSeverity, int32(2))},
		{`level=warning`, query.Eq(query.ColSeverity, int32(4))},
		{`level=custom`, query.Eq(query.ColLevel, "custom")},
		{`severity>=8`, query.Ge(query.ColSeverity, int32(8))},
		{`severity<error`, query.Lt(query.ColSeverity, int32(8))},
		{`msg="payment accepted"`, query.Eq(query.ColMsg, "payment accepted")},
		{`message=42`, query.Eq(query.ColMsg, "42")},
		{`logger=http.server`, query.Eq(query.ColLogger, "http.server")},
		{`caller='pay.go:42'`, query.Eq(query.ColCaller, "pay.go:42")},
		{`time>=2025-11-25T10:00:00Z`, query.Ge(query.ColTime, tm)},
		// Fields named like columns, and dotted keys.
		{`"msg"=x`, query.Eq("msg", "x")},
		{`'level'=5`, query.Eq("level", int64(5))},
		{`req.method=POST`, query.Or(query.Eq("req.method", "POST"), query.Eq(query.Field("req", "method"), "POST"))},
		{`a.b.c>1`, query.Or(query.Gt("a.b.c", int64(1)), query.Gt(query.Field("a", "b", "c"), int64(1)))},
		{`"req.method"=POST`, query.Eq("req.method", "POST")},
		{`.hidden=1`, query.Eq(".hidden", int64(1))},
		// Quotes.
		{`msg='it''s'`, query.Eq(query.ColMsg, "it's")},
		{`msg="say \"hi\""`, query.Eq(query.ColMsg, `say "hi"`)},
		{`msg='a\\b\n'`, query.Eq(query.ColMsg, "a\\b\n")},
		{`msg=""`, query.Eq(query.ColMsg, "")},
		{`"key with spaces"="v w"`, query.Eq("key with spaces", "v w")},
		// Unicode.
		{`名前=値`, query.Eq("名前", "値")},
		{`emoji="😀 ok"`, query.Eq("emoji", "😀 ok")},
		{"  a=1\t\n", query.Eq("a", int64(1))},
	}
	for _, tt := range tests {
		got := mustWhere(t, tt.src)
		if tt.want.Err() != nil {
			t.Fatalf("%q: bad expectation: %v", tt.src, tt.want.Err())
		}
		if got.String() != tt.want.String() {
			t.Errorf("parseWhere(%q)\n got %s\nwant %s", tt.src, got, tt.want)
		}
	}
}

func TestWhereEmpty(t *testing.T) {
	for _, src := range []string{"", "   ", "\t\n"} {
		f := mustWhere(t, src)
		if !f.IsZero() {
			t.Errorf("parseWhere(%q) = %s, want the zero filter", src, f)
		}
	}
}

func TestWhereErrors(t *testing.T) {
	tests := []struct {
		src, want string
	}{
		{`msg=' or 1 eq 1`, "unterminated quoted string"},
		{`msg=" or 1 eq 1`, "unterminated quoted string"},
		{`(a=1`, `unbalanced "("`},
		{`((a=1)`, `unbalanced "("`},
		{`a=1)`, `unbalanced ")"`},
		{`()`, `unbalanced ")"`},
		{`)a=1(`, `unbalanced ")"`},
		{`a=`, "expected a value"},
		{`=1`, "expected a key"},
		{`a 1`, "expected an operator"},
		{`a`, "expected an operator"},
		{`a=1 b=2`, `expected "and", "or" or the end`},
		{`a=1 and`, "expected a comparison"},
		{`a=1 or or b=2`, "expected an operator"},
		{`and`, "expected an operator"},
		{`a=>1`, "expected a value"},
		{`a=1 && b=2`, `expected "and", "or" or the end`},
		{`level>custom`, "is not a level"},
		{`severity=high`, "severity must be a number"},
		{`time>yesterday`, "RFC 3339"},
		{`""=1`, "empty key"},
		{`msg='\q'`, `unknown escape`},
		{`msg='abc\`, `backslash at the end`},
		{"a=\x01", "control character"},
		{"a=\xff", "invalid UTF-8"},
		{"msg='\xc3'", "not valid UTF-8"},
		{`a=1 or not`, "expected a comparison"},
		{`a==`, "expected a value"},
		{`path=/pay?x=1`, `expected "and", "or" or the end`},
	}
	for _, tt := range tests {
		f, err := parseWhere(tt.src)
		if err == nil {
			t.Errorf("parseWhere(%q) = %s, want an error containing %q", tt.src, f, tt.want)
			continue
		}
		var we *whereError
		if !errors.As(err, &we) {
			t.Errorf("parseWhere(%q): error %T, want *whereError", tt.src, err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseWhere(%q): %v\nwant it to contain %q", tt.src, err, tt.want)
		}
	}
}

func TestWhereErrorPosition(t *testing.T) {
	_, err := parseWhere(`user_id=u-1 and status>=`)
	if err == nil {
		t.Fatal("no error")
	}
	want := "--where: expected a value after \">=\", found end of expression at column 25\n    user_id=u-1 and status>=\n                            ^"
	if err.Error() != want {
		t.Errorf("error:\n%s\nwant:\n%s", err, want)
	}
	// A value the query builder refuses: its words (FilterError.Err) at
	// the value's position, without the library's prefixes.
	_, err = parseWhere("a=1 and msg='\xc3'")
	if err == nil || !strings.HasPrefix(err.Error(), "--where: string value is not valid UTF-8 at column 13") || strings.Contains(err.Error(), "invalid filter") {
		t.Errorf("builder's error: %v", err)
	}
	// Columns count characters, not bytes.
	_, err = parseWhere(`名前=値 x`)
	if err == nil || !strings.Contains(err.Error(), "at column 6") {
		t.Errorf("unicode position: %v", err)
	}
}

func TestWhereLimits(t *testing.T) {
	// A long value is fine.
	long := strings.Repeat("x'y", 10000)
	f := mustWhere(t, `msg="`+long+`"`)
	if f.String() != query.Eq(query.ColMsg, long).String() {
		t.Error("long value not compiled as one literal")
	}
	// Over the length limit.
	if _, err := parseWhere("a=" + strings.Repeat("x", maxWhereLen)); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("over-long expression: %v", err)
	}
	// Deep nesting.
	deep := strings.Repeat("(", 200) + "a=1" + strings.Repeat(")", 200)
	if _, err := parseWhere(deep); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Errorf("deep nesting: %v", err)
	}
	nots := strings.Repeat("not ", 100) + "a=1"
	if _, err := parseWhere(nots); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Errorf("deep not: %v", err)
	}
	// Within the depth limit.
	mustWhere(t, strings.Repeat("(", 30)+"a=1"+strings.Repeat(")", 30))
	// Too many comparisons for one query.
	var parts []string
	for range 11 {
		parts = append(parts, "a=1")
	}
	if _, err := parseWhere(strings.Join(parts, " or ")); err == nil || !strings.Contains(err.Error(), "too many comparisons") {
		t.Errorf("11 comparisons: %v", err)
	}
	mustWhere(t, strings.Join(parts[:10], " or "))
	// Dotted keys count twice.
	if _, err := parseWhere(strings.Repeat("a.b=1 or ", 5) + "a.b=1"); err == nil {
		t.Error("6 dotted comparisons (12) accepted")
	}
}

// TestWhereHostile checks that hostile values stay inside one literal: the
// compiled filter's structure (with string literals blanked) is exactly
// "<property> eq <literal>".
func TestWhereHostile(t *testing.T) {
	values := []string{
		`' or 1 eq 1`,
		`' or '1' eq '1`,
		`x' or PartitionKey ne '`,
		`'); drop table logs; --`,
		`''''`,
		`\' or 1 eq 1`,
		`" or 1 eq 1`,
		"a\x00b",
		"line1\nline2",
		"\u202e reversed",
		strings.Repeat("'", 1000),
		"😀 ' or 1 eq 1 ' 名前",
		`datetime'2025-01-01T00:00:00Z'`,
		`) or (1 eq 1`,
	}
	for _, v := range values {
		for _, key := range []string{"user_id", "msg", `"a b"`} {
			src := key + "=" + quoteWhere(v)
			f, err := parseWhere(src)
			if err != nil {
				t.Errorf("parseWhere(%q): %v", src, err)
				continue
			}
			checkOneLiteral(t, f.String(), v)
		}
	}
}

// quoteWhere quotes v for the --where language.
func quoteWhere(v string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), "'", "''") + "'"
}

// checkOneLiteral asserts that odata is "<name> eq '<lit>'" with lit
// decoding to v.
func checkOneLiteral(t *testing.T, odata, v string) {
	t.Helper()
	name, rest, ok := strings.Cut(odata, " eq '")
	if !ok || !strings.HasSuffix(rest, "'") {
		t.Errorf("filter %q is not <name> eq '<literal>'", odata)
		return
	}
	for _, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			t.Errorf("property name %q has %q", name, r)
			return
		}
	}
	lit := rest[:len(rest)-1]
	// Inside the literal every quote must be doubled.
	if strings.ReplaceAll(lit, "''", "") != strings.ReplaceAll(lit, "'", "") {
		t.Errorf("literal %q has an undoubled quote", lit)
	}
	if got := strings.ReplaceAll(lit, "''", "'"); got != v {
		t.Errorf("literal decodes to %q, want %q", got, v)
	}
}

// FuzzWhere: any input either fails to parse or compiles to a filter made
// only of property names, operators, parentheses and literals; a quoted
// value is always exactly one literal.
func FuzzWhere(f *testing.F) {
	for _, s := range []string{`a=1`, `msg=' or 1 eq 1`, `(a=1 or b="x") and not c>2.5`, `level>=warn`, `req.method=POST`, `名前='値'`} {
		f.Add(s, "v")
	}
	f.Fuzz(func(t *testing.T, src, value string) {
		if fl, err := parseWhere(src); err == nil {
			checkSkeleton(t, fl.String())
		}
		if !utf8.ValidString(value) {
			return
		}
		fl, err := parseWhere("user_id=" + quoteWhere(value))
		if err != nil {
			t.Fatalf("quoted value %q: %v", value, err)
		}
		checkOneLiteral(t, fl.String(), value)
	})
}

// checkSkeleton asserts that an OData filter consists of identifiers,
// comparison and logical operators, parentheses and literals only.
func checkSkeleton(t *testing.T, s string) {
	t.Helper()
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '(' || c == ')':
			i++
		case c == '\'':
			j := i + 1
			for {
				if j >= len(s) {
					t.Fatalf("unterminated literal in %q", s)
				}
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						j += 2
						continue
					}
					break
				}
				j++
			}
			i = j + 1
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '(' && s[j] != ')' && s[j] != '\'' {
				j++
			}
			word := s[i:j]
			if j < len(s) && s[j] == '\'' {
				// A typed literal prefix: datetime'…', guid'…', X'…'.
				switch word {
				case "datetime", "guid", "X":
				default:
					t.Fatalf("unexpected literal prefix %q in %q", word, s)
				}
			} else if !isSkeletonWord(word) {
				t.Fatalf("unexpected word %q in %q", word, s)
			}
			i = j
		}
	}
}

func isSkeletonWord(w string) bool {
	switch w {
	case "eq", "ne", "gt", "ge", "lt", "le", "and", "or", "not", "true", "false":
		return true
	}
	ident := w != ""
	for i, r := range w {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			ident = false
		}
	}
	if ident {
		return true
	}
	// Numbers: 5, -5, 5L, 2.5, 1000.0
	w = strings.TrimSuffix(strings.TrimPrefix(w, "-"), "L")
	if w == "" {
		return false
	}
	for _, r := range w {
		if !(r >= '0' && r <= '9' || r == '.' || r == 'e' || r == 'E' || r == '+' || r == '-') {
			return false
		}
	}
	return true
}

// The CLI's level vocabulary is schema.ParseLevel's (TestParseLevel there);
// here, that --level and level= in --where use it, and that a bad name is a
// clear error at its position.
func TestWhereLevels(t *testing.T) {
	for src, want := range map[string]query.Filter{
		`level>=warning`: query.Ge(query.ColSeverity, int32(4)),
		`level=DPanic`:   query.Eq(query.ColSeverity, int32(12)),
		`level<info+2`:   query.Lt(query.ColSeverity, int32(2)),
		`severity>=err`:  query.Ge(query.ColSeverity, int32(8)),
		`level=custom`:   query.Eq(query.ColLevel, "custom"), // equality with a stored name
	} {
		got, err := parseWhere(src)
		if err != nil || got.String() != want.String() {
			t.Errorf("parseWhere(%q) = %s, %v; want %s", src, got, err, want)
		}
	}
	_, err := parseWhere(`level > loud`)
	if err == nil || !strings.HasPrefix(err.Error(), `--where: "loud" is not a level: use debug, info`) || !strings.Contains(err.Error(), "at column 9") {
		t.Errorf("level > loud: %v", err)
	}
}
