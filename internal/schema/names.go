package schema

import (
	"strconv"
	"unicode/utf8"
)

// Property names.
//
// Table property names must be C# identifiers (a letter or '_', then
// letters, digits and '_') of at most 255 characters, and may not be
// PartitionKey, RowKey, Timestamp or one of our system columns. Field keys
// are anything at all, and sit inside groups (slog groups, zap namespaces).
// EncodeName maps a path (groups..., key) to a property name, injectively,
// keeping ordinary keys such as "user_id" or "status" as they are:
//
//   - ASCII letters and digits stand for themselves.
//   - Path segments are joined by "__".
//   - Any other character c is written "_x<HEX>_", HEX its code point in
//     upper-case hexadecimal ("http.method" → "http_x2E_method"). A byte that
//     is not valid UTF-8 is written as the code point U+DC00+byte, which no
//     valid string can hold, so even invalid keys round-trip.
//   - '_' stands for itself, except where the next character written is
//     '_', 'x', 'y' or 'z'; there it is written "_x5F_".
//   - An empty segment is "_x_".
//   - A leading digit is escaped ("1st" → "_x31_st"), and so is the first
//     character of a name that equals a reserved name case-insensitively:
//     the system columns ("Msg" → "_x4D_sg") and the words of the filter
//     grammar ("eq", "and", "null", …), which a filter could not name.
//   - A name longer than 247 characters is cut and ends in "_y" and 16
//     hex digits of its FNV-1a hash; the entity's Names column maps it to
//     the original path. (8 characters stay free for a chunk suffix.)
//   - A value too long for one column continues in columns "<name>_z1",
//     "<name>_z2", … (see Encoder).
//
// Reading back, DecodeName reverses all of it.

const hexDigits = "0123456789ABCDEF"

// EncodeName returns the property name of the field at path (groups..., key).
// It is deterministic and injective: distinct paths never share a name
// (except that shortened names, over 255 characters, are told apart by a
// 64-bit hash). It is safe for concurrent use.
func EncodeName(path ...string) string {
	name := appendName(nil, path, false)
	if len(name) > maxColumnName {
		name = shortenName(name, chunkSuffixRoom)
	}
	return string(name)
}

// chunkSuffixRoom is what a name leaves free for a chunk suffix ("_z63");
// names longer than maxColumnName are shortened.
const (
	chunkSuffixRoom = 8
	maxColumnName   = MaxPropertyNameLen - chunkSuffixRoom
)

// appendName appends the encoded name of path to dst. follow reports
// whether a suffix starting with '_' will be appended (a chunk suffix), so
// that a trailing literal '_' is escaped. Names are not shortened here.
func appendName(dst []byte, path []string, follow bool) []byte {
	start := len(dst)
	for i, seg := range path {
		last := i == len(path)-1
		if i > 0 {
			dst = append(dst, '_', '_')
		}
		dst = appendSegment(dst, seg, len(dst) == start, !last || follow)
	}
	if len(path) == 1 {
		dst = escapeReserved(dst, start)
	}
	return dst
}

// escapeReserved escapes the first character of dst[start:] when it is a
// reserved name (always ASCII letters), so that "Msg" becomes "_x4D_sg".
func escapeReserved(dst []byte, start int) []byte {
	if !isReserved(dst[start:]) {
		return dst
	}
	rest := string(dst[start+1:])
	dst = appendEscape(dst[:start], rune(dst[start]))
	return append(dst, rest...)
}

// escapeLiteral replaces the literal '_' ending dst with "_x5F_".
func escapeLiteral(dst []byte) []byte {
	return append(dst[:len(dst)-1], "_x5F_"...)
}

func needsEscapeBefore(c byte) bool {
	return c == '_' || c == 'x' || c == 'y' || c == 'z'
}

// isEscapeTerminator reports whether the trailing '_' of name closes an
// escape sequence "_x<HEX>_" rather than being a literal underscore. It scans
// the name from the left, the way DecodeName does.
func isEscapeTerminator(name []byte) bool {
	last := -1 // index of the last escape terminator
	for i := 0; i < len(name); {
		if name[i] != '_' {
			i++
			continue
		}
		if i+1 < len(name) && name[i+1] == '_' {
			i += 2
			continue
		}
		if i+1 < len(name) && name[i+1] == 'x' {
			j := i + 2
			for j < len(name) && name[j] != '_' {
				j++
			}
			if j < len(name) {
				last = j
				i = j + 1
				continue
			}
		}
		i++
	}
	return last == len(name)-1
}

// appendSegment appends one escaped path segment. first reports whether it
// begins the property name (so a digit must be escaped); follow, whether
// what comes after it starts with '_' (a separator or a suffix). It runs in
// time linear in len(seg).
func appendSegment(dst []byte, seg string, first, follow bool) []byte {
	if seg == "" {
		return append(dst, "_x_"...)
	}
	lit := false // the last byte written is a literal '_'
	for i := 0; i < len(seg); {
		c := seg[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && !(first && i == 0):
			if lit && needsEscapeBefore(c) {
				dst = escapeLiteral(dst)
			}
			dst = append(dst, c)
			lit = false
			i++
		case c == '_':
			if lit {
				dst = escapeLiteral(dst)
			}
			dst = append(dst, '_')
			lit = true
			i++
		default:
			r, size := utf8.DecodeRuneInString(seg[i:])
			if r == utf8.RuneError && size <= 1 {
				r = 0xDC00 + rune(c)
				size = 1
			}
			if lit {
				dst = escapeLiteral(dst)
			}
			dst = appendEscape(dst, r)
			lit = false
			i += size
		}
	}
	if lit && follow {
		dst = escapeLiteral(dst)
	}
	return dst
}

