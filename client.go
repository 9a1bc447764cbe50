package tablelog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/azure"
)

const (
	moduleName    = "tablelog"
	moduleVersion = "v0.1.0"
	apiVersion    = "2019-02-02"
	acceptMinimal = "application/json;odata=minimalmetadata"
)

// ClientOptions configure a Client. A nil *ClientOptions, and every zero
// field, means azcore's defaults: its logging and telemetry policies, and
// its HTTP transport's settings with one change: a 128 KiB write buffer per
// connection, so a transaction's body is written from one buffer (with
// azcore's transport, net/http allocates a 32 KiB copy buffer for every
// request). A Transport set here is used as it is.
//
// Retries: reads (queries, GetEntity) and CreateTable are retried by
// azcore's retry policy as configured in ClientOptions.Retry (by default 3
// retries with exponential backoff, honouring Retry-After). Writes
// (SubmitTransaction, AddEntity, DeleteEntity) are attempted exactly once:
// their callers (the sink and the audit writer) retry themselves, knowing
// whether an earlier attempt may have been stored, so azcore's retries
// would only stack on top of theirs.
type ClientOptions struct {
	azcore.ClientOptions
}

// Client is one table of a storage account or Cosmos DB Table API account.
// It is safe for concurrent use by any number of goroutines; create it once
// and share it. Its methods return an *azcore.ResponseError (reachable with
// errors.As) when the service answers with an error status, a
// *TransactionError (which unwraps to one) when an operation of a
// transaction fails, and otherwise the transport's error with any URL
// reduced to scheme, host and path. A cancelled ctx is reported as an
// error for which errors.Is(err, context.Canceled) holds.
type Client struct {
	pl      runtime.Pipeline
	base    string // service URL: scheme://host[/account], no trailing slash, no query
	table   string
	sas     string // SAS query string (no '?'), "" without
	cosmos  bool
	tblURL  string // base/table(escaped)
	batch   string // base/$batch
	tblPath string // the table's URL path segment, escaped
	bounds  boundaries
	// bufs holds $batch body buffers for reuse. Unlike a sync.Pool it
	// survives garbage collections, which a busy logger triggers many
	// times a second: each would otherwise cost a fresh ~100 KB buffer.
	bufs chan *bytes.Buffer
	// respBufs holds memory for $batch responses (one entry of a few
	// hundred bytes per operation, with its Location and ETag), reused
	// likewise; respHint is the size of the last one.
	respBufs chan []byte
	respHint atomic.Int64
	// pageHint is the size of the last query page read: the next page's
	// buffer is allocated at about that size when the response does not
	// state its length.
	pageHint atomic.Int64
}

var (
	_ interface {
		SubmitTransaction(context.Context, []aztables.TransactionAction, *aztables.SubmitTransactionOptions) (aztables.TransactionResponse, error)
		AddEntity(context.Context, []byte, *aztables.AddEntityOptions) (aztables.AddEntityResponse, error)
		CreateTable(context.Context, *aztables.CreateTableOptions) (aztables.CreateTableResponse, error)
		NewListEntitiesPager(*aztables.ListEntitiesOptions) *runtime.Pager[aztables.ListEntitiesResponse]
		GetEntity(context.Context, string, string, *aztables.GetEntityOptions) (aztables.GetEntityResponse, error)
		DeleteEntity(context.Context, string, string, *aztables.DeleteEntityOptions) (aztables.DeleteEntityResponse, error)
	} = (*Client)(nil)
)

// TransactionError reports the failed operation of an entity-group
// transaction (see SubmitTransaction). It unwraps to an
// *azcore.ResponseError carrying the failed operation's status and code.
type TransactionError = azure.TransactionError

// newClient builds a client for the table at tableURL (scheme://host/[account/]table[?sas]).
// auth is the credential policy (nil for SAS or anonymous).
func newClient(tableURL string, auth policy.Policy, options *ClientOptions) (*Client, error) {
	base, table, sas, err := splitTableURL(tableURL)
	if err != nil {
		return nil, err
	}
	return newClientParts(base, table, sas, auth, options)
}

