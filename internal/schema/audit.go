package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Audit entities.
//
// The audit table (separate from the logs table) holds, per service and UTC
// day, the partition PartitionKey(service, day) with the events of one hash
// chain. An event's RowKey is its slot, AuditRowKey(seq): the sequence
// number inverted, so ascending RowKey order is newest first and "the head"
// is the first entity of the partition. The slot is also the chain's claim:
// two writers cannot both insert seq N.
//
// A partition may end in a seal: an entity in the slot after the day's last
// event whose AuditColSeal column names the day the chain continues in.
//
// Columns (all strings unless noted; empty strings are left out):
const (
	AuditColSeq       = "Seq"       // Edm.Int64: the event's sequence number (equal to its slot)
	AuditColID        = "ID"        // the event's ULID (26 characters)
	AuditColTime      = ColTime     // Edm.DateTime: when the event happened (100 ns precision)
	AuditColActor     = "Actor"     // who
	AuditColAction    = "Action"    // did what
	AuditColTarget    = "Target"    // to which resource
	AuditColOutcome   = "Outcome"   // "success", "failure", "denied", "error", "unknown" or an application's word
	AuditColReason    = "Reason"    // why
	AuditColSourceIP  = "SourceIP"  // from where
	AuditColRequestID = "RequestID" // correlation id
	AuditColAttrs     = "Attrs"     // a JSON object of further attributes
	AuditColAlg       = "Alg"       // the hash algorithm: AuditAlgSHA256 or AuditAlgHMAC
	AuditColPrevSeq   = "PrevSeq"   // Edm.Int64: the Seq of the previous event in the chain (0 for the first)
	AuditColPrevHash  = "PrevHash"  // hex SHA-256/HMAC of the previous event in the chain (64 zeros for the first)
	AuditColHash      = "Hash"      // hex SHA-256/HMAC of this event or seal
	AuditColSeal      = "Seal"      // seals only: "yyyyMMdd", the day the chain continues in
	AuditColMac       = "Mac"       // audit catalog entries and genesis claims: hex HMAC (or SHA-256) of the entry
)

// The catalog, in the logs table and in the audit table alike: partition
// CatalogPartition holds one entity per service and day, RowKey the day's
// PartitionKey, with the columns Service and Day ("yyyyMMdd"). The sink
// inserts it at its first write into a day; an audit writer before the
// first event of the day, so the catalog lists every day partition.
const (
	CatalogColService = "Service"
	CatalogColDay     = "Day"
)

// AuditGenesisPrefix starts the RowKeys, in the audit table's
// CatalogPartition, of the claims that start a service's trail: entities
// like a catalog entry whose Day names the trail's first day, numbered
// AuditGenesisRowKey(service, 0), (service, 1), … Writers insert them
// (insert-only); the lowest-numbered authentic claim (its Mac checks) wins,
// so a foreign entity in a claim's RowKey costs that number, never the
// trail. '~' cannot occur in a service name, so a claim never collides with
// a day's catalog entry ("<service>_<yyyyMMdd>"), and readers of the
// catalog ignore it.
func AuditGenesisPrefix(service string) string { return service + "~genesis~" }

// AuditGenesisRowKey returns the RowKey of a service's genesis claim
// number n (0 <= n < 10^10).
func AuditGenesisRowKey(service string, n int64) string {
	return fmt.Sprintf("%s%010d", AuditGenesisPrefix(service), n)
}

// ParseAuditGenesisRowKey returns the number of a genesis claim's RowKey
// of service, or false if rk is not one.
func ParseAuditGenesisRowKey(service, rk string) (int64, bool) {
	p := AuditGenesisPrefix(service)
	if len(rk) != len(p)+10 || rk[:len(p)] != p {
		return 0, false
	}
	n, err := strconv.ParseInt(rk[len(p):], 10, 64)
	return n, err == nil && n >= 0
}

// AppendCatalogEntity appends the catalog entity of service's day (logs
// and audit tables alike).
func AppendCatalogEntity(dst []byte, service string, day time.Time) []byte {
	return appendAuditCatalog(dst, PartitionKey(service, day), service, day, "")
}

// AppendAuditCatalogEntity appends an audit table's catalog entity: the
// entry of service's day (RowKey PartitionKey(service, day)) or a genesis
// claim (RowKey AuditGenesisRowKey), with its Mac (hex).
func AppendAuditCatalogEntity(dst []byte, rowKey, service string, day time.Time, mac string) []byte {
	return appendAuditCatalog(dst, rowKey, service, day, mac)
}

func appendAuditCatalog(dst []byte, rk, service string, day time.Time, mac string) []byte {
	dst = append(dst, `{"PartitionKey":`...)
	dst, _, _, _ = appendJSONString(dst, CatalogPartition, math.MaxInt)
	dst = append(dst, `,"RowKey":`...)
	dst, _, _, _ = appendJSONString(dst, rk, math.MaxInt)
	dst = append(dst, `,"`+CatalogColService+`":`...)
	dst, _, _, _ = appendJSONString(dst, service, math.MaxInt)
	dst = append(dst, `,"`+CatalogColDay+`":"`...)
	dst = day.UTC().AppendFormat(dst, DayLayout)
	dst = append(dst, '"')
	if mac != "" {
		dst = append(dst, `,"`+AuditColMac+`":`...)
		dst, _, _, _ = appendJSONString(dst, mac, math.MaxInt)
	}
	return append(dst, '}')
}

