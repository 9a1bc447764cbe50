package spool

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testRec is record i: deterministic content whose size varies with i, so
// that any damage is visible to checkRec.
func testRec(i int) Record {
	return testRecSize(i, 100+(i*37)%900)
}

func testRecSize(i, size int) Record {
	pad := strings.Repeat(string(rune('a'+i%26)), size)
	return Record{
		PartitionKey: "svc_20261125",
		RowKey:       fmt.Sprintf("%026d", i),
		Entity:       fmt.Appendf(nil, `{"PartitionKey":"svc_20261125","RowKey":"%026d","i":%d,"pad":"%s"}`, i, i, pad),
	}
}

// recIndex returns the index of a record made by testRec or testRecSize,
// failing the test if the record is not exactly such a record.
func recIndex(t testing.TB, r Record) int {
	t.Helper()
	i, err := strconv.Atoi(r.RowKey)
	if err != nil || r.PartitionKey != "svc_20261125" {
		t.Fatalf("foreign record %q %q", r.PartitionKey, r.RowKey)
	}
	var pad string
	if k := bytes.Index(r.Entity, []byte(`"pad":"`)); k >= 0 {
		pad = strings.TrimSuffix(string(r.Entity[k+7:]), `"}`)
	}
	want := testRecSize(i, len(pad))
	if want.RowKey != r.RowKey || !bytes.Equal(want.Entity, r.Entity) {
		t.Fatalf("record %d damaged: %q", i, r.Entity)
	}
	return i
}

