package azure

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// TransactionError reports the failed operation of an entity-group
// transaction: the service answered 202 with a multipart body whose change
// set response carries that operation's status and error. Nothing of the
// transaction was stored. It unwraps to an *azcore.ResponseError whose
// StatusCode and ErrorCode are the failed operation's own (its RawResponse
// is the outer 202 response), so code that inspects *azcore.ResponseError
// sees the status that matters.
type TransactionError struct {
	Index      int    // 0-based position of the failed operation; -1 if the response does not say
	StatusCode int    // the failed operation's HTTP status
	Code       string // the failed operation's service error code, if any
	Response   *azcore.ResponseError
}

// Error describes the failure without URLs or entity contents.
func (e *TransactionError) Error() string {
	var b strings.Builder
	b.WriteString("transaction failed")
	if e.Index >= 0 {
		b.WriteString(" at operation ")
		b.WriteString(strconv.Itoa(e.Index))
	}
	b.WriteString(": ")
	WriteStatus(&b, e.StatusCode, e.Code)
	return b.String()
}

// WriteStatus writes an HTTP status and the service's error code as
// "409 Conflict (EntityAlreadyExists)": the status text and the code are
// left out when unknown or empty.
func WriteStatus(b *strings.Builder, status int, code string) {
	b.WriteString(strconv.Itoa(status))
	if t := http.StatusText(status); t != "" {
		b.WriteByte(' ')
		b.WriteString(t)
	}
	if code != "" {
		b.WriteString(" (")
		b.WriteString(code)
		b.WriteByte(')')
	}
}

// Unwrap returns the *azcore.ResponseError.
func (e *TransactionError) Unwrap() error { return e.Response }

var httpLine = []byte("HTTP/1.1 ")

// BatchFailure finds the failed operation in the body of a $batch response:
// the first inner response with a status of 400 or more, its OData error
// code, and the operation's index, read from the error message's "N:"
// prefix (Azure's form) or, failing that, from a Content-ID header of that
// response. ok is false if no inner response failed. The body is scanned
// once; nothing is decoded into maps.
func BatchFailure(body []byte) (status int, code string, index int, ok bool) {
	index = -1
	rest := body
	for {
		i := bytes.Index(rest, httpLine)
		if i < 0 {
			return 0, "", -1, false
		}
		rest = rest[i+len(httpLine):]
		if len(rest) < 3 {
			return 0, "", -1, false
		}
		st, ok := status3(rest)
		if !ok || st < 400 {
			continue
		}
		status = st
		// This response runs to the next boundary line.
		part := rest
		if j := bytes.Index(part, []byte("\n--")); j >= 0 {
			part = part[:j]
		}
		headers, payload := part, []byte(nil)
		if j := bytes.Index(part, []byte("\r\n\r\n")); j >= 0 {
			headers, payload = part[:j], part[j+4:]
		} else if j := bytes.Index(part, []byte("\n\n")); j >= 0 {
			headers, payload = part[:j], part[j+2:]
		}
		code = jsonString(payload, `"code"`)
		if msg := jsonString(payload, `"value"`); msg != "" {
			if n, ok := leadingIndex(msg); ok {
				index = n
			}
		}
		if index < 0 {
			index = contentID(headers)
		}
		return status, code, index, true
	}
}

// leadingIndex parses the "N:" prefix of a batch error message.
func leadingIndex(msg string) (int, bool) {
	d, _, ok := strings.Cut(msg, ":")
	if !ok || d == "" || len(d) > 4 {
		return 0, false
	}
	n, err := strconv.Atoi(d)
	return n, err == nil && n >= 0
}

// contentID reads a numeric Content-ID header from a response's header
// block, or -1.
func contentID(headers []byte) int {
	for _, line := range bytes.Split(headers, []byte("\n")) {
		k, v, ok := bytes.Cut(bytes.TrimSpace(line), []byte(":"))
		if ok && strings.EqualFold(string(k), "Content-ID") {
			if n, err := strconv.Atoi(string(bytes.TrimSpace(v))); err == nil && n >= 0 {
				return n
			}
		}
	}
	return -1
}

// jsonString extracts the string value following key (e.g. `"code"`) in
// b, without unescaping beyond \" (codes and the message prefix are plain
// ASCII). It returns "" if absent.
func jsonString(b []byte, key string) string {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return ""
	}
	b = bytes.TrimLeft(b[i+len(key):], " \t\r\n")
	if len(b) == 0 || b[0] != ':' {
		return ""
	}
	b = bytes.TrimLeft(b[1:], " \t\r\n")
	if len(b) == 0 || b[0] != '"' {
		return ""
	}
	b = b[1:]
	for j := 0; j < len(b) && j < 4096; j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return string(b[:j])
		}
	}
	return ""
}

// status3 parses the three-digit status at the start of b.
func status3(b []byte) (int, bool) {
	n := 0
	for _, c := range b[:3] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
