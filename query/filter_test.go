package query

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

func TestFilterLiterals(t *testing.T) {
	t.Parallel()
	ts := time.Date(2025, 11, 25, 10, 0, 0, 123456700, time.FixedZone("x", 3600))
	g, _ := ParseGUID("0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9")
	cases := []struct {
		f    Filter
		want string
	}{
		{Eq("user_id", "u-1"), "user_id eq 'u-1'"},
		{Eq("s", "it's"), "s eq 'it''s'"},
		{Eq("s", "' or 1 eq 1 or 'a' eq '"), "s eq ''' or 1 eq 1 or ''a'' eq '''"},
		{Eq("s", ""), "s eq ''"},
		{Ne("n", 42), "n ne 42L"},
		{Gt("n", int64(-7)), "n gt -7L"},
		{Ge("n", int32(5)), "n ge 5L"},
		{Ge("n", int8(-128)), "n ge -128L"},
		{Lt("n", uint64(math.MaxUint64)), ""},
		{Eq("n", uint64(math.MaxUint64)), "n eq '18446744073709551615'"},
		{Eq("n", int64(math.MinInt64)), "n eq -9223372036854775808L"},
		{Eq("n", Int32(3)), "n eq 3"},
		{Eq("d", 2*time.Second), "d eq 2000000000L"},
		{Le("f", 2.5), "f le 2.5"},
		{Le("f", 3.0), "f le 3.0"},
		{Le("f", float32(0.1)), "f le 0.10000000149011612"},
		{Le("f", 1e21), "f le 1000000000000000000000.0"},
		{Le("f", -0.0), "f le 0.0"},
		{Eq("f", math.NaN()), ""},
		{Eq("f", math.Inf(1)), ""},
		{Eq("b", true), "b eq true"},
		{Eq("t", ts), "t eq datetime'2025-11-25T09:00:00.1234567Z'"},
		{Eq("t", time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)), ""},
		{Eq("g", g), "g eq guid'0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9'"},
		{Eq("x", []byte{0, 0xab, 0xff}), "x eq X'00abff'"},
		{Eq("x", nil), ""},
		{Eq("x", struct{}{}), ""},
		{Eq("x", "\xff"), ""},
		{Eq("http.method", "GET"), "http_x2E_method eq 'GET'"},
		{Eq("Level", "x"), "_x4C_evel eq 'x'"}, // the user field named Level
		{Eq(ColLevel, "error"), "Level eq 'error'"},
		{Ge(ColSeverity, 4), "Severity ge 4"},
		{Ge(ColSeverity, int64(math.MaxInt32)+1), ""},
		{Ge(ColSeverity, math.MinInt32), "Severity ge -2147483648"},
		{Lt(ColTime, ts), "Time lt datetime'2025-11-25T09:00:00.1234567Z'"},
		{Eq(Column("Nope"), 1), ""},
		{Eq(Field("req", "method"), "GET"), "req__method eq 'GET'"},
		{Eq(Field("user_id"), "u"), "user_id eq 'u'"},
		{Eq(Field(), "u"), ""},
		// Long names are shortened and keywords escaped, exactly as the writer does.
		{Eq(strings.Repeat("k", 300), "v"), schema.EncodeName(strings.Repeat("k", 300)) + " eq 'v'"},
		{Eq("eq", "v"), "_x65_q eq 'v'"},
		{Eq("NOT", "v"), "_x4E_OT eq 'v'"},
		{Eq(Field("True"), "v"), "_x54_rue eq 'v'"},
		{And(Eq("a", "1"), Eq("b", "2"), Eq("c", "3")), "a eq '1' and b eq '2' and c eq '3'"},
		{And(Eq("a", "1"), Or(Eq("b", "2"), Eq("c", "3"))), "a eq '1' and (b eq '2' or c eq '3')"},
		{Or(And(Eq("a", "1"), Eq("b", "2")), Not(Eq("c", "3"))), "(a eq '1' and b eq '2') or not (c eq '3')"},
		{And(Filter{}, Eq("a", "1"), Filter{}), "a eq '1'"},
		{And(), ""},
		{Not(Filter{}), ""},
		{And(Eq("a", "1"), Eq("x", nil)), ""},
		{Not(Or(Eq("a", 1), Eq("x", make(chan int)))), ""},
	}
	for i, c := range cases {
		if got := c.f.String(); got != c.want {
			t.Errorf("case %d: got %q, want %q (err %v)", i, got, c.want, c.f.Err())
		}
		if c.want == "" && !c.f.IsZero() && !errors.Is(c.f.Err(), ErrInvalidFilter) {
			t.Errorf("case %d: error %v does not wrap ErrInvalidFilter", i, c.f.Err())
		}
		if c.want != "" && c.f.Err() != nil {
			t.Errorf("case %d: unexpected error %v", i, c.f.Err())
		}
	}
	if !(Filter{}).IsZero() || And(Eq("a", 1)).Comparisons() != 1 || Or(Eq("a", 1), Not(Eq("b", 2))).Comparisons() != 2 {
		t.Error("IsZero/Comparisons")
	}
	if !errors.Is(ErrInvalidFilter, ErrInvalidQuery) {
		t.Error("ErrInvalidFilter should wrap ErrInvalidQuery")
	}
	// A plain string is always a top-level key, whatever its bytes (a NUL
	// included); a Ref is the typed reference, comparable and resolved
	// when made.
	for _, key := range []string{"\x00Fx", "\x00C" + schema.ColLevel, "Level", "a.b"} {
		if got, want := Eq(key, "v").String(), Eq(Field(key), "v").String(); got != want || !strings.HasPrefix(got, schema.EncodeName(key)+" eq ") {
			t.Errorf("Eq(%q) = %q, want %q (the user field)", key, got, want)
		}
	}
	if ColLevel != Column("Level") || ColLevel == Field("Level") || Field("req", "method") != Field("req", "method") || ColLevel.String() != "Level" {
		t.Error("Refs do not compare by what they refer to")
	}
	if Eq(Field("Level"), "x").String() != Eq("Level", "x").String() || Eq(ColLevel, "x").String() != "Level eq 'x'" {
		t.Errorf("field Level %q, column Level %q", Eq(Field("Level"), "x"), Eq(ColLevel, "x"))
	}
	for _, f := range []Filter{Eq(Ref{}, 1), Eq(Field(), 1), Eq(Column("level"), 1)} {
		if !errors.Is(f.Err(), ErrInvalidFilter) {
			t.Errorf("invalid reference: %v", f.Err())
		}
	}
	// A failed build is a *FilterError naming the property and the
	// comparison, wrapping the sentinels and the cause; And, Or and Not
	// pass it on unchanged.
	for _, tc := range []struct {
		f              Filter
		field, op, msg string
	}{
		{Lt("n", math.NaN()), "n", "lt", "tablelog/query: invalid query: invalid filter: n lt: NaN cannot be used in a filter"},
		{And(Eq("a", 1), Or(Eq(Column("Nope"), 1))), "", "eq", `tablelog/query: invalid query: invalid filter: eq: "Nope" is not a system column`},
		{Not(Filter{}), "", "not", "tablelog/query: invalid query: invalid filter: not: the operand is the zero Filter, which would match nothing"},
	} {
		var fe *FilterError
		err := tc.f.Err()
		if !errors.As(err, &fe) || fe.Field != tc.field || fe.Op != tc.op || fe.Err == nil {
			t.Errorf("%v: got %#v, want a *FilterError for %q %q", err, err, tc.field, tc.op)
			continue
		}
		if err.Error() != tc.msg || !errors.Is(err, ErrInvalidFilter) || !errors.Is(err, ErrInvalidQuery) || !errors.Is(err, fe.Err) {
			t.Errorf("%v: want message %q wrapping ErrInvalidFilter, ErrInvalidQuery and its cause", err, tc.msg)
		}
	}
	if _, err := ParseGUID("nope"); err == nil {
		t.Error("ParseGUID accepted garbage")
	}
	if g.String() != "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9" {
		t.Error(g.String())
	}
}

