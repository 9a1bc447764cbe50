package azurite

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// BatchOperation is one operation of a $batch change set.
type BatchOperation struct {
	Method string // POST (insert), PUT, PATCH, MERGE, DELETE
	URL    string // as written in the batch, absolute
	Header textproto.MIMEHeader
	Body   []byte // entity JSON; empty for DELETE
	// PartitionKey and RowKey come from the URL's key predicate, or from
	// the body for an insert.
	PartitionKey, RowKey string
}

// ParseBatch parses a $batch request body (multipart/mixed, with one
// multipart/mixed change set of application/http parts) as the aztables SDK
// writes it, given the request's Content-Type. A query part outside a change
// set is returned as an operation too. It returns an error if the body is not
// such a batch. Safe for concurrent use.
func ParseBatch(contentType string, body []byte) ([]BatchOperation, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.EqualFold(mt, "multipart/mixed") || params["boundary"] == "" {
		return nil, fmt.Errorf("batch Content-Type %q is not multipart/mixed with a boundary", contentType)
	}
	var ops []BatchOperation
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("batch: %w", err)
		}
		pmt, pparams, err := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if err != nil {
			return nil, fmt.Errorf("batch part: %w", err)
		}
		if strings.EqualFold(pmt, "multipart/mixed") {
			cr := multipart.NewReader(part, pparams["boundary"])
			for {
				op, err := cr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					return nil, fmt.Errorf("batch change set: %w", err)
				}
				o, err := parseOperation(op)
				if err != nil {
					return nil, err
				}
				ops = append(ops, o)
			}
			continue
		}
		o, err := parseOperation(part)
		if err != nil {
			return nil, err
		}
		ops = append(ops, o)
	}
	return ops, nil
}

// parseOperation reads one application/http part: a request line, headers,
// a blank line and the body (its length is the rest of the part; the SDK
// writes no Content-Length).
func parseOperation(part *multipart.Part) (BatchOperation, error) {
	raw, err := io.ReadAll(part)
	if err != nil {
		return BatchOperation{}, fmt.Errorf("batch operation: %w", err)
	}
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw)))
	line, err := tr.ReadLine()
	if err != nil {
		return BatchOperation{}, fmt.Errorf("batch operation: %w", err)
	}
	method, rest, ok1 := strings.Cut(line, " ")
	target, _, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return BatchOperation{}, fmt.Errorf("batch operation: bad request line %q", line)
	}
	hdr, err := tr.ReadMIMEHeader()
	if err != nil && !errors.Is(err, io.EOF) {
		return BatchOperation{}, fmt.Errorf("batch operation headers: %w", err)
	}
	body := raw
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		body = raw[i+4:]
	} else if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		body = raw[i+2:]
	} else {
		body = nil
	}
	op := BatchOperation{Method: method, URL: target, Header: hdr, Body: body}
	if m := hdr.Get("X-HTTP-Method"); m != "" && method == http.MethodPost {
		op.Method = m
	}
	if u, err := url.Parse(target); err == nil {
		res := lastSegment(u)
		if _, keys, ok := strings.Cut(res, "("); ok {
			op.PartitionKey, op.RowKey, _ = parseKeys("(" + keys)
		}
	}
	if op.PartitionKey == "" && op.RowKey == "" && len(bytes.TrimSpace(body)) > 0 {
		if e, err := parseEntity(body); err == nil {
			if e.pk != nil {
				op.PartitionKey = *e.pk
			}
			if e.rk != nil {
				op.RowKey = *e.rk
			}
		}
	}
	return op, nil
}

// checkBatch applies the batch rules and each operation's entity rules.
// Rejections of one operation carry its index (Azure answers them inside a
// 202 multipart response); a too-large payload is rejected as a whole (413).
// Bodies it cannot parse are left to Azurite.
func checkBatch(contentType string, body []byte) *Rejection {
	if len(body) > MaxBatchBytes {
		return &Rejection{Status: http.StatusRequestEntityTooLarge, Code: CodeRequestBodyTooLarge,
			Message: msgRequestBodyTooLarge, Index: -1, Detail: fmt.Sprintf("%d bytes", len(body))}
	}
	ops, err := ParseBatch(contentType, body)
	if err != nil || len(ops) == 0 {
		return nil
	}
	if len(ops) > MaxBatchOperations {
		rej := reject(CodeInvalidInput, msgTooManyOperations, fmt.Sprintf("%d operations", len(ops)))
		rej.Index = 0 // as Azure (and Azurite's copy of its message) does
		return rej
	}
	rows := map[string]bool{}
	for i, op := range ops {
		if op.PartitionKey != ops[0].PartitionKey {
			rej := reject(CodeDifferentPartitions, msgDifferentPartitions,
				fmt.Sprintf("PartitionKey %s after %s", quote(op.PartitionKey), quote(ops[0].PartitionKey)))
			rej.Index = i
			return rej
		}
		if rows[op.RowKey] {
			rej := reject(CodeInvalidDuplicateRow, fmt.Sprintf(msgInvalidDuplicateRow, op.RowKey), "RowKey "+quote(op.RowKey))
			rej.Index = i
			return rej
		}
		rows[op.RowKey] = true
		switch op.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, "MERGE":
			if rej, err := validateEntity(op.Body, op.PartitionKey, op.RowKey, op.Method != http.MethodPost); err == nil && rej != nil {
				rej.Index = i
				return rej
			}
		}
	}
	return nil
}

// writeBatchError answers a batch the way Azure does when one operation of
// its change set fails: 202 Accepted with a multipart/mixed body whose one
// change-set response carries the operation's status and OData error, the
// message prefixed with "<index>:". The aztables SDK turns it into an
// *azcore.ResponseError (status 202, the body in its message).
func writeBatchError(w http.ResponseWriter, rej *Rejection) {
	batch := "batchresponse_" + newUUID()
	changeset := "changesetresponse_" + newUUID()
	var b bytes.Buffer
	fmt.Fprintf(&b, "--%s\r\nContent-Type: multipart/mixed; boundary=%s\r\n\r\n", batch, changeset)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n", changeset)
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", rej.Status, http.StatusText(rej.Status))
	fmt.Fprintf(&b, "X-Content-Type-Options: nosniff\r\nDataServiceVersion: 3.0;\r\nContent-Type: %s\r\n\r\n", jsonErrorType)
	b.Write(errorBody(rej, fmt.Sprintf("%d:", rej.Index)))
	fmt.Fprintf(&b, "\r\n--%s--\r\n--%s--\r\n", changeset, batch)

	h := w.Header()
	h.Set("Content-Type", "multipart/mixed; boundary="+batch)
	h.Set("Cache-Control", "no-cache")
	h.Set("DataServiceVersion", "3.0;")
	h.Set("x-ms-request-id", newUUID())
	h.Set("x-ms-version", "2019-02-02")
	w.WriteHeader(http.StatusAccepted)
	w.Write(b.Bytes())
}
