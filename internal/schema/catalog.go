package schema

import (
	"math"
	"strconv"
	"time"
)

// The catalog's shard entries. Next to the entry of a service's day (RowKey
// PartitionKey(service, day), see AppendCatalogEntity), the catalog holds
// one entry per shard k >= 1 of that day:
//
//	PartitionKey = CatalogPartition
//	RowKey       = ShardPartitionKey(service, day, k)
//	Service      = the service name
//	Day          = the UTC day as "yyyyMMdd"
//	Shard        = k (Edm.Int32)
//
// A writer inserts it (insert-only: an "already exists" answer means
// another writer announced the shard first, which is success) before the
// first record it stores in the shard, so a reader that reads the catalog
// and then the partitions it lists misses no shard whose records it could
// see. Catalog RowKeys sort a day's entry, then its shards ("_1", "_10",
// "_2", ... in string order), then the next day, so one RowKey range
// (CatalogRange) lists every shard of a span of days.
const CatalogColShard = "Shard"

// AppendCatalogShardEntity appends the catalog entry of shard of service's
// day; shard 0 is the day's own entry (AppendCatalogEntity). shard outside
// [0, MaxShard] panics, as in ShardPartitionKey.
func AppendCatalogShardEntity(dst []byte, service string, day time.Time, shard int) []byte {
	if shard == 0 {
		return AppendCatalogEntity(dst, service, day)
	}
	dst = append(dst, `{"PartitionKey":`...)
	dst, _, _, _ = appendJSONString(dst, CatalogPartition, math.MaxInt)
	dst = append(dst, `,"RowKey":"`...)
	dst = AppendShardPartitionKey(dst, service, day, shard) // no characters to escape
	dst = append(dst, `","`+CatalogColService+`":`...)
	dst, _, _, _ = appendJSONString(dst, service, math.MaxInt)
	dst = append(dst, `,"`+CatalogColDay+`":"`...)
	dst = day.UTC().AppendFormat(dst, DayLayout)
	dst = append(dst, `","`+CatalogColShard+`":`...)
	dst = strconv.AppendInt(dst, int64(shard), 10)
	return append(dst, '}')
}

// CatalogRange returns the catalog RowKey bounds, lo <= RowKey < hi, of the
// entries of service's days from first through last (inclusive, UTC days),
// shards included. The range may also hold entries of other services whose
// names extend this one with '_'; parse each RowKey (ParsePartitionKey) and
// keep those of service.
func CatalogRange(service string, first, last time.Time) (lo, hi string) {
	return PartitionKey(service, first), PartitionKey(service, last) + "~" // '~' sorts after '_' and digits
}
