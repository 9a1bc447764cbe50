package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// On-disk format; see the package comment.
const (
	magic        = "tblspool"
	version      = 1
	headerLen    = 12 // magic (8 bytes), then version as a little-endian uint32
	frameHdrLen  = 8  // [len uint32][crc uint32], little endian
	segExt       = ".seg"
	segNameDigit = 20 // segment id, zero-padded decimal, so names sort by id
	lockName     = "LOCK"
)

// MaxRecordBytes bounds the payload of one frame: the two keys (with their
// length prefixes) and the entity. Append rejects a larger record, and a
// reader treats a frame claiming more as corrupt. Azure's entity limit is
// 1 MiB, so this leaves ample room.
const MaxRecordBytes = 16 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segHeader is the first headerLen bytes of every segment file.
var segHeader = func() []byte {
	b := make([]byte, headerLen)
	copy(b, magic)
	binary.LittleEndian.PutUint32(b[len(magic):], version)
	return b
}()

func segName(id uint64) string {
	s := strconv.FormatUint(id, 10)
	return strings.Repeat("0", segNameDigit-len(s)) + s + segExt
}

// parseSegName returns the id of a segment file name, or ok=false for any
// other name (which the spool ignores).
func parseSegName(name string) (id uint64, ok bool) {
	num, found := strings.CutSuffix(name, segExt)
	if !found || len(num) != segNameDigit {
		return 0, false
	}
	id, err := strconv.ParseUint(num, 10, 64)
	return id, err == nil && id > 0
}

func segPath(dir string, id uint64) string { return filepath.Join(dir, segName(id)) }

// payloadLen is the size of r's frame payload.
func payloadLen(r *Record) int {
	return uvarintLen(uint64(len(r.PartitionKey))) + len(r.PartitionKey) +
		uvarintLen(uint64(len(r.RowKey))) + len(r.RowKey) + len(r.Entity)
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// appendFrame appends r's frame to dst.
func appendFrame(dst []byte, r *Record) []byte {
	start := len(dst)
	n := payloadLen(r)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, 0, 0, 0, 0) // crc, filled below
	dst = binary.AppendUvarint(dst, uint64(len(r.PartitionKey)))
	dst = append(dst, r.PartitionKey...)
	dst = binary.AppendUvarint(dst, uint64(len(r.RowKey)))
	dst = append(dst, r.RowKey...)
	dst = append(dst, r.Entity...)
	f := dst[start:]
	binary.LittleEndian.PutUint32(f[4:8], frameCRC(f[0:4], f[frameHdrLen:]))
	return dst
}

// frameCRC is the CRC-32C of the length field followed by the payload.
func frameCRC(lenField, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(lenField, castagnoli), castagnoli, payload)
}

// decodePayload splits a payload (whose CRC has been checked) into a
// Record. The keys are copied; Entity aliases payload.
func decodePayload(p []byte) (Record, error) {
	pk, p, ok := cutField(p)
	if !ok {
		return Record{}, errBadPayload
	}
	rk, p, ok := cutField(p)
	if !ok {
		return Record{}, errBadPayload
	}
	return Record{PartitionKey: string(pk), RowKey: string(rk), Entity: p}, nil
}

var errBadPayload = errors.New("malformed record payload")

func cutField(p []byte) (field, rest []byte, ok bool) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k) {
		return nil, nil, false
	}
	return p[k : k+int(n)], p[k+int(n):], true
}

// window serves byte ranges of a file through one reusable buffer, so a scan
// reads a segment in large sequential chunks rather than two preads a frame.
type window struct {
	r    io.ReaderAt
	size int64
	buf  []byte
	off  int64 // file offset of buf[0]
	n    int   // valid bytes in buf
}

const windowBytes = 256 << 10

// bytes returns file[off:off+n], valid until the next call. It fails with
// io.ErrUnexpectedEOF when the range runs past the end of the file.
func (w *window) bytes(off int64, n int) ([]byte, error) {
	if off < 0 || n < 0 || off+int64(n) > w.size {
		return nil, io.ErrUnexpectedEOF
	}
	if off >= w.off && off+int64(n) <= w.off+int64(w.n) {
		return w.buf[off-w.off : off-w.off+int64(n)], nil
	}
	want := max(n, windowBytes)
	if int64(want) > w.size-off {
		want = int(w.size - off)
	}
	if cap(w.buf) < want {
		w.buf = make([]byte, want)
	}
	w.buf = w.buf[:want]
	w.n = 0
	got, err := w.r.ReadAt(w.buf, off)
	if got < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	w.off, w.n = off, got
	return w.buf[:n], nil
}

// scanResult describes one pass over a segment file.
type scanResult struct {
	records      int   // valid frames
	corrupt      int   // invalid regions skipped (a garbled frame, a torn tail, a bad header)
	corruptBytes int64 // bytes in those regions
}

// errVersion reports a segment written by a newer, incompatible version.
var errVersion = errors.New("unsupported segment format version")

