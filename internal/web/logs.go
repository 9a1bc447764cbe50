package web

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/tablelog/tablelog/internal/fieldtext"
	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/query"
)

// Display limits of the list: the detail view shows everything.
const (
	maxListMessage = 300 // runes of a message in the list
	maxListFields  = 240 // runes of the fields summary in the list
)

// timeLayout is how times are shown: UTC with milliseconds.
const timeLayout = "2006-01-02 15:04:05.000"

// logForm is the logs view's query string, as typed.
type logForm struct {
	Service, Day, Since, Until, Level, Where, Q string
	// Before is the continuation: the ID of the last record of the page
	// before (older records follow it).
	Before string
}

func readLogForm(r *http.Request) logForm {
	q := r.URL.Query()
	return logForm{
		Service: q.Get("service"), Day: q.Get("day"), Since: q.Get("since"), Until: q.Get("until"),
		Level: q.Get("level"), Where: q.Get("where"), Q: q.Get("q"), Before: q.Get("before"),
	}
}

// values is the form as URL values (empty ones are dropped by pageURL).
func (f logForm) values() url.Values {
	return url.Values{"service": {f.Service}, "day": {f.Day}, "since": {f.Since}, "until": {f.Until},
		"level": {f.Level}, "where": {f.Where}, "q": {f.Q}, "before": {f.Before}}
}

// resolve turns the form into a query (Limit unset). The error is the
// user's mistake, for the page.
func (s *Server) resolveLogs(f logForm, now time.Time) (query.Logs, error) {
	q := query.Logs{Service: f.Service, MinLevel: query.AllLevels, Contains: f.Q}
	if err := schema.ValidateService(f.Service); err != nil {
		return q, err
	}
	var err error
	if f.Day != "" {
		day, err := time.Parse(time.DateOnly, f.Day)
		if err != nil {
			return q, fmt.Errorf("day %q is not a date (YYYY-MM-DD)", f.Day)
		}
		q.Since, q.Until = day, day.AddDate(0, 0, 1)
	}
	if q.Since, q.Until, err = s.timeRange(f.Since, f.Until, now, q.Since, q.Until); err != nil {
		return q, err
	}
	if f.Level != "" {
		sev, err := s.opts.Syntax.Level(f.Level)
		if err != nil {
			return q, fmt.Errorf("level: %w", err)
		}
		q.MinLevel = levelOf(sev)
	}
	if q.Where, err = s.opts.Syntax.Where(f.Where); err != nil {
		return q, err
	}
	return q, nil
}

// timeRange resolves a form's since and until (in Syntax.Time's forms,
// relative to now) over the range from..to they refine (zero: open), and
// checks that since is before until.
func (s *Server) timeRange(since, until string, now, from, to time.Time) (time.Time, time.Time, error) {
	var err error
	if since != "" {
		if from, err = s.opts.Syntax.Time(since, now); err != nil {
			return from, to, fmt.Errorf("since: %w", err)
		}
	}
	if until != "" {
		if to, err = s.opts.Syntax.Time(until, now); err != nil {
			return from, to, fmt.Errorf("until: %w", err)
		}
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return from, to, errors.New("since is not before until")
	}
	return from, to, nil
}

// page is what every page template gets.
type page struct {
	Title   string
	Nav     string // "logs" or "audit"
	Account string
	Table   string
	Error   string
}

func (s *Server) newPage(title, nav, table string) page {
	return page{Title: title, Nav: nav, Account: s.opts.Account, Table: table}
}

// withService is the service picker's list: the catalog's services, with
// the page's own first when the catalog does not list it.
func withService(catalog []string, service string) []string {
	if slices.Contains(catalog, service) {
		return catalog
	}
	return append([]string{service}, catalog...)
}

// failed answers a view's request that cannot show its rows, and reports
// whether it did: a mistake in the form (formErr) is a 400 with its message
// on the page; otherwise the first non-nil read error is a failed page
// (fail). p is data's page; p.Nav names the template.
func (s *Server) failed(w http.ResponseWriter, r *http.Request, p *page, data any, formErr error, readErrs ...error) bool {
	if formErr != nil {
		p.Error = s.opts.Redact(formErr.Error())
		s.render(w, r, http.StatusBadRequest, p.Nav, data)
		return true
	}
	for _, err := range readErrs {
		if err != nil {
			s.fail(w, r, data, p, err)
			return true
		}
	}
	return false
}

