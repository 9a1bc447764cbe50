package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tablelog/tablelog/auditlog"
	"github.com/tablelog/tablelog/internal/fieldtext"
	"github.com/tablelog/tablelog/query"
)

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
	services, err := serviceArgs(cmd, only)
	if err != nil {
		return err
	}
	if opts.Key, err = a.loadKey(cmd, kf); err != nil {
		return err
	}
	t, err := a.connect(cmd, cf)
	if err != nil {
		return err
	}
	if services, err = a.catalogServices(ctx, query.New(t.audit), services, noAuditTrails, cf.auditTable); err != nil {
		return err
	}
	return a.verifyAll(ctx, t.audit, opts, services, *output)
}

// verifyAll verifies the trails of services with opts, printing each
// result in format output as it comes; a trail that does not verify makes
// the command fail (exit 1) after all are printed.
func (a *app) verifyAll(ctx context.Context, table auditlog.ReadTable, opts auditlog.VerifyOptions, services []string, output string) error {
	out := bufio.NewWriter(a.stdout)
	defer out.Flush()
	failed := false
	for i, s := range services {
		o := opts
		o.Service = s
		rep, err := auditlog.Verify(ctx, table, o)
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil || !rep.OK() {
			failed = true
		}
		if output == formatJSON {
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
	js, jerr := fieldtext.Marshal(v)
	if jerr != nil {
		return jerr
	}
	_, werr := fmt.Fprintf(w, "%s\n", js)
	return werr
}
