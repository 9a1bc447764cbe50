package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tablelog/tablelog/auditlog"
	"github.com/tablelog/tablelog/query"
)

// Defaults of Options.
const (
	// DefaultPoll is the live tail's time between two polls of the table:
	// a record shows within about this long after it is stored.
	DefaultPoll = 500 * time.Millisecond
	// DefaultPageSize is the number of records or events on a page.
	DefaultPageSize = 100
)

// AuditTable is what the server needs of the audit table: queries and point
// reads (Verify reads the head with one). Read permission is enough;
// *aztables.Client implements it.
type AuditTable interface {
	auditlog.ReadTable
}

// Syntax is the input language of the CLI, so that a filter typed in the
// browser means what it means on the command line. Every function must be
// safe for concurrent use.
type Syntax struct {
	// Where compiles the --where language of tail and query.
	Where func(src string) (query.Filter, error)
	// AuditWhere compiles the --where language of audit ls.
	AuditWhere func(src string) (query.Filter, error)
	// Time parses a --since/--until value (a duration ago, an RFC 3339
	// time or a date) relative to now.
	Time func(s string, now time.Time) (time.Time, error)
	// Level parses a level value into a severity on slog's scale; its
	// error is shown on the page.
	Level func(s string) (int, error)
}

// ExportFunc writes the events q selects (q.Service set, q.Limit zero) to w
// in format "csv" or "jsonl", as `tablelog audit export` does.
type ExportFunc func(ctx context.Context, w io.Writer, q query.Audit, format string) error

// Options configure a Server. Logs or Audit may be nil (that view then says
// so); Syntax and Export are required.
type Options struct {
	// Logs is the logs table the sink writes; Audit the audit table.
	Logs  query.Table
	Audit AuditTable
	// LogsTable, AuditTable and Account are shown in the page header (names
	// only: never pass a URL with a query string or a connection string).
	LogsTable, AuditTable, Account string

	// AuditKey is the HMAC key of keyed audit trails, for Verify. It stays
	// on the server; nil for SHA-256 trails.
	AuditKey []byte

	// Token, when not empty, is required on every request (see the package
	// documentation). Empty: only loopback Host headers are answered.
	Token string

	// Poll and Lookback tune the live tail (query.FollowOptions). Zero:
	// DefaultPoll and query.DefaultLookback.
	Poll, Lookback time.Duration
	// PageSize is the number of records or events per page (default
	// DefaultPageSize, at most 1,000).
	PageSize int

	Syntax Syntax
	Export ExportFunc

	// Redact removes secrets from a text before it is shown or logged
	// (errors from the SDK can carry request URLs). Nil: identity; the
	// server then relies on query's and auditlog's errors being clean.
	Redact func(string) string
	// Logger receives one line per request (method, path without the query
	// string, status, duration) and the errors of requests. Nil: no log.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server serves the browser view. It is an http.Handler, safe for
// concurrent use. Create it with New.
type Server struct {
	opts  Options
	logs  *query.Reader
	audit *query.Reader
	tmpl  *template.Template
	mux   *http.ServeMux

	catMu   sync.Mutex
	catalog map[string]catalogEntry // "logs", "audit", "logs/<service>": cached catalog reads
}

var _ http.Handler = (*Server)(nil)

//go:embed assets
var assets embed.FS

// New returns a Server with opts. It fails if a required option is missing.
func New(opts Options) (*Server, error) {
	if opts.Syntax.Where == nil || opts.Syntax.AuditWhere == nil || opts.Syntax.Time == nil || opts.Syntax.Level == nil {
		return nil, errors.New("web: Options.Syntax is incomplete")
	}
	if opts.Export == nil {
		return nil, errors.New("web: Options.Export is required")
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	if opts.Lookback <= 0 {
		opts.Lookback = query.DefaultLookback
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	opts.PageSize = min(opts.PageSize, 1000)
	if opts.Redact == nil {
		opts.Redact = func(s string) string { return s }
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	tmpl, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, tmpl: tmpl, mux: http.NewServeMux(), catalog: map[string]catalogEntry{}}
	if opts.Logs != nil {
		s.logs = query.New(opts.Logs)
	}
	if opts.Audit != nil {
		s.audit = query.New(opts.Audit)
	}
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/logs", http.StatusSeeOther)
	})
	s.mux.HandleFunc("GET /logs", s.handleLogs)
	s.mux.HandleFunc("GET /logs/record", s.handleRecord)
	s.mux.HandleFunc("GET /logs/live", s.handleLive)
	s.mux.HandleFunc("GET /audit", s.handleAudit)
	s.mux.HandleFunc("GET /audit/export", s.handleExport)
	s.mux.HandleFunc("GET /static/{name}", s.handleStatic)
	return s, nil
}

// Security headers of every response.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// tokenCookie is the cookie that carries the access token after the first
// request.
const tokenCookie = "tablelog_token"

// ServeHTTP applies the security headers, the method and access checks,
// then routes the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	h := sw.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	defer func() {
		if s.opts.Logger != nil {
			// The path only: the query string can hold the token (once)
			// and the user's filters.
			s.opts.Logger.Info("request", "method", r.Method, "path", s.opts.Redact(r.URL.Path),
				"status", sw.status(), "duration", time.Since(start).Round(time.Microsecond))
		}
	}()
	if r.Method != http.MethodGet {
		h.Set("Allow", http.MethodGet)
		plain(sw, http.StatusMethodNotAllowed, "405 method not allowed: this server is read-only (GET only)")
		return
	}
	if !s.authorize(sw, r) {
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// authorize checks the token or, without one, the Host header. It writes
// the answer and returns false when the request is not to be served.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	if s.opts.Token == "" {
		if !loopbackHost(r.Host) {
			plain(w, http.StatusForbidden, "403 forbidden: without an access token this server answers only to localhost, 127.0.0.1 and [::1]")
			return false
		}
		return true
	}
	if t := r.URL.Query().Get("token"); t != "" {
		if !s.tokenOK(t) {
			s.unauthorized(w)
			return false
		}
		// Trade the token in the URL for a cookie, and drop it from the
		// address bar.
		http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: t, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		u := *r.URL
		q := u.Query()
		q.Del("token")
		u.RawQuery = q.Encode()
		u.Scheme, u.Host = "", ""
		http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
		return false
	}
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && s.tokenOK(strings.TrimSpace(v)) {
		return true
	}
	if c, err := r.Cookie(tokenCookie); err == nil && s.tokenOK(c.Value) {
		return true
	}
	s.unauthorized(w)
	return false
}

