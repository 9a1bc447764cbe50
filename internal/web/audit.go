package web

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tablelog/tablelog/auditlog"
	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/query"
)

// auditForm is the audit view's query string, as typed.
type auditForm struct {
	Service, Since, Until, Actor, Action, Target, Outcome, Where string
	// Head is an expected head, SEQ:HASH, recorded earlier.
	Head string
	// Before is the continuation: the Seq of the last event of the page
	// before.
	Before string
}

func readAuditForm(r *http.Request) auditForm {
	q := r.URL.Query()
	return auditForm{Service: q.Get("service"), Since: q.Get("since"), Until: q.Get("until"), Actor: q.Get("actor"),
		Action: q.Get("action"), Target: q.Get("target"), Outcome: q.Get("outcome"), Where: q.Get("where"),
		Head: q.Get("head"), Before: q.Get("before")}
}

func (f auditForm) values() url.Values {
	return url.Values{"service": {f.Service}, "since": {f.Since}, "until": {f.Until}, "actor": {f.Actor},
		"action": {f.Action}, "target": {f.Target}, "outcome": {f.Outcome}, "where": {f.Where},
		"head": {f.Head}, "before": {f.Before}}
}

// selection is a copy of an audit form's values without the page and the
// head: what an export takes.
func selection(form url.Values) url.Values {
	v := maps.Clone(form)
	v.Del("before")
	v.Del("head")
	return v
}

// resolveAudit turns the form into a query (Limit and the continuation
// unset).
func (s *Server) resolveAudit(f auditForm, now time.Time) (query.Audit, error) {
	q := query.Audit{Service: f.Service, Actor: f.Actor, Action: f.Action, Target: f.Target, Outcome: f.Outcome}
	if err := schema.ValidateService(f.Service); err != nil {
		return q, err
	}
	var err error
	if q.Since, q.Until, err = s.timeRange(f.Since, f.Until, now, q.Since, q.Until); err != nil {
		return q, err
	}
	if q.Where, err = s.opts.Syntax.AuditWhere(f.Where); err != nil {
		return q, err
	}
	return q, nil
}

// auditPage is the data of the audit view.
type auditPage struct {
	page
	F         auditForm
	Services  []string
	Outcomes  []string
	Rows      []auditRow
	More      bool
	OlderURL  string
	NewestURL string
	Permalink string
	CSVURL    string
	JSONLURL  string
	Range     string
	Verify    *verifyView
}

// auditRow is one event in the list.
type auditRow struct {
	Seq                                                 int64
	Time, Actor, Action, Target, Outcome, Class, Reason string
	SourceIP, RequestID, Attrs, Hash, PrevHash, ID, Loc string
}

// verifyView is Verify's result for the page.
type verifyView struct {
	Days     string
	OK       bool
	Checked  int
	Head     string // SEQ:HASH, empty without events
	HeadDay  string
	HeadTime string
	Breaks   []breakRow
	Omitted  int
	Error    string
	Expected string // the head checked against, if any
	Keyed    bool
}

type breakRow struct {
	Kind, Pos, Loc, Detail string
}

func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f := readAuditForm(r)
	p := auditPage{page: s.newPage("Audit", "audit", s.opts.AuditTable), F: f, Outcomes: outcomeChoices}
	if s.answered(w, r, s.audit, &f.Service, func() url.Values { return f.values() }, &p.page, &p, "audit trails yet (nothing recorded") {
		return
	}
	now := s.opts.Now()
	q, ferr := s.resolveAudit(f, now)
	var expected auditlog.Head
	if ferr == nil && f.Head != "" {
		expected, ferr = parseHead(f.Head)
	}
	pq := q
	if ferr == nil && f.Before != "" {
		seq, err := strconv.ParseInt(f.Before, 10, 64)
		if err != nil || seq <= 0 {
			ferr = fmt.Errorf("before %q is not a sequence number", f.Before)
		} else {
			pq.Where = query.And(pq.Where, query.Lt(schema.AuditColSeq, seq))
		}
	}
	var (
		wg       sync.WaitGroup
		services []string
		sErr     error
		evs      []query.AuditEvent
		evErr    error
		rep      auditlog.Report
		vErr     error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		services, sErr = s.services(ctx, "audit", s.audit)
	}()
	if ferr == nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vo := auditlog.VerifyOptions{Service: q.Service, Key: s.opts.AuditKey, ExpectedHead: expected}
			if !q.Since.IsZero() {
				vo.Since = q.Since
			}
			if !q.Until.IsZero() {
				// Verify takes whole days through Until's day; an Until
				// at midnight ends the day before.
				vo.Until = q.Until.Add(-time.Nanosecond)
			}
			rep, vErr = auditlog.Verify(ctx, s.opts.Audit, vo)
		}()
		pq.Limit = s.opts.PageSize + 1
		evs, evErr = collect(s.audit.Audit(ctx, pq), pq.Limit)
	}
	wg.Wait()
	p.Services = withService(services, f.Service)
	if s.failed(w, r, &p.page, &p, ferr, evErr, sErr) {
		return
	}
	if len(evs) > s.opts.PageSize {
		p.More = true
		evs = evs[:s.opts.PageSize]
	}
	for i := range evs {
		p.Rows = append(p.Rows, auditRowOf(&evs[i]))
	}
	last := ""
	if p.More {
		last = strconv.FormatInt(evs[len(evs)-1].Seq, 10)
	}
	var perma url.Values
	p.OlderURL, p.NewestURL, perma = navigation("/audit", f.values(), q.Since, q.Until, last)
	p.Permalink = pageURL("/audit", perma)
	sel := selection(perma)
	sel.Set("format", "csv")
	p.CSVURL = pageURL("/audit/export", sel)
	sel.Set("format", "jsonl")
	p.JSONLURL = pageURL("/audit/export", sel)
	p.Range = describeRange(q.Since, q.Until)
	if q.Since.IsZero() && q.Until.IsZero() {
		p.Range = "all days"
	}
	p.Verify = s.verifyView(rep, vErr, q, f.Head)
	s.render(w, r, http.StatusOK, "audit", &p)
}