// navigation returns the links of a view's page from its form's values v:
// older, the page after last ("" when there are no more); newest, the first
// page when this one is not (v has a "before"); perma, v with its relative
// times ("1h") pinned to what they meant now (since and until resolved).
func navigation(path string, v url.Values, since, until time.Time, last string) (older, newest string, perma url.Values) {
	if last != "" {
		o := maps.Clone(v)
		o.Set("before", last)
		older = pageURL(path, o)
	}
	if v.Get("before") != "" {
		n := maps.Clone(v)
		n.Del("before")
		newest = pageURL(path, n)
	}
	perma = maps.Clone(v)
	if v.Get("since") != "" {
		perma.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	if v.Get("until") != "" {
		perma.Set("until", until.UTC().Format(time.RFC3339Nano))
	}
	return older, newest, perma
}

// answered does what the logs and audit views do before their query, and
// reports whether it answered the request: without a table (reader nil) it
// renders the page saying so; without a service (*service == "") it
// redirects to the page of the catalog's first service (a URL of its own:
// values is the form with *service set), or renders the page saying the
// catalog lists none (none: "services yet (nothing written", closed with
// the flag naming the table). p is data's page; p.Nav names the view, its
// template and its path.
func (s *Server) answered(w http.ResponseWriter, r *http.Request, reader *query.Reader, service *string, values func() url.Values, p *page, data any, none string) bool {
	if reader == nil {
		p.Error = "no " + p.Nav + " table configured"
		s.render(w, r, http.StatusOK, p.Nav, data)
		return true
	}
	if *service != "" {
		return false
	}
	names, err := s.services(r.Context(), p.Nav, reader)
	if err != nil {
		s.fail(w, r, data, p, err)
		return true
	}
	if len(names) == 0 {
		p.Error = fmt.Sprintf("the catalog of table %q lists no %s, or another table: --%s-table)", p.Table, none, p.Nav)
		s.render(w, r, http.StatusOK, p.Nav, data)
		return true
	}
	*service = names[0]
	http.Redirect(w, r, pageURL("/"+p.Nav, values()), http.StatusSeeOther)
	return true
}

// logsPage is the data of the logs view.
type logsPage struct {
	page
	F         logForm
	Services  []string
	Days      []string
	Levels    []string
	Range     string
	Rows      []recordRow
	RowsHTML  template.HTML // the rows, by rowsHTML
	Hist      *histogram
	More      bool
	OlderURL  string
	NewestURL string
	Permalink string
	LiveURL   string
	LiveFrom  string
	PageSize  int
}

// recordRow is one record in the list (and in the live tail's JSON).
type recordRow struct {
	ID     string `json:"id"`
	Time   string `json:"time"`
	Level  string `json:"level"`
	Class  string `json:"class"`
	Msg    string `json:"msg"`
	Fields string `json:"fields"`
	Logger string `json:"logger"`
	Href   string `json:"href"`
	t      time.Time
	sev    int
}

func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f := readLogForm(r)
	p := logsPage{page: s.newPage("Logs", "logs", s.opts.LogsTable), F: f, Levels: levelChoices, PageSize: s.opts.PageSize}
	if s.answered(w, r, s.logs, &f.Service, func() url.Values { return f.values() }, &p.page, &p, "services yet (nothing written") {
		return
	}
	now := s.opts.Now()
	q, ferr := s.resolveLogs(f, now)
	var (
		wg         sync.WaitGroup
		services   []string
		days       []time.Time
		recs       []query.Record
		sErr, dErr error
		recErr     error
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		services, sErr = s.services(ctx, "logs", s.logs)
	}()
	go func() {
		defer wg.Done()
		if schema.ValidateService(f.Service) == nil {
			days, dErr = s.days(ctx, "logs", s.logs, f.Service)
		}
	}()
	if ferr == nil {
		pq := q
		if f.Before != "" {
			id, err := ulid.ParseStrict(f.Before)
			if err != nil {
				ferr = fmt.Errorf("before %q is not a record ID", f.Before)
			} else {
				pq = olderThan(pq, id)
			}
		}
		if ferr == nil {
			pq.Limit = s.opts.PageSize + 1
			recs, recErr = collect(s.logs.Logs(ctx, pq), pq.Limit)
		}
	}
	wg.Wait()
	p.Services = withService(services, f.Service)
	for i := len(days) - 1; i >= 0; i-- {
		p.Days = append(p.Days, days[i].Format(time.DateOnly))
	}
	if f.Day != "" && !slices.Contains(p.Days, f.Day) {
		p.Days = append([]string{f.Day}, p.Days...)
	}
	if s.failed(w, r, &p.page, &p, ferr, recErr, sErr, dErr) {
		return
	}
	if len(recs) > s.opts.PageSize {
		p.More = true
		recs = recs[:s.opts.PageSize]
	}
	p.Rows = make([]recordRow, len(recs))
	for i := range recs {
		p.Rows[i] = s.row(&recs[i])
	}
	p.RowsHTML = rowsHTML(p.Rows)
	p.Hist = buildHistogram(p.Rows)
	p.Range = describeRange(q.Since, q.Until)
	last := ""
	if p.More {
		last = recs[len(recs)-1].ID.String()
	}
	var perma url.Values
	p.OlderURL, p.NewestURL, perma = navigation("/logs", f.values(), q.Since, q.Until, last)
	p.Permalink = pageURL("/logs", perma)
	if f.Before == "" && q.Until.IsZero() {
		live := f
		live.Day, live.Since, live.Before = "", "", ""
		p.LiveURL = pageURL("/logs/live", live.values())
		from := now
		if len(recs) > 0 {
			from = recs[0].Time
		}
		p.LiveFrom = from.UTC().Format(time.RFC3339Nano)
	}
	s.render(w, r, http.StatusOK, "logs", &p)
}