func (s *Server) tokenOK(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(s.opts.Token)) == 1
}

func (s *Server) unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="tablelog web"`)
	plain(w, http.StatusUnauthorized, "401 unauthorized: open the URL tablelog web printed (it carries the access token), or send Authorization: Bearer TOKEN")
}

// loopbackHost reports whether a Host header names this machine's loopback
// interface.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsLoopbackAddr reports whether a listen address (host:port) binds only a
// loopback interface: 127.0.0.0/8, ::1 or localhost. An empty host (all
// interfaces) is not loopback.
func IsLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	return loopbackHost(host)
}

// plain writes a short text answer.
func plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// statusWriter records the status code of a response. It passes Flush on
// for the live tail.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// handleStatic serves the embedded script, stylesheet and icon.
func (s *Server) handleStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var ctype string
	switch name {
	case "app.js":
		ctype = "text/javascript; charset=utf-8"
	case "app.css":
		ctype = "text/css; charset=utf-8"
	case "favicon.svg":
		ctype = "image/svg+xml"
	default:
		http.NotFound(w, r)
		return
	}
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write(b)
}

// catalogEntry is a cached catalog read.
type catalogEntry struct {
	at    time.Time
	names []string
	days  []time.Time
}

// catalogTTL is how long a catalog read is reused: the pickers need not
// cost a request on every page.
const catalogTTL = 15 * time.Second

// services returns the services of r's catalog (cached for catalogTTL).
func (s *Server) services(ctx context.Context, kind string, r *query.Reader) ([]string, error) {
	if e, ok := s.cached(kind); ok {
		return e.names, nil
	}
	names, err := r.Services(ctx)
	if err != nil {
		return nil, err
	}
	s.store(kind, catalogEntry{names: names})
	return names, nil
}

// days returns the days of service in r's catalog (cached for catalogTTL).
func (s *Server) days(ctx context.Context, kind string, r *query.Reader, service string) ([]time.Time, error) {
	key := kind + "/" + service
	if e, ok := s.cached(key); ok {
		return e.days, nil
	}
	days, err := r.Days(ctx, service)
	if err != nil {
		return nil, err
	}
	s.store(key, catalogEntry{days: days})
	return days, nil
}

func (s *Server) cached(key string) (catalogEntry, bool) {
	s.catMu.Lock()
	defer s.catMu.Unlock()
	e, ok := s.catalog[key]
	return e, ok && s.opts.Now().Sub(e.at) < catalogTTL
}

func (s *Server) store(key string, e catalogEntry) {
	s.catMu.Lock()
	defer s.catMu.Unlock()
	e.at = s.opts.Now()
	if len(s.catalog) > 10000 {
		clear(s.catalog)
	}
	s.catalog[key] = e
}

// errorText is the text of err for a page: its message, redacted, with a
// hint for the usual causes.
func (s *Server) errorText(err error) string {
	msg := err.Error() // as it is: its package prefix says which layer failed
	switch {
	case errors.Is(err, query.ErrTableNotFound):
		msg += " (check --logs-table / --audit-table and the account)"
	case errors.Is(err, query.ErrAuth):
		msg += " (the credentials were refused or cannot read this table)"
	case errors.Is(err, auditlog.ErrKeyRequired):
		msg += " (start tablelog web with --key-file FILE or $TABLELOG_AUDIT_KEY)"
	}
	return s.opts.Redact(msg)
}

// logError logs the error of a request (redacted).
func (s *Server) logError(r *http.Request, err error) {
	if s.opts.Logger != nil && !errors.Is(err, context.Canceled) {
		s.opts.Logger.Warn("request failed", "path", r.URL.Path, "error", s.errorText(err))
	}
}

// pageURL is path with the non-empty values of q, sorted.
func pageURL(path string, q url.Values) string {
	clean := url.Values{}
	for k, vs := range q {
		for _, v := range vs {
			if v != "" {
				clean.Add(k, v)
			}
		}
	}
	if len(clean) == 0 {
		return path
	}
	return path + "?" + clean.Encode()
}
