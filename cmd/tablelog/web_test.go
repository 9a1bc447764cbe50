package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/internal/azurite"
)

// webServer is `tablelog web` running in this process.
type webServer struct {
	t      testing.TB
	base   string // http://127.0.0.1:PORT
	token  string // printed with the URL, if any
	lines  []string
	stderr *lockedBuffer
	client *http.Client
}

var serveRE = regexp.MustCompile(`at (http://[^\s?/]+)/(?:\?token=(\S+))?`)

// startWeb runs `tablelog web --addr 127.0.0.1:0` (unless args give an
// --addr) with env and args, and waits for the URL it prints. It stops in
// t.Cleanup and fails the test if it exited with an error.
func startWeb(t testing.TB, env map[string]string, args ...string) *webServer {
	t.Helper()
	hasAddr := false
	for _, a := range args {
		if a == "--addr" {
			hasAddr = true
		}
	}
	if !hasAddr {
		args = append([]string{"--addr", "127.0.0.1:0"}, args...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	ws := &webServer{t: t, stderr: &lockedBuffer{}}
	done := make(chan int, 1)
	go func() {
		code := run(ctx, append([]string{"web"}, args...), nil, pw, ws.stderr, envMap(env))
		pw.Close()
		done <- code
	}()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("tablelog web exited %d; stderr:\n%s", code, ws.stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("tablelog web did not stop within 10 s")
		}
	})
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatalf("tablelog web exited before serving; stderr:\n%s", ws.stderr.String())
		}
		ws.lines = append(ws.lines, l)
		m := serveRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("no URL in %q", l)
		}
		ws.base, ws.token = m[1], m[2]
		if ws.token != "" {
			ws.lines = append(ws.lines, <-lines)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("tablelog web printed no URL; stderr:\n%s", ws.stderr.String())
	}
	go func() {
		for range lines {
		}
	}()
	// Connect to the loopback address whatever was bound.
	if u, err := url.Parse(ws.base); err == nil {
		_, port, _ := net.SplitHostPort(u.Host)
		ws.base = "http://127.0.0.1:" + port
	}
	ws.client = &http.Client{
		Timeout:       60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return ws
}

// response is one answer of the server.
type response struct {
	code   int
	header http.Header
	body   string
}