func newClientParts(base, table, sas string, auth policy.Policy, options *ClientOptions) (*Client, error) {
	if err := checkTableName(table); err != nil {
		return nil, err
	}
	var o policy.ClientOptions
	if options != nil {
		o = options.ClientOptions
	}
	if o.Transport == nil {
		o.Transport = defaultTransport
	}
	plOpts := runtime.PipelineOptions{
		AllowedQueryParameters: []string{"$filter", "$select", "$top", "$format", "NextPartitionKey", "NextRowKey", "sv", "ss", "srt", "sp", "se", "st", "spr", "tn"},
		AllowedHeaders:         []string{"x-ms-continuation-NextPartitionKey", "x-ms-continuation-NextRowKey", "Prefer", "Preference-Applied", "DataServiceVersion", "x-ms-error-code"},
	}
	plOpts.PerRetry = []policy.Policy{policyFunc(sizedDownload)}
	if auth != nil {
		plOpts.PerRetry = append(plOpts.PerRetry, auth)
	}
	plOpts.PerRetry = append(plOpts.PerRetry, policyFunc(memBodyPolicy))
	c := &Client{
		pl:     runtime.NewPipeline(moduleName, moduleVersion, plOpts, &o),
		base:   base,
		table:  table,
		sas:    sas,
		cosmos: isCosmos(base),
		bounds: newBoundaries(),
		bufs:   make(chan *bytes.Buffer, maxFreeBatchBuffers),

		respBufs: make(chan []byte, maxFreeBatchBuffers),
	}
	c.tblPath = url.PathEscape(table)
	c.tblURL = base + "/" + c.tblPath
	c.batch = base + "/$batch"
	return c, nil
}

// splitTableURL splits scheme://host/[path/]table?sas into the service URL
// (scheme://host/[path]), the table name and the SAS query. Errors never
// quote the query.
func splitTableURL(raw string) (base, table, sas string, err error) {
	u, perr := url.Parse(raw)
	if perr != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", "", "", errors.New("tablelog: the table URL is not an http(s) URL (https://ACCOUNT.table.core.windows.net/TABLE)")
	}
	p := strings.TrimSuffix(u.Path, "/")
	i := strings.LastIndexByte(p, '/')
	if i < 0 || i == len(p)-1 {
		return "", "", "", fmt.Errorf("tablelog: the table URL %s names no table (https://ACCOUNT.table.core.windows.net/TABLE)", azure.Endpoint(raw))
	}
	table = p[i+1:]
	base = u.Scheme + "://" + u.Host + p[:i]
	return base, table, u.RawQuery, nil
}

// checkTableName applies Azure's rule for table names.
func checkTableName(name string) error {
	ok := len(name) >= 3 && len(name) <= 63
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("tablelog: %q is not a valid table name (3-63 letters and digits, starting with a letter)", name)
	}
	return nil
}

// isCosmos reports whether a service URL is a Cosmos DB Table API endpoint.
func isCosmos(base string) bool {
	u, err := url.Parse(base)
	if err != nil {
		return false
	}
	h := strings.ToLower(u.Hostname())
	return strings.Contains(h, ".table.cosmos.") || strings.Contains(h, ".table.cosmosdb.") || strings.Contains(h, ".documents.azure.")
}

// Name returns the table's name.
func (c *Client) Name() string { return c.table }

// URL returns the table's URL without any SAS (safe to print).
func (c *Client) URL() string { return c.tblURL }

// withSAS appends the SAS to a URL that has no query yet, or after q.
func (c *Client) withSAS(u string, q string) string {
	switch {
	case q != "" && c.sas != "":
		return u + "?" + q + "&" + c.sas
	case q != "":
		return u + "?" + q
	case c.sas != "":
		return u + "?" + c.sas
	}
	return u
}

// newRequest builds a request with the table service's common headers.
func (c *Client) newRequest(ctx context.Context, method, rawURL string) (*policy.Request, error) {
	req, err := runtime.NewRequest(ctx, method, rawURL)
	if err != nil {
		return nil, azure.Redact(err)
	}
	h := req.Raw().Header
	h["x-ms-version"] = []string{apiVersion}
	h["DataServiceVersion"] = []string{"3.0"}
	h["Accept"] = []string{acceptMinimal}
	return req, nil
}

