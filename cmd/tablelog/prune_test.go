package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/internal/azurite"
)

func init() {
	e2eTests["prune"] = testPrune
}

func testPrune(t *testing.T, bin string) {
	tbl := azurite.Get(t).NewTable(t)
	c := newCLI(t, bin, tbl, nil)
	s := newSeeder(t, tbl)
	day := func(d int) time.Time { return time.Date(2025, 10, d, 12, 0, 0, 0, time.UTC) }
	// 250 records on Oct 1 (three delete transactions), 3 on Oct 2 and 3,
	// one per day for another service.
	for i := range 250 {
		s.zap("old", day(1).Add(time.Duration(i)*time.Millisecond), zapcore.InfoLevel, "", "r", zap.Int("i", i))
	}
	for _, d := range []int{2, 3} {
		for i := range 3 {
			s.zap("old", day(d).Add(time.Duration(i)*time.Second), zapcore.InfoLevel, "", "r", zap.Int("i", i))
		}
	}
	for _, d := range []int{1, 3} {
		s.zap("other", day(d), zapcore.InfoLevel, "", "r")
	}
	s.flush()

	// A dry run deletes nothing. --before a time mid-day keeps that day.
	r := c.mustRun(0, "prune", "--before", "2025-10-03T06:00:00Z", "--dry-run")
	want := "would delete old_20251001    250 records\n" +
		"would delete old_20251002    3 records\n" +
		"would delete other_20251001  1 record\n" +
		"dry run: would prune 3 day partitions of 2 services, 254 records, before 2025-10-03; nothing was deleted\n"
	if r.stdout != want {
		t.Errorf("dry run:\n%s\nwant:\n%s", r.stdout, want)
	}
	if r.stderr != "" { // stderr is not a terminal: no progress
		t.Errorf("stderr: %q", r.stderr)
	}
	r = c.mustRun(0, "query", "--limit", "0", "-o", "json")
	if n := strings.Count(r.stdout, "\n"); n != 258 {
		t.Fatalf("after dry run: %d records, want 258", n)
	}

	// For real, one service.
	r = c.mustRun(0, "prune", "--before", "2025-10-03", "-s", "old")
	want = "deleted old_20251001  250 records\n" +
		"deleted old_20251002  3 records\n" +
		"pruned 2 day partitions of 1 service, 253 records, before 2025-10-03\n"
	if r.stdout != want {
		t.Errorf("prune -s old:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = c.mustRun(0, "services", "--days")
	if r.stdout != "old    2025-10-03\nother  2025-10-01\nother  2025-10-03\n" {
		t.Errorf("catalog after prune:\n%s", r.stdout)
	}
	r = c.mustRun(0, "query", "-s", "old", "--limit", "0", "-o", "logfmt")
	if n := strings.Count(r.stdout, "\n"); n != 3 || strings.Contains(r.stdout, "2025-10-01") || strings.Contains(r.stdout, "2025-10-02") {
		t.Errorf("old after prune:\n%s", r.stdout)
	}

	// Again: nothing left to do.
	r = c.mustRun(0, "prune", "--before", "2025-10-03", "-s", "old")
	if r.stdout != "pruned 0 day partitions of 0 services, 0 records, before 2025-10-03\n" {
		t.Errorf("second prune:\n%s", r.stdout)
	}
	// Every service.
	r = c.mustRun(0, "prune", "--before", "2025-10-04")
	if !strings.HasSuffix(r.stdout, "pruned 3 day partitions of 2 services, 5 records, before 2025-10-04\n") {
		t.Errorf("prune all:\n%s", r.stdout)
	}
	r = c.mustRun(0, "services")
	if r.stdout != "SERVICE   DAYS  FIRST       LAST\n" {
		t.Errorf("services after pruning everything:\n%s", r.stdout)
	}

	// The future is refused.
	r = c.mustRun(2, "prune", "--before", time.Now().Add(48*time.Hour).Format(time.DateOnly))
	if !strings.Contains(r.stderr, "in the future") {
		t.Errorf("future: %s", r.stderr)
	}
}

// TestPruneProgress: with stderr a terminal, prune shows a progress line
// that it erases when done.
func TestPruneProgress(t *testing.T) {
	env := azurite.Get(t)
	tbl := env.NewTable(t)
	s := newSeeder(t, tbl)
	for i := range 120 {
		s.zap("old", time.Date(2025, 10, 1, 0, 0, 0, i, time.UTC), zapcore.InfoLevel, "", "r")
	}
	s.flush()
	var stdout, stderr bytes.Buffer
	a := newApp(nil, &stdout, &stderr, envMap(map[string]string{envConnectionString: env.ConnectionString}))
	a.isTerminal = func(w io.Writer) bool { return w == &stderr }
	code := a.run(context.Background(), []string{"prune", "--logs-table", azurite.TableName(tbl), "--before", "2025-10-02"})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "\r\x1b[Kdeleting old_20251001 (1/1): 120 records") || !strings.HasSuffix(stderr.String(), "\r\x1b[K") {
		t.Errorf("progress: %q", stderr.String())
	}
	if stdout.String() != "deleted old_20251001  120 records\npruned 1 day partition of 1 service, 120 records, before 2025-10-02\n" {
		t.Errorf("stdout: %q", stdout.String())
	}
}