// olderThan narrows q to the records after id in newest-first order
// (RowKey greater than id's), on the server. The reader's RowKey range
// stops at id's millisecond (a record's key time is never earlier than
// its time, less the writer's 1 s clock-step tolerance).
func olderThan(q query.Logs, id ulid.ULID) query.Logs {
	until := ulid.Time(id.Time()).Add(time.Second)
	if q.Until.IsZero() || until.Before(q.Until) {
		q.Until = until
	}
	q.Where = query.And(q.Where, query.Gt(query.Column(schema.ColRowKey), schema.RowKey(id)))
	return q
}

// collect reads up to n values of seq; the first error ends it (an
// undecodable entity too: the page says so rather than hide it).
func collect[T any](seq func(func(T, error) bool), n int) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, v)
		if n > 0 && len(out) == n {
			break
		}
	}
	return out, nil
}

// describeRange is the resolved time range in words.
func describeRange(since, until time.Time) string {
	switch {
	case since.IsZero() && until.IsZero():
		return "newest records"
	case until.IsZero():
		return "from " + since.UTC().Format(time.RFC3339) + " to now"
	case since.IsZero():
		return "before " + until.UTC().Format(time.RFC3339)
	}
	return since.UTC().Format(time.RFC3339) + " to " + until.UTC().Format(time.RFC3339)
}

// levelChoices are the minimum levels offered.
var levelChoices = []string{"debug", "info", "warn", "error", "dpanic", "panic", "fatal"}

// row is the list form of rec.
func (s *Server) row(rec *query.Record) recordRow {
	id := rec.ID.String()
	return recordRow{
		ID:     id,
		Time:   rec.Time.UTC().Format(timeLayout),
		Level:  fieldtext.Level(rec.Level, rec.Severity),
		Class:  levelClass(rec.Severity),
		Msg:    cut(rec.Message, maxListMessage),
		Fields: cut(fieldSummary(rec.Fields), maxListFields),
		Logger: rec.Logger,
		Href:   "/logs/record?id=" + id + "&service=" + url.QueryEscape(rec.Service),
		t:      rec.Time,
		sev:    rec.Severity,
	}
}

