package web

import (
	"fmt"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/tablelog/tablelog/query"
)

// BenchmarkRenderLogs measures the server's own work for a first page of
// 100 records (rows, histogram, template), without the table service.
func BenchmarkRenderLogs(b *testing.B) {
	s, err := New(testOptions())
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	recs := make([]query.Record, 100)
	for i := range recs {
		recs[i] = query.Record{Time: t0.Add(-time.Duration(i) * time.Second), Level: "info", Severity: 0, Message: "request handled", Logger: "http",
			Service: "bench", ID: ulid.Make(), Fields: map[string]any{"user_id": fmt.Sprintf("u-%d", i), "path": "/api/v1/orders", "status": int64(200), "elapsed": int64(i * 1000), "cached": i%3 == 0}}
	}
	b.ReportAllocs()
	for b.Loop() {
		p := logsPage{page: s.newPage("Logs", "logs", "logs"), F: logForm{Service: "bench"}, Levels: levelChoices, PageSize: 100, Services: []string{"bench"}}
		p.Rows = make([]recordRow, len(recs))
		for i := range recs {
			p.Rows[i] = s.row(&recs[i])
		}
		p.Hist = buildHistogram(p.Rows)
		w := httptest.NewRecorder()
		s.render(w, httptest.NewRequest("GET", "/logs", nil), 200, "logs", &p)
		_, _ = io.Copy(io.Discard, w.Body)
	}
}
