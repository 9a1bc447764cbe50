package main

import (
	"strings"
	"testing"

	"github.com/tablelog/tablelog/internal/azurite"
)

func init() {
	e2eTests["query"] = testQuery
	e2eTests["query_hostile_where"] = testQueryHostileWhere
}

func testQuery(t *testing.T, bin string) {
	tbl := azurite.Get(t).NewTable(t)
	seedGolden(t, tbl)
	c := newCLI(t, bin, tbl, nil)

	// Newest first, server-side where on an integer field and the level.
	r := c.mustRun(0, "query", "-s", "checkout", "--where", "status>=500 or level>=error", "--utc")
	golden(t, "e2e_query_where.golden", []byte(r.stdout))

	// Every service, merged newest first, logfmt, no limit.
	r = c.mustRun(0, "query", "--limit", "0", "-o", "logfmt")
	golden(t, "e2e_query_all_logfmt.golden", []byte(r.stdout))
	if r.stderr != "" {
		t.Errorf("stderr: %s", r.stderr)
	}

	// --limit stops early and says there is more.
	r = c.mustRun(0, "query", "-s", "checkout", "--limit", "2", "-o", "json")
	if n := strings.Count(r.stdout, "\n"); n != 2 {
		t.Errorf("--limit 2 printed %d lines:\n%s", n, r.stdout)
	}
	if !strings.Contains(r.stderr, "showing the newest 2 records; there are more") {
		t.Errorf("--limit 2 stderr: %q", r.stderr)
	}
	// Exactly the limit: no note.
	r = c.mustRun(0, "query", "-s", "billing", "--limit", "2")
	if strings.Count(r.stdout, "\n") != 2 || r.stderr != "" {
		t.Errorf("--limit 2 of 2: stdout %q stderr %q", r.stdout, r.stderr)
	}

	// Float and boolean fields, a time range across midnight.
	r = c.mustRun(0, "query", "-s", "checkout", "--where", "seconds>2.0 and user_id=u-1", "--since", "2025-11-24", "--until", "2025-11-26")
	if strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, "slow request") {
		t.Errorf("float where:\n%s", r.stdout)
	}
	r = c.mustRun(0, "query", "-s", "checkout", "--where", "retry=true")
	if strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, "charge failed") {
		t.Errorf("bool where:\n%s", r.stdout)
	}
	// --grep on the client, with --where on the server.
	r = c.mustRun(0, "query", "--grep", "(?i)TIMEOUT", "--where", "level>=warn")
	if strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, "card issuer timeout") {
		t.Errorf("grep:\n%s", r.stdout)
	}
	// Services given as arguments.
	r = c.mustRun(0, "query", "billing", "--level", "warn")
	if strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, "invoice overdue") {
		t.Errorf("positional service:\n%s", r.stdout)
	}
}

// testQueryHostileWhere: hostile values reach the service as one literal
// and select exactly the right rows.
func testQueryHostileWhere(t *testing.T, bin string) {
	tbl := azurite.Get(t).NewTable(t)
	seedGolden(t, tbl)
	c := newCLI(t, bin, tbl, nil)
	count := func(where string) int {
		t.Helper()
		r := c.mustRun(0, "query", "-s", "checkout", "--where", where, "-o", "json")
		return strings.Count(r.stdout, "\n")
	}
	for _, tt := range []struct {
		where string
		want  int
	}{
		{`msg="' or 1 eq 1"`, 1},
		{`msg=''' or 1 eq 1'`, 1},
		{`name='it''s'`, 1},
		{`name="it's"`, 1},
		{`name="it's' or 'a' eq 'a"`, 0},
		{`user_id="u-1' or user_id ne '"`, 0},
		{`"user_id) or (1 eq 1"=x`, 0},
		{`note="evil\x"`, -1},
		{`user_id=u-1`, 3},
		{`user_id!=u-1`, 2},
		{`not user_id=u-1`, 3}, // records without user_id match "not"
		{`名前=値`, 0},
	} {
		if tt.want < 0 {
			c.mustRun(2, "query", "-s", "checkout", "--where", tt.where)
			continue
		}
		if got := count(tt.where); got != tt.want {
			t.Errorf("--where %s: %d records, want %d", tt.where, got, tt.want)
		}
	}
	// An unterminated quote is a usage error, not a query.
	r := c.mustRun(2, "query", "-s", "checkout", "--where", `msg=' or 1 eq 1`)
	if !strings.Contains(r.stderr, "unterminated quoted string") {
		t.Errorf("stderr: %s", r.stderr)
	}
}