// scan reads the frames of a segment of the given size and calls fn for
// each valid one, in order, with its ordinal among the valid frames, its
// file offset, its total length and its payload (valid only during the
// call). It stops early when fn returns false or an error.
//
// Validation: a frame is valid when its length is in 1..MaxRecordBytes and
// fits in the file, its CRC-32C matches, and its payload parses. When a
// frame fails but its length field looks sound and a valid frame follows
// right after it, only that frame is skipped (a flipped byte loses one
// record). Otherwise (a damaged length field, a zeroed or garbled range)
// the scan resynchronises: it looks for the next offset where a valid frame
// starts, byte by byte, and goes on from there; with none, the rest of the
// file is skipped (a torn or garbled tail). Either way the skipped region
// counts once in corrupt, and its bytes in corruptBytes.
func scan(r io.ReaderAt, size int64, fn func(idx int, off int64, frameLen int, payload []byte) (bool, error)) (scanResult, error) {
	var res scanResult
	w := &window{r: r, size: size}
	hdr, err := w.bytes(0, headerLen)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			if size > 0 { // torn header: nothing was ever appended
				res.corrupt, res.corruptBytes = 1, size
			}
			return res, nil
		}
		return res, err
	}
	if string(hdr[:len(magic)]) != magic {
		// A damaged header: count it, and still look for frames, which
		// carry their own checksums, rather than drop a whole segment.
		res.corrupt, res.corruptBytes = 1, headerLen
	} else if v := binary.LittleEndian.Uint32(hdr[len(magic):]); v != version {
		return res, fmt.Errorf("%w %d (this build reads version %d)", errVersion, v, version)
	}
	off := int64(headerLen)
	idx := 0
	for off < size {
		n, payload, err := w.frame(off)
		if err != nil {
			return res, err
		}
		if n == 0 {
			// Invalid frame. Skip just it when its length is plausible and a
			// valid frame follows; otherwise the rest of the file is garbage.
			next, ok := w.plausibleNext(off)
			if !ok {
				next, ok, err = w.resync(off + 1)
				if err != nil {
					return res, err
				}
			}
			if !ok {
				res.corrupt++
				res.corruptBytes += size - off
				return res, nil
			}
			res.corrupt++
			res.corruptBytes += next - off
			off = next
			continue
		}
		more, err := fn(idx, off, n, payload)
		if err != nil || !more {
			return res, err
		}
		idx++
		res.records++
		off += int64(n)
	}
	return res, nil
}

// frame validates the frame at off and returns its total length and
// payload, or n == 0 when it is invalid. err is an I/O error.
func (w *window) frame(off int64) (n int, payload []byte, err error) {
	h, err := w.bytes(off, frameHdrLen)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, nil
		}
		return 0, nil, err
	}
	plen := binary.LittleEndian.Uint32(h[0:4])
	sum := binary.LittleEndian.Uint32(h[4:8])
	if plen == 0 || plen > MaxRecordBytes || off+frameHdrLen+int64(plen) > w.size {
		return 0, nil, nil
	}
	var lenField [4]byte
	copy(lenField[:], h[0:4])
	p, err := w.bytes(off+frameHdrLen, int(plen))
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, nil
		}
		return 0, nil, err
	}
	if frameCRC(lenField[:], p) != sum {
		return 0, nil, nil
	}
	if _, err := decodePayload(p); err != nil {
		return 0, nil, nil
	}
	return frameHdrLen + int(plen), p, nil
}

// plausibleNext reports where the frame after the invalid frame at off
// starts, if its length field is sane and a valid frame starts there.
func (w *window) plausibleNext(off int64) (int64, bool) {
	h, err := w.bytes(off, frameHdrLen)
	if err != nil {
		return 0, false
	}
	plen := binary.LittleEndian.Uint32(h[0:4])
	next := off + frameHdrLen + int64(plen)
	if plen == 0 || plen > MaxRecordBytes || next >= w.size {
		return 0, false
	}
	n, _, err := w.frame(next)
	return next, err == nil && n > 0
}

// resync returns the offset of the first valid frame at or after from, if
// any. A frame's length field has a zero high byte (MaxRecordBytes is below
// 2^24), and the sink's entities are JSON, which never holds a raw NUL, so
// no frame can be forged inside a record's bytes; and a candidate is only
// taken once its CRC-32C checks. Most offsets are rejected by their length
// field alone.
func (w *window) resync(from int64) (int64, bool, error) {
	for off := from; off+frameHdrLen < w.size; off++ {
		h, err := w.bytes(off, frameHdrLen)
		if err != nil {
			return 0, false, err
		}
		plen := binary.LittleEndian.Uint32(h[0:4])
		if plen == 0 || plen > MaxRecordBytes || off+frameHdrLen+int64(plen) > w.size {
			continue
		}
		n, _, err := w.frame(off)
		if err != nil {
			return 0, false, err
		}
		if n > 0 {
			return off, true, nil
		}
	}
	return 0, false, nil
}

// readFrame reads and validates the single frame at off of f, whose total
// length is n, for Spool.Read.
func readFrame(f *os.File, off int64, n int) (Record, error) {
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil {
		return Record{}, err
	}
	plen := binary.LittleEndian.Uint32(buf[0:4])
	if int(plen) != n-frameHdrLen || frameCRC(buf[0:4], buf[frameHdrLen:]) != binary.LittleEndian.Uint32(buf[4:8]) {
		return Record{}, ErrCorrupt
	}
	r, err := decodePayload(buf[frameHdrLen:])
	if err != nil {
		return Record{}, ErrCorrupt
	}
	return r, nil
}
