package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"iter"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/tablelog/tablelog/internal/fieldtext"
	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/query"
)

const tailUsage = `
Usage: tablelog tail [-s SERVICE]... [flags]

Shows the last records of one or more services, oldest first, and with -f
follows new ones as they are stored (across day boundaries) until Ctrl-C.
Without -s, every service in the catalog is shown, merged by time.

Examples:

	tablelog tail -s checkout                        # the last 50 records
	tablelog tail -s checkout -f                     # ... then follow
	tablelog tail -s checkout,billing -n 200 --level warn
	tablelog tail -s checkout --since 10m --where 'user_id=u-1 and status>=500'
	tablelog tail -s checkout --where 'req.method="POST" or level>=error' --grep 'time(d)?out'
	tablelog tail -s checkout -o json | jq .fields
	tablelog tail -s checkout --since 2025-11-25T08:00:00Z --until 2025-11-25T09:00:00Z --utc

--where syntax: key=value, !=, >, >=, <, <=, and, or, not, parentheses and
quotes. Bare numbers are 64-bit integers (write 2.0 for a float field),
true/false are booleans, RFC 3339 values are times, anything quoted is a
string. level, severity, msg, logger, caller and time are the record's own
columns (level>=warn compares severities); a dotted key (req.method) also
matches the key "method" in group "req"; quote a key to take it literally.
--since/--until take a duration ago (90s, 10m, 2h, 7d), an RFC 3339 time or
a date (2025-11-25, midnight UTC).

Levels (--level, level= and severity= in --where), in any case: debug, info,
warn (or warning), error (or err) with an optional offset as slog prints
custom levels (info+2, ERROR-1); zap's dpanic, panic and fatal; or a number
on slog's scale (debug -4, info 0, warn 4, error 8, dpanic 12, panic 16,
fatal 20).
`

// stringList is a repeatable flag whose values may be comma-separated.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// rangeFlags are the flags every reading command selects with: services
// and a time range.
type rangeFlags struct {
	services     stringList
	since, until string
}

// register adds -s/--service, --since and --until; what names what the
// commands reads ("record", "event").
func (f *rangeFlags) register(fs *flag.FlagSet, catalog, what string) {
	fs.Var(&f.services, "s", "services (repeatable, or comma-separated; default: every service in the "+catalog+")")
	fs.Var(&f.services, "service", "same as -s")
	fs.StringVar(&f.since, "since", "", "oldest "+what+": a duration ago (10m, 2h, 7d), an RFC 3339 time or a date")
	fs.StringVar(&f.until, "until", "", what+"s before this time (same forms as --since)")
}

// parseRange parses the command line of a reading command (fs has f's
// flags registered) and checks the range: the services given (the flags'
// and the positional arguments, valid, each once) and the times (zero when
// not given; Since before Until).
func (a *app) parseRange(fs *flag.FlagSet, cmd string, f *rangeFlags, args []string) (services []string, since, until time.Time, err error) {
	positional, err := a.parseFlags(fs, cmd, args)
	if err != nil {
		return nil, since, until, err
	}
	if services, err = serviceArgs(cmd, f.services, positional); err != nil {
		return nil, since, until, err
	}
	now := a.now()
	if f.since != "" {
		if since, err = parseTimeArg(f.since, now); err != nil {
			return nil, since, until, usagef(cmd, "--since: %v", err)
		}
	}
	if f.until != "" {
		if until, err = parseTimeArg(f.until, now); err != nil {
			return nil, since, until, usagef(cmd, "--until: %v", err)
		}
	}
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return nil, since, until, usagef(cmd, "--since (%s) is not before --until (%s)", since.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
	}
	return services, since, until, nil
}

// serviceArgs returns the service names of the lists (flags, positional
// arguments), each once, in order; an invalid name is a usage error of cmd.
func serviceArgs(cmd string, lists ...[]string) ([]string, error) {
	var services []string
	for _, l := range lists {
		for _, s := range l {
			if err := schema.ValidateService(s); err != nil {
				return nil, usagef(cmd, "%v", err)
			}
			if !slices.Contains(services, s) {
				services = append(services, s)
			}
		}
	}
	return services, nil
}

// filterFlags are the record-selection and output flags of tail and query.
type filterFlags struct {
	rangeFlags
	level  string
	where  string
	grep   string
	output string
	color  string
	utc    bool
}