func appendEscape(dst []byte, r rune) []byte {
	dst = append(dst, '_', 'x')
	dst = strconv.AppendUint(dst, uint64(r), 16)
	// strconv writes lower case; the scheme uses upper case.
	for i := len(dst) - 1; i >= 0 && dst[i] != 'x'; i-- {
		if dst[i] >= 'a' && dst[i] <= 'f' {
			dst[i] -= 'a' - 'A'
		}
	}
	return append(dst, '_')
}

func isReserved(name []byte) bool {
	if len(name) >= len(reservedByLen) {
		return false
	}
	for _, r := range reservedByLen[len(name)] {
		if equalFoldASCII(name, r) {
			return true
		}
	}
	return false
}

// reservedByLen indexes the reserved names by length (all are shorter than 16).
var reservedByLen = func() (t [16][]string) {
	for _, r := range reserved {
		t[len(r)] = append(t[len(r)], r)
	}
	return t
}()

func equalFoldASCII(b []byte, lower string) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// IsSystemColumn reports whether name is PartitionKey, RowKey, Timestamp or
// one of the system columns (case-insensitively).
func IsSystemColumn(name string) bool { return isReserved([]byte(name)) }

// shortenName cuts an encoded name over MaxPropertyNameLen - reserve
// characters and appends "_y" and the FNV-1a hash of the full name. reserve
// leaves room for a chunk suffix.
func shortenName(name []byte, reserve int) []byte {
	limit := MaxPropertyNameLen - reserve
	if len(name) <= limit {
		return name
	}
	h := fnv64(name)
	cut := limit - 18
	// Do not cut inside an escape: back up to before an unterminated "_x".
	for i := cut - 1; i >= 0 && i >= cut-10; i-- {
		if name[i] == '_' && i+1 < len(name) && name[i+1] == 'x' {
			j := i + 2
			for j < len(name) && name[j] != '_' {
				j++
			}
			if j >= cut {
				cut = i
			}
			break
		}
	}
	out := append([]byte(nil), name[:cut]...)
	// A literal '_' before "_y" would read as "__": drop it (the hash keeps
	// the name unique; shortened names are mapped through Names anyway).
	for len(out) > 0 && out[len(out)-1] == '_' && !isEscapeTerminator(out) {
		out = out[:len(out)-1]
	}
	out = append(out, '_', 'y')
	for s := 60; s >= 0; s -= 4 {
		out = append(out, hexDigits[(h>>uint(s))&0xF])
	}
	return out
}

// fnv64 is the FNV-1a hash of b.
func fnv64(b []byte) uint64 { return fnv64From(fnvOffset, b) }

const fnvOffset = 14695981039346656037

// fnv64From continues an FNV-1a hash h over b: fnv64(x+y) is
// fnv64From(fnv64(x), y).
func fnv64From(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// DecodeName reverses EncodeName. chunk is the continuation index of a
// "_z<n>" column (0 for the column itself). ok is false for a name that is
// not in the scheme, or that was shortened (over 255 characters): the
// original path of a shortened name is in the entity's Names column.
func DecodeName(prop string) (path []string, ok bool) {
	path, chunk, ok := decodeName(prop)
	if chunk != 0 {
		return nil, false
	}
	return path, ok
}

// decodeName parses a property name into its path and chunk index.
func decodeName(prop string) (path []string, chunk int, ok bool) {
	var cur []byte
	for i := 0; i < len(prop); {
		c := prop[i]
		if c != '_' {
			cur = append(cur, c)
			i++
			continue
		}
		if i+1 >= len(prop) {
			cur = append(cur, '_')
			i++
			continue
		}
		switch prop[i+1] {
		case '_':
			path = append(path, string(cur))
			cur = cur[:0]
			i += 2
		case 'x':
			j := i + 2
			for j < len(prop) && prop[j] != '_' {
				j++
			}
			if j >= len(prop) || j-(i+2) > 8 {
				return nil, 0, false
			}
			if j == i+2 {
				i = j + 1 // empty segment marker
				continue
			}
			v, err := strconv.ParseUint(prop[i+2:j], 16, 32)
			if err != nil {
				return nil, 0, false
			}
			if v >= 0xDC00 && v <= 0xDCFF {
				cur = append(cur, byte(v-0xDC00))
			} else {
				cur = utf8.AppendRune(cur, rune(v))
			}
			i = j + 1
		case 'y':
			return nil, 0, false
		case 'z':
			n, err := strconv.Atoi(prop[i+2:])
			if err != nil || n <= 0 {
				return nil, 0, false
			}
			chunk = n
			i = len(prop)
		default:
			cur = append(cur, '_')
			i++
		}
	}
	path = append(path, string(cur))
	return path, chunk, true
}

// splitChunk returns the base property name of a continuation column
// "<name>_z<n>" and n, or (prop, 0) for any other name.
func splitChunk(prop string) (base string, n int) {
	i := len(prop)
	for i > 0 && prop[i-1] >= '0' && prop[i-1] <= '9' {
		i--
	}
	if i == len(prop) || i < 2 || prop[i-1] != 'z' || prop[i-2] != '_' {
		return prop, 0
	}
	base = prop[:i-2]
	// The "_z" must be a token start: the '_' is not a literal escaped
	// underscore's terminator nor the second '_' of a separator.
	if _, chunk, ok := decodeName(prop); !ok || chunk == 0 {
		return prop, 0
	}
	n, _ = strconv.Atoi(prop[i:])
	return base, n
}
