package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
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

	// Without --yes, and with no terminal to ask on, a dry run: the cut-off
	// day and what would go, nothing deleted.
	r := c.mustRun(0, "prune", "--before", "2025-10-03")
	want := "cut-off 2025-10-03 (UTC): the days before it go, it and later days are kept\n" +
		"would delete old_20251001    250 records\n" +
		"would delete old_20251002    3 records\n" +
		"would delete other_20251001  1 record\n" +
		"dry run: would prune 3 day partitions of 2 services, 254 records, before 2025-10-03; nothing was deleted (pass --yes to delete; stdin is not a terminal to ask on)\n"
	if r.stdout != want {
		t.Errorf("without --yes:\n%s\nwant:\n%s", r.stdout, want)
	}
	if r.stderr != "" { // stderr is not a terminal: no progress
		t.Errorf("stderr: %q", r.stderr)
	}
	r = c.mustRun(0, "prune", "--before", "2025-10-03", "--dry-run")
	if !strings.HasSuffix(r.stdout, "dry run: would prune 3 day partitions of 2 services, 254 records, before 2025-10-03; nothing was deleted\n") {
		t.Errorf("dry run:\n%s", r.stdout)
	}
	r = c.mustRun(0, "query", "--limit", "0", "-o", "json")
	if n := strings.Count(r.stdout, "\n"); n != 258 {
		t.Fatalf("after dry runs: %d records, want 258", n)
	}

	// For real, one service.
	r = c.mustRun(0, "prune", "--before", "2025-10-03", "-s", "old", "--yes")
	want = "cut-off 2025-10-03 (UTC): the days before it go, it and later days are kept\n" +
		"would delete old_20251001  250 records\n" +
		"would delete old_20251002  3 records\n" +
		"deleted old_20251001  250 records\n" +
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
	r = c.mustRun(0, "prune", "--before", "2025-10-03", "-s", "old", "--yes")
	if r.stdout != "cut-off 2025-10-03 (UTC): the days before it go, it and later days are kept\nnothing to prune before 2025-10-03\n" {
		t.Errorf("second prune:\n%s", r.stdout)
	}
	// Every service.
	r = c.mustRun(0, "prune", "--before", "2025-10-04", "--yes")
	if !strings.HasSuffix(r.stdout, "pruned 3 day partitions of 2 services, 5 records, before 2025-10-04\n") {
		t.Errorf("prune all:\n%s", r.stdout)
	}
	r = c.mustRun(0, "services")
	if r.stdout != "SERVICE  DAYS  FIRST  LAST\n" {
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
	code := a.run(context.Background(), []string{"prune", "--logs-table", azurite.TableName(tbl), "--before", "2025-10-02", "--yes"})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "\r\x1b[Kcounting old_20251001 (1/1): 120 records") ||
		!strings.Contains(stderr.String(), "\r\x1b[Kdeleting old_20251001 (1/1): 120 records") || !strings.HasSuffix(stderr.String(), "\r\x1b[K") {
		t.Errorf("progress: %q", stderr.String())
	}
	if !strings.HasSuffix(stdout.String(), "deleted old_20251001  120 records\npruned 1 day partition of 1 service, 120 records, before 2025-10-02\n") {
		t.Errorf("stdout: %q", stdout.String())
	}
}

