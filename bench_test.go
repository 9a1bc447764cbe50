package tablelog_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog"
)

// instantServer answers every $batch at once with a one-part success
// response and every query with a page of n entities.
func instantServer(b *testing.B, page string) string {
	const ok = "--batchresponse_i\r\nContent-Type: multipart/mixed; boundary=changesetresponse_i\r\n\r\n" +
		"--changesetresponse_i\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n" +
		"HTTP/1.1 204 No Content\r\n\r\n\r\n--changesetresponse_i--\r\n--batchresponse_i--\r\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if strings.HasSuffix(r.URL.Path, "/$batch") {
			w.Header().Set("Content-Type", "multipart/mixed; boundary=batchresponse_i")
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, ok)
			return
		}
		w.Header().Set("Content-Type", "application/json;odata=minimalmetadata")
		_, _ = io.WriteString(w, page)
	}))
	b.Cleanup(srv.Close)
	return "AccountName=devstoreaccount1;AccountKey=" + tablelog.DevelopmentAccountKey + ";TableEndpoint=" + srv.URL + "/devstoreaccount1"
}

func benchClients(b *testing.B, cs string) map[string]interface {
	SubmitTransaction(context.Context, []aztables.TransactionAction, *aztables.SubmitTransactionOptions) (aztables.TransactionResponse, error)
	NewListEntitiesPager(*aztables.ListEntitiesOptions) *runtimePager
} {
	tl, err := tablelog.NewClientFromConnectionString(cs, "logs", nil)
	if err != nil {
		b.Fatal(err)
	}
	svc, err := aztables.NewServiceClientFromConnectionString(cs, nil)
	if err != nil {
		b.Fatal(err)
	}
	return map[string]interface {
		SubmitTransaction(context.Context, []aztables.TransactionAction, *aztables.SubmitTransactionOptions) (aztables.TransactionResponse, error)
		NewListEntitiesPager(*aztables.ListEntitiesOptions) *runtimePager
	}{"tablelog.Client": tl, "aztables.Client": svc.NewClient("logs")}
}

const benchEntity = `{"PartitionKey":"checkout_20261206","RowKey":"7ZZZZZZZZZZZZZZZZZZZZZZZZ%d","Time@odata.type":"Edm.DateTime","Time":"2026-12-06T03:04:05.1234567Z","Level":"info","Severity":0,"Msg":"request handled","user":"alice@example.com","method":"GET","path":"/api/v1/orders/12345","elapsed@odata.type":"Edm.Int64","elapsed":"1234567","cached":true,"ratio":0.8125}`

// BenchmarkSubmitTransaction: one 100-entity transaction to an instant
// in-process endpoint, per client (the endpoint's CPU is included).
func BenchmarkSubmitTransaction(b *testing.B) {
	cs := instantServer(b, "")
	acts := make([]aztables.TransactionAction, 100)
	for i := range acts {
		acts[i] = aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: []byte(fmt.Sprintf(benchEntity, i%10))}
	}
	for _, name := range []string{"tablelog.Client", "aztables.Client"} {
		b.Run(name, func(b *testing.B) {
			c := benchClients(b, cs)[name]
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.SubmitTransaction(context.Background(), acts, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/entity")
		})
	}
}

// BenchmarkQueryPage: one 1,000-entity query page from an instant
// in-process endpoint, per client.
func BenchmarkQueryPage(b *testing.B) {
	var page strings.Builder
	page.WriteString(`{"odata.metadata":"http://x/$metadata#logs","value":[`)
	for i := range 1000 {
		if i > 0 {
			page.WriteByte(',')
		}
		fmt.Fprintf(&page, benchEntity, i%10)
	}
	page.WriteString("]}")
	cs := instantServer(b, page.String())
	for _, name := range []string{"tablelog.Client", "aztables.Client"} {
		b.Run(name, func(b *testing.B) {
			c := benchClients(b, cs)[name]
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.NewListEntitiesPager(nil).NextPage(context.Background())
				if err != nil || len(resp.Entities) != 1000 {
					b.Fatal(err, len(resp.Entities))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/entity")
		})
	}
}