func (f *filterFlags) register(fs *flag.FlagSet) {
	f.rangeFlags.register(fs, "catalog", "record")
	fs.StringVar(&f.level, "level", "", "minimum level: debug, info, warn, error, dpanic, panic, fatal or a number (default: all)")
	fs.StringVar(&f.where, "where", "", "server-side condition on fields, e.g. 'user_id=u-1 and status>=500'")
	fs.StringVar(&f.grep, "grep", "", "keep records whose message, logger, caller or a key=value field matches this regular expression (client-side)")
	fs.StringVar(&f.output, "o", formatText, "output format: text, json or logfmt")
	fs.StringVar(&f.output, "output", formatText, "same as -o")
	fs.StringVar(&f.color, "color", "auto", "colour text output: auto (when stdout is a terminal and NO_COLOR is unset), always or never")
	fs.BoolVar(&f.utc, "utc", false, "show times in UTC instead of the local zone (text output; json and logfmt are always UTC)")
}

// selection is the resolved filter flags.
type selection struct {
	services []string   // empty: every service in the catalog
	q        query.Logs // Since, Until, MinLevel, Where
	grep     *regexp.Regexp
	fmt      *formatter
}

// parseFilters parses the command line of a logs command (fs has f's
// flags registered) and checks the filter flags; positional arguments are
// more service names.
func (a *app) parseFilters(fs *flag.FlagSet, cmd string, f *filterFlags, args []string) (selection, error) {
	var sel selection
	var err error
	if sel.services, sel.q.Since, sel.q.Until, err = a.parseRange(fs, cmd, &f.rangeFlags, args); err != nil {
		return sel, err
	}
	sel.q.MinLevel = query.AllLevels
	if f.level != "" {
		sev, err := schema.ParseLevel(f.level)
		if err != nil {
			return sel, usagef(cmd, "--level: %v", err)
		}
		sel.q.MinLevel = levelOf(sev)
	}
	if sel.q.Where, err = parseWhere(f.where); err != nil {
		return sel, usagef(cmd, "%v", err)
	}
	if f.grep != "" {
		if sel.grep, err = regexp.Compile(f.grep); err != nil {
			return sel, usagef(cmd, "--grep: %v", err)
		}
	}
	color, err := a.colorMode(f.color)
	if err != nil {
		return sel, usagef(cmd, "%v", err)
	}
	loc := a.loc
	if f.utc {
		loc = time.UTC
	}
	if sel.fmt, err = newFormatter(f.output, color, loc); err != nil {
		return sel, usagef(cmd, "-o: %v", err)
	}
	return sel, nil
}

