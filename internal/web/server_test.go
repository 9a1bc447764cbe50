package web

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tablelog/tablelog/query"
)

// The end-to-end tests (Azurite, Chromium) are in cmd/tablelog, where the
// server gets the CLI's syntax and export; these test the parts that need
// no table.

func testOptions() Options {
	return Options{
		Syntax: Syntax{
			Where:      func(string) (query.Filter, error) { return query.Filter{}, nil },
			AuditWhere: func(string) (query.Filter, error) { return query.Filter{}, nil },
			Time:       func(string, time.Time) (time.Time, error) { return time.Time{}, nil },
			Level:      func(string) (int, error) { return 0, nil },
		},
		Export: func(context.Context, io.Writer, query.Audit, string) error { return nil },
	}
}

func TestNewRequiresSyntaxAndExport(t *testing.T) {
	o := testOptions()
	o.Syntax.Where = nil
	if _, err := New(o); err == nil {
		t.Error("New without Syntax.Where")
	}
	o = testOptions()
	o.Export = nil
	if _, err := New(o); err == nil {
		t.Error("New without Export")
	}
	if _, err := New(testOptions()); err != nil {
		t.Error(err)
	}
}

func TestIsLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.1.2.3:80": true, "[::1]:8080": true, "localhost:8080": true, "LocalHost:1": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "10.0.0.1:8080": false, "example.com:80": false,
		"127.0.0.1": false, "localhost.example.com:80": false,
	} {
		if got := IsLoopbackAddr(addr); got != want {
			t.Errorf("IsLoopbackAddr(%q) = %v", addr, got)
		}
	}
}

// TestHeadersOnEveryAnswer: the security headers are on pages, static
// files, 404, 405 and 403 answers alike.
func TestHeadersOnEveryAnswer(t *testing.T) {
	s, err := New(testOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path, host string
		want               int
	}{
		{"GET", "/logs", "127.0.0.1:1", 200},
		{"GET", "/static/app.js", "localhost", 200},
		{"GET", "/static/layout.html", "localhost", 404},
		{"GET", "/static/server.go", "localhost", 404},
		{"GET", "/nope", "localhost", 404},
		{"POST", "/logs", "localhost", 405},
		{"HEAD", "/logs", "localhost", 405},
		{"GET", "/logs", "evil.example", 403},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		req.Host = tc.host
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != tc.want {
			t.Errorf("%s %s (Host %s): %d, want %d", tc.method, tc.path, tc.host, w.Code, tc.want)
		}
		h := w.Header()
		if h.Get("Content-Security-Policy") != contentSecurityPolicy || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s %s: headers %v", tc.method, tc.path, h)
		}
	}
}

// A view without its table says so (the CLI always configures both; the
// catalog's empty and redirect cases are in cmd/tablelog's TestWebEmpty and
// TestWebLogs).
func TestViewWithoutTable(t *testing.T) {
	s, err := New(testOptions())
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/logs": "no logs table configured", "/audit": "no audit table configured"} {
		req := httptest.NewRequest("GET", path, nil)
		req.Host = "localhost"
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != 200 || !strings.Contains(w.Body.String(), want) {
			t.Errorf("%s: %d, want 200 with %q:\n%s", path, w.Code, want, w.Body.String())
		}
	}
}

// TestTemplatesHaveNoInlineScript: no page may need 'unsafe-inline'.
func TestTemplatesHaveNoInlineScript(t *testing.T) {
	entries, err := assets.ReadDir("assets")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".html") {
			continue
		}
		b, _ := assets.ReadFile("assets/" + e.Name())
		src := strings.ToLower(string(b))
		for _, bad := range []string{"<script>", " on", "style=", "<style", "javascript:"} {
			if bad == " on" {
				for _, ev := range []string{" onclick", " onload", " onerror", " onchange", " onsubmit", " oninput"} {
					if strings.Contains(src, ev) {
						t.Errorf("%s has an inline handler %q", e.Name(), ev)
					}
				}
				continue
			}
			if strings.Contains(src, bad) {
				t.Errorf("%s has %q", e.Name(), bad)
			}
		}
	}
}

func TestHistogram(t *testing.T) {
	t0 := time.Date(2025, 11, 25, 10, 0, 0, 0, time.UTC)
	var rows []recordRow
	for i := range 100 {
		rows = append(rows, recordRow{t: t0.Add(time.Duration(i) * time.Second), Class: levelClass([]int{-4, 0, 4, 8, 12}[i%5])})
	}
	h := buildHistogram(rows)
	if h.Bucket != "2s" || len(h.Bars) != 50 || h.Max != 2 || h.Total != 100 {
		t.Errorf("bucket %s, %d bars, max %d, total %d", h.Bucket, len(h.Bars), h.Max, h.Total)
	}
	n := 0
	for _, c := range h.Counts {
		n += c.N
	}
	if n != 100 || len(h.Counts) != 5 {
		t.Errorf("counts %v", h.Counts)
	}
	if svg := string(h.SVG); strings.Count(svg, "<g>") != 50 || !strings.Contains(svg, `class="lv-fatal"`) {
		t.Errorf("svg %.200s", svg)
	}
	if buildHistogram(nil) != nil {
		t.Error("histogram of nothing")
	}
	// One record: one bar.
	if h := buildHistogram(rows[:1]); len(h.Bars) != 1 || h.Max != 1 {
		t.Errorf("one record: %d bars", len(h.Bars))
	}
}

func TestCut(t *testing.T) {
	if got := cut("héllo wörld", 5); got != "héllo… (7 bytes more)" {
		t.Errorf("cut: %q", got)
	}
	if got := cut("short", 5); got != "short" {
		t.Errorf("cut: %q", got)
	}
}

func TestFieldTree(t *testing.T) {
	tree := fieldTree(map[string]any{"b": int64(2), "a": map[string]any{"z": true, "y": "s"}, "c": []any{1.5, "x"}})
	if len(tree) != 3 || tree[0].Key != "a" || tree[0].Type != "group" || tree[0].Children[0].Key != "y" ||
		tree[1].Text != "2" || tree[1].Type != "int" || tree[2].Type != "json" || tree[2].Text != `[1.5,"x"]` {
		t.Errorf("tree %+v", tree)
	}
}

func TestParseHead(t *testing.T) {
	h := strings.Repeat("ab", 32)
	if hd, err := parseHead("12:" + h); err != nil || hd.Seq != 12 {
		t.Errorf("parseHead: %v %v", hd, err)
	}
	for _, bad := range []string{"12", "0:" + h, "x:" + h, "12:zz"} {
		if _, err := parseHead(bad); err == nil {
			t.Errorf("parseHead(%q) accepted", bad)
		}
	}
}
