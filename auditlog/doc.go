// Package auditlog records compliance audit events — who did what to which
// resource, when, with what outcome — in Azure Table Storage (or the Cosmos
// DB Table API), synchronously, insert-only and tamper-evident, and
// verifies the trail.
//
//	w, err := auditlog.New(auditTable, auditlog.Options{Service: "billing", Key: hmacKey})
//	ev, err := w.Record(ctx, auditlog.Event{Actor: "alice", Action: "invoice.delete",
//		Target: "inv-42", Outcome: auditlog.Success, Reason: "customer request"})
//	rep, err := auditlog.Verify(ctx, auditTable, auditlog.VerifyOptions{Service: "billing", Key: hmacKey})
//
// Events are read back, newest first, with query.Reader.Audit.
//
// # Guarantees
//
// Record returns only once the event is stored: no error means it is in the
// table. Invalid events (no Actor or Action, a field over its limit) are
// refused before anything is sent. Concurrent Record calls of one Writer
// share entity-group transactions (group commit: while one transaction is
// in flight the next calls queue, and the next transaction takes them all,
// up to 100 events and 4 MiB), so a busy service pays one round trip per
// batch, not per event; a lone call is a single insert.
//
// The writer only ever inserts. It never updates, merges, upserts or
// deletes, so its credential can be limited to adding entities (an
// account SAS with sp=a); its few reads can use a separate read-only
// client (Options.ReadTable).
//
// # The hash chain
//
// The events of a service form one chain across days. Event n carries
// Seq = n, PrevHash = the Hash of event n-1 (zero for n = 1), and
//
//	Hash = SHA-256(canonical(service, Seq, PrevHash, ID, Time, Actor, Action,
//	       Target, Outcome, Reason, SourceIP, RequestID, Attrs, Alg))
//
// or HMAC-SHA-256 under Options.Key instead of SHA-256. The canonical
// encoding is a domain string followed by every field, length-prefixed, so
// no two events share an input. Without a key anyone can recompute a
// consistent chain after changing it; record Verify's head elsewhere and
// pass it back as ExpectedHead to catch that. With a key, nobody without it
// can produce a valid hash.
//
// # Keys, and why there are no separate claim entities
//
// PartitionKey is "<service>_<yyyyMMdd>", one partition per UTC day, as for
// logs. RowKey is the event's slot: the 19-digit decimal of
// MaxInt64 - Seq. Ascending RowKey order is therefore descending Seq:
// newest first, so "the head" is the first entity of the newest partition
// ($top=1), and query reads the trail newest first like logs. Time ranges
// are Time filters within the day partitions; within a day the order is the
// chain's order, which is the order the events were committed.
//
// The slot is the claim. Event n can only be inserted into slot n, and an
// insert of a taken slot fails (EntityAlreadyExists). Two writers that both
// read head n and both try to append n+1… in one transaction cannot both
// succeed: the loser's transaction fails as a whole, nothing of it is
// stored, and it reads the head again, re-chains its events after the new
// head (new Seq, PrevHash, Hash and slots; the same IDs and content) and
// retries. So the chain stays single and linear with any number of Writers
// in any number of processes, with no lock and no update: optimistic
// concurrency by insert-only claims, where the event itself is the claim
// entity, which leaves all 100 operations of a transaction to events.
// Inverted ULID RowKeys (as for logs) would order a day by time rather than
// by chain, need a separate "seq-N" claim per transaction, and make Verify
// sort each day in memory.
//
// # Unknown outcomes
//
// The writer retries transient errors itself (the SDK's retries are turned
// off for its requests, so it knows when a response was lost). A retry
// reuses the exact keys and content of the attempt before it. If the retry
// meets EntityAlreadyExists after an attempt whose outcome was unknown, the
// writer reads the first slot: if it holds this batch's first event (same
// ID and Hash), the earlier attempt was stored and Record succeeds; if it
// holds another writer's event, no earlier attempt of this batch was stored
// — and none ever can be, since the slot is taken — so the events are
// re-chained. Either way an event is stored exactly once.
//
// # Days
//
// The chain continues from one day's partition to the next: the first
// event of a day links (PrevHash, Seq) to the last event of the previous
// day that has events. To move on, a writer first inserts a seal into the
// old day's partition, in the slot after its last event, naming the new
// day. The seal takes the slot any late writer of the old day would need,
// so no event can join the old day after the chain moved on; a writer whose
// insert hits the seal follows it to the day it names. The first day's
// partition is claimed by a genesis entry in the catalog, and every day
// partition is listed in the catalog partition ("~catalog", RowKey
// "<service>_<yyyyMMdd>") before its first event, so readers and Verify
// find the days without scanning.
//
// An event is stored in the day partition the chain is on when it is
// committed, which is normally the UTC day of its Time; an event recorded
// just before midnight, or backdated (up to MaxBackdate), may sit in the
// next day's partition.
//
// # Verify
//
// Verify streams a service's days newest first and reports every break:
// Modified, Deleted, Inserted, Reordered, Forged and, given an expected
// head, Truncated (see Kind for each rule). It returns the number of events
// checked and the head (Seq, Hash) to record elsewhere.
package auditlog
