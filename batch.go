package tablelog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/azure"
)

// boundaries are a client's multipart boundaries and the fixed text around
// the operations of a $batch body. Entity JSON cannot contain a delimiter
// (a line break must precede one, and JSON escapes line breaks), so one
// random pair per client is enough.
type boundaries struct {
	contentType string // of the $batch request
	head        string // opens the batch and the change set
	opHead      string // opens one operation's part
	tail        string // closes the change set and the batch
}

func newBoundaries() boundaries {
	var r [16]byte
	_, _ = rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	batch, cs := "batch_"+id, "changeset_"+id
	return boundaries{
		contentType: "multipart/mixed; boundary=" + batch,
		head:        "--" + batch + "\r\nContent-Type: multipart/mixed; boundary=" + cs + "\r\n\r\n",
		opHead:      "--" + cs + "\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n",
		tail:        "--" + cs + "--\r\n\r\n--" + batch + "--\r\n",
	}
}

var errEmptyTransaction = errors.New("tablelog: a transaction needs at least one action")

// SubmitTransaction stores actions as one entity-group transaction: all of
// them or none. All must share one PartitionKey, at most 100 of them, at
// most 4 MiB in all (the service's limits; the client does not check them).
// Add actions are sent as their Entity bytes exactly, without decoding or
// re-encoding; other action types read the entity's PartitionKey and RowKey
// for the operation's URL. The write is attempted once (see ClientOptions).
//
// When one operation fails the service stores nothing and answers 202 with
// the failed operation's response inside; SubmitTransaction then returns a
// *TransactionError with that operation's index, status and code, which
// unwraps to an *azcore.ResponseError with the same status and code. A
// request rejected as a whole (413, 403, ...) is an *azcore.ResponseError.
// options may be nil.
func (c *Client) SubmitTransaction(ctx context.Context, actions []aztables.TransactionAction, options *aztables.SubmitTransactionOptions) (aztables.TransactionResponse, error) {
	if len(actions) == 0 {
		return aztables.TransactionResponse{}, errEmptyTransaction
	}
	buf := c.batchBuffer(actions)
	if err := c.writeBatch(buf, actions); err != nil {
		c.freeBatchBuffer(buf)
		return aztables.TransactionResponse{}, err
	}
	req, err := c.newRequest(noRetry(ctx), http.MethodPost, c.withSAS(c.batch, ""))
	if err != nil {
		c.freeBatchBuffer(buf)
		return aztables.TransactionResponse{}, err
	}
	if err := setMemBody(req, buf.Bytes(), c.bounds.contentType); err != nil {
		return aztables.TransactionResponse{}, err
	}
	// The response is read into reused memory (see sizedDownload).
	var mem []byte
	select {
	case mem = <-c.respBufs:
	default:
	}
	pb := &pageBody{hint: int(c.respHint.Load()), buf: mem}
	req.SetOperationValue(pb)
	resp, err := c.do(req, http.StatusAccepted, http.StatusNoContent)
	if err != nil {
		return aztables.TransactionResponse{}, err
	}
	// The service answers 202 only once it has read the whole body, so
	// the transport is done with buf: it can be reused. After any other
	// outcome the transport may still be reading it (a request refused
	// early, a cancelled one); then it is left to the garbage collector.
	if resp.StatusCode == http.StatusAccepted {
		c.freeBatchBuffer(buf)
	}
	payload := pb.b
	if payload == nil { // not read by sizedDownload (a policy of the caller's answered?)
		if payload, err = runtime.Payload(resp); err != nil {
			return aztables.TransactionResponse{}, azure.Redact(err)
		}
	} else {
		c.respHint.Store(int64(len(payload)))
		defer c.freeResponseBuffer(payload) // nothing below keeps it
	}
	if len(payload) > 0 && payload[0] == '{' {
		// The batch as a whole was refused with a JSON error (which
		// keeps its own copy of the body).
		resp.Body = io.NopCloser(bytes.NewReader(bytes.Clone(payload)))
		return aztables.TransactionResponse{}, runtime.NewResponseError(resp)
	}
	if st, code, idx, failed := azure.BatchFailure(payload); failed {
		return aztables.TransactionResponse{}, &TransactionError{
			Index: idx, StatusCode: st, Code: code,
			Response: &azcore.ResponseError{ErrorCode: code, StatusCode: st, RawResponse: resp},
		}
	}
	return aztables.TransactionResponse{}, nil
}

// maxFreeBatchBuffers is how many $batch body buffers a Client keeps for
// reuse (one per concurrent transaction: the sink runs 4 writers by
// default); maxFreeBatchBytes the largest it keeps (a 4 MiB transaction
// with room to spare).
const (
	maxFreeBatchBuffers = 8
	maxFreeBatchBytes   = 8 << 20
)

