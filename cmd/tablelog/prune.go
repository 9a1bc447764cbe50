package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/azure"
	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/query"
)

const pruneUsage = `
Usage: tablelog prune --before DATE [-s SERVICE]... [--dry-run]

Retention for the logs table: deletes every day partition whose whole UTC
day lies before DATE (a partition is never deleted in part), in
transactions of 100 deletes, and removes the pruned days from the catalog.
Days are found in the catalog the sink writes. Progress goes to stderr
when it is a terminal; a summary of what was deleted goes to stdout.
The audit table is never pruned. DATE may not lie in the future.

Examples:

	tablelog prune --before 30d --dry-run                # what would go
	tablelog prune --before 30d                          # every service
	tablelog prune --before 2025-11-01 -s checkout
`

// partition is one day partition to prune.
type partition struct {
	pk      string
	service string
	day     time.Time
	records int
}

func (a *app) prune(ctx context.Context, args []string) error {
	fs := a.newFlagSet("prune", pruneUsage)
	var cf connFlags
	var only stringList
	before := fs.String("before", "", "delete the days before this date: a date (2025-11-01), an RFC 3339 time or a duration ago (30d)")
	fs.Var(&only, "s", "only these services (repeatable, or comma-separated; default: every service)")
	fs.Var(&only, "service", "same as -s")
	dryRun := fs.Bool("dry-run", false, "count and list what would be deleted; delete nothing")
	cf.register(fs)
	pos, err := a.parseFlags(fs, "prune", args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("prune", "unexpected argument %q", pos[0])
	}
	if *before == "" {
		return usagef("prune", "--before is required")
	}
	now := a.now()
	cut, err := parseTimeArg(*before, now)
	if err != nil {
		return usagef("prune", "--before: %v", err)
	}
	if cut.After(now) {
		return usagef("prune", "--before %s is in the future; prune only deletes past days", cut.UTC().Format(time.RFC3339))
	}
	for _, s := range only {
		if err := schema.ValidateService(s); err != nil {
			return usagef("prune", "%s", strings.TrimPrefix(err.Error(), "tablelog: "))
		}
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
	verb, ing := "deleted", "deleting"
	if *dryRun {
		verb, ing = "would delete", "counting"
	}
	progress := a.isTerminal(a.stderr)
	width := 0
	for _, p := range parts {
		width = max(width, len(p.pk))
	}
	total := 0
	for i := range parts {
		p := &parts[i]
		report := func(n int) {
			if progress {
				fmt.Fprintf(a.stderr, "\r\x1b[K%s %s (%d/%d): %d records", ing, p.pk, i+1, len(parts), n)
			}
		}
		n, err := prunePartition(ctx, t.logs, p.pk, *dryRun, report)
		p.records = n
		total += n
		if progress {
			fmt.Fprint(a.stderr, "\r\x1b[K")
		}
		if err != nil {
			fmt.Fprintf(out, "%s %-*s  %s, then failed\n", verb, width, p.pk, plural(n, "record"))
			out.Flush()
			return fmt.Errorf("pruning %s: %w", p.pk, err)
		}
		if !*dryRun {
			if err := deleteEntity(ctx, t.logs, schema.CatalogPartition, p.pk); err != nil {
				out.Flush()
				return fmt.Errorf("removing %s from the catalog (its records are deleted): %w", p.pk, err)
			}
		}
		fmt.Fprintf(out, "%s %-*s  %s\n", verb, width, p.pk, plural(n, "record"))
		if err := out.Flush(); err != nil {
			return err
		}
	}
	services := map[string]bool{}
	for _, p := range parts {
		services[p.service] = true
	}
	// Pruned days are those before the day of cut (a partial day is kept).
	summary := fmt.Sprintf("%s of %s, %s, before %s", plural(len(parts), "day partition"), plural(len(services), "service"), plural(total, "record"), schema.Day(cut).Format(time.DateOnly))
	if *dryRun {
		fmt.Fprintf(out, "dry run: would prune %s; nothing was deleted\n", summary)
	} else {
		fmt.Fprintf(out, "pruned %s\n", summary)
	}
	return out.Flush()
}

// prunable lists, from the catalog, the partitions of the services (all if
// none given) whose whole day lies before cut, by service then day.
func prunable(ctx context.Context, logs pruneTable, services []string, cut time.Time) ([]partition, error) {
	var out []partition
	for rk, err := range azure.Catalog(ctx, logs, "", "") {
		if err != nil {
			return nil, describe(ctx, "read the catalog", err)
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

// prunePartition deletes (or with dryRun counts) every entity of partition
// pk, a page of keys at a time, in transactions of up to 100 deletes (four
// at a time). It returns how many it deleted or counted; report is called
// after each page.
func prunePartition(ctx context.Context, logs pruneTable, pk string, dryRun bool, report func(int)) (int, error) {
	filter := query.Eq(query.Column(schema.ColPartitionKey), pk).String()
	sel := schema.ColPartitionKey + "," + schema.ColRowKey
	opts := aztables.ListEntitiesOptions{Filter: &filter, Select: &sel}
	n := 0
	for {
		page, err := logs.NewListEntitiesPager(&opts).NextPage(ctx)
		if err != nil {
			return n, describe(ctx, "list "+pk, err)
		}
		keys := make([]string, 0, len(page.Entities))
		for _, raw := range page.Entities {
			if rk, ok := azure.RowKey(raw); ok && rk != "" {
				keys = append(keys, rk)
			}
		}
		if !dryRun {
			// Deleting the keys of this page does not disturb the
			// continuation, which names the next key to read.
			if err := deleteKeys(ctx, logs, pk, keys); err != nil {
				return n, err
			}
		}
		n += len(keys)
		report(n)
		if empty(page.NextPartitionKey) && empty(page.NextRowKey) {
			return n, nil
		}
		opts.NextPartitionKey, opts.NextRowKey = page.NextPartitionKey, page.NextRowKey
	}
}

// plural returns "1 record", "2 records".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func empty(s *string) bool { return s == nil || *s == "" }

// deleteKeys deletes the RowKeys of partition pk in transactions of up to
// schema.MaxBatchOps, four in flight.
func deleteKeys(ctx context.Context, logs pruneTable, pk string, keys []string) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 4)
	)
	for chunk := range slices.Chunk(keys, schema.MaxBatchOps) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := deleteBatch(ctx, logs, pk, chunk); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
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
