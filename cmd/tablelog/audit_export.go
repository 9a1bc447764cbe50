package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/csv"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tablelog/tablelog/query"
)

const auditExportUsage = `
Usage: tablelog audit export [-s SERVICE]... [-o jsonl|csv] [flags]

Writes audit events to stdout, oldest first (by day, then by chain
sequence), for reviewers and external tools: every column, the chain
fields (alg, prev_hash, hash) and where each event is stored. The filters
are those of 'audit ls'. Memory holds one day of one service at a time.

CSV cells that a spreadsheet would run as a formula (starting with =, +, -,
@, tab or carriage return) are prefixed with a single quote; --raw writes
them unchanged.

Examples:

	tablelog audit export -s billing --since 2025-11-01 --until 2025-12-01 > billing-nov.jsonl
	tablelog audit export -s billing -o csv > billing.csv
	tablelog audit export --actor alice -o csv
`

// csvHeader is the column order of audit export -o csv.
var csvHeader = []string{"service", "seq", "id", "time", "actor", "action", "target", "outcome", "reason",
	"source_ip", "request_id", "attrs", "alg", "prev_hash", "hash", "partition_key", "row_key", "stored"}

func (a *app) auditExport(ctx context.Context, args []string) error {
	const cmd = "audit export"
	fs := a.newFlagSet(cmd, auditExportUsage)
	var cf connFlags
	var af auditFilterFlags
	af.register(fs)
	output := fs.String("o", "jsonl", "output format: jsonl or csv")
	fs.StringVar(output, "output", "jsonl", "same as -o")
	raw := fs.Bool("raw", false, "csv: write cells that look like spreadsheet formulas unchanged")
	cf.register(fs)
	q, services, err := a.parseAuditFilters(fs, cmd, &af, args)
	if err != nil {
		return err
	}
	if *output == formatJSON {
		*output = "jsonl"
	}
	if *output != "jsonl" && *output != "csv" {
		return usagef(cmd, "-o must be jsonl or csv, not %q", *output)
	}
	r, services, err := a.openAudit(ctx, cmd, cf, services)
	if err != nil {
		return err
	}
	return writeAuditExport(ctx, r, a.stdout, services, q, *output, *raw)
}

// writeAuditExport writes the events of services selected by q (whose
// Service is ignored) to w in format "jsonl" or "csv", oldest first: by
// service, then day, then chain sequence. With raw, CSV cells that look
// like spreadsheet formulas are written unchanged. Memory holds one day of
// one service. tablelog web's export calls it too, so both are the same.
func writeAuditExport(ctx context.Context, r *query.Reader, w io.Writer, services []string, q query.Audit, format string, raw bool) error {
	out := bufio.NewWriter(w)
	defer out.Flush()
	var cw *csv.Writer
	if format == "csv" {
		cw = csv.NewWriter(out)
		if err := cw.Write(csvHeader); err != nil {
			return err
		}
	}
	for _, s := range services {
		days, err := r.Days(ctx, s)
		if err != nil {
			return err
		}
		for _, day := range days {
			// The events whose Time is on this day, oldest first.
			dq := q
			dq.Service = s
			dq.Since, dq.Until = day, day.AddDate(0, 0, 1)
			if !q.Since.IsZero() && q.Since.After(dq.Since) {
				dq.Since = q.Since
			}
			if !q.Until.IsZero() && q.Until.Before(dq.Until) {
				dq.Until = q.Until
			}
			if !dq.Since.Before(dq.Until) {
				continue
			}
			var evs []query.AuditEvent
			for ev, err := range r.Audit(ctx, dq) {
				if err != nil {
					return err
				}
				evs = append(evs, ev)
			}
			slices.SortFunc(evs, func(x, y query.AuditEvent) int { return cmp.Compare(x.Seq, y.Seq) })
			for i := range evs {
				if cw != nil {
					err = cw.Write(auditCSVRecord(&evs[i], !raw))
				} else {
					_, err = out.Write(appendAuditJSON(nil, &evs[i]))
				}
				if err != nil {
					return err
				}
			}
			if cw != nil {
				cw.Flush()
				if err := cw.Error(); err != nil {
					return err
				}
			}
			if err := out.Flush(); err != nil {
				return err
			}
		}
	}
	return out.Flush()
}

// auditCSVRecord is the CSV row of ev; with neutralize, cells that a
// spreadsheet would evaluate are prefixed with a quote.
func auditCSVRecord(ev *query.AuditEvent, neutralize bool) []string {
	stored := ""
	if !ev.Stored.IsZero() {
		stored = ev.Stored.UTC().Format(time.RFC3339Nano)
	}
	row := []string{ev.Service, strconv.FormatInt(ev.Seq, 10), ev.ID.String(), ev.Time.UTC().Format(time.RFC3339Nano),
		ev.Actor, ev.Action, ev.Target, ev.Outcome, ev.Reason, ev.SourceIP, ev.RequestID, ev.AttrsJSON,
		ev.Alg, ev.PrevHash, ev.Hash, ev.PartitionKey, ev.RowKey, stored}
	if neutralize {
		for i, c := range row {
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				row[i] = "'" + c
			}
		}
	}
	return row
}
