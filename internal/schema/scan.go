package schema

import (
	"math/bits"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxScanDepth is the deepest nesting scanObject follows; deeper input is
// left to encoding/json (which allows 10,000 levels).
const maxScanDepth = 100

// scanObject appends the members of the JSON object src to ms. ok is false
// when src is not one well-formed JSON object (surrounded by optional
// white space), or nests values deeper than maxScanDepth. The member names
// are unquoted as encoding/json does (invalid UTF-8 and lone surrogates
// become U+FFFD); the values are JSON text, sliced from src.
func scanObject(src string, ms []member) (_ []member, ok bool) {
	i := skipSpace(src, 0)
	if i >= len(src) || src[i] != '{' {
		return ms, false
	}
	i = skipSpace(src, i+1)
	if i < len(src) && src[i] == '}' {
		return ms, skipSpace(src, i+1) == len(src)
	}
	for {
		if i >= len(src) || src[i] != '"' {
			return ms, false
		}
		end, plain := scanString(src, i)
		if end < 0 {
			return ms, false
		}
		key := src[i+1 : end-1]
		if !plain {
			key = unquote(src[i:end])
		}
		i = skipSpace(src, end)
		if i >= len(src) || src[i] != ':' {
			return ms, false
		}
		i = skipSpace(src, i+1)
		end = scanValue(src, i, 0)
		if end < 0 {
			return ms, false
		}
		ms = append(ms, member{key: key, val: src[i:end]})
		i = skipSpace(src, end)
		if i >= len(src) {
			return ms, false
		}
		switch src[i] {
		case ',':
			i = skipSpace(src, i+1)
		case '}':
			return ms, skipSpace(src, i+1) == len(src)
		default:
			return ms, false
		}
	}
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
		i++
	}
	return i
}

// scanValue returns the end of the JSON value starting at s[i], or -1 if
// there is none.
func scanValue(s string, i, depth int) int {
	if i >= len(s) {
		return -1
	}
	switch c := s[i]; {
	case c == '"':
		end, _ := scanString(s, i)
		return end
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(s, i)
	case c == 't':
		return literal(s, i, "true")
	case c == 'f':
		return literal(s, i, "false")
	case c == 'n':
		return literal(s, i, "null")
	case c == '[', c == '{':
		if depth >= maxScanDepth {
			return -1
		}
		close := byte(']')
		if c == '{' {
			close = '}'
		}
		i = skipSpace(s, i+1)
		if i < len(s) && s[i] == close {
			return i + 1
		}
		for {
			if c == '{' {
				if i >= len(s) || s[i] != '"' {
					return -1
				}
				if i, _ = scanString(s, i); i < 0 {
					return -1
				}
				i = skipSpace(s, i)
				if i >= len(s) || s[i] != ':' {
					return -1
				}
				i = skipSpace(s, i+1)
			}
			if i = scanValue(s, i, depth+1); i < 0 {
				return -1
			}
			i = skipSpace(s, i)
			if i >= len(s) {
				return -1
			}
			switch s[i] {
			case ',':
				i = skipSpace(s, i+1)
			case close:
				return i + 1
			default:
				return -1
			}
		}
	}
	return -1
}

func literal(s string, i int, lit string) int {
	if !strings.HasPrefix(s[i:], lit) {
		return -1
	}
	return i + len(lit)
}