// do sends a request with method to path (with the query) and the headers
// given as name, value pairs.
func (ws *webServer) do(method, path string, headers ...string) response {
	ws.t.Helper()
	req, err := http.NewRequest(method, ws.base+path, nil)
	if err != nil {
		ws.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := ws.client.Do(req)
	if err != nil {
		ws.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

// get is do("GET"), with the token as a bearer header when the server has
// one.
func (ws *webServer) get(path string) response {
	ws.t.Helper()
	if ws.token != "" {
		return ws.do("GET", path, "Authorization", "Bearer "+ws.token)
	}
	return ws.do("GET", path)
}

// mustGet fails the test unless GET path answers want.
func (ws *webServer) mustGet(want int, path string) string {
	ws.t.Helper()
	r := ws.get(path)
	if r.code != want {
		ws.t.Fatalf("GET %s: %d, want %d\n%s", path, r.code, want, r.body)
	}
	return r.body
}

// webEnv is the environment of a web server on the emulator through the
// proxy.
func webEnv(t testing.TB) map[string]string {
	return map[string]string{envConnectionString: azurite.Get(t).ConnectionString}
}

// tableArgs are the table flags for logs and audit (nil: a fresh name
// that does not exist).
func tableArgs(logs, audit *aztables.Client) []string {
	ln, an := azurite.NewTableName(), azurite.NewTableName()
	if logs != nil {
		ln = azurite.TableName(logs)
	}
	if audit != nil {
		an = azurite.TableName(audit)
	}
	return []string{"--logs-table", ln, "--audit-table", an}
}

// seedWeb writes n records of service "checkout", one a second up to
// about now, cycling through levels, with fields and groups; the newest
// is record n-1.
func seedWeb(t *testing.T, tbl *aztables.Client, n int) time.Time {
	t.Helper()
	s := newSeeder(t, tbl)
	base := time.Now().UTC().Add(-time.Duration(n+5) * time.Second).Truncate(time.Millisecond)
	levels := []zapcore.Level{zapcore.InfoLevel, zapcore.DebugLevel, zapcore.WarnLevel, zapcore.ErrorLevel, zapcore.InfoLevel}
	for i := 0; i < n; i++ {
		lvl := levels[i%len(levels)]
		status := 200
		if lvl == zapcore.ErrorLevel {
			status = 503
		}
		s.zap("checkout", base.Add(time.Duration(i)*time.Second), lvl, "http", "request "+strconv.Itoa(i),
			zap.Int("seq", i), zap.Int("status", status), zap.String("user_id", "u-"+strconv.Itoa(i%3)),
			zap.Namespace("req"), zap.String("method", "POST"), zap.String("path", "/pay"))
	}
	s.slog("checkout", base.Add(time.Duration(n)*time.Second-500*time.Millisecond), slog.LevelInfo, "grouped record",
		slog.Group("http", slog.String("method", "GET"), slog.Group("client", slog.String("ip", "203.0.113.9"))), slog.Bool("cached", true))
	s.flush()
	return base
}

// countRows and countEvents count the rows of a logs or audit page.
func countRows(body string) int   { return strings.Count(body, `<tr data-id="`) }
func countEvents(body string) int { return strings.Count(body, `<tr data-seq="`) }

// rowIDs are the record IDs of a logs page, in order.
func rowIDs(body string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`<tr data-id="([0-9A-Z]{26})"`).FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// href extracts the (unescaped) href of the element with id.
func href(t *testing.T, body, id string) string {
	t.Helper()
	m := regexp.MustCompile(`href="([^"]*)" id="` + id + `"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no link #%s in:\n%s", id, body)
	}
	return strings.ReplaceAll(m[1], "&amp;", "&")
}

// TestWebEmpty: a catalog that lists nothing says so and where to look.
func TestWebEmpty(t *testing.T) {
	t.Parallel()
	logs, audit := azurite.Get(t).NewTable(t), azurite.Get(t).NewTable(t)
	ws := startWeb(t, webEnv(t), tableArgs(logs, audit)...)
	for path, want := range map[string]string{
		"/logs":  "lists no services yet (nothing written, or another table: --logs-table)",
		"/audit": "lists no audit trails yet (nothing recorded, or another table: --audit-table)",
	} {
		body := ws.mustGet(200, path)
		if !strings.Contains(body, "the catalog of table &#34;"+azurite.TableName(logs)) && !strings.Contains(body, "the catalog of table &#34;"+azurite.TableName(audit)) || !strings.Contains(body, want) {
			t.Errorf("%s: want %q in:\n%s", path, want, body)
		}
	}
	// A table that does not exist: 404, the library's error as it is (its
	// prefix once) and the hint.
	ws = startWeb(t, webEnv(t), tableArgs(nil, nil)...)
	r := ws.get("/logs?service=checkout")
	if r.code != http.StatusNotFound || strings.Count(r.body, "tablelog/query: ") != 1 || !strings.Contains(r.body, "table not found") ||
		!strings.Contains(r.body, "(check --logs-table / --audit-table and the account)") {
		t.Errorf("missing table: %d\n%s", r.code, r.body)
	}
}

// TestWebLogs: the logs view against records written by the sink: the
// catalog's pickers, newest first, filters, older pages by continuation,
// the detail view, the histogram and the live tail.
func TestWebLogs(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	seedWeb(t, tbl, 12)
	ws := startWeb(t, webEnv(t), append(tableArgs(tbl, nil), "--page-size", "5", "--poll", "100ms")...)

	// The root and an empty service lead to the first service.
	if r := ws.get("/"); r.code != http.StatusSeeOther || r.header.Get("Location") != "/logs" {
		t.Errorf("/: %d %q", r.code, r.header.Get("Location"))
	}
	if r := ws.get("/logs"); r.code != http.StatusSeeOther || r.header.Get("Location") != "/logs?service=checkout" {
		t.Errorf("/logs: %d %q", r.code, r.header.Get("Location"))
	}
	body := ws.mustGet(200, "/logs?service=checkout")
	today := time.Now().UTC().Format(time.DateOnly)
	for _, want := range []string{"<option selected>checkout</option>", "<option>" + today + "</option>", `class="hist"`, `<rect class="lv-error"`, "grouped record", `id="live"`} {
		if !strings.Contains(body, want) {
			t.Errorf("logs page lacks %q", want)
		}
	}
	// Pages: 13 records, 5 a page, newest first, no repeats, none missed.
	var all []string
	page := "/logs?service=checkout"
	for i := 0; i < 5 && page != ""; i++ {
		body := ws.mustGet(200, page)
		ids := rowIDs(body)
		all = append(all, ids...)
		page = ""
		if strings.Contains(body, `id="older"`) {
			page = href(t, body, "older")
			if !strings.Contains(page, "before=") {
				t.Fatalf("older link %q", page)
			}
		}
		if i > 0 && !strings.Contains(body, `id="newest"`) {
			t.Errorf("page %d has no link to the newest", i)
		}
	}
	if len(all) != 13 {
		t.Fatalf("paged through %d records, want 13: %v", len(all), all)
	}
	for i := 1; i < len(all); i++ {
		if all[i] >= all[i-1] {
			t.Errorf("page order: %s after %s", all[i], all[i-1])
		}
	}
	// Filters: minimum level, --where, text search, time range.
	body = ws.mustGet(200, "/logs?service=checkout&level=error")
	if n := countRows(body); n != 2 || strings.Contains(body, "badge lv-info") {
		t.Errorf("level=error: %d rows", n)
	}
	body = ws.mustGet(200, "/logs?service=checkout&where="+url.QueryEscape(`status>=500 and req.method="POST"`))
	if n := countRows(body); n != 2 {
		t.Errorf("where: %d rows", n)
	}
	body = ws.mustGet(200, "/logs?service=checkout&q="+url.QueryEscape("request 1"))
	if n := countRows(body); n != 3 { // request 1, 10, 11
		t.Errorf("text search: %d rows", n)
	}
	body = ws.mustGet(200, "/logs?service=checkout&since=2020-01-01&until=2020-01-02")
	if countRows(body) != 0 || !strings.Contains(body, "No records match.") {
		t.Errorf("empty range: %d rows", countRows(body))
	}
	// A day from the picker is that UTC day.
	if n := countRows(ws.mustGet(200, "/logs?service=checkout&level=warn&day="+today)); n < 2 {
		t.Errorf("day: %d rows", n)
	}
	// Mistakes: 400 with the parser's message, no query.
	for q, want := range map[string]string{
		"where=" + url.QueryEscape("a=1 and (b=2"): "unbalanced",
		"level=loud":        "is not a level: use debug, info",
		"since=yesterday":   "is neither a duration",
		"before=not-an-id":  "is not a record ID",
		"since=1h&until=2h": "since is not before until",
	} {
		r := ws.get("/logs?service=checkout&" + q)
		if r.code != http.StatusBadRequest || !strings.Contains(r.body, want) {
			t.Errorf("%s: %d, want 400 with %q", q, r.code, want)
		}
	}
	// Detail: every field under its original key and nesting.
	body = ws.mustGet(200, "/logs?service=checkout&q=grouped")
	ids := rowIDs(body)
	if len(ids) != 1 {
		t.Fatalf("grouped record: %v", ids)
	}
	detail := ws.mustGet(200, "/logs/record?service=checkout&id="+ids[0])
	for _, want := range []string{`<dt>http</dt><dd><dl class="fields">`, `<dt>client</dt><dd><dl class="fields"><div class="field"><dt>ip</dt><dd><span class="val t-string">203.0.113.9</span>`,
		`<dt>cached</dt><dd><span class="val t-bool">true</span>`, "grouped record", ids[0]} {
		if !strings.Contains(detail, want) {
			t.Errorf("detail lacks %q:\n%s", want, detail)
		}
	}
	if r := ws.get("/logs/record?service=checkout&id=01ARZ3NDEKTSV4RRFFQ69G5FAV"); r.code != http.StatusNotFound {
		t.Errorf("unknown record: %d", r.code)
	}
	if r := ws.get("/logs/record?service=checkout&id=nope"); r.code != http.StatusBadRequest {
		t.Errorf("bad id: %d", r.code)
	}

	// Live tail: records stored after the stream opens arrive as events.
	s := newSeeder(t, tbl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ws.base+"/logs/live?service=checkout&level=warn", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("live content type %q", ct)
	}
	s.zap("checkout", time.Now(), zapcore.InfoLevel, "", "not at warn")
	s.zap("checkout", time.Now(), zapcore.WarnLevel, "", "live <b>one</b>", zap.String("k", "v"))
	s.flush()
	ev := readEvent(t, bufio.NewReader(resp.Body), "record")
	var row struct{ ID, Msg, Level, Fields, Href string }
	if err := json.Unmarshal([]byte(ev), &row); err != nil {
		t.Fatal(err)
	}
	if row.Msg != "live <b>one</b>" || row.Level != "WARN" || row.Fields != "k=v" || !strings.HasPrefix(row.Href, "/logs/record?") {
		t.Errorf("live event %s", ev)
	}
	if strings.Contains(ev, "<b>") {
		t.Errorf("live JSON carries raw markup: %s", ev)
	}
}

// readEvent returns the data of the next server-sent event of kind.
func readEvent(t *testing.T, r *bufio.Reader, kind string) string {
	t.Helper()
	event := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading events: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if event == kind {
				return strings.TrimPrefix(line, "data: ")
			}
			if event == "fatal" {
				t.Fatalf("fatal event: %s", line)
			}
		}
	}
}

// TestWebAudit: the audit view against a trail written by auditlog:
// events newest first, filters, pages, the Verify status (OK, then the
// breaks), the head and its warning, and the exports, byte for byte those
// of `tablelog audit export`.
func TestWebAudit(t *testing.T) {
	t.Parallel()
	env := azurite.Get(t)
	tbl := env.NewTable(t)
	recordEvents(t, tbl, "billing", nil, sampleEvents())
	recordEvents(t, tbl, "shop", nil, sampleEvents()[:2])
	args := append(tableArgs(nil, tbl), "--page-size", "2")
	ws := startWeb(t, webEnv(t), args...)

	if r := ws.get("/audit"); r.code != http.StatusSeeOther || r.header.Get("Location") != "/audit?service=billing" {
		t.Errorf("/audit: %d %q", r.code, r.header.Get("Location"))
	}
	body := ws.mustGet(200, "/audit?service=billing")
	for _, want := range []string{"✔ Chain verified", "the whole trail, 5 events checked", `<code id="head" class="select">5:`,
		"without a recorded head, the newest events can be cut off undetected", "<option selected>billing</option>", "<option>shop</option>"} {
		if !strings.Contains(body, want) {
			t.Errorf("audit page lacks %q", want)
		}
	}
	head := regexp.MustCompile(`<code id="head" class="select">(5:[0-9a-f]{64})</code>`).FindStringSubmatch(body)
	if head == nil {
		t.Fatal("no head")
	}
	// Pages of 2: seq 5 4 | 3 2 | 1.
	var seqs []string
	page := "/audit?service=billing"
	for page != "" {
		body := ws.mustGet(200, page)
		for _, m := range regexp.MustCompile(`<tr data-seq="(\d+)"`).FindAllStringSubmatch(body, -1) {
			seqs = append(seqs, m[1])
		}
		page = ""
		if strings.Contains(body, `id="older"`) {
			page = href(t, body, "older")
		}
	}
	if strings.Join(seqs, " ") != "5 4 3 2 1" {
		t.Errorf("pages: %v", seqs)
	}
	// Filters.
	if n := countEvents(ws.mustGet(200, "/audit?service=billing&actor=alice")); n != 2 {
		t.Errorf("actor=alice: %d", n)
	}
	if n := countEvents(ws.mustGet(200, "/audit?service=billing&action=invoice.delete&outcome=denied")); n != 1 {
		t.Errorf("action+outcome: %d", n)
	}
	if n := countEvents(ws.mustGet(200, "/audit?service=billing&where="+url.QueryEscape("seq>=2 and seq<4"))); n != 2 {
		t.Errorf("where: %d", n)
	}
	if n := countEvents(ws.mustGet(200, "/audit?service=billing&since=2025-11-25T09:00:02Z")); n != 2 { // page of 2 of 3
		t.Errorf("since: %d", n)
	}
	// The recorded head verifies; another head does not.
	if b := ws.mustGet(200, "/audit?service=billing&head="+head[1]); !strings.Contains(b, "✔ Chain verified") || !strings.Contains(b, "Checked against the expected head") {
		t.Errorf("expected head: not verified")
	}
	if r := ws.get("/audit?service=billing&head=12"); r.code != http.StatusBadRequest {
		t.Errorf("bad head: %d", r.code)
	}

	// Exports: the selection (not the page), as `audit export` writes it.
	for _, format := range []string{"csv", "jsonl"} {
		r := ws.get("/audit/export?service=billing&actor=alice&format=" + format)
		var cli, cliErr bytes.Buffer
		code := run(context.Background(), []string{"audit", "export", "--audit-table", azurite.TableName(tbl), "-s", "billing", "--actor", "alice", "-o", format},
			nil, &cli, &cliErr, envMap(webEnv(t)))
		if code != 0 {
			t.Fatalf("audit export: %d %s", code, cliErr.String())
		}
		if r.code != 200 || r.body != cli.String() || strings.Count(r.body, "\n") < 2 {
			t.Errorf("export %s: %d\n%s\nwant\n%s", format, r.code, r.body, cli.String())
		}
		if cd := r.header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="audit-billing-`) {
			t.Errorf("export %s: Content-Disposition %q", format, cd)
		}
	}
	if r := ws.get("/audit/export?service=billing&format=xml"); r.code != http.StatusBadRequest {
		t.Errorf("format=xml: %d", r.code)
	}

	// Tampering: the page says broken, with each break's kind and position.
	tamper(t, azurite.TableName(tbl), "billing", 2, "Actor", "mallory")
	body = ws.mustGet(200, "/audit?service=billing")
	if !strings.Contains(body, "✘ Chain broken") || !strings.Contains(body, `<span class="badge bk">modified</span></td><td>seq 2</td>`) {
		t.Errorf("tampered trail:\n%s", body)
	}
	// The other trail is still fine.
	if b := ws.mustGet(200, "/audit?service=shop"); !strings.Contains(b, "✔ Chain verified") {
		t.Error("shop: not verified")
	}
}

// TestWebAuditKeyed: a keyed trail verifies with the key from the
// environment, which never reaches a page; without it the page says what
// is missing.
func TestWebAuditKeyed(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	key := "web-test-hmac-key-0123456789-secret"
	recordEvents(t, tbl, "billing", []byte(key), sampleEvents()[:3])
	env := webEnv(t)
	env[envAuditKey] = key
	ws := startWeb(t, env, tableArgs(nil, tbl)...)
	body := ws.mustGet(200, "/audit?service=billing")
	if !strings.Contains(body, "✔ Chain verified") || !strings.Contains(body, "HMAC-SHA-256 with the key") {
		t.Errorf("keyed trail with the key: not verified")
	}
	for _, path := range []string{"/audit?service=billing", "/audit/export?service=billing&format=jsonl", "/static/app.js", "/logs"} {
		r := ws.get(path)
		if strings.Contains(r.body, key) || strings.Contains(r.body, "web-test-hmac") {
			t.Errorf("%s shows the audit key", path)
		}
	}
	delete(env, envAuditKey)
	ws2 := startWeb(t, env, tableArgs(nil, tbl)...)
	body = ws2.mustGet(200, "/audit?service=billing")
	if !strings.Contains(body, "✘ Chain broken or not verifiable") || !strings.Contains(body, "TABLELOG_AUDIT_KEY") {
		t.Errorf("keyed trail without the key:\n%s", body)
	}
	if strings.Contains(ws.stderr.String()+ws2.stderr.String(), key) {
		t.Error("the log shows the audit key")
	}
}

// securityHeaders must be on every response.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options":  "nosniff",
	"Referrer-Policy":         "no-referrer",
	"X-Frame-Options":         "DENY",
}

func checkHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	for k, v := range securityHeaders {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
}

// webPaths are every route, with a query that selects something.
var webPaths = []string{"/", "/logs", "/logs?service=checkout", "/logs/record?service=checkout&id=01ARZ3NDEKTSV4RRFFQ69G5FAV",
	"/audit", "/audit?service=billing", "/audit/export?service=billing&format=csv", "/static/app.js", "/static/app.css",
	"/static/favicon.svg", "/nope", "/static/nope"}

// TestWebReadOnly: every method but GET is refused with 405 on every
// route, with the security headers, and the tables are unchanged; the
// whole view works with a read-only SAS.
func TestWebReadOnly(t *testing.T) {
	t.Parallel()
	env := azurite.Get(t)
	logs, audit := env.NewTable(t), env.NewTable(t)
	seedWeb(t, logs, 3)
	recordEvents(t, audit, "billing", nil, sampleEvents()[:2])
	read := accountSAS(t, aztables.AccountSASPermissions{Read: true, List: true})
	ws := startWeb(t, nil, append(tableArgs(logs, audit), "--sas", env.Proxy.ServiceURL+"?"+read)...)
	before := countEntities(t, logs) + countEntities(t, audit)
	for _, path := range webPaths {
		for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "MERGE", "HEAD", "OPTIONS", "TRACE", "CONNECT"} {
			if m == "CONNECT" {
				path = "/logs"
			}
			r := ws.do(m, path)
			if r.code != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET" {
				t.Errorf("%s %s: %d (Allow %q)", m, path, r.code, r.header.Get("Allow"))
			}
			checkHeaders(t, m+" "+path, r.header)
		}
		r := ws.get(path)
		if r.code >= 500 {
			t.Errorf("GET %s with a read-only SAS: %d\n%s", path, r.code, r.body)
		}
		checkHeaders(t, "GET "+path, r.header)
	}
	if after := countEntities(t, logs) + countEntities(t, audit); after != before {
		t.Errorf("entities %d before, %d after", before, after)
	}
	// Read-only credential: each view shows its data.
	if n := countRows(ws.mustGet(200, "/logs?service=checkout")); n != 4 {
		t.Errorf("logs with a read SAS: %d rows", n)
	}
	if b := ws.mustGet(200, "/audit?service=billing"); countEvents(b) != 2 || !strings.Contains(b, "✔ Chain verified") {
		t.Errorf("audit with a read SAS")
	}
}