// batchBuffer returns an empty buffer with room for the body of actions:
// a kept one, or a new one sized once (no doubling from small sizes).
func (c *Client) batchBuffer(actions []aztables.TransactionAction) *bytes.Buffer {
	n := len(c.bounds.head) + 64
	for i := range actions {
		n += len(c.bounds.opHead) + len(c.tblURL) + len(actions[i].Entity) + 256
	}
	var buf *bytes.Buffer
	select {
	case buf = <-c.bufs:
		buf.Reset()
	default:
		buf = new(bytes.Buffer)
	}
	buf.Grow(n)
	return buf
}

// freeBatchBuffer keeps buf for reuse, unless enough are kept or it is
// too big. The transport must be done with it.
func (c *Client) freeBatchBuffer(buf *bytes.Buffer) {
	if buf.Cap() > maxFreeBatchBytes {
		return
	}
	select {
	case c.bufs <- buf:
	default:
	}
}

// freeResponseBuffer keeps b's memory for the next $batch response.
func (c *Client) freeResponseBuffer(b []byte) {
	if cap(b) > maxFreeBatchBytes {
		return
	}
	select {
	case c.respBufs <- b[:0]:
	default:
	}
}

// writeBatch appends the multipart body of actions to buf.
func (c *Client) writeBatch(buf *bytes.Buffer, actions []aztables.TransactionAction) error {
	b := &c.bounds
	buf.WriteString(b.head)
	for i := range actions {
		a := &actions[i]
		buf.WriteString(b.opHead)
		if a.ActionType == aztables.TransactionTypeAdd {
			buf.WriteString("POST ")
			buf.WriteString(c.tblURL)
			buf.WriteString(" HTTP/1.1\r\nAccept: " + acceptMinimal + "\r\nContent-Type: application/json\r\nDataServiceVersion: 3.0\r\nPrefer: return-no-content\r\n\r\n")
			buf.Write(a.Entity)
			buf.WriteString("\r\n")
			continue
		}
		var keys struct{ PartitionKey, RowKey *string }
		if err := json.Unmarshal(a.Entity, &keys); err != nil {
			return fmt.Errorf("tablelog: transaction action %d: %w", i, err)
		}
		if keys.PartitionKey == nil || keys.RowKey == nil {
			return fmt.Errorf("tablelog: transaction action %d: the entity needs a PartitionKey and a RowKey", i)
		}
		u := c.entityURL(*keys.PartitionKey, *keys.RowKey)
		var method, ifMatch string
		withBody := true
		switch a.ActionType {
		case aztables.TransactionTypeDelete:
			method, ifMatch, withBody = http.MethodDelete, "*", false
		case aztables.TransactionTypeUpdateMerge, aztables.TransactionTypeInsertMerge:
			method = http.MethodPatch
			if a.ActionType == aztables.TransactionTypeUpdateMerge {
				ifMatch = "*"
			}
		case aztables.TransactionTypeUpdateReplace, aztables.TransactionTypeInsertReplace:
			method = http.MethodPut
			if a.ActionType == aztables.TransactionTypeUpdateReplace {
				ifMatch = "*"
			}
		default:
			return fmt.Errorf("tablelog: transaction action %d: unknown action type %q", i, a.ActionType)
		}
		if a.IfMatch != nil {
			ifMatch = string(*a.IfMatch)
		}
		xMethod := ""
		if method == http.MethodPatch && c.cosmos {
			method, xMethod = http.MethodPost, "MERGE"
		}
		buf.WriteString(method)
		buf.WriteByte(' ')
		buf.WriteString(u)
		buf.WriteString(" HTTP/1.1\r\nAccept: " + acceptMinimal + "\r\n")
		if withBody {
			buf.WriteString("Content-Type: application/json\r\n")
		}
		buf.WriteString("DataServiceVersion: 3.0\r\n")
		if ifMatch != "" {
			buf.WriteString("If-Match: ")
			buf.WriteString(strings.Map(dropCRLF, ifMatch))
			buf.WriteString("\r\n")
		}
		if xMethod != "" {
			buf.WriteString("X-HTTP-Method: " + xMethod + "\r\n")
		}
		buf.WriteString("\r\n")
		if withBody {
			buf.Write(a.Entity)
		}
		buf.WriteString("\r\n")
	}
	buf.WriteString(b.tail)
	return nil
}

// dropCRLF removes line breaks (a header value must not end the header).
func dropCRLF(r rune) rune {
	if r == '\r' || r == '\n' {
		return -1
	}
	return r
}
