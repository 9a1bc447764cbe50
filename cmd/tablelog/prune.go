package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"golang.org/x/sync/errgroup"

	"github.com/tablelog/tablelog/internal/azure"
	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/query"
)

const pruneUsage = `
Usage: tablelog prune --before DATE|Nd|Nw [-s SERVICE]... [--yes | --dry-run]

Retention for the logs table: deletes every UTC day partition before the
cut-off day, whole (a partition is never deleted in part), in transactions
of 100 deletes, and removes the pruned days from the catalog. Days are
found in the catalog the sink writes.

--before is a date (2025-11-01: that day and later ones are kept) or a
number of days or weeks before today, at least 1 (30d: today and the 30
days before it are kept). Durations such as 30m or 12h are refused: prune
deletes whole days.

Prune first prints the cut-off day and what would go (each day partition
with its records), then deletes only with --yes, or after you answer y
when stdin is a terminal; otherwise it was a dry run. Progress goes to
stderr when it is a terminal.

Prune refuses a table that holds audit trails (a genesis claim in its
catalog, or entities with audit keys or columns): they are never pruned.

Examples:

	tablelog prune --before 30d                          # what would go (asks on a terminal)
	tablelog prune --before 30d --yes                    # every service, no question
	tablelog prune --before 2025-11-01 -s checkout --yes
`

// partition is one day partition to prune.
type partition struct {
	pk      string
	service string
	day     time.Time
	records int
}

// errAuditTable is returned when prune is pointed at a table holding audit
// trails.
var errAuditTable = errors.New("this table holds audit trails, which prune never deletes (is --logs-table the audit table?)")

func (a *app) prune(ctx context.Context, args []string) error {
	fs := a.newFlagSet("prune", pruneUsage)
	var cf connFlags
	var only stringList
	before := fs.String("before", "", "delete the days before this one: a date (2025-11-01) or days or weeks before today (30d, 4w)")
	fs.Var(&only, "s", "only these services (repeatable, or comma-separated; default: every service)")
	fs.Var(&only, "service", "same as -s")
	yes := fs.Bool("yes", false, "delete without asking")
	dryRun := fs.Bool("dry-run", false, "count and list what would be deleted; delete nothing (the default without --yes and without a terminal)")
	cf.register(fs)
	pos, err := a.parseFlags(fs, "prune", args)
	if err != nil {
		return err
	}
	cut, err := a.checkPrune(pos, *before, *yes, *dryRun, only)
	if err != nil {
		return err
	}
	t, err := a.connect("prune", cf)
	if err != nil {
		return err
	}
	parts, err := prunable(ctx, t.logs, only, cut)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(a.stdout)
	defer out.Flush()
	run := &pruneRun{a: a, logs: t.logs, parts: parts, out: out, progress: a.isTerminal(a.stderr), cutDay: cut.Format(time.DateOnly)}
	fmt.Fprintf(out, "cut-off %s (UTC): the days before it go, it and later days are kept\n", run.cutDay)
	if len(parts) == 0 {
		fmt.Fprintf(out, "nothing to prune before %s\n", run.cutDay)
		return out.Flush()
	}
	services := map[string]bool{}
	for _, p := range parts {
		run.width = max(run.width, len(p.pk))
		services[p.service] = true
	}
	run.services = len(services)
	total, err := run.survey(ctx)
	if err != nil {
		return err
	}
	if ok, err := run.confirm(total, *yes, *dryRun); !ok || err != nil {
		return err
	}
	return run.delete(ctx)
}

// checkPrune checks prune's arguments and returns the cut-off.
func (a *app) checkPrune(pos []string, before string, yes, dryRun bool, only []string) (time.Time, error) {
	if len(pos) > 0 {
		return time.Time{}, usagef("prune", "unexpected argument %q", pos[0])
	}
	if before == "" {
		return time.Time{}, usagef("prune", "--before is required")
	}
	if yes && dryRun {
		return time.Time{}, usagef("prune", "--yes and --dry-run contradict each other")
	}
	now := a.now()
	cut, err := parseCutoff(before, now)
	if err != nil {
		return cut, usagef("prune", "--before: %v", err)
	}
	if cut.After(now) {
		return cut, usagef("prune", "--before %s is in the future; prune only deletes past days", cut.Format(time.DateOnly))
	}
	_, err = serviceArgs("prune", only)
	return cut, err
}