// AuditCatalogEntry is an audit table catalog entity as read back: a day's
// entry or a genesis claim.
type AuditCatalogEntry struct {
	RowKey, Service, Day, Mac string
}

// ParseAuditCatalog decodes a catalog entity (as returned by the service).
// It does not check the Mac; Day is returned as stored.
func ParseAuditCatalog(raw []byte) (AuditCatalogEntry, error) {
	var e AuditCatalogEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return AuditCatalogEntry{}, fmt.Errorf("%w: catalog entry: %v", ErrNotAuditEntity, err)
	}
	return e, nil
}

// Hash algorithms of audit events.
const (
	AuditAlgSHA256 = "SHA-256"
	AuditAlgHMAC   = "HMAC-SHA-256"
)

// AuditRowKeyLen is the length of every audit RowKey.
const AuditRowKeyLen = 19

// AuditRowKey returns the RowKey of sequence number seq (1 <= seq <=
// math.MaxInt64): the 19-digit zero-padded decimal of MaxInt64-seq, so
// ascending RowKey order is descending seq (newest first).
func AuditRowKey(seq int64) string {
	var b [AuditRowKeyLen]byte
	return string(AppendAuditRowKey(b[:0], seq))
}

// AppendAuditRowKey appends AuditRowKey(seq) to dst.
func AppendAuditRowKey(dst []byte, seq int64) []byte {
	v := uint64(math.MaxInt64 - seq)
	var b [AuditRowKeyLen]byte
	for i := AuditRowKeyLen - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, b[:]...)
}

// ParseAuditRowKey returns the sequence number of an audit RowKey. Only the
// exact form AuditRowKey produces is accepted.
func ParseAuditRowKey(rk string) (int64, error) {
	if len(rk) != AuditRowKeyLen {
		return 0, fmt.Errorf("tablelog: %q is not an audit row key", rk)
	}
	var v uint64
	for i := 0; i < len(rk); i++ {
		c := rk[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("tablelog: %q is not an audit row key", rk)
		}
		v = v*10 + uint64(c-'0')
	}
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("tablelog: %q is not an audit row key", rk)
	}
	return math.MaxInt64 - int64(v), nil
}

// AuditRecord is the stored form of an audit event or seal: the columns as
// plain values. For a seal only PartitionKey, RowKey, Seq (the slot), Time,
// Seal, PrevSeq, PrevHash, Alg and Hash are set.
type AuditRecord struct {
	PartitionKey, RowKey string
	Timestamp            time.Time // server time of the insert (decode only)

	Seq, PrevSeq                       int64
	ID                                 string
	Time                               time.Time
	Actor, Action, Target, Outcome     string
	Reason, SourceIP, RequestID, Attrs string
	Alg, PrevHash, Hash                string
	Seal                               string

	// HasPrevSeq reports that the entity has a PrevSeq column (decode
	// only): entities of the first chain format (before PrevSeq) lack it.
	HasPrevSeq bool

	// Unknown lists properties the decoder did not expect (decode only);
	// audit writers never write any.
	Unknown []string
}

// IsSeal reports whether r is a seal rather than an event.
func (r *AuditRecord) IsSeal() bool { return r.Seal != "" }

// AppendAuditEntity appends the OData JSON of r (an event or a seal) to dst.
// Empty strings are left out; the caller has validated the strings (valid
// UTF-8, within MaxStringChars).
func AppendAuditEntity(dst []byte, r *AuditRecord) []byte {
	dst = append(dst, `{"PartitionKey":`...)
	dst, _, _, _ = appendJSONString(dst, r.PartitionKey, math.MaxInt)
	dst = append(dst, `,"RowKey":`...)
	dst, _, _, _ = appendJSONString(dst, r.RowKey, math.MaxInt)
	dst = append(dst, `,"Seq@odata.type":"Edm.Int64","Seq":"`...)
	dst = strconv.AppendInt(dst, r.Seq, 10)
	dst = append(dst, `","PrevSeq@odata.type":"Edm.Int64","PrevSeq":"`...)
	dst = strconv.AppendInt(dst, r.PrevSeq, 10)
	dst = append(dst, '"')
	if !r.Time.IsZero() {
		dst = appendDateTime(dst, AuditColTime, r.Time)
	}
	for _, c := range [...]struct{ name, v string }{
		{AuditColID, r.ID},
		{AuditColActor, r.Actor},
		{AuditColAction, r.Action},
		{AuditColTarget, r.Target},
		{AuditColOutcome, r.Outcome},
		{AuditColReason, r.Reason},
		{AuditColSourceIP, r.SourceIP},
		{AuditColRequestID, r.RequestID},
		{AuditColAttrs, r.Attrs},
		{AuditColAlg, r.Alg},
		{AuditColPrevHash, r.PrevHash},
		{AuditColHash, r.Hash},
		{AuditColSeal, r.Seal},
	} {
		if c.v == "" {
			continue
		}
		dst = append(dst, `,"`...)
		dst = append(dst, c.name...)
		dst = append(dst, `":`...)
		dst, _, _, _ = appendJSONString(dst, c.v, math.MaxInt)
	}
	return append(dst, '}')
}

