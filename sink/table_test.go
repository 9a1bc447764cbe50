package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tablelog/tablelog/internal/azure"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err    error
		class  errClass
		status int
		code   string
	}{
		{respError(503, "ServerBusy", nil), transient, 503, "ServerBusy"},
		{respError(500, "InternalError", nil), transient, 500, "InternalError"},
		{respError(408, "", nil), transient, 408, ""},
		{respError(429, "TooManyRequests", nil), transient, 429, "TooManyRequests"},
		{respError(400, "PropertyNameInvalid", nil), permanent, 400, "PropertyNameInvalid"},
		{respError(409, "EntityAlreadyExists", nil), exists, 409, "EntityAlreadyExists"},
		{respError(409, "TableAlreadyExists", nil), exists, 409, "TableAlreadyExists"},
		{respError(403, "AuthorizationPermissionMismatch", nil), denied, 403, "AuthorizationPermissionMismatch"},
		{respError(404, "TableNotFound", nil), denied, 404, "TableNotFound"},
		{batchError(409, "EntityAlreadyExists"), exists, 409, "EntityAlreadyExists"},
		{batchError(400, "InvalidInput"), permanent, 400, "InvalidInput"},
		{batchError(503, "ServerBusy"), transient, 503, "ServerBusy"},
		{&url.Error{Op: "Post", URL: "http://x", Err: syscall.ECONNRESET}, transient, 0, ""},
		{io.ErrUnexpectedEOF, transient, 0, ""},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, transient, 0, ""},
		{context.DeadlineExceeded, transient, 0, ""},
		{errors.New("entity properties must contain a PartitionKey property"), permanent, 0, ""},
	} {
		op := "AddEntity"
		if strings.Contains(fmt.Sprint(c.err), "202") {
			op = "SubmitTransaction"
		}
		e := classify(op, c.err, context.Background())
		if e.class != c.class || e.StatusCode != c.status || e.Code != c.code {
			t.Errorf("%v: class %d status %d code %q, want %d %d %q", c.err, e.class, e.StatusCode, e.Code, c.class, c.status, c.code)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if e := classify("AddEntity", context.Canceled, ctx); e.class != aborted {
		t.Errorf("cancelled by the sink: class %d", e.class)
	}
	if classify("AddEntity", nil, nil) != nil {
		t.Error("nil error classified")
	}
}

func TestRetryAfterParsing(t *testing.T) {
	for _, c := range []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{"Retry-After": {"3"}}, 3 * time.Second},
		{http.Header{"Retry-After": {"0.5"}}, 500 * time.Millisecond},
		{http.Header{"Retry-After-Ms": {"250"}}, 250 * time.Millisecond},
		{http.Header{"X-Ms-Retry-After-Ms": {"40"}}, 40 * time.Millisecond},
		{http.Header{"Retry-After": {"soon"}}, 0},
		{http.Header{}, 0},
	} {
		if got := azure.RetryAfter(c.h); got != c.want {
			t.Errorf("%v: %v, want %v", c.h, got, c.want)
		}
	}
	e := classify("SubmitTransaction", respError(429, "TooManyRequests", http.Header{"Retry-After": {"2"}}), nil)
	if e.RetryAfter != 2*time.Second || !e.Transient() || !strings.Contains(e.Error(), "retry after 2s") {
		t.Errorf("%+v: %v", e, e)
	}
}

// Errors never carry a SAS token or account key.
func TestErrorsRedactCredentials(t *testing.T) {
	secret := "https://acct.table.core.windows.net/logs?sv=2019-02-02&ss=t&srt=o&sp=a&sig=SECRETSIG%3D"
	errs := []error{
		&url.Error{Op: "Post", URL: secret, Err: syscall.ECONNRESET},
		fmt.Errorf("wrapped: %w", &url.Error{Op: "Post", URL: secret, Err: io.EOF}),
		errors.New("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=S3cr3t==;"),
		respError(403, "AuthenticationFailed", nil),
	}
	for _, err := range errs {
		msg := classify("SubmitTransaction", err, nil).Error()
		for _, bad := range []string{"SECRETSIG", "S3cr3t"} {
			if strings.Contains(msg, bad) {
				t.Errorf("%q leaks %q", msg, bad)
			}
		}
	}
}
