package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/auditlog"
	"github.com/tablelog/tablelog/internal/azurite"
)

// The browser tests drive Debian's Chromium (headless) from Go. `make test`
// installs it when missing; a missing browser fails the tests, never skips
// them.

// chromiumPath finds the browser: $TABLELOG_TEST_CHROMIUM, then chromium,
// chromium-browser, google-chrome on PATH.
func chromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("TABLELOG_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium for the browser tests: run `make test` (it installs Debian's chromium), or apt-get install -y chromium, or set TABLELOG_TEST_CHROMIUM")
	return ""
}

// newBrowser starts a headless Chromium for the test (stopped in
// t.Cleanup) and returns the context of its first tab.
func newBrowser(t testing.TB) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Do starts the browser, for the lifetime of ctx (so no
	// timeout here).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// tab is one browser tab on a web server, counting the dialogs (alert,
// confirm, prompt) that open in it.
type tab struct {
	t       testing.TB
	ctx     context.Context
	ws      *webServer
	dialogs atomic.Int32
}

func newTab(t testing.TB, browser context.Context, ws *webServer) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	tb := &tab{t: t, ctx: ctx, ws: ws}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			tb.dialogs.Add(1)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return tb
}

// do runs actions with a timeout.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
}

// open loads path and waits for the page.
func (tb *tab) open(path string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(tb.ws.base + path))
	tb.waitJS(`document.readyState === "complete"`)
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitJS polls a boolean expression until it is true (every 20 ms, for
// at most 20 s). It polls from Go: the pages' CSP forbids the eval that
// chromedp's Poll uses.
func (tb *tab) waitJS(expr string) {
	tb.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			loc := eval[string](tb, "location.href")
			tb.t.Fatalf("waited 20 s for %s (at %s, err %v)", expr, loc, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// click clicks the element of a CSS selector and waits for the next page.
func (tb *tab) clickAndLoad(sel string) {
	tb.t.Helper()
	before := eval[string](tb, "location.href")
	tb.do(chromedp.Evaluate[chromedp.Void](`document.querySelector(` + jsString(sel) + `).click()`))
	tb.waitJS(`location.href !== ` + jsString(before) + ` && document.readyState === "complete"`)
}

// submit sets the form's fields (name → value) and submits it with its
// button, waiting for the result page.
func (tb *tab) submit(form string, fields map[string]string) {
	tb.t.Helper()
	for name, v := range fields {
		tb.do(chromedp.Evaluate[chromedp.Void](`document.querySelector(` + jsString(form+` [name="`+name+`"]`) + `).value = ` + jsString(v)))
	}
	tb.clickAndLoad(form + ` button[type="submit"]`)
}

// noScriptRan fails the test if a payload ran: the window flag they set,
// or a dialog.
func (tb *tab) noScriptRan(where string) {
	tb.t.Helper()
	if v := eval[string](tb, `typeof window.__xss + ":" + String(window.__xss)`); v != "undefined:undefined" {
		tb.t.Errorf("%s: a payload ran (window.__xss is %s)", where, v)
	}
	if n := tb.dialogs.Load(); n != 0 {
		tb.t.Errorf("%s: %d dialogs opened", where, n)
	}
}

func jsString(s string) string { return fmt.Sprintf("%q", s) }

var screenshotDir = flag.String("web.screenshots", "", "write the screenshots of the logs and audit views to this directory (docs/)")

// TestWebBrowser loads each view in Chromium against data written by the
// sink and auditlog, filters, pages, opens a detail, follows a live tail
// while records are written (pausing and resuming it) and exports.
func TestWebBrowser(t *testing.T) {
	t.Parallel()
	env := azurite.Get(t)
	logs, audit := env.NewTable(t), env.NewTable(t)
	seedWeb(t, logs, 12)
	recordEvents(t, audit, "billing", nil, sampleEvents())
	ws := startWeb(t, webEnv(t), append(tableArgs(logs, audit), "--page-size", "5", "--poll", "100ms", "--quiet")...)
	tb := newTab(t, newBrowser(t), ws)

	// Logs: the newest page, level colours, the histogram, the pickers.
	tb.open("/logs")
	if loc := eval[string](tb, "location.pathname + location.search"); loc != "/logs?service=checkout" {
		t.Errorf("landing: %s", loc)
	}
	if n := eval[int](tb, `document.querySelectorAll("#rows tr").length`); n != 5 {
		t.Errorf("first page: %d rows", n)
	}
	if n := eval[int](tb, `document.querySelectorAll(".hist svg rect[class^=lv-]").length`); n == 0 {
		t.Error("no histogram bars")
	}
	colour := eval[string](tb, `getComputedStyle(document.querySelector("#rows .badge.lv-error, #rows .badge.lv-warn")).backgroundColor`)
	if colour == "" || colour == "rgba(0, 0, 0, 0)" {
		t.Errorf("level badge has no colour: %q", colour)
	}
	// Filter with the form: minimum level, then --where and text.
	tb.submit("#logs-form", map[string]string{"level": "error"})
	if s := eval[string](tb, "location.search"); !strings.Contains(s, "level=error") {
		t.Errorf("after filtering: %s", s)
	}
	if n := eval[int](tb, `document.querySelectorAll("#rows tr").length`); n != 2 {
		t.Errorf("level=error: %d rows", n)
	}
	tb.submit("#logs-form", map[string]string{"level": "", "where": `status>=500 or user_id="u-1"`, "q": "request 1"})
	if n := eval[int](tb, `document.querySelectorAll("#rows tr").length`); n != 2 { // request 1 (u-1), request 10 (u-1); 11 is u-2 info
		t.Errorf("where+text: %d rows: %s", n, eval[string](tb, `document.getElementById("rows").innerText`))
	}
	// Pages: older, then back to the newest.
	tb.open("/logs?service=checkout")
	first := eval[string](tb, `document.querySelector("#rows tr").dataset.id`)
	tb.clickAndLoad("#older")
	second := eval[string](tb, `document.querySelector("#rows tr").dataset.id`)
	if second >= first || eval[int](tb, `document.querySelectorAll("#rows tr").length`) != 5 {
		t.Errorf("older page starts at %s after %s", second, first)
	}
	tb.clickAndLoad("#newest")
	if id := eval[string](tb, `document.querySelector("#rows tr").dataset.id`); id != first {
		t.Errorf("newest: %s, want %s", id, first)
	}
	// Detail: click a record's time.
	tb.open("/logs?service=checkout&q=request%205")
	tb.clickAndLoad("#rows tr a")
	if m := eval[string](tb, `document.getElementById("message-full").textContent`); m != "request 5" {
		t.Errorf("detail message %q", m)
	}
	if f := eval[string](tb, `[...document.querySelectorAll("#fields dt")].map(e => e.textContent).join(",")`); f != "req,method,path,seq,status,user_id" {
		t.Errorf("detail fields %q", f)
	}
	tb.clickAndLoad("#back")

	// Live tail: records written while following appear; paused, they
	// wait; resumed, they show.
	tb.open("/logs?service=checkout")
	tb.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("live-toggle").click()`))
	tb.waitJS(`document.getElementById("live-status").textContent.startsWith("following")`)
	s := newSeeder(t, logs)
	s.zap("checkout", time.Now(), zapcore.WarnLevel, "", "live record one")
	s.flush()
	tb.waitJS(`[...document.querySelectorAll("#rows tr td.msg")].some(td => td.textContent === "live record one")`)
	// The stream replays from the newest listed record; that one is not
	// shown twice nor counted.
	if st := eval[string](tb, `document.getElementById("live-status").textContent`); st != "following · 1 new" {
		t.Errorf("live status %q", st)
	}
	if n := eval[int](tb, `document.querySelectorAll("#rows tr").length`); n != 6 {
		t.Errorf("rows after one live record: %d, want 6", n)
	}
	if cls := eval[string](tb, `document.querySelector("#rows tr").className`); !strings.Contains(cls, "lv-warn") {
		t.Errorf("live row class %q", cls)
	}
	tb.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("live-toggle").click()`)) // pause
	tb.waitJS(`document.getElementById("live-status").textContent === "paused"`)
	s.zap("checkout", time.Now(), zapcore.WarnLevel, "", "live record two")
	s.flush()
	tb.waitJS(`document.getElementById("live-status").textContent === "paused · 1 new"`)
	if eval[bool](tb, `[...document.querySelectorAll("#rows td.msg")].some(td => td.textContent === "live record two")`) {
		t.Error("a record showed while paused")
	}
	tb.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("live-toggle").click()`)) // resume
	tb.waitJS(`document.querySelector("#rows tr td.msg").textContent === "live record two"`)

	// Audit: the events, the verification, filters, export.
	tb.open("/audit?service=billing")
	if ok := eval[bool](tb, `document.getElementById("verify").classList.contains("ok")`); !ok {
		t.Error("audit: not verified")
	}
	head := eval[string](tb, `document.getElementById("head").textContent`)
	if !strings.HasPrefix(head, "5:") || len(head) != 66 {
		t.Errorf("head %q", head)
	}
	if n := eval[int](tb, `document.querySelectorAll("#rows tr").length`); n != 5 {
		t.Errorf("audit rows: %d", n)
	}
	tb.submit("#audit-form", map[string]string{"actor": "alice"})
	if n := eval[int](tb, `document.querySelectorAll("#rows tr").length`); n != 2 {
		t.Errorf("actor=alice: %d rows", n)
	}
	// The export link downloads the selection, as `audit export` writes it.
	csv := evalAsync(tb, `fetch(document.getElementById("export-csv").href).then(r => r.text())`)
	var cli, cliErr strings.Builder
	if code := run(context.Background(), []string{"audit", "export", "--audit-table", tableArgs(logs, audit)[3], "-s", "billing", "--actor", "alice", "-o", "csv"},
		nil, &cli, &cliErr, envMap(webEnv(t))); code != 0 {
		t.Fatalf("audit export: %s", cliErr.String())
	}
	if csv != cli.String() {
		t.Errorf("browser export:\n%s\nwant:\n%s", csv, cli.String())
	}
	tb.noScriptRan("views")
}

// evalAsync awaits a promise-valued expression's string.
func evalAsync(tb *tab, expr string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// xssCorpus are values a hostile client could log: each would set
// window.__xss or open a dialog if the page ran it.
var xssCorpus = []string{
	`<script>window.__xss=1</script>`,
	`"><img src=x onerror="window.__xss=2">`,
	`'><img src=x onerror='window.__xss=3'>`,
	`<img src=x onerror=alert(4)>`,
	`javascript:window.__xss=5`,
	`<a href="javascript:window.__xss=6">click</a>`,
	`<svg onload="window.__xss=7"></svg>`,
	`<svg><script>window.__xss=8</script></svg>`,
	`<svg><a xlink:href="javascript:window.__xss=9"><text y="20">x</text></a></svg>`,
	`<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=10>`,
	`</textarea><script>window.__xss=11</script>`,
	`</title><script>window.__xss=12</script>`,
	`<iframe src="javascript:window.top.__xss=13"></iframe>`,
	`<body onload="window.__xss=14">`,
	`<details open ontoggle="window.__xss=15">`,
	`<input autofocus onfocus="window.__xss=16">`,
	`<meta http-equiv="refresh" content="0;url=javascript:window.__xss=17">`,
	`<base href="javascript:window.__xss=18//">`,
	`{{constructor.constructor('window.__xss=19')()}}`,
	`</script><script>window.__xss=20</script>`,
	"\u2028\u2029<script>window.__xss=21</script>",
	"broken \xff\xfe UTF-8 <script>window.__xss=22</script> \xc3",
	`<style>@import "javascript:window.__xss=23";</style>`,
	`<object data="data:text/html,<script>parent.__xss=24</script>"></object>`,
	`%3Cscript%3Ewindow.__xss=25%3C/script%3E`,
	`&lt;script&gt;window.__xss=26&lt;/script&gt;`,
}

// TestWebXSS logs the corpus as messages, field names and field values
// (and a 1 MB message), and as audit event fields, then loads every view
// that shows them, the detail of each record and the live tail: each value
// shows as text and nothing runs.
func TestWebXSS(t *testing.T) {
	t.Parallel()
	env := azurite.Get(t)
	logs, audit := env.NewTable(t), env.NewTable(t)
	s := newSeeder(t, logs)
	at := time.Now().Add(-time.Minute)
	for i, p := range xssCorpus {
		s.zap("xss", at.Add(time.Duration(i)*time.Millisecond), zapcore.ErrorLevel, p, p,
			zap.String(p, p), zap.String("value", p), zap.Namespace(p), zap.String("nested", p))
	}
	big := strings.Repeat("<script>window.__xss=99</script>", 1<<20/32)
	s.zap("xss", at.Add(time.Second), zapcore.InfoLevel, "", big)
	s.flush()
	var evs []auditlog.Event
	for _, p := range xssCorpus[:20] {
		evs = append(evs, auditlog.Event{Actor: p, Action: "act" + p, Target: p, Outcome: auditlog.Outcome(p[:min(len(p), 60)]), Reason: p, Attrs: map[string]any{p: p}})
	}
	recordEvents(t, audit, "xss", nil, evs)
	ws := startWeb(t, webEnv(t), append(tableArgs(logs, audit), "--poll", "100ms", "--quiet")...)
	tb := newTab(t, newBrowser(t), ws)

	// shows reports whether text shows p: each of its valid UTF-8 runs
	// (the writer replaces invalid bytes).
	shows := func(text, p string) bool {
		for _, part := range strings.Split(strings.ToValidUTF8(p, "\x00"), "\x00") {
			if !strings.Contains(text, part) {
				return false
			}
		}
		return true
	}
	tb.open("/logs?service=xss")
	if n := eval[int](tb, `document.querySelectorAll("#rows tr").length`); n != len(xssCorpus)+1 {
		t.Errorf("rows: %d", n)
	}
	text := eval[string](tb, `document.getElementById("rows").textContent`)
	for _, p := range xssCorpus {
		if !shows(text, p) {
			t.Errorf("the list does not show %q as text", p)
		}
	}
	// Nothing the payloads would create exists.
	if n := eval[int](tb, `document.querySelectorAll("main script, main img, main iframe, main object, main svg a, main details, main input:not(.filters input), main meta, main base, main math").length`); n != 0 {
		t.Errorf("%d payload elements in the page", n)
	}
	tb.noScriptRan("logs list")
	// Each record's detail: message, field names and values as text.
	ids := eval[[]string](tb, `[...document.querySelectorAll("#rows tr")].map(tr => tr.dataset.id)`)
	for _, id := range ids {
		tb.open("/logs/record?service=xss&id=" + id)
		msg := eval[string](tb, `document.getElementById("message-full").textContent`)
		if len(msg) > 1000 {
			if !strings.HasPrefix(msg, "<script>window.__xss=99</script>") || len(msg) < 500_000 {
				t.Errorf("1 MB message: %d bytes shown", len(msg))
			}
			tb.noScriptRan("1 MB detail")
			continue
		}
		keys := eval[[]string](tb, `[...document.querySelectorAll("#fields dt")].map(e => e.textContent)`)
		vals := eval[[]string](tb, `[...document.querySelectorAll("#fields .val")].map(e => e.textContent)`)
		if len(keys) != 4 || len(vals) != 3 || vals[0] != msg || !containsStr(keys, msg) {
			t.Errorf("detail of %q: keys %q, values %q", msg, keys, vals)
		}
		tb.noScriptRan("detail " + msg)
	}
	// The live tail: payloads arriving as JSON become text.
	tb.open("/logs?service=xss")
	tb.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("live-toggle").click()`))
	tb.waitJS(`document.getElementById("live-status").textContent.startsWith("following")`)
	for _, p := range xssCorpus {
		s.zap("xss", time.Now(), zapcore.WarnLevel, p, "live "+p, zap.String(p, p))
	}
	s.flush()
	tb.waitJS(`document.querySelectorAll("#rows tr.fresh").length === ` + fmt.Sprint(len(xssCorpus)))
	text = eval[string](tb, `[...document.querySelectorAll("#rows tr.fresh td.msg")].map(td => td.textContent).join("\n")`)
	for _, p := range xssCorpus {
		if !shows(text, "live "+p) {
			t.Errorf("the live tail does not show %q as text", p)
		}
	}
	time.Sleep(300 * time.Millisecond) // an onerror would have fired by now
	tb.noScriptRan("live tail")
	// The audit view.
	tb.open("/audit?service=xss")
	text = eval[string](tb, `document.getElementById("rows").textContent`)
	for _, p := range xssCorpus[:20] {
		if !shows(text, p) {
			t.Errorf("the audit list does not show %q as text", p)
		}
	}
	if !eval[bool](tb, `document.getElementById("verify").classList.contains("ok")`) {
		t.Error("xss trail: not verified")
	}
	tb.do(chromedp.Evaluate[chromedp.Void](`document.querySelectorAll("details").forEach(d => d.open = true)`))
	time.Sleep(200 * time.Millisecond)
	tb.noScriptRan("audit")
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestWebScreenshots renders the logs and audit views of a realistic
// service in Chromium and checks the images; with -web.screenshots DIR it
// writes them there (go test ./cmd/tablelog -run TestWebScreenshots
// -web.screenshots $PWD/docs regenerates the README's).
func TestWebScreenshots(t *testing.T) {
	t.Parallel()
	env := azurite.Get(t)
	logs, audit := env.NewTable(t), env.NewTable(t)
	s := newSeeder(t, logs)
	now := time.Now().UTC().Truncate(time.Second)
	type line struct {
		lvl    zapcore.Level
		logger string
		msg    string
		fields []zap.Field
	}
	users := []string{"u-1042", "u-2207", "u-0315", "u-8812"}
	// 150 records over the last quarter hour, with a burst of errors and
	// slow requests two thirds of the way.
	at := now.Add(-15 * time.Minute)
	for i := 0; i < 150; i++ {
		gap := time.Duration(4000+(i*7919)%5000) * time.Millisecond
		burst := i > 95 && i < 125
		if burst {
			gap = time.Duration(600+(i*131)%900) * time.Millisecond
		}
		at = at.Add(gap)
		u := users[(i*7)%len(users)]
		l := line{zapcore.InfoLevel, "http", "request served", []zap.Field{zap.String("method", "GET"), zap.String("path", "/cart"), zap.Int("status", 200), zap.String("user_id", u), zap.Int("took_ms", 8+(i*13)%40)}}
		switch {
		case burst && i%3 == 0, i%31 == 7:
			l = line{zapcore.ErrorLevel, "payment", "charge failed", []zap.Field{zap.String("error", "card issuer timeout"), zap.Int("status", 502), zap.String("user_id", u), zap.Bool("retry", true)}}
		case burst && i%3 == 1, i%11 == 4:
			l = line{zapcore.WarnLevel, "http", "slow request", []zap.Field{zap.String("method", "POST"), zap.String("path", "/pay"), zap.Float64("seconds", 2.5+float64(i%5)/10), zap.String("user_id", u)}}
		case i%7 == 2:
			l = line{zapcore.DebugLevel, "cart", "cart loaded", []zap.Field{zap.String("user_id", u), zap.Int("items", 1+i%6)}}
		case i%5 == 1:
			l = line{zapcore.InfoLevel, "payment", "payment authorized", []zap.Field{zap.String("order", fmt.Sprintf("ord-%05d", 31000+i)), zap.Int("amount_cents", 1299+i*17), zap.String("currency", "EUR"), zap.String("user_id", u)}}
		}
		s.zap("checkout", at, l.lvl, l.logger, l.msg, l.fields...)
	}
	s.flush()
	var evs []auditlog.Event
	for i, e := range []struct{ actor, action, target, outcome, reason string }{
		{"alice@example.com", "invoice.create", "inv-2025-0142", "success", ""},
		{"bob@example.com", "invoice.delete", "inv-2025-0117", "denied", "not the owner"},
		{"alice@example.com", "invoice.delete", "inv-2025-0117", "success", "customer request"},
		{"svc-billing", "invoice.send", "inv-2025-0142", "success", ""},
		{"carol@example.com", "role.grant", "user:dave@example.com", "success", "on-call rotation"},
		{"mallory@example.net", "login", "", "failure", "bad password"},
		{"mallory@example.net", "login", "", "failure", "bad password"},
		{"carol@example.com", "export.run", "report:q4-revenue", "success", "quarterly close"},
		{"svc-billing", "invoice.archive", "inv-2024-0981", "error", "storage unavailable"},
		{"dave@example.com", "invoice.refund", "inv-2025-0098", "success", "duplicate charge"},
	} {
		evs = append(evs, auditlog.Event{Actor: e.actor, Action: e.action, Target: e.target, Outcome: auditlog.Outcome(e.outcome), Reason: e.reason,
			SourceIP: fmt.Sprintf("203.0.113.%d", 10+i), RequestID: fmt.Sprintf("req-%04x", 0xa100+i*37)})
	}
	recordEvents(t, audit, "billing", nil, evs)
	ws := startWeb(t, webEnv(t), append(tableArgs(logs, audit), "--quiet")...)
	tb := newTab(t, newBrowser(t), ws)
	tb.do(chromedp.EmulateViewport(1400, 860))
	for _, shot := range []struct{ path, file string }{
		{"/logs?service=checkout", "web-logs.png"},
		{"/audit?service=billing", "web-audit.png"},
	} {
		tb.open(shot.path)
		ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
		img, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		dec, err := png.Decode(bytes.NewReader(img))
		if err != nil {
			t.Fatalf("%s: %v", shot.file, err)
		}
		if b := dec.Bounds(); b.Dx() != 1400 || b.Dy() != 860 {
			t.Errorf("%s: %v", shot.file, b)
		}
		if *screenshotDir != "" {
			if err := os.WriteFile(filepath.Join(*screenshotDir, shot.file), img, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tb.noScriptRan("screenshots")
}
