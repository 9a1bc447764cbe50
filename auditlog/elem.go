package auditlog

import (
	"time"

	"github.com/tablelog/tablelog/internal/schema"
)

// link names a chain event: its seq and hash. The zero link is the start
// of the trail (seq 0, the zero hash).
type link struct {
	seq  int64
	hash Hash
}

// elem is one entity of a day partition, decoded and checked against the
// key: what it claims and whether it is authentic.
type elem struct {
	rec  schema.AuditRecord
	derr error // decoding error (rec is partial)

	rk     string
	slot   int64 // from the RowKey
	slotOK bool  // the RowKey is a chain slot

	hash   Hash // the stored Hash
	hashOK bool
	prev   link // PrevSeq and PrevHash as stored
	prevOK bool

	seal bool      // a seal (Seal column set)
	next time.Time // the day a seal names

	// contentOK: the stored Hash is the hash of the content under the
	// expected algorithm (with the key, if there is one), in the current
	// chain format. auth: contentOK, at its own place (RowKey slot = Seq,
	// in the partition it was hashed for), with no foreign columns: an
	// entity only a writer holding the key can have made.
	contentOK bool
	plainOK   bool // keyed trail, but the hash is a plain SHA-256 of the content
	auth      bool
}

// link returns e's own link (its slot and hash).
func (e *elem) link() link { return link{seq: e.slot, hash: e.hash} }

// inspect decodes raw, an entity of partition pk (day day) of service's
// trail, and checks it with h (keyed: the trail has a key).
func inspect(h *hasher, keyed bool, service, pk string, day time.Time, raw []byte) elem {
	var e elem
	e.rec, e.derr = schema.DecodeAudit(raw)
	e.rk = e.rec.RowKey
	if e.rk == "" {
		e.rk = rowKeyOf(raw)
	}
	if s, err := schema.ParseAuditRowKey(e.rk); err == nil {
		e.slot, e.slotOK = s, true
	}
	if e.derr != nil {
		return e
	}
	r := &e.rec
	e.seal = r.IsSeal()
	var err error
	if e.hash, err = ParseHash(r.Hash); err == nil {
		e.hashOK = true
	}
	if p, err := ParseHash(r.PrevHash); err == nil && r.HasPrevSeq && r.PrevSeq >= 0 {
		e.prev, e.prevOK = link{seq: r.PrevSeq, hash: p}, true
	}
	if e.seal {
		if n, err := parseDay(r.Seal); err == nil && n.After(day) {
			e.next = n
		}
	}
	if !e.hashOK || !e.prevOK {
		return e
	}
	switch r.Alg {
	case schema.AuditAlgHMAC:
		e.contentOK = keyed && h.sum(service, r, e.prev.hash, true) == e.hash
	case schema.AuditAlgSHA256:
		plain := h.sum(service, r, e.prev.hash, false) == e.hash
		e.contentOK = plain && !keyed
		e.plainOK = plain && keyed
	}
	e.auth = e.contentOK && e.slotOK && r.Seq == e.slot && r.PartitionKey == pk &&
		len(r.Unknown) == 0 && e.prev.seq < e.slot && (!e.seal || !e.next.IsZero()) &&
		(e.seal || r.ID != "")
	return e
}
