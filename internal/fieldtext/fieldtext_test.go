package fieldtext

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestFloat(t *testing.T) {
	tests := map[float64]string{0: "0", 2.5: "2.5", 1500000: "1500000", 1e21: "1e+21", 1e-7: "1e-07", -3: "-3",
		math.Inf(-1): "-Inf", math.Inf(1): "+Inf", math.NaN(): "NaN"}
	for in, want := range tests {
		if got := Float(in); got != want {
			t.Errorf("Float(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestValue(t *testing.T) {
	t0 := time.Date(2025, 11, 25, 10, 0, 0, 5, time.FixedZone("X", 3600))
	for _, tc := range []struct {
		in   any
		want string
	}{
		{nil, "null"}, {"a <b>", "a <b>"}, {true, "true"}, {int64(-7), "-7"}, {int32(7), "7"}, {3, "3"},
		{uint64(math.MaxUint64), "18446744073709551615"}, {1.5e6, "1500000"}, {float32(0.5), "0.5"},
		{t0, "2025-11-25T09:00:00.000000005Z"}, {[]byte{0, 1, 2}, "AAEC"}, {json.Number("1e400"), "1e400"},
		{map[string]any{"a": []any{math.NaN(), "<x>"}}, `{"a":["NaN","<x>"]}`},
		{[]any{t0, math.Inf(1)}, `["2025-11-25T09:00:00.000000005Z","+Inf"]`},
		{func() {}, "0x"}, // not JSON: fmt's form (a func's address)
	} {
		got := Value(tc.in)
		if tc.want == "0x" {
			if len(got) < 2 || got[:2] != "0x" {
				t.Errorf("Value(func) = %q, want fmt's address", got)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("Value(%#v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestJSONSafeLeavesInputAlone(t *testing.T) {
	in := map[string]any{"f": math.NaN(), "l": []any{math.Inf(-1)}}
	out := JSONSafe(in).(map[string]any)
	if out["f"] != "NaN" || out["l"].([]any)[0] != "-Inf" {
		t.Errorf("JSONSafe = %v", out)
	}
	if f, ok := in["f"].(float64); !ok || !math.IsNaN(f) {
		t.Error("JSONSafe modified its input")
	}
}

func TestLevel(t *testing.T) {
	for _, tc := range []struct {
		name string
		sev  int
		want string
	}{
		{"info", 0, "INFO"}, {"Notice", 2, "NOTICE"}, {"", -4, "DEBUG"}, {"", 0, "INFO"}, {"", 4, "WARN"},
		{"", 8, "ERROR"}, {"", 12, "DPANIC"}, {"", 16, "PANIC"}, {"", 20, "FATAL"}, {"", 2, "SEV2"}, {"", -9, "SEV-9"},
	} {
		if got := Level(tc.name, tc.sev); got != tc.want {
			t.Errorf("Level(%q, %d) = %q, want %q", tc.name, tc.sev, got, tc.want)
		}
	}
}
