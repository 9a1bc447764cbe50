package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/tablelog/tablelog/query"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it)\n--- got:\n%s\n--- want:\n%s", name, got, want)
	}
}

// fixedRecords are records exercising every value type and hostile text.
func fixedRecords() []query.Record {
	t0 := time.Date(2025, 11, 25, 10, 0, 0, 123456789, time.UTC)
	id := func(n byte) ulid.ULID {
		var u ulid.ULID
		_ = u.SetTime(ulid.Timestamp(t0))
		u[15] = n
		return u
	}
	return []query.Record{
		{
			Time: t0, Level: "info", Severity: 0, Message: "payment accepted", Service: "checkout", ID: id(1),
			Fields: map[string]any{"user_id": "u-1", "amount": int64(120), "ok": true, "ratio": 0.25},
		},
		{
			Time: t0.Add(time.Second), Level: "warn", Severity: 4, Message: "slow request", Service: "checkout", ID: id(2),
			Logger: "http.server", Caller: "server.go:42",
			Fields: map[string]any{
				"req":            map[string]any{"method": "POST", "path": "/pay", "headers": map[string]any{"ua": "curl/8"}},
				"duration":       2.5,
				"tags":           []any{"a", "b", float64(3)},
				"at":             time.Date(2025, 11, 25, 9, 59, 0, 0, time.UTC),
				"raw":            []byte{0xde, 0xad, 0xbe, 0xef},
				"empty":          "",
				"big":            int64(math.MaxInt64),
				"huge":           1e300,
				"nan":            math.NaN(),
				"key with space": "v w",
			},
		},
		{
			Time: t0.Add(2 * time.Second), Level: "error", Severity: 8, Service: "billing", ID: id(3),
			Message:   "charge failed:\x1b[2J\x1b]0;pwned\x07 \u202egnp.exe\nnext line",
			Caller:    "pay.go:7",
			Stack:     "main.charge\n\t/src/pay.go:7\nmain.main\n\t/src/main.go:3\x1b[31m",
			Fields:    map[string]any{"err": "card \"declined\"\n", "ctrl\x1bkey": "x"},
			Truncated: 2,
		},
		{
			Time: t0.Add(3 * time.Second), Level: "debug", Severity: -4, Message: "", Service: "billing", ID: id(4),
		},
		{
			Time: t0.Add(4 * time.Second), Level: "info+2", Severity: 2, Message: "custom level", Service: "billing", ID: id(5),
			Fields: map[string]any{"group": map[string]any{}},
		},
		{
			Time: t0.Add(5 * time.Second), Level: "fatal", Severity: 20, Message: "bye", Service: "checkout", ID: id(6),
		},
	}
}

func render(t *testing.T, f *formatter) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, rec := range fixedRecords() {
		if err := f.write(&b, &rec); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func TestFormatGolden(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	for _, tt := range []struct {
		name   string
		format string
		color  bool
		loc    *time.Location
	}{
		{"text_utc.golden", formatText, false, time.UTC},
		{"text_cet.golden", formatText, false, cet},
		{"text_color.golden", formatText, true, time.UTC},
		{"json.golden", formatJSON, false, cet},
		{"json_color.golden", formatJSON, true, cet}, // colour never applies to json
		{"logfmt.golden", formatLogfmt, false, cet},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := newFormatter(tt.format, tt.color, tt.loc)
			if err != nil {
				t.Fatal(err)
			}
			f.serviceWidth = len("checkout")
			out := render(t, f)
			if tt.name == "json_color.golden" {
				want, _ := os.ReadFile(filepath.Join("testdata", "json.golden"))
				if !bytes.Equal(out, want) {
					t.Error("colour changed json output")
				}
				return
			}
			golden(t, tt.name, out)
		})
	}
}

// TestFormatNoControlChars: without colour, no output format lets a
// record's control characters through.
func TestFormatNoControlChars(t *testing.T) {
	for _, format := range []string{formatText, formatJSON, formatLogfmt} {
		f, _ := newFormatter(format, false, time.UTC)
		out := render(t, f)
		for i, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
			for _, r := range line {
				if r < 0x20 && r != '\t' || r == 0x7f || r >= 0x80 && r < 0xa0 || isBidi(r) {
					t.Errorf("%s line %d has control character %U: %q", format, i, r, line)
				}
			}
		}
	}
}

func TestFormatJSONParses(t *testing.T) {
	f, _ := newFormatter(formatJSON, false, time.UTC)
	out := render(t, f)
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(fixedRecords()) {
		t.Fatalf("%d lines for %d records", len(lines), len(fixedRecords()))
	}
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		for _, k := range []string{"time", "level", "severity", "service", "msg", "id"} {
			if _, ok := m[k]; !ok {
				t.Errorf("no %q in %s", k, line)
			}
		}
	}
	var m struct {
		Fields struct {
			Req struct{ Method string }
			Nan string
		}
	}
	_ = json.Unmarshal([]byte(lines[1]), &m)
	if m.Fields.Req.Method != "POST" || m.Fields.Nan != "NaN" {
		t.Errorf("nested fields: %+v", m)
	}
}

func TestColorMode(t *testing.T) {
	tests := []struct {
		mode    string
		env     map[string]string
		term    bool
		want    bool
		wantErr bool
	}{
		{"auto", nil, true, true, false},
		{"auto", nil, false, false, false},
		{"auto", map[string]string{"NO_COLOR": "1"}, true, false, false},
		{"auto", map[string]string{"TERM": "dumb"}, true, false, false},
		{"", nil, true, true, false},
		{"always", map[string]string{"NO_COLOR": "1"}, false, true, false},
		{"never", nil, true, false, false},
		{"sometimes", nil, true, false, true},
	}
	for _, tt := range tests {
		a := newApp(nil, io.Discard, io.Discard, func(k string) string { return tt.env[k] })
		a.isTerminal = func(io.Writer) bool { return tt.term }
		got, err := a.colorMode(tt.mode)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("colorMode(%q, env %v, terminal %v) = %v, %v; want %v", tt.mode, tt.env, tt.term, got, err, tt.want)
		}
	}
}

func TestSanitize(t *testing.T) {
	tests := map[string]string{
		"plain":        "plain",
		"a\nb":         `a\nb`,
		"tab\tok":      "tab\tok",
		"\x1b[31mred":  `\x1b[31mred`,
		"bell\a":       `bell\a`,
		"\u202eevil":   `\u202eevil`,
		"bad\xffutf8":  `bad\xffutf8`,
		"c1\u0085x":    `c1\u0085x`,
		"unicode 名前 😀": "unicode 名前 😀",
	}
	for in, want := range tests {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}
