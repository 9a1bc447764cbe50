package sink

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/tablelog/tablelog"
	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
	"github.com/tablelog/tablelog/internal/spool"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Tests of the durable spool (Options.SpoolDir) against Azurite.

// The crash test re-executes the test binary as a child that logs through a
// Sink with a spool and prints each index once its Write/Handle returned.
const (
	crashDirEnv   = "TABLELOG_SINK_CRASH_DIR"
	crashTableEnv = "TABLELOG_SINK_CRASH_TABLE"
	crashConnEnv  = "TABLELOG_SINK_CRASH_CONN"
)

// TestSpoolCrashChild is the child process of TestSpoolCrashReplay; it does
// nothing in a normal run.
func TestSpoolCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestSpoolCrashReplay")
	}
	client, err := tablelog.NewClientFromConnectionString(os.Getenv(crashConnEnv), os.Getenv(crashTableEnv), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: bad connection string")
		os.Exit(2)
	}
	s, err := New(client, Options{
		Service:       "crash",
		SpoolDir:      dir,
		FlushInterval: 200 * time.Millisecond,
		ErrorHandler:  func(err error) { fmt.Fprintln(os.Stderr, "child:", err) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	zl := zap.New(s.Core(zapcore.InfoLevel))
	sl := slog.New(s.Handler(nil))
	var mu sync.Mutex // one write(2) per line; the pipe keeps them whole
	for g := range 2 {
		go func() {
			for i := g; ; i += 2 {
				if g == 0 {
					zl.Info("crash record", zap.Int("idx", i), zap.String("pad", strings.Repeat("z", 200)))
				} else {
					sl.Info("crash record", "idx", i, "pad", strings.Repeat("s", 200))
				}
				mu.Lock()
				os.Stdout.WriteString(strconv.Itoa(i) + "\n")
				mu.Unlock()
				if i%10 < 2 {
					time.Sleep(5 * time.Millisecond) // about 2,000 records/s
				}
			}
		}()
	}
	select {}
}

// A child logging through a spooled Sink is killed with SIGKILL mid-stream;
// a new Sink on the same directory stores every record whose Write or
// Handle had returned, exactly once.
func TestSpoolCrashReplay(t *testing.T) {
	t.Parallel()
	env := azurite.Get(t)
	tbl := env.NewTable(t)
	dir := t.TempDir()
	const kill = 3000 // records reported before the kill

	cmd := exec.Command(os.Args[0], "-test.run=^TestSpoolCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		crashDirEnv+"="+dir,
		crashTableEnv+"="+azurite.TableName(tbl),
		crashConnEnv+"="+env.ConnectionString,
		// The child's TestMain then starts no Azurite of its own.
		azurite.EnvConnectionString+"="+env.ConnectionString,
	)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	direct := env.DirectTable(t, azurite.TableName(tbl))
	returned := map[int]bool{}
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		i, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("child printed %q", sc.Text())
		}
		returned[i] = true
		// Mid-stream: once some records are stored (and others are not).
		if !killed && len(returned) >= kill && len(returned)%100 == 0 && (anyStored(t, direct) || len(returned) >= 20*kill) {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true // read on: the pipe holds what was printed before the kill
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited early (%v): %s", err, stderr.String())
	}
	t.Logf("child killed after %d records returned; stderr: %q", len(returned), stderr.String())

	// What the child left in the spool (also checks it released the lock).
	sp, err := spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	left := sp.Stats()
	sp.Close()
	before, _ := readAll(t, tbl)
	if left.Pending == 0 || len(before) == 0 {
		t.Fatalf("the child left %d records unacknowledged and %d stored: not a mid-stream kill", left.Pending, len(before))
	}

	s, _ := newSink(t, tbl, Options{Service: "crash", SpoolDir: dir})
	if err := s.Close(ctxT(t, 2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	t.Logf("after the kill: %d records stored, %d pending in the spool (%d segments, %d bytes, %d corrupt regions); replay: %+v",
		len(before), left.Pending, left.Segments, left.Bytes, left.Corrupt, st)
	if st.Replayed != uint64(left.Pending) || st.Written != st.Replayed || st.FailedRecords != 0 || st.FailedBatches != 0 {
		t.Errorf("replay stats %+v, want %d replayed and written", st, left.Pending)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 { // LOCK
		t.Errorf("spool not emptied: %v", ents)
	}

	logs, _ := readAll(t, tbl)
	seen := map[int]int{}
	for _, e := range logs {
		i, err := strconv.Atoi(fmt.Sprint(e.Fields["idx"]))
		if err != nil {
			t.Fatalf("entity %s without idx: %v", e.RowKey, e.Fields)
		}
		seen[i]++
	}
	missing, dups := 0, 0
	for i := range returned {
		if seen[i] == 0 {
			if missing++; missing <= 5 {
				t.Errorf("record %d returned before the kill but is not stored", i)
			}
		}
	}
	for i, n := range seen {
		if n > 1 {
			if dups++; dups <= 5 {
				t.Errorf("record %d stored %d times", i, n)
			}
		}
	}
	t.Logf("%d records returned before the kill, %d stored (%d extra: written, not yet reported), %d missing, %d duplicated",
		len(returned), len(logs), len(logs)-len(returned)+missing, missing, dups)
}

// anyStored reports whether the table holds a log entity.
func anyStored(t *testing.T, tbl *aztables.Client) bool {
	t.Helper()
	top := int32(1)
	filter := "PartitionKey ne '" + schema.CatalogPartition + "'"
	page, err := tbl.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Top: &top}).NextPage(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Entities) > 0
}

// lastSegment returns the path of the newest segment file in dir.
func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var segs []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".seg") {
			segs = append(segs, e.Name())
		}
	}
	if len(segs) == 0 {
		t.Fatal("no segment file")
	}
	slices.Sort(segs)
	return filepath.Join(dir, segs[len(segs)-1])
}

