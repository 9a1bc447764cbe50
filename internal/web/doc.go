// Package web is the read-only browser view behind `tablelog web`: log
// records (newest first, filters, older pages, a detail view, a live tail
// over server-sent events, a histogram by level) and audit trails (events,
// the hash chain's Verify status, CSV and JSON-lines export).
//
// Everything it serves is embedded (templates, one stylesheet, one script);
// a page makes no request but to this server, and the server makes none but
// to the table service.
//
// # Read only
//
// The server holds the tables only through query.Table and
// auditlog.ReadTable (listing entities and point reads): it has no method
// that could write. Every route is a GET; any other method is answered 405.
// A read-only credential (a SAS with sp=rl, or the Storage Table Data Reader
// role) is all it needs.
//
// # Security
//
// Every response carries a strict Content-Security-Policy (scripts and
// styles from this origin only, no inline script or style, no frames, no
// form target elsewhere), X-Content-Type-Options: nosniff and
// Referrer-Policy: no-referrer. Log content is rendered by html/template
// (contextual escaping) and sent to the live tail as JSON, which the script
// puts into the page as text only (textContent, never innerHTML).
//
// With Options.Token empty the server answers only requests whose Host is a
// loopback name or address (127.0.0.1, ::1, localhost), which defeats DNS
// rebinding against a loopback listener; the caller binds loopback. With a
// token, every request must carry it: an Authorization: Bearer header, the
// cookie the server sets, or once, in the query string of the URL printed at
// start (the server then sets the cookie and redirects to the same URL
// without it, so the token never stays in an address bar, a link or a log).
// Requests without it are answered 401.
//
// No connection string, account key, SAS or token appears in a page, a URL,
// an error or a log line: the server never holds the connection string, and
// every error text passes through Options.Redact.
package web
