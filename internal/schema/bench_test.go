package schema

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// benchRecord encodes the sink benchmark's record: a message and ten
// fields (int, three strings, duration, int64, bool, float64, time, error),
// inside the given groups.
func benchRecord(e *Encoder, rowKey string, now time.Time, err error, groups ...string) []byte {
	e.Reset("checkout_20261125", rowKey)
	e.SetTime(now)
	e.SetLevel("info", SeverityInfo)
	e.SetMessage("request served")
	for _, g := range groups {
		e.OpenGroup(g)
	}
	e.Int64("status", 200)
	e.String("method", "POST")
	e.String("path", "/api/v1/orders")
	e.String("user_id", "u-1042")
	e.Duration("took", 12*time.Millisecond)
	e.Int64("bytes", 5120)
	e.Bool("cached", false)
	e.Float64("ratio", 0.75)
	e.Time("started", now)
	e.String("error", err.Error())
	return e.Finish()
}

// BenchmarkEncoder encodes benchRecord's record, with its keys (as
// BenchmarkEncoderGrouped, with its fields in a group, as slog's WithGroup
// does).
func BenchmarkEncoder(b *testing.B) { benchEncoder(b) }

func BenchmarkEncoderGrouped(b *testing.B) { benchEncoder(b, "req") }

func benchEncoder(b *testing.B, groups ...string) {
	var e Encoder
	g := NewGenerator(nil)
	now := time.Now()
	err := errors.New("connection reset by peer")
	var rk [RowKeyLen]byte
	b.ReportAllocs()
	for b.Loop() {
		benchRecord(&e, string(AppendRowKey(rk[:0], g.New(now))), now, err, groups...)
	}
}

func BenchmarkGenerator(b *testing.B) {
	g := NewGenerator(nil)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_ = g.New(now)
	}
}

// benchEntity returns BenchmarkEncoder's record as the aztables SDK hands it
// to Decode after a list query: the service drops the Edm.Double annotations
// (an integral double comes back as a bare integer) and adds Timestamp
// (unannotated in minimal metadata) and odata.etag; the SDK unmarshals each
// entity into a map[string]any and marshals it again, so keys are sorted,
// numbers pass through float64 and strings are HTML-escaped.
func benchEntity(tb testing.TB) []byte {
	tb.Helper()
	var e Encoder
	now := time.Date(2026, 11, 25, 12, 0, 0, 123456700, time.UTC)
	entity := benchRecord(&e, RowKey(NewGenerator(nil).New(now)), now, errors.New("connection reset by peer"))
	var m map[string]any
	if err := json.Unmarshal(entity, &m); err != nil {
		tb.Fatal(err)
	}
	for k, v := range m {
		if strings.HasSuffix(k, "@odata.type") && v == "Edm.Double" {
			delete(m, k)
		}
	}
	m["Timestamp"] = "2026-11-25T12:00:00.2345678Z"
	m["odata.etag"] = `W/"datetime'2026-11-25T12%3A00%3A00.2345678Z'"`
	raw, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// BenchmarkDecode decodes BenchmarkEncoder's record in the form the query
// package reads it (see benchEntity).
func BenchmarkDecode(b *testing.B) {
	raw := benchEntity(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// azuriteEntity is an entity of the query package's BenchmarkLogsRead as
// tablelog.Client hands it to Decode: Azurite's minimal-metadata JSON, as
// sent (members in the order written, Int64 values as strings, no
// re-encoding).
const azuriteEntity = `{"odata.etag":"W/\"datetime'2026-12-06T20%3A19%3A40.9622165Z'\"","PartitionKey":"bench-read_20261206","RowKey":"7YBPSK7JTXTVR9AZR4N8A4ZVFG","Time@odata.type":"Edm.DateTime","Time":"2026-12-06T19:19:40.9621058Z","Level":"info","Severity":0,"Msg":"request handled","user_id":"u-345","path":"/api/v1/orders","status@odata.type":"Edm.Int64","status":"200","elapsed@odata.type":"Edm.Int64","elapsed":"12345000","cached":true,"Timestamp":"2026-12-06T20:19:40.9622165Z"}`

// BenchmarkDecodeAzurite decodes azuriteEntity.
func BenchmarkDecodeAzurite(b *testing.B) {
	raw := []byte(azuriteEntity)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}
