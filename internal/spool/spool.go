package spool

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// SyncPolicy says when appended records are forced to stable storage with
// fsync. Whatever the policy, a record whose Append returned survives a crash
// of the process (see the package comment); the policy only matters for a
// crash of the operating system or a power loss.
type SyncPolicy int

const (
	// SyncInterval, the zero value and default, fsyncs the active segment
	// every Options.SyncInterval from a background goroutine, and every
	// segment when it is sealed and at Close. An OS crash or power loss can
	// lose only records appended after the last completed fsync began: at
	// most the last interval's worth, plus the duration of that fsync.
	// Earlier records are on disk.
	SyncInterval SyncPolicy = iota

	// SyncEveryRecord fsyncs before Append returns, so a record whose Append
	// returned survives an OS crash or power loss too (given storage that
	// honours fsync). Concurrent Appends share fsyncs (group commit), but
	// each Append waits for one (0.1 to 10 ms, depending on the disk), so
	// expect thousands of Appends per second where SyncInterval does
	// hundreds of thousands.
	SyncEveryRecord
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncInterval:
		return "interval"
	case SyncEveryRecord:
		return "every-record"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// Defaults for the zero fields of Options.
const (
	DefaultMaxBytes     = 1 << 30
	DefaultSegmentBytes = 16 << 20
	DefaultSyncInterval = 200 * time.Millisecond
)

// Options configure a Spool. The zero value of every field but Dir means the
// documented default. Options are read once, by Open.
type Options struct {
	// Dir is the spool directory. Required. Open creates it (mode 0700) if
	// needed; segment files are created with mode 0600, since they hold
	// log data. Only one Spool at a time may use a directory.
	Dir string

	// MaxBytes bounds the bytes of segment files on disk, replayed ones
	// included. Append returns ErrFull rather than exceed it. Default 1 GiB.
	MaxBytes int64

	// SegmentBytes is the size at which the active segment is sealed and a
	// new one started. A segment holds at least one record, so a record
	// larger than SegmentBytes gets a segment of its own. Smaller segments
	// free disk sooner after acknowledgements; larger ones mean fewer files.
	// Default 16 MiB.
	SegmentBytes int64

	// Sync is the fsync policy: SyncInterval (default) or SyncEveryRecord.
	Sync SyncPolicy

	// SyncInterval is the period of the background fsync under the
	// SyncInterval policy; it bounds what an OS crash can lose. Default
	// 200ms. Ignored under SyncEveryRecord.
	SyncInterval time.Duration
}

// Record is one encoded log record: the keys and the entity JSON produced by
// internal/schema's Encoder. The keys are fixed before the record is
// spooled, so sending a replayed record twice stores it once (the writer
// treats EntityAlreadyExists on replay as success). The spool does not
// interpret or validate the fields.
type Record struct {
	PartitionKey string
	RowKey       string
	Entity       []byte
}

// Ticket identifies a spooled record, for Ack and Read. It is a small
// comparable value, valid only with the Spool that issued it; the zero
// Ticket identifies nothing (Ack ignores it).
type Ticket struct {
	seg uint64 // segment id, > 0
	off int64  // file offset of the frame
	idx uint32 // ordinal of the record among the segment's valid frames
	n   uint32 // frame length, header included
}

// Errors. Errors returned by the Spool wrap these (test with errors.Is) or
// the operating system's error (errors.Is(err, syscall.ENOSPC), EROFS,
// EACCES, ...), and name the spool directory or file.
var (
	// ErrFull: the record would take the segment files past
	// Options.MaxBytes. Nothing was written; the caller applies its memory
	// policy. Space comes back as acknowledged segments are deleted.
	ErrFull = errors.New("spool full")

	// ErrClosed: the Spool is closed.
	ErrClosed = errors.New("spool closed")

	// ErrLocked: another Spool, in this process or another, holds the
	// directory.
	ErrLocked = errors.New("directory in use by another spool")

	// ErrTooLarge: the record's frame payload exceeds MaxRecordBytes.
	ErrTooLarge = errors.New("record too large for the spool")

	// ErrCorrupt: Read found a frame that fails its checksum.
	ErrCorrupt = errors.New("corrupt spool record")

	// ErrNotFound: Read was given a Ticket whose record is acknowledged or
	// unknown to this Spool.
	ErrNotFound = errors.New("spool record not found")
)

// Stats is a snapshot of a Spool's state and counters.
type Stats struct {
	Bytes    int64 // bytes of segment files on disk: headers, acknowledged and corrupt bytes included
	Segments int   // segment files on disk
	Pending  int64 // records appended or found by Open that are not yet acknowledged

	Appended uint64 // Appends that returned nil
	Acked    uint64 // records acknowledged (each counted once)
	Full     uint64 // Appends refused with ErrFull
	Failed   uint64 // Appends that failed for any other reason (I/O, fsync, too large, closed)

	// Corrupt counts the invalid regions Open skipped while scanning the
	// segments of earlier runs: a frame failing its length or CRC-32C check
	// (a torn final record, a flipped byte), a garbled tail, a bad header.
	// CorruptBytes is their size. A segment that still holds unacknowledged
	// records is scanned again by the next Open, which counts it again.
	Corrupt      int64
	CorruptBytes int64

	SyncErrors   uint64 // failed fsyncs (each makes the Spool refuse further Appends)
	RemoveErrors uint64 // segment files that could not be deleted
	LastError    error  // the most recent of the errors counted above, or nil
}

// Spool is a durable, append-only local queue of Records, kept in segment
// files under one directory. All methods are safe for concurrent use by
// multiple goroutines: Appends are serialized by a mutex (each is a single
// write(2) of one frame while holding it), Acks only update memory except
// when they free a segment, and Pending and Read read files without holding
// the mutex.
type Spool struct {
	dir    string
	opts   Options
	lock   *os.File
	replay []uint64 // ids of the segments Open found, ascending; immutable

	bufs sync.Pool // *[]byte frame buffers

	mu      sync.Mutex
	segs    map[uint64]*segment
	active  *segment // nil until the first Append, or after a seal
	nextID  uint64
	bytes   int64
	pending int64
	seq     uint64 // records appended by this Spool; a record's seq is 1..seq
	closed  bool
	failed  error // sticky fsync failure
	st      Stats // counters only; the rest is filled by Stats()

	syncMu sync.Mutex    // one fsync at a time; taken before mu
	synced atomic.Uint64 // records 1..synced are on stable storage

	stop chan struct{}
	done chan struct{}
}

type segment struct {
	id       uint64
	size     int64    // bytes in the file
	count    int      // valid records
	live     int      // records not yet acknowledged
	acked    []uint64 // bitmap over 0..count-1
	firstSeq uint64   // seq of the first record appended to it by this Spool (0 for replayed segments)
	f        segFile  // open while the segment is active
	readers  int      // Pending or Read calls reading the file; deletion waits for them
	broken   bool     // a failed write could not be undone; seal before the next Append
}

// segFile is what the active segment needs of its file: an *os.File, or a
// fault-injecting wrapper in tests.
type segFile interface {
	Write(p []byte) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Truncate(size int64) error
	Sync() error
	Close() error
}

// createFile creates a new segment file; tests replace it to inject faults.
var createFile = func(path string) (segFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (g *segment) isAcked(i uint32) bool { return g.acked[i/64]&(1<<(i%64)) != 0 }
func (g *segment) setAcked(i uint32)     { g.acked[i/64] |= 1 << (i % 64) }

// Open opens the spool directory, creating it if needed, and locks it for
// this Spool. It reads the segment files left by earlier runs once,
// validating every frame (see the package comment: corrupt regions are
// skipped and counted in Stats.Corrupt, segments without a valid record are
// deleted): about a second per GiB from a cold disk, less from the page
// cache. Their records are pending until acknowledged, and Pending yields
// them. New records always go to new segments; old ones are never written.
//
// Open fails when Dir is empty or the options are negative, when the
// directory cannot be created or written (the error wraps the operating
// system's: syscall.EROFS, syscall.EACCES, syscall.ENOTDIR, ...), with
// ErrLocked when another Spool holds it, and when a segment was written by
// an incompatible future version.
func Open(opts Options) (*Spool, error) {
	if opts.Dir == "" {
		return nil, errors.New("spool: Options.Dir is required")
	}
	if opts.MaxBytes < 0 || opts.SegmentBytes < 0 || opts.SyncInterval < 0 {
		return nil, fmt.Errorf("spool %s: negative MaxBytes, SegmentBytes or SyncInterval", opts.Dir)
	}
	if opts.Sync != SyncInterval && opts.Sync != SyncEveryRecord {
		return nil, fmt.Errorf("spool %s: unknown sync policy %d", opts.Dir, int(opts.Sync))
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.SegmentBytes == 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.SyncInterval == 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	dir := opts.Dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create directory %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{
		dir:    dir,
		opts:   opts,
		lock:   lock,
		segs:   make(map[uint64]*segment),
		nextID: 1,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if err := s.load(); err != nil {
		lock.Close()
		return nil, err
	}
	if opts.Sync == SyncInterval {
		go s.syncLoop()
	} else {
		close(s.done)
	}
	return s, nil
}

// load scans the segments of earlier runs.
func (s *Spool) load() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var ids []uint64
	for _, e := range entries {
		if id, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		s.nextID = max(s.nextID, id+1)
		path := segPath(s.dir, id)
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("spool: %w", err)
		}
		res, err := scan(f, fi.Size(), func(int, int64, int, []byte) (bool, error) { return true, nil })
		f.Close()
		if err != nil {
			return fmt.Errorf("spool: segment %s: %w", path, err)
		}
		s.st.Corrupt += int64(res.corrupt)
		s.st.CorruptBytes += res.corruptBytes
		if res.records == 0 {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("spool: remove empty segment: %w", err)
			}
			continue
		}
		s.segs[id] = &segment{
			id:    id,
			size:  fi.Size(),
			count: res.records,
			live:  res.records,
			acked: make([]uint64, (res.records+63)/64),
		}
		s.replay = append(s.replay, id)
		s.bytes += fi.Size()
		s.pending += int64(res.records)
	}
	return nil
}

// Append writes r to the active segment as one frame, with a single write
// call, and returns its Ticket. When Append returns nil, the record survives
// a crash of the process (it is in the kernel's page cache); under
// SyncEveryRecord it has also been fsynced. r.Entity may be reused as soon
// as Append returns.
//
// Append seals the active segment (fsync, close) and starts a new one when
// the frame would take it past Options.SegmentBytes. It fails, with nothing
// spooled, with ErrFull when the segment files would exceed
// Options.MaxBytes, with ErrTooLarge, with ErrClosed, with the operating
// system's error when a segment cannot be created or written (ENOSPC, EROFS,
// EACCES, EIO: a partial write is truncated away), and with the fsync error
// under SyncEveryRecord. After any fsync failure the Spool refuses all
// further Appends with that error. On error the caller keeps the record
// elsewhere (its memory policy).
func (s *Spool) Append(r Record) (Ticket, error) {
	if n := payloadLen(&r); n > MaxRecordBytes {
		s.fail(nil)
		return Ticket{}, fmt.Errorf("spool %s: %w: %d bytes, at most %d", s.dir, ErrTooLarge, n, MaxRecordBytes)
	}
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	frame := appendFrame((*bp)[:0], &r)
	t, seq, err := s.write(frame)
	if cap(frame) <= 1<<20 { // don't pin huge buffers
		*bp = frame
		s.bufs.Put(bp)
	}
	if err != nil {
		return Ticket{}, err
	}
	if s.opts.Sync == SyncEveryRecord {
		if err := s.syncThrough(seq); err != nil {
			// The frame is in the file but its durability is unknown: the
			// caller takes the record back, so it no longer holds its segment.
			s.Ack(t)
			s.mu.Lock()
			s.st.Appended--
			s.failLocked(nil)
			s.mu.Unlock()
			return Ticket{}, err
		}
	}
	return t, nil
}

// fail counts a failed Append and remembers err (if not nil) as LastError.
func (s *Spool) fail(err error) {
	s.mu.Lock()
	s.failLocked(err)
	s.mu.Unlock()
}

func (s *Spool) failLocked(err error) {
	s.st.Failed++
	if err != nil {
		s.st.LastError = err
	}
}

func (s *Spool) write(frame []byte) (Ticket, uint64, error) {
	n := int64(len(frame))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.failLocked(nil)
		return Ticket{}, 0, fmt.Errorf("spool %s: %w", s.dir, ErrClosed)
	}
	if s.failed != nil {
		s.failLocked(nil)
		return Ticket{}, 0, s.failed
	}
	if a := s.active; a != nil && (a.broken || (a.count > 0 && a.size+n > s.opts.SegmentBytes)) {
		if err := s.sealLocked(); err != nil {
			s.failLocked(err)
			return Ticket{}, 0, err
		}
	}
	if a := s.active; a != nil && a.live == 0 && s.bytes+n > s.opts.MaxBytes {
		// Every record of the active segment is acknowledged, but only a
		// seal deletes it: without this, a MaxBytes below SegmentBytes
		// would refuse Appends for good once the active segment filled it.
		if err := s.sealLocked(); err != nil {
			s.failLocked(err)
			return Ticket{}, 0, err
		}
	}
	need := n
	if s.active == nil {
		need += headerLen
	}
	if s.bytes+need > s.opts.MaxBytes {
		s.st.Full++
		return Ticket{}, 0, fmt.Errorf("spool %s: %w: %d bytes of %d in use, record needs %d (records wait on disk until acknowledged)",
			s.dir, ErrFull, s.bytes, s.opts.MaxBytes, need)
	}
	if s.active == nil {
		if err := s.createLocked(); err != nil {
			s.failLocked(err)
			return Ticket{}, 0, err
		}
	}
	a := s.active
	off := a.size
	if _, err := a.f.WriteAt(frame, off); err != nil {
		// Undo a partial write so the next frame starts at a sound offset;
		// if that fails too, seal the segment before the next Append (the
		// garbage tail is then skipped as corrupt by the next Open).
		if terr := a.f.Truncate(off); terr != nil {
			a.broken = true
		}
		err = fmt.Errorf("spool %s: append: %w", s.dir, err)
		s.failLocked(err)
		return Ticket{}, 0, err
	}
	idx := uint32(a.count)
	if a.count%64 == 0 {
		a.acked = append(a.acked, 0)
	}
	a.count++
	a.live++
	a.size += n
	s.bytes += n
	s.pending++
	s.seq++
	s.st.Appended++
	return Ticket{seg: a.id, off: off, idx: idx, n: uint32(n)}, s.seq, nil
}

