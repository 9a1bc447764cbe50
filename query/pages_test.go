package query

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog"
	"github.com/tablelog/tablelog/internal/azurite"
)

// *tablelog.Client reads pages into reused memory (see pages).
var _ pageLister = (*tablelog.Client)(nil)

// memorySpy passes reads on to a pageLister and notes the memory of every
// page that holds entities.
type memorySpy struct {
	Table
	mu   sync.Mutex
	mems []*byte // the memory of each page with entities, in order
}

func (s *memorySpy) ListEntitiesPage(ctx context.Context, o *aztables.ListEntitiesOptions, buf []byte) (aztables.ListEntitiesResponse, []byte, error) {
	resp, mem, err := s.Table.(pageLister).ListEntitiesPage(ctx, o, buf)
	if err == nil && len(resp.Entities) > 0 {
		s.mu.Lock()
		s.mems = append(s.mems, unsafe.SliceData(mem))
		s.mu.Unlock()
	}
	return resp, mem, err
}

// Records read from pages that share memory stay intact after the memory
// is overwritten by later pages: every record of a multi-page read,
// checked after the whole read, holds what was written.
func TestLogsReusedPageMemory(t *testing.T) {
	t.Parallel()
	tbl := azurite.Get(t).NewTable(t)
	const n = 2600 // three pages
	base := day0.Add(9 * time.Hour)
	es := make([]*entry, n)
	want := map[string]*entry{}
	for i := range es {
		// Lengths vary, so that a later page's bytes differ from an
		// earlier page's at the same place.
		letter := string(rune('a' + i%26))
		es[i] = &entry{
			Time: base.Add(time.Duration(i) * time.Millisecond),
			Msg:  fmt.Sprintf("message %d %s", i, strings.Repeat(letter, i%50)),
			Fields: map[string]any{
				"i":    int64(i),
				"text": strings.Repeat(strings.ToUpper(letter), i%37),
				"odd":  i%2 == 1,
			},
			Groups: map[string]map[string]any{"req": {"path": fmt.Sprintf("/v1/%d", i*7)}},
		}
	}
	put(t, tbl, "reuse", es, 8)
	for _, e := range es {
		want[e.ID.String()] = e
	}
	spy := &memorySpy{Table: twin(t, tbl)}
	if _, ok := spy.Table.(pageLister); !ok {
		t.Fatal("the twin does not read pages into reused memory")
	}
	got := collect(t, New(spy).Logs(t.Context(), Logs{Service: "reuse", Since: base, Until: base.Add(time.Hour)}))
	if len(got) != n {
		t.Fatalf("%d records, want %d", len(got), n)
	}
	for _, rec := range got {
		e := want[rec.ID.String()]
		if e == nil {
			t.Fatalf("unexpected record %v", rec.ID)
		}
		delete(want, rec.ID.String())
		wantFields := map[string]any{"i": e.Fields["i"], "text": e.Fields["text"], "odd": e.Fields["odd"], "req": map[string]any{"path": e.Groups["req"]["path"]}}
		if rec.Message != e.Msg || !rec.Time.Equal(e.Time) || rec.Level != "info" || rec.Service != "reuse" || fmt.Sprint(rec.Fields) != fmt.Sprint(wantFields) {
			t.Fatalf("record %v:\n got %q %v %v\nwant %q %v %v", rec.ID, rec.Message, rec.Time, rec.Fields, e.Msg, e.Time, wantFields)
		}
	}
	spy.mu.Lock()
	mems := slices.Clone(spy.mems)
	spy.mu.Unlock()
	distinct := len(slices.Compact(slices.Clone(mems)))
	if len(mems) < 3 || distinct == len(mems) {
		t.Fatalf("%d pages in %d distinct memories: no memory was reused", len(mems), distinct)
	}
}