// TestWebLoopback: bound to loopback without a token, the server answers
// only requests for a loopback host: a DNS-rebinding page (Host:
// evil.example) gets 403.
func TestWebLoopback(t *testing.T) {
	t.Parallel()
	ws := startWeb(t, webEnv(t), tableArgs(nil, nil)...)
	if ws.token != "" {
		t.Fatalf("loopback printed a token: %v", ws.lines)
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(ws.base, "http://"))
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "[::1]:" + port, "LOCALHOST"} {
		if r := ws.do("GET", "/static/app.css", "Host", host); r.code != 200 {
			t.Errorf("Host %s: %d", host, r.code)
		}
	}
	for _, host := range []string{"evil.example:" + port, "evil.example", "127.0.0.1.evil.example", "10.0.0.1:" + port} {
		r := ws.do("GET", "/logs", "Host", host)
		if r.code != http.StatusForbidden {
			t.Errorf("Host %q: %d, want 403", host, r.code)
		}
		checkHeaders(t, "403", r.header)
	}
}

// TestWebToken: any address but loopback requires the access token: one is
// generated and printed; without it every route answers 401; the token in
// the printed URL is traded for a cookie and dropped from the address; the
// request log never shows it.
func TestWebToken(t *testing.T) {
	t.Parallel()
	ws := startWeb(t, webEnv(t), append(tableArgs(nil, nil), "--addr", "0.0.0.0:0")...)
	if len(ws.token) < 40 || !strings.Contains(ws.lines[1], "generated") {
		t.Fatalf("no generated token: %v", ws.lines)
	}
	for _, path := range append(webPaths, "/logs/live?service=checkout") {
		for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Cookie", tokenCookieName + "=wrong"}, {"Authorization", ws.token}} {
			r := ws.do("GET", path, hdr...)
			if r.code != http.StatusUnauthorized {
				t.Errorf("GET %s %v: %d, want 401", path, hdr, r.code)
			}
			checkHeaders(t, "401", r.header)
		}
		if r := ws.do("GET", path+sep(path)+"token=wrong"); r.code != http.StatusUnauthorized {
			t.Errorf("GET %s?token=wrong: %d", path, r.code)
		}
	}
	// Any host is fine with the token (it is not a loopback server).
	if r := ws.do("GET", "/static/app.css", "Authorization", "Bearer "+ws.token, "Host", "tablelog.example:80"); r.code != 200 {
		t.Errorf("bearer: %d", r.code)
	}
	// The printed URL: 303 to the same view without the token, and a
	// cookie that works from then on.
	r := ws.do("GET", "/audit?service=x&token="+url.QueryEscape(ws.token)+"&actor=a")
	if r.code != http.StatusSeeOther || r.header.Get("Location") != "/audit?actor=a&service=x" {
		t.Fatalf("token URL: %d %q", r.code, r.header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == tokenCookieName {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" {
		t.Fatalf("cookie: %+v", cookie)
	}
	if r := ws.do("GET", "/static/app.css", "Cookie", cookie.Name+"="+cookie.Value); r.code != 200 {
		t.Errorf("cookie: %d", r.code)
	}
	if strings.Contains(ws.stderr.String(), ws.token) || !strings.Contains(ws.stderr.String(), "status=401") {
		t.Errorf("request log:\n%s", ws.stderr.String())
	}
	// A token from the environment is required on loopback too.
	env := webEnv(t)
	env[envWebToken] = "a-chosen-token-of-some-length"
	ws2 := startWeb(t, env, tableArgs(nil, nil)...)
	if ws2.token != "" || strings.Contains(strings.Join(ws2.lines, "\n"), env[envWebToken]) {
		t.Errorf("chosen token printed: %v", ws2.lines)
	}
	if r := ws2.do("GET", "/static/app.css"); r.code != http.StatusUnauthorized {
		t.Errorf("chosen token, none sent: %d", r.code)
	}
	if r := ws2.do("GET", "/static/app.css", "Authorization", "Bearer "+env[envWebToken]); r.code != 200 {
		t.Errorf("chosen token: %d", r.code)
	}
}

// tokenCookieName is the web package's cookie name.
const tokenCookieName = "tablelog_token"

func sep(path string) string {
	if strings.Contains(path, "?") {
		return "&"
	}
	return "?"
}

// TestWebNoSecrets: no connection string, key, SAS, signature or token in
// any page, header, error or log line, including the error pages of a
// missing table and of a refused credential.
func TestWebNoSecrets(t *testing.T) {
	t.Parallel()
	env := azurite.Get(t)
	logs, audit := env.NewTable(t), env.NewTable(t)
	seedWeb(t, logs, 3)
	recordEvents(t, audit, "billing", nil, sampleEvents()[:2])
	read := accountSAS(t, aztables.AccountSASPermissions{Read: true, List: true})
	addOnly := accountSAS(t, aztables.AccountSASPermissions{Add: true})
	sigOf := func(sas string) string { return regexp.MustCompile(`sig=([^&]+)`).FindStringSubmatch(sas)[1] }
	wrongKey := "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nIQ=="
	token := "web-access-token-0123456789abcdef"
	auditKey := "web-audit-key-must-stay-on-the-server"
	secrets := []string{sigOf(read), sigOf(addOnly), wrongKey, token, auditKey, azurite.AccountKey, "AccountKey=", "SharedAccessSignature", "sig="}
	for _, s := range []string{sigOf(read), sigOf(addOnly)} {
		if u, err := url.QueryUnescape(s); err == nil {
			secrets = append(secrets, u)
		}
	}
	cases := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"read SAS URL", nil, append(tableArgs(logs, audit), "--sas", env.Proxy.ServiceURL+"?"+read)},
		{"read SAS, missing tables", nil, append(tableArgs(nil, nil), "--sas", read, "--account-url", env.Proxy.ServiceURL)},
		{"add-only SAS", nil, append(tableArgs(logs, audit), "--sas", env.Proxy.ServiceURL+"?"+addOnly)},
		{"wrong key", map[string]string{envConnectionString: "DefaultEndpointsProtocol=http;AccountName=" + azurite.AccountName + ";AccountKey=" + wrongKey + ";TableEndpoint=" + env.Proxy.ServiceURL + ";"}, tableArgs(logs, audit)},
		{"emulator key", webEnv(t), tableArgs(logs, audit)},
	}
	for _, c := range cases {
		e := map[string]string{envWebToken: token, envAuditKey: auditKey}
		for k, v := range c.env {
			e[k] = v
		}
		ws := startWeb(t, e, c.args...)
		ws.token = token
		var seen strings.Builder
		for _, path := range append(webPaths, "/logs?service=checkout&where="+url.QueryEscape("a=1 and"), "/audit/export?service=billing&format=jsonl",
			"/logs/record?service=checkout&id=01ARZ3NDEKTSV4RRFFQ69G5FAV", "/logs?service=checkout&before=01ARZ3NDEKTSV4RRFFQ69G5FAV") {
			r := ws.get(path)
			seen.WriteString(r.body)
			for k, v := range r.header {
				seen.WriteString(k + ": " + strings.Join(v, ",") + "\n")
			}
		}
		// The live tail's first events (an error, for refused credentials).
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", ws.base+"/logs/live?service=checkout", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			seen.Write(b)
			resp.Body.Close()
		}
		cancel()
		seen.WriteString(strings.Join(ws.lines, "\n"))
		seen.WriteString(ws.stderr.String())
		out := seen.String()
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s: a secret (%.12s…) appears in a page, header or log line", c.name, s)
			}
		}
		if c.name != "read SAS URL" && c.name != "emulator key" && !strings.Contains(out, `class="error"`) {
			t.Errorf("%s: no error shown", c.name)
		}
	}
}

