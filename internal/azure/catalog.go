package azure

import (
	"bytes"
	"context"
	"encoding/json"
	"iter"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/schema"
)

// Lister is the query method of *aztables.Client and tablelog.Client.
type Lister interface {
	NewListEntitiesPager(options *aztables.ListEntitiesOptions) *runtime.Pager[aztables.ListEntitiesResponse]
}

// Catalog yields the RowKeys of the catalog partition (schema.CatalogPartition)
// in [lo, hi) — an empty bound is open — in the service's (ascending)
// order, reading RowKeys only. A failed request is yielded as an error
// (as the client returned it) and ends the sequence.
func Catalog(ctx context.Context, t Lister, lo, hi string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		f := "PartitionKey eq " + quote(schema.CatalogPartition)
		if lo != "" {
			f += " and RowKey ge " + quote(lo)
		}
		if hi != "" {
			f += " and RowKey lt " + quote(hi)
		}
		sel := schema.ColRowKey
		p := t.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &f, Select: &sel})
		for p.More() {
			page, err := p.NextPage(ctx)
			if err != nil {
				yield("", err)
				return
			}
			for _, raw := range page.Entities {
				if rk, ok := RowKey(raw); ok && !yield(rk, nil) {
					return
				}
			}
		}
	}
}

// RowKey returns the RowKey of an entity's JSON without decoding the rest
// (keys are written by tablelog and need no unescaping beyond \"; an
// escaped key is decoded properly).
func RowKey(raw []byte) (string, bool) {
	const k = `"RowKey":"`
	i := bytes.Index(raw, []byte(k))
	if i < 0 {
		return "", false
	}
	rest := raw[i+len(k):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return "", false
	}
	if bytes.IndexByte(rest[:j], '\\') >= 0 {
		// Escaped: find the closing quote, then decode the literal.
		for j = 0; j < len(rest); j++ {
			if rest[j] == '\\' {
				j++
			} else if rest[j] == '"' {
				break
			}
		}
		var s string
		if j >= len(rest) || json.Unmarshal(raw[i+len(k)-1:i+len(k)+j+1], &s) != nil {
			return "", false
		}
		return s, true
	}
	return string(rest[:j]), true
}

// quote renders s as an OData string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
