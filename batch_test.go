package tablelog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
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

// raceEnabled is set by race_test.go in a -race build.
var raceEnabled bool

// A transaction's body is written from the connection's write buffer: no
// per-request copy buffer (net/http allocates 32 KiB for a body it does not
// know to be in memory), and the client's batch buffer is reused after a
// 202. The whole round trip, the test server's side included, allocates
// well under 32 KiB for a 100-entity, ~90 KB transaction.
func TestBatchWriteAllocations(t *testing.T) {
	// The response as Azure and Azurite give it: one part per operation,
	// each with its Location, DataServiceId and ETag (about 600 bytes),
	// streamed without a Content-Length.
	var resp strings.Builder
	resp.WriteString("--batchresponse_i\r\nContent-Type: multipart/mixed; boundary=changesetresponse_i\r\n\r\n")
	for i := range 100 {
		loc := fmt.Sprintf("http://127.0.0.1:10002/devstoreaccount1/logs(PartitionKey='svc_20261206',RowKey='7YBPS36A0083GXW8DA4XQR7%03d')", i)
		resp.WriteString("--changesetresponse_i\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n" +
			"HTTP/1.1 204 No Content\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\nDataServiceVersion: 3.0;\r\n" +
			"Location: " + loc + "\r\nDataServiceId: " + loc + "\r\nETag: W/\"datetime'2026-12-06T23%3A00%3A00.1234567Z'\"\r\n" +
			"Preference-Applied: return-no-content\r\n\r\n\r\n")
	}
	resp.WriteString("--changesetresponse_i--\r\n--batchresponse_i--\r\n")
	ok := resp.String()
	if len(ok) < 50<<10 {
		t.Fatalf("the response is %d bytes, want about 60 KB", len(ok))
	}
	var got int64
	rbuf := make([]byte, 256<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.CopyBuffer(struct{ io.Writer }{io.Discard}, r.Body, rbuf)
		got = n
		w.Header().Set("Content-Type", "multipart/mixed; boundary=batchresponse_i")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, ok)
	}))
	defer srv.Close()
	c, err := NewClientWithNoCredential(srv.URL+"/acct/logs", nil)
	if err != nil {
		t.Fatal(err)
	}
	acts := make([]aztables.TransactionAction, 100)
	for i := range acts {
		acts[i] = aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd,
			Entity: []byte(`{"PartitionKey":"p","RowKey":"` + strings.Repeat("k", 20) + string(rune('a'+i%26)) + `","Msg":"` + strings.Repeat("x", 600) + `"}`)}
	}
	submit := func() {
		if _, err := c.SubmitTransaction(context.Background(), acts, nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 { // warm: connection, pools
		submit()
	}
	if got < 80<<10 {
		t.Fatalf("the server read %d bytes, want a body of about 90 KB", got)
	}
	if raceEnabled {
		return // the body was checked; allocations are counted without -race (see race_test.go)
	}
	const n = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		submit()
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per >= 24<<10 {
		t.Fatalf("a 100-entity transaction allocated %d bytes a round trip (its body and its 60 KB response are read into reused memory), want < 24 KiB", per)
	}
}

// TestBatchBufferSurvivesGC: the $batch body buffer a transaction
// returns is reused by the next one even after garbage collections (a
// busy logger's process runs many a second; a sync.Pool would drop it),
// and one too big to keep is not kept.
func TestBatchBufferSurvivesGC(t *testing.T) {
	c, err := NewClientWithNoCredential("http://127.0.0.1:1/acct/logs", nil)
	if err != nil {
		t.Fatal(err)
	}
	acts := []aztables.TransactionAction{{ActionType: aztables.TransactionTypeAdd, Entity: []byte(`{"PartitionKey":"p","RowKey":"r"}`)}}
	b := c.batchBuffer(acts)
	b.WriteString("left over")
	c.freeBatchBuffer(b)
	runtime.GC()
	runtime.GC()
	got := c.batchBuffer(acts)
	if got != b {
		t.Fatal("the kept buffer was not reused after two garbage collections")
	}
	if got.Len() != 0 {
		t.Fatalf("a reused buffer holds %d bytes, want it empty", got.Len())
	}
	big := bytes.NewBuffer(make([]byte, 0, maxFreeBatchBytes+1))
	c.freeBatchBuffer(big)
	if again := c.batchBuffer(acts); again == big {
		t.Fatal("a buffer over maxFreeBatchBytes was kept")
	}
}