// Close at its deadline during an outage leaves the records in the spool
// and says so; a torn final record is then skipped cleanly by the next
// Sink, which stores all the others exactly once.
func TestSpoolCloseDeadlineAndTornRecord(t *testing.T) {
	t.Parallel()
	p, tbl := faultyTable(t)
	dir := t.TempDir()
	const n = 300
	o := fastRetry
	o.SpoolDir = dir

	p.Outage(time.Hour)
	s1, _ := newSink(t, tbl, o)
	writeN(t, s1, n, "torn")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := s1.Close(ctx)
	cancel()
	var de *DeliveryError
	if !errors.As(err, &de) || de.Failed != n || de.Spooled != n || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close during the outage: %v (%+v)", err, de)
	}
	if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("%d records stay in the spool %s", n, dir)) {
		t.Errorf("Close error does not say the records stay in the spool: %s", msg)
	}
	t.Logf("Close: %v", err)

	// Tear the final record: cut its frame in the middle.
	seg := lastSegment(t, dir)
	fi, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(seg, fi.Size()-50); err != nil {
		t.Fatal(err)
	}

	p.Reset()
	s2, errs := newSink(t, tbl, o)
	if err := s2.Close(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	st := s2.Stats()
	if st.SpoolCorrupt != 1 || st.SpoolCorruptBytes == 0 || st.Replayed != n-1 || st.Written != n-1 || st.FailedRecords != 0 {
		t.Errorf("stats %+v, want 1 corrupt region and %d replayed and written", st, n-1)
	}
	if e := errs.all(); len(e) != 1 || !strings.Contains(e[0].Error(), "1 damaged regions") {
		t.Errorf("errors reported: %v, want the damaged region only", e)
	}
	logs, _ := readAll(t, tbl)
	msgs := map[string]bool{}
	for _, e := range logs {
		msgs[e.Msg] = true
	}
	if len(logs) != n-1 || len(msgs) != n-1 {
		t.Fatalf("%d entities (%d distinct), want %d", len(logs), len(msgs), n-1)
	}
	for i := range n - 1 {
		if !msgs[fmt.Sprintf("torn %d", i)] {
			t.Errorf("record %d missing", i)
		}
	}
	if msgs[fmt.Sprintf("torn %d", n-1)] {
		t.Error("the torn record was stored")
	}
}