// noRetry turns azcore's retry policy off for one write.
var noRetryOptions = policy.RetryOptions{MaxRetries: -1}

func noRetry(ctx context.Context) context.Context {
	return policy.WithRetryOptions(ctx, noRetryOptions)
}

// do sends req and returns the response if its status is one of ok;
// otherwise an *azcore.ResponseError. Transport errors are redacted.
func (c *Client) do(req *policy.Request, ok ...int) (*http.Response, error) {
	resp, err := c.pl.Do(req)
	if err != nil {
		return nil, azure.Redact(err)
	}
	if !runtime.HasStatusCode(resp, ok...) {
		return nil, runtime.NewResponseError(resp)
	}
	return resp, nil
}

// CreateTable creates the table. An existing table is reported as an
// *azcore.ResponseError with status 409 and code TableAlreadyExists.
// options may be nil.
func (c *Client) CreateTable(ctx context.Context, options *aztables.CreateTableOptions) (aztables.CreateTableResponse, error) {
	req, err := c.newRequest(ctx, http.MethodPost, c.withSAS(c.base+"/Tables", ""))
	if err != nil {
		return aztables.CreateTableResponse{}, err
	}
	req.Raw().Header["Prefer"] = []string{"return-no-content"}
	body := `{"TableName":"` + c.table + `"}` // a valid table name needs no escaping
	if err := req.SetBody(nopCloser{strings.NewReader(body)}, "application/json"); err != nil {
		return aztables.CreateTableResponse{}, err
	}
	resp, err := c.do(req, http.StatusCreated, http.StatusNoContent)
	if err != nil {
		return aztables.CreateTableResponse{}, err
	}
	drain(resp)
	name := c.table
	return aztables.CreateTableResponse{TableName: &name}, nil
}

// AddEntity inserts one entity, sent as the given bytes (an OData JSON
// object with PartitionKey and RowKey). An existing entity is reported as
// an *azcore.ResponseError with status 409 and code EntityAlreadyExists.
// The write is attempted once (see ClientOptions). The response's Value is
// nil: the service is asked not to echo the entity. options may be nil.
func (c *Client) AddEntity(ctx context.Context, entity []byte, options *aztables.AddEntityOptions) (aztables.AddEntityResponse, error) {
	req, err := c.newRequest(noRetry(ctx), http.MethodPost, c.withSAS(c.tblURL, ""))
	if err != nil {
		return aztables.AddEntityResponse{}, err
	}
	req.Raw().Header["Prefer"] = []string{"return-no-content"}
	if err := setMemBody(req, entity, "application/json"); err != nil {
		return aztables.AddEntityResponse{}, err
	}
	resp, err := c.do(req, http.StatusCreated, http.StatusNoContent)
	if err != nil {
		return aztables.AddEntityResponse{}, err
	}
	drain(resp)
	return aztables.AddEntityResponse{ETag: azcore.ETag(resp.Header.Get("ETag"))}, nil
}

// entityURL is the URL of one entity (keys quoted and escaped as OData
// and URL paths require).
func (c *Client) entityURL(pk, rk string) string {
	return c.tblURL + "(PartitionKey='" + url.PathEscape(strings.ReplaceAll(pk, "'", "''")) +
		"',RowKey='" + url.PathEscape(strings.ReplaceAll(rk, "'", "''")) + "')"
}

// GetEntity reads one entity. Its Value is the entity's JSON as the service
// sent it (minimal metadata: type annotations included). A missing entity
// is an *azcore.ResponseError with status 404. options may be nil.
func (c *Client) GetEntity(ctx context.Context, partitionKey, rowKey string, options *aztables.GetEntityOptions) (aztables.GetEntityResponse, error) {
	q := ""
	if options != nil && options.Format != nil {
		q = "$format=" + url.QueryEscape(string(*options.Format))
	}
	req, err := c.newRequest(ctx, http.MethodGet, c.withSAS(c.entityURL(partitionKey, rowKey), q))
	if err != nil {
		return aztables.GetEntityResponse{}, err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return aztables.GetEntityResponse{}, err
	}
	body, err := runtime.Payload(resp)
	if err != nil {
		return aztables.GetEntityResponse{}, azure.Redact(err)
	}
	return aztables.GetEntityResponse{ETag: azcore.ETag(resp.Header.Get("ETag")), Value: body}, nil
}

