package schema

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"

	"go.uber.org/zap/zapcore"
)

// ParseLevel parses a level as the CLI and the web view accept it (--level,
// level=... in --where, the level field of the log page) into a severity on
// slog's scale (SeverityDebug .. SeverityFatal). The vocabulary:
//
//   - slog's names, any case, with an optional offset as slog prints custom
//     levels: "debug", "INFO", "warn", "error", "info+2", "ERROR-1"
//     (slog.Level.UnmarshalText);
//   - zap's names, any case: "dpanic", "panic", "fatal" (zapcore.ParseLevel;
//     zap's level n is severity 4n, as the sink stores it);
//   - tablelog's aliases "warning" (warn) and "err" (error);
//   - an integer in Edm.Int32's range: the severity itself ("-4", "13").
//
// Anything else, "" included, is an error that names the input and lists
// the vocabulary.
func ParseLevel(s string) (int, error) {
	if n, err := strconv.ParseInt(s, 10, 32); err == nil {
		return int(n), nil
	}
	switch strings.ToLower(s) {
	case "warning":
		return SeverityWarn, nil
	case "err":
		return SeverityError, nil
	case "":
		// zapcore.ParseLevel takes "" for info; a level must be named.
		return 0, levelError(s)
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err == nil {
		if int64(l) < math.MinInt32 || int64(l) > math.MaxInt32 {
			return 0, levelError(s)
		}
		return int(l), nil
	}
	if zl, err := zapcore.ParseLevel(s); err == nil {
		return 4 * int(zl), nil
	}
	return 0, levelError(s)
}

func levelError(s string) error {
	return fmt.Errorf("%q is not a level: use debug, info, warn, error (with an optional offset: info+2), dpanic, panic, fatal, or a number on slog's scale (info 0, warn 4)", s)
}
