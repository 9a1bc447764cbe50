package tablelog

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// A page whose body breaks off is fetched again (the read runs inside
// azcore's retry loop); continuation headers are followed; an error status
// is an *azcore.ResponseError with the service's code.
func TestPagerRetriesBrokenBodiesAndFollowsContinuations(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		page := `{"value":[{"PartitionKey":"p","RowKey":"` + strconv.Itoa(int(n)) + `"}]}`
		switch {
		case n == 1: // promises more than it sends, then hangs up
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(page[:10]))
			panic(http.ErrAbortHandler)
		case n == 2:
			if r.URL.Query().Get("NextRowKey") != "" {
				t.Errorf("first page asked with a continuation: %s", r.URL.RawQuery)
			}
			w.Header().Set("x-ms-continuation-NextPartitionKey", "p")
			w.Header().Set("x-ms-continuation-NextRowKey", "r'2")
			w.Write([]byte(page))
		case n == 3:
			if r.URL.Query().Get("NextRowKey") != "r'2" || r.URL.Query().Get("NextPartitionKey") != "p" {
				t.Errorf("continuation not sent: %s", r.URL.RawQuery)
			}
			w.Write([]byte(page))
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"odata.error":{"code":"ServerBusy","message":{"value":"busy"}}}`))
		}
	}))
	defer srv.Close()
	c, err := NewClientWithNoCredential(srv.URL+"/acct/logs?sv=1&sig=x", &ClientOptions{ClientOptions: policy.ClientOptions{
		Retry: policy.RetryOptions{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: time.Millisecond},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := c.NewListEntitiesPager(nil)
	var got []string
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entities {
			got = append(got, string(e))
		}
	}
	if len(got) != 2 || got[0] != `{"PartitionKey":"p","RowKey":"2"}` || got[1] != `{"PartitionKey":"p","RowKey":"3"}` {
		t.Fatalf("entities %q after %d requests", got, calls.Load())
	}
	_, err = c.NewListEntitiesPager(nil).NextPage(ctx)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 503 || re.ErrorCode != "ServerBusy" {
		t.Fatalf("503: %v", err)
	}
	if calls.Load() != 6 { // 1 broken + 2 pages + 3 tries of the 503
		t.Fatalf("%d requests, want 6", calls.Load())
	}
}