// AuditEntitySize returns an upper bound of the bytes r's entity takes on
// the wire inside a batch, where the SDK re-encodes it with encoding/json
// (which writes '<', '>', '&', U+2028 and U+2029 as 6-byte escapes).
func AuditEntitySize(r *AuditRecord) int {
	n := 320 // keys, Seq, PrevSeq, Time and JSON punctuation
	for _, s := range [...]string{r.PartitionKey, r.RowKey, r.ID, r.Actor, r.Action, r.Target, r.Outcome,
		r.Reason, r.SourceIP, r.RequestID, r.Attrs, r.Alg, r.PrevHash, r.Hash, r.Seal} {
		n += 16 + auditJSONLen(s)
	}
	return n
}

// auditJSONLen bounds the length of s as encoding/json writes it.
func auditJSONLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c < 0x20, c == '<', c == '>', c == '&':
				n += 6
			case c == '"', c == '\\':
				n += 2
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\u2028' || r == '\u2029' || r == utf8.RuneError {
			n += 6
		} else {
			n += size
		}
		i += size
	}
	return n
}

// ErrNotAuditEntity is returned (wrapped) by DecodeAudit for entities that
// are not audit events or seals.
var ErrNotAuditEntity = errors.New("tablelog: not an audit entity")

// DecodeAudit parses one audit entity as the Table service returns it
// (JSON with minimal or full metadata). Properties it does not know are
// listed in Unknown. A column of the wrong type, or a malformed Seq or
// Time, is an error wrapping ErrNotAuditEntity.
func DecodeAudit(raw []byte) (AuditRecord, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return AuditRecord{}, fmt.Errorf("%w: %v", ErrNotAuditEntity, err)
	}
	var r AuditRecord
	var bad []string
	str := func(k string, dst *string) {
		if err := json.Unmarshal(m[k], dst); err != nil {
			bad = append(bad, k)
		}
	}
	for k, v := range m {
		switch k {
		case ColPartitionKey:
			str(k, &r.PartitionKey)
		case ColRowKey:
			str(k, &r.RowKey)
		case ColTimestamp:
			r.Timestamp, _ = auditParseDateTime(v)
		case AuditColSeq:
			n, err := auditParseInt64(v)
			if err != nil {
				bad = append(bad, k)
			}
			r.Seq = n
		case AuditColPrevSeq:
			n, err := auditParseInt64(v)
			if err != nil {
				bad = append(bad, k)
			}
			r.PrevSeq = n
			r.HasPrevSeq = true
		case AuditColTime:
			t, err := auditParseDateTime(v)
			if err != nil {
				bad = append(bad, k)
			}
			r.Time = t
		case AuditColID:
			str(k, &r.ID)
		case AuditColActor:
			str(k, &r.Actor)
		case AuditColAction:
			str(k, &r.Action)
		case AuditColTarget:
			str(k, &r.Target)
		case AuditColOutcome:
			str(k, &r.Outcome)
		case AuditColReason:
			str(k, &r.Reason)
		case AuditColSourceIP:
			str(k, &r.SourceIP)
		case AuditColRequestID:
			str(k, &r.RequestID)
		case AuditColAttrs:
			str(k, &r.Attrs)
		case AuditColAlg:
			str(k, &r.Alg)
		case AuditColPrevHash:
			str(k, &r.PrevHash)
		case AuditColHash:
			str(k, &r.Hash)
		case AuditColSeal:
			str(k, &r.Seal)
		default:
			if strings.HasPrefix(k, "odata.") || strings.HasSuffix(k, "@odata.type") {
				// Metadata; types are checked through the values.
				continue
			}
			r.Unknown = append(r.Unknown, k)
		}
	}
	if r.PartitionKey == "" || r.RowKey == "" {
		return r, fmt.Errorf("%w: no PartitionKey or RowKey", ErrNotAuditEntity)
	}
	if len(bad) > 0 {
		return r, fmt.Errorf("%w: %s/%s: malformed column(s) %s", ErrNotAuditEntity, r.PartitionKey, r.RowKey, strings.Join(bad, ", "))
	}
	return r, nil
}

// auditParseInt64 reads an Edm.Int64 (a JSON string of digits) or a JSON number.
func auditParseInt64(v json.RawMessage) (int64, error) {
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return strconv.ParseInt(s, 10, 64)
	}
	var n json.Number
	if err := json.Unmarshal(v, &n); err != nil {
		return 0, err
	}
	return n.Int64()
}

// auditParseDateTime reads an Edm.DateTime in the service's text form.
func auditParseDateTime(v json.RawMessage) (time.Time, error) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}
