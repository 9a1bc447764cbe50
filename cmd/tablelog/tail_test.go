package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/internal/azurite"
)

func init() {
	e2eTests["tail_golden"] = testTailGolden
	e2eTests["tail_follow"] = testTailFollow
	e2eTests["tail_filters"] = testTailFilters
}

// midnight is the day boundary the golden records straddle.
var midnight = time.Date(2025, 11, 25, 0, 0, 0, 0, time.UTC)

// seedGolden writes the records of the golden tests: services checkout
// (zap) and billing (slog) on both sides of midnight, fixed times.
func seedGolden(t *testing.T, tbl *aztables.Client) {
	t.Helper()
	s := newSeeder(t, tbl)
	m := midnight
	s.zap("checkout", m.Add(-1750*time.Millisecond), zapcore.InfoLevel, "http", "request served",
		zap.String("method", "GET"), zap.String("path", "/cart"), zap.Int("status", 200), zap.String("user_id", "u-1"), zap.Duration("took", 12*time.Millisecond))
	s.zap("checkout", m.Add(-500*time.Millisecond), zapcore.DebugLevel, "cart", "cart loaded", zap.String("user_id", "u-1"), zap.Int("items", 3))
	s.zap("checkout", m.Add(1*time.Second), zapcore.WarnLevel, "http", "slow request",
		zap.String("method", "POST"), zap.String("path", "/pay"), zap.Float64("seconds", 2.5), zap.Int("status", 200), zap.String("user_id", "u-1"))
	s.zap("checkout", m.Add(2500*time.Millisecond), zapcore.ErrorLevel, "payment", "charge failed",
		zap.Error(errors.New("card issuer timeout")), zap.Int("status", 502), zap.String("user_id", "u-2"), zap.Bool("retry", true))
	s.zap("checkout", m.Add(3*time.Second), zapcore.InfoLevel, "http", "request served",
		zap.String("method", "POST"), zap.String("path", "/pay"), zap.Int("status", 503), zap.String("user_id", "u-2"))
	s.zap("checkout", m.Add(4*time.Second), zapcore.InfoLevel, "", "' or 1 eq 1",
		zap.String("name", "it's"), zap.String("note", "evil\x1b[31m\nsecond line"))
	s.slog("billing", m.Add(-1*time.Second), slog.LevelInfo, "invoice created",
		slog.String("invoice", "inv-42"), slog.Group("req", slog.String("method", "POST"), slog.String("id", "req-7")), slog.Int("amount", 120))
	s.slog("billing", m.Add(2*time.Second), slog.LevelWarn, "invoice overdue", slog.String("invoice", "inv-17"), slog.Int("days", 12))
	s.flush()
}

func testTailGolden(t *testing.T, bin string) {
	tbl := azurite.Get(t).NewTable(t)
	seedGolden(t, tbl)
	c := newCLI(t, bin, tbl, nil)

	r := c.mustRun(0, "tail", "--utc", "--color", "never")
	golden(t, "e2e_tail_all.golden", []byte(r.stdout))
	if r.stderr != "" {
		t.Errorf("stderr: %s", r.stderr)
	}

	r = c.mustRun(0, "tail", "-s", "checkout", "-n", "3", "-o", "json")
	golden(t, "e2e_tail_json.golden", []byte(normalizeIDs(r.stdout)))

	r = c.mustRun(0, "tail", "-s", "billing", "-o", "logfmt")
	golden(t, "e2e_tail_logfmt.golden", []byte(r.stdout))

	r = c.mustRun(0, "tail", "-s", "checkout", "-n", "2", "--color", "always", "--utc")
	golden(t, "e2e_tail_color.golden", []byte(r.stdout))

	// The local zone without --utc.
	if _, err := os.Stat("/usr/share/zoneinfo/Asia/Kolkata"); err == nil {
		c.extra["TZ"] = "Asia/Kolkata"
		r = c.mustRun(0, "tail", "-s", "billing")
		golden(t, "e2e_tail_local.golden", []byte(r.stdout))
		c.extra["TZ"] = "UTC"
	}

	// Colour auto: stdout is a pipe, so no colour; NO_COLOR wins over a terminal.
	r = c.mustRun(0, "tail", "-s", "billing", "--color", "auto")
	if strings.Contains(r.stdout, "\x1b[") {
		t.Errorf("colour on a pipe:\n%s", r.stdout)
	}
}

