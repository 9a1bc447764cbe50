package sink

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tablelog/tablelog/internal/schema"
)

// Shards. One partition takes about 2,000 entities/s on Azure; past that
// the service answers 503 ServerBusy. A day's records start in the day's
// partition (shard 0, "<service>_<yyyyMMdd>"); each time a transaction of
// the day is throttled (503 ServerBusy, or 500/503 OperationTimedOut) the
// sink adds a shard "<service>_<yyyyMMdd>_<k>" to the day, at most one
// every shardGrowInterval and up to Options.MaxShards in all, and spreads
// the day's later transactions over its shards round-robin, passing over a
// shard for shardCoolDown after it throttled one:
//
//   - a transaction never mixes shards: the worker picks one shard per
//     transaction, and its retries and bisections stay in it (its keys are
//     fixed, so a retry whose first attempt was committed answers "already
//     exists" in the same partition);
//   - before its first transaction into shard k >= 1, the sink inserts the
//     shard's catalog entry (insert-only: "already exists", from another
//     process of the service, is success) and waits for it, so readers,
//     which read the catalog first, learn of every shard before it holds a
//     record; if the entry cannot be stored, the shard is not used;
//   - records are encoded for shard 0 (their keys are fixed at encode
//     time); the worker rewrites the PartitionKey of the copies it sends.
//     The spool and the repair entities keep shard 0's key. A record
//     replayed from the spool after a crash may land in another shard than
//     the crashed run stored it in; readers yield such a copy once (see
//     query).
//
// Shards are never removed within a day; the next day starts with one.

// shardCoolDown is how long new transactions pass over a shard that
// throttled one (its retries still go there).
const shardCoolDown = 500 * time.Millisecond

// shardOf returns the shard number of partition spk of day partition pk
// (0 for pk itself or "", -1 for another partition).
func shardOf(pk, spk string) int {
	if spk == "" || spk == pk {
		return 0
	}
	_, _, k, err := schema.ParsePartitionKey(spk)
	if err != nil || !strings.HasPrefix(spk, pk+"_") {
		return -1
	}
	return k
}

// shardGrowInterval is the least time between two shards added to a day:
// the transactions in flight when a shard is added may still be throttled,
// and should not add more.
const shardGrowInterval = 250 * time.Millisecond

// shardSet is the sink's shard state, per day partition.
type shardSet struct {
	max int // Options.MaxShards

	mu   sync.Mutex
	days map[string]*dayShards // by the day's shard-0 PartitionKey
}

// dayShards is one day's shards.
type dayShards struct {
	service   string
	day       time.Time
	n         int       // shards in use: 0..n-1
	next      int       // round-robin position
	grown     time.Time // when the last shard was added
	limit     int       // shards that may be used (lowered when an announcement fails)
	announced map[int]*announcement
	busy      []time.Time // per shard, until when new transactions pass over it
}

// announcement is the insertion of one shard's catalog entry.
type announcement struct {
	done chan struct{} // closed when the insertion ended
	ok   bool          // the entry is stored
}

// maxShardDays bounds the days kept: older ones are dropped.
const maxShardDays = 4

