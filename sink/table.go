package sink

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog"
	"github.com/tablelog/tablelog/internal/azure"
)

// Table is the part of *tablelog.Client (and *aztables.Client) the sink uses: entity-group
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

var (
	_ Table = (*aztables.Client)(nil)
	_ Table = (*tablelog.Client)(nil)
)

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
		azure.WriteStatus(&b, e.StatusCode, e.Code)
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
// "aborted", not a network failure. The status, code and Retry-After come
// from internal/azure, which reads a failed transaction's own operation
// from either client's error shape.
func classify(op string, err error, hardCtx context.Context) *OpError {
	if err == nil {
		return nil
	}
	f := azure.Inspect(err)
	if f.Response != nil {
		e := &OpError{Op: op, StatusCode: f.Status, Code: f.Code, RetryAfter: f.RetryAfter}
		e.class = statusClass(f)
		return e
	}
	if hardCtx != nil && hardCtx.Err() != nil {
		return &OpError{Op: op, Err: context.Canceled, class: aborted}
	}
	e := &OpError{Op: op, Err: azure.Redact(err), class: permanent}
	if f.Transport {
		e.class = transient
	}
	return e
}

// statusClass classifies an HTTP answer.
func statusClass(f azure.Failure) errClass {
	switch {
	case f.Exists():
		return exists
	case f.Retryable():
		return transient
	case f.Status == http.StatusUnauthorized, f.Status == http.StatusForbidden, f.Status == http.StatusNotFound:
		return denied
	}
	return permanent
}
