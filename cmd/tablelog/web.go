package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/internal/web"
	"github.com/tablelog/tablelog/query"
)

// envWebToken holds the access token of tablelog web.
const envWebToken = "TABLELOG_WEB_TOKEN"

const webUsage = `
Usage: tablelog web [--addr 127.0.0.1:8080] [flags]

Serves a read-only browser view of the logs and audit tables: records
newest first with level colours, a histogram, filters (time range, minimum
level, the --where syntax of tail, a text search), older pages, a detail
view of every field, and a live tail that can be paused; audit events with
actor/action/target/outcome/time filters, the hash chain's verification
for the selected days (computed here: the audit key never reaches the
browser), the head to record, and CSV/JSONL export as 'audit export'
writes it. Every view is a URL that can be pasted into a ticket.

It only reads: a read-only credential (a SAS with sp=rl and srt=co, or the
Storage Table Data Reader role) is all it needs, and every route is GET.

It binds the loopback interface by default and then answers only requests
for localhost. Any other --addr requires an access token: $TABLELOG_WEB_TOKEN,
or one generated at start and printed with the URL. Requests without it get
401. Serve it over TLS (a reverse proxy) beyond a trusted network.

Examples:

	tablelog web                                      # http://127.0.0.1:8080/
	tablelog web --addr 127.0.0.1:9000 --logs-table applogs
	TABLELOG_AUDIT_KEY=... tablelog web               # verify keyed trails
	tablelog web --addr 0.0.0.0:8080                  # prints http://HOST:8080/?token=...
	tablelog web --sas "https://ACCOUNT.table.core.windows.net/?sv=...&sp=rl&..."
`

func (a *app) web(ctx context.Context, args []string) error {
	const cmd = "web"
	fs := a.newFlagSet(cmd, webUsage)
	var cf connFlags
	var kf auditKeyFlags
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on; anything but loopback requires an access token")
	poll := fs.Duration("poll", web.DefaultPoll, "live tail: time between two polls of the table")
	lookback := fs.Duration("lookback", query.DefaultLookback, "live tail: how late a record may be stored after its time and still be shown")
	pageSize := fs.Int("page-size", web.DefaultPageSize, "records or events per page (1..1000)")
	quiet := fs.Bool("quiet", false, "do not log requests on stderr")
	kf.register(fs)
	cf.register(fs)
	pos, err := a.parseFlags(fs, cmd, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef(cmd, "unexpected argument %q", pos[0])
	}
	if *poll <= 0 || *lookback <= 0 {
		return usagef(cmd, "--poll and --lookback must be positive")
	}
	if *pageSize < 1 || *pageSize > 1000 {
		return usagef(cmd, "--page-size must be between 1 and 1000")
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		return usagef(cmd, "--addr %q is not HOST:PORT", *addr)
	}
	token, generated, err := a.webToken(*addr)
	if err != nil {
		return err
	}
	key, err := a.loadKey(cmd, kf)
	if err != nil {
		return err
	}
	t, err := a.connect(cmd, cf)
	if err != nil {
		return err
	}
	var logger *slog.Logger
	if !*quiet {
		logger = slog.New(slog.NewTextHandler(redactingWriter{a.stderr, a.redact}, nil))
	}
	srv, err := web.New(web.Options{
		Logs:       t.logs,
		Audit:      t.audit,
		LogsTable:  cf.logsTable,
		AuditTable: cf.auditTable,
		Account:    accountLabel(t.ep),
		AuditKey:   key,
		Token:      token,
		Poll:       *poll,
		Lookback:   *lookback,
		PageSize:   *pageSize,
		Syntax: web.Syntax{
			Where:      parseWhere,
			AuditWhere: parseAuditWhere,
			Time:       parseTimeArg,
			Level:      schema.ParseLevel,
		},
		Export: func(ctx context.Context, w io.Writer, q query.Audit, format string) error {
			return writeAuditExport(ctx, query.New(t.audit), w, []string{q.Service}, q, format, false)
		},
		Redact: a.redact,
		Logger: logger,
		Now:    a.now,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	what := fmt.Sprintf("tables %s and %s (read-only, %s)", cf.logsTable, cf.auditTable, t.ep.kind)
	a.announce(serveURL(ln.Addr(), *addr), what, token, generated)
	return a.serve(ctx, ln, srv)
}

// webToken returns the access token: $TABLELOG_WEB_TOKEN's, or one
// generated for this run (generated) when addr is not loopback, or none.
// A token is a secret: it is redacted from everything printed but the
// announcement of a generated one.
func (a *app) webToken(addr string) (token string, generated bool, err error) {
	token = strings.TrimSpace(a.env(envWebToken))
	if token == "" && !web.IsLoopbackAddr(addr) {
		if token, err = newToken(); err != nil {
			return "", false, err
		}
		generated = true
	}
	if token != "" {
		a.secrets = append(a.secrets, token)
	}
	return token, generated, nil
}

// announce prints where the server is (u) and what it serves, with the
// token when it was generated for this run.
func (a *app) announce(u, what, token string, generated bool) {
	switch {
	case generated:
		fmt.Fprintf(a.stdout, "tablelog web: serving %s at %s?token=%s\n", what, u, token)
		fmt.Fprintf(a.stdout, "tablelog web: the access token was generated for this run (set $%s to choose one); requests without it get 401\n", envWebToken)
	case token != "":
		fmt.Fprintf(a.stdout, "tablelog web: serving %s at %s (access token from $%s)\n", what, u, envWebToken)
	default:
		fmt.Fprintf(a.stdout, "tablelog web: serving %s at %s\n", what, u)
	}
	if f, ok := a.stdout.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
}

// serve serves srv on ln until ctx is done, then shuts down (live tails
// end at once; other requests get 5 seconds).
func (a *app) serve(ctx context.Context, ln net.Listener, srv http.Handler) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx }, // ends live tails on shutdown
		ErrorLog:          log.New(redactingWriter{a.stderr, a.redact}, "tablelog web: ", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// newToken returns 32 random bytes, base64url.
func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// serveURL is the URL to print for a listener: the bound address, or the
// host name when every interface is bound.
func serveURL(bound net.Addr, requested string) string {
	host, port, _ := net.SplitHostPort(bound.String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	if rh, _, err := net.SplitHostPort(requested); err == nil && strings.EqualFold(rh, "localhost") {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// accountLabel names the account of ep for the page header: the account
// name or the endpoint's host, never a key or a query string.
func accountLabel(ep endpoint) string {
	switch ep.kind {
	case kindEmulator:
		return "emulator"
	case kindConnectionString:
		for _, part := range strings.Split(ep.connectionString, ";") {
			if k, v, ok := strings.Cut(part, "="); ok {
				switch strings.ToLower(strings.TrimSpace(k)) {
				case "accountname":
					return strings.TrimSpace(v)
				}
			}
		}
		for _, part := range strings.Split(ep.connectionString, ";") {
			if k, v, ok := strings.Cut(part, "="); ok && strings.EqualFold(strings.TrimSpace(k), "tableendpoint") {
				if u, err := url.Parse(strings.TrimSpace(v)); err == nil {
					return u.Host
				}
			}
		}
	case kindSAS, kindEntra:
		if u, err := url.Parse(ep.serviceURL); err == nil {
			return u.Host + strings.TrimSuffix(u.Path, "/")
		}
	}
	return ""
}

// redactingWriter redacts secrets from what is written through it (the
// request log, net/http's error log).
type redactingWriter struct {
	w      io.Writer
	redact func(string) string
}

func (r redactingWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(r.w, r.redact(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
