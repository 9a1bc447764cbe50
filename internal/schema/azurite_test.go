package schema_test

import (
	"bytes"
	"context"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

func TestMain(m *testing.M) { azurite.Main(m) }

// TestEntitiesRoundTripThroughAzurite writes encoded entities through the
// strict proxy (single inserts and a transaction) and reads them back with
// aztables: every type and repair must survive the service and the SDK.
func TestEntitiesRoundTripThroughAzurite(t *testing.T) {
	env := azurite.Get(t)
	tbl := env.NewTable(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ts := time.Date(2026, 11, 25, 12, 0, 0, 123456700, time.UTC)
	g := schema.NewGenerator(nil)
	pk := schema.PartitionKey("svc", ts)
	type rec struct {
		rk   string
		msg  string
		want map[string]any
	}
	long := strings.Repeat("0123456789", 7000)   // 70,000 chars: three columns
	bin := bytes.Repeat([]byte{1, 2, 3}, 30_000) // 90,000 bytes: two columns
	var recs []rec
	var e schema.Encoder
	var bodies [][]byte
	add := func(msg string, fill func(e *schema.Encoder), want map[string]any) {
		rk := schema.RowKey(g.New(ts))
		e.Reset(pk, rk)
		e.SetTime(ts)
		e.SetLevel("warn", schema.SeverityWarn)
		e.SetMessage(msg)
		fill(&e)
		bodies = append(bodies, append([]byte(nil), e.Finish()...))
		recs = append(recs, rec{rk, msg, want})
	}
	add("types", func(e *schema.Encoder) {
		e.String("user_id", "u-1")
		e.Bool("ok", false)
		e.Int64("n", math.MinInt64)
		e.Int32("i32", -5)
		e.Float64("f", 2.0)
		e.Float64("g", 1e-300)
		e.Time("at", ts)
		e.Bytes("b", []byte("hi"))
		e.Uint64("u", math.MaxUint64)
		e.Float64("inf", math.Inf(-1))
		e.String("ctl", "a\x00b\x1fc\u2028")
		e.String("bad", "x\xffy")
	}, map[string]any{"user_id": "u-1", "ok": false, "n": int64(math.MinInt64), "i32": int64(-5), "f": 2.0,
		"g": 1e-300, "at": ts, "b": []byte("hi"), "u": "18446744073709551615", "inf": "-Inf",
		"ctl": "a\x00b\x1fc\u2028", "bad": "x\uFFFDy"})
	add("names", func(e *schema.Encoder) {
		e.String("http.method", "GET")
		e.String("user-id", "u")
		e.String("1st", "first")
		e.String("PartitionKey", "pk?")
		e.String("Msg", "shadow")
		e.String("ünï code", "u")
		e.String(strings.Repeat("k", 400), "long name")
		e.OpenGroup("req")
		e.String("path", "/a")
		e.CloseGroup()
	}, map[string]any{"http.method": "GET", "user-id": "u", "1st": "first", "PartitionKey": "pk?",
		"Msg": "shadow", "ünï code": "u", strings.Repeat("k", 400): "long name", "req": map[string]any{"path": "/a"}})
	add("big", func(e *schema.Encoder) {
		e.String("long", long)
		e.Bytes("bin", bin)
	}, map[string]any{"long": long, "bin": bin})
	many := map[string]any{}
	add("many", func(e *schema.Encoder) {
		for i := 0; i < 300; i++ {
			k := "f" + strings.Repeat("_", i%2) + time.Duration(i).String()
			e.Int64(k, int64(i))
			many[k] = int64(i)
		}
	}, many)

	// The first two as single inserts, the rest in one transaction.
	for _, b := range bodies[:2] {
		if _, err := tbl.AddEntity(ctx, b, nil); err != nil {
			t.Fatalf("AddEntity: %v", err)
		}
	}
	var actions []aztables.TransactionAction
	for _, b := range bodies[2:] {
		actions = append(actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: b})
	}
	if _, err := tbl.SubmitTransaction(ctx, actions, nil); err != nil {
		t.Fatalf("SubmitTransaction: %v", err)
	}

	for _, r := range recs {
		resp, err := tbl.GetEntity(ctx, pk, r.rk, &aztables.GetEntityOptions{Format: to.Ptr(aztables.MetadataFormatFull)})
		if err != nil {
			t.Fatalf("GetEntity %s: %v", r.msg, err)
		}
		ent, err := schema.Decode(resp.Value)
		if err != nil {
			t.Fatal(err)
		}
		if ent.Msg != r.msg || ent.Level != "warn" || ent.Severity != schema.SeverityWarn || !ent.Time.Equal(ts) {
			t.Errorf("%s: system columns %q %q %d %v", r.msg, ent.Msg, ent.Level, ent.Severity, ent.Time)
		}
		if !reflect.DeepEqual(ent.Fields, r.want) {
			for k, v := range r.want {
				if !reflect.DeepEqual(ent.Fields[k], v) {
					t.Errorf("%s: field %.40q = %#.80v (%T), want %#.80v (%T)", r.msg, k, ent.Fields[k], ent.Fields[k], v, v)
				}
			}
			for k := range ent.Fields {
				if _, ok := r.want[k]; !ok {
					t.Errorf("%s: unexpected field %q", r.msg, k)
				}
			}
		}
	}

	// And through a list query, as the query package reads them.
	pager := tbl.NewListEntitiesPager(nil)
	n := 0
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range page.Entities {
			if _, err := schema.Decode(raw); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n != len(recs) {
		t.Fatalf("listed %d entities, want %d", n, len(recs))
	}
}
