// Package fieldtext is the text a person reads for the parts of a stored log
// record: a field's value, a float, a level's label, and values made safe
// for encoding/json. The CLI (cmd/tablelog) and the web view (internal/web)
// both show records through it, so a value reads the same in a terminal
// and in a browser. It escapes nothing for a terminal or for HTML: each
// caller does that for its medium.
//
// Every function is pure and safe for concurrent use.
package fieldtext

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tablelog/tablelog/internal/schema"
)

// Value is the text of a field value as query decodes it: strings as they
// are, null for nil, integers and booleans in Go's form, floats as Float,
// times in RFC 3339 (UTC), bytes in base64, json.Number as written, arrays
// and objects as JSON (see JSONSafe and Marshal).
func Value(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case int:
		return strconv.Itoa(v)
	case uint64:
		return strconv.FormatUint(v, 10)
	case float64:
		return Float(v)
	case float32:
		return Float(float64(v))
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case []byte:
		return base64.StdEncoding.EncodeToString(v)
	case json.Number:
		return v.String()
	}
	js, err := Marshal(JSONSafe(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(js)
}

// Float writes a float as JSON does (no exponent for magnitudes from 1e-6
// to 1e21); NaN and the infinities as NaN, +Inf and -Inf.
func Float(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.FormatFloat(f, 'e', -1, 64)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// JSONSafe returns v with what encoding/json cannot encode (NaN and the
// infinities) replaced by their text (Float) and times by their UTC RFC
// 3339 text, recursively through maps and slices. v is not modified.
func JSONSafe(v any) any {
	switch v := v.(type) {
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Float(v)
		}
		return v
	case float32:
		return JSONSafe(float64(v))
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = JSONSafe(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = JSONSafe(x)
		}
		return out
	}
	return v
}

// Marshal is json.Marshal without HTML escaping ('<' stays '<': the
// caller escapes for its medium) and without a trailing newline. Its
// errors are encoding/json's.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Level is the upper-case label of a level: name as stored, or, when the
// writer left the name out, the name of the severity on slog's scale
// (DEBUG .. FATAL), or SEV and the number for a severity between them.
func Level(name string, severity int) string {
	if name != "" {
		return strings.ToUpper(name)
	}
	switch severity {
	case schema.SeverityDebug:
		return "DEBUG"
	case schema.SeverityInfo:
		return "INFO"
	case schema.SeverityWarn:
		return "WARN"
	case schema.SeverityError:
		return "ERROR"
	case schema.SeverityDPanic:
		return "DPANIC"
	case schema.SeverityPanic:
		return "PANIC"
	case schema.SeverityFatal:
		return "FATAL"
	}
	return "SEV" + strconv.Itoa(severity)
}