// createLocked starts a new active segment: the file, its header (one
// write), and an fsync of the directory so the file's name is durable.
func (s *Spool) createLocked() error {
	id := s.nextID
	path := segPath(s.dir, id)
	f, err := createFile(path)
	if err != nil {
		return fmt.Errorf("spool %s: create segment: %w", s.dir, err)
	}
	if _, err := f.Write(segHeader); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("spool %s: create segment: %w", s.dir, err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("spool %s: create segment: sync directory: %w", s.dir, err)
	}
	s.nextID++
	s.active = &segment{id: id, size: headerLen, f: f, firstSeq: s.seq + 1}
	s.segs[id] = s.active
	s.bytes += headerLen
	return nil
}

// sealLocked fsyncs and closes the active segment, and deletes it when all
// its records are already acknowledged. An fsync failure makes the Spool
// refuse further Appends.
func (s *Spool) sealLocked() error {
	a := s.active
	s.active = nil
	var err error
	if serr := a.f.Sync(); serr != nil {
		err = s.syncFailedLocked(serr)
	} else {
		s.storeSynced(s.seq)
	}
	a.f.Close()
	a.f = nil
	if a.live == 0 && a.readers == 0 {
		if rerr := s.removeLocked(a); rerr != nil && err == nil {
			s.st.LastError = rerr
		}
	}
	return err
}

