package tablelog

import (
	"context"
	"encoding/binary"
	"errors"
	"math/bits"
	"net/http"
	"net/url"
	"strconv"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/azure"
	"github.com/tablelog/tablelog/internal/schema"
)

// NewListEntitiesPager queries the table page by page (Filter, Select, Top
// and a starting NextPartitionKey/NextRowKey as in aztables). Each page's
// Entities are the JSON objects of the response's "value" array, sliced out
// of the response body as sent (minimal metadata: type annotations
// included) — no decoding into maps and no re-encoding. The slices share
// the page's body; they stay valid and are never written by the client.
// The pager follows the x-ms-continuation-NextPartitionKey/NextRowKey
// headers; a page may be empty while more pages follow. listOptions may
// be nil. Requests are retried per ClientOptions.Retry.
func (c *Client) NewListEntitiesPager(listOptions *aztables.ListEntitiesOptions) *runtime.Pager[aztables.ListEntitiesResponse] {
	var o aztables.ListEntitiesOptions
	if listOptions != nil {
		o = *listOptions
	}
	return runtime.NewPager(runtime.PagingHandler[aztables.ListEntitiesResponse]{
		More: func(page aztables.ListEntitiesResponse) bool {
			return !empty(page.NextPartitionKey) || !empty(page.NextRowKey)
		},
		Fetcher: func(ctx context.Context, page *aztables.ListEntitiesResponse) (aztables.ListEntitiesResponse, error) {
			npk, nrk := o.NextPartitionKey, o.NextRowKey
			if page != nil {
				npk, nrk = page.NextPartitionKey, page.NextRowKey
			}
			resp, _, err := c.queryPage(ctx, &o, npk, nrk, nil)
			return resp, err
		},
	})
}

// ListEntitiesPage fetches one page of a query: the page the first
// NextPage of NewListEntitiesPager(listOptions) returns, its Entities
// sliced out of the response body in the same way, but with the body read
// into buf's memory when buf has room for it (else into new memory; buf
// may be nil). It also returns the memory that holds the body, for the
// caller to pass as buf to a later call and so read page after page into
// one buffer.
//
// The page's Entities are valid only until that memory is passed to
// ListEntitiesPage again (the call overwrites them): the caller must be
// done with them by then, and must not keep them beyond. Use
// NewListEntitiesPager for entities that stay valid.
//
// The next page of the query is the call with listOptions' NextPartitionKey
// and NextRowKey set to the page's; the page is the last when both are
// empty. listOptions may be nil. Requests are retried per
// ClientOptions.Retry.
func (c *Client) ListEntitiesPage(ctx context.Context, listOptions *aztables.ListEntitiesOptions, buf []byte) (aztables.ListEntitiesResponse, []byte, error) {
	var o aztables.ListEntitiesOptions
	if listOptions != nil {
		o = *listOptions
	}
	if buf == nil {
		buf = []byte{} // the body's memory is returned (never nil on success)
	}
	return c.queryPage(ctx, &o, o.NextPartitionKey, o.NextRowKey, buf)
}

func empty(s *string) bool { return s == nil || *s == "" }