// TestWebPageWeight: the logs view's first page of 100 typical records,
// with its stylesheet, script and icon, stays under 150 KB uncompressed;
// its permalink pins a relative time to an absolute one.
func TestWebPageWeight(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	s := newSeeder(t, tbl)
	start := time.Now().Add(-time.Minute)
	for i := 0; i < 120; i++ {
		s.zap("checkout", start.Add(time.Duration(i)*100*time.Millisecond), []zapcore.Level{zapcore.InfoLevel, zapcore.WarnLevel, zapcore.ErrorLevel}[i%3], "http",
			"request handled for a customer of the shop", zap.String("user_id", "u-"+strconv.Itoa(i%1000)), zap.String("path", "/api/v1/orders/"+strconv.Itoa(i)),
			zap.Int("status", 200), zap.Duration("elapsed", time.Duration(i)*time.Microsecond), zap.Bool("cached", i%3 == 0), zap.String("request_id", "req-0123456789abcdef"))
	}
	s.flush()
	ws := startWeb(t, webEnv(t), append(tableArgs(tbl, nil), "--quiet")...)
	page := ws.mustGet(200, "/logs?service=checkout&since=1h")
	if n := countRows(page); n != 100 {
		t.Fatalf("%d rows", n)
	}
	weight := len(page)
	for _, p := range []string{"/static/app.css", "/static/app.js", "/static/favicon.svg"} {
		weight += len(ws.mustGet(200, p))
	}
	t.Logf("page weight: %d bytes (HTML %d)", weight, len(page))
	if weight > 150*1024 {
		t.Errorf("page weight %d bytes > 150 KB", weight)
	}
	perma := href(t, page, "permalink")
	m := regexp.MustCompile(`since=([^&]+)`).FindStringSubmatch(perma)
	if m == nil {
		t.Fatalf("permalink %s", perma)
	}
	raw, _ := url.QueryUnescape(m[1])
	since, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil || time.Since(since) < 59*time.Minute || time.Since(since) > 61*time.Minute {
		t.Errorf("permalink %s: %v", perma, err)
	}
}