// Records replayed from the spool that the table holds already (stored
// before a crash, not yet acknowledged) are stored once, with batches: a
// conflict is bisected, and "already exists" for a single replayed record
// counts as stored. The replay stays within BufferBytes.
func TestSpoolReplaySkipsStoredRecords(t *testing.T) {
	t.Parallel()
	env := azurite.Get(t)
	tbl := env.NewTable(t)
	dir := t.TempDir()
	const n = 1000
	entities := benchEntities(n)

	// A spool as a crashed run leaves it.
	sp, err := spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, time.Minute)
	for i, e := range entities {
		k := keyOf(e)
		pk, rk, _ := strings.Cut(k, "/")
		if _, err := sp.Append(spool.Record{PartitionKey: pk, RowKey: rk, Entity: e}); err != nil {
			t.Fatal(err)
		}
		// Stored before the crash: a prefix, and some records of the
		// transactions in flight at the crash.
		if i < 350 || (i < 450 && i%5 == 0) {
			if _, err := tbl.AddEntity(ctx, e, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}

	const budget = 64 << 10
	s, errs := newSink(t, tbl, Options{SpoolDir: dir, BufferBytes: budget, Service: "bench"})
	var maxBuf int
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				maxBuf = max(maxBuf, s.Stats().BufferedBytes)
			}
		}
	}()
	err = s.Close(ctxT(t, time.Minute))
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Replayed != n || st.Written != n || st.FailedRecords != 0 || st.FailedBatches != 0 || st.Replaced != 0 {
		t.Errorf("stats %+v", st)
	}
	if maxBuf > budget {
		t.Errorf("the replay held %d bytes in memory, budget %d", maxBuf, budget)
	}
	if e := errs.all(); len(e) != 0 {
		t.Errorf("errors reported: %v", e)
	}
	logs, _ := readAll(t, tbl)
	if len(logs) != n {
		t.Errorf("%d entities stored, want %d", len(logs), n)
	}
}