// outcomeChoices are the outcomes offered (the field takes any text).
var outcomeChoices = []string{"success", "failure", "denied", "error", "unknown"}

func auditRowOf(ev *query.AuditEvent) auditRow {
	return auditRow{
		Seq: ev.Seq, Time: ev.Time.UTC().Format(timeLayout), Actor: ev.Actor, Action: ev.Action, Target: ev.Target,
		Outcome: ev.Outcome, Class: outcomeClass(ev.Outcome), Reason: ev.Reason, SourceIP: ev.SourceIP,
		RequestID: ev.RequestID, Attrs: ev.AttrsJSON, Hash: ev.Hash, PrevHash: ev.PrevHash, ID: ev.ID.String(),
		Loc: ev.PartitionKey + " / " + ev.RowKey,
	}
}

// outcomeClass is the colour class of an outcome.
func outcomeClass(o string) string {
	switch o {
	case "success":
		return "ok"
	case "denied", "failure":
		return "warn"
	case "error":
		return "error"
	}
	return "other"
}

// verifyView describes Verify's report for the page.
func (s *Server) verifyView(rep auditlog.Report, err error, q query.Audit, expected string) *verifyView {
	v := &verifyView{Checked: rep.Checked, Omitted: rep.Omitted, OK: err == nil && rep.OK(), Expected: expected, Keyed: len(s.opts.AuditKey) > 0}
	switch {
	case q.Since.IsZero() && q.Until.IsZero():
		v.Days = "the whole trail"
	case q.Until.IsZero():
		v.Days = "the days from " + q.Since.UTC().Format(time.DateOnly) + " to the newest"
	case q.Since.IsZero():
		v.Days = "the days from the first through " + q.Until.Add(-time.Nanosecond).UTC().Format(time.DateOnly)
	default:
		v.Days = "the days " + q.Since.UTC().Format(time.DateOnly) + " through " + q.Until.Add(-time.Nanosecond).UTC().Format(time.DateOnly)
	}
	if rep.Head.Seq > 0 {
		v.Head = strconv.FormatInt(rep.Head.Seq, 10) + ":" + rep.Head.Hash.String()
		if !rep.Head.Day.IsZero() {
			v.HeadDay = rep.Head.Day.Format(time.DateOnly)
		}
		if !rep.Head.Time.IsZero() {
			v.HeadTime = rep.Head.Time.UTC().Format(time.RFC3339Nano)
		}
	}
	for _, b := range rep.Breaks {
		pos := fmt.Sprintf("seq %d", b.Seq)
		if b.Count > 1 {
			pos = fmt.Sprintf("seq %d–%d", b.Seq, b.Seq+b.Count-1)
		}
		loc := ""
		if b.PartitionKey != "" {
			loc = b.PartitionKey + " / " + b.RowKey
		}
		v.Breaks = append(v.Breaks, breakRow{Kind: string(b.Kind), Pos: pos, Loc: loc, Detail: b.Detail})
	}
	if err != nil {
		v.Error = s.errorText(err)
	}
	return v
}

// parseHead parses SEQ:HASH, as Verify's head is shown.
func parseHead(s string) (auditlog.Head, error) {
	seqText, hashText, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return auditlog.Head{}, errors.New("expected head: SEQ:HASH, as shown under the verification")
	}
	seq, err := strconv.ParseInt(seqText, 10, 64)
	if err != nil || seq <= 0 {
		return auditlog.Head{}, fmt.Errorf("expected head: %q is not a sequence number", seqText)
	}
	h, err := auditlog.ParseHash(hashText)
	if err != nil {
		return auditlog.Head{}, errors.New("expected head: the hash is not 64 hex digits")
	}
	return auditlog.Head{Seq: seq, Hash: h}, nil
}

// handleExport writes the selected events (every page of them) as CSV or
// JSON lines, in the format of `tablelog audit export`.
func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) {
	f := readAuditForm(r)
	format := r.URL.Query().Get("format")
	if s.audit == nil {
		plain(w, http.StatusNotFound, "no audit table configured")
		return
	}
	var ctype string
	switch format {
	case "csv":
		ctype = "text/csv; charset=utf-8"
	case "jsonl":
		ctype = "application/x-ndjson; charset=utf-8"
	default:
		plain(w, http.StatusBadRequest, "format must be csv or jsonl")
		return
	}
	q, err := s.resolveAudit(f, s.opts.Now())
	if err != nil {
		plain(w, http.StatusBadRequest, s.opts.Redact(err.Error()))
		return
	}
	name := fmt.Sprintf("audit-%s-%s.%s", q.Service, s.opts.Now().UTC().Format("20060102T150405Z"), format)
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	// The body streams; an error part-way cannot change the status, so it
	// ends the body with a line that no export row can be.
	bw := &countingWriter{w: w}
	if err := s.opts.Export(r.Context(), bw, q, format); err != nil && r.Context().Err() == nil {
		s.logError(r, err)
		if bw.n == 0 {
			w.Header().Set("Content-Disposition", "inline")
			plain(w, http.StatusBadGateway, "export failed: "+s.errorText(err))
			return
		}
		fmt.Fprintf(w, "\n# EXPORT INCOMPLETE: %s\n", s.errorText(err))
	}
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
