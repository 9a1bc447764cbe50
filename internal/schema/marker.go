package schema

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Shard markers. Before the first record it stores in shard k >= 1 of a
// day, a writer inserts, into the day's own partition (shard 0), the entity
//
//	PartitionKey = PartitionKey(service, day)
//	RowKey       = ShardMarkerRowKey(k) ("!shard_<k>")
//	Shard        = k (Edm.Int32)
//
// insert-only (an add-only credential suffices; "already exists" means
// another writer announced the shard first, which is success). A marker's
// RowKey sorts before every log RowKey (inverted ULIDs start with a
// digit), so the first page of any read of shard 0 that includes the
// marker range (RowKey lt ShardMarkerEnd) carries the day's markers ahead
// of its records: a reader learns a day's shards at no extra request, and
// reads an unsharded day exactly as before shards existed. RowKeys below
// ShardMarkerEnd are reserved for markers: readers never decode them as
// records.
//
// A reader that does not ask for the marker range never sees markers
// unless it reads without any RowKey or column condition (a level filter
// excludes them: they have no Severity); a reader of a version before
// shards then reports them as undecodable entities (and misses the shards'
// records anyway).
const (
	ShardMarkerPrefix = "!shard_"
	ShardMarkerEnd    = "\"" // the first RowKey after the marker range
)

// ShardMarkerRowKey returns the RowKey of shard's marker. shard outside
// [1, MaxShard] panics, as in ShardPartitionKey.
func ShardMarkerRowKey(shard int) string {
	if shard < 1 || shard > MaxShard {
		panic("tablelog: shard marker " + strconv.Itoa(shard) + " outside [1, " + strconv.Itoa(MaxShard) + "]")
	}
	return ShardMarkerPrefix + strconv.Itoa(shard)
}

// ParseShardMarkerRowKey returns the shard a marker RowKey names, or false
// if rk is not one ShardMarkerRowKey writes.
func ParseShardMarkerRowKey(rk string) (int, bool) {
	digits, ok := strings.CutPrefix(rk, ShardMarkerPrefix)
	if !ok || digits == "" || digits[0] == '0' || !allDigits(digits) || len(digits) > 3 {
		return 0, false
	}
	k, err := strconv.Atoi(digits)
	if err != nil || k < 1 || k > MaxShard {
		return 0, false
	}
	return k, true
}

// IsReservedRowKey reports whether rk is in the marker range (below
// ShardMarkerEnd): never a log record.
func IsReservedRowKey(rk string) bool { return rk < ShardMarkerEnd }

// AppendShardMarkerEntity appends the marker of shard (1..MaxShard) of
// service's day: an entity of the day's shard-0 partition.
func AppendShardMarkerEntity(dst []byte, service string, day time.Time, shard int) []byte {
	dst = append(dst, `{"PartitionKey":`...)
	dst, _, _, _ = appendJSONString(dst, PartitionKey(service, day), math.MaxInt)
	dst = append(dst, `,"RowKey":"`...)
	dst = append(dst, ShardMarkerRowKey(shard)...)
	dst = append(dst, `","`+CatalogColShard+`":`...)
	dst = strconv.AppendInt(dst, int64(shard), 10)
	return append(dst, '}')
}