// token is one lexical unit of an OData filter.
type token struct {
	kind string // ident, op, logic, not, lparen, rparen, string, number, bool, typed
	text string // identifier, operator, decoded string value, number text, or typed literal "guid:…"
}

var (
	identRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	numberRe = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?L?$`)
)

// tokenize splits an OData filter the way the service's grammar does. It
// fails on anything outside the grammar our builder may produce.
func tokenize(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ':
			i++
		case c == '(':
			out = append(out, token{"lparen", "("})
			i++
		case c == ')':
			out = append(out, token{"rparen", ")"})
			i++
		case c == '\'':
			v, n, err := readString(s[i:])
			if err != nil {
				return nil, err
			}
			out = append(out, token{"string", v})
			i += n
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '(' && s[j] != ')' && s[j] != '\'' {
				j++
			}
			w := s[i:j]
			if j < len(s) && s[j] == '\'' {
				switch w {
				case "datetime", "guid", "X":
				default:
					return nil, fmt.Errorf("unknown type prefix %q", w)
				}
				v, n, err := readString(s[j:])
				if err != nil {
					return nil, err
				}
				out = append(out, token{"typed", w + ":" + v})
				i = j + n
				continue
			}
			switch {
			case w == "eq" || w == "ne" || w == "gt" || w == "ge" || w == "lt" || w == "le":
				out = append(out, token{"op", w})
			case w == "and" || w == "or":
				out = append(out, token{"logic", w})
			case w == "not":
				out = append(out, token{"not", w})
			case w == "true" || w == "false":
				out = append(out, token{"bool", w})
			case numberRe.MatchString(w):
				out = append(out, token{"number", w})
			case identRe.MatchString(w):
				out = append(out, token{"ident", w})
			default:
				return nil, fmt.Errorf("bad word %q", w)
			}
			i = j
		}
	}
	return out, nil
}

// readString reads a quoted literal at the start of s (a doubled quote is
// one quote character).
func readString(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] == '\'' {
			if i+1 < len(s) && s[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			return b.String(), i + 1, nil
		}
		b.WriteByte(s[i])
	}
	return "", 0, fmt.Errorf("unterminated string")
}

func tok(kind, text string) token { return token{kind, text} }

// odataKeywords are the words of the filter grammar; no property name may be one.
var odataKeywords = map[string]bool{
	"eq": true, "ne": true, "gt": true, "ge": true, "lt": true, "le": true,
	"and": true, "or": true, "not": true, "true": true, "false": true, "null": true,
}

// FuzzFilter shows that no value and no field name can change a filter's
// structure: whatever the inputs, the filter tokenizes into exactly the
// expected tokens, identifiers are the writer's names, and literals decode
// back to the input values.
func FuzzFilter(f *testing.F) {
	f.Add("user_id", "u-1", int64(1), 2.5, []byte{1})
	f.Add("x", "' or 1 eq 1 or 'a' eq '", int64(-1), -0.0, []byte(nil))
	f.Add("a b)(' eq", "''''", int64(math.MinInt64), 1e300, []byte("'"))
	f.Add("Level", "x') or (RowKey ne '", int64(0), 1e-300, []byte{})
	f.Add("ключ", "значение ✓ \x00\n\t", int64(math.MaxInt64), math.MaxFloat64, []byte{0xff})
	f.Add("", "datetime'2020-01-01T00:00:00Z'", int64(7), math.SmallestNonzeroFloat64, []byte("X'00'"))
	f.Fuzz(func(t *testing.T, field, s string, i int64, fl float64, b []byte) {
		name := schema.EncodeName(field)
		if !identRe.MatchString(name) {
			t.Fatalf("EncodeName(%q) = %q is not an identifier", field, name)
		}
		nested := schema.EncodeName(field, s)
		if odataKeywords[strings.ToLower(name)] || odataKeywords[strings.ToLower(nested)] {
			t.Fatalf("field %q: EncodeName left an OData keyword: %q", field, name)
		}
		flt := And(
			Eq(field, s),
			Or(Not(Ne("k", i)), Lt(Field(field, s), fl), Ge(field, b)),
			Eq(ColMsg, s),
		)
		if !utf8.ValidString(s) || math.IsNaN(fl) || math.IsInf(fl, 0) || len(b) > schema.MaxBinaryBytes {
			if !errors.Is(flt.Err(), ErrInvalidFilter) || flt.String() != "" {
				t.Fatalf("invalid input accepted: %q err %v", flt.String(), flt.Err())
			}
			return
		}
		if flt.Err() != nil {
			t.Fatalf("unexpected error %v", flt.Err())
		}
		got, err := tokenize(flt.String())
		if err != nil {
			t.Fatalf("tokenize %q: %v", flt.String(), err)
		}
		want := []token{
			tok("ident", name), tok("op", "eq"), tok("string", s),
			tok("logic", "and"), tok("lparen", "("),
			tok("not", "not"), tok("lparen", "("), tok("ident", "k"), tok("op", "ne"), tok("number", strconv.FormatInt(i, 10)+"L"), tok("rparen", ")"),
			tok("logic", "or"), tok("ident", nested), tok("op", "lt"), tok("float", ""),
			tok("logic", "or"), tok("ident", name), tok("op", "ge"), tok("typed", "X:"+hex.EncodeToString(b)),
			tok("rparen", ")"),
			tok("logic", "and"), tok("ident", "Msg"), tok("op", "eq"), tok("string", s),
		}
		if len(got) != len(want) {
			t.Fatalf("filter %q: %d tokens, want %d:\n%v", flt.String(), len(got), len(want), got)
		}
		for k := range want {
			if want[k].kind == "float" { // must parse back exactly
				v, err := strconv.ParseFloat(got[k].text, 64)
				if got[k].kind != "number" || err != nil || v != fl || !strings.Contains(got[k].text, ".") {
					t.Fatalf("float token %v for %v", got[k], fl)
				}
				continue
			}
			if got[k] != want[k] {
				t.Fatalf("filter %q: token %d is %v, want %v", flt.String(), k, got[k], want[k])
			}
		}
	})
}

// Hostile values against Azurite return exactly the right rows.
func TestFilterHostileValuesAzurite(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	hostile := []string{
		"plain",
		"it's",
		"'",
		"''",
		"' or 1 eq 1 or 'a' eq '",
		"x' or RowKey ne '",
		"') or (PartitionKey ne '",
		`" or "1" eq "1`,
		"a%20b&$filter=true",
		"naïve — ünïcødé ✓ 日本語 🚀",
		"line\nbreak\ttab",
		"back\\slash/?#",
		"null",
		"true",
		"datetime'2020-01-01T00:00:00Z'",
		strings.Repeat("'", 100),
		strings.Repeat("long value ", 300),
	}
	base := day0.Add(9 * time.Hour)
	var es []*entry
	for i, v := range hostile {
		es = append(es, &entry{Time: base.Add(time.Duration(i) * time.Second), Msg: strconv.Itoa(i),
			Fields: map[string]any{"v": v, "n": i, "f": float64(i) + 0.5, "b": i%2 == 0, "when": base.Add(time.Duration(i) * time.Hour),
				"raw": []byte{byte(i), '\''}, "http.method": v, "user-id": v},
			Groups: map[string]map[string]any{"req": {"v": v}}})
	}
	put(t, tbl, "hostile", es, 1)
	r := New(twin(t, tbl))
	match := func(w Filter) []string {
		t.Helper()
		var out []string
		for _, rec := range collect(t, r.Logs(t.Context(), Logs{Service: "hostile", Since: day0, Until: day0.AddDate(0, 0, 1), Where: w})) {
			out = append(out, rec.Message)
		}
		slices.SortFunc(out, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
		return out
	}
	all := make([]string, len(hostile))
	for i := range hostile {
		all[i] = strconv.Itoa(i)
	}
	for i, v := range hostile {
		one := []string{strconv.Itoa(i)}
		for _, w := range []Filter{Eq("v", v), Eq("http.method", v), Eq("user-id", v), Eq(Field("req", "v"), v)} {
			if got := match(w); !slices.Equal(got, one) {
				t.Errorf("%s: got %v, want %v", w, got, one)
			}
		}
		if got := match(Ne("v", v)); len(got) != len(hostile)-1 || slices.Contains(got, one[0]) {
			t.Errorf("Ne %q: got %v", v, got)
		}
		if got := match(And(Eq("v", v), Eq("n", i))); !slices.Equal(got, one) {
			t.Errorf("And %q: got %v", v, got)
		}
	}
	if got := match(Eq("v", "not there")); len(got) != 0 {
		t.Errorf("no match: got %v", got)
	}
	// Typed comparisons.
	typed := []struct {
		w    Filter
		want []string
	}{
		{Lt("n", 3), all[:3]},
		{Ge("n", int32(15)), all[15:]},
		{Gt("f", 15.5), all[16:]},
		{Le("f", 1.5), all[:2]},
		{And(Ge("n", 2), Lt("n", 5), Eq("b", true)), []string{"2", "4"}},
		{Or(Eq("n", 0), Eq("n", 16)), []string{"0", "16"}},
		{Not(Ge("n", 2)), all[:2]},
		{Ge("when", base.Add(15*time.Hour)), all[15:]},
		{Eq("raw", []byte{7, '\''}), []string{"7"}},
		{Eq(ColMsg, "3"), []string{"3"}},
		{Eq(ColLevel, "info"), all},
	}
	for _, c := range typed {
		if got := match(c.w); !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.w, got, c.want)
		}
	}
}