// parseTimeArg parses a --since/--until/--before value: a duration before
// now (Go syntax, plus d for days and w for weeks), "now", an RFC 3339 time,
// or a date (midnight UTC).
func parseTimeArg(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "now" {
		return now, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, ok := parseAgo(s); ok {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration ago (10m, 2h, 7d), an RFC 3339 time (2025-11-25T10:00:00Z) nor a date (2025-11-25)", s)
}

// parseAgo parses a non-negative duration: Go syntax, or a whole number of
// days (d) or weeks (w).
func parseAgo(s string) (time.Duration, bool) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, d >= 0
	}
	if len(s) < 2 {
		return 0, false
	}
	unit := 24 * time.Hour
	switch s[len(s)-1] {
	case 'd':
	case 'w':
		unit *= 7
	default:
		return 0, false
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n < 0 || n > 100*365 {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// levelOf converts a severity to a query MinLevel.
func levelOf(sev int) slog.Level { return slog.Level(sev) }

// grepMatch reports whether re matches the message, the logger, the caller,
// the stack or one field as key=value.
func grepMatch(re *regexp.Regexp, rec *query.Record) bool {
	if re == nil {
		return true
	}
	if re.MatchString(rec.Message) || rec.Logger != "" && re.MatchString(rec.Logger) ||
		rec.Caller != "" && re.MatchString(rec.Caller) || rec.Stack != "" && re.MatchString(rec.Stack) {
		return true
	}
	found := false
	walkFields(rec.Fields, "", func(key string, v any) {
		if !found && re.MatchString(key+"="+fieldtext.Value(v)) {
			found = true
		}
	})
	return found
}

// catalogServices returns the services to read: the ones given, or every
// service of table's catalog. none says what an empty catalog lacks (and
// what to do about it).
func (a *app) catalogServices(ctx context.Context, r *query.Reader, given []string, none, table string) ([]string, error) {
	if len(given) > 0 {
		return given, nil
	}
	services, err := r.Services(ctx)
	if err != nil {
		return nil, err
	}
	if len(services) == 0 {
		return nil, fmt.Errorf("the catalog of table %q lists no %s", table, none)
	}
	return services, nil
}

// openLogs connects for a logs command and returns the reader of the logs
// table and the services to read (sel's, or the catalog's); it sets the
// formatter's service column width.
func (a *app) openLogs(ctx context.Context, cmd string, cf connFlags, sel *selection) (*query.Reader, []string, error) {
	t, err := a.connect(cmd, cf)
	if err != nil {
		return nil, nil, err
	}
	r := query.New(t.logs)
	services, err := a.catalogServices(ctx, r, sel.services, "services (nothing written yet, or another table: --logs-table); pass -s SERVICE", cf.logsTable)
	if err != nil {
		return nil, nil, err
	}
	sel.fmt.serviceWidth = serviceWidth(services)
	return r, services, nil
}

// noAuditTrails says what an empty audit catalog lacks.
const noAuditTrails = "audit trails (nothing recorded yet, or another table: --audit-table)"

// openAudit connects for an audit command and returns the reader of the
// audit table and the services to read (given, or the catalog's).
func (a *app) openAudit(ctx context.Context, cmd string, cf connFlags, given []string) (*query.Reader, []string, error) {
	t, err := a.connect(cmd, cf)
	if err != nil {
		return nil, nil, err
	}
	r := query.New(t.audit)
	services, err := a.catalogServices(ctx, r, given, noAuditTrails, cf.auditTable)
	if err != nil {
		return nil, nil, err
	}
	return r, services, nil
}

// newer reports whether a sorts before b newest-first.
func newer(a, b *query.Record) bool {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c > 0
	}
	return a.ID.Compare(b.ID) > 0
}

// newestFirst yields the records of services selected by q (whose Service
// is ignored) and grep, newest first, merging the services' streams. Each
// service's stream asks for at most perService records (0: no limit).
// Requests are made lazily as the caller ranges.
func newestFirst(ctx context.Context, r *query.Reader, services []string, q query.Logs, grep *regexp.Regexp, perService int) iter.Seq2[query.Record, error] {
	streams := make([]iter.Seq2[query.Record, error], len(services))
	for i, s := range services {
		sq := q
		sq.Service = s
		sq.Limit = perService
		if grep != nil {
			sq.Limit = 0
		}
		streams[i] = r.Logs(ctx, sq)
	}
	return mergeStreams(streams, newer, func(rec *query.Record) bool { return grepMatch(grep, rec) })
}

// mergeStreams merges streams that are each sorted by before (a sorts
// first), keeping the values keep accepts. The first error ends the merge.
// Streams are pulled lazily.
func mergeStreams[T any](streams []iter.Seq2[T, error], before func(a, b *T) bool, keep func(*T) bool) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		type head struct {
			next func() (T, error, bool)
			v    T
			ok   bool
		}
		heads := make([]*head, 0, len(streams))
		var stops []func()
		defer func() {
			for _, stop := range stops {
				stop()
			}
		}()
		advance := func(h *head) error {
			for {
				v, err, ok := h.next()
				if !ok {
					h.ok = false
					return nil
				}
				if err != nil {
					return err
				}
				if keep == nil || keep(&v) {
					h.v, h.ok = v, true
					return nil
				}
			}
		}
		for _, st := range streams {
			next, stop := iter.Pull2(st)
			stops = append(stops, stop)
			h := &head{next: next}
			heads = append(heads, h)
			if err := advance(h); err != nil {
				yield(zero, err)
				return
			}
		}
		for {
			var best *head
			for _, h := range heads {
				if h.ok && (best == nil || before(&h.v, &best.v)) {
					best = h
				}
			}
			if best == nil {
				return
			}
			if !yield(best.v, nil) {
				return
			}
			if err := advance(best); err != nil {
				yield(zero, err)
				return
			}
		}
	}
}

// serviceWidth is the width of the widest service name.
func serviceWidth(services []string) int {
	w := 0
	for _, s := range services {
		w = max(w, len(s))
	}
	return w
}

