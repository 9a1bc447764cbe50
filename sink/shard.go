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
// partition (shard 0, "<service>_<yyyyMMdd>"); when a transaction of the
// day is throttled (503 ServerBusy, or 500/503 OperationTimedOut) after it
// was spread over every shard the day had, the sink adds a shard
// "<service>_<yyyyMMdd>_<k>" to the day, at most one every
// shardGrowInterval and up to Options.MaxShards in all, and spreads the
// day's later transactions over its shards round-robin, passing over a
// shard for shardCoolDown after it throttled one:
//
//   - a transaction never mixes shards: the worker picks one shard per
//     transaction, and its retries and bisections stay in it (its keys are
//     fixed, so a retry whose first attempt was committed answers "already
//     exists" in the same partition);
//   - a new shard is announced by a goroutine of its own, and used only
//     once announced: its catalog entry (for Services, Days and prune) and
//     its marker in the day's shard-0 partition (schema.ShardMarkerRowKey:
//     readers learn a day's shards from the first page of shard 0, at no
//     extra request) are inserted, insert-only ("already exists", from
//     another process of the service, is success), before its first
//     record. Meanwhile the day's transactions go to the shards already
//     announced, so no worker waits for an announcement (the marker goes
//     to the partition that is throttled, and may take a few retries). A
//     shard whose announcement fails is never used, and the day gets no
//     more shards;
//   - a throttle only adds a shard when its transaction was sent while the
//     day had as many shards as now, all of them announced: the
//     transactions in flight when a shard is added (or picked while it was
//     being announced), throttled afterwards, say nothing about whether
//     the new count suffices, so the count settles near the rate / the
//     partition's target;
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

// shardGrowInterval is the least time between two shards added to a day.
const shardGrowInterval = 100 * time.Millisecond

// shardSet is the sink's shard state, per day partition.
type shardSet struct {
	max int // Options.MaxShards

	mu   sync.Mutex
	days map[string]*dayShards // by the day's shard-0 PartitionKey
}

// dayShards is one day's shards.
type dayShards struct {
	service string
	day     time.Time
	n       int         // shards added: 0..n-1 (shard 0 is always there)
	ready   []bool      // per shard, announced (shard 0: always)
	live    int         // shards announced (shard 0 included)
	next    int         // round-robin position
	grown   time.Time   // when the last shard was added
	limit   int         // shards that may be added (lowered when an announcement fails)
	busy    []time.Time // per shard, until when new transactions pass over it
}

// maxShardDays bounds the days kept: older ones are dropped.
const maxShardDays = 4

// shard returns the PartitionKey to send the next transaction of day
// partition pk in, and the day's shard count when it was picked (for
// throttled). It returns pk itself while the day has one shard (always
// with MaxShards 1). It never waits: shards not yet announced are passed
// over.
func (s *Sink) shard(pk string) (string, int) {
	ss := &s.shards
	if ss.max <= 1 {
		return pk, 1
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	d := ss.days[pk]
	if d == nil || d.n <= 1 {
		return pk, 1
	}
	// Round-robin over the announced shards, passing over those that
	// throttled a transaction in the last shardCoolDown (all of them
	// busy: the one free soonest).
	now := time.Now()
	k, soonest := -1, -1
	for range d.n {
		c := d.next % d.n
		d.next++
		if !d.ready[c] {
			continue
		}
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
	if k <= 0 {
		return pk, d.n
	}
	return schema.ShardPartitionKey(d.service, d.day, k), d.n
}

// throttled records that a transaction of day partition pk, sent to shard
// partition spk when the day had gen shards, was throttled (e, a transient
// error): new transactions pass over that shard for shardCoolDown, and a
// shard is added to the day if it may (announced in the background: see
// announce).
func (s *Sink) throttled(pk, spk string, gen int, e *OpError) {
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
		d = &dayShards{service: service, day: day, n: 1, live: 1, limit: ss.max, ready: make([]bool, ss.max), busy: make([]time.Time, ss.max)}
		d.ready[0] = true
		ss.days[pk] = d
	}
	if k := shardOf(pk, spk); k >= 0 && k < len(d.busy) {
		d.busy[k] = now.Add(shardCoolDown)
	}
	// Grow only on a throttle the current shards could not prevent: its
	// transaction was sent when the day had as many shards as now, and
	// every one of them is in use (none is still being announced).
	if gen < d.n || d.live < d.n || d.n >= d.limit || now.Sub(d.grown) < shardGrowInterval {
		return
	}
	k := d.n
	d.n++
	d.grown = now
	s.c.shardsAdded.Add(1)
	s.wg.Add(1) // a worker calls throttled: the count is not zero
	go s.announce(pk, d, k)
}

// announce inserts shard k's catalog entry and its marker in the day's
// shard-0 partition pk, then lets the shard be used. It gives up when
// Close has delivered the records (s.shardCtx).
func (s *Sink) announce(pk string, d *dayShards, k int) {
	defer s.wg.Done()
	e := s.insertOne(s.shardCtx, schema.AppendCatalogShardEntity(nil, d.service, d.day, k), false)
	if e == nil {
		s.c.catalogWrites.Add(1)
		e = s.insertOne(s.shardCtx, schema.AppendShardMarkerEntity(nil, d.service, d.day, k), false)
	}
	ss := &s.shards
	ss.mu.Lock()
	defer ss.mu.Unlock()
	switch {
	case e == nil:
		d.ready[k] = true
		d.live++
	case e.class == aborted:
	default:
		d.limit = min(d.limit, d.n) // no more shards for the day
		s.opts.ErrorHandler(fmt.Errorf("sink: cannot announce shard %d of partition %s, so it is not used: %w", k, pk, e))
	}
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
