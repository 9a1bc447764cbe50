package auditlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

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
// Retry-After.
func classify(err error) (errKind, time.Duration) {
	if err == nil {
		return kindOK, 0
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		// Network errors, per-attempt timeouts, dropped connections.
		return kindTransient, 0
	}
	status, code := re.StatusCode, re.ErrorCode
	if status == http.StatusAccepted || code == "" {
		if s, c, ok := batchError(re); ok {
			status, code = s, c
		}
	}
	var after time.Duration
	if re.RawResponse != nil {
		after = retryAfter(re.RawResponse.Header.Get("Retry-After"))
	}
	switch {
	case code == "EntityAlreadyExists" || status == http.StatusConflict && code == "":
		return kindConflict, 0
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500:
		return kindTransient, after
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		return kindBadEntity, 0
	default:
		return kindPermanent, 0
	}
}

// batchError extracts the status and error code of the failed operation
// from an entity-group transaction's multipart response (the SDK reports
// the outer 202 only).
func batchError(re *azcore.ResponseError) (status int, code string, ok bool) {
	if re.RawResponse == nil {
		return 0, "", false
	}
	body, err := runtime.Payload(re.RawResponse)
	if err != nil {
		return 0, "", false
	}
	i := bytes.Index(body, []byte("HTTP/1.1 "))
	if i < 0 {
		return 0, "", false
	}
	rest := body[i+len("HTTP/1.1 "):]
	if len(rest) < 3 {
		return 0, "", false
	}
	status, err = strconv.Atoi(string(rest[:3]))
	if err != nil {
		return 0, "", false
	}
	if j := bytes.Index(rest, []byte(`"code":"`)); j >= 0 {
		c := rest[j+len(`"code":"`):]
		if k := bytes.IndexByte(c, '"'); k >= 0 {
			code = string(c[:k])
		}
	}
	return status, code, true
}

func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

// backoff returns the delay before retry number attempt (0-based): full
// jitter over an exponential ceiling, at least the server's Retry-After.
func backoff(attempt int, after time.Duration) time.Duration {
	ceil := 25 * time.Millisecond << min(attempt, 7) // up to 3.2 s
	d := time.Duration(rand.Int64N(int64(ceil))) + ceil/4
	return max(d, after)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// noRetry disables the SDK's own retries for one call: the writer retries
// itself, so that it knows when an outcome is unknown.
func noRetry(ctx context.Context) context.Context {
	return policy.WithRetryOptions(ctx, policy.RetryOptions{MaxRetries: -1})
}

// describe renders a storage error without the request's URL (which may
// carry a SAS token).
func describe(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		status, code := re.StatusCode, re.ErrorCode
		if status == http.StatusAccepted || code == "" {
			if s, c, ok := batchError(re); ok {
				status, code = s, c
			}
		}
		if code == "" {
			code = http.StatusText(status)
		}
		return fmt.Sprintf("%d %s", status, code)
	}
	s := err.Error()
	if i := strings.Index(s, "?"); i >= 0 && strings.Contains(s, "sig=") {
		// url.Error quoting a SAS URL: cut the query.
		s = s[:i] + "?…" + afterQuote(s[i:])
	}
	return s
}

func afterQuote(s string) string {
	if i := strings.IndexByte(s, '"'); i >= 0 {
		return s[i:]
	}
	return ""
}

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
	const k = `"RowKey":"`
	i := bytes.Index(raw, []byte(k))
	if i < 0 {
		return ""
	}
	rest := raw[i+len(k):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// parseDay parses "yyyyMMdd".
func parseDay(s string) (time.Time, error) {
	return time.Parse(schema.DayLayout, s)
}

// dayString formats a day as "yyyyMMdd".
func dayString(d time.Time) string { return d.UTC().Format(schema.DayLayout) }
