package query

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

// Services and their days from the catalog.
func TestServicesAndDays(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	r := New(twin(t, tbl))
	if s, err := r.Services(t.Context()); err != nil || len(s) != 0 {
		t.Fatalf("empty table: %v %v", s, err)
	}
	d := func(n int) time.Time { return day0.AddDate(0, 0, n) }
	putCatalog(t, tbl, "checkout", d(-3), d(-1), d(0))
	putCatalog(t, tbl, "checkout_v2", d(-2)) // a name extending another with '_'
	putCatalog(t, tbl, "billing", d(-40))
	putCatalog(t, tbl, "a.b-c", d(0))
	// A shard partition of a listed day, and keys of other shapes: ignored
	// or folded into their day.
	for _, rk := range []string{schema.ShardPartitionKey("checkout", d(0), 3), "garbage", "checkout_2025"} {
		body := `{"PartitionKey":"` + schema.CatalogPartition + `","RowKey":"` + rk + `"}`
		if _, err := tbl.AddEntity(context.Background(), []byte(body), nil); err != nil {
			t.Fatal(err)
		}
	}
	// A log record is not a catalog entry.
	put(t, tbl, "ghost", []*entry{{Time: d(0), Msg: "x"}}, 1)

	services, err := r.Services(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a.b-c", "billing", "checkout", "checkout_v2"}; !slices.Equal(services, want) {
		t.Fatalf("services %q, want %q", services, want)
	}
	days, err := r.Days(t.Context(), "checkout")
	if err != nil {
		t.Fatal(err)
	}
	if want := []time.Time{d(-3), d(-1), d(0)}; !slices.EqualFunc(days, want, time.Time.Equal) {
		t.Fatalf("days %v, want %v", days, want)
	}
	if days, err := r.Days(t.Context(), "checkout_v2"); err != nil || len(days) != 1 || !days[0].Equal(d(-2)) {
		t.Fatalf("checkout_v2 days %v %v", days, err)
	}
	if days, err := r.Days(t.Context(), "nobody"); err != nil || days != nil {
		t.Fatalf("unknown service: %v %v", days, err)
	}
	if _, err := r.Days(t.Context(), "bad/name"); err == nil {
		t.Fatal("bad service name accepted")
	}
}