// TestPruneBefore: --before takes a date or N days or weeks (N >= 1) before
// today, and refuses durations and zero with a clear message, before any
// request ("30m" once meant "everything but today").
func TestPruneBefore(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 30, 0, 0, time.UTC)
	for in, want := range map[string]string{
		"2025-11-01": "2025-11-01",
		"1d":         "2026-12-05",
		"30d":        "2026-11-06",
		"4w":         "2026-11-08",
		" 7d ":       "2026-11-29",
	} {
		got, err := parseCutoff(in, now)
		if err != nil || got.Format(time.DateOnly) != want || got.Location() != time.UTC || !got.Equal(got.Truncate(24*time.Hour)) {
			t.Errorf("parseCutoff(%q) = %v, %v; want %s 00:00 UTC", in, got, err, want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"30m", "durations such as 30m or 12h are not accepted"},
		{"30s", "durations such as 30m or 12h are not accepted"},
		{"12h", "durations such as 30m or 12h are not accepted"},
		{"0", "neither a date"},
		{"0d", "must be at least 1"},
		{"0w", "must be at least 1"},
		{"-1d", "must be at least 1"},
		{"30", "neither a date"},
		{"30dd", "neither a date"},
		{"d", "neither a date"},
		{"2025-11-1", "neither a date"},
		{"2025-11-01T00:00:00Z", "neither a date"},
		{"99999d", "more than 100 years"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"prune", "--before", c.in, "--yes"}, nil, &stdout, &stderr, envMap(nil))
		if code != exitUsage || !strings.Contains(stderr.String(), "--before") || !strings.Contains(stderr.String(), c.want) || stdout.Len() != 0 {
			t.Errorf("--before %q: exit %d, stderr %q; want exit %d and %q", c.in, code, stderr.String(), exitUsage, c.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"prune", "--before", "3d", "--yes", "--dry-run"}, nil, &stdout, &stderr, envMap(nil)); code != exitUsage {
		t.Errorf("--yes --dry-run: exit %d (%s)", code, stderr.String())
	}
}

// TestPruneConfirm: on a terminal, prune asks before deleting and deletes
// only on y.
func TestPruneConfirm(t *testing.T) {
	env := azurite.Get(t)
	tbl := env.NewTable(t)
	s := newSeeder(t, tbl)
	for i := range 5 {
		s.zap("old", time.Date(2025, 10, 1, 0, 0, i, 0, time.UTC), zapcore.InfoLevel, "", "r")
	}
	s.flush()
	prune := func(answer string) (string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		a := newApp(strings.NewReader(answer), &stdout, &stderr, envMap(map[string]string{envConnectionString: env.ConnectionString}))
		a.stdinTerminal = func() bool { return true }
		if code := a.run(context.Background(), []string{"prune", "--logs-table", azurite.TableName(tbl), "--before", "2025-10-02"}); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	for _, no := range []string{"n\n", "\n", "", "yes please\n"} {
		out, errOut := prune(no)
		if !strings.Contains(errOut, "delete 5 records in 1 day partition? [y/N] ") || !strings.HasSuffix(out, "not confirmed: nothing was deleted\n") {
			t.Errorf("answer %q: stdout %q, stderr %q", no, out, errOut)
		}
	}
	if n := countEntities(t, tbl); n != 5+1 { // and the catalog entity
		t.Fatalf("%d entities after declining, want 6", n)
	}
	out, _ := prune("Y\n")
	if !strings.HasSuffix(out, "pruned 1 day partition of 1 service, 5 records, before 2025-10-02\n") {
		t.Errorf("confirmed: %q", out)
	}
	if n := countEntities(t, tbl); n != 0 {
		t.Errorf("%d entities after confirming, want 0", n)
	}
}

// countEntities counts every entity of tbl, the catalog included.
func countEntities(t *testing.T, tbl *aztables.Client) int {
	t.Helper()
	n := 0
	pager := tbl.NewListEntitiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Entities)
	}
	return n
}

