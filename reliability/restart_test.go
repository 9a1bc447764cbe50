package reliability

import (
	"testing"
	"time"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/sink"
)

// Item 3: Azurite (with disk persistence) is stopped and restarted twice in
// the middle of a stream of 10,000 records written at 500/s through the
// strict proxy, which answers 502 while Azurite is down. After Close every
// record is in the table, once, intact.
func TestAzuriteRestartMidStream(t *testing.T) {
	t.Parallel()
	const (
		n    = 10_000
		pace = 2 * time.Millisecond
		down = 3 * time.Second
	)
	srv := azurite.StartServer(t, azurite.ServerOptions{Dir: t.TempDir()})
	name := azurite.NewTableName()
	if _, err := srv.Table(t, name).CreateTable(ctxT(t, time.Minute), nil); err != nil {
		t.Fatal(err)
	}
	p := srv.NewProxy(t)
	s, errs := newSink(t, p.Table(t, name, noRetry), fastRetry(sink.Options{}))

	// The producer runs on its own goroutine; the test goroutine stops and
	// starts Azurite (Server's methods fail the test, so they stay here).
	reached := map[int]chan struct{}{2_000: make(chan struct{}), 6_000: make(chan struct{})}
	done := make(chan time.Duration)
	start := time.Now()
	go func() {
		done <- pacedProducer(s, n, pace, func(i int) {
			if c, ok := reached[i]; ok {
				close(c)
			}
		})
	}()
	var stops, starts []time.Duration
	for _, at := range []int{2_000, 6_000} {
		<-reached[at]
		t0 := time.Now()
		srv.Stop() // graceful: Azurite saves its database
		stops = append(stops, time.Since(t0))
		time.Sleep(down)
		t0 = time.Now()
		srv.Start()
		starts = append(starts, time.Since(t0))
	}
	longest := <-done
	if err := s.Close(ctxT(t, 2*time.Minute)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	elapsed := time.Since(start)
	st := s.Stats()
	present, count := storedSeqs(t, decodeAll(t, readRawFrom(t, srv.Table(t, name), nil)), n)
	if count != n || st.Written != n || st.Enqueued != n || st.FailedRecords != 0 || st.Replaced != 0 {
		missing := []int{}
		for i, ok := range present {
			if !ok && len(missing) < 10 {
				missing = append(missing, i)
			}
		}
		t.Fatalf("stored %d of %d (first missing: %v); stats %+v", count, n, missing, st)
	}
	if err := accounting(st); err != nil {
		t.Error(err)
	}
	t.Logf("item 3: %d records at 500/s, Azurite stopped twice for %v (graceful stops took %v, restarts %v); all stored after Close at %v; longest write %v; sink retries %d; error reports %d",
		n, down, stops, starts, elapsed.Round(time.Millisecond), longest.Round(time.Millisecond), st.Retries, len(errs.all()))
}
