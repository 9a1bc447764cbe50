package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/internal/web"
	"github.com/tablelog/tablelog/query"
	"github.com/tablelog/tablelog/sink"
)

// The web benchmarks (make bench):
//
//	go test ./cmd/tablelog -run '^$' -bench BenchmarkWeb -benchtime 50x
//
// BenchmarkWebFirstPage: the logs view's first page of 100 records,
// served over HTTP and rendered (GET /logs?service=…, whole body read),
// vs query.Reader.Tail(100) of the same records, measured interleaved in
// one loop (target <= 1.3x); and the page weight: the HTML of that page
// plus its stylesheet, script and icon (target <= 150 KB uncompressed).
// The catalog reads behind the service and day pickers are cached for
// 15 s and happen concurrently with the records' query, so a page costs
// one request to the table service, as Tail does.
//
// BenchmarkWebLiveTail: the time from Flush returning (the record is
// stored) to the record showing in the live tail of a page in Chromium
// (a MutationObserver stamps the row), at the default poll of 500 ms
// (web.DefaultPoll); target <= 1 s.

// benchSink writes n records of service through the sink, ending about
// now, and flushes.
func benchSink(b *testing.B, tbl sink.Table, service string, n int) {
	b.Helper()
	sk, err := sink.New(tbl, sink.Options{Service: service, NoCreateTable: true, FlushInterval: 20 * time.Millisecond,
		ErrorHandler: func(err error) { b.Errorf("sink: %v", err) }})
	if err != nil {
		b.Fatal(err)
	}
	core := sk.Core(zapcore.DebugLevel)
	start := time.Now().Add(-time.Duration(n) * 10 * time.Millisecond)
	for i := range n {
		lvl := []zapcore.Level{zapcore.InfoLevel, zapcore.InfoLevel, zapcore.WarnLevel, zapcore.DebugLevel, zapcore.ErrorLevel}[i%5]
		ent := zapcore.Entry{Level: lvl, Time: start.Add(time.Duration(i) * 10 * time.Millisecond), LoggerName: "http", Message: "request handled"}
		if err := core.Write(ent, []zap.Field{zap.String("user_id", fmt.Sprintf("u-%d", i%1000)), zap.String("path", "/api/v1/orders"),
			zap.Int("status", 200), zap.Duration("elapsed", time.Duration(i)*time.Microsecond), zap.Bool("cached", i%3 == 0)}); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := sk.Close(ctx); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkWebFirstPage(b *testing.B) {
	env := azurite.Get(b)
	tbl := env.NewTable(b)
	benchSink(b, tbl, "bench", 5000)
	ws := startWeb(b, webEnv(b), append(tableArgs(tbl, nil), "--quiet")...)
	r := query.New(tbl)
	ctx := context.Background()
	client := &http.Client{}
	get := func(path string) string {
		resp, err := client.Get(ws.base + path)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		return string(body)
	}
	page := func() int { return countRows(get("/logs?service=bench")) }
	// The same handler called in process, without HTTP: how much of the
	// difference is the transport (and the scheduling of its goroutines).
	srv, err := web.New(web.Options{Logs: tbl, LogsTable: "logs", Syntax: web.Syntax{Where: parseWhere, AuditWhere: parseAuditWhere, Time: parseTimeArg, Level: schema.ParseLevel},
		Export: func(context.Context, io.Writer, query.Audit, string) error { return nil }})
	if err != nil {
		b.Fatal(err)
	}
	handler := func() int {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1/logs?service=bench", nil))
		return countRows(w.Body.String())
	}
	tail := func() int {
		recs, err := r.Tail(ctx, query.Logs{Service: "bench", MinLevel: query.AllLevels}, 100)
		if err != nil {
			b.Fatal(err)
		}
		return len(recs)
	}
	for range 3 { // warm up, and check
		if n, m, h := page(), tail(), handler(); n != 100 || m != 100 || h != 100 {
			b.Fatalf("page %d rows, tail %d records, handler %d rows", n, m, h)
		}
	}
	weight := len(get("/logs?service=bench"))
	for _, s := range []string{"/static/app.css", "/static/app.js", "/static/favicon.svg"} {
		weight += len(get(s))
	}
	var tPage, tTail time.Duration
	pages, tails, handlers := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		// Alternate which goes first, so neither always follows the
		// other's work in the emulator.
		var dp, dt time.Duration
		if i%2 == 0 {
			s := time.Now()
			page()
			dp = time.Since(s)
		}
		s := time.Now()
		tail()
		dt = time.Since(s)
		if i%2 == 1 {
			s := time.Now()
			page()
			dp = time.Since(s)
		}
		tPage += dp
		tTail += dt
		pages, tails = append(pages, dp), append(tails, dt)
		s = time.Now()
		handler()
		handlers = append(handlers, time.Since(s))
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(tPage.Nanoseconds())/n, "page-ns/op")
	b.ReportMetric(float64(tTail.Nanoseconds())/n, "tail-ns/op")
	b.ReportMetric(float64(tPage)/float64(tTail), "page/tail")
	b.ReportMetric(float64(weight), "page-bytes")
	// Medians resist the load spikes of a shared machine better than means.
	slices.Sort(pages)
	slices.Sort(tails)
	slices.Sort(handlers)
	mp, mt, mh := pages[len(pages)/2], tails[len(tails)/2], handlers[len(handlers)/2]
	b.ReportMetric(float64(mp)/float64(mt), "median-page/tail")
	b.ReportMetric(float64(mh)/float64(mt), "median-handler/tail")
	fmt.Printf("WebFirstPage: first page of 100 records %.2f ms = %.2fx Tail(100) (%.2f ms, target <= 1.3x); medians %.2f ms vs %.2f ms = %.2fx (the handler without HTTP: %.2f ms = %.2fx); page weight %.1f KB (HTML+CSS+JS+icon, target <= 150 KB)\n",
		float64(tPage.Microseconds())/n/1000, float64(tPage)/float64(tTail), float64(tTail.Microseconds())/n/1000,
		float64(mp.Microseconds())/1000, float64(mt.Microseconds())/1000, float64(mp)/float64(mt),
		float64(mh.Microseconds())/1000, float64(mh)/float64(mt), float64(weight)/1024)
}

func BenchmarkWebLiveTail(b *testing.B) {
	env := azurite.Get(b)
	tbl := env.NewTable(b)
	benchSink(b, tbl, "live", 10)
	ws := startWeb(b, webEnv(b), append(tableArgs(tbl, nil), "--quiet")...) // default --poll
	tb := newTab(b, newBrowser(b), ws)
	tb.open("/logs?service=live")
	// Stamp each row when it enters the table.
	tb.do(chromedp.Evaluate[chromedp.Void](`window.__shown = {}; new MutationObserver(ms => { for (const m of ms) for (const n of m.addedNodes) { const td = n.querySelector && n.querySelector("td.msg"); if (td) window.__shown[td.textContent] = Date.now(); } }).observe(document.getElementById("rows"), {childList: true})`))
	tb.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("live-toggle").click()`))
	tb.waitJS(`document.getElementById("live-status").textContent.startsWith("following")`)
	sk, err := sink.New(tbl, sink.Options{Service: "live", NoCreateTable: true, FlushInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer sk.Close(context.Background())
	core := sk.Core(zapcore.InfoLevel)
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		msg := fmt.Sprintf("latency probe %d", i)
		if err := core.Write(zapcore.Entry{Level: zapcore.InfoLevel, Time: time.Now(), Message: msg}, nil); err != nil {
			b.Fatal(err)
		}
		if err := sk.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		flushed := time.Now()
		tb.waitJS(`window.__shown[` + jsString(msg) + `] !== undefined`)
		shown := eval[int64](tb, `window.__shown[`+jsString(msg)+`]`)
		lat = append(lat, time.UnixMilli(shown).Sub(flushed))
		// Desynchronise from the poll, so the samples spread over its phase.
		time.Sleep(time.Duration(37*(i%13)) * time.Millisecond)
	}
	b.StopTimer()
	slices.Sort(lat)
	p50, p95, worst := lat[len(lat)/2], lat[len(lat)*95/100], lat[len(lat)-1]
	b.ReportMetric(float64(p50.Milliseconds()), "p50-ms")
	b.ReportMetric(float64(p95.Milliseconds()), "p95-ms")
	b.ReportMetric(float64(worst.Milliseconds()), "max-ms")
	fmt.Printf("WebLiveTail: Flush to the record showing in Chromium, poll 500 ms: p50 %v, p95 %v, max %v over %d records (target <= 1 s)\n",
		p50, p95, worst, len(lat))
}