// DeleteEntity deletes one entity (If-Match: * unless options.IfMatch). A
// missing entity is an *azcore.ResponseError with status 404. The write is
// attempted once. options may be nil.
func (c *Client) DeleteEntity(ctx context.Context, partitionKey, rowKey string, options *aztables.DeleteEntityOptions) (aztables.DeleteEntityResponse, error) {
	req, err := c.newRequest(noRetry(ctx), http.MethodDelete, c.withSAS(c.entityURL(partitionKey, rowKey), ""))
	if err != nil {
		return aztables.DeleteEntityResponse{}, err
	}
	ifMatch := "*"
	if options != nil && options.IfMatch != nil {
		ifMatch = string(*options.IfMatch)
	}
	req.Raw().Header["If-Match"] = []string{ifMatch}
	resp, err := c.do(req, http.StatusNoContent)
	if err != nil {
		return aztables.DeleteEntityResponse{}, err
	}
	drain(resp)
	return aztables.DeleteEntityResponse{}, nil
}

// drain discards what is left of a response body and closes it (azcore has
// read it into memory already).
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

// nopCloser makes a ReadSeeker a ReadSeekCloser.
type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

// memBody is the operation value that carries a request body held in
// memory to the memBodyPolicy.
type memBody struct{ b []byte }

// setMemBody sets b as req's body, to be handed to net/http as the bytes it
// is (see memBodyPolicy).
func setMemBody(req *policy.Request, b []byte, contentType string) error {
	if err := req.SetBody(nopCloser{bytes.NewReader(b)}, contentType); err != nil {
		return err
	}
	req.SetOperationValue(&memBody{b: b})
	return nil
}

// memBodyPolicy gives net/http a request body set by setMemBody as an
// io.NopCloser over a *bytes.Reader, a reader it knows to be in memory,
// instead of azcore's retry wrapper. net/http then writes the headers and
// the body through the connection's write buffer in one write call (see
// writeBufferSize); behind a wrapper it flushes the headers alone and
// copies the body through a fresh 32 KiB buffer. It runs once per try,
// after the retry policy wrapped the body.
func memBodyPolicy(req *policy.Request) (*http.Response, error) {
	var mb *memBody
	if req.OperationValue(&mb) && mb != nil {
		req.Raw().Body = io.NopCloser(bytes.NewReader(mb.b))
	}
	return req.Next()
}

// pageBody carries a query page's body out of the pipeline: sizedDownload
// reads it into one buffer sized from Content-Length (or from the previous
// page) instead of azcore's growing io.ReadAll; into buf's memory when buf
// has room for it.
type pageBody struct {
	hint int    // expected size, 0 if unknown
	buf  []byte // memory to reuse (its contents are overwritten), or nil
	b    []byte // the body, once read
}

// sizedDownload reads the body of a successful response to a request that
// carries a *pageBody. It runs inside the retry loop, so a failed read is
// retried like any transport failure.
func sizedDownload(req *policy.Request) (*http.Response, error) {
	var pb *pageBody
	if !req.OperationValue(&pb) || pb == nil {
		return req.Next()
	}
	runtime.SkipBodyDownload(req) // azcore still downloads error bodies
	resp, err := req.Next()
	if err != nil || resp.StatusCode >= 300 {
		return resp, err
	}
	size := pb.hint
	if resp.ContentLength > 0 && resp.ContentLength < 64<<20 {
		size = int(resp.ContentLength)
	}
	mem := pb.buf[:0]
	if cap(mem) < size+bytes.MinRead {
		mem = make([]byte, 0, size+bytes.MinRead)
	}
	buf := bytes.NewBuffer(mem)
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	pb.b = buf.Bytes()
	resp.Body = http.NoBody
	return resp, nil
}
