package auditlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/schema"
)

var testKey = []byte("0123456789abcdef-test-key")

// trail writes n events with key (nil: SHA-256) over two days (the first
// half on day 1) and returns the table, a direct client for tampering, and
// the head.
func trail(t *testing.T, n int, key []byte) (*aztables.Client, *aztables.Client, Head) {
	t.Helper()
	tbl := env(t).NewTable(t)
	var clock atomic.Int64
	day1 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	clock.Store(day1.UnixNano())
	w := newWriter(t, tbl, Options{Key: key, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	record(t, w, n/2, 1, ev)
	clock.Store(day1.Add(24 * time.Hour).UnixNano())
	record(t, w, n-n/2, 1, ev)
	rep := verify(t, tbl, VerifyOptions{Key: key})
	if !rep.OK() || rep.Checked != n || rep.Head.Seq != int64(n) {
		t.Fatalf("untouched trail: %+v", rep)
	}
	return tbl, env(t).DirectTable(t, tableName(t, tbl)), rep.Head
}

// pkOf returns the partition holding seq in a trail of n events.
func pkOf(seq int64, n int) string {
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	if seq > int64(n/2) {
		day = day.AddDate(0, 0, 1)
	}
	return schema.PartitionKey("billing", day)
}

func get(t *testing.T, c *aztables.Client, pk string, seq int64) schema.AuditRecord {
	t.Helper()
	resp, err := c.GetEntity(context.Background(), pk, schema.AuditRowKey(seq), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := schema.DecodeAudit(resp.Value)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func put(t *testing.T, c *aztables.Client, r schema.AuditRecord) {
	t.Helper()
	mode := aztables.UpdateModeReplace
	if _, err := c.UpsertEntity(context.Background(), schema.AppendAuditEntity(nil, &r), &aztables.UpsertEntityOptions{UpdateMode: mode}); err != nil {
		t.Fatal(err)
	}
}

func del(t *testing.T, c *aztables.Client, pk, rk string) {
	t.Helper()
	if _, err := c.DeleteEntity(context.Background(), pk, rk, nil); err != nil {
		t.Fatal(err)
	}
}

// rehash re-chains events from..to (inclusive) with key (nil: plain
// SHA-256), as an attacker holding the wrong key would after editing.
func rehash(t *testing.T, c *aztables.Client, n int, from, to int64, key []byte, edit func(*schema.AuditRecord)) {
	t.Helper()
	h := newHasher(key)
	var prev Hash
	if from > 1 {
		prev, _ = ParseHash(get(t, c, pkOf(from-1, n), from-1).Hash)
	}
	for s := from; s <= to; s++ {
		r := get(t, c, pkOf(s, n), s)
		if edit != nil && s == from {
			edit(&r)
		}
		r.Alg = h.alg()
		r.PrevHash = prev.String()
		prev = h.sum("billing", &r, prev, true)
		r.Hash = prev.String()
		r.Timestamp, r.Unknown = time.Time{}, nil
		put(t, c, r)
	}
}

// kinds renders breaks as "kind@seq" for comparison.
func kinds(bs []Break) string {
	var s []string
	for _, b := range bs {
		if b.Count > 1 {
			s = append(s, fmt.Sprintf("%s@%d+%d", b.Kind, b.Seq, b.Count))
		} else {
			s = append(s, fmt.Sprintf("%s@%d", b.Kind, b.Seq))
		}
	}
	return strings.Join(s, " ")
}

// Every kind of tampering, done straight to Azurite, is
// detected and located.
func TestVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	const n = 40 // seqs 1..20 on day 1, 21..40 on day 2
	wrongKey := []byte("not-the-right-key-at-all")
	cases := []struct {
		name   string
		key    []byte // the trail's key
		tamper func(t *testing.T, c *aztables.Client)
		opts   func(head Head) VerifyOptions
		want   string
	}{
		{name: "modify a field", key: testKey, want: "modified@7",
			tamper: func(t *testing.T, c *aztables.Client) {
				r := get(t, c, pkOf(7, n), 7)
				r.Actor = "mallory"
				put(t, c, r)
			}},
		{name: "modify a field, no key", want: "modified@25",
			tamper: func(t *testing.T, c *aztables.Client) {
				r := get(t, c, pkOf(25, n), 25)
				r.Outcome = "failure"
				put(t, c, r)
			}},
		{name: "modify the newest event, vouched by the expected head", key: testKey, want: "modified@40",
			tamper: func(t *testing.T, c *aztables.Client) {
				r := get(t, c, pkOf(40, n), 40)
				r.Reason = "edited"
				put(t, c, r)
			},
			opts: func(h Head) VerifyOptions { return VerifyOptions{ExpectedHead: h} }},
		{name: "add a column", key: testKey, want: "modified@3",
			tamper: func(t *testing.T, c *aztables.Client) {
				r := get(t, c, pkOf(3, n), 3)
				raw := schema.AppendAuditEntity(nil, &r)
				raw = append(raw[:len(raw)-1], `,"Approved":"yes"}`...)
				if _, err := c.UpsertEntity(context.Background(), raw, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace}); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "delete an event", key: testKey, want: "deleted@12",
			tamper: func(t *testing.T, c *aztables.Client) { del(t, c, pkOf(12, n), schema.AuditRowKey(12)) }},
		{name: "delete three events across the day boundary", key: testKey, want: "deleted@20+3",
			tamper: func(t *testing.T, c *aztables.Client) {
				for s := int64(20); s <= 22; s++ {
					del(t, c, pkOf(s, n), schema.AuditRowKey(s))
				}
			}},
		{name: "delete the first event", key: testKey, want: "deleted@1",
			tamper: func(t *testing.T, c *aztables.Client) { del(t, c, pkOf(1, n), schema.AuditRowKey(1)) }},
		{name: "delete a whole day and its catalog entry", key: testKey, want: "deleted@1+20",
			tamper: func(t *testing.T, c *aztables.Client) {
				for s := int64(1); s <= 21; s++ { // 21: the seal
					del(t, c, pkOf(1, n), schema.AuditRowKey(s))
				}
				del(t, c, schema.CatalogPartition, pkOf(1, n))
			}},
		{name: "insert a forged event between two", key: testKey, want: "inserted@10",
			tamper: func(t *testing.T, c *aztables.Client) {
				r := get(t, c, pkOf(10, n), 10)
				r.RowKey += "5" // sorts between slots 10 and 9
				r.Actor = "mallory"
				put(t, c, r)
			}},
		{name: "append a forged event with the wrong key", key: testKey, want: "forged@41",
			tamper: func(t *testing.T, c *aztables.Client) {
				r := get(t, c, pkOf(40, n), 40)
				prev, _ := ParseHash(r.Hash)
				r.Seq, r.RowKey, r.ID, r.Actor = 41, schema.AuditRowKey(41), "01JDXXXXXXXXXXXXXXXXXXXXXX", "mallory"
				r.PrevHash = prev.String()
				r.Hash = newHasher(wrongKey).sum("billing", &r, prev, true).String()
				put(t, c, r)
			}},
		{name: "copy an event into another day", key: testKey, want: "inserted@5",
			tamper: func(t *testing.T, c *aztables.Client) {
				r := get(t, c, pkOf(5, n), 5)
				r.PartitionKey = pkOf(30, n)
				put(t, c, r)
			}},
		{name: "swap two events", key: testKey, want: "reordered@14 reordered@15",
			tamper: func(t *testing.T, c *aztables.Client) {
				a, b := get(t, c, pkOf(14, n), 14), get(t, c, pkOf(15, n), 15)
				a.RowKey, b.RowKey = b.RowKey, a.RowKey
				put(t, c, a)
				put(t, c, b)
			}},
		{name: "re-hash with the wrong key", key: testKey, want: "forged@33 forged@34 forged@35 forged@36 forged@37 forged@38 forged@39 forged@40",
			tamper: func(t *testing.T, c *aztables.Client) {
				rehash(t, c, n, 33, 40, wrongKey, func(r *schema.AuditRecord) { r.Target = "inv-0" })
			}},
		{name: "re-hash without the key", key: testKey, want: "forged@39 forged@40",
			tamper: func(t *testing.T, c *aztables.Client) {
				rehash(t, c, n, 39, 40, nil, func(r *schema.AuditRecord) { r.Target = "inv-0" })
			}},
		{name: "re-hash a keyless trail, caught by the expected head", want: "modified@40",
			tamper: func(t *testing.T, c *aztables.Client) {
				rehash(t, c, n, 30, 40, nil, func(r *schema.AuditRecord) { r.Actor = "mallory" })
			},
			opts: func(h Head) VerifyOptions { return VerifyOptions{ExpectedHead: h} }},
		{name: "drop the tail", key: testKey, want: "truncated@38+3",
			tamper: func(t *testing.T, c *aztables.Client) {
				for s := int64(38); s <= 40; s++ {
					del(t, c, pkOf(s, n), schema.AuditRowKey(s))
				}
			},
			opts: func(h Head) VerifyOptions { return VerifyOptions{ExpectedHead: h} }},
		{name: "drop the whole newest day", key: testKey, want: "truncated@21+20",
			tamper: func(t *testing.T, c *aztables.Client) {
				for s := int64(21); s <= 40; s++ {
					del(t, c, pkOf(s, n), schema.AuditRowKey(s))
				}
			},
			opts: func(h Head) VerifyOptions { return VerifyOptions{ExpectedHead: h} }},
		{name: "delete the first event of a verified range", key: testKey, want: "deleted@21",
			tamper: func(t *testing.T, c *aztables.Client) { del(t, c, pkOf(21, n), schema.AuditRowKey(21)) },
			opts: func(Head) VerifyOptions {
				return VerifyOptions{Since: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tbl, direct, head := trail(t, n, tc.key)
			tc.tamper(t, direct)
			o := VerifyOptions{}
			if tc.opts != nil {
				o = tc.opts(head)
			}
			o.Key = tc.key
			rep := verify(t, tbl, o)
			if got := kinds(rep.Breaks); got != tc.want {
				t.Errorf("breaks %q; want %q", got, tc.want)
				for _, b := range rep.Breaks {
					t.Log(b)
				}
			}
		})
	}
}

// Without the expected head a dropped tail is invisible (the head moves
// back); with it, it is Truncated. Without a key, a consistently re-hashed
// chain verifies, which is why the head must be recorded elsewhere.
func TestVerifyReportsHeadAndKeyRequired(t *testing.T) {
	t.Parallel()
	tbl, direct, head := trail(t, 10, testKey)
	if head.Seq != 10 || head.Hash.IsZero() || head.Day != time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC) {
		t.Fatalf("head %+v", head)
	}
	_, err := Verify(context.Background(), twinRead(t, tbl), VerifyOptions{Service: "billing"})
	if !errors.Is(err, ErrKeyRequired) {
		t.Fatalf("Verify without the key: %v", err)
	}
	del(t, direct, pkOf(10, 10), schema.AuditRowKey(10))
	rep := verify(t, tbl, VerifyOptions{Key: testKey})
	if !rep.OK() || rep.Head.Seq != 9 {
		t.Fatalf("without expected head: %+v", rep)
	}
	// Until in the past: the expected head is beyond the range, not a
	// truncation.
	rep = verify(t, tbl, VerifyOptions{Key: testKey, ExpectedHead: head, Until: time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)})
	if !rep.OK() || rep.Checked != 5 {
		t.Fatalf("day 1 only: %+v", rep)
	}
	// A trail that does not exist, with an expected head, is truncated
	// entirely.
	rep = verify(t, tbl, VerifyOptions{Service: "other", ExpectedHead: head})
	if kinds(rep.Breaks) != "truncated@1+10" {
		t.Fatalf("empty trail: %v", rep.Breaks)
	}
}

func TestVerifyMaxBreaks(t *testing.T) {
	t.Parallel()
	tbl, direct, _ := trail(t, 10, nil)
	for s := int64(2); s <= 9; s += 2 {
		r := get(t, direct, pkOf(s, 10), s)
		r.Actor = "x"
		put(t, direct, r)
	}
	rep := verify(t, tbl, VerifyOptions{MaxBreaks: 2})
	if len(rep.Breaks) != 2 || rep.Omitted != 2 || rep.OK() {
		t.Fatalf("%+v", rep)
	}
}
