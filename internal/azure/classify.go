package azure

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// Failure describes a failed request to the table service. The zero value
// (Status 0, Transport false) describes an error that is neither an HTTP
// answer nor a transport failure.
type Failure struct {
	// Status is the HTTP status; for a failed entity-group transaction,
	// the status of the failed operation inside it. 0 if no answer arrived.
	Status int
	// Code is the service's error code (e.g. "EntityAlreadyExists"), if any.
	Code string
	// Index is the position of the failed operation in a transaction, or
	// -1 when unknown or not a transaction.
	Index int
	// RetryAfter is the service's requested delay (0 if none).
	RetryAfter time.Duration
	// Transport says no answer arrived: the connection failed, was reset,
	// or the attempt timed out.
	Transport bool
	// Response is the *azcore.ResponseError in the chain, if any.
	Response *azcore.ResponseError
}

// Inspect describes err. For an *azcore.ResponseError whose status is 202
// (a failed transaction as aztables reports it) or that lacks a code, the
// multipart body is parsed for the failed operation's own status, code and
// index. A nil err gives the zero Failure with Index -1.
func Inspect(err error) Failure {
	f := Failure{Index: -1}
	if err == nil {
		return f
	}
	var te *TransactionError
	if errors.As(err, &te) {
		f.Status, f.Code, f.Index, f.Response = te.StatusCode, te.Code, te.Index, te.Response
		if te.Response != nil && te.Response.RawResponse != nil {
			f.RetryAfter = RetryAfter(te.Response.RawResponse.Header)
		}
		return f
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		f.Response = re
		f.Status, f.Code = re.StatusCode, re.ErrorCode
		if re.RawResponse != nil {
			f.RetryAfter = RetryAfter(re.RawResponse.Header)
			if re.StatusCode == http.StatusAccepted || (re.ErrorCode == "" && re.StatusCode < 300) {
				if body, err := runtime.Payload(re.RawResponse); err == nil {
					if st, code, idx, ok := BatchFailure(body); ok {
						f.Status, f.Code, f.Index = st, code, idx
					}
				}
			}
		}
		return f
	}
	f.Transport = IsTransport(err)
	return f
}

// Retryable reports whether the same request may succeed later: a transport
// failure, 408, 429, any 5xx, or a 409 the service documents as temporary
// (TableBeingDeleted, OperationTimedOut).
func (f Failure) Retryable() bool {
	if f.Transport {
		return true
	}
	return RetryableStatus(f.Status, f.Code)
}

// Exists reports whether the failure says an entity or table of the
// request is stored already (409 EntityAlreadyExists or TableAlreadyExists).
func (f Failure) Exists() bool {
	return f.Status == http.StatusConflict && (f.Code == "EntityAlreadyExists" || f.Code == "TableAlreadyExists")
}

// Throttled reports whether the service asked the client to slow down
// (429, or 503 ServerBusy).
func (f Failure) Throttled() bool {
	return f.Status == http.StatusTooManyRequests || f.Code == "ServerBusy"
}

// RetryableStatus classifies an HTTP status and service error code as in
// Failure.Retryable.
func RetryableStatus(status int, code string) bool {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500:
		return true
	case status == http.StatusConflict && (code == "TableBeingDeleted" || code == "OperationTimedOut"):
		return true
	}
	return false
}

// IsTransport reports whether err is a failure to exchange the request
// rather than an answer from the service. A context error counts (the
// attempt's deadline): callers check their own context first.
func IsTransport(err error) bool {
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
	return errors.As(err, &ue) // any other failure of the HTTP round trip
}

// RetryAfter reads the delay the service asks for: x-ms-retry-after-ms or
// retry-after-ms (milliseconds), else Retry-After as seconds (integral or
// fractional) or an HTTP date. Missing, malformed, negative or past values
// give 0.
func RetryAfter(h http.Header) time.Duration {
	if h == nil {
		return 0
	}
	for _, k := range []string{"X-Ms-Retry-After-Ms", "Retry-After-Ms"} {
		if v := h.Get(k); v != "" {
			if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && ms < 1e12 {
				return time.Duration(ms * float64(time.Millisecond))
			}
		}
	}
	return parseRetryAfter(h.Get("Retry-After"), time.Now())
}

// parseRetryAfter parses a Retry-After value relative to now.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 || s > 1e9 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