// rowsHTML renders the list's rows. It writes each value through
// html/template's HTMLEscapeString, into element text or a double-quoted
// attribute only (no URL, script or style context: the only URL is the
// detail link, built by row from url.Values), so it escapes what the
// template would; it exists because the template's per-value escaper calls
// (reflection, a dozen a row) were half of a page's rendering time.
func rowsHTML(rows []recordRow) template.HTML {
	var b strings.Builder
	b.Grow(len(rows) * 512)
	esc := func(s string) { b.WriteString(template.HTMLEscapeString(s)) }
	for i := range rows {
		r := &rows[i]
		b.WriteString(`<tr data-id="`)
		esc(r.ID)
		b.WriteString(`" class="row lv-`)
		esc(r.Class)
		b.WriteString(`"><td class="c-time"><a href="`)
		esc(r.Href)
		b.WriteString(`">`)
		esc(r.Time)
		b.WriteString(`</a></td><td class="c-level"><span class="badge lv-`)
		esc(r.Class)
		b.WriteString(`">`)
		esc(r.Level)
		b.WriteString(`</span></td><td class="msg">`)
		if r.Logger != "" {
			b.WriteString(`<span class="logger">`)
			esc(r.Logger)
			b.WriteString(`</span> `)
		}
		esc(r.Msg)
		b.WriteString(`</td><td class="fields">`)
		esc(r.Fields)
		b.WriteString("</td></tr>\n")
	}
	return template.HTML(b.String())
}

// cut shortens s to n runes, marking the cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for k := range s {
		if i == n {
			return s[:k] + fmt.Sprintf("… (%d bytes more)", len(s)-k)
		}
		i++
	}
	return s
}

// levelClass is the colour class of a severity.
func levelClass(sev int) string {
	switch {
	case sev < 0:
		return "debug"
	case sev < 4:
		return "info"
	case sev < 8:
		return "warn"
	case sev < 12:
		return "error"
	}
	return "fatal"
}

// recordPage is the data of the detail view.
type recordPage struct {
	page
	Service  string
	Rec      *query.Record
	Time     string
	Level    string
	Class    string
	Fields   []fieldNode
	ListURL  string
	Severity int
}

func (s *Server) handleRecord(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	service, idText := r.URL.Query().Get("service"), r.URL.Query().Get("id")
	p := recordPage{page: s.newPage("Record", "logs", s.opts.LogsTable), Service: service,
		ListURL: pageURL("/logs", url.Values{"service": {service}})}
	if s.logs == nil {
		p.Error = "no logs table configured"
		s.render(w, r, http.StatusNotFound, "record", &p)
		return
	}
	id, err := ulid.ParseStrict(idText)
	if err == nil {
		err = schema.ValidateService(service)
	}
	if err != nil {
		p.Error = "the link is not a record's: it needs service=NAME and id=ULID"
		s.render(w, r, http.StatusBadRequest, "record", &p)
		return
	}
	rec, err := findRecord(ctx, s.logs, service, id)
	if err != nil {
		s.fail(w, r, &p, &p.page, err)
		return
	}
	if rec == nil {
		p.Error = "no record " + id.String() + " in service " + service
		s.render(w, r, http.StatusNotFound, "record", &p)
		return
	}
	p.Rec = rec
	p.Title = cut(rec.Message, 60)
	p.Time = rec.Time.UTC().Format(time.RFC3339Nano)
	p.Level = fieldtext.Level(rec.Level, rec.Severity)
	p.Class = levelClass(rec.Severity)
	p.Severity = rec.Severity
	p.Fields = fieldTree(rec.Fields)
	day := rec.Time.UTC().Format(time.DateOnly)
	p.ListURL = pageURL("/logs", url.Values{"service": {service}, "day": {day}})
	s.render(w, r, http.StatusOK, "record", &p)
}

// findRecord reads the record with id: one query with RowKey eq on the day
// partitions around its key time.
func findRecord(ctx context.Context, r *query.Reader, service string, id ulid.ULID) (*query.Record, error) {
	kt := ulid.Time(id.Time())
	q := query.Logs{Service: service, Since: kt.Add(-time.Hour), Until: kt.Add(time.Second), MinLevel: query.AllLevels,
		Where: query.Eq(query.Column(schema.ColRowKey), schema.RowKey(id)), Limit: 1}
	recs, err := collect(r.Logs(ctx, q), 1)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return &recs[0], nil
}
