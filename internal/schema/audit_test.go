package schema

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"sort"
	"testing"
	"time"
)

func TestAuditRowKeyOrder(t *testing.T) {
	seqs := []int64{1, 2, 9, 10, 11, 99, 100, 1 << 32, math.MaxInt64 - 1, math.MaxInt64}
	var keys []string
	for _, s := range seqs {
		rk := AuditRowKey(s)
		if len(rk) != AuditRowKeyLen {
			t.Fatalf("AuditRowKey(%d) = %q: length %d", s, rk, len(rk))
		}
		got, err := ParseAuditRowKey(rk)
		if err != nil || got != s {
			t.Fatalf("ParseAuditRowKey(%q) = %d, %v; want %d", rk, got, err, s)
		}
		keys = append(keys, rk)
	}
	// Ascending keys are descending seqs.
	if !sort.SliceIsSorted(keys, func(i, j int) bool { return keys[i] > keys[j] }) {
		t.Fatalf("keys not in descending order: %q", keys)
	}
	for _, bad := range []string{"", "123", "922337203685477580a", "9223372036854775807", "99999999999999999999", AuditRowKey(5) + "0"} {
		if _, err := ParseAuditRowKey(bad); err == nil {
			t.Errorf("ParseAuditRowKey(%q) succeeded", bad)
		}
	}
}

func TestAuditEntityRoundTrip(t *testing.T) {
	r := AuditRecord{
		PartitionKey: "billing_20261125",
		RowKey:       AuditRowKey(42),
		Seq:          42,
		PrevSeq:      40,
		HasPrevSeq:   true,
		ID:           "01JD0000000000000000000000",
		Time:         time.Date(2026, 11, 25, 10, 11, 12, 123456700, time.UTC),
		Actor:        "alice \"the admin\"",
		Action:       "invoice.delete",
		Target:       "inv-42 <&>",
		Outcome:      "success",
		Reason:       "line1\nline2\t\u2028 é 😀",
		SourceIP:     "203.0.113.7",
		RequestID:    "req-1",
		Attrs:        `{"amount":120}`,
		Alg:          AuditAlgSHA256,
		PrevHash:     "00",
		Hash:         "ff",
	}
	raw := AppendAuditEntity(nil, &r)
	if !json.Valid(raw) {
		t.Fatalf("invalid JSON: %s", raw)
	}
	if n := AuditEntitySize(&r); n < len(raw) {
		t.Fatalf("AuditEntitySize = %d < %d", n, len(raw))
	}
	// Through encoding/json as the SDK's batch path does.
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(m)
	if n := AuditEntitySize(&r); n < len(again) {
		t.Fatalf("AuditEntitySize = %d < %d after re-encoding", n, len(again))
	}
	for _, in := range [][]byte{raw, again} {
		got, err := DecodeAudit(in)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
	}
	seal := AuditRecord{PartitionKey: "billing_20261124", RowKey: AuditRowKey(43), Seq: 43, Time: r.Time, Seal: "20261125"}
	got, err := DecodeAudit(AppendAuditEntity(nil, &seal))
	if err != nil || !got.IsSeal() || got.Seal != "20261125" || got.Seq != 43 {
		t.Fatalf("seal round trip: %+v, %v", got, err)
	}
}

func TestDecodeAuditMetadataAndUnknown(t *testing.T) {
	raw := []byte(`{"odata.metadata":"x","odata.etag":"W/\"1\"","PartitionKey":"s_20260101","RowKey":"` + AuditRowKey(1) + `",
		"Timestamp@odata.type":"Edm.DateTime","Timestamp":"2026-01-01T00:00:00.1234567Z",
		"Seq@odata.type":"Edm.Int64","Seq":"1","Time@odata.type":"Edm.DateTime","Time":"2026-01-01T00:00:00Z","Actor":"a","Extra":"x"}`)
	r, err := DecodeAudit(raw)
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq != 1 || r.Actor != "a" || !reflect.DeepEqual(r.Unknown, []string{"Extra"}) || r.Timestamp.IsZero() {
		t.Fatalf("got %+v", r)
	}
	// Seq as a plain JSON number (Edm.Int32) still decodes.
	r, err = DecodeAudit([]byte(`{"PartitionKey":"p","RowKey":"r","Seq":7}`))
	if err != nil || r.Seq != 7 {
		t.Fatalf("got %+v, %v", r, err)
	}
	for _, bad := range []string{`[]`, `{"RowKey":"r"}`, `{"PartitionKey":"p","RowKey":"r","Seq":"x"}`, `{"PartitionKey":"p","RowKey":"r","Actor":5}`, `{"PartitionKey":"p","RowKey":"r","Time":"yesterday"}`} {
		if _, err := DecodeAudit([]byte(bad)); !errors.Is(err, ErrNotAuditEntity) {
			t.Errorf("DecodeAudit(%s) = %v; want ErrNotAuditEntity", bad, err)
		}
	}
}

func TestAuditCatalogEntities(t *testing.T) {
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	var m map[string]string
	if err := json.Unmarshal(AppendCatalogEntity(nil, "billing", day), &m); err != nil {
		t.Fatal(err)
	}
	if m["PartitionKey"] != CatalogPartition || m["RowKey"] != "billing_20261125" || m["Service"] != "billing" || m["Day"] != "20261125" {
		t.Fatalf("catalog entity %v", m)
	}
	rk := AuditGenesisRowKey("billing", 7)
	g := AppendAuditCatalogEntity(nil, rk, "billing", day, "ab12")
	if err := json.Unmarshal(g, &m); err != nil || m["RowKey"] != "billing~genesis~0000000007" || m["Mac"] != "ab12" {
		t.Fatalf("genesis entity %v %v", m, err)
	}
	if _, _, _, err := ParsePartitionKey(m["RowKey"]); err == nil {
		t.Fatal("the genesis RowKey parses as a partition key")
	}
	if n, ok := ParseAuditGenesisRowKey("billing", rk); !ok || n != 7 {
		t.Fatalf("ParseAuditGenesisRowKey = %d, %v", n, ok)
	}
	for _, bad := range []string{"billing~genesis", "billing~genesis~12", "bill~genesis~0000000007", "billing~genesis~-000000007"} {
		if _, ok := ParseAuditGenesisRowKey("billing", bad); ok {
			t.Errorf("ParseAuditGenesisRowKey(%q) accepted", bad)
		}
	}
	c, err := ParseAuditCatalog(g)
	if err != nil || c.Day != "20261125" || c.Service != "billing" || c.Mac != "ab12" || c.RowKey != rk {
		t.Fatalf("ParseAuditCatalog = %+v, %v", c, err)
	}
	if _, err := ParseAuditCatalog([]byte(`[]`)); !errors.Is(err, ErrNotAuditEntity) {
		t.Fatal(err)
	}
}