// A spool directory that cannot be opened gives a clear error from New and
// a Sink that works with the memory policy; so does one that fails later,
// on Append (the error goes to the ErrorHandler).
func TestSpoolUnavailableFallsBackToMemory(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	dirs := []string{file, filepath.Join(file, "spool")}
	if runtime.GOOS == "linux" {
		dirs = append(dirs, "/proc/tablelog-spool") // even root cannot create it
	}
	for _, dir := range dirs {
		f := newFakeTable()
		s, err := New(f, Options{Service: "svc", SpoolDir: dir, ErrorHandler: func(err error) { t.Errorf("ErrorHandler: %v", err) }})
		if s == nil || !errors.Is(err, ErrSpoolUnavailable) || !strings.Contains(err.Error(), dir) ||
			(strings.HasPrefix(dir, file) && !errors.Is(err, syscall.ENOTDIR)) {
			t.Fatalf("New with SpoolDir %s: %v, %v", dir, s, err)
		}
		t.Logf("New: %v", err)
		writeN(t, s, 10, "mem")
		if err := s.Close(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.Written != 10 || st.SpoolErrors != 1 || st.SpooledRecords != 0 || f.count() != 10 {
			t.Errorf("stats %+v, %d stored", st, f.count())
		}
	}

	// The directory turns into a file after New: Appends fail.
	dir := filepath.Join(t.TempDir(), "spool")
	f := newFakeTable()
	e := &errs{}
	s, err := New(f, Options{Service: "svc", SpoolDir: dir, ErrorHandler: e.handle})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	writeN(t, s, 10, "mem")
	if err := s.Close(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Written != 10 || st.SpoolErrors != 10 || st.SpooledRecords != 0 || f.count() != 10 {
		t.Errorf("stats %+v, %d stored", st, f.count())
	}
	if got := e.all(); len(got) == 0 || !strings.Contains(got[0].Error(), "in memory only") || !errors.Is(got[0], syscall.ENOTDIR) {
		t.Errorf("reported: %v", got)
	}
}

// With a tiny memory budget and the table unreachable, records wait on
// disk: no write blocks and none is dropped; after the outage all are
// stored.
func TestSpoolSpillDuringOutage(t *testing.T) {
	t.Parallel()
	p, tbl := faultyTable(t)
	const (
		n      = 3000
		outage = 2500 * time.Millisecond
	)
	o := fastRetry
	o.SpoolDir = t.TempDir()
	o.BufferBytes = 512 << 10 // half for records in memory, half for the entries of 3,000 on disk
	s, _ := newSink(t, tbl, o)
	p.Outage(outage)
	start := time.Now()
	writeN(t, s, n, "spill")
	took := time.Since(start)
	st := s.Stats()
	t.Logf("%d records written in %v during the outage: %+v", n, took, st)
	if took > outage/2 {
		t.Errorf("writing took %v: writers blocked", took)
	}
	if st.Spilled == 0 || st.Dropped != 0 || st.SpooledRecords != n || st.BufferedBytes > o.BufferBytes {
		t.Errorf("stats %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err := s.Flush(ctx)
	cancel()
	if de := (*DeliveryError)(nil); !errors.As(err, &de) || de.Pending != n || de.Failed != 0 {
		t.Errorf("Flush during the outage: %v", err)
	}
	if err := s.Close(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	st = s.Stats()
	if st.Written != n || st.FailedRecords != 0 || st.SpoolBytes != 0 {
		t.Errorf("stats after Close %+v", st)
	}
	logs, _ := readAll(t, tbl)
	msgs := map[string]bool{}
	for _, e := range logs {
		msgs[e.Msg] = true
	}
	if len(logs) != n || len(msgs) != n {
		t.Errorf("%d entities (%d distinct), want %d", len(logs), len(msgs), n)
	}
}

// Beyond MaxSpoolBytes the Overflow policy applies, counted; the accounting
// holds throughout, and what was accepted is stored after the outage.
func TestSpoolFullAppliesOverflow(t *testing.T) {
	t.Parallel()
	f := newFakeTable()
	var down sync.Mutex
	outage := true
	f.fail = func(c fakeCall) error {
		down.Lock()
		defer down.Unlock()
		if outage && c.Op != "CreateTable" {
			return io.ErrUnexpectedEOF
		}
		return nil
	}
	o := fastRetry
	o.SpoolDir = t.TempDir()
	o.BufferBytes = 32 << 10 // room for the entries of more records than the spool holds
	o.MaxSpoolBytes = 64 << 10
	o.Overflow = DropNewest
	s, e := newSink(t, f, o)
	const n = 1000
	writeN(t, s, n, "full")
	st := s.Stats()
	if st.SpoolFull == 0 || st.Dropped == 0 || st.Spilled == 0 || st.SpoolBytes > o.MaxSpoolBytes ||
		st.Enqueued+st.Dropped != n || st.Enqueued != st.Written+st.FailedRecords+uint64(st.BufferedRecords) {
		t.Errorf("stats %+v", st)
	}
	down.Lock()
	outage = false
	down.Unlock()
	if err := s.Flush(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Once the records are stored, the spool takes new ones again.
	writeN(t, s, 10, "after")
	if st2 := s.Stats(); st2.SpooledRecords != st.SpooledRecords+10 || st2.SpoolFull != st.SpoolFull {
		t.Errorf("after the outage: stats %+v", st2)
	}
	if err := s.Close(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	st2 := s.Stats()
	if st2.Written != st.Enqueued+10 || f.count() != int(st.Enqueued)+10 || st2.SpoolBytes != 0 {
		t.Errorf("stats %+v, %d stored, want %d", st2, f.count(), st.Enqueued+10)
	}
	full := false
	for _, err := range e.all() {
		full = full || strings.Contains(err.Error(), "spool full")
	}
	if !full {
		t.Error("spool full not reported")
	}
}

// SpoolSyncEveryRecord works like the default, and unknown policies are
// rejected.
func TestSpoolSyncEveryRecord(t *testing.T) {
	t.Parallel()
	f := newFakeTable()
	dir := t.TempDir()
	s, _ := newSink(t, f, Options{SpoolDir: dir, SpoolSync: SpoolSyncEveryRecord})
	writeN(t, s, 50, "sync")
	if err := s.Close(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Written != 50 || st.SpooledRecords != 50 || f.count() != 50 {
		t.Errorf("stats %+v", st)
	}
	if _, err := New(f, Options{Service: "svc", SpoolDir: dir, SpoolSync: 9}); err == nil {
		t.Error("unknown SpoolSync accepted")
	}
	if _, err := New(f, Options{Service: "svc", SpoolDir: dir, MaxSpoolBytes: -1}); err == nil {
		t.Error("negative MaxSpoolBytes accepted")
	}
}

// A replayed transaction that failed transiently and then meets "already
// exists" is not taken as stored: the conflict may be a record the crashed
// run stored, while the others never were.
func TestSpoolReplayConflictAfterTransientFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const n = 10
	entities := benchEntities(n)
	sp, err := spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeTable()
	for i, e := range entities {
		pk, rk, _ := strings.Cut(keyOf(e), "/")
		if _, err := sp.Append(spool.Record{PartitionKey: pk, RowKey: rk, Entity: e}); err != nil {
			t.Fatal(err)
		}
		if i < n/2 {
			f.rows[keyOf(e)] = e // stored by the crashed run
		}
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	failed := false
	f.fail = func(c fakeCall) error {
		mu.Lock()
		defer mu.Unlock()
		if c.Op == "SubmitTransaction" && !failed {
			failed = true
			return io.ErrUnexpectedEOF // not committed
		}
		return nil
	}
	o := fastRetry
	o.Service, o.SpoolDir = "bench", dir
	s, _ := newSink(t, f, o)
	if err := s.Close(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Replayed != n || st.Written != n || st.Retries != 1 || f.count() != n {
		t.Errorf("stats %+v, %d stored, want %d", st, f.count(), n)
	}
}

// A damaged length field in the middle of a spool segment costs that one
// record: the next Sink sends every record after it, counts the skipped
// bytes in Stats.SpoolCorruptBytes and reports them (before, the rest of
// the segment was lost).
func TestSpoolCorruptLengthLosesOneRecord(t *testing.T) {
	t.Parallel()
	p, tbl := faultyTable(t)
	dir := t.TempDir()
	const n = 300
	o := fastRetry
	o.SpoolDir = dir

	p.Outage(time.Hour)
	s1, _ := newSink(t, tbl, o)
	writeN(t, s1, n, "resync")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := s1.Close(ctx)
	cancel()
	if de := (*DeliveryError)(nil); !errors.As(err, &de) || de.Spooled != n {
		t.Fatalf("Close during the outage: %v", err)
	}

	// Walk the frames (see internal/spool's format) and damage the length
	// field of the middle one so that it points into the next frame.
	seg := lastSegment(t, dir)
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int
	for off := 12; off+8 <= len(b); {
		offs = append(offs, off)
		off += 8 + int(uint32(b[off])|uint32(b[off+1])<<8|uint32(b[off+2])<<16|uint32(b[off+3])<<24)
	}
	if len(offs) != n {
		t.Fatalf("%d frames in %s, want %d", len(offs), seg, n)
	}
	mid := n / 2
	b[offs[mid]] += 7
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	lost := offs[mid+1] - offs[mid]

	p.Reset()
	s2, errs := newSink(t, tbl, o)
	if err := s2.Close(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	st := s2.Stats()
	if st.SpoolCorrupt != 1 || st.SpoolCorruptBytes != uint64(lost) || st.Replayed != n-1 || st.Written != n-1 {
		t.Errorf("stats %+v, want 1 region of %d bytes skipped and %d records replayed and written", st, lost, n-1)
	}
	reported := errs.all()
	if len(reported) != 1 || !strings.Contains(reported[0].Error(), fmt.Sprintf("(%d bytes", lost)) {
		t.Errorf("reported %v, want the %d skipped bytes", reported, lost)
	}
	logs, _ := readAll(t, tbl)
	msgs := map[string]bool{}
	for _, e := range logs {
		msgs[e.Msg] = true
	}
	missing := 0
	for i := range n {
		if !msgs[fmt.Sprintf("resync %d", i)] {
			missing++
		}
	}
	if len(logs) != n-1 || missing != 1 {
		t.Errorf("%d entities stored, %d records missing; want %d and 1", len(logs), missing, n-1)
	}
}

// Records waiting on disk keep an entry each in memory, counted against
// BufferBytes: in an outage with small records, BufferedBytes stays within
// BufferBytes, and once the entries fill it Overflow applies (DropNewest:
// counted, and the dropped records leave the spool too).
func TestSpillEntriesCountAgainstBuffer(t *testing.T) {
	t.Parallel()
	f := newFakeTable()
	var down sync.Mutex
	outage := true
	f.fail = func(c fakeCall) error {
		down.Lock()
		defer down.Unlock()
		if outage && c.Op != "CreateTable" {
			return io.ErrUnexpectedEOF
		}
		return nil
	}
	o := fastRetry
	o.SpoolDir = t.TempDir()
	o.BufferBytes = 64 << 10
	o.Overflow = DropNewest
	s, _ := newSink(t, f, o)
	const n = 20000
	l := zap.New(s.Core(zapcore.InfoLevel))
	maxBuf := 0
	for i := range n {
		l.Info("t", zap.Int("i", i))
		if i%100 == 0 {
			maxBuf = max(maxBuf, s.Stats().BufferedBytes)
		}
	}
	st := s.Stats()
	maxBuf = max(maxBuf, st.BufferedBytes)
	t.Logf("%d records in an outage, BufferBytes %d: %+v", n, o.BufferBytes, st)
	if maxBuf > o.BufferBytes {
		t.Errorf("BufferedBytes reached %d, BufferBytes %d", maxBuf, o.BufferBytes)
	}
	if st.Dropped == 0 || st.SpoolFull != 0 || st.Spilled == 0 || st.Spilled > uint64(o.BufferBytes/spilledCost) ||
		st.Enqueued+st.Dropped != n || st.Enqueued != st.Written+st.FailedRecords+uint64(st.BufferedRecords) {
		t.Errorf("stats %+v: want drops once the entries of the spilled records fill BufferBytes", st)
	}
	down.Lock()
	outage = false
	down.Unlock()
	if err := s.Close(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	st2 := s.Stats()
	if st2.Written != st.Enqueued || f.count() != int(st.Enqueued) || st2.SpoolBytes != 0 || st2.BufferedBytes != 0 {
		t.Errorf("after the outage: stats %+v, %d stored, want %d", st2, f.count(), st.Enqueued)
	}
	// Nothing is left for a next run: the dropped records left the spool.
	sp, err := spool.Open(spool.Options{Dir: o.SpoolDir})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if p := sp.Stats().Pending; p != 0 {
		t.Errorf("%d records left in the spool", p)
	}
}

// The spill queue is a FIFO over blocks that it gives back as it drains.
func TestSpillQueue(t *testing.T) {
	var q spillQueue
	next, popped := 0, 0
	for round := range 3 {
		for range 1000 * (round + 1) {
			next++
			q.push(spilled{seq: uint64(next)})
		}
		for q.len() > 10*round {
			x := q.pop()
			popped++
			if x.seq != uint64(popped) {
				t.Fatalf("popped %d, want %d", x.seq, popped)
			}
		}
		all := q.all()
		if len(all) != q.len() || (len(all) > 0 && (all[0].seq != uint64(popped+1) || q.peek().seq != all[0].seq)) {
			t.Fatalf("round %d: all() %d entries, len %d", round, len(all), q.len())
		}
		if blocks := len(q.blocks); blocks > q.len()/spillBlockLen+2 {
			t.Fatalf("round %d: %d blocks held for %d entries", round, blocks, q.len())
		}
	}
	if spilledCost > 40 {
		t.Errorf("spilledCost %d: update the documentation (Options.SpoolDir, Stats.BufferedBytes: 40 bytes)", spilledCost)
	}
}
