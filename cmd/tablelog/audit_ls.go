package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"iter"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tablelog/tablelog/internal/fieldtext"
	"github.com/tablelog/tablelog/query"
)

const auditLsUsage = `
Usage: tablelog audit ls [-s SERVICE]... [flags]

Lists audit events, newest first (several services are merged by time).
--actor, --action, --target and --outcome are exact matches and --where
takes the --where syntax of tail over the event's columns (actor, action,
target, outcome, reason, source_ip, request_id, id, seq, hash, prev_hash,
time); every condition runs on the server.

Examples:

	tablelog audit ls -s billing --since 24h
	tablelog audit ls -s billing --actor alice --outcome denied
	tablelog audit ls --action invoice.delete --since 2025-11-01 --limit 0
	tablelog audit ls -s billing --where 'seq>=100 and seq<200' -o json
	tablelog audit ls -s billing --where 'source_ip="203.0.113.7" or request_id=req-9'
`

// auditFilterFlags are the event-selection flags of audit ls and export.
type auditFilterFlags struct {
	rangeFlags
	actor, action, target, outcome string
	where                          string
}

func (f *auditFilterFlags) register(fs *flag.FlagSet) {
	f.rangeFlags.register(fs, "audit catalog", "event")
	fs.StringVar(&f.actor, "actor", "", "only events of this actor (exact)")
	fs.StringVar(&f.action, "action", "", "only events of this action (exact)")
	fs.StringVar(&f.target, "target", "", "only events on this target (exact)")
	fs.StringVar(&f.outcome, "outcome", "", "only events with this outcome (success, failure, denied, error, unknown, ...)")
	fs.StringVar(&f.where, "where", "", "server-side condition on the event's columns, e.g. 'seq>=100 and actor!=system'")
}

// parseAuditFilters parses the command line of an audit command (fs has
// f's flags registered), checks the flags and returns the query (Service
// unset) and the services given (flags and positional arguments).
func (a *app) parseAuditFilters(fs *flag.FlagSet, cmd string, f *auditFilterFlags, args []string) (query.Audit, []string, error) {
	var q query.Audit
	services, since, until, err := a.parseRange(fs, cmd, &f.rangeFlags, args)
	if err != nil {
		return q, nil, err
	}
	q.Since, q.Until = since, until
	q.Actor, q.Action, q.Target, q.Outcome = f.actor, f.action, f.target, f.outcome
	if q.Where, err = parseAuditWhere(f.where); err != nil {
		return q, nil, usagef(cmd, "%v", err)
	}
	return q, services, nil
}

func (a *app) auditLs(ctx context.Context, args []string) error {
	const cmd = "audit ls"
	fs := a.newFlagSet(cmd, auditLsUsage)
	var cf connFlags
	var af auditFilterFlags
	af.register(fs)
	limit := fs.Int("limit", 100, "most events to print; 0 for no limit")
	output := fs.String("o", formatText, "output format: text or json (one object per line)")
	fs.StringVar(output, "output", formatText, "same as -o")
	color := fs.String("color", "auto", "colour text output: auto, always or never")
	utc := fs.Bool("utc", false, "show times in UTC instead of the local zone (text output)")
	cf.register(fs)
	q, services, err := a.parseAuditFilters(fs, cmd, &af, args)
	if err != nil {
		return err
	}
	if *limit < 0 {
		return usagef(cmd, "--limit must not be negative")
	}
	if *output != formatText && *output != formatJSON {
		return usagef(cmd, "-o must be text or json, not %q", *output)
	}
	useColor, err := a.colorMode(*color)
	if err != nil {
		return usagef(cmd, "%v", err)
	}
	loc := a.loc
	if *utc {
		loc = time.UTC
	}
	r, services, err := a.openAudit(ctx, cmd, cf, services)
	if err != nil {
		return err
	}
	streams := make([]iter.Seq2[query.AuditEvent, error], len(services))
	for i, s := range services {
		sq := q
		sq.Service = s
		if *limit > 0 {
			sq.Limit = *limit + 1
		}
		streams[i] = r.Audit(ctx, sq)
	}
	newerEvent := func(x, y *query.AuditEvent) bool {
		if c := x.Time.Compare(y.Time); c != 0 {
			return c > 0
		}
		return x.Seq > y.Seq
	}
	out := bufio.NewWriter(a.stdout)
	defer out.Flush()
	f := &formatter{color: useColor && *output == formatText, loc: loc}
	width := serviceWidth(services)
	printed := 0
	for ev, err := range mergeStreams(streams, newerEvent, nil) {
		if err != nil {
			return err
		}
		if *limit > 0 && printed == *limit {
			if err := out.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "tablelog %s: showing the newest %d events; there are more (--limit N, or --limit 0 for all)\n", cmd, *limit)
			return nil
		}
		var b []byte
		if *output == formatJSON {
			b = appendAuditJSON(nil, &ev)
		} else {
			b = f.appendAuditText(nil, &ev, width)
		}
		if _, err := out.Write(b); err != nil {
			return err
		}
		printed++
	}
	return out.Flush()
}

