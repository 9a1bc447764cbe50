// Command audit is an HTTP service whose middleware records every mutating
// request (POST, PUT, PATCH, DELETE) in a tamper-evident audit trail: who,
// what, which resource, the outcome and the source address. The request is
// answered only after its audit event is stored; if the event cannot be
// stored, the request fails (fail closed), as a compliance trail requires.
//
// Run against the emulator (make demo starts it):
//
//	go run ./examples/audit            # serves on 127.0.0.1:8080, makes a few requests itself, verifies the trail
//	go run ./examples/audit -serve     # keep serving; try: curl -X DELETE -H 'X-User: alice' localhost:8080/invoices/42
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tablelog/tablelog"
	"github.com/tablelog/tablelog/auditlog"
	"github.com/tablelog/tablelog/query"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	serve := flag.Bool("serve", false, "keep serving instead of running the self-test requests")
	flag.Parse()
	if err := run(*addr, *serve); err != nil {
		fmt.Fprintln(os.Stderr, "audit:", err)
		os.Exit(1)
	}
}

func run(addr string, serve bool) error {
	ctx := context.Background()
	// The account from $TABLELOG_CONNECTION_STRING, else the local emulator.
	cs := os.Getenv("TABLELOG_CONNECTION_STRING")
	if cs == "" {
		cs = "UseDevelopmentStorage=true"
	}
	table, err := tablelog.NewClientFromConnectionString(cs, "audit", nil)
	if err != nil {
		return err
	}
	// The HMAC key makes the chain unforgeable by anyone who can write the
	// table; keep it in a key vault, apart from the storage credential.
	// Without one, the chain is plain SHA-256: tamper-evident, but rewritable by
	// someone who can also recompute every later hash.
	var key []byte
	if k := os.Getenv("AUDIT_HMAC_KEY"); k != "" {
		key = []byte(k)
	}
	w, err := auditlog.New(table, auditlog.Options{Service: "invoices", Key: key})
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /invoices/{id}", func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "invoice %s\n", r.PathValue("id"))
	})
	mux.HandleFunc("DELETE /invoices/{id}", func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-User") != "alice" {
			http.Error(rw, "only alice may delete invoices", http.StatusForbidden)
			return
		}
		rw.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /invoices", func(rw http.ResponseWriter, r *http.Request) {
		rw.WriteHeader(http.StatusCreated)
	})

	srv := &http.Server{Addr: addr, Handler: Audit(w, mux), ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Println("serving on http://" + addr)
	if serve {
		select {}
	}

	// Self-test: a few requests, then read the trail back and verify it.
	base := "http://" + addr
	for _, rq := range []struct{ method, path, user string }{
		{"POST", "/invoices", "alice"},
		{"DELETE", "/invoices/42", "bob"},
		{"DELETE", "/invoices/42", "alice"},
		{"GET", "/invoices/7", "carol"}, // not mutating: not audited
	} {
		req, _ := http.NewRequest(rq.method, base+rq.path, nil)
		req.Header.Set("X-User", rq.user)
		req.Header.Set("X-Request-Id", fmt.Sprintf("req-%d", time.Now().UnixNano()%100000))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		fmt.Printf("%-6s %-13s as %-5s -> %d\n", rq.method, rq.path, rq.user, resp.StatusCode)
	}

	fmt.Println("\nthe trail, newest first:")
	n := 0
	for ev, err := range query.New(table).Audit(ctx, query.Audit{Service: "invoices", Since: time.Now().Add(-time.Hour), Limit: 5}) {
		if err != nil {
			return err
		}
		fmt.Printf("  #%d %s %-5s %-14s %-14s %s\n", ev.Seq, ev.Time.Format("15:04:05.000"), ev.Actor, ev.Action, ev.Target, ev.Outcome)
		n++
	}
	rep, err := auditlog.Verify(ctx, table, auditlog.VerifyOptions{Service: "invoices", Key: key})
	if err != nil {
		return err
	}
	fmt.Printf("\nverify: %d events checked, %d breaks, head %d:%s\n", rep.Checked, len(rep.Breaks), rep.Head.Seq, rep.Head.Hash)
	return nil
}

// Audit returns middleware that records each mutating request after the
// handler ran and before the response is sent; a request whose event cannot
// be stored is answered 503 instead.
func Audit(w *auditlog.Writer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		default:
			next.ServeHTTP(rw, r)
			return
		}
		rec := &buffered{header: http.Header{}, status: http.StatusOK}
		next.ServeHTTP(rec, r)

		outcome := auditlog.Success
		switch {
		case rec.status == http.StatusForbidden || rec.status == http.StatusUnauthorized:
			outcome = auditlog.Denied
		case rec.status >= 400:
			outcome = auditlog.Failure
		}
		actor := r.Header.Get("X-User")
		if actor == "" {
			actor = "anonymous"
		}
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		_, err := w.Record(ctx, auditlog.Event{
			Actor:     actor,
			Action:    "http." + strings.ToLower(r.Method),
			Target:    r.URL.Path,
			Outcome:   outcome,
			Reason:    strings.TrimSpace(string(rec.body)),
			SourceIP:  host,
			RequestID: r.Header.Get("X-Request-Id"),
			Attrs:     map[string]any{"status": rec.status},
		})
		if err != nil {
			http.Error(rw, "audit trail unavailable", http.StatusServiceUnavailable)
			return
		}
		for k, v := range rec.header {
			rw.Header()[k] = v
		}
		rw.WriteHeader(rec.status)
		rw.Write(rec.body)
	})
}

// buffered holds a handler's response until its audit event is stored.
type buffered struct {
	header http.Header
	status int
	body   []byte
}

func (b *buffered) Header() http.Header         { return b.header }
func (b *buffered) WriteHeader(status int)      { b.status = status }
func (b *buffered) Write(p []byte) (int, error) { b.body = append(b.body, p...); return len(p), nil }
