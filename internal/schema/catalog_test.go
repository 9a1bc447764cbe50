package schema_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

func TestShardPartitionKeys(t *testing.T) {
	day := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	for _, svc := range []string{"a", "a_1", "check_out.v2", "x_20261125", "y_20261125_3"} {
		for _, shard := range []int{0, 1, 2, 9, 10, 99, 100, schema.MaxShard} {
			pk := schema.ShardPartitionKey(svc, day, shard)
			if got := string(schema.AppendShardPartitionKey([]byte("pre"), svc, day, shard)); got != "pre"+pk {
				t.Errorf("AppendShardPartitionKey = %q, want %q", got, "pre"+pk)
			}
			s, d, k, err := schema.ParsePartitionKey(pk)
			if err != nil || s != svc || !d.Equal(schema.Day(day)) || k != shard {
				t.Errorf("ParsePartitionKey(%q) = %q, %v, %d, %v; want %q, %d", pk, s, d, k, err, svc, shard)
			}
			if shard == 0 && pk != schema.PartitionKey(svc, day) {
				t.Errorf("shard 0 is %q, not the plain partition key", pk)
			}
		}
	}
	// Suffixes ShardPartitionKey never writes are refused, so that no
	// partition has two names (a reader would read it twice).
	for _, bad := range []string{"a_20261125_0", "a_20261125_01", "a_20261125_007", "a_20261125_1000", "a_20261125_", "a_20261125_1x"} {
		if s, _, k, err := schema.ParsePartitionKey(bad); err == nil {
			t.Errorf("ParsePartitionKey(%q) = %q shard %d, want an error", bad, s, k)
		}
	}
	for _, shard := range []int{-1, schema.MaxShard + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("ShardPartitionKey(shard %d) did not panic", shard)
				}
			}()
			schema.ShardPartitionKey("a", day, shard)
		}()
	}
}

// TestCatalogRange: the range of a service's days holds every entry of
// those days, shards included, and no entry of its other days; entries of
// other services it holds are told apart by parsing.
func TestCatalogRange(t *testing.T) {
	d := func(i int) time.Time { return time.Date(2026, 11, 20+i, 0, 0, 0, 0, time.UTC) }
	var keys []string
	for _, svc := range []string{"a", "a_1", "a_20261122", "a.b", "a-", "ab", "b"} {
		for i := range 5 {
			for _, k := range []int{0, 1, 2, 10, 11, schema.MaxShard} {
				keys = append(keys, schema.ShardPartitionKey(svc, d(i), k))
			}
		}
	}
	slices.Sort(keys) // the service's RowKey order
	for first := range 5 {
		for last := first; last < 5; last++ {
			lo, hi := schema.CatalogRange("a", d(first), d(last))
			want := 0
			got := 0
			for _, k := range keys {
				svc, day, _, err := schema.ParsePartitionKey(k)
				if err != nil {
					t.Fatal(err)
				}
				mine := svc == "a" && !day.Before(d(first)) && !day.After(d(last))
				if mine {
					want++
				}
				in := k >= lo && k < hi
				if mine && !in {
					t.Errorf("CatalogRange(a, %d, %d) = [%q, %q) misses %q", first, last, lo, hi, k)
				}
				if in && svc == "a" && !mine {
					t.Errorf("CatalogRange(a, %d, %d) = [%q, %q) holds another day's %q", first, last, lo, hi, k)
				}
				if in && svc == "a" {
					got++
				}
			}
			if got != want || want != (last-first+1)*6 {
				t.Errorf("days %d..%d: %d entries in range, want %d", first, last, got, want)
			}
		}
	}
}

func TestCatalogShardEntity(t *testing.T) {
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	if got, want := string(schema.AppendCatalogShardEntity(nil, "billing", day, 0)), string(schema.AppendCatalogEntity(nil, "billing", day)); got != want {
		t.Errorf("shard 0 entry %s, want the day's entry %s", got, want)
	}
	raw := schema.AppendCatalogShardEntity(nil, "billing", day, 12)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	want := map[string]any{"PartitionKey": schema.CatalogPartition, "RowKey": "billing_20261125_12", "Service": "billing", "Day": "20261125", "Shard": float64(12)}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Fatalf("shard entry %v, want %v", m, want)
	}
	if err := azurite.ValidateEntity(raw); err != nil {
		t.Fatalf("Azure would refuse it: %v", err)
	}
}

