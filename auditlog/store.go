package auditlog

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog"
	"github.com/tablelog/tablelog/internal/azure"
	"github.com/tablelog/tablelog/internal/schema"
)

// Table is the part of *aztables.Client a Writer uses to store events:
// single and batched inserts. It never updates or deletes, so a client
// whose credential only allows adding entities (an account SAS with sp=a)
// is enough, provided Options.ReadTable can read.
type Table interface {
	AddEntity(ctx context.Context, entity []byte, options *aztables.AddEntityOptions) (aztables.AddEntityResponse, error)
	SubmitTransaction(ctx context.Context, actions []aztables.TransactionAction, options *aztables.SubmitTransactionOptions) (aztables.TransactionResponse, error)
}

// ReadTable is the part of *aztables.Client used for reading the trail:
// queries and point reads. Read permission is enough.
type ReadTable interface {
	NewListEntitiesPager(options *aztables.ListEntitiesOptions) *runtime.Pager[aztables.ListEntitiesResponse]
	GetEntity(ctx context.Context, partitionKey, rowKey string, options *aztables.GetEntityOptions) (aztables.GetEntityResponse, error)
}

var (
	_ Table     = (*aztables.Client)(nil)
	_ ReadTable = (*aztables.Client)(nil)
	_ Table     = (*tablelog.Client)(nil)
	_ ReadTable = (*tablelog.Client)(nil)
)

// errKind classifies a storage error.
type errKind int

const (
	kindOK        errKind = iota
	kindConflict          // EntityAlreadyExists: a key is taken; nothing of the request was stored
	kindTransient         // network error, timeout, 408, 429, 5xx: the outcome may be unknown
	kindBadEntity         // 400 of a batch or entity: nothing stored; the request will never succeed
	kindPermanent         // anything else (403, 404, ...): nothing stored
)

// classify returns the kind of err and, for throttling, the server's
// Retry-After (every form: seconds, HTTP date, x-ms-retry-after-ms). The
// status and code are the failed operation's own, for a transaction too
// (internal/azure reads them from either client's error).
func classify(err error) (errKind, time.Duration) {
	if err == nil {
		return kindOK, 0
	}
	f := azure.Inspect(err)
	if f.Response == nil {
		// Network errors, per-attempt timeouts, dropped connections.
		return kindTransient, 0
	}
	switch {
	case f.Code == "EntityAlreadyExists" || f.Status == http.StatusConflict && f.Code == "":
		return kindConflict, 0
	case azure.RetryableStatus(f.Status, f.Code):
		return kindTransient, f.RetryAfter
	case f.Status == http.StatusBadRequest || f.Status == http.StatusRequestEntityTooLarge:
		return kindBadEntity, 0
	default:
		return kindPermanent, 0
	}
}

// batchError extracts the status and error code of the failed operation
// from an entity-group transaction's multipart response (aztables reports
// the outer 202 only).
func batchError(re *azcore.ResponseError) (status int, code string, ok bool) {
	if re.RawResponse == nil {
		return 0, "", false
	}
	body, err := runtime.Payload(re.RawResponse)
	if err != nil {
		return 0, "", false
	}
	status, code, _, ok = azure.BatchFailure(body)
	return status, code, ok
}

// retryAfter parses a Retry-After value (seconds or an HTTP date).
func retryAfter(v string) time.Duration {
	return azure.RetryAfter(http.Header{"Retry-After": {v}})
}

// backoff returns the delay before retry number attempt (0-based): jitter
// over an exponential ceiling (25 ms doubling up to 3.2 s), at least the
// server's Retry-After.
func backoff(attempt int, after time.Duration) time.Duration {
	return azure.Backoff(attempt, 25*time.Millisecond, 3200*time.Millisecond, after)
}

// noRetry disables the SDK's own retries for one call: the writer retries
// itself, so that it knows when an outcome is unknown.
func noRetry(ctx context.Context) context.Context {
	return policy.WithRetryOptions(ctx, policy.RetryOptions{MaxRetries: -1})
}

// describe renders a storage error without the request's URL query (which
// may carry a SAS token) or other secrets: "STATUS CODE" for an answer
// (a transaction's failed operation's own), the redacted message otherwise.
func describe(err error) string {
	if f := azure.Inspect(err); f.Response != nil {
		code := f.Code
		if code == "" {
			code = http.StatusText(f.Status)
		}
		return fmt.Sprintf("%d %s", f.Status, code)
	}
	return azure.Redact(err).Error()
}

// describeErr is describe that keeps err's chain: its message is
// describe(err), and errors.Is and errors.As see the cause (a
// context error, an *azcore.ResponseError). Nil for nil.
func describeErr(err error) error {
	if err == nil {
		return nil
	}
	return &describedError{msg: describe(err), err: err}
}

type describedError struct {
	msg string
	err error
}

func (e *describedError) Error() string { return e.msg }
func (e *describedError) Unwrap() error { return e.err }

// listOptions builds a query on one partition with an optional RowKey
// range and $top.
func listOptions(pk, lo, hi string, top int32) *aztables.ListEntitiesOptions {
	f := "PartitionKey eq " + quote(pk)
	if lo != "" {
		f += " and RowKey ge " + quote(lo)
	}
	if hi != "" {
		f += " and RowKey lt " + quote(hi)
	}
	o := &aztables.ListEntitiesOptions{Filter: &f}
	if top > 0 {
		o.Top = &top
	}
	return o
}

// quote renders s as an OData string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// listPage yields the entities of a query page by page until fn returns
// false or the results end.
func listAll(ctx context.Context, t ReadTable, o *aztables.ListEntitiesOptions, fn func(raw []byte) (bool, error)) error {
	p := t.NewListEntitiesPager(o)
	for p.More() {
		resp, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, raw := range resp.Entities {
			more, err := fn(raw)
			if err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// catalogOptions selects the catalog entries of service's days (RowKeys
// "<service>_<yyyyMMdd>"; the digits of the day follow the '_').
func catalogOptions(service string) *aztables.ListEntitiesOptions {
	o := listOptions(schema.CatalogPartition, service+"_0", service+"_:", 0)
	sel := schema.ColRowKey + "," + schema.CatalogColService + "," + schema.CatalogColDay + "," + schema.AuditColMac
	o.Select = &sel
	return o
}

func rowKeyOf(raw []byte) string {
	rk, _ := azure.RowKey(raw)
	return rk
}

// parseDay parses "yyyyMMdd".
func parseDay(s string) (time.Time, error) {
	return time.Parse(schema.DayLayout, s)
}

// dayString formats a day as "yyyyMMdd".
func dayString(d time.Time) string { return d.UTC().Format(schema.DayLayout) }
