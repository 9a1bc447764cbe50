package query

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/tablelog/tablelog/internal/azure"
)

// Sentinel errors. Every error the package returns from a request wraps one
// of these (test with errors.Is), except that a cancelled or expired context
// is reported as ctx.Err() itself (context.Canceled or
// context.DeadlineExceeded).
var (
	// ErrTableNotFound: the table does not exist (HTTP 404 TableNotFound or
	// ResourceNotFound).
	ErrTableNotFound = errors.New("table not found")
	// ErrAuth: the credentials were refused or lack the read permission
	// (HTTP 401 or 403: a wrong key, an expired or write-only SAS, a missing
	// role assignment).
	ErrAuth = errors.New("not authorized to read the table")
	// ErrThrottled: the service asked the client to slow down (HTTP 429, or
	// 503 ServerBusy) and the client's retry policy gave up.
	ErrThrottled = errors.New("throttled by the table service")
	// ErrUnavailable: the service could not be reached or failed (network
	// errors, timeouts, other 5xx answers) after the client's retries.
	ErrUnavailable = errors.New("table service unavailable")
	// ErrInvalidQuery: the query is malformed: a bad service name, Since
	// after Until, a filter with too many comparisons, or a request the
	// service rejected as invalid (HTTP 400).
	ErrInvalidQuery = errors.New("invalid query")
	// ErrInvalidFilter: a Filter could not be built (an unsupported value
	// type, a NaN, a time outside Edm.DateTime's range, ...). It also wraps
	// ErrInvalidQuery.
	ErrInvalidFilter = fmt.Errorf("%w: invalid filter", ErrInvalidQuery)
	// ErrBadEntity: an entity in the table could not be decoded as a log
	// record (it was not written by tablelog, or it was altered).
	ErrBadEntity = errors.New("entity is not a tablelog record")
)

// Error describes a failed request to the table service. It wraps one of the
// sentinel errors (Kind) and the underlying cause, which is usually an
// *azcore.ResponseError (reachable with errors.As). Its message holds the
// operation, the HTTP status and the service's error code, never a URL's
// query string, a key or a signature.
type Error struct {
	Op         string // what was being done, e.g. "list entities of checkout_20251125"
	StatusCode int    // HTTP status, 0 when no response arrived
	Code       string // the service's error code (e.g. "TableNotFound"), if any
	Kind       error  // one of the sentinel errors
	cause      error
}

// Error returns a one-line description without secrets.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("tablelog/query: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString(e.Kind.Error())
	switch {
	case e.StatusCode != 0 && e.Code != "":
		fmt.Fprintf(&b, " (HTTP %d %s)", e.StatusCode, e.Code)
	case e.StatusCode != 0:
		fmt.Fprintf(&b, " (HTTP %d)", e.StatusCode)
	case e.cause != nil:
		b.WriteString(": ")
		b.WriteString(redact(e.cause))
	}
	return b.String()
}

// Unwrap returns the sentinel and the cause.
func (e *Error) Unwrap() []error {
	if e.cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.cause}
}

// mapError turns an error from the table client into an *Error wrapping a
// sentinel. A context error (ctx is done) is returned as ctx.Err(). op names
// the operation for the message. The audit reader (audit.go) uses it too.
// Status and code come from internal/azure, as for every package.
func mapError(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var qe *Error
	if errors.As(err, &qe) {
		return err
	}
	f := azure.Inspect(err)
	if f.Response != nil {
		e := &Error{Op: op, StatusCode: f.Status, Code: f.Code, cause: err}
		switch {
		case f.Status == http.StatusNotFound:
			e.Kind = ErrTableNotFound
		case f.Status == http.StatusUnauthorized || f.Status == http.StatusForbidden:
			e.Kind = ErrAuth
		case f.Throttled():
			e.Kind = ErrThrottled
		case f.Status == http.StatusBadRequest || f.Status == http.StatusNotImplemented:
			e.Kind = ErrInvalidQuery
		default:
			e.Kind = ErrUnavailable
		}
		return e
	}
	// Network errors (*url.Error, net.Error), a deadline of the transport
	// or of the client's retry policy (not of ctx: the service did not
	// answer in time), and anything else.
	return &Error{Op: op, Kind: ErrUnavailable, cause: err}
}

// redact returns err's message with any URL reduced to scheme, host and
// path and other secrets removed (internal/azure.Redact).
func redact(err error) string { return azure.Redact(err).Error() }

// invalid returns an error wrapping ErrInvalidQuery.
func invalid(format string, args ...any) error {
	return fmt.Errorf("tablelog/query: %w: %s", ErrInvalidQuery, fmt.Sprintf(format, args...))
}