func testTailFilters(t *testing.T, bin string) {
	tbl := azurite.Get(t).NewTable(t)
	seedGolden(t, tbl)
	c := newCLI(t, bin, tbl, nil)
	lines := func(r result) []string {
		return strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	}
	// -n picks the newest, shown oldest first, across services.
	r := c.mustRun(0, "tail", "-n", "2", "--utc")
	if l := lines(r); len(l) != 2 || !strings.Contains(l[0], "request served") || !strings.Contains(l[1], "' or 1 eq 1") {
		t.Errorf("tail -n 2:\n%s", r.stdout)
	}
	// --level.
	r = c.mustRun(0, "tail", "-s", "checkout", "--level", "warn", "--utc")
	if l := lines(r); len(l) != 2 || !strings.Contains(l[0], "WARN") || !strings.Contains(l[1], "ERROR") {
		t.Errorf("--level warn:\n%s", r.stdout)
	}
	// --grep matches key=value and messages, client-side, and still fills -n.
	r = c.mustRun(0, "tail", "-s", "checkout", "-n", "1", "--grep", "user_id=u-1$")
	if l := lines(r); len(l) != 1 || !strings.Contains(l[0], "slow request") {
		t.Errorf("--grep user_id=u-1$ -n 1:\n%s", r.stdout)
	}
	// --since/--until across midnight, to the millisecond.
	r = c.mustRun(0, "tail", "-s", "checkout", "--since", "2025-11-24T23:59:59.5Z", "--until", "2025-11-25T00:00:02.5Z", "--utc")
	if l := lines(r); len(l) != 2 || !strings.Contains(l[0], "cart loaded") || !strings.Contains(l[1], "slow request") {
		t.Errorf("--since/--until:\n%s", r.stdout)
	}
	// --where on a group attribute (slog) and a dotted key.
	r = c.mustRun(0, "tail", "--where", "req.method=POST", "--utc")
	if l := lines(r); len(l) != 1 || !strings.Contains(l[0], "invoice created") {
		t.Errorf("--where req.method=POST:\n%s", r.stdout)
	}
	// Nothing matches: empty output, exit 0.
	r = c.mustRun(0, "tail", "-s", "checkout", "--where", "user_id=nobody")
	if r.stdout != "" {
		t.Errorf("no match printed:\n%s", r.stdout)
	}
	// A missing table is a clear failure.
	c2 := *c
	c2.logs = "nosuchtable"
	r = c2.mustRun(1, "tail", "-s", "checkout")
	if !strings.Contains(r.stderr, "table not found") {
		t.Errorf("missing table: %s", r.stderr)
	}
	// The library's error as it is: its package prefix once, after the
	// command's.
	if !strings.HasPrefix(r.stderr, "tablelog tail: tablelog/query: ") || strings.Count(r.stderr, "tablelog/query: ") != 1 {
		t.Errorf("missing table: %s", r.stderr)
	}
}

func testTailFollow(t *testing.T, bin string) {
	tbl := azurite.Get(t).NewTable(t)
	c := newCLI(t, bin, tbl, nil)
	s := newSeeder(t, tbl)
	now := time.Now().UTC()
	for i := range 3 {
		s.zap("web", now.Add(time.Duration(i-3)*time.Second), zapcore.InfoLevel, "", "before", zap.Int("i", i))
	}
	s.flush()
	p := c.start("tail", "-s", "web", "-n", "2", "-f", "--poll", "100ms", "-o", "logfmt")
	for _, want := range []string{"i=1", "i=2"} {
		if l := p.next(t, 20*time.Second); !strings.Contains(l, want) {
			t.Fatalf("tail line %q, want %s", l, want)
		}
	}
	// Records written while following arrive, once each, in order; a
	// record of another service does not.
	for i := range 5 {
		s.zap("web", time.Now(), zapcore.InfoLevel, "", "during", zap.Int("j", i))
		s.zap("other", time.Now(), zapcore.InfoLevel, "", "elsewhere")
		if i%2 == 0 {
			s.flush()
		}
	}
	s.flush()
	for i := range 5 {
		l := p.next(t, 20*time.Second)
		if !strings.Contains(l, "msg=during") || !strings.Contains(l, "j="+string(rune('0'+i))) {
			t.Fatalf("followed line %d: %q", i, l)
		}
	}
	// Ctrl-C ends following with exit 0.
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-p.done
	err := p.cmd.Wait()
	if err != nil {
		t.Fatalf("after SIGINT: %v; stderr:\n%s", err, p.stderr.String())
	}
	select {
	case l := <-p.lines:
		t.Errorf("extra line: %q", l)
	default:
	}
}

func TestParseTimeArg(t *testing.T) {
	now := time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := map[string]time.Time{
		"now":                       now,
		"10m":                       now.Add(-10 * time.Minute),
		"1h30m":                     now.Add(-90 * time.Minute),
		"7d":                        now.AddDate(0, 0, -7),
		"2w":                        now.AddDate(0, 0, -14),
		"0s":                        now,
		"2025-11-24":                time.Date(2025, 11, 24, 0, 0, 0, 0, time.UTC),
		"2025-11-24T10:00:00Z":      time.Date(2025, 11, 24, 10, 0, 0, 0, time.UTC),
		"2025-11-24T10:00:00+02:00": time.Date(2025, 11, 24, 8, 0, 0, 0, time.UTC),
		"2025-11-24T10:00:00.5Z":    time.Date(2025, 11, 24, 10, 0, 0, 5e8, time.UTC),
	}
	for in, want := range tests {
		got, err := parseTimeArg(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTimeArg(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "-5m", "10", "d", "1.5d", "2025-11-24T10:00:00", "2025-13-01", "99999999d"} {
		if got, err := parseTimeArg(bad, now); err == nil {
			t.Errorf("parseTimeArg(%q) = %v, want an error", bad, got)
		}
	}
}

// TestInjectedClock runs the program in process with a fixed clock and
// zone: relative times count from the clock, text times use the zone.
func TestInjectedClock(t *testing.T) {
	env := azurite.Get(t)
	tbl := env.NewTable(t)
	seedGolden(t, tbl)
	var stdout, stderr bytes.Buffer
	a := newApp(nil, &stdout, &stderr, envMap(map[string]string{envConnectionString: env.ConnectionString}))
	a.now = func() time.Time { return midnight.Add(5 * time.Second) }
	a.loc = time.FixedZone("UTC-3", -3*3600)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := a.run(ctx, []string{"query", "--logs-table", azurite.TableName(tbl), "--since", "4s", "--until", "1s", "--color", "never"})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	golden(t, "inprocess_clock.golden", stdout.Bytes())
}