// TestWebUsage: web's usage errors exit 2 before anything is served, and
// --help documents it.
func TestWebUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"web", "--poll", "0s"}, "--poll and --lookback must be positive"},
		{[]string{"web", "--page-size", "0"}, "--page-size must be between 1 and 1000"},
		{[]string{"web", "--addr", "8080"}, `--addr "8080" is not HOST:PORT`},
		{[]string{"web", "extra"}, `unexpected argument "extra"`},
		{[]string{"web", "--logs-table", "no-dashes"}, "is not a valid table name"},
		{[]string{"web", "--key-file", "/nonexistent/key"}, "--key-file"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, nil, &stdout, &stderr, envMap(nil))
		if code != exitUsage || stdout.Len() != 0 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("tablelog %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", strings.Join(tt.args, " "), code, stdout.String(), stderr.String(), tt.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"web", "--help"}, nil, &stdout, &stderr, envMap(nil)); code != 0 ||
		!strings.Contains(stdout.String(), "Examples:") || !strings.Contains(stdout.String(), "-addr") {
		t.Errorf("web --help: %d\n%s", code, stdout.String())
	}
	// A busy port: a clear error, exit 1.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stderr.Reset()
	if code := run(context.Background(), []string{"web", "--addr", ln.Addr().String()}, nil, &stdout, &stderr, envMap(map[string]string{envConnectionString: testCS})); code != exitFail || !strings.Contains(stderr.String(), "listen on") {
		t.Errorf("busy port: %d %s", code, stderr.String())
	}
	if strings.Contains(stderr.String(), testKey) {
		t.Error("the error shows the key")
	}
}
