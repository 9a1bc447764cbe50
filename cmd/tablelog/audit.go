package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tablelog/tablelog/auditlog"
	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/query"
)

// envAuditKey holds the HMAC key of keyed audit trails.
const envAuditKey = "TABLELOG_AUDIT_KEY"

const auditUsage = `
Usage: tablelog audit ls|verify|export [flags]

	ls       list audit events, newest first, by actor/action/target/outcome/time
	verify   check the hash chain of a trail; exit 1 on any break
	export   write events as JSON lines or CSV, oldest first, for reviewers

Examples:

	tablelog audit ls -s billing --actor alice --since 7d
	tablelog audit verify -s billing
	tablelog audit export -s billing --since 2025-11-01 -o csv > billing.csv

Run 'tablelog audit <subcommand> --help' for its flags and more examples.
`

func (a *app) audit(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("audit", "a subcommand is required: ls, verify or export")
	}
	switch args[0] {
	case "ls", "list":
		return a.auditLs(ctx, args[1:])
	case "verify":
		return a.auditVerify(ctx, args[1:])
	case "export":
		return a.auditExport(ctx, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(a.stdout, strings.TrimLeft(auditUsage, "\n"))
		return flag.ErrHelp
	}
	return usagef("audit", "unknown subcommand %q (ls, verify or export)", args[0])
}

// auditKeyFlags are the key flags of audit verify.
type auditKeyFlags struct {
	keyFile string
}

func (k *auditKeyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.keyFile, "key-file", "", "file holding the HMAC key of a keyed trail (default $"+envAuditKey+")")
}

// load returns the key (nil for none) and registers it for redaction.
func (a *app) loadKey(cmd string, k auditKeyFlags) ([]byte, error) {
	var key []byte
	switch {
	case k.keyFile != "":
		b, err := os.ReadFile(k.keyFile)
		if err != nil {
			return nil, usagef(cmd, "--key-file: %v", err)
		}
		key = []byte(strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"))
		if len(key) == 0 {
			return nil, usagef(cmd, "--key-file %s is empty", k.keyFile)
		}
	case a.env(envAuditKey) != "":
		key = []byte(a.env(envAuditKey))
	}
	if len(key) > 0 {
		a.secrets = append(a.secrets, string(key))
	}
	return key, nil
}

const auditVerifyUsage = `
Usage: tablelog audit verify [-s SERVICE]... [flags]

Reads the audit trail of each service (every service in the audit table's
catalog without -s) and checks its hash chain: every event's hash against
its content (an HMAC with the key of a keyed trail), its place in the
chain, its link to the event before, and that no event is missing,
inserted or moved. Prints how many events were checked, every break with
its position and kind (modified, deleted, inserted, reordered, forged,
truncated, misdated, unlisted) and the head (sequence number and hash).
Every partition of the service is read, catalogued or not. Record the head
somewhere the table's writers cannot change and pass it back with
--expect-head: without a recorded head, the newest events can be cut off
undetected, even with the key.

Exit status: 0 when every trail verifies, 1 on any break or error.

Examples:

	tablelog audit verify -s billing
	TABLELOG_AUDIT_KEY=... tablelog audit verify -s billing --since 2025-11-01
	tablelog audit verify -s billing --expect-head 1234:3f5a...e9
	tablelog audit verify -o json | jq '.breaks'
`

// verifyJSON is the json output of one trail.
type verifyJSON struct {
	Service string      `json:"service"`
	OK      bool        `json:"ok"`
	Checked int         `json:"checked"`
	Head    *headJSON   `json:"head,omitempty"`
	Breaks  []breakJSON `json:"breaks"`
	Omitted int         `json:"omitted,omitempty"`
	Error   string      `json:"error,omitempty"`
	Note    string      `json:"note"`
}

// breakJSON is one break in json output.
type breakJSON struct {
	Kind         string `json:"kind"`
	Seq          int64  `json:"seq"`
	Count        int64  `json:"count"`
	PartitionKey string `json:"partition_key,omitempty"`
	RowKey       string `json:"row_key,omitempty"`
	ID           string `json:"id,omitempty"`
	Detail       string `json:"detail,omitempty"`
}

type headJSON struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
	Day  string `json:"day"`
	Time string `json:"time,omitempty"`
}

