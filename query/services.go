package query

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/tablelog/tablelog/internal/azure"
	"github.com/tablelog/tablelog/internal/schema"
)

// Services returns the names of the services that have logs in the table,
// sorted, from the catalog the sink writes (partition schema.CatalogPartition,
// one entity per service and day). It reads only the catalog partition,
// selecting RowKeys only. Catalog RowKeys that are not "<service>_<yyyyMMdd>"
// are ignored. Safe for concurrent use; errors as in the package doc.
func (r *Reader) Services(ctx context.Context) ([]string, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	var out []string
	for rk, err := range r.catalog(ctx, "", "") {
		if err != nil {
			return nil, err
		}
		service, _, _, err := schema.ParsePartitionKey(rk)
		if err != nil || schema.ValidateService(service) != nil {
			continue
		}
		// RowKeys arrive sorted, so a service's days are contiguous
		// (unless a service name extends another with '_': dedupe below).
		if n := len(out); n == 0 || out[n-1] != service {
			out = append(out, service)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Days returns the UTC days (midnight, ascending) on which service wrote
// logs, from the catalog. A service with no catalog entries has no days (nil,
// nil). An invalid service name is an ErrInvalidQuery error.
func (r *Reader) Days(ctx context.Context, service string) ([]time.Time, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	if err := schema.ValidateService(service); err != nil {
		return nil, fmt.Errorf("tablelog/query: %w: %w", ErrInvalidQuery, err)
	}
	return r.catalogDays(ctx, service, time.Time{}, time.Time{})
}

// catalogDays returns the days from <= day < to (zero: open) the catalog
// lists for service, ascending, without duplicates (shard partitions of a
// day count as that day).
func (r *Reader) catalogDays(ctx context.Context, service string, from, to time.Time) ([]time.Time, error) {
	lo, hi := service+"_", service+"_~"
	if !from.IsZero() {
		lo = schema.PartitionKey(service, from)
	}
	if !to.IsZero() {
		hi = schema.PartitionKey(service, to)
	}
	var days []time.Time
	for rk, err := range r.catalog(ctx, lo, hi) {
		if err != nil {
			return nil, err
		}
		svc, day, _, err := schema.ParsePartitionKey(rk)
		if err != nil || svc != service {
			continue
		}
		if n := len(days); n == 0 || !days[n-1].Equal(day) {
			days = append(days, day)
		}
	}
	slices.SortFunc(days, func(a, b time.Time) int { return a.Compare(b) })
	return slices.CompactFunc(days, time.Time.Equal), nil
}

// catalog yields the RowKeys of the catalog partition in [lo, hi) ("" =
// open), in order, page by page (azure.Catalog, the catalog iteration the
// sink and the CLI share), errors mapped as in the package doc.
func (r *Reader) catalog(ctx context.Context, lo, hi string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for rk, err := range azure.Catalog(ctx, r.table, lo, hi) {
			if err != nil {
				yield("", mapError(ctx, "read the catalog ("+schema.CatalogPartition+")", err))
				return
			}
			if !yield(rk, nil) {
				return
			}
		}
	}
}
