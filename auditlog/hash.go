package auditlog

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"

	"github.com/tablelog/tablelog/internal/schema"
)

// Hash is a SHA-256 or HMAC-SHA-256 chain hash. Its text form (String,
// MarshalText) is 64 lower-case hex digits. The zero Hash is the PrevHash of
// the first event of a trail.
type Hash [32]byte

// String returns h as 64 lower-case hex digits.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is all zeros.
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText implements encoding.TextMarshaler (hex).
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (hex, either case).
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ParseHash parses 64 hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return Hash{}, fmt.Errorf("auditlog: %q is not a 64-digit hex hash", s)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return Hash{}, fmt.Errorf("auditlog: %q is not a 64-digit hex hash", s)
	}
	return h, nil
}

// domain separates the chain's hash inputs from any other use of the key;
// catalogDomain does the same for catalog entries and genesis claims. The
// "v2" chain format added PartitionKey, PrevSeq and Seal to the input (and
// authenticated seals, catalog entries and genesis claims); entities of the
// first format do not verify under it.
const (
	domain        = "tablelog/auditlog/v2"
	catalogDomain = "tablelog/auditlog/v2/catalog"
)

// hasher computes chain hashes. It is not safe for concurrent use.
type hasher struct {
	mac hash.Hash // HMAC-SHA-256 with the key, or nil
	sha hash.Hash
	buf []byte
}

func newHasher(key []byte) *hasher {
	h := &hasher{sha: sha256.New()}
	if len(key) > 0 {
		h.mac = hmac.New(sha256.New, key)
	}
	return h
}

// alg returns the algorithm name the hasher uses.
func (h *hasher) alg() string {
	if h.mac != nil {
		return schema.AuditAlgHMAC
	}
	return schema.AuditAlgSHA256
}

// sum returns the chain hash of r (an event or a seal) under service, with
// the hasher's key if it has one and keyed is true, else plain SHA-256.
//
// The canonical input is the domain string, then each of these as a
// uvarint length followed by its bytes: service, PartitionKey, seq (8 bytes
// big-endian), PrevSeq (8 bytes), previous hash (32 bytes), ID, time (8
// bytes big-endian: Unix nanoseconds, a multiple of 100), Actor, Action,
// Target, Outcome, Reason, SourceIP, RequestID, Attrs (the stored JSON
// text), Alg, Seal. Length prefixes make the encoding injective: no two
// different entities share an input. The PartitionKey and the seq bind an
// entity to its place: a copy anywhere else does not verify.
func (h *hasher) sum(service string, r *schema.AuditRecord, prev Hash, keyed bool) Hash {
	b := h.buf[:0]
	b = appendField(b, domain)
	b = appendField(b, service)
	b = appendField(b, r.PartitionKey)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(r.Seq))
	b = appendBytes(b, n[:])
	binary.BigEndian.PutUint64(n[:], uint64(r.PrevSeq))
	b = appendBytes(b, n[:])
	b = appendBytes(b, prev[:])
	b = appendField(b, r.ID)
	binary.BigEndian.PutUint64(n[:], uint64(r.Time.UnixNano()))
	b = appendBytes(b, n[:])
	for _, s := range [...]string{r.Actor, r.Action, r.Target, r.Outcome, r.Reason, r.SourceIP, r.RequestID, r.Attrs, r.Alg, r.Seal} {
		b = appendField(b, s)
	}
	return h.finish(b, keyed)
}

// catalogMac returns the Mac of an audit catalog entity: a day's entry or a
// genesis claim (rowKey tells which), naming day.
func (h *hasher) catalogMac(service, rowKey, day string) Hash {
	b := h.buf[:0]
	for _, s := range [...]string{catalogDomain, service, rowKey, day} {
		b = appendField(b, s)
	}
	return h.finish(b, true)
}

func (h *hasher) finish(b []byte, keyed bool) Hash {
	h.buf = b
	m := h.sha
	if keyed && h.mac != nil {
		m = h.mac
	}
	m.Reset()
	m.Write(b)
	var out Hash
	m.Sum(out[:0])
	return out
}

func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}