func (a *app) auditVerify(ctx context.Context, args []string) error {
	const cmd = "audit verify"
	fs := a.newFlagSet(cmd, auditVerifyUsage)
	var cf connFlags
	var kf auditKeyFlags
	var only stringList
	fs.Var(&only, "s", "services to verify (repeatable, or comma-separated; default: every service in the audit catalog)")
	fs.Var(&only, "service", "same as -s")
	since := fs.String("since", "", "verify from this day on (a date, an RFC 3339 time or a duration ago); the link to the day before is checked too")
	until := fs.String("until", "", "verify through this day")
	expect := fs.String("expect-head", "", "a head recorded earlier, SEQ:HASH; its hash must match, and a trail ending before it is truncated")
	output := fs.String("o", formatText, "output format: text or json (one object per service)")
	fs.StringVar(output, "output", formatText, "same as -o")
	kf.register(fs)
	cf.register(fs)
	pos, err := a.parseFlags(fs, cmd, args)
	if err != nil {
		return err
	}
	only = append(only, pos...)
	opts := auditlog.VerifyOptions{}
	now := a.now()
	if *since != "" {
		if opts.Since, err = parseTimeArg(*since, now); err != nil {
			return usagef(cmd, "--since: %v", err)
		}
	}
	if *until != "" {
		if opts.Until, err = parseTimeArg(*until, now); err != nil {
			return usagef(cmd, "--until: %v", err)
		}
	}
	if *expect != "" {
		if opts.ExpectedHead, err = parseHead(*expect); err != nil {
			return usagef(cmd, "--expect-head: %v", err)
		}
		if len(only) != 1 {
			return usagef(cmd, "--expect-head needs exactly one service (-s)")
		}
	}
	if *output != formatText && *output != formatJSON {
		return usagef(cmd, "-o must be text or json, not %q", *output)
	}
	for _, s := range only {
		if err := schema.ValidateService(s); err != nil {
			return usagef(cmd, "%s", strings.TrimPrefix(err.Error(), "tablelog: "))
		}
	}
	if opts.Key, err = a.loadKey(cmd, kf); err != nil {
		return err
	}
	t, err := a.connect(cmd, cf)
	if err != nil {
		return err
	}
	services := []string(only)
	if len(services) == 0 {
		if services, err = query.New(t.audit).Services(ctx); err != nil {
			return err
		}
		if len(services) == 0 {
			return fmt.Errorf("the catalog of table %q lists no audit trails (nothing recorded yet, or another table: --audit-table)", cf.auditTable)
		}
	}
	out := bufio.NewWriter(a.stdout)
	defer out.Flush()
	failed := false
	for i, s := range services {
		o := opts
		o.Service = s
		rep, err := auditlog.Verify(ctx, t.audit, o)
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil || !rep.OK() {
			failed = true
		}
		if *output == formatJSON {
			if err := writeVerifyJSON(out, rep, err, a.redact); err != nil {
				return err
			}
		} else {
			if i > 0 {
				out.WriteByte('\n')
			}
			writeVerifyText(out, rep, err, a.redact)
		}
		if err := out.Flush(); err != nil {
			return err
		}
	}
	if failed {
		return exitError(exitFail)
	}
	return nil
}

// parseHead parses SEQ:HASH.
func parseHead(s string) (auditlog.Head, error) {
	seqText, hashText, ok := strings.Cut(s, ":")
	if !ok {
		return auditlog.Head{}, errors.New("expected SEQ:HASH (as printed by verify)")
	}
	seq, err := strconv.ParseInt(seqText, 10, 64)
	if err != nil || seq <= 0 {
		return auditlog.Head{}, fmt.Errorf("%q is not a sequence number", seqText)
	}
	h, err := auditlog.ParseHash(hashText)
	if err != nil {
		return auditlog.Head{}, fmt.Errorf("%q is not a hash (64 hex digits)", hashText)
	}
	return auditlog.Head{Seq: seq, Hash: h}, nil
}