// pruneRun is one prune of the partitions found: what it deletes and
// where it reports (out, and progress lines on stderr when it is a
// terminal).
type pruneRun struct {
	a        *app
	logs     pruneTable
	parts    []partition
	out      *bufio.Writer
	progress bool
	width    int // of the widest PartitionKey
	services int // how many services the partitions are of
	cutDay   string
}

// status shows what the run is doing on the progress line ("" clears it).
func (r *pruneRun) status(format string, args ...any) {
	if r.progress {
		fmt.Fprintf(r.a.stderr, "\r\x1b[K"+format, args...)
	}
}

// summary describes the partitions of records records.
func (r *pruneRun) summary(records int) string {
	return fmt.Sprintf("%s of %s, %s, before %s", plural(len(r.parts), "day partition"), plural(r.services, "service"), plural(records, "record"), r.cutDay)
}

// survey counts (and checks) the records of every partition first, listing
// what would go, and returns the total.
func (r *pruneRun) survey(ctx context.Context) (int, error) {
	total := 0
	for i := range r.parts {
		p := &r.parts[i]
		n, err := surveyPartition(ctx, r.logs, p.pk, func(n int) {
			r.status("counting %s (%d/%d): %d records", p.pk, i+1, len(r.parts), n)
		})
		r.status("")
		if err != nil {
			return 0, err
		}
		p.records = n
		total += n
		fmt.Fprintf(r.out, "would delete %-*s  %s\n", r.width, p.pk, plural(n, "record"))
	}
	return total, nil
}

// confirm reports whether to delete: with --yes, or when the user answers
// yes on a terminal. Otherwise (--dry-run, no, or no terminal to ask on)
// it says nothing was deleted.
func (r *pruneRun) confirm(total int, yes, dryRun bool) (bool, error) {
	a := r.a
	switch {
	case dryRun:
		fmt.Fprintf(r.out, "dry run: would prune %s; nothing was deleted\n", r.summary(total))
		return false, r.out.Flush()
	case yes:
	case a.stdinIsTerminal():
		if err := r.out.Flush(); err != nil {
			return false, err
		}
		fmt.Fprintf(a.stderr, "delete %s in %s? [y/N] ", plural(total, "record"), plural(len(r.parts), "day partition"))
		answer, _ := bufio.NewReader(a.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			fmt.Fprintf(r.out, "not confirmed: nothing was deleted\n")
			return false, r.out.Flush()
		}
	default:
		fmt.Fprintf(r.out, "dry run: would prune %s; nothing was deleted (pass --yes to delete; stdin is not a terminal to ask on)\n", r.summary(total))
		return false, r.out.Flush()
	}
	return true, r.out.Flush()
}

