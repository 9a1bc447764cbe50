package schema

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// scanStringBytewise is scanString one byte at a time (as it was before it
// learnt to skip eight bytes at a time).
func scanStringBytewise(s string, i int) (end int, plain bool) {
	plain = true
	ascii := true
	for j := i + 1; j < len(s); {
		c := s[j]
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
				ascii = false
			}
			j++
		}
	}
	return -1, false
}

// scanString and unquote, which skip eight bytes at a time, find every
// byte that matters at every place in a word: the quote, escapes, control
// characters, non-ASCII (valid or not), next to each other or alone.
func TestScanStringEveryPosition(t *testing.T) {
	specials := []string{`"`, `\"`, `\\`, `\n`, `\u00e9`, `\x`, "\x00", "\x1f", " ", "\x7f", "é", "\xff", "\xc3", "€", `\ud83d\ude00`, "~"}
	for n := 0; n <= 20; n++ {
		for p := 0; p <= n; p++ {
			for _, sp := range specials {
				for _, sp2 := range []string{"", `"`, "é", `\t`, "\x01"} {
					body := strings.Repeat("a", p) + sp + strings.Repeat("b", n-p) + sp2
					for _, tail := range []string{`"`, `"` + strings.Repeat("c", 9), ""} {
						s := `x"` + body + tail
						end, plain := scanString(s, 1)
						wantEnd, wantPlain := scanStringBytewise(s, 1)
						if end != wantEnd || plain != wantPlain {
							t.Fatalf("scanString(%q) = %d, %v; want %d, %v", s, end, plain, wantEnd, wantPlain)
						}
						if end < 0 {
							continue
						}
						q := s[1:end]
						var want string
						if err := json.Unmarshal([]byte(q), &want); err != nil {
							t.Fatalf("%q: scanned as a string, but encoding/json: %v", q, err)
						}
						if got := unquote(q); got != want {
							t.Fatalf("unquote(%q) = %q, want %q", q, got, want)
						}
					}
				}
			}
		}
	}
}