// queryPage fetches one page. With buf not nil, the body is read into
// buf's memory if it fits (see pageBody); queryPage returns the memory
// that holds the body (nil when buf is nil).
func (c *Client) queryPage(ctx context.Context, o *aztables.ListEntitiesOptions, npk, nrk *string, buf []byte) (aztables.ListEntitiesResponse, []byte, error) {
	q := url.Values{}
	if o.Format != nil {
		q.Set("$format", string(*o.Format))
	}
	if o.Top != nil {
		q.Set("$top", strconv.FormatInt(int64(*o.Top), 10))
	}
	if o.Select != nil {
		q.Set("$select", *o.Select)
	}
	if o.Filter != nil {
		q.Set("$filter", *o.Filter)
	}
	if npk != nil {
		q.Set("NextPartitionKey", *npk)
	}
	if nrk != nil {
		q.Set("NextRowKey", *nrk)
	}
	req, err := c.newRequest(ctx, http.MethodGet, c.withSAS(c.tblURL+"()", q.Encode()))
	if err != nil {
		return aztables.ListEntitiesResponse{}, nil, err
	}
	pb := &pageBody{hint: int(c.pageHint.Load()), buf: buf}
	req.SetOperationValue(pb)
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return aztables.ListEntitiesResponse{}, buf, err
	}
	body := pb.b
	if body == nil { // not read by sizedDownload (a policy of the caller's answered?)
		if body, err = runtime.Payload(resp); err != nil {
			return aztables.ListEntitiesResponse{}, buf, azure.Redact(err)
		}
	} else {
		c.pageHint.Store(int64(len(body)))
	}
	if buf != nil && pb.b != nil {
		buf = body // the memory sizedDownload read into: buf's, or a larger one
	}
	ents, err := splitValue(body)
	if err != nil {
		return aztables.ListEntitiesResponse{}, buf, err
	}
	var out aztables.ListEntitiesResponse
	out.Entities = ents
	if v := resp.Header.Get("x-ms-continuation-NextPartitionKey"); v != "" {
		out.NextPartitionKey = &v
	}
	if v := resp.Header.Get("x-ms-continuation-NextRowKey"); v != "" {
		out.NextRowKey = &v
	}
	return out, buf, nil
}

var errBadPage = errors.New("tablelog: the query response is not a JSON object with a \"value\" array")

// splitValue returns the elements of the top-level "value" array of a JSON
// object, as subslices of body. It validates the structure it walks
// (strings, nesting) but not every literal: each element is checked to be
// a complete JSON value by its bracket and string structure.
func splitValue(body []byte) ([][]byte, error) {
	s := scanner{b: body}
	s.ws()
	if !s.eat('{') {
		return nil, errBadPage
	}
	// Room for the entities up front: an entity takes 64 bytes at the
	// least in practice, and a page holds at most 1,000.
	out := make([][]byte, 0, min(len(body)/64+1, 1000))
	found := false
	for {
		s.ws()
		if s.eat('}') {
			break
		}
		ks, ke, ok := s.str()
		if !ok {
			return nil, errBadPage
		}
		s.ws()
		if !s.eat(':') {
			return nil, errBadPage
		}
		s.ws()
		if string(body[ks:ke]) == "value" {
			if !s.eat('[') {
				return nil, errBadPage
			}
			found = true
			s.ws()
			if !s.eat(']') {
				for {
					s.ws()
					start := s.i
					if !s.value() {
						return nil, errBadPage
					}
					out = append(out, body[start:s.i:s.i])
					s.ws()
					if s.eat(']') {
						break
					}
					if !s.eat(',') {
						return nil, errBadPage
					}
				}
			}
		} else if !s.value() {
			return nil, errBadPage
		}
		s.ws()
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			break
		}
		return nil, errBadPage
	}
	if !found {
		return nil, errBadPage
	}
	return out, nil
}

// scanner walks JSON structure without building values.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str skips a string and returns the bounds of its contents.
func (s *scanner) str() (start, end int, ok bool) {
	if !s.eat('"') {
		return 0, 0, false
	}
	start = s.i
	for s.i < len(s.b) {
		if s.i+8 <= len(s.b) {
			// Eight bytes at a time to the first byte to look at.
			m := schema.StringStops(binary.LittleEndian.Uint64(s.b[s.i:]))
			if m == 0 {
				s.i += 8
				continue
			}
			s.i += bits.TrailingZeros64(m) >> 3
		}
		c := s.b[s.i]
		if !strStop[c] {
			s.i++
			continue
		}
		switch {
		case c == '\\':
			s.i += 2
		case c == '"':
			end = s.i
			s.i++
			return start, end, true
		default: // a control character
			return 0, 0, false
		}
	}
	return 0, 0, false
}

// strStop marks the bytes str stops at inside a string: '"', '\\' and
// control characters.
var strStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// value skips one JSON value.
func (s *scanner) value() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"':
		_, _, ok := s.str()
		return ok
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, _, ok := s.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	default: // number, true, false, null
		start := s.i
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return s.i > start
			}
			s.i++
		}
		return s.i > start
	}
}