// writeVerifyText prints a validator-style summary of one trail.
func writeVerifyText(w io.Writer, rep auditlog.Report, err error, redact func(string) string) {
	fmt.Fprintf(w, "service:  %s\n", rep.Service)
	fmt.Fprintf(w, "checked:  %d events\n", rep.Checked)
	if rep.Head.Seq > 0 {
		fmt.Fprintf(w, "head:     %d:%s", rep.Head.Seq, rep.Head.Hash)
		if !rep.Head.Day.IsZero() {
			fmt.Fprintf(w, "  (day %s", rep.Head.Day.Format(time.DateOnly))
			if !rep.Head.Time.IsZero() {
				fmt.Fprintf(w, ", event time %s", rep.Head.Time.UTC().Format(time.RFC3339Nano))
			}
			fmt.Fprint(w, ")")
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintln(w, "head:     none (no events)")
	}
	fmt.Fprintf(w, "note:     %s\n", headNote)
	fmt.Fprintf(w, "broken:   %d\n", len(rep.Breaks)+rep.Omitted)
	for _, b := range rep.Breaks {
		pos := fmt.Sprintf("seq %d", b.Seq)
		if b.Count > 1 {
			pos = fmt.Sprintf("seq %d..%d", b.Seq, b.Seq+b.Count-1)
		}
		fmt.Fprintf(w, "  %-22s %-9s", pos, b.Kind)
		if b.PartitionKey != "" {
			fmt.Fprintf(w, " %s/%s", sanitize(b.PartitionKey), sanitize(b.RowKey))
		}
		if b.Detail != "" {
			fmt.Fprintf(w, "  %s", sanitize(b.Detail))
		}
		fmt.Fprintln(w)
	}
	if rep.Omitted > 0 {
		fmt.Fprintf(w, "  ... and %d more breaks\n", rep.Omitted)
	}
	switch {
	case err != nil:
		fmt.Fprintf(w, "error:    %s\n", redact(err.Error()))
		if errors.Is(err, auditlog.ErrKeyRequired) {
			fmt.Fprintf(w, "          (pass the key with --key-file FILE or $%s)\n", envAuditKey)
		}
		fmt.Fprintln(w, "result:   FAIL (the trail could not be verified completely)")
	case rep.OK():
		fmt.Fprintln(w, "result:   OK")
	default:
		fmt.Fprintln(w, "result:   FAIL")
	}
}

// headNote is printed with every verify result: what Verify cannot see.
const headNote = "record the head outside the table's account and pass it back with --expect-head: " +
	"without a recorded head, the newest events can be cut off undetected, even with the key"

// writeVerifyJSON prints one trail's result as a JSON line.
func writeVerifyJSON(w io.Writer, rep auditlog.Report, err error, redact func(string) string) error {
	v := verifyJSON{Service: rep.Service, OK: err == nil && rep.OK(), Checked: rep.Checked, Breaks: []breakJSON{}, Omitted: rep.Omitted, Note: headNote}
	for _, b := range rep.Breaks {
		v.Breaks = append(v.Breaks, breakJSON{Kind: string(b.Kind), Seq: b.Seq, Count: b.Count,
			PartitionKey: b.PartitionKey, RowKey: b.RowKey, ID: b.ID, Detail: b.Detail})
	}
	if rep.Head.Seq > 0 {
		v.Head = &headJSON{Seq: rep.Head.Seq, Hash: rep.Head.Hash.String(), Day: rep.Head.Day.Format(time.DateOnly)}
		if !rep.Head.Time.IsZero() {
			v.Head.Time = rep.Head.Time.UTC().Format(time.RFC3339Nano)
		}
	}
	if err != nil {
		v.Error = redact(err.Error())
	}
	js, jerr := marshalJSON(v)
	if jerr != nil {
		return jerr
	}
	_, werr := fmt.Fprintf(w, "%s\n", js)
	return werr
}

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
	services                       stringList
	since, until                   string
	actor, action, target, outcome string
	where                          string
}

