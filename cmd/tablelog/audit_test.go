package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/auditlog"
	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

func init() {
	e2eTests["audit_verify"] = testAuditVerify
	e2eTests["audit_keyed"] = testAuditKeyed
	e2eTests["audit_ls_export"] = testAuditLsExport
}

// auditNow is the fixed clock of the audit writers in these tests.
var auditNow = time.Date(2025, 11, 25, 9, 0, 0, 0, time.UTC)

// recordEvents writes events through auditlog with the fixed clock, one
// second apart.
func recordEvents(t *testing.T, tbl *aztables.Client, service string, key []byte, evs []auditlog.Event) {
	t.Helper()
	n := 0
	w, err := auditlog.New(azurite.Tablelog(t, tbl), auditlog.Options{Service: service, Key: key, Now: func() time.Time { return auditNow.Add(time.Duration(n) * time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ev := range evs {
		if _, err := w.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
		n++
	}
}

// sampleEvents are five events of a billing trail.
func sampleEvents() []auditlog.Event {
	return []auditlog.Event{
		{Actor: "alice", Action: "invoice.create", Target: "inv-42", Outcome: auditlog.Success, SourceIP: "203.0.113.7", RequestID: "req-7", Attrs: map[string]any{"amount": 120, "currency": "EUR"}},
		{Actor: "bob", Action: "invoice.delete", Target: "inv-17", Outcome: auditlog.Denied, Reason: "not the owner", SourceIP: "198.51.100.4"},
		{Actor: "alice", Action: "invoice.delete", Target: "inv-17", Outcome: auditlog.Success, Reason: "customer request", RequestID: "req-9"},
		{Actor: "=cmd|' /C calc'!A0", Action: "login", Outcome: auditlog.Failure, Reason: "bad password\nsecond line"},
		{Actor: "system", Action: "invoice.archive", Target: "inv-1", Outcome: auditlog.Error},
	}
}

// tamper changes one column of the event in slot seq, bypassing the
// proxy (directly on Azurite).
func tamper(t *testing.T, name, service string, seq int64, col, value string) {
	t.Helper()
	tbl := azurite.Get(t).DirectTable(t, name)
	js, _ := json.Marshal(map[string]string{
		schema.ColPartitionKey: schema.PartitionKey(service, auditNow),
		schema.ColRowKey:       schema.AuditRowKey(seq),
		col:                    value,
	})
	any := azcore.ETagAny
	if _, err := tbl.UpdateEntity(context.Background(), js, &aztables.UpdateEntityOptions{UpdateMode: aztables.UpdateModeMerge, IfMatch: &any}); err != nil {
		t.Fatal(err)
	}
}

func testAuditVerify(t *testing.T, bin string) {
	env := azurite.Get(t)
	tbl := env.NewTable(t)
	recordEvents(t, tbl, "billing", nil, sampleEvents())
	recordEvents(t, tbl, "shop", nil, sampleEvents()[:2])
	c := newCLI(t, bin, nil, tbl)

	// Clean: every trail of the catalog, exit 0.
	r := c.mustRun(0, "audit", "verify")
	for _, want := range []string{"service:  billing\nchecked:  5 events\nhead:     5:", "broken:   0\nresult:   OK\n", "note:     record the head outside the table's account", "cut off undetected, even with the key", "service:  shop\nchecked:  2 events\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("clean verify lacks %q:\n%s", want, r.stdout)
		}
	}
	head := regexp.MustCompile(`head:     (5:[0-9a-f]{64})`).FindStringSubmatch(r.stdout)
	if head == nil {
		t.Fatalf("no head in:\n%s", r.stdout)
	}
	// The recorded head verifies.
	c.mustRun(0, "audit", "verify", "-s", "billing", "--expect-head", head[1])

	// Modified: exit 1, the break with its position and kind.
	tamper(t, azurite.TableName(tbl), "billing", 2, "Actor", "mallory")
	r = c.mustRun(1, "audit", "verify", "-s", "billing")
	if !strings.Contains(r.stdout, "broken:   1\n  seq 2 ") || !strings.Contains(r.stdout, "modified") || !strings.HasSuffix(r.stdout, "result:   FAIL\n") {
		t.Errorf("modified:\n%s", r.stdout)
	}
	// Deleted, in json.
	direct := env.DirectTable(t, azurite.TableName(tbl))
	if _, err := direct.DeleteEntity(context.Background(), schema.PartitionKey("billing", auditNow), schema.AuditRowKey(4), nil); err != nil {
		t.Fatal(err)
	}
	r = c.mustRun(1, "audit", "verify", "-s", "billing", "-o", "json")
	var v struct {
		OK      bool
		Checked int
		Breaks  []struct {
			Kind string
			Seq  int64
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	kinds := map[string]int64{}
	for _, b := range v.Breaks {
		kinds[b.Kind] = b.Seq
	}
	if v.OK || kinds["modified"] != 2 || kinds["deleted"] != 4 {
		t.Errorf("json verify: %s", r.stdout)
	}
	// The other trail is still fine; one bad trail fails the run.
	c.mustRun(0, "audit", "verify", "-s", "shop")
	c.mustRun(1, "audit", "verify")
}

func testAuditKeyed(t *testing.T, bin string) {
	tbl := azurite.Get(t).NewTable(t)
	key := []byte("0123456789abcdef-secret-hmac-key")
	recordEvents(t, tbl, "billing", key, sampleEvents()[:3])
	c := newCLI(t, bin, nil, tbl)

	r := c.mustRun(1, "audit", "verify", "-s", "billing")
	if !strings.Contains(r.stdout, "TABLELOG_AUDIT_KEY") || !strings.Contains(r.stdout, "result:   FAIL") {
		t.Errorf("keyed trail without key:\n%s", r.stdout)
	}
	c.extra[envAuditKey] = string(key)
	r = c.mustRun(0, "audit", "verify", "-s", "billing")
	if !strings.Contains(r.stdout, "checked:  3 events") || strings.Contains(r.stdout+r.stderr, string(key)) {
		t.Errorf("keyed trail with key:\n%s", r.stdout)
	}
	// The wrong key: every event is forged.
	c.extra[envAuditKey] = "another-key-of-sixteen-bytes-or-more"
	r = c.mustRun(1, "audit", "verify", "-s", "billing")
	if !strings.Contains(r.stdout, "forged") {
		t.Errorf("wrong key:\n%s", r.stdout)
	}
	delete(c.extra, envAuditKey)
	// A truncated tail against a recorded head.
	c.mustRun(1, "audit", "verify", "-s", "billing", "--expect-head", "9:"+strings.Repeat("ab", 32), "--key-file", writeFile(t, string(key)+"\n"))
}

// writeFile writes s to a temporary file and returns its path.
func writeFile(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	hexRE    = regexp.MustCompile(`[0-9a-f]{64}`)
	storedRE = regexp.MustCompile(`"stored":"[^"]*"|,20\d\d-\d\d-\d\dT[0-9:.]+Z$`)
	ulidRE   = regexp.MustCompile(`\b[0-9A-HJKMNP-TV-Z]{26}\b`)
)

// normalizeAudit replaces the random parts of audit output: IDs, hashes
// (which cover the IDs) and the service's insert times.
func normalizeAudit(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		l = ulidRE.ReplaceAllString(l, "<ULID>")
		l = strings.ReplaceAll(l, strings.Repeat("0", 64), "<ZERO>")
		l = hexRE.ReplaceAllString(l, "<HASH>")
		l = storedRE.ReplaceAllStringFunc(l, func(m string) string {
			if strings.HasPrefix(m, `"stored"`) {
				return `"stored":"<STORED>"`
			}
			return ",<STORED>"
		})
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

func testAuditLsExport(t *testing.T, bin string) {
	tbl := azurite.Get(t).NewTable(t)
	recordEvents(t, tbl, "billing", nil, sampleEvents())
	c := newCLI(t, bin, nil, tbl)

	r := c.mustRun(0, "audit", "ls", "--utc")
	golden(t, "e2e_audit_ls.golden", []byte(r.stdout))
	r = c.mustRun(0, "audit", "ls", "-s", "billing", "--actor", "alice", "--utc")
	if strings.Count(r.stdout, "\n") != 2 || strings.Contains(r.stdout, "bob") {
		t.Errorf("--actor alice:\n%s", r.stdout)
	}
	r = c.mustRun(0, "audit", "ls", "--where", "seq>=2 and (outcome=denied or outcome=error)", "-o", "json")
	if strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stdout, `"seq":5`) || !strings.Contains(r.stdout, `"seq":2`) {
		t.Errorf("--where:\n%s", r.stdout)
	}
	r = c.mustRun(0, "audit", "ls", "--limit", "2")
	if strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stderr, "there are more") {
		t.Errorf("--limit 2: %s / %s", r.stdout, r.stderr)
	}
	c.mustRun(2, "audit", "ls", "--where", "amount>5")

	r = c.mustRun(0, "audit", "export")
	golden(t, "e2e_audit_export.jsonl.golden", []byte(normalizeAudit(r.stdout)))
	// The export carries what an independent check needs: each event
	// links to the one before.
	prev := strings.Repeat("0", 64)
	for i, line := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		var ev struct {
			Seq      int64
			Hash     string
			PrevHash string `json:"prev_hash"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Seq != int64(i+1) || ev.PrevHash != prev {
			t.Errorf("export line %d: seq %d prev_hash %s, want %d %s", i, ev.Seq, ev.PrevHash, i+1, prev)
		}
		prev = ev.Hash
	}

	r = c.mustRun(0, "audit", "export", "-o", "csv")
	golden(t, "e2e_audit_export.csv.golden", []byte(normalizeAudit(r.stdout)))
	rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil || len(rows) != 6 || rows[4][4] != "'=cmd|' /C calc'!A0" || rows[4][8] != "bad password\nsecond line" {
		t.Errorf("csv rows (%v): %q", err, rows)
	}
	r = c.mustRun(0, "audit", "export", "-o", "csv", "--raw", "--outcome", "failure")
	rows, _ = csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if len(rows) != 2 || rows[1][4] != "=cmd|' /C calc'!A0" {
		t.Errorf("csv --raw: %q", rows)
	}
	// Export by time: only the second and third event.
	r = c.mustRun(0, "audit", "export", "--since", auditNow.Add(time.Second).Format(time.RFC3339), "--until", auditNow.Add(3*time.Second).Format(time.RFC3339))
	if strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stdout, `"seq":2`) || !strings.Contains(r.stdout, `"seq":3`) {
		t.Errorf("export by time:\n%s", r.stdout)
	}
}