// scanNumber returns the end of the JSON number starting at s[i], or -1.
func scanNumber(s string, i int) int {
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = skipDigits(s, i+1)
	default:
		return -1
	}
	if i < len(s) && s[i] == '.' {
		j := skipDigits(s, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := skipDigits(s, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func skipDigits(s string, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// scanString returns the end of the JSON string starting at s[i] (just
// past the closing quote), or -1 if it is not well-formed. plain reports
// that its contents need no unquoting: no escapes, valid UTF-8.
func scanString(s string, i int) (end int, plain bool) {
	plain = true
	ascii := true
	high := uint64(highBits) // stop at non-ASCII bytes too, until one is seen
	for j := i + 1; j < len(s); {
		if j+8 <= len(s) {
			// Eight bytes at a time to the first byte to look at.
			x := load64(s, j)
			m := stops(x) | x&high
			if m == 0 {
				j += 8
				continue
			}
			j += bits.TrailingZeros64(m) >> 3
		}
		c := s[j]
		if !special[c] {
			j++
			continue
		}
		switch {
		case c == '"':
			if !ascii && plain && !utf8.ValidString(s[i+1:j]) {
				plain = false
			}
			return j + 1, plain
		case c == '\\':
			plain = false
			if j+1 >= len(s) {
				return -1, false
			}
			switch s[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(s) || !isHex4(s[j+2:j+6]) {
					return -1, false
				}
				j += 6
			default:
				return -1, false
			}
		case c < ' ':
			return -1, false
		default:
			if c >= utf8.RuneSelf {
				ascii, high = false, 0
			}
			j++
		}
	}
	return -1, false
}

// Words of eight bytes, for scanning eight bytes at a time.
const (
	lowBits  = 0x0101010101010101 // 0x01 in every byte
	highBits = 0x8080808080808080 // 0x80 in every byte
)

// load64 returns the eight bytes of s at i (little-endian: s[i] lowest).
func load64(s string, i int) uint64 {
	b := s[i : i+8]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// stops returns 0 if none of the eight bytes of x is a quote, a backslash
// or a control character; else its lowest set bit is the high bit of the
// first such byte (the bits above it may be set for other bytes too: a
// byte's borrow carries into the next, so only the lowest bit counts).
func stops(x uint64) uint64 {
	q := x ^ lowBits*'"'
	b := x ^ lowBits*'\\'
	return ((q-lowBits)&^q | (b-lowBits)&^b | (x-lowBits*' ')&^x) & highBits
}

// StringStops is stops for the other scanner of JSON text, the root
// package's query page scan: one definition of the bytes that end a run
// of plain string bytes.
func StringStops(x uint64) uint64 { return stops(x) }

// special marks the bytes scanString looks at: the quote, the backslash,
// control characters and the bytes of non-ASCII UTF-8 sequences.
var special = func() (t [256]bool) {
	for c := range t {
		t[c] = c == '"' || c == '\\' || c < ' ' || c >= utf8.RuneSelf
	}
	return t
}()

func isHex4(s string) bool {
	for i := 0; i < 4; i++ {
		if unhex(s[i]) < 0 {
			return false
		}
	}
	return true
}

func unhex(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// getu4 decodes \uXXXX from the beginning of s, returning the hex value,
// or -1.
func getu4(s string) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for i := 2; i < 6; i++ {
		h := unhex(s[i])
		if h < 0 {
			return -1
		}
		r = r<<4 | h
	}
	return r
}

// unquoteCopy is unquote, in memory of its own (not part of q's).
func unquoteCopy(q string) string {
	s, copied := unquoteString(q)
	if !copied {
		s = strings.Clone(s)
	}
	return s
}

// unquote returns the contents of q, a well-formed JSON string with its
// quotes, as encoding/json decodes it: escapes resolved, invalid UTF-8
// bytes and unpaired surrogates replaced by U+FFFD. The result may be part
// of q.
func unquote(q string) string {
	s, _ := unquoteString(q)
	return s
}

// unquoteString is unquote; copied reports that the result is not part of q.
func unquoteString(q string) (_ string, copied bool) {
	s := q[1 : len(q)-1]
	r := 0
	for r+8 <= len(s) { // eight bytes at a time to a backslash or non-ASCII
		x := load64(s, r)
		b := x ^ lowBits*'\\'
		if m := ((b-lowBits)&^b | x) & highBits; m != 0 {
			r += bits.TrailingZeros64(m) >> 3
			break
		}
		r += 8
	}
	for r < len(s) {
		c := s[r]
		if c == '\\' {
			break
		}
		if c < utf8.RuneSelf {
			r++
			continue
		}
		rr, size := utf8.DecodeRuneInString(s[r:])
		if rr == utf8.RuneError && size == 1 {
			break
		}
		r += size
	}
	if r == len(s) {
		return s, false
	}
	b := make([]byte, 0, len(s)+utf8.UTFMax)
	b = append(b, s[:r]...)
	for r < len(s) {
		switch c := s[r]; {
		case c == '\\':
			r++
			switch s[r] {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(s[r-1:])
				r += 5
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(s[r:])); dec != utf8.RuneError {
						r += 6
						b = utf8.AppendRune(b, dec)
						continue
					}
					rr = utf8.RuneError
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // '"', '\\', '/'
				b = append(b, s[r])
			}
			r++
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRuneInString(s[r:])
			r += size
			b = utf8.AppendRune(b, rr)
		}
	}
	return string(b), true
}
