package sink

import (
	"sort"
	"testing"
	"time"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The first write of a process into a service/day partition
// records the pair in the catalog partition; a second process finds it
// there ("already exists" is success).
func TestCatalog(t *testing.T) {
	tbl := azurite.Get(t).NewTable(t)
	day1 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	day2 := day1.Add(24 * time.Hour)
	write := func(service string, days ...time.Time) *Sink {
		s, errs := newSink(t, tbl, Options{Service: service})
		for _, d := range days {
			l := zap.New(s.Core(zapcore.InfoLevel), zap.WithClock(&stepClock{t: d, step: time.Millisecond}))
			for range 3 {
				l.Info("m")
			}
		}
		if err := s.Flush(ctxT(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		if len(errs.all()) != 0 {
			t.Fatalf("errors: %v", errs.all())
		}
		return s
	}
	a := write("checkout", day1, day2)
	b := write("checkout", day2) // another process, same partition
	write("billing", day2)
	if a.Stats().CatalogWrites != 2 || b.Stats().CatalogWrites != 1 {
		t.Errorf("catalog writes: %d, %d", a.Stats().CatalogWrites, b.Stats().CatalogWrites)
	}
	logs, catalog := readAll(t, tbl)
	if len(logs) != 12 {
		t.Errorf("%d log entities", len(logs))
	}
	var rks []string
	for _, c := range catalog {
		rk := c["RowKey"].(string)
		rks = append(rks, rk)
		service, day, _, err := schema.ParsePartitionKey(rk)
		if err != nil || c[schema.CatalogColService] != service || c[schema.CatalogColDay] != day.Format(schema.DayLayout) {
			t.Errorf("catalog entity %v (%v)", c, err)
		}
	}
	sort.Strings(rks)
	want := []string{"billing_20261125", "checkout_20261124", "checkout_20261125"}
	if len(rks) != len(want) || rks[0] != want[0] || rks[1] != want[1] || rks[2] != want[2] {
		t.Errorf("catalog %v, want %v", rks, want)
	}
}
