package query

import (
	"context"
	"slices"
)

// Tail returns the last n records selected by q, oldest first (the order of
// a terminal's tail). q.Limit is ignored: n is the limit. n <= 0 returns
// nil, nil.
//
// It costs one $top=n query per day partition touched (n <= 1,000; more
// takes one request per 1,000): when the newest day holds n matching
// records, that is a single query. A sharded day costs one $top=n query
// per shard (its shard markers, on the first page of the day's partition,
// may take a few of that page's n places). With Contains set, pages of at least 200 entities are
// requested, since some are dropped on the client.
//
// An error (including an undecodable entity) is returned with no records.
func (r *Reader) Tail(ctx context.Context, q Logs, n int) ([]Record, error) {
	if n <= 0 {
		return nil, r.validate(q)
	}
	q.Limit = n
	out := make([]Record, 0, min(n, maxPageSize))
	for rec, err := range r.Logs(ctx, q) {
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	slices.Reverse(out)
	return out, nil
}