func mustOpen(t testing.TB, opts Options) *Spool {
	t.Helper()
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type pendingRec struct {
	t Ticket
	i int
}

func pendingOf(t testing.TB, s *Spool) []pendingRec {
	t.Helper()
	var out []pendingRec
	if err := s.Pending(func(tk Ticket, r Record) bool {
		out = append(out, pendingRec{tk, recIndex(t, r)})
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func indices(p []pendingRec) []int {
	out := make([]int, len(p))
	for k, r := range p {
		out[k] = r.i
	}
	return out
}

func seq(lo, hi int) []int {
	var out []int
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segExt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFormatConstants(t *testing.T) {
	if headerLen != len(magic)+4 || len(segHeader) != headerLen {
		t.Fatal("header length")
	}
	if id, ok := parseSegName(segName(42)); !ok || id != 42 {
		t.Fatal("segment name round trip")
	}
	for _, bad := range []string{"LOCK", "42.seg", "00000000000000000000.seg", "0000000000000000004x.seg", "00000000000000000042.seg.tmp"} {
		if _, ok := parseSegName(bad); ok {
			t.Errorf("parseSegName(%q) accepted", bad)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, Options{Dir: dir})
	if got := pendingOf(t, s); len(got) != 0 {
		t.Fatalf("fresh spool has %d pending", len(got))
	}
	var tickets []Ticket
	for i := range 100 {
		r := testRec(i)
		tk, err := s.Append(r)
		if err != nil {
			t.Fatal(err)
		}
		clear(r.Entity) // Append copied it
		tickets = append(tickets, tk)
	}
	for i, tk := range tickets {
		r, err := s.Read(tk)
		if err != nil {
			t.Fatal(err)
		}
		if recIndex(t, r) != i {
			t.Fatalf("Read(ticket %d) = record %d", i, recIndex(t, r))
		}
	}
	st := s.Stats()
	if st.Pending != 100 || st.Appended != 100 || st.Segments != 1 || st.Corrupt != 0 {
		t.Fatalf("stats %+v", st)
	}
	if fi, err := os.Stat(segFiles(t, dir)[0]); err != nil || fi.Size() != st.Bytes {
		t.Fatalf("Bytes %d, file %v %v", st.Bytes, fi.Size(), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Append(testRec(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}

	s = mustOpen(t, Options{Dir: dir})
	got := pendingOf(t, s)
	if !slices.Equal(indices(got), seq(0, 100)) {
		t.Fatalf("replayed %v", indices(got))
	}
	for _, p := range got {
		if err := s.Ack(p.t); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Pending != 0 || st.Segments != 0 || st.Bytes != 0 || st.Acked != 100 {
		t.Fatalf("after acks: %+v", st)
	}
	if f := segFiles(t, dir); len(f) != 0 {
		t.Fatalf("segments left: %v", f)
	}
	s.Close()
	s = mustOpen(t, Options{Dir: dir})
	if got := pendingOf(t, s); len(got) != 0 {
		t.Fatalf("acked records replayed: %v", indices(got))
	}
}

// TestRollAndDelete acks the records of many segments in a random order and
// checks after each Ack that a segment file exists exactly while it is
// active or holds an unacknowledged record.
func TestRollAndDelete(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, Options{Dir: dir, SegmentBytes: 4 << 10})
	var tickets []Ticket
	for i := range 300 {
		tk, err := s.Append(testRec(i))
		if err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, tk)
	}
	bySeg := map[uint64]int{}
	for _, tk := range tickets {
		bySeg[tk.seg]++
	}
	if len(bySeg) < 20 {
		t.Fatalf("only %d segments", len(bySeg))
	}
	for _, f := range segFiles(t, dir) {
		fi, _ := os.Stat(f)
		if fi.Size() > 4<<10 {
			t.Errorf("%s has %d bytes > SegmentBytes", f, fi.Size())
		}
	}
	activeID := tickets[len(tickets)-1].seg
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(tickets), func(a, b int) { tickets[a], tickets[b] = tickets[b], tickets[a] })
	for k, tk := range tickets {
		if err := s.Ack(tk); err != nil {
			t.Fatal(err)
		}
		if err := s.Ack(tk); err != nil { // twice: no effect
			t.Fatal(err)
		}
		bySeg[tk.seg]--
		if k%17 != 0 && k != len(tickets)-1 {
			continue
		}
		for id, live := range bySeg {
			_, err := os.Stat(segPath(dir, id))
			exists := err == nil
			if want := live > 0 || id == activeID; exists != want {
				t.Fatalf("after %d acks: segment %d with %d live: exists=%v", k+1, id, live, exists)
			}
		}
	}
	st := s.Stats()
	if st.Pending != 0 || st.Segments != 1 || st.Acked != 300 {
		t.Fatalf("stats %+v", st)
	}
	// The active segment, fully acknowledged, goes at the next roll...
	for i := 300; ; i++ {
		tk, err := s.Append(testRec(i))
		if err != nil {
			t.Fatal(err)
		}
		s.Ack(tk)
		if tk.seg != activeID {
			break
		}
	}
	if _, err := os.Stat(segPath(dir, activeID)); !os.IsNotExist(err) {
		t.Fatalf("sealed acknowledged segment still there: %v", err)
	}
	// ...or at Close.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if f := segFiles(t, dir); len(f) != 0 {
		t.Fatalf("segments left after Close: %v", f)
	}
}

// TestConcurrent appends and acks from many goroutines, in both sync
// policies, with replay running at the same time (run it with -race).
func TestConcurrent(t *testing.T) {
	for _, pol := range []SyncPolicy{SyncInterval, SyncEveryRecord} {
		t.Run(pol.String(), func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, Options{Dir: dir, SegmentBytes: 8 << 10})
			for i := range 200 {
				if _, err := s.Append(testRec(i)); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			s = mustOpen(t, Options{Dir: dir, SegmentBytes: 8 << 10, Sync: pol, SyncInterval: time.Millisecond})
			const workers, per = 8, 150
			acks := make(chan Ticket, 64)
			var wg, ackers sync.WaitGroup
			for range 3 {
				ackers.Go(func() {
					for tk := range acks {
						if err := s.Ack(tk); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Go(func() { // replay while appending
				var n int
				if err := s.Pending(func(tk Ticket, r Record) bool {
					if recIndex(t, r) >= 200 {
						t.Errorf("replayed a record of this run")
					}
					n++
					acks <- tk
					return true
				}); err != nil {
					t.Error(err)
				}
				if n != 200 {
					t.Errorf("replayed %d of 200", n)
				}
			})
			for w := range workers {
				wg.Go(func() {
					for k := range per {
						i := 1000 + w*per + k
						tk, err := s.Append(testRec(i))
						if err != nil {
							t.Error(err)
							return
						}
						if k%5 == 0 {
							r, err := s.Read(tk)
							if err != nil || recIndex(t, r) != i {
								t.Errorf("Read: %v", err)
							}
						}
						acks <- tk
						s.Stats()
					}
				})
			}
			wg.Wait()
			close(acks)
			ackers.Wait()
			st := s.Stats()
			if st.Pending != 0 || st.Appended != workers*per || st.Acked != 200+workers*per || st.Segments > 1 {
				t.Fatalf("stats %+v", st)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if f := segFiles(t, dir); len(f) != 0 {
				t.Fatalf("segments left: %v", f)
			}
		})
	}
}

// TestReplay checks what a reopen replays after partial acks, and that
// Pending composes with Ack, Append and being called again.
func TestReplay(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentBytes: 4 << 10}
	s := mustOpen(t, opts)
	segOf := map[int]uint64{}
	live := map[uint64]bool{} // segments with an unacked record
	var last uint64
	for i := range 200 {
		tk, err := s.Append(testRec(i))
		if err != nil {
			t.Fatal(err)
		}
		segOf[i], last = tk.seg, tk.seg
		if i < 120 || i%3 == 0 { // first 120 acked, then every third
			s.Ack(tk)
		} else {
			live[tk.seg] = true
		}
	}
	live[last] = true // the active segment survives Close with its unacked records
	s.Close()

	// Every record of a surviving segment is replayed, acked or not.
	var want []int
	for i := range 200 {
		if live[segOf[i]] {
			want = append(want, i)
		}
	}
	s = mustOpen(t, opts)
	if st := s.Stats(); st.Pending != int64(len(want)) || st.Corrupt != 0 {
		t.Fatalf("stats %+v, want %d pending", st, len(want))
	}
	got := pendingOf(t, s)
	if !slices.Equal(indices(got), want) {
		t.Fatalf("replayed %v\nwant %v", indices(got), want)
	}
	for i := range 80 { // no record of the deleted segments comes back
		if slices.Contains(want, i) {
			t.Fatalf("record %d of an acknowledged segment replayed", i)
		}
	}

	// Ack half during a Pending that stops early, append meanwhile; the
	// next Pending yields what is still unacknowledged, and only that.
	n := 0
	s.Pending(func(tk Ticket, r Record) bool {
		if recIndex(t, r)%2 == 0 {
			s.Ack(tk)
		}
		if _, err := s.Append(testRec(5000 + n)); err != nil {
			t.Fatal(err)
		}
		n++
		return n < len(want)/2
	})
	var want2 []int
	for k, i := range want {
		if k >= len(want)/2 || i%2 != 0 {
			want2 = append(want2, i)
		}
	}
	got = pendingOf(t, s)
	if !slices.Equal(indices(got), want2) {
		t.Fatalf("second Pending %v\nwant %v", indices(got), want2)
	}
	for _, p := range got {
		r, err := s.Read(p.t)
		if err != nil || recIndex(t, r) != p.i {
			t.Fatalf("Read replayed: %v", err)
		}
		s.Ack(p.t)
		if _, err := s.Read(p.t); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Read after Ack: %v", err)
		}
	}
	if got := pendingOf(t, s); len(got) != 0 {
		t.Fatalf("after acking all: %v", indices(got))
	}
	s.Close()
	s = mustOpen(t, opts)
	if got := indices(pendingOf(t, s)); !slices.Equal(got, seq(5000, 5000+n)) {
		t.Fatalf("third run replays %v, want the %d appended during replay", got, n)
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, Options{Dir: dir})
	_, err := Open(Options{Dir: dir})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("lock error should name the directory and holder: %v", err)
	}
	t.Log(err)
	s.Close()
	s2, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func TestFull(t *testing.T) {
	dir := t.TempDir()
	const max = 16 << 10
	s := mustOpen(t, Options{Dir: dir, MaxBytes: max, SegmentBytes: 4 << 10})
	var tickets []Ticket
	var err error
	for i := 0; ; i++ {
		var tk Ticket
		tk, err = s.Append(testRecSize(i, 500))
		if err != nil {
			break
		}
		tickets = append(tickets, tk)
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("want ErrFull, got %v", err)
	}
	t.Log(err)
	st := s.Stats()
	if st.Bytes > max || st.Full != 1 || st.Pending != int64(len(tickets)) {
		t.Fatalf("stats %+v", st)
	}
	if total := dirBytes(t, dir); total != st.Bytes || total > max {
		t.Fatalf("%d bytes on disk, Stats says %d", total, st.Bytes)
	}
	// Acknowledging the oldest segment frees room.
	first := tickets[0].seg
	for _, tk := range tickets {
		if tk.seg == first {
			s.Ack(tk)
		}
	}
	if _, err := s.Append(testRecSize(9999, 500)); err != nil {
		t.Fatalf("Append after freeing a segment: %v", err)
	}
	// A record larger than the bound never fits.
	if _, err := s.Append(testRecSize(1, max)); !errors.Is(err, ErrFull) {
		t.Fatalf("oversized record: %v", err)
	}
	if _, err := s.Append(Record{Entity: make([]byte, MaxRecordBytes)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("record over MaxRecordBytes: %v", err)
	}
}

// TestFullActiveSegmentAcked: with MaxBytes below SegmentBytes, the active
// segment alone fills the spool; once its records are acknowledged it is
// deleted to make room, though it never reached SegmentBytes.
func TestFullActiveSegmentAcked(t *testing.T) {
	dir := t.TempDir()
	const max = 16 << 10
	s := mustOpen(t, Options{Dir: dir, MaxBytes: max, SegmentBytes: 1 << 20})
	var tickets []Ticket
	var err error
	for i := 0; ; i++ {
		var tk Ticket
		tk, err = s.Append(testRecSize(i, 500))
		if err != nil {
			break
		}
		tickets = append(tickets, tk)
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("want ErrFull, got %v", err)
	}
	for _, tk := range tickets[:len(tickets)-1] {
		s.Ack(tk)
	}
	if _, err := s.Append(testRecSize(9999, 500)); !errors.Is(err, ErrFull) {
		t.Fatalf("Append with a record of the active segment pending: %v", err)
	}
	s.Ack(tickets[len(tickets)-1])
	if _, err := s.Append(testRecSize(9999, 500)); err != nil {
		t.Fatalf("Append once the active segment is acknowledged: %v", err)
	}
	if st := s.Stats(); st.Segments != 1 || st.Pending != 1 || st.Bytes != dirBytes(t, dir) {
		t.Fatalf("stats %+v, %d bytes on disk", st, dirBytes(t, dir))
	}
}

func dirBytes(t testing.TB, dir string) int64 {
	var n int64
	for _, f := range segFiles(t, dir) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// TestUnwritableDir: tests run as root, where a 0500 directory is still
// writable, so these use paths the kernel refuses even to root.
func TestUnwritableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, dir string
		errno     syscall.Errno
	}{
		{"file where a directory is expected", file, syscall.ENOTDIR},
		{"under a regular file", filepath.Join(file, "spool"), syscall.ENOTDIR},
		{"sysfs directory", "/sys/kernel", syscall.EACCES},
		{"under /proc", "/proc/tablelog-spool", syscall.ENOENT},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Dir(c.dir)); err != nil {
				t.Skipf("no %s here", filepath.Dir(c.dir))
			}
			s, err := Open(Options{Dir: c.dir})
			if err == nil {
				s.Close()
				os.Remove(filepath.Join(c.dir, lockName))
				t.Skipf("%s is writable here", c.dir)
			}
			if !errors.Is(err, c.errno) || !strings.Contains(err.Error(), c.dir) {
				t.Fatalf("want %v naming %s, got %v", c.errno, c.dir, err)
			}
			t.Log(err)
		})
	}
}

// faultFile writes at most limit bytes in total to the file, then fails
// with ENOSPC, like a full disk; failTruncate also makes Truncate fail.
type faultFile struct {
	*os.File
	mu           sync.Mutex
	limit        int64
	written      int64
	failTruncate bool
}

func (f *faultFile) room(n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := min(int64(n), max(0, f.limit-f.written))
	f.written += k
	return int(k)
}

func (f *faultFile) Write(p []byte) (int, error) {
	k := f.room(len(p))
	n, err := f.File.Write(p[:k])
	if err == nil && k < len(p) {
		err = &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return n, err
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	k := f.room(len(p))
	n, err := f.File.WriteAt(p[:k], off)
	if err == nil && k < len(p) {
		err = &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return n, err
}

func (f *faultFile) Truncate(size int64) error {
	if f.failTruncate {
		return &os.PathError{Op: "truncate", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Truncate(size)
}

func withFaults(t *testing.T, limit int64, failTruncate bool) {
	orig := createFile
	t.Cleanup(func() { createFile = orig })
	createFile = func(path string) (segFile, error) {
		f, err := orig(path)
		if err != nil {
			return nil, err
		}
		return &faultFile{File: f.(*os.File), limit: limit, failTruncate: failTruncate}, nil
	}
}

// TestDiskFull: ENOSPC creating a segment or in the middle of a frame is
// reported as such, nothing is spooled, and the partial frame does not
// corrupt what follows.
func TestDiskFull(t *testing.T) {
	t.Run("create", func(t *testing.T) {
		withFaults(t, 5, false)
		dir := t.TempDir()
		s := mustOpen(t, Options{Dir: dir})
		_, err := s.Append(testRec(1))
		if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("want ENOSPC naming the dir, got %v", err)
		}
		t.Log(err)
		if st := s.Stats(); st.Failed != 1 || st.Pending != 0 || st.Bytes != 0 || st.Segments != 0 {
			t.Fatalf("stats %+v", st)
		}
		if f := segFiles(t, dir); len(f) != 0 {
			t.Fatalf("half-created segment left: %v", f)
		}
	})
	for _, failTruncate := range []bool{false, true} {
		t.Run(fmt.Sprintf("frame/failTruncate=%v", failTruncate), func(t *testing.T) {
			dir := t.TempDir()
			r := testRecSize(0, 200)
			withFaults(t, int64(headerLen+3*len(appendFrame(nil, &r))+100), failTruncate)
			s := mustOpen(t, Options{Dir: dir})
			var ok []int
			var err error
			for i := range 10 {
				if _, err = s.Append(testRecSize(i, 200)); err != nil {
					break
				}
				ok = append(ok, i)
			}
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("want ENOSPC, got %v", err)
			}
			createFile = func(path string) (segFile, error) { // the disk has room again
				f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return nil, err
				}
				return f, nil
			}
			for i := 100; i < 105; i++ {
				if _, err := s.Append(testRecSize(i, 200)); err != nil {
					if failTruncate {
						t.Fatal(err)
					}
					break // same segment, still "full"
				}
				ok = append(ok, i)
			}
			if st := s.Stats(); st.Pending != int64(len(ok)) || st.Failed < 1 {
				t.Fatalf("stats %+v", st)
			}
			s.Close()
			s = mustOpen(t, Options{Dir: dir})
			if got := indices(pendingOf(t, s)); !slices.Equal(got, ok) {
				t.Fatalf("replayed %v, want %v", got, ok)
			}
			wantCorrupt := int64(0)
			if failTruncate {
				wantCorrupt = 1 // the partial frame stayed in the sealed segment
			}
			if st := s.Stats(); st.Corrupt != wantCorrupt {
				t.Fatalf("corrupt %d, want %d", st.Corrupt, wantCorrupt)
			}
		})
	}
}

// TestCorruption damages a segment in the ways a crash or a bad disk does
// and checks that exactly the damaged records are skipped and counted.
func TestCorruption(t *testing.T) {
	const n = 20
	// Build one segment of n records and note frame offsets.
	build := func(t *testing.T) (string, []int64, []byte) {
		dir := t.TempDir()
		s := mustOpen(t, Options{Dir: dir})
		var offs []int64
		for i := range n {
			tk, err := s.Append(testRec(i))
			if err != nil {
				t.Fatal(err)
			}
			offs = append(offs, tk.off)
		}
		s.Close()
		f := segFiles(t, dir)[0]
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		return dir, append(offs, int64(len(b))), b
	}
	cases := []struct {
		name    string
		damage  func(b []byte, offs []int64) []byte
		want    []int
		corrupt int64
	}{
		{"torn final record", func(b []byte, offs []int64) []byte { return b[:offs[n-1]+20] }, seq(0, n-1), 1},
		{"torn final header", func(b []byte, offs []int64) []byte { return b[:offs[n-1]+5] }, seq(0, n-1), 1},
		{"last byte missing", func(b []byte, offs []int64) []byte { return b[:len(b)-1] }, seq(0, n-1), 1},
		{"flipped payload byte", func(b []byte, offs []int64) []byte { b[offs[7]+40] ^= 0x10; return b }, slices.Delete(seq(0, n), 7, 8), 1},
		{"flipped crc byte", func(b []byte, offs []int64) []byte { b[offs[3]+5] ^= 1; return b }, slices.Delete(seq(0, n), 3, 4), 1},
		{"flipped byte in the last record", func(b []byte, offs []int64) []byte { b[len(b)-3] ^= 0x80; return b }, seq(0, n-1), 1},
		{"flipped length byte", func(b []byte, offs []int64) []byte { b[offs[12]] ^= 0x04; return b }, slices.Delete(seq(0, n), 12, 13), 1},
		{"huge length", func(b []byte, offs []int64) []byte { b[offs[12]+3] = 0xff; return b }, slices.Delete(seq(0, n), 12, 13), 1},
		{"length past the end", func(b []byte, offs []int64) []byte { b[offs[12]+2] = 0x01; return b }, slices.Delete(seq(0, n), 12, 13), 1},
		{"zero length", func(b []byte, offs []int64) []byte { clear(b[offs[12] : offs[12]+4]); return b }, slices.Delete(seq(0, n), 12, 13), 1},
		{"garbage between frames", func(b []byte, offs []int64) []byte {
			return slices.Insert(b, int(offs[12]), []byte("\x00\x01\x00\x00garbage\x00 \x00\x00")...)
		}, seq(0, n), 1},
		{"zero tail (power loss)", func(b []byte, offs []int64) []byte { return append(b, make([]byte, 4096)...) }, seq(0, n), 1},
		{"garbage tail", func(b []byte, offs []int64) []byte { return append(b, "garbage after the last frame"...) }, seq(0, n), 1},
		{"zeroed middle", func(b []byte, offs []int64) []byte { clear(b[offs[5]:offs[9]]); return b }, append(seq(0, 5), seq(9, n)...), 1},
		{"garbled middle", func(b []byte, offs []int64) []byte {
			for i := offs[5] + 3; i < offs[9]-2; i++ {
				b[i] = byte(i * 7)
			}
			return b
		}, append(seq(0, 5), seq(9, n)...), 1},
		{"bad magic", func(b []byte, offs []int64) []byte { b[0] = 'X'; return b }, seq(0, n), 1},
		{"bad magic and torn tail", func(b []byte, offs []int64) []byte { b[0] = 'X'; return b[:offs[n-1]+9] }, seq(0, n-1), 2},
		{"torn segment header", func(b []byte, offs []int64) []byte { return b[:7] }, nil, 1},
		{"empty segment", func(b []byte, offs []int64) []byte { return b[:0] }, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, offs, b := build(t)
			seg := segFiles(t, dir)[0]
			if err := os.WriteFile(seg, c.damage(b, offs), 0o600); err != nil {
				t.Fatal(err)
			}
			s := mustOpen(t, Options{Dir: dir})
			st := s.Stats()
			if st.Corrupt != c.corrupt || (c.corrupt > 0) != (st.CorruptBytes > 0) {
				t.Fatalf("corrupt %d (%d bytes), want %d", st.Corrupt, st.CorruptBytes, c.corrupt)
			}
			if got := indices(pendingOf(t, s)); !slices.Equal(got, c.want) {
				t.Fatalf("replayed %v\nwant %v", got, c.want)
			}
			if st.Pending != int64(len(c.want)) {
				t.Fatalf("Pending %d, want %d", st.Pending, len(c.want))
			}
			if len(c.want) == 0 {
				if f := segFiles(t, dir); len(f) != 0 {
					t.Fatalf("segment without a valid record kept: %v", f)
				}
			}
			// Appends after the damage are sound and replay after it.
			for i := 100; i < 110; i++ {
				if _, err := s.Append(testRec(i)); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			s = mustOpen(t, Options{Dir: dir})
			if got := indices(pendingOf(t, s)); !slices.Equal(got, append(slices.Clone(c.want), seq(100, 110)...)) {
				t.Fatalf("after more appends replayed %v", got)
			}
		})
	}
}

func TestNewerVersion(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, Options{Dir: dir})
	s.Append(testRec(1))
	s.Close()
	seg := segFiles(t, dir)[0]
	b, _ := os.ReadFile(seg)
	b[len(magic)] = 2
	os.WriteFile(seg, b, 0o600)
	_, err := Open(Options{Dir: dir})
	if !errors.Is(err, errVersion) || !strings.Contains(err.Error(), seg) {
		t.Fatalf("want a version error naming the segment, got %v", err)
	}
	if _, err := os.Stat(seg); err != nil {
		t.Fatal("segment of a newer version must be kept")
	}
}

func TestOptions(t *testing.T) {
	if _, err := Open(Options{}); err == nil {
		t.Fatal("empty Dir accepted")
	}
	if _, err := Open(Options{Dir: t.TempDir(), MaxBytes: -1}); err == nil {
		t.Fatal("negative MaxBytes accepted")
	}
	if _, err := Open(Options{Dir: t.TempDir(), Sync: 7}); err == nil {
		t.Fatal("unknown policy accepted")
	}
	s := mustOpen(t, Options{Dir: filepath.Join(t.TempDir(), "a", "b")})
	if s.opts.MaxBytes != DefaultMaxBytes || s.opts.SegmentBytes != DefaultSegmentBytes || s.opts.SyncInterval != DefaultSyncInterval {
		t.Fatalf("defaults %+v", s.opts)
	}
	if fi, err := os.Stat(s.Dir()); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v %v", fi.Mode(), err)
	}
	s.Append(testRec(1))
	if fi, err := os.Stat(segFiles(t, s.Dir())[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("segment mode %v %v", fi.Mode(), err)
	}
	var zero Ticket
	if err := s.Ack(zero); err != nil {
		t.Fatal(err)
	}
}

// TestIntervalSync checks that the background fsync catches up with the
// appends, and that SyncEveryRecord is synced when Append returns.
func TestIntervalSync(t *testing.T) {
	s := mustOpen(t, Options{Dir: t.TempDir(), SyncInterval: 10 * time.Millisecond})
	for i := range 10 {
		s.Append(testRec(i))
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.synced.Load() < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("background fsync did not run: synced %d", s.synced.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	e := mustOpen(t, Options{Dir: t.TempDir(), Sync: SyncEveryRecord})
	for i := range 10 {
		e.Append(testRec(i))
		if got := e.synced.Load(); got != uint64(i+1) {
			t.Fatalf("record %d returned before fsync (synced %d)", i+1, got)
		}
	}
}

// countFile counts the write calls made on a segment file.
type countFile struct {
	*os.File
	mu     sync.Mutex
	writes int
}

func (f *countFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	f.writes++
	f.mu.Unlock()
	return f.File.WriteAt(p, off)
}

// TestSingleWrite: each Append is one write call carrying the whole frame,
// which is what makes a returned Append survive SIGKILL.
func TestSingleWrite(t *testing.T) {
	orig := createFile
	t.Cleanup(func() { createFile = orig })
	var files []*countFile
	createFile = func(path string) (segFile, error) {
		f, err := orig(path)
		if err != nil {
			return nil, err
		}
		cf := &countFile{File: f.(*os.File)}
		files = append(files, cf)
		return cf, nil
	}
	s := mustOpen(t, Options{Dir: t.TempDir(), SegmentBytes: 8 << 10})
	for i := range 50 {
		if _, err := s.Append(testRec(i)); err != nil {
			t.Fatal(err)
		}
	}
	writes := 0
	for _, f := range files {
		writes += f.writes
	}
	if writes != 50 || len(files) < 2 {
		t.Fatalf("%d write calls over %d segments for 50 records", writes, len(files))
	}
}

func TestReadCorrupt(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, Options{Dir: dir})
	tk, err := s.Append(testRec(7))
	if err != nil {
		t.Fatal(err)
	}
	seg := segFiles(t, dir)[0]
	b, _ := os.ReadFile(seg)
	b[len(b)-10] ^= 1
	os.WriteFile(seg, b, 0o600)
	if _, err := s.Read(tk); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("want ErrCorrupt, got %v", err)
	}
	if _, err := s.Read(Ticket{seg: 99, n: 20}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown ticket: %v", err)
	}
}

// TestCorruptLengthResync damages the length field of a frame in the
// middle of a full-size segment: the scan resynchronises on the next valid
// frame, so only that record is lost and exactly its bytes are counted
// (before, the rest of the segment was skipped).
func TestCorruptLengthResync(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, Options{Dir: dir, SegmentBytes: 8 << 20})
	var offs []int64
	for i := 0; ; i++ {
		tk, err := s.Append(testRecSize(i, 600))
		if err != nil {
			t.Fatal(err)
		}
		if tk.off > 4<<20 {
			break
		}
		offs = append(offs, tk.off)
	}
	s.Close()
	n := len(offs)
	seg := segFiles(t, dir)[0]
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	mid := n / 2
	b[offs[mid]+1] ^= 0x5a // the length field: the frame claims tens of KiB
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, Options{Dir: dir})
	st := s.Stats()
	want := slices.Delete(seq(0, n+1), mid, mid+1) // the frame past offs[n-1] too
	if got := indices(pendingOf(t, s)); !slices.Equal(got, want) {
		t.Fatalf("replayed %d records (%v...), want %d: every frame after the damaged one", len(got), got[:min(len(got), 5)], len(want))
	}
	if st.Corrupt != 1 || st.CorruptBytes != offs[mid+1]-offs[mid] {
		t.Fatalf("corrupt %d regions, %d bytes; want 1 region of %d bytes", st.Corrupt, st.CorruptBytes, offs[mid+1]-offs[mid])
	}
	t.Logf("%d records in a %d-byte segment; damaged length of record %d: %d recovered, %d bytes skipped", n+1, len(b), mid, len(want), st.CorruptBytes)
}
