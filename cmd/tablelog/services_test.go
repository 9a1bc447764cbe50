package main

import (
	"strings"
	"testing"

	"github.com/tablelog/tablelog/internal/azurite"
)

func init() {
	e2eTests["services"] = testServices
}

func testServices(t *testing.T, bin string) {
	tbl := azurite.Get(t).NewTable(t)
	c := newCLI(t, bin, tbl, nil)
	// An empty table: a header and nothing else.
	r := c.mustRun(0, "services")
	if r.stdout != "SERVICE  DAYS  FIRST  LAST\n" {
		t.Errorf("empty table:\n%q", r.stdout)
	}
	// tail without -s on an empty catalog explains itself.
	r = c.mustRun(1, "tail")
	if !strings.Contains(r.stderr, "lists no services") {
		t.Errorf("tail on an empty catalog: %s", r.stderr)
	}

	seedGolden(t, tbl)
	r = c.mustRun(0, "services")
	golden(t, "e2e_services.golden", []byte(r.stdout))
	r = c.mustRun(0, "services", "--days")
	golden(t, "e2e_services_days.golden", []byte(r.stdout))
	r = c.mustRun(0, "services", "-o", "json", "-s", "checkout")
	if r.stdout != `{"service":"checkout","days":["2025-11-24","2025-11-25"]}`+"\n" {
		t.Errorf("json:\n%s", r.stdout)
	}
}