// TestCatalogShardEntitiesInsertOnly stores shard entries through the
// strict proxy with an add-only credential: the first insert of an entry
// wins, a second writer's insert of the same shard answers 409 (which
// writers count as success), and a reader lists every shard of a day range
// with one query.
func TestCatalogShardEntitiesInsertOnly(t *testing.T) {
	env := azurite.Get(t)
	name := azurite.TableName(env.NewTable(t))
	writerA, writerB := env.AddOnlyTable(t, name), env.AddOnlyTable(t, name)
	reader := env.Table(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	for _, k := range []int{0, 1, 2, 10} {
		if _, err := writerA.AddEntity(ctx, schema.AppendCatalogShardEntity(nil, "svc", day, k), nil); err != nil {
			t.Fatalf("shard %d: %v", k, err)
		}
		_, err := writerB.AddEntity(ctx, schema.AppendCatalogShardEntity(nil, "svc", day, k), nil)
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusConflict {
			t.Fatalf("second writer's shard %d entry: got %v, want 409", k, err)
		}
	}
	// Neighbours: the previous and next day, another service.
	for _, e := range [][]byte{
		schema.AppendCatalogShardEntity(nil, "svc", day.AddDate(0, 0, -1), 3),
		schema.AppendCatalogShardEntity(nil, "svc", day.AddDate(0, 0, 1), 0),
		schema.AppendCatalogShardEntity(nil, "svc_x", day, 1),
	} {
		if _, err := writerA.AddEntity(ctx, e, nil); err != nil {
			t.Fatal(err)
		}
	}
	lo, hi := schema.CatalogRange("svc", day, day)
	filter := fmt.Sprintf("PartitionKey eq '%s' and RowKey ge '%s' and RowKey lt '%s'", schema.CatalogPartition, lo, hi)
	page, err := reader.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter}).NextPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var shards []int
	for _, raw := range page.Entities {
		var e struct{ RowKey string }
		json.Unmarshal(raw, &e)
		svc, _, k, err := schema.ParsePartitionKey(e.RowKey)
		if err != nil {
			t.Fatalf("catalog RowKey %q: %v", e.RowKey, err)
		}
		if svc == "svc" {
			shards = append(shards, k)
		}
	}
	slices.Sort(shards)
	if !slices.Equal(shards, []int{0, 1, 2, 10}) {
		t.Fatalf("shards listed for the day: %v, want [0 1 2 10]", shards)
	}
}

// TestShardMarkers: marker RowKeys round-trip, are refused when malformed,
// and sort before every log RowKey (any time a key can carry), so that the
// first page of a day's shard 0 carries them; the marker entity names its
// day's shard-0 partition and its shard.
func TestShardMarkers(t *testing.T) {
	for _, k := range []int{1, 2, 9, 10, 15, 99, 100, schema.MaxShard} {
		rk := schema.ShardMarkerRowKey(k)
		if got, ok := schema.ParseShardMarkerRowKey(rk); !ok || got != k {
			t.Errorf("ParseShardMarkerRowKey(%q) = %d, %v", rk, got, ok)
		}
		if !schema.IsReservedRowKey(rk) {
			t.Errorf("%q is not in the reserved range", rk)
		}
	}
	for _, bad := range []string{"", "!shard_", "!shard_0", "!shard_01", "!shard_1000", "!shard_1x", "shard_1", "!Shard_1"} {
		if k, ok := schema.ParseShardMarkerRowKey(bad); ok {
			t.Errorf("ParseShardMarkerRowKey(%q) = %d, want refused", bad, k)
		}
	}
	for _, tm := range []time.Time{time.Unix(0, 0), time.Now(), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)} {
		rk := schema.RowKey(schema.NewGenerator(nil).New(tm))
		if schema.IsReservedRowKey(rk) || rk <= schema.ShardMarkerRowKey(schema.MaxShard) {
			t.Errorf("log RowKey %q (%v) does not sort after the markers", rk, tm)
		}
	}
	day := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	var m struct {
		PartitionKey, RowKey string
		Shard                int
	}
	if err := json.Unmarshal(schema.AppendShardMarkerEntity(nil, "check_out", day, 3), &m); err != nil {
		t.Fatal(err)
	}
	if m.PartitionKey != schema.PartitionKey("check_out", day) || m.RowKey != "!shard_3" || m.Shard != 3 {
		t.Errorf("marker entity %+v", m)
	}
}
