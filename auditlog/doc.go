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
// deletes, so its credential can be limited to adding entities (a table
// SAS for the audit table with sp=a); its few reads can use a separate
// read-only client (Options.ReadTable).
//
// # Threat model
//
// Each line is a promise, with the tests that try to break it
// (attack_test.go, verify_test.go, chain_test.go):
//
//   - An attacker holding the writers' own credentials — the add-only SAS
//     and the read-only one the README hands to audit writers — but not the
//     Key: whatever they insert (events, seals, catalog entries, genesis
//     claims, copies of real events, in today's, tomorrow's or far day
//     partitions, in shards), Verify with the Key reports it as a break of a
//     named kind with its position, and every event whose Record returned
//     nil is checked. Honest writers keep working: a foreign entity in a
//     slot costs that slot (the writer skips it; Verify reports it), never a
//     wedge or a move of the chain. (TestRandomAddOnlyAttacks: 200 runs of
//     three writers over five days under random insertions.)
//   - An attacker with full write rights and no Key: modified, deleted,
//     inserted, reordered and forged entities are reported; so are deleted
//     catalog entries and genesis claims (unlisted). A cut-off tail is
//     reported only against VerifyOptions.ExpectedHead: without a head
//     recorded elsewhere, the newest events can be cut off undetected, even
//     with the Key. Record Report.Head outside the table's account.
//   - An honest writer with a bad clock: it never moves the chain to, or
//     follows it into, a day more than one day after its own clock or the
//     service's (the Date of its responses); Record fails with ErrClock
//     instead. It refuses events whose Time lies more than a day before the
//     chain's current day. Verify flags an event whose partition is neither
//     its Time's day nor the next (misdated).
//
// Without a Key the hashes are plain SHA-256: anyone can compute them, so
// only accidents (and, with ExpectedHead, any change before the head) are
// detected. Use a Key.
//
// # The hash chain
//
// The events of a service form one chain across days. Each event names its
// predecessor by PrevSeq and PrevHash (0 and the zero hash for the first),
// and
//
//	Hash = HMAC-SHA-256(Key, canonical(service, PartitionKey, Seq, PrevSeq,
//	       PrevHash, ID, Time, Actor, Action, Target, Outcome, Reason,
//	       SourceIP, RequestID, Attrs, Alg, Seal))
//
// or plain SHA-256 without a Key. The canonical encoding is a domain string
// ("tablelog/auditlog/v2") followed by every field, length-prefixed, so no
// two entities share an input. PartitionKey and Seq bind an entity to the
// place it was written: a copy anywhere else does not verify. Seals (below)
// are hashed the same way. The catalog entries and genesis claims of the
// audit table carry a Mac: the HMAC of (service, RowKey, Day). The first
// chain format ("v1", before PrevSeq) is not read by this version: its
// entities are reported as foreign.
//
// # Keys, slots and skipped slots
//
// PartitionKey is "<service>_<yyyyMMdd>", one partition per UTC day, as for
// logs. RowKey is the entity's slot: the 19-digit decimal of MaxInt64 -
// Seq, so ascending RowKey order is descending Seq (newest first) and
// query reads the trail newest first like logs.
//
// The slot is the claim. An insert of a taken slot fails
// (EntityAlreadyExists), so two writers that both try to append after the
// same event cannot both succeed: the loser's transaction fails as a
// whole, nothing of it is stored, and it reads the slots above the head
// again, re-chains its events (new Seq, PrevSeq, PrevHash, Hash and slots;
// the same IDs and content) and retries. The chain stays single and linear
// with any number of Writers in any number of processes, with no lock and
// no update.
//
// A writer trusts only what the Key authenticates. When it reads the slots
// above the head (one query for a window of 1,000 slots), an authentic
// event linking to the head is another writer's and becomes the head; an
// authentic seal linking to it moves the chain to the seal's day; anything
// else is foreign, and its slot is skipped: the next event takes the next
// free slot, and its PrevSeq says which event it follows. So Seq is
// normally the event count, with gaps where foreign entities took slots.
//
// # Unknown outcomes
//
// The writer retries transient errors itself (the SDK's retries are turned
// off for its requests, so it knows when a response was lost). A retry
// reuses the exact keys and content of the attempt before it. If the retry
// meets EntityAlreadyExists after an attempt whose outcome was unknown, the
// writer reads the first slot: if it holds this batch's first event (same
// ID and Hash), the earlier attempt was stored and Record succeeds;
// otherwise no earlier attempt of this batch was stored — and none ever
// can be, since the slot is taken — so the events are re-chained. Either
// way an event is stored exactly once.
//
// # Days
//
// To move the chain to a new day, a writer first inserts the new day's
// catalog entry (partition "~catalog", RowKey "<service>_<yyyyMMdd>"),
// then a seal into the old day's partition, in the first free slot after
// its last event, naming the new day and linking (PrevSeq, PrevHash) to
// that event. The seal takes the slot any late writer of the old day would
// need, so no event can join the old day after the chain moved on; a
// writer whose insert hits the seal follows it. The new day's events start
// at the seal's slot and link to the old day's last event. A trail starts
// with a genesis claim (RowKey "<service>~genesis~<n>" in "~catalog"):
// the lowest-numbered authentic claim names the first day, so two writers
// cannot start two chains, and a foreign entity in a claim's place costs
// that number.
//
// An event is stored in the day partition the chain is on when it is
// committed: the UTC day of its Time (the writer opens that day if the
// chain is on an earlier one), or the day after (an event recorded just
// before midnight, or backdated up to MaxBackdate).
//
// The catalog is a hint for readers (query.Audit lists days from it) and
// for a writer starting cold (it reads the newest catalogued days, and
// today's and yesterday's partitions, for an authentic entity, then
// follows the chain from there). It is never the authority: Verify does
// not use it to find days.
//
// # Throughput ceiling
//
// A service's trail is one chain, so it is written into one partition per
// day, and Azure takes about 2,000 entities/s per partition (503 ServerBusy
// beyond; the writer retries those as transient, honouring Retry-After).
// Unlike logs, a trail is never sharded: a shard would need its own chain or
// a cross-partition claim, and either gives up the single order Verify
// checks. Group commit is how a writer approaches the ceiling: a Writer
// keeps one transaction in flight and the next takes every Record call that
// queued meanwhile (up to 100 events, 4 MiB), so with a 5–10 ms round trip
// one Writer can offer 10,000–20,000 events/s, well past the partition's
// 2,000. Several Writers of one service share the ceiling and lose
// transactions to each other's slots (re-chained, counted in
// Stats.Conflicts), so one Writer per process with many goroutines is the
// efficient shape. A service that must record more than ~2,000 audit
// events/s sustained should split its trail by service name (each name is
// its own chain with its own head to record).
//
// # Verify
//
// Verify reads every partition of the service in the range with one query
// over the PartitionKey range "<service>_0" … "<service>_:" (all day
// partitions, ascending, each newest slot first), so an uncatalogued
// partition, a far-future one or a shard is read too; and the service's
// catalog entries and genesis claims with one more. It follows the links
// down each day and across days through their seals, and reports every
// break: Modified, Deleted, Inserted, Reordered, Forged, Misdated,
// Unlisted and, given an expected head, Truncated (see Kind for each
// rule). It returns the number of events checked and the head (Seq, Hash)
// to record elsewhere.
//
// Cost per day verified: one read of every entity of the day (1,000 per
// page; on Azure a cross-partition query also returns at least one page
// per partition), one catalog query for the whole run, and, for a range
// with Since, one query for the event before the range. Memory does not
// grow with the trail: the state is the link being followed and the last
// day's end, plus one bit per catalogued day and the breaks found (up to
// VerifyOptions.MaxBreaks).
package auditlog