func (s *Spool) syncFailedLocked(err error) error {
	err = fmt.Errorf("spool %s: fsync failed, spool disabled until reopened: %w", s.dir, err)
	s.st.SyncErrors++
	s.st.LastError = err
	if s.failed == nil {
		s.failed = err
	}
	return err
}

func (s *Spool) storeSynced(seq uint64) {
	for {
		cur := s.synced.Load()
		if cur >= seq || s.synced.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// syncThrough returns once record seq is on stable storage. Callers that
// arrive while an fsync is running wait for it and, if it did not cover
// them, issue the next one: concurrent Appends share fsyncs.
func (s *Spool) syncThrough(seq uint64) error {
	if s.synced.Load() >= seq {
		return nil
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced.Load() >= seq {
		return nil
	}
	s.mu.Lock()
	if s.failed != nil {
		err := s.failed
		s.mu.Unlock()
		return err
	}
	a := s.active
	if a == nil || seq < a.firstSeq {
		// The record's segment was sealed, which synced it; a failed seal
		// sets s.failed, checked above.
		s.mu.Unlock()
		return nil
	}
	f, target := a.f, s.seq
	s.mu.Unlock()
	if err := f.Sync(); err != nil {
		if s.synced.Load() >= seq { // sealed (and synced) meanwhile
			return nil
		}
		s.mu.Lock()
		err = s.syncFailedLocked(err)
		s.mu.Unlock()
		return err
	}
	s.storeSynced(target)
	return nil
}

// syncLoop is the background fsync of the SyncInterval policy.
func (s *Spool) syncLoop() {
	defer close(s.done)
	t := time.NewTicker(s.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			seq := s.seq
			s.mu.Unlock()
			if seq > s.synced.Load() {
				s.syncThrough(seq) // errors are counted and make Appends fail
			}
		}
	}
}

// Ack marks the record of t as committed (stored in the table). A segment
// file is deleted once every record in it is acknowledged and it is no
// longer the active segment. Acks may come in any order, concurrently, and
// for replayed records as for new ones; acknowledging a record twice, or the
// zero Ticket, does nothing.
//
// Acks are kept in memory only: after a crash, every record of a segment
// that was not yet deleted is replayed, acknowledged or not, which is why
// records carry fixed keys. Ack returns ErrClosed after Close (the record is
// then replayed by the next Open), and an error when a freed segment file
// cannot be deleted (the record is acknowledged all the same; the file is
// replayed by the next Open).
func (s *Spool) Ack(t Ticket) error {
	if t.seg == 0 {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("spool %s: %w", s.dir, ErrClosed)
	}
	g := s.segs[t.seg]
	if g == nil || int(t.idx) >= g.count || g.isAcked(t.idx) {
		s.mu.Unlock()
		return nil
	}
	g.setAcked(t.idx)
	g.live--
	s.pending--
	s.st.Acked++
	var err error
	if g.live == 0 && g != s.active && g.readers == 0 {
		err = s.removeLocked(g)
	}
	s.mu.Unlock()
	return err
}

// removeLocked forgets segment g and deletes its file. Deleting under the
// mutex keeps the accounting exact; it happens at most once per segment.
func (s *Spool) removeLocked(g *segment) error {
	delete(s.segs, g.id)
	s.bytes -= g.size
	s.pending -= int64(g.live)
	if err := os.Remove(segPath(s.dir, g.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		err = fmt.Errorf("spool %s: delete acknowledged segment: %w", s.dir, err)
		s.st.RemoveErrors++
		s.st.LastError = err
		return err
	}
	return nil
}

// Stats returns a snapshot of the Spool's state and counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Bytes = s.bytes
	st.Segments = len(s.segs)
	st.Pending = s.pending
	return st
}

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.dir }

// Close fsyncs and closes the active segment (deleting it if every record in
// it is acknowledged), stops the background fsync and releases the
// directory lock. Unacknowledged records stay on disk for the next Open.
// Appends and Acks after Close fail with ErrClosed; a second Close returns
// nil. Close returns the fsync or close error, if any.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done

	s.syncMu.Lock() // let a running fsync finish
	s.mu.Lock()
	var errs []error
	if a := s.active; a != nil {
		s.active = nil
		if s.failed == nil {
			if err := a.f.Sync(); err != nil {
				errs = append(errs, s.syncFailedLocked(err))
			} else {
				s.storeSynced(s.seq)
			}
		}
		if err := a.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("spool %s: %w", s.dir, err))
		}
		a.f = nil
		if a.live == 0 && a.readers == 0 {
			if err := s.removeLocked(a); err != nil {
				errs = append(errs, err)
			}
		}
	}
	s.mu.Unlock()
	s.syncMu.Unlock()
	if err := s.lock.Close(); err != nil {
		errs = append(errs, fmt.Errorf("spool %s: release lock: %w", s.dir, err))
	}
	return errors.Join(errs...)
}
