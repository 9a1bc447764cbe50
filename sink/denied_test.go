package sink

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/spool"
)

// A "denied" answer (401, 403, 404: an expired SAS, a
// firewall, clock skew, RBAC not yet propagated, a table deleted under
// NoCreateTable) says nothing about the records. With a spool they must stay
// on disk until a later run can store them; without one they are lost, and
// counted and reported as such.

// Every request is denied while a Sink with a spool runs: Close at its
// deadline leaves all the records in the spool and says so; once the fault
// is gone, a new Sink on the directory stores every one of them.
func TestSpoolKeepsDeniedRecords(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			p, tbl := faultyTable(t)
			dir := t.TempDir()
			const n = 50
			o := fastRetry
			o.SpoolDir = dir
			o.NoCreateTable = status == http.StatusNotFound // the table is gone and may not be created

			p.SetFaults(azurite.Faults{StatusRate: 1, Status: status})
			s1, errs1 := newSink(t, tbl, o)
			writeN(t, s1, n, "denied")
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := s1.Close(ctx)
			cancel()
			var de *DeliveryError
			if !errors.As(err, &de) || de.Spooled != n {
				t.Fatalf("Close while denied: %v (%+v), want %d records kept in the spool", err, de, n)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%d records stay in the spool", n)) {
				t.Errorf("Close error does not say the records stay in the spool: %v", err)
			}
			st := s1.Stats()
			if st.Written != 0 || st.Retries == 0 {
				t.Errorf("stats %+v: want nothing written and the denied requests retried", st)
			}
			if len(errs1.all()) == 0 {
				t.Error("the denial was not reported")
			}
			if got := p.Stats().Faults[azurite.FaultStatus]; got < 2 {
				t.Errorf("%d denied requests: want the writes retried (with backoff) until Close", got)
			}

			// The spool directory still holds every record.
			sp, err := spool.Open(spool.Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			pending := sp.Stats().Pending
			if err := sp.Close(); err != nil {
				t.Fatal(err)
			}
			if pending != n {
				t.Fatalf("the spool holds %d records after Close, want %d", pending, n)
			}

			// The credential is fixed: the next run stores all of them.
			p.Reset()
			s2, errs2 := newSink(t, tbl, o)
			if err := s2.Close(ctxT(t, time.Minute)); err != nil {
				t.Fatal(err)
			}
			if st := s2.Stats(); st.Replayed != n || st.Written != n || st.FailedRecords != 0 {
				t.Errorf("second run: stats %+v, want %d replayed and written", st, n)
			}
			if e := errs2.all(); len(e) != 0 {
				t.Errorf("second run reported: %v", e)
			}
			logs, _ := readAll(t, tbl)
			msgs := map[string]bool{}
			for _, e := range logs {
				msgs[e.Msg] = true
			}
			for i := range n {
				if !msgs[fmt.Sprintf("denied %d", i)] {
					t.Errorf("record %d not stored", i)
				}
			}
			if len(logs) != n {
				t.Errorf("%d entities stored, want %d", len(logs), n)
			}
		})
	}
}

// Without a spool a denied record cannot be kept: it is given up on,
// counted in FailedRecords, reported to the ErrorHandler and by Close.
func TestDeniedWithoutSpoolIsCountedLoss(t *testing.T) {
	t.Parallel()
	p, tbl := faultyTable(t)
	const n = 50
	p.SetFaults(azurite.Faults{StatusRate: 1, Status: http.StatusForbidden})
	s, errs := newSink(t, tbl, fastRetry)
	writeN(t, s, n, "denied")
	err := s.Close(ctxT(t, 30*time.Second))
	var de *DeliveryError
	if !errors.As(err, &de) || de.Failed != n || de.Spooled != 0 || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v (%+v), want %d records failed at once", err, de, n)
	}
	st := s.Stats()
	if st.FailedRecords != n || st.Written != 0 || st.Enqueued != st.Written+st.FailedRecords+uint64(st.BufferedRecords) {
		t.Errorf("stats %+v, want %d failed records", st, n)
	}
	reported := false
	for _, e := range errs.all() {
		var oe *OpError
		if errors.As(e, &oe) && oe.StatusCode == http.StatusForbidden && strings.Contains(e.Error(), "not stored") {
			reported = true
		}
	}
	if !reported {
		t.Errorf("the loss was not reported: %v", errs.all())
	}
}

// Denied while the Sink runs, then fixed (an RBAC assignment propagates, a
// firewall rule is added): with a spool the same Sink stores every record,
// and the day's catalog entity too, without a restart.
func TestSpoolDeniedThenFixedWhileRunning(t *testing.T) {
	t.Parallel()
	p, tbl := faultyTable(t)
	o := fastRetry
	o.SpoolDir = t.TempDir()
	p.SetFaults(azurite.Faults{StatusRate: 1, Status: http.StatusForbidden})
	s, _ := newSink(t, tbl, o)
	const n = 50
	writeN(t, s, n, "later")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	err := s.Flush(ctx)
	cancel()
	if de := (*DeliveryError)(nil); !errors.As(err, &de) || de.Pending != n || de.Failed != 0 {
		t.Fatalf("Flush while denied: %v, want %d pending", err, n)
	}
	p.Reset()
	if err := s.Flush(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Written != n || st.FailedRecords != 0 || st.CatalogWrites != 1 {
		t.Errorf("stats %+v", st)
	}
	logs, catalog := readAll(t, tbl)
	if len(logs) != n || len(catalog) != 1 {
		t.Errorf("%d records and %d catalog entities stored, want %d and 1", len(logs), len(catalog), n)
	}
}
