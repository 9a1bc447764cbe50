package tablelog

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// pageServer serves three pages of a query: entities "<page>-<i>" whose
// padding makes page 3 larger than pages 1 and 2 together.
func pageServer(t *testing.T) *httptest.Server {
	t.Helper()
	sizes := map[string]int{"": 40, "2": 10, "3": 400}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page := r.URL.Query().Get("NextRowKey")
		n, ok := sizes[page]
		if !ok {
			t.Errorf("unexpected request %s", r.URL.RawQuery)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if page == "" {
			page = "1"
		}
		var b strings.Builder
		b.WriteString(`{"odata.metadata":"x","value":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(pageEntity(page, i))
		}
		b.WriteString(`]}`)
		switch page {
		case "1":
			w.Header().Set("x-ms-continuation-NextPartitionKey", "p")
			w.Header().Set("x-ms-continuation-NextRowKey", "2")
		case "2":
			w.Header().Set("x-ms-continuation-NextPartitionKey", "p")
			w.Header().Set("x-ms-continuation-NextRowKey", "3")
		}
		w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
		w.Write([]byte(b.String()))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func pageEntity(page string, i int) string {
	return fmt.Sprintf(`{"PartitionKey":"p","RowKey":"%s-%04d","Pad":"%s"}`, page, i, strings.Repeat(page, i%7))
}

func checkPage(t *testing.T, name, page string, n int, got aztables.ListEntitiesResponse) {
	t.Helper()
	if len(got.Entities) != n {
		t.Fatalf("%s: %d entities, want %d", name, len(got.Entities), n)
	}
	for i, e := range got.Entities {
		if want := pageEntity(page, i); string(e) != want {
			t.Fatalf("%s: entity %d = %s, want %s", name, i, e, want)
		}
	}
}

// ListEntitiesPage reads each page into the memory it is given when that
// has room (new memory otherwise), follows continuations like the pager,
// and leaves the pager's contract alone: the pager's entities stay valid
// after later pages.
func TestListEntitiesPageReusesMemory(t *testing.T) {
	srv := pageServer(t)
	c, err := NewClientWithNoCredential(srv.URL+"/acct/logs?sv=1&sig=x", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var o aztables.ListEntitiesOptions
	p1, mem1, err := c.ListEntitiesPage(ctx, &o, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, "page 1", "1", 40, p1)
	if len(mem1) == 0 || unsafe.SliceData(p1.Entities[0]) != unsafe.SliceData(mem1[len(`{"odata.metadata":"x","value":[`):]) {
		t.Fatal("page 1's entities are not slices of the returned memory")
	}
	o.NextPartitionKey, o.NextRowKey = p1.NextPartitionKey, p1.NextRowKey
	p2, mem2, err := c.ListEntitiesPage(ctx, &o, mem1)
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, "page 2", "2", 10, p2)
	if unsafe.SliceData(mem2) != unsafe.SliceData(mem1) {
		t.Fatal("page 2 (smaller than page 1) was not read into page 1's memory")
	}
	if *p2.NextRowKey != "3" {
		t.Fatalf("page 2's continuation %q", *p2.NextRowKey)
	}
	o.NextPartitionKey, o.NextRowKey = p2.NextPartitionKey, p2.NextRowKey
	p3, mem3, err := c.ListEntitiesPage(ctx, &o, mem2)
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, "page 3", "3", 400, p3)
	if cap(mem3) <= cap(mem2) || !empty(p3.NextPartitionKey) || !empty(p3.NextRowKey) {
		t.Fatalf("page 3: memory of %d bytes (had %d), continuation %v/%v", cap(mem3), cap(mem2), p3.NextPartitionKey, p3.NextRowKey)
	}

	// The pager hands out memory of its own per page.
	pager := c.NewListEntitiesPager(nil)
	var pages []aztables.ListEntitiesResponse
	for pager.More() {
		p, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, p)
	}
	if len(pages) != 3 {
		t.Fatalf("pager: %d pages", len(pages))
	}
	for i, n := range []int{40, 10, 400} {
		checkPage(t, "pager page "+strconv.Itoa(i+1), strconv.Itoa(i+1), n, pages[i])
	}
}

// strBytewise is scanner.str one byte at a time (as it was before it
// learnt to skip eight bytes at a time); it returns the end index too.
func strBytewise(b []byte) (start, end, next int, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return 0, 0, 0, false
	}
	for i := 1; i < len(b); {
		switch c := b[i]; {
		case c == '\\':
			i += 2
		case c == '"':
			return 1, i, i + 1, true
		case c < 0x20:
			return 0, 0, 0, false
		default:
			i++
		}
	}
	return 0, 0, 0, false
}

// The page scan's strings end where the bytewise scan's do, whatever the
// place of the quote, escape or control character in an eight-byte word.
func TestScannerStrEveryPosition(t *testing.T) {
	specials := []string{`"`, `\"`, `\\`, `\`, "\x00", "\x1f", " ", "\x7f", "é", "\xff", "~"}
	for n := 0; n <= 20; n++ {
		for p := 0; p <= n; p++ {
			for _, sp := range specials {
				for _, sp2 := range []string{"", `"`, `\"`, "\x01"} {
					body := strings.Repeat("a", p) + sp + strings.Repeat("b", n-p) + sp2
					for _, tail := range []string{`"`, `"` + strings.Repeat("c", 9), ""} {
						b := []byte(`"` + body + tail)
						s := scanner{b: b}
						start, end, ok := s.str()
						ws, we, wn, wok := strBytewise(b)
						if ok != wok || ok && (start != ws || end != we || s.i != wn) {
							t.Fatalf("str(%q) = %d, %d, %v (next %d); want %d, %d, %v (next %d)", b, start, end, ok, s.i, ws, we, wok, wn)
						}
					}
				}
			}
		}
	}
}

// BenchmarkSplitValue splits a page of 1,000 entities as Azurite sends
// them for BenchmarkLogsRead (internal/schema's azuriteEntity).
func BenchmarkSplitValue(b *testing.B) {
	const entity = `{"odata.etag":"W/\"datetime'2026-12-06T20%3A19%3A40.9622165Z'\"","PartitionKey":"bench-read_20261206","RowKey":"7YBPSK7JTXTVR9AZR4N8A4ZVFG","Time@odata.type":"Edm.DateTime","Time":"2026-12-06T19:19:40.9621058Z","Level":"info","Severity":0,"Msg":"request handled","user_id":"u-345","path":"/api/v1/orders","status@odata.type":"Edm.Int64","status":"200","elapsed@odata.type":"Edm.Int64","elapsed":"12345000","cached":true,"Timestamp":"2026-12-06T20:19:40.9622165Z"}`
	body := []byte(`{"odata.metadata":"x","value":[` + strings.TrimSuffix(strings.Repeat(entity+",", 1000), ",") + `]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if ents, err := splitValue(body); err != nil || len(ents) != 1000 {
			b.Fatal(len(ents), err)
		}
	}
}