// outcomeColor is the colour of an outcome in text output.
func outcomeColor(o string) string {
	switch o {
	case "success":
		return ansiGreen
	case "denied", "failure":
		return ansiYellow
	case "error":
		return ansiRed
	}
	return ansiFaint
}

// appendAuditText renders an event as one text line:
//
//	2025-11-25T10:00:00.000Z billing #42 success actor=alice action=invoice.delete target=inv-42 reason="customer request" ...
func (f *formatter) appendAuditText(b []byte, ev *query.AuditEvent, width int) []byte {
	b = f.paint(b, ansiFaint, ev.Time.In(f.loc).Format(textTimeLayout))
	b = append(b, ' ')
	b = f.paint(b, ansiCyan, ev.Service)
	b = appendPad(b, width-len(ev.Service))
	b = append(b, ' ')
	b = f.paint(b, ansiFaint, "#"+strconv.FormatInt(ev.Seq, 10))
	b = append(b, ' ')
	out := sanitize(ev.Outcome)
	b = f.paint(b, outcomeColor(ev.Outcome), out)
	b = appendPad(b, 7-utf8.RuneCountInString(out))
	for _, kv := range [...]struct{ k, v string }{
		{"actor", ev.Actor}, {"action", ev.Action}, {"target", ev.Target}, {"reason", ev.Reason},
		{"source_ip", ev.SourceIP}, {"request_id", ev.RequestID},
	} {
		if kv.v == "" && kv.k != "actor" && kv.k != "action" {
			continue
		}
		b = append(b, ' ')
		b = f.paint(b, ansiFaint, kv.k+"=")
		b = appendLogfmtValue(b, kv.v)
	}
	walkFields(ev.Attrs, "attrs.", func(key string, v any) {
		b = append(b, ' ')
		b = f.paint(b, ansiFaint, quoteKey(key)+"=")
		b = appendTextValue(b, v)
	})
	return append(b, '\n')
}

// auditJSON is the JSON form of an audit event (audit ls -o json, audit
// export -o jsonl): everything needed to check it independently.
type auditJSON struct {
	Service      string         `json:"service"`
	Seq          int64          `json:"seq"`
	ID           string         `json:"id"`
	Time         string         `json:"time"`
	Actor        string         `json:"actor"`
	Action       string         `json:"action"`
	Target       string         `json:"target,omitempty"`
	Outcome      string         `json:"outcome"`
	Reason       string         `json:"reason,omitempty"`
	SourceIP     string         `json:"source_ip,omitempty"`
	RequestID    string         `json:"request_id,omitempty"`
	Attrs        map[string]any `json:"attrs,omitempty"`
	AttrsJSON    string         `json:"attrs_json,omitempty"`
	Alg          string         `json:"alg"`
	PrevHash     string         `json:"prev_hash"`
	Hash         string         `json:"hash"`
	PartitionKey string         `json:"partition_key"`
	RowKey       string         `json:"row_key"`
	Stored       string         `json:"stored,omitempty"`
}

func appendAuditJSON(b []byte, ev *query.AuditEvent) []byte {
	j := auditJSON{
		Service: ev.Service, Seq: ev.Seq, ID: ev.ID.String(), Time: ev.Time.UTC().Format(time.RFC3339Nano),
		Actor: ev.Actor, Action: ev.Action, Target: ev.Target, Outcome: ev.Outcome, Reason: ev.Reason,
		SourceIP: ev.SourceIP, RequestID: ev.RequestID, AttrsJSON: ev.AttrsJSON,
		Alg: ev.Alg, PrevHash: ev.PrevHash, Hash: ev.Hash, PartitionKey: ev.PartitionKey, RowKey: ev.RowKey,
	}
	if len(ev.Attrs) > 0 {
		j.Attrs, _ = fieldtext.JSONSafe(ev.Attrs).(map[string]any)
	}
	if !ev.Stored.IsZero() {
		j.Stored = ev.Stored.UTC().Format(time.RFC3339Nano)
	}
	js, err := fieldtext.Marshal(j)
	if err != nil {
		js, _ = fieldtext.Marshal(map[string]string{"error": err.Error(), "id": j.ID})
	}
	b = appendEscapingBidi(b, js)
	return append(b, '\n')
}
