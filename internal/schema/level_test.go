package schema

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseLevel(t *testing.T) {
	for s, want := range map[string]int{
		"debug": SeverityDebug, "INFO": SeverityInfo, "warn": SeverityWarn, "Warning": SeverityWarn,
		"error": SeverityError, "err": SeverityError, "dpanic": SeverityDPanic, "DPanic": SeverityDPanic,
		"panic": SeverityPanic, "FATAL": SeverityFatal, "info+2": 2, "ERROR-1": 7, "debug-3": -7,
		"-4": -4, "13": 13, "2147483647": 2147483647,
	} {
		if got, err := ParseLevel(s); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", " info", "loud", "info+", "info+x", "+", "99999999999", "2147483648",
		"info+99999999999", "dpanic+1", "trace", "ERROR 1", "inf"} {
		_, err := ParseLevel(s)
		if err == nil {
			t.Errorf("ParseLevel(%q) accepted", s)
			continue
		}
		// A clear error: the input quoted, and the vocabulary.
		if msg := err.Error(); !strings.HasPrefix(msg, strconv.Quote(s)+" is not a level: use debug, info") || !strings.Contains(msg, "fatal") {
			t.Errorf("ParseLevel(%q): %v", s, err)
		}
	}
}