// delete deletes the partitions' records, then their catalog entries, one
// partition after the other, reporting each.
func (r *pruneRun) delete(ctx context.Context) error {
	total := 0
	for i := range r.parts {
		p := &r.parts[i]
		n, err := prunePartition(ctx, r.logs, p.pk, false, func(n int) {
			r.status("deleting %s (%d/%d): %d records", p.pk, i+1, len(r.parts), n)
		})
		total += n
		r.status("")
		if err != nil {
			fmt.Fprintf(r.out, "deleted %-*s  %s, then failed\n", r.width, p.pk, plural(n, "record"))
			r.out.Flush()
			return fmt.Errorf("pruning %s: %w", p.pk, err)
		}
		if err := deleteEntity(ctx, r.logs, schema.CatalogPartition, p.pk); err != nil {
			r.out.Flush()
			return fmt.Errorf("removing %s from the catalog (its records are deleted): %w", p.pk, err)
		}
		fmt.Fprintf(r.out, "deleted %-*s  %s\n", r.width, p.pk, plural(n, "record"))
		if err := r.out.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(r.out, "pruned %s\n", r.summary(total))
	return r.out.Flush()
}

// parseCutoff parses prune's --before: a date (yyyy-mm-dd), or a number N
// >= 1 of days (Nd) or weeks (Nw) before today's UTC day. It returns the
// cut-off: the first day kept, at 00:00 UTC.
func parseCutoff(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if k := len(s) - 1; k >= 1 && (s[k] == 'd' || s[k] == 'w') {
		if n, err := strconv.Atoi(s[:k]); err == nil {
			unit := 1
			if s[k] == 'w' {
				unit = 7
			}
			switch {
			case n < 1:
				return time.Time{}, fmt.Errorf("%q: the number of days or weeks must be at least 1 (0d would delete everything before today)", s)
			case n > 100*366/unit:
				return time.Time{}, fmt.Errorf("%q is more than 100 years", s)
			}
			return schema.Day(now).AddDate(0, 0, -n*unit), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a date (2025-11-01) nor a number of days or weeks before today (30d, 4w); prune deletes whole days, so durations such as 30m or 12h are not accepted", s)
}

// stdinIsTerminal reports whether stdin is an interactive terminal, to ask
// prune's confirmation on.
func (a *app) stdinIsTerminal() bool {
	if a.stdinTerminal != nil {
		return a.stdinTerminal()
	}
	f, ok := a.stdin.(*os.File)
	if !ok || !isTerminal(f) {
		return false
	}
	// /dev/null is a character device too (a command run with no stdin).
	fi, err := f.Stat()
	null, nerr := os.Stat(os.DevNull)
	return err == nil && (nerr != nil || !os.SameFile(fi, null))
}

// prunable lists, from the catalog, the partitions of the services (all if
// none given) whose whole day lies before cut, by service then day. It
// fails with errAuditTable if the catalog holds an audit trail's genesis
// claim.
func prunable(ctx context.Context, logs pruneTable, services []string, cut time.Time) ([]partition, error) {
	var out []partition
	for rk, err := range azure.Catalog(ctx, logs, "", "") {
		if err != nil {
			return nil, describe(ctx, "read the catalog", err)
		}
		if svc, ok := genesisClaim(rk); ok {
			return nil, fmt.Errorf("%w: its catalog holds the genesis claim of service %q's trail (%s/%s)", errAuditTable, svc, schema.CatalogPartition, rk)
		}
		service, day, _, err := schema.ParsePartitionKey(rk)
		if err != nil || schema.ValidateService(service) != nil {
			continue
		}
		if len(services) > 0 && !slices.Contains(services, service) {
			continue
		}
		if day.AddDate(0, 0, 1).After(cut) {
			continue // not the whole day is before cut
		}
		out = append(out, partition{pk: rk, service: service, day: day})
	}
	slices.SortFunc(out, func(a, b partition) int {
		if c := strings.Compare(a.service, b.service); c != 0 {
			return c
		}
		if c := a.day.Compare(b.day); c != 0 {
			return c
		}
		return strings.Compare(a.pk, b.pk)
	})
	return out, nil
}

// genesisClaim reports whether rk is an audit trail's genesis claim (of
// either chain format: "<service>~genesis" or "<service>~genesis~<n>") and
// whose.
func genesisClaim(rk string) (string, bool) {
	svc, _, ok := strings.Cut(rk, "~genesis")
	if !ok || svc == "" {
		return "", false
	}
	if rk == svc+"~genesis" {
		return svc, true
	}
	_, ok = schema.ParseAuditGenesisRowKey(svc, rk)
	return svc, ok
}

// auditTrailColumns are columns every audit event has and a log record has not
// all of (a log field may be named Hash, hardly Seq, PrevHash and Hash).
var auditTrailColumns = []string{schema.AuditColSeq, schema.AuditColPrevHash, schema.AuditColHash}

// surveyPartition counts the entities of partition pk and checks that it
// holds no audit trail: its newest entity lacks the audit columns, and no
// RowKey is an audit slot. report is called after each page.
func surveyPartition(ctx context.Context, logs pruneTable, pk string, report func(int)) (int, error) {
	filter := query.Eq(query.Column(schema.ColPartitionKey), pk).String()
	top := int32(1)
	page, err := logs.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Top: &top}).NextPage(ctx)
	if err != nil {
		return 0, describe(ctx, "read "+pk, err)
	}
	for _, raw := range page.Entities {
		var cols map[string]json.RawMessage
		if json.Unmarshal(raw, &cols) != nil {
			continue
		}
		audit := true
		for _, c := range auditTrailColumns {
			if _, ok := cols[c]; !ok {
				audit = false
			}
		}
		if _, seal := cols[schema.AuditColSeal]; audit || seal {
			return 0, fmt.Errorf("%w: partition %s holds audit events (columns %s)", errAuditTable, pk, strings.Join(auditTrailColumns, ", "))
		}
	}
	n := 0
	err = listKeys(ctx, logs, pk, func(keys []string) error {
		for _, rk := range keys {
			if _, err := schema.ParseAuditRowKey(rk); err == nil {
				return fmt.Errorf("%w: partition %s holds the audit slot %s", errAuditTable, pk, rk)
			}
		}
		n += records(keys)
		report(n)
		return nil
	})
	return n, err
}

// listKeys calls fn with the RowKeys of partition pk, a page at a time.
func listKeys(ctx context.Context, logs pruneTable, pk string, fn func(keys []string) error) error {
	filter := query.Eq(query.Column(schema.ColPartitionKey), pk).String()
	sel := schema.ColPartitionKey + "," + schema.ColRowKey
	opts := aztables.ListEntitiesOptions{Filter: &filter, Select: &sel}
	for {
		page, err := logs.NewListEntitiesPager(&opts).NextPage(ctx)
		if err != nil {
			return describe(ctx, "list "+pk, err)
		}
		keys := make([]string, 0, len(page.Entities))
		for _, raw := range page.Entities {
			if rk, ok := azure.RowKey(raw); ok && rk != "" {
				keys = append(keys, rk)
			}
		}
		if err := fn(keys); err != nil {
			return err
		}
		if empty(page.NextPartitionKey) && empty(page.NextRowKey) {
			return nil
		}
		opts.NextPartitionKey, opts.NextRowKey = page.NextPartitionKey, page.NextRowKey
	}
}

// prunePartition deletes (or with dryRun counts) every entity of partition
// pk, a page of keys at a time, in transactions of up to 100 deletes (four
// at a time). It returns how many it deleted or counted; report is called
// after each page.
func prunePartition(ctx context.Context, logs pruneTable, pk string, dryRun bool, report func(int)) (int, error) {
	n := 0
	err := listKeys(ctx, logs, pk, func(keys []string) error {
		if !dryRun {
			// Deleting the keys of this page does not disturb the
			// continuation, which names the next key to read.
			if err := deleteKeys(ctx, logs, pk, keys); err != nil {
				return err
			}
		}
		n += records(keys)
		report(n)
		return nil
	})
	return n, err
}

// records counts the log records among keys: not the shard markers a
// sharded day's partition holds (deleted with it all the same).
func records(keys []string) int {
	n := 0
	for _, rk := range keys {
		if !schema.IsReservedRowKey(rk) {
			n++
		}
	}
	return n
}

// plural returns "1 record", "2 records".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func empty(s *string) bool { return s == nil || *s == "" }

// deleteTransactions is how many delete transactions prune keeps in flight.
const deleteTransactions = 4

// deleteKeys deletes the RowKeys of partition pk in transactions of up to
// schema.MaxBatchOps, deleteTransactions in flight. Every transaction is
// tried; the error is the first that failed (the partition stays in the
// catalog, and the next prune deletes what is left).
func deleteKeys(ctx context.Context, logs pruneTable, pk string, keys []string) error {
	var g errgroup.Group
	g.SetLimit(deleteTransactions)
	for chunk := range slices.Chunk(keys, schema.MaxBatchOps) {
		g.Go(func() error { return deleteBatch(ctx, logs, pk, chunk) })
	}
	return g.Wait()
}

// deleteBatch deletes rks of partition pk in one transaction. If the
// transaction fails because an entity is gone already (another prune), the
// keys are deleted one by one, ignoring those that are gone.
func deleteBatch(ctx context.Context, logs pruneTable, pk string, rks []string) error {
	actions := make([]aztables.TransactionAction, len(rks))
	for i, rk := range rks {
		js, err := json.Marshal(map[string]string{schema.ColPartitionKey: pk, schema.ColRowKey: rk})
		if err != nil {
			return err
		}
		actions[i] = aztables.TransactionAction{ActionType: aztables.TransactionTypeDelete, Entity: js}
	}
	var err error
	for attempt := 0; ; attempt++ {
		if _, err = logs.SubmitTransaction(ctx, actions, nil); err == nil {
			return nil
		}
		f := azure.Inspect(err)
		if !f.Retryable() || attempt == maxAttempts-1 || ctx.Err() != nil {
			break
		}
		if azure.Sleep(ctx, azure.Backoff(attempt, 200*time.Millisecond, 5*time.Second, f.RetryAfter)) != nil {
			break
		}
	}
	if !isStatus(err, http.StatusNotFound) {
		return describe(ctx, "delete records of "+pk, err)
	}
	for _, rk := range rks {
		if err := deleteEntity(ctx, logs, pk, rk); err != nil {
			return err
		}
	}
	return nil
}

// deleteEntity deletes one entity, retrying transient failures; one that
// is gone already is no error.
func deleteEntity(ctx context.Context, logs pruneTable, pk, rk string) error {
	for attempt := 0; ; attempt++ {
		_, err := logs.DeleteEntity(ctx, pk, rk, nil)
		if err == nil || isStatus(err, http.StatusNotFound) {
			return nil
		}
		f := azure.Inspect(err)
		if !f.Retryable() || attempt == maxAttempts-1 || ctx.Err() != nil ||
			azure.Sleep(ctx, azure.Backoff(attempt, 200*time.Millisecond, 5*time.Second, f.RetryAfter)) != nil {
			return describe(ctx, "delete "+pk+"/"+rk, err)
		}
	}
}

// maxAttempts bounds prune's attempts at one delete request (a
// tablelog.Client does not retry writes itself).
const maxAttempts = 4

// isStatus reports whether err is an answer with the HTTP status (for a
// transaction, the failed operation's).
func isStatus(err error, status int) bool {
	return azure.Inspect(err).Status == status
}

// pruneTable is what prune needs of the logs table.
type pruneTable interface {
	azure.Lister
	SubmitTransaction(ctx context.Context, actions []aztables.TransactionAction, options *aztables.SubmitTransactionOptions) (aztables.TransactionResponse, error)
	DeleteEntity(ctx context.Context, partitionKey, rowKey string, options *aztables.DeleteEntityOptions) (aztables.DeleteEntityResponse, error)
}

// describe turns an error of the aztables client into a one-line message
// with the operation, the HTTP status and the service's error code, and no
// request URL.
func describe(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if f := azure.Inspect(err); f.Response != nil {
		hint := ""
		switch f.Status {
		case http.StatusForbidden, http.StatusUnauthorized:
			hint = ": the credentials are refused or lack the permission (prune needs list and delete)"
		case http.StatusNotFound:
			hint = ": no such table"
		}
		code := f.Code
		if code != "" {
			code = " " + code
		}
		return fmt.Errorf("%s: HTTP %d%s%s", op, f.Status, code, hint)
	}
	return fmt.Errorf("%s: %w", op, azure.Redact(err))
}