func (f *auditFilterFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.services, "s", "services (repeatable, or comma-separated; default: every service in the audit catalog)")
	fs.Var(&f.services, "service", "same as -s")
	fs.StringVar(&f.since, "since", "", "events from this time: a duration ago (24h, 7d), an RFC 3339 time or a date")
	fs.StringVar(&f.until, "until", "", "events before this time (same forms as --since)")
	fs.StringVar(&f.actor, "actor", "", "only events of this actor (exact)")
	fs.StringVar(&f.action, "action", "", "only events of this action (exact)")
	fs.StringVar(&f.target, "target", "", "only events on this target (exact)")
	fs.StringVar(&f.outcome, "outcome", "", "only events with this outcome (success, failure, denied, error, unknown, ...)")
	fs.StringVar(&f.where, "where", "", "server-side condition on the event's columns, e.g. 'seq>=100 and actor!=system'")
}

// resolve checks the flags and returns the query (Service unset) and the
// services given.
func (a *app) resolveAudit(cmd string, f *auditFilterFlags, positional []string) (query.Audit, []string, error) {
	var q query.Audit
	var services []string
	for _, s := range append(slices.Clone([]string(f.services)), positional...) {
		if err := schema.ValidateService(s); err != nil {
			return q, nil, usagef(cmd, "%s", strings.TrimPrefix(err.Error(), "tablelog: "))
		}
		if !slices.Contains(services, s) {
			services = append(services, s)
		}
	}
	now := a.now()
	var err error
	if f.since != "" {
		if q.Since, err = parseTimeArg(f.since, now); err != nil {
			return q, nil, usagef(cmd, "--since: %v", err)
		}
	}
	if f.until != "" {
		if q.Until, err = parseTimeArg(f.until, now); err != nil {
			return q, nil, usagef(cmd, "--until: %v", err)
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return q, nil, usagef(cmd, "--since is not before --until")
	}
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
	pos, err := a.parseFlags(fs, cmd, args)
	if err != nil {
		return err
	}
	q, services, err := a.resolveAudit(cmd, &af, pos)
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
	t, err := a.connect(cmd, cf)
	if err != nil {
		return err
	}
	r := query.New(t.audit)
	if services, err = a.catalogServices(ctx, r, services, "audit trails (nothing recorded yet, or another table: --audit-table)", cf.auditTable); err != nil {
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
		j.Attrs, _ = jsonSafe(ev.Attrs).(map[string]any)
	}
	if !ev.Stored.IsZero() {
		j.Stored = ev.Stored.UTC().Format(time.RFC3339Nano)
	}
	js, err := marshalJSON(j)
	if err != nil {
		js, _ = marshalJSON(map[string]string{"error": err.Error(), "id": j.ID})
	}
	b = appendEscapingBidi(b, js)
	return append(b, '\n')
}

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
	pos, err := a.parseFlags(fs, cmd, args)
	if err != nil {
		return err
	}
	q, services, err := a.resolveAudit(cmd, &af, pos)
	if err != nil {
		return err
	}
	if *output == formatJSON {
		*output = "jsonl"
	}
	if *output != "jsonl" && *output != "csv" {
		return usagef(cmd, "-o must be jsonl or csv, not %q", *output)
	}
	t, err := a.connect(cmd, cf)
	if err != nil {
		return err
	}
	r := query.New(t.audit)
	if services, err = a.catalogServices(ctx, r, services, "audit trails (nothing recorded yet, or another table: --audit-table)", cf.auditTable); err != nil {
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
