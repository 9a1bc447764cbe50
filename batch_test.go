package tablelog

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// The $batch body carries each Add entity's bytes exactly; the
// answers of a refused batch are reported with their own status and code.
func TestBatchBodyAndRefusals(t *testing.T) {
	entities := []string{`{"PartitionKey":"p","RowKey":"a","Msg":"x\"y\\n"}`, `{ "RowKey" : "b", "PartitionKey":"p" }`}
	var answer func(w http.ResponseWriter)
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		answer(w)
	}))
	defer srv.Close()
	c, err := NewClientWithNoCredential(srv.URL+"/acct/logs?sv=1&sig=x", nil)
	if err != nil {
		t.Fatal(err)
	}
	acts := []aztables.TransactionAction{
		{ActionType: aztables.TransactionTypeAdd, Entity: []byte(entities[0])},
		{ActionType: aztables.TransactionTypeAdd, Entity: []byte(entities[1])},
		{ActionType: aztables.TransactionTypeDelete, Entity: []byte(`{"PartitionKey":"p","RowKey":"it's"}`)},
	}
	answer = func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		io.WriteString(w, `{"odata.error":{"code":"RequestBodyTooLarge","message":{"value":"too large"}}}`)
	}
	_, err = c.SubmitTransaction(context.Background(), acts, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 413 || re.ErrorCode != "RequestBodyTooLarge" {
		t.Fatalf("413: %v", err)
	}
	for _, e := range entities {
		if !strings.Contains(body, "\r\n\r\n"+e+"\r\n--changeset_") {
			t.Fatalf("entity %s not sent as given:\n%s", e, body)
		}
	}
	if !strings.Contains(body, "DELETE "+srv.URL+"/acct/logs(PartitionKey='p',RowKey='it%27%27s') HTTP/1.1\r\n") || !strings.Contains(body, "If-Match: *\r\n") {
		t.Fatalf("delete operation:\n%s", body)
	}
	if strings.Contains(body, "sig=") {
		t.Fatal("the SAS is repeated inside the batch body")
	}
	answer = func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"odata.error":{"code":"InvalidInput","message":{"value":"bad batch"}}}`)
	}
	_, err = c.SubmitTransaction(context.Background(), acts, nil)
	if !errors.As(err, &re) || re.StatusCode != 202 || re.ErrorCode != "InvalidInput" {
		t.Fatalf("202 with a JSON error: %v", err)
	}
	if _, err := c.SubmitTransaction(context.Background(), []aztables.TransactionAction{{ActionType: aztables.TransactionTypeDelete, Entity: []byte(`{"RowKey":"x"}`)}}, nil); err == nil {
		t.Fatal("a delete without a PartitionKey was sent")
	}
}
