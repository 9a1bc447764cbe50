package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

func TestRetryAfterForms(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		h    http.Header
		want time.Duration
		tol  time.Duration
	}{
		{http.Header{"Retry-After": {"3"}}, 3 * time.Second, 0},
		{http.Header{"Retry-After": {"1.5"}}, 1500 * time.Millisecond, 0},
		{http.Header{"Retry-After": {now.Add(10 * time.Second).UTC().Format(http.TimeFormat)}}, 10 * time.Second, 1500 * time.Millisecond},
		{http.Header{"Retry-After": {now.Add(-time.Hour).UTC().Format(http.TimeFormat)}}, 0, 0},
		{http.Header{"X-Ms-Retry-After-Ms": {"250"}, "Retry-After": {"9"}}, 250 * time.Millisecond, 0},
		{http.Header{"Retry-After-Ms": {"40"}}, 40 * time.Millisecond, 0},
		{http.Header{"Retry-After": {"-1"}}, 0, 0},
		{http.Header{"Retry-After": {"soon"}}, 0, 0},
		{http.Header{"X-Ms-Retry-After-Ms": {"junk"}, "Retry-After": {"2"}}, 2 * time.Second, 0},
		{nil, 0, 0},
	} {
		got := RetryAfter(tc.h)
		if d := got - tc.want; d < -tc.tol || d > tc.tol {
			t.Errorf("%v: %v, want %v", tc.h, got, tc.want)
		}
	}
}

const azureBatchError = "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n" +
	"--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n" +
	"HTTP/1.1 409 Conflict\r\nX-Content-Type-Options: nosniff\r\nDataServiceVersion: 3.0;\r\nContent-Type: application/json;odata=minimalmetadata;streaming=true;charset=utf-8\r\n\r\n" +
	`{"odata.error":{"code":"EntityAlreadyExists","message":{"lang":"en-US","value":"17:The specified entity already exists.\nRequestId:x"}}}` +
	"\r\n--changesetresponse_2--\r\n--batchresponse_1--\r\n"

func TestBatchFailure(t *testing.T) {
	st, code, idx, ok := BatchFailure([]byte(azureBatchError))
	if !ok || st != 409 || code != "EntityAlreadyExists" || idx != 17 {
		t.Fatalf("%d %q %d %v", st, code, idx, ok)
	}
	// Success parts first, then a failure identified by Content-ID only.
	body := "--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n" +
		"--c\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-ID: 4\r\n\r\n{\"odata.error\":{\"code\" : \"InvalidInput\",\"message\":{\"value\":\"bad\"}}}\r\n--c--\r\n--b--\r\n"
	st, code, idx, ok = BatchFailure([]byte(body))
	if !ok || st != 400 || code != "InvalidInput" || idx != 4 {
		t.Fatalf("%d %q %d %v", st, code, idx, ok)
	}
	if _, _, _, ok := BatchFailure([]byte("--b\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n--b--")); ok {
		t.Fatal("success parsed as failure")
	}
}

func TestInspect(t *testing.T) {
	resp := &http.Response{StatusCode: 202, Header: http.Header{"Retry-After": {"2"}}, Body: http.NoBody}
	re := &azcore.ResponseError{StatusCode: 202, RawResponse: resp}
	// aztables' shape: the failure only in the body. runtime.Payload needs
	// the body; give it one.
	resp.Body = nopBody(azureBatchError)
	f := Inspect(fmt.Errorf("wrapped: %w", re))
	if f.Status != 409 || f.Code != "EntityAlreadyExists" || f.Index != 17 || !f.Exists() || f.Retryable() || f.RetryAfter != 2*time.Second {
		t.Fatalf("%+v", f)
	}
	te := &TransactionError{Index: 3, StatusCode: 503, Code: "ServerBusy", Response: &azcore.ResponseError{StatusCode: 503, ErrorCode: "ServerBusy"}}
	f = Inspect(te)
	if f.Status != 503 || f.Index != 3 || !f.Retryable() || !f.Throttled() {
		t.Fatalf("%+v", f)
	}
	if f := Inspect(&url.Error{Op: "Post", URL: "http://x", Err: syscall.ECONNRESET}); !f.Transport || !f.Retryable() {
		t.Fatalf("%+v", f)
	}
	if f := Inspect(errors.New("json: bad")); f.Transport || f.Retryable() {
		t.Fatalf("%+v", f)
	}
}

func TestRedactKeepsTheChain(t *testing.T) {
	ue := &url.Error{Op: "Post", URL: "https://acct.table.core.windows.net/logs?sv=1&sig=SECRETSIG%3D", Err: context.Canceled}
	err := Redact(fmt.Errorf("sending: %w", ue))
	if strings.Contains(err.Error(), "SECRETSIG") || !strings.Contains(err.Error(), "https://acct.table.core.windows.net/logs") {
		t.Fatalf("%v", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatal("errors.Is(context.Canceled) lost")
	}
	var got *url.Error
	if !errors.As(err, &got) {
		t.Fatal("errors.As(*url.Error) lost")
	}
	plain := errors.New("no secrets here")
	if Redact(plain) != plain {
		t.Fatal("an error without secrets was wrapped")
	}
	for _, s := range []string{"AccountKey=abc123==;", "SharedAccessSignature=sv=1&sig=x", "Authorization: Bearer eyJ0eXAi.x.y", "SharedKeyLite acct:c2lnbmF0dXJl"} {
		if r := RedactString(s); strings.Contains(r, "abc123") || strings.Contains(r, "sig=x") || strings.Contains(r, "eyJ0") || strings.Contains(r, "c2lnbmF0dXJl") {
			t.Errorf("%q -> %q", s, r)
		}
	}
}

func TestBackoff(t *testing.T) {
	for a := 0; a < 50; a++ {
		d := Backoff(a, 10*time.Millisecond, time.Second, 0)
		ceil := time.Second
		if x := 10 * time.Millisecond << a; a < 40 && x > 0 && x < ceil {
			ceil = x
		}
		if d < ceil/2 || d > ceil {
			t.Fatalf("attempt %d: %v outside [%v, %v]", a, d, ceil/2, ceil)
		}
	}
	if d := Backoff(0, 10*time.Millisecond, time.Second, 3*time.Second); d != 3*time.Second {
		t.Fatalf("Retry-After not honoured: %v", d)
	}
}

type body struct{ *strings.Reader }

func (body) Close() error { return nil }

func nopBody(s string) body { return body{strings.NewReader(s)} }
