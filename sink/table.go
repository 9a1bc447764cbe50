package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// Table is the part of *aztables.Client the sink uses: entity-group
// transactions of inserts, single inserts (to isolate and repair a record
// the service rejected) and table creation. Implementations must be safe for
// concurrent use. Errors are expected in the shapes aztables returns them:
// *azcore.ResponseError for an HTTP error status, anything else for a
// transport failure.
type Table interface {
	SubmitTransaction(ctx context.Context, actions []aztables.TransactionAction, opts *aztables.SubmitTransactionOptions) (aztables.TransactionResponse, error)
	AddEntity(ctx context.Context, entity []byte, opts *aztables.AddEntityOptions) (aztables.AddEntityResponse, error)
	CreateTable(ctx context.Context, opts *aztables.CreateTableOptions) (aztables.CreateTableResponse, error)
}

var _ Table = (*aztables.Client)(nil)

// errClass says how the sink reacts to a failed request.
type errClass int

const (
	// permanent: the request will fail the same way again; for a
	// transaction, one of its records is likely bad (bisect it).
	permanent errClass = iota
	// transient: retry the same request later (network, 408, 429, 5xx).
	transient
	// exists: the entity (or, for a transaction, one of them) is stored
	// already (409 EntityAlreadyExists / TableAlreadyExists).
	exists
	// denied: the request can never succeed for any record: the
	// credentials lack the right (401/403) or the table is missing (404).
	denied
	// aborted: the sink is shutting down and cancelled the request.
	aborted
)

// OpError is the error type of a failed request to the table service, as the
// sink reports it to the ErrorHandler and wraps it in Flush and Close
// errors. It carries the HTTP status and service error code but never the
// request URL, so no account key or SAS token can leak through it.
type OpError struct {
	Op         string        // "SubmitTransaction", "AddEntity" or "CreateTable"
	StatusCode int           // HTTP status; 0 for a transport failure; for a failed transaction, the status of the failed operation inside it
	Code       string        // service error code such as "EntityAlreadyExists", if any
	RetryAfter time.Duration // the service's Retry-After, if any
	Err        error         // the underlying transport error, URLs removed; nil for an HTTP error status

	class errClass
}

// Error describes the failure without the request URL.
func (e *OpError) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	switch {
	case e.StatusCode != 0:
		b.WriteString(strconv.Itoa(e.StatusCode))
		if t := http.StatusText(e.StatusCode); t != "" {
			b.WriteByte(' ')
			b.WriteString(t)
		}
		if e.Code != "" {
			b.WriteString(" (")
			b.WriteString(e.Code)
			b.WriteByte(')')
		}
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString("failed")
	}
	if e.RetryAfter > 0 {
		b.WriteString(", retry after ")
		b.WriteString(e.RetryAfter.String())
	}
	return b.String()
}

// Unwrap returns the underlying transport error.
func (e *OpError) Unwrap() error { return e.Err }

// Transient reports whether the failure is worth retrying: a network
// failure, 408, 429 or a 5xx status.
func (e *OpError) Transient() bool { return e.class == transient }

// classify maps an error from Table to an *OpError (nil for nil). hardCtx is
// the sink's own lifetime context: a cancellation caused by it is
// "aborted", not a network failure.
func classify(op string, err error, hardCtx context.Context) *OpError {
	if err == nil {
		return nil
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		e := &OpError{Op: op, StatusCode: re.StatusCode, Code: re.ErrorCode}
		if re.RawResponse != nil {
			e.RetryAfter = retryAfter(re.RawResponse.Header)
			if re.StatusCode == http.StatusAccepted && op == "SubmitTransaction" {
				// A failed transaction is answered 202 with the failed
				// operation's response inside the multipart body.
				if body, err := runtime.Payload(re.RawResponse); err == nil {
					if st, code := innerStatus(body); st != 0 {
						e.StatusCode, e.Code = st, code
					}
				}
			}
		}
		e.class = statusClass(e.StatusCode, e.Code)
		return e
	}
	if hardCtx != nil && hardCtx.Err() != nil {
		return &OpError{Op: op, Err: context.Canceled, class: aborted}
	}
	e := &OpError{Op: op, Err: redact(err), class: permanent}
	if isTransport(err) {
		e.class = transient
	}
	return e
}

// statusClass classifies an HTTP status and service error code.
func statusClass(status int, code string) errClass {
	switch {
	case status == http.StatusConflict && (code == "EntityAlreadyExists" || code == "TableAlreadyExists"):
		return exists
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500:
		return transient
	case status == http.StatusUnauthorized, status == http.StatusForbidden, status == http.StatusNotFound:
		return denied
	case status == http.StatusConflict && (code == "TableBeingDeleted" || code == "OperationTimedOut"):
		return transient
	}
	return permanent
}

// isTransport reports whether err is a failure to exchange the request
// rather than an answer from the service: those are retried.
func isTransport(err error) bool {
	var ne net.Error
	switch {
	case errors.As(err, &ne),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	var ue *url.Error
	return errors.As(err, &ue) // any other failure to do the HTTP round trip
}

// retryAfter reads Retry-After (seconds or an HTTP date) or the
// millisecond variants Azure services send.
func retryAfter(h http.Header) time.Duration {
	for _, k := range []string{"Retry-After-Ms", "X-Ms-Retry-After-Ms"} {
		if v := h.Get(k); v != "" {
			if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
				return time.Duration(ms * float64(time.Millisecond))
			}
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// innerStatus finds the status line and error code of the first failed
// operation in a batch response body ("HTTP/1.1 409 Conflict" followed by
// a JSON odata.error).
func innerStatus(body []byte) (status int, code string) {
	rest := body
	for {
		i := bytes.Index(rest, []byte("HTTP/1.1 "))
		if i < 0 {
			return 0, ""
		}
		rest = rest[i+len("HTTP/1.1 "):]
		if len(rest) < 3 {
			return 0, ""
		}
		st, err := strconv.Atoi(string(rest[:3]))
		if err != nil || st < 400 {
			continue
		}
		return st, errorCode(rest)
	}
}

// errorCode extracts "code":"..." from an OData error body.
func errorCode(b []byte) string {
	i := bytes.Index(b, []byte(`"code"`))
	if i < 0 {
		return ""
	}
	b = b[i+len(`"code"`):]
	b = bytes.TrimLeft(b, " \t\r\n:")
	if len(b) == 0 || b[0] != '"' {
		return ""
	}
	b = b[1:]
	j := bytes.IndexByte(b, '"')
	if j < 0 || j > 100 {
		return ""
	}
	return string(b[:j])
}

// redact removes URLs (which may carry a SAS token) from transport errors.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &redactedError{op: ue.Op, endpoint: endpoint(ue.URL), err: redact(ue.Err)}
	}
	msg := err.Error()
	if strings.Contains(msg, "sig=") || strings.Contains(msg, "AccountKey=") || strings.Contains(msg, "SharedAccessSignature=") {
		return errors.New("request failed (details withheld: the message contained credentials)")
	}
	return err
}

type redactedError struct {
	op, endpoint string
	err          error
}

func (e *redactedError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.op, e.endpoint, e.err)
}

func (e *redactedError) Unwrap() error { return e.err }

// endpoint returns scheme://host/path of a URL string, without the query.
func endpoint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(url withheld)"
	}
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}
