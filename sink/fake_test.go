package sink

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// fakeTable is an in-memory Table for tests of the machinery (run under
// testing/synctest: it does no I/O). fail, if set, decides each call's
// fate before anything is stored: a non-nil error fails the call.
type fakeTable struct {
	mu       sync.Mutex
	rows     map[string][]byte // "pk/rk" -> entity
	calls    []fakeCall
	fail     func(c fakeCall) error
	dropResp func(c fakeCall) bool // store, then fail with a network error
}

type fakeCall struct {
	Op   string // "SubmitTransaction", "AddEntity", "CreateTable"
	N    int    // entities
	Keys []string
	Data [][]byte
}

func newFakeTable() *fakeTable { return &fakeTable{rows: map[string][]byte{}} }

func keyOf(entity []byte) string {
	var k struct{ PartitionKey, RowKey string }
	_ = json.Unmarshal(entity, &k)
	return k.PartitionKey + "/" + k.RowKey
}

func (f *fakeTable) call(op string, entities [][]byte) error {
	c := fakeCall{Op: op, N: len(entities), Data: entities}
	for _, e := range entities {
		c.Keys = append(c.Keys, keyOf(e))
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	fail, drop := f.fail, f.dropResp
	f.mu.Unlock()
	if fail != nil {
		if err := fail(c); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, k := range c.Keys {
		if _, ok := f.rows[k]; ok {
			if op == "SubmitTransaction" {
				return batchError(http.StatusConflict, "EntityAlreadyExists")
			}
			return respError(http.StatusConflict, "EntityAlreadyExists", nil)
		}
		_ = i
	}
	for i, k := range c.Keys {
		f.rows[k] = append([]byte(nil), entities[i]...)
	}
	if drop != nil && drop(c) {
		return io.ErrUnexpectedEOF
	}
	return nil
}

func (f *fakeTable) SubmitTransaction(ctx context.Context, actions []aztables.TransactionAction, _ *aztables.SubmitTransactionOptions) (aztables.TransactionResponse, error) {
	es := make([][]byte, len(actions))
	for i, a := range actions {
		es[i] = a.Entity
	}
	if err := ctx.Err(); err != nil {
		return aztables.TransactionResponse{}, err
	}
	return aztables.TransactionResponse{}, f.call("SubmitTransaction", es)
}

func (f *fakeTable) AddEntity(ctx context.Context, entity []byte, _ *aztables.AddEntityOptions) (aztables.AddEntityResponse, error) {
	if err := ctx.Err(); err != nil {
		return aztables.AddEntityResponse{}, err
	}
	return aztables.AddEntityResponse{}, f.call("AddEntity", [][]byte{entity})
}

func (f *fakeTable) CreateTable(ctx context.Context, _ *aztables.CreateTableOptions) (aztables.CreateTableResponse, error) {
	return aztables.CreateTableResponse{}, f.call("CreateTable", nil)
}

// count returns the stored log entities (catalog excluded).
func (f *fakeTable) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k := range f.rows {
		if !strings.HasPrefix(k, "~catalog/") {
			n++
		}
	}
	return n
}

func (f *fakeTable) callsOf(op string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

// respError is the *azcore.ResponseError aztables returns for status.
func respError(status int, code string, header http.Header) error {
	h := http.Header{}
	for k, v := range header {
		h[k] = v
	}
	if code != "" {
		h.Set("x-ms-error-code", code)
	}
	body := `{"odata.error":{"code":"` + code + `","message":{"lang":"en-US","value":"injected"}}}`
	return runtime.NewResponseError(&http.Response{
		StatusCode: status,
		Status:     strconv.Itoa(status) + " " + http.StatusText(status),
		Header:     h,
		Body:       io.NopCloser(strings.NewReader(body)),
	})
}

// batchError is what aztables returns for a failed transaction: a
// ResponseError built from the outer 202 response, with the failed
// operation's response inside the multipart body.
func batchError(status int, code string) error {
	body := "--batchresponse_x\r\nContent-Type: multipart/mixed; boundary=changesetresponse_y\r\n\r\n" +
		"--changesetresponse_y\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n" +
		"HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n" +
		"Content-Type: application/json;odata=minimalmetadata;charset=utf-8\r\n\r\n" +
		`{"odata.error":{"code":"` + code + `","message":{"lang":"en-US","value":"0:injected"}}}` + "\r\n" +
		"--changesetresponse_y--\r\n--batchresponse_x--\r\n"
	return runtime.NewResponseError(&http.Response{
		StatusCode: http.StatusAccepted,
		Status:     "202 Accepted",
		Header:     http.Header{"Content-Type": {"multipart/mixed; boundary=batchresponse_x"}},
		Body:       io.NopCloser(strings.NewReader(body)),
	})
}
