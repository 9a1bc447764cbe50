package schema

import (
	"errors"
	"math"
	"unicode/utf16"
	"unicode/utf8"
)

// appendJSONString appends s as a JSON string of at most maxUnits UTF-16
// code units of content, never splitting a character. It returns the units
// written, the bytes of s consumed, and whether invalid UTF-8 was replaced.
func appendJSONString(dst []byte, s string, maxUnits int) ([]byte, int, int, bool) {
	dst = append(dst, '"')
	units, bad := 0, false
	i, run := 0, 0
	// Fast path: a run of plain ASCII that fits entirely.
	if len(s) <= maxUnits {
		for i < len(s) && jsonSafe[s[i]] {
			i++
		}
		units = i
	}
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if units >= maxUnits {
				break
			}
			if jsonSafe[c] {
				i++
				units++
				continue
			}
			dst = append(dst, s[run:i]...)
			switch c {
			case '"':
				dst = append(dst, '\\', '"')
			case '\\':
				dst = append(dst, '\\', '\\')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			units++
			run = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		n := 1
		if r >= 0x10000 {
			n = 2
		}
		if units+n > maxUnits {
			break
		}
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[run:i]...)
			dst = append(dst, `\ufffd`...)
			bad = true
			i++
			units++
			run = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			// Escaped as encoding/json does: JavaScript reads them as line
			// breaks, and the emulator's $batch parser answers 500 to them.
			dst = append(dst, s[run:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			units++
			run = i
			continue
		}
		i += size
		units += n
	}
	dst = append(dst, s[run:i]...)
	return append(dst, '"'), units, i, bad
}

// jsonSafe marks the ASCII bytes a JSON string holds unescaped.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// utf16Len returns the UTF-16 length of s (invalid bytes count one each).
func utf16Len(s string) int {
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			n++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n += utf16.RuneLen(r)
		if r == utf8.RuneError && size == 1 {
			n = n - utf16.RuneLen(r) + 1
		}
	}
	return n
}

var errNotEntity = errors.New("tablelog: not an entity")

// AppendJSONString appends s to dst as a JSON string, escaping what JSON
// requires and replacing invalid UTF-8 with U+FFFD. It is the one JSON
// string writer of the module: the sink's JSON for zap arrays and objects
// uses it too.
func AppendJSONString(dst []byte, s string) []byte {
	dst, _, _, _ = appendJSONString(dst, s, math.MaxInt)
	return dst
}
