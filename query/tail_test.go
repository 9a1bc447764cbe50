package query

import (
	"slices"
	"testing"
	"time"

	"github.com/tablelog/tablelog/internal/azurite"
)

// Tail costs one $top query per partition touched and returns
// the last n records oldest first.
func TestTail(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	var yesterday, today []*entry
	for i := range 30 {
		yesterday = append(yesterday, &entry{Time: day0.AddDate(0, 0, -1).Add(time.Duration(i) * time.Minute), Msg: "y"})
	}
	for i := range 5 {
		today = append(today, &entry{Time: day0.Add(time.Duration(i) * time.Minute), Msg: "t"})
	}
	put(t, tbl, "tail", append(slices.Clone(yesterday), today...), 2)
	spy := &spyTable{Table: twin(t, tbl)}
	r := New(spy)
	until := day0.AddDate(0, 0, 1)

	got, err := r.Tail(t.Context(), Logs{Service: "tail", Until: until}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []*entry{today[2], today[3], today[4]}; !slices.Equal(ids(got), idsOf(want)) {
		t.Fatalf("tail 3: got %v, want %v", ids(got), idsOf(want))
	}
	if reqs := spy.dataRequests(); len(reqs) != 1 || *reqs[0].Top != 3 || spy.catalogRequests() != 0 {
		t.Fatalf("tail 3: want one $top=3 request and no catalog read, got %q", spy.filters())
	}

	spy.reset()
	got, err = r.Tail(t.Context(), Logs{Service: "tail", Until: until, Limit: 1}, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(yesterday[25:]), today...)
	if !slices.Equal(ids(got), idsOf(want)) {
		t.Fatalf("tail 10: got %v, want %v", ids(got), idsOf(want))
	}
	var tops []int32
	for _, r := range spy.dataRequests() {
		tops = append(tops, *r.Top)
	}
	if !slices.Equal(tops, []int32{10, 5}) {
		t.Fatalf("tail 10: $top per request %v, want [10 5] (one query per partition)", tops)
	}

	if got, err := r.Tail(t.Context(), Logs{Service: "tail", Until: until}, 0); got != nil || err != nil {
		t.Fatalf("tail 0: %v %v", got, err)
	}
	// Fewer records than n: everything, oldest first.
	got, err = r.Tail(t.Context(), Logs{Service: "tail", Since: day0, Until: until}, 100)
	if err != nil || !slices.Equal(ids(got), idsOf(today)) {
		t.Fatalf("tail 100 of 5: %v %v", ids(got), err)
	}
}

func idsOf(es []*entry) []ulidT {
	out := make([]ulidT, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}