func (a *app) tail(ctx context.Context, args []string) error {
	fs := a.newFlagSet("tail", tailUsage)
	var cf connFlags
	var ff filterFlags
	ff.register(fs)
	n := fs.Int("n", 50, "number of records to show before following")
	fs.IntVar(n, "lines", 50, "same as -n")
	follow := fs.Bool("f", false, "follow: keep printing new records until Ctrl-C")
	fs.BoolVar(follow, "follow", false, "same as -f")
	poll := fs.Duration("poll", query.DefaultPoll, "with -f: time between two polls of the table")
	lookback := fs.Duration("lookback", query.DefaultLookback, "with -f: how late a record may be stored after its time and still be shown")
	cf.register(fs)
	sel, err := a.parseFilters(fs, "tail", &ff, args)
	if err != nil {
		return err
	}
	if *n < 0 {
		return usagef("tail", "-n must not be negative")
	}
	if *poll <= 0 || *lookback <= 0 {
		return usagef("tail", "--poll and --lookback must be positive")
	}
	r, services, err := a.openLogs(ctx, "tail", cf, &sel)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(a.stdout)
	defer out.Flush()

	start := a.now()
	var last []query.Record
	if *n > 0 {
		for rec, err := range newestFirst(ctx, r, services, sel.q, sel.grep, *n) {
			if err != nil {
				return err
			}
			last = append(last, rec)
			if len(last) == *n {
				break
			}
		}
		slices.Reverse(last)
		for i := range last {
			if err := sel.fmt.write(out, &last[i]); err != nil {
				return err
			}
		}
	}
	if err := out.Flush(); err != nil || !*follow {
		return err
	}
	return a.follow(ctx, r, out, services, sel, last, start, *n, query.FollowOptions{Poll: *poll, Lookback: *lookback})
}

// followStart is where following starts (zero: only records stored from
// now on, for -n 0): just after what tail showed (shown, oldest first), a
// little earlier to catch records that land late; or, when nothing matched
// before start, shortly before it (not before the query's since). seen
// holds the IDs shown, skipped when they come again.
func followStart(shown []query.Record, start time.Time, n int, qSince time.Time, lookback time.Duration) (since time.Time, seen map[ulid.ULID]bool) {
	seen = make(map[ulid.ULID]bool, len(shown))
	switch {
	case len(shown) > 0:
		since = shown[len(shown)-1].Time.Add(-lookback)
		if oldest := shown[0].Time; oldest.After(since) {
			since = oldest
		}
		for _, rec := range shown {
			seen[rec.ID] = true
		}
	case n > 0:
		since = start.Add(-lookback)
		if qSince.After(since) {
			since = qSince
		}
	}
	return since, seen
}

// follow prints new records of services until ctx is done (exit 0), an
// error that polling again cannot fix, or --until has passed. shown are
// the records tail printed already; start is when tail began.
func (a *app) follow(ctx context.Context, r *query.Reader, out *bufio.Writer, services []string, sel selection, shown []query.Record, start time.Time, n int, opts query.FollowOptions) error {
	since, seen := followStart(shown, start, n, sel.q.Since, opts.Lookback)
	if !sel.q.Until.IsZero() && !since.Before(sel.q.Until) {
		return nil
	}
	type item struct {
		rec     query.Record
		err     error
		service string
		end     bool // the service's follower ended
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan item, 256)
	for _, s := range services {
		q := sel.q
		q.Service, q.Since, q.Limit = s, since, 0
		go func() {
			send := func(it item) bool {
				select {
				case ch <- it:
					return true
				case <-ctx.Done():
					return false
				}
			}
			for rec, err := range r.Follow(ctx, q, opts) {
				if !send(item{rec: rec, err: err, service: s}) {
					return
				}
			}
			send(item{service: s, end: true})
		}()
	}
	for running := len(services); running > 0; {
		var it item
		select {
		case it = <-ch:
		case <-ctx.Done():
			return nil // Ctrl-C: a normal end of following
		}
		switch {
		case it.end:
			running--
			continue
		case it.err != nil:
			if ctx.Err() != nil || errors.Is(it.err, context.Canceled) {
				return nil
			}
			if errors.Is(it.err, query.ErrTableNotFound) || errors.Is(it.err, query.ErrAuth) || errors.Is(it.err, query.ErrInvalidQuery) {
				return it.err
			}
			fmt.Fprintf(a.stderr, "tablelog tail: %s: %s (still following)\n", it.service, a.redact(it.err.Error()))
			continue
		case seen[it.rec.ID] || !grepMatch(sel.grep, &it.rec):
			continue
		}
		if err := sel.fmt.write(out, &it.rec); err != nil {
			return err
		}
		if len(ch) == 0 {
			if err := out.Flush(); err != nil {
				return err
			}
		}
	}
	return out.Flush()
}
