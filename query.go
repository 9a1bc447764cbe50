package tablelog

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/azure"
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
			resp, size, err := c.queryPage(ctx, &o, npk, nrk, int(c.pageHint.Load()))
			if size > 0 {
				c.pageHint.Store(int64(size))
			}
			return resp, err
		},
	})
}

func empty(s *string) bool { return s == nil || *s == "" }

// queryPage fetches one page; hint is the expected body size. It returns
// the body's size.
func (c *Client) queryPage(ctx context.Context, o *aztables.ListEntitiesOptions, npk, nrk *string, hint int) (aztables.ListEntitiesResponse, int, error) {
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
		return aztables.ListEntitiesResponse{}, 0, err
	}
	pb := &pageBody{hint: hint}
	req.SetOperationValue(pb)
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return aztables.ListEntitiesResponse{}, 0, err
	}
	body := pb.b
	if body == nil { // not read by sizedDownload (a policy of the caller's answered?)
		if body, err = runtime.Payload(resp); err != nil {
			return aztables.ListEntitiesResponse{}, 0, azure.Redact(err)
		}
	}
	ents, err := splitValue(body)
	if err != nil {
		return aztables.ListEntitiesResponse{}, 0, err
	}
	var out aztables.ListEntitiesResponse
	out.Entities = ents
	if v := resp.Header.Get("x-ms-continuation-NextPartitionKey"); v != "" {
		out.NextPartitionKey = &v
	}
	if v := resp.Header.Get("x-ms-continuation-NextRowKey"); v != "" {
		out.NextRowKey = &v
	}
	return out, len(body), nil
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
	var out [][]byte
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
