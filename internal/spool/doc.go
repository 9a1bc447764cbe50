// Package spool is a durable, append-only, crash-safe local queue of encoded
// log records: the on-disk buffer behind sink.Options.SpoolDir. A record is
// appended before the background writer sends it and acknowledged once the
// table holds it; what was not acknowledged when the process died is
// replayed by the next Open. Records carry their final PartitionKey and
// RowKey, so replaying a record that was in fact stored cannot duplicate it
// (the writer treats EntityAlreadyExists on replay as success). It uses the
// standard library only.
//
//	sp, err := spool.Open(spool.Options{Dir: "/var/lib/app/logspool"})
//	sp.Pending(func(t spool.Ticket, r spool.Record) bool { send(r); sp.Ack(t); return true })
//	t, err := sp.Append(spool.Record{PartitionKey: pk, RowKey: rk, Entity: entity})
//	// ... once the table holds the record:
//	sp.Ack(t)
//	sp.Close()
//
// # Files
//
// The directory holds a LOCK file and segment files named by a zero-padded
// decimal id, <20 digits>.seg, appended to in id order. Only the newest
// segment of the running Spool (the active one) is ever written; it is
// sealed (fsynced and closed) when it reaches Options.SegmentBytes, and the
// segments found by Open are never written again. A segment file is
// deleted once every record in it is acknowledged and it is not active.
// Options.MaxBytes bounds the total size of the segment files; an Append
// that would exceed it first seals the active segment if every record in
// it is acknowledged (deleting it), so a MaxBytes below SegmentBytes works.
//
// A segment is a 12-byte header followed by frames, all integers little
// endian:
//
//	header:  "tblspool" (8 bytes)  version uint32 (= 1)
//	frame:   len uint32  crc uint32  payload (len bytes)
//	payload: uvarint len(PartitionKey)  PartitionKey
//	         uvarint len(RowKey)        RowKey
//	         Entity (the rest)
//
// crc is the CRC-32C (Castagnoli) of the 4 bytes of len followed by the
// payload. len is 1..MaxRecordBytes. Each frame is written with a single
// write(2) (pwrite) at the segment's end; a write that fails part-way is
// truncated away before the next one.
//
// # Validation and corruption
//
// Open reads every segment and checks every frame: its length is in range
// and fits in the file, its CRC matches, its payload parses. A frame that
// fails is never yielded. If its length field still looks sound and a valid
// frame follows right after it, only that frame is skipped (a flipped byte
// loses one record). Otherwise (a damaged length field, a zeroed or garbled
// range) the scan resynchronises: it tries every following offset until a
// frame's length and CRC-32C check, and reads on from there, so one damaged
// length field loses one record, not the rest of its segment; with no valid
// frame after it, everything to the end of the file is skipped (a torn
// final record, a truncated or garbled tail, zeros after a power loss). A
// frame cannot be forged inside a record: its length field has a zero high
// byte, and the sink's entities are JSON, which holds no raw NUL. A damaged
// header counts as corrupt, and the frames after it are still read (each
// carries its own checksum). Each skipped region counts once in
// Stats.Corrupt (its size in Stats.CorruptBytes). Resynchronising costs
// nothing over a zeroed range and little after a damaged length; random
// bytes are the worst case (BenchmarkScanDamaged; the README's Benchmarks
// section has the figures). A segment without a single valid record is deleted. Segments are never
// repaired in place: new records always go to a new segment, so appends
// after a corrupt tail are sound. A segment from a newer format version
// makes Open fail rather than drop its records.
//
// # Guarantees
//
// What an Append that returned nil survives:
//
//   - A crash of the process (SIGKILL, panic, os.Exit, OOM kill), under
//     either policy: the frame was handed to the kernel by one write(2)
//     before Append returned, so it sits in the page cache, which outlives
//     the process. Nothing whose Append returned is lost. A record whose
//     Append was in flight at the kill is whole in the file (and replayed),
//     absent, or torn: Linux may stop a write(2) of several pages between
//     two pages when the writer is killed. A torn frame is the last one of
//     its segment; the next Open detects and skips it (Stats.Corrupt).
//   - A crash of the operating system or a power loss: under SyncEveryRecord,
//     nothing (Append returns after fsync, given storage that honours it).
//     Under SyncInterval (the default), only records appended after the last
//     completed fsync began can be lost: at most those of the last
//     Options.SyncInterval (default 200ms) before the crash, plus the
//     duration of that fsync; earlier ones are on disk, since the active
//     segment is fsynced every interval and every segment when it is sealed.
//     Within that window the kernel may have written some pages and not
//     others: a torn or zeroed region is detected and skipped as above
//     (ending its segment's replay), never yielded.
//
// Replay is at-least-once: acknowledgements live in memory and are made
// durable only by deleting a fully acknowledged segment. After a crash,
// every record of every surviving segment is replayed, acknowledged or not:
// the acknowledged records that shared a segment with unacknowledged ones
// (with in-order acknowledgement, about one segment's worth), plus any
// segment whose deletion a power loss undid. Fixed keys make that harmless.
//
// Errors are explicit: Append fails with ErrFull at the MaxBytes bound, and
// with the operating system's error (ENOSPC, EROFS, EACCES, EIO) when the
// disk refuses; the record is then not spooled and the caller applies its
// memory policy. After an fsync failure (the state of the page cache is
// then unknown) the Spool refuses further Appends until it is reopened.
//
// # Concurrency
//
// A Spool is safe for concurrent use by multiple goroutines. Appends are
// serialized (each holds a mutex for its single write call, plus a segment
// roll when due); Acks and Stats take the same mutex briefly; Pending and
// Read read files without holding it. One Spool at a time may use a
// directory: Open takes an exclusive lock (flock(2) on LOCK; a share-none
// handle on Windows) that the kernel releases when the process dies, and a
// second Open, in the same process or another, fails with ErrLocked naming
// the directory.
package spool
