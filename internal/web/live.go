package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/tablelog/tablelog/query"
)

// heartbeat is how often an idle live tail sends a comment, so that
// proxies and the browser keep the stream open.
const heartbeat = 15 * time.Second

// handleLive streams new records as server-sent events, from query.Follow.
//
//	event: record   data: a recordRow as JSON (id: the record's ULID)
//	event: warning  data: {"error": "..."}  a transient error; following goes on
//	event: fatal    data: {"error": "..."}  following ended (the script stops)
//
// The query string is the logs view's filters (service, level, where, q;
// day, since and until do not apply) and from, an RFC 3339 time: records
// from then on are sent first (at most Lookback back), so the tail starts
// where the page's list ends. On a reconnect the browser's Last-Event-ID
// does the same. The script drops records it already shows, by ID.
func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f := readLogForm(r)
	f.Day, f.Since, f.Until, f.Before = "", "", "", ""
	if s.logs == nil {
		plain(w, http.StatusNotFound, "no logs table configured")
		return
	}
	now := s.opts.Now()
	q, err := s.resolveLogs(f, now)
	if err != nil {
		plain(w, http.StatusBadRequest, s.opts.Redact(err.Error()))
		return
	}
	if q.Since, err = s.liveStart(r, now); err != nil {
		plain(w, http.StatusBadRequest, err.Error())
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		plain(w, http.StatusInternalServerError, "streaming is not supported")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n: following\n\n")
	flusher.Flush()
	s.stream(ctx, w, flusher, r, q)
}

// liveStart is where a live tail starts: the request's from, or just before
// the record of the browser's Last-Event-ID (a reconnect), at most Lookback
// before now; without either, now.
func (s *Server) liveStart(r *http.Request, now time.Time) (time.Time, error) {
	var since time.Time
	if from := r.URL.Query().Get("from"); from != "" {
		t, err := time.Parse(time.RFC3339Nano, from)
		if err != nil {
			return since, errors.New("from is not an RFC 3339 time")
		}
		since = t
	}
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		if id, err := ulid.ParseStrict(last); err == nil {
			since = ulid.Time(id.Time()).Add(-time.Second)
		}
	}
	if !since.IsZero() && since.Before(now.Add(-s.opts.Lookback)) {
		since = now.Add(-s.opts.Lookback)
	}
	if since.IsZero() {
		// From the request on, not from whenever Follow's first poll runs:
		// a record stored between the answer's headers and that poll would
		// otherwise count as old and never be sent.
		since = now
	}
	return since, nil
}

// stream sends the records q follows as server-sent events until ctx is
// done or following ends, with a comment every heartbeat to keep the
// connection open. An error that following cannot get past (a missing
// table, refused credentials, a bad query) ends the stream with a "fatal"
// event; others are sent as "warning" events.
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, flusher http.Flusher, r *http.Request, q query.Logs) {
	type item struct {
		rec query.Record
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan item, 64)
	go func() {
		defer close(ch)
		for rec, err := range s.logs.Follow(ctx, q, query.FollowOptions{Poll: s.opts.Poll, Lookback: s.opts.Lookback}) {
			select {
			case ch <- item{rec, err}:
			case <-ctx.Done():
				return
			}
		}
	}()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		case it, ok := <-ch:
			if !ok {
				writeEvent(w, "fatal", "", map[string]string{"error": "following ended"})
				flusher.Flush()
				return
			}
			if it.err != nil {
				if ctx.Err() != nil {
					return
				}
				s.logError(r, it.err)
				fatal := errors.Is(it.err, query.ErrTableNotFound) || errors.Is(it.err, query.ErrAuth) || errors.Is(it.err, query.ErrInvalidQuery)
				kind := "warning"
				if fatal {
					kind = "fatal"
				}
				writeEvent(w, kind, "", map[string]string{"error": s.errorText(it.err)})
				flusher.Flush()
				if fatal {
					return
				}
				continue
			}
			writeEvent(w, "record", it.rec.ID.String(), s.row(&it.rec))
			if len(ch) == 0 {
				flusher.Flush()
			}
		}
	}
}

// writeEvent writes one server-sent event. The data is JSON: one line
// (encoding/json escapes newlines and, by default, <, > and &).
func writeEvent(w http.ResponseWriter, event, id string, v any) {
	js, err := json.Marshal(v)
	if err != nil {
		js = []byte(`{"error":"unencodable record"}`)
	}
	if id != "" {
		fmt.Fprintf(w, "id: %s\n", id)
	}
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, js)
}