// shard returns the PartitionKey to send the next transaction of day
// partition pk in, announcing a new shard in the catalog first. It returns
// pk itself while the day has one shard (always with MaxShards 1).
func (s *Sink) shard(pk string) string {
	ss := &s.shards
	if ss.max <= 1 {
		return pk
	}
	ss.mu.Lock()
	d := ss.days[pk]
	if d == nil || d.n <= 1 {
		ss.mu.Unlock()
		return pk
	}
	// Round-robin, passing over shards that throttled a transaction in the
	// last shardCoolDown (all of them busy: the one free soonest).
	now := time.Now()
	k, soonest := -1, -1
	for range d.n {
		c := d.next % d.n
		d.next++
		if !now.Before(d.busy[c]) {
			k = c
			break
		}
		if soonest < 0 || d.busy[c].Before(d.busy[soonest]) {
			soonest = c
		}
	}
	if k < 0 {
		k = soonest
	}
	if k == 0 {
		ss.mu.Unlock()
		return pk
	}
	a := d.announced[k]
	first := a == nil
	if first {
		a = &announcement{done: make(chan struct{})}
		d.announced[k] = a
	}
	service, day := d.service, d.day
	ss.mu.Unlock()

	if first {
		e := s.insertOne(schema.AppendCatalogShardEntity(nil, service, day, k), false) // denied: the shard is not used
		if e == nil {
			a.ok = true
			s.c.catalogWrites.Add(1)
		} else if e.class != aborted {
			s.opts.ErrorHandler(fmt.Errorf("sink: cannot announce shard %d of partition %s in the catalog, so it is not used: %w", k, pk, e))
			ss.mu.Lock()
			d.limit = min(d.limit, k)
			d.n = min(d.n, k)
			ss.mu.Unlock()
		}
		close(a.done)
	} else {
		select {
		case <-a.done:
		case <-s.hardCtx.Done():
			return pk
		}
	}
	if !a.ok {
		return pk
	}
	return schema.ShardPartitionKey(service, day, k)
}

// throttled records that a transaction of day partition pk, sent to shard
// partition spk, was throttled (e, a transient error): new transactions
// pass over that shard for shardCoolDown, and a shard is added to the day
// if it may.
func (s *Sink) throttled(pk, spk string, e *OpError) {
	ss := &s.shards
	if ss.max <= 1 || !isBusy(e) {
		return
	}
	now := time.Now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	d := ss.days[pk]
	if d == nil {
		service, day, shard, err := schema.ParsePartitionKey(pk)
		if err != nil || shard != 0 {
			return
		}
		if len(ss.days) >= maxShardDays {
			for k, old := range ss.days {
				if old.day.Before(day) {
					delete(ss.days, k)
				}
			}
		}
		d = &dayShards{service: service, day: day, n: 1, limit: ss.max, announced: map[int]*announcement{}, busy: make([]time.Time, ss.max)}
		ss.days[pk] = d
	}
	if k := shardOf(pk, spk); k >= 0 && k < len(d.busy) {
		d.busy[k] = now.Add(shardCoolDown)
	}
	if d.n >= d.limit || now.Sub(d.grown) < shardGrowInterval {
		return
	}
	d.n++
	d.grown = now
	s.c.shardsAdded.Add(1)
}

// isBusy reports whether e is the service's answer to a partition or
// account over its scalability target.
func isBusy(e *OpError) bool {
	if e == nil || e.class != transient {
		return false
	}
	switch e.Code {
	case "ServerBusy", "OperationTimedOut":
		return true
	}
	return e.Code == "" && e.StatusCode == http.StatusServiceUnavailable
}

// shardCount returns the most shards any day uses now (1 without
// sharding).
func (s *Sink) shardCount() int {
	ss := &s.shards
	ss.mu.Lock()
	defer ss.mu.Unlock()
	n := 1
	for _, d := range ss.days {
		n = max(n, d.n)
	}
	return n
}

// inShard returns entity (encoded for its day's shard 0, partition pk0)
// with PartitionKey pk, appended to buf; or entity itself when pk is pk0
// or the entity does not start as the encoder writes it.
func inShard(buf, entity []byte, pk0, pk string) ([]byte, []byte) {
	if pk == pk0 || pk == "" {
		return buf, entity
	}
	const head = `{"PartitionKey":"`
	n := len(head) + len(pk0)
	if len(entity) <= n+1 || !bytes.HasPrefix(entity, []byte(head)) || string(entity[len(head):n]) != pk0 || entity[n] != '"' {
		return buf, entity
	}
	start := len(buf)
	buf = append(buf, head...)
	buf = append(buf, pk...)
	buf = append(buf, entity[n:]...)
	return buf, buf[start:]
}