// TestPruneRefusesAuditTable: prune pointed at an audit table (the catalog
// format is shared) deletes nothing: refused by the genesis claim, and
// without it by the events' columns or their slots.
func TestPruneRefusesAuditTable(t *testing.T) {
	env := azurite.Get(t)
	audit := env.NewTable(t)
	recordEvents(t, audit, "billing", nil, sampleEvents())
	before := countEntities(t, audit)
	prune := func() (int, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		a := newApp(nil, &stdout, &stderr, envMap(map[string]string{envConnectionString: env.ConnectionString}))
		code := a.run(context.Background(), []string{"prune", "--logs-table", azurite.TableName(audit), "--before", "2025-11-26", "--yes"})
		return code, stderr.String()
	}
	code, msg := prune()
	if code != 1 || !strings.Contains(msg, "holds audit trails") || !strings.Contains(msg, "genesis") {
		t.Errorf("audit table: exit %d, %q", code, msg)
	}
	if n := countEntities(t, audit); n != before {
		t.Fatalf("%d entities left of %d", n, before)
	}

	// The genesis claim gone (a careless cleanup): the events' columns.
	if _, err := audit.DeleteEntity(t.Context(), "~catalog", schema.AuditGenesisRowKey("billing", 0), nil); err != nil {
		t.Fatal(err)
	}
	before--
	code, msg = prune()
	if code != 1 || !strings.Contains(msg, "holds audit trails") || !strings.Contains(msg, "billing_20251125 holds audit events") {
		t.Errorf("audit table without genesis: exit %d, %q", code, msg)
	}
	if n := countEntities(t, audit); n != before {
		t.Fatalf("%d entities left of %d", n, before)
	}

	// An audit slot among log records (columns stripped): refused too.
	logs := env.NewTable(t)
	s := newSeeder(t, logs)
	s.zap("svc", time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC), zapcore.InfoLevel, "", "r", zap.String("Hash", "h"))
	s.flush()
	if _, err := logs.AddEntity(t.Context(), []byte(`{"PartitionKey":"svc_20251125","RowKey":"9223372036854775806","Actor":"x"}`), nil); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	a := newApp(nil, &stdout, &stderr, envMap(map[string]string{envConnectionString: env.ConnectionString}))
	code = a.run(context.Background(), []string{"prune", "--logs-table", azurite.TableName(logs), "--before", "2025-11-26", "--yes"})
	if code != 1 || !strings.Contains(stderr.String(), "holds the audit slot 9223372036854775806") {
		t.Errorf("audit slot: exit %d, %q", code, stderr.String())
	}
	if n := countEntities(t, logs); n != 3 {
		t.Errorf("%d entities left, want 3", n)
	}
}

// deleteFake counts delete transactions and how many were in flight at once;
// transactions whose first key is in fail are refused (HTTP 400).
type deleteFake struct {
	pruneTable // nil: only SubmitTransaction is called
	fail       map[string]bool

	mu       sync.Mutex
	inFlight int
	maxIn    int
	deleted  int
	calls    int
}

func (f *deleteFake) SubmitTransaction(ctx context.Context, actions []aztables.TransactionAction, _ *aztables.SubmitTransactionOptions) (aztables.TransactionResponse, error) {
	f.mu.Lock()
	f.calls++
	f.inFlight++
	f.maxIn = max(f.maxIn, f.inFlight)
	f.mu.Unlock()
	time.Sleep(5 * time.Millisecond) // let the others start
	var first map[string]string
	if err := json.Unmarshal(actions[0].Entity, &first); err != nil {
		return aztables.TransactionResponse{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight--
	if f.fail[first[schema.ColRowKey]] {
		return aztables.TransactionResponse{}, &azcore.ResponseError{StatusCode: http.StatusBadRequest, ErrorCode: "InvalidInput"}
	}
	f.deleted += len(actions)
	return aztables.TransactionResponse{}, nil
}

// Every transaction is tried, at most deleteTransactions at a time, and a
// failed one is the error.
func TestDeleteKeysLimitAndErrors(t *testing.T) {
	keys := make([]string, 0, 1050)
	for i := range 1050 {
		keys = append(keys, fmt.Sprintf("k%04d", i))
	}
	f := &deleteFake{fail: map[string]bool{"k0300": true, "k0700": true}}
	err := deleteKeys(context.Background(), f, "svc_20251125", keys)
	if err == nil || !strings.Contains(err.Error(), "delete records of svc_20251125") || !strings.Contains(err.Error(), "HTTP 400") {
		t.Errorf("err = %v, want the failed transaction's", err)
	}
	if f.calls != 11 || f.deleted != 1050-200 {
		t.Errorf("%d transactions deleting %d keys, want 11 deleting %d", f.calls, f.deleted, 1050-200)
	}
	if f.maxIn > deleteTransactions || f.maxIn < 2 {
		t.Errorf("%d transactions in flight at once, want 2..%d", f.maxIn, deleteTransactions)
	}
	f = &deleteFake{}
	if err := deleteKeys(context.Background(), f, "svc_20251125", keys); err != nil || f.deleted != 1050 {
		t.Errorf("no failures: %v, %d deleted", err, f.deleted)
	}
}
